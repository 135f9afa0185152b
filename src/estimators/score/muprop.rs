//! MuProp (Gu, Levine, Sutskever and Mnih, ICLR 2016): a first-order Taylor baseline
//! around the mean-field point, with its analytic correction (arXiv 1511.05176).
//!
//! Let `z_bar = E[z] = softmax(logits)` (per group) and expand the cost to first order:
//! `b(z) = f(z_bar) + <f'(z_bar), z - z_bar>`. Subtracting it inside the score term and
//! adding back its exact expectation,
//!
//! ```text
//! g = (f(z) - f(z_bar) - <f'(z_bar), z - z_bar>) d log q(z)   +   f'(z_bar) d z_bar / d logits
//!     \_____________ score term, small when f is smooth ____/     \___ mu_b: analytic ___/
//! ```
//!
//! is **unbiased**: `E[b(z) d log q(z)] = <f'(z_bar), d E[z] / d logits>` because `b` is
//! linear in `z` and `E[z] = z_bar` (the `f(z_bar) - <f', z_bar>` part is a constant
//! baseline with zero mean). The variance is that of REINFORCE with the residual
//! `f(z) - b(z)` in place of `f(z)`: small for nearly linear costs.
//!
//! Cost: the closure is called twice, at the sample and at `z_bar`; `f'(z_bar)` is read
//! off by a backward pass from `sum_r f_r(z_bar_r)` to a leaf copy of `z_bar` (rows
//! are separate because the cost is per example), and `mu_b` enters the loss as the
//! zero-valued term `<f'(z_bar), z_bar(logits)> - stop_gradient(same)`, whose gradient
//! is `f'(z_bar) d z_bar / d logits` (backpropagated through the softmax).
//!
//! When the cost has stochastic layers of its own after `z` (the SBN's second layer),
//! [`GradientEstimator::estimate_with_mean_field`] lets the caller give a second,
//! deterministic cost for the expansion point: the *mean-field network* of Gu et al.,
//! in which every later stochastic layer is replaced by its mean. The sample's cost is
//! still the sampled one; only `f(z_bar)` and `f'(z_bar)` come from the mean-field cost.
//!
//! [`MuProp::normalised`] adds NVIL's centring and variance normalisation
//! ([`SignalNormalisation`]) to the residual signal, as the paper trained it: the signal
//! becomes `(f(z) - b(z) - c) / s`, and `mu_b` is divided by the same `s`, so the whole
//! estimate stays an unbiased estimate of `gradient / s` (`c` is fixed before the
//! sample is drawn).
//!
//! [`MuProp::nvil`] is MuProp as the NVIL recipe trains it (beam2d/sbn's
//! `LikelihoodRatioEstimator` with `use_muprop`): the residual is centred, NVIL's
//! learned input-dependent baseline `b_psi` ([`NvilSignal`]) is subtracted, and the
//! result is divided by `s`, but **only the score term** is divided; `mu_b` keeps its
//! full weight:
//!
//! ```text
//!    g_nvil  = (f(z) - b(z) - c - b_psi(x)) / s * d log q(z)   +   mu_b
//! E[g_nvil] = mu_b + (g_true - mu_b) / s
//! ```
//!
//! so it is **biased** whenever `s > 1`: it shrinks the noisy score part towards the
//! deterministic mean-field gradient `mu_b`. (`s * g_nvil - (s - 1) mu_b` is unbiased;
//! `tests/suite/estimators_score.rs` checks exactly that against enumeration.)

use rand::RngCore;

use super::{
    NvilSignal, SignalNormalisation, bernoulli_pairs, constant_from, on_bits_estimate,
    poisoned_estimate, read_logits, sample_one_hot, score_function_term, softmax_f64, values_f64,
};
use crate::error::Result;
use crate::estimators::{
    Estimate, EstimatorState, GradientEstimator, InjectedNoise, check_cost_shape, fail,
};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// The unbiased MuProp estimator. See the module documentation for the formula.
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::MuProp;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(1, 3, vec![0.2, -0.4, 1.0])?);
/// let weights = tape.constant(&Tensor::from_vec(3, 1, vec![1.0, -1.0, 0.5])?);
/// // The cost is called at the one-hot sample and at the mean softmax(logits).
/// let estimate = MuProp::new().estimate(logits, 3, &mut |z| z.matmul(weights).exp(), &mut rng);
/// tape.backward(estimate.loss)?;
/// assert!(logits.grad().is_some());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MuProp {
    signal: ResidualSignal,
    last_scale: f64,
}

/// What MuProp does with its residual learning signal `f(z) - b(z)`.
#[derive(Debug, Clone)]
enum ResidualSignal {
    /// Used as it is.
    Raw,
    /// Centred and divided by `s`, and `mu_b` divided by the same `s`: unbiased for
    /// `gradient / s`.
    Normalised(SignalNormalisation),
    /// Centred, learned baseline subtracted, divided by `s`; `mu_b` not divided (biased).
    Nvil(NvilSignal),
}

impl ResidualSignal {
    /// Whether `mu_b` is divided by the same `s` as the score term, which is what keeps
    /// the estimate unbiased (for `gradient / s`). Only the NVIL variant does not.
    fn scales_mu_b(&self) -> bool {
        !matches!(self, ResidualSignal::Nvil(_))
    }
}

impl MuProp {
    /// MuProp with the raw residual as its signal (no state).
    pub fn new() -> Self {
        MuProp {
            signal: ResidualSignal::Raw,
            last_scale: 1.0,
        }
    }

    /// MuProp with NVIL's centring and variance normalisation of the residual (decay 0.8).
    pub fn normalised() -> Self {
        MuProp {
            signal: ResidualSignal::Normalised(SignalNormalisation::nvil()),
            last_scale: 1.0,
        }
    }

    /// MuProp trained with all of NVIL's signal corrections, as beam2d/sbn runs it:
    /// centring, the learned input-dependent baseline (on the detached logits) and
    /// variance normalisation of the score term only. Biased when the scale `s > 1`;
    /// see the module documentation.
    pub fn nvil() -> Self {
        MuProp {
            signal: ResidualSignal::Nvil(NvilSignal::nvil()),
            last_scale: 1.0,
        }
    }

    /// The divisor `s` of the last call's score term (1 without normalisation). For
    /// [`MuProp::new`] and [`MuProp::normalised`] the last estimate times `s` is
    /// unbiased for the gradient; for [`MuProp::nvil`], `s * estimate - (s - 1) mu_b` is.
    pub fn last_scale(&self) -> f64 {
        self.last_scale
    }
}

impl Default for MuProp {
    fn default() -> Self {
        MuProp::new()
    }
}

/// What the Taylor-baseline estimators share: the sample, its cost, and the learning
/// signal `f(z) - f(z_bar) - <f'(z_bar), z - z_bar>` around the expansion point
/// `z_bar` (per row), plus `f'(z_bar)` itself (`[rows * cols]`).
pub(crate) struct TaylorParts<'t, T: Float> {
    pub(crate) sample: Var<'t, T>,
    pub(crate) cost: Var<'t, T>,
    pub(crate) signal: Vec<f64>,
    pub(crate) slope: Vec<f64>,
}

/// Evaluates `cost` at a fresh leaf holding `point` (`[rows, cols]`) and returns the
/// leaf, the cost, and its slope `f'(point)` from one backward pass: the cost is per
/// example, so `d sum_r f_r / d point` has `f_r'(point_r)` in row `r`. (An error is
/// left on the tape for the caller's check.)
pub(crate) fn cost_and_slope<'t, T: Float>(
    logits: Var<'t, T>,
    rows: usize,
    cols: usize,
    point: &[f64],
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
) -> (Var<'t, T>, Var<'t, T>, Vec<f64>) {
    let tape = logits.tape();
    let leaf = Tensor::from_vec(rows, cols, point.to_vec())
        .expect("sizes")
        .cast::<T>();
    let leaf = tape.variable(&leaf);
    let cost_at_point = check_cost_shape(leaf, cost(leaf));
    let _ = tape.backward(cost_at_point.sum());
    let slope = leaf
        .grad()
        .map(|g| g.as_slice().iter().map(|x| x.to_f64()).collect())
        .unwrap_or_else(|| vec![0.0; rows * cols]);
    (leaf, cost_at_point, slope)
}

/// Evaluates the cost at the one-hot `sample_values` and at `expansion` (both
/// `[rows, cols]`), differentiates it there, and builds the Taylor-residual signal. At
/// the expansion point it evaluates `point_cost` if given (MuProp's mean-field
/// network), else `cost`.
pub(crate) fn taylor_parts<'t, T: Float>(
    logits: Var<'t, T>,
    values: &Tensor<f64>,
    expansion: Vec<f64>,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    point_cost: Option<&mut dyn FnMut(Var<'t, T>) -> Var<'t, T>>,
    sample_values: Vec<f64>,
) -> Result<TaylorParts<'t, T>, Estimate<'t, T>> {
    let tape = logits.tape();
    let (rows, cols) = (values.rows(), values.cols());
    let sample = constant_from(logits, rows, cols, sample_values.clone());
    let cost_at_sample = check_cost_shape(sample, cost(sample));

    let (_, cost_at_point, slope) = match point_cost {
        Some(point_cost) => cost_and_slope(logits, rows, cols, &expansion, point_cost),
        None => cost_and_slope(logits, rows, cols, &expansion, cost),
    };

    let f_sample = values_f64(cost_at_sample);
    let f_point = values_f64(cost_at_point);
    if f_sample.len() != rows || f_point.len() != rows || tape.check().is_err() {
        return Err(poisoned_estimate(if cost_at_sample.is_poisoned() {
            cost_at_sample
        } else {
            cost_at_point
        }));
    }
    let signal: Vec<f64> = (0..rows)
        .map(|r| {
            let range = r * cols..(r + 1) * cols;
            let linear: f64 = slope[range.clone()]
                .iter()
                .zip(&sample_values[range.clone()])
                .zip(&expansion[range])
                .map(|((s, z), p)| s * (z - p))
                .sum();
            f_sample[r] - f_point[r] - linear
        })
        .collect();
    Ok(TaylorParts {
        sample,
        cost: cost_at_sample,
        signal,
        slope,
    })
}

impl<T: Float> GradientEstimator<T> for MuProp {
    fn name(&self) -> &'static str {
        match self.signal {
            ResidualSignal::Raw => "muprop",
            ResidualSignal::Normalised(_) => "muprop-normalised",
            ResidualSignal::Nvil(_) => "muprop-nvil",
        }
    }

    fn is_unbiased(&self) -> bool {
        self.signal.scales_mu_b()
    }

    /// The normalisation's averages (`centre`, `variance`), the learned baseline
    /// (`baseline.*`, NVIL variant) and the last scale.
    fn save_state(&self, state: &mut EstimatorState) {
        match &self.signal {
            ResidualSignal::Raw => {}
            ResidualSignal::Normalised(normalisation) => normalisation.save_state(state),
            ResidualSignal::Nvil(nvil) => nvil.save_state(state),
        }
        state.set_scalar("last_scale", self.last_scale);
    }

    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        match &mut self.signal {
            ResidualSignal::Raw => {}
            ResidualSignal::Normalised(normalisation) => normalisation.load_state(state)?,
            ResidualSignal::Nvil(nvil) => nvil.load_state(state)?,
        }
        self.last_scale = state.scalar("last_scale")?;
        Ok(())
    }

    /// `s` when the whole estimate was divided by it; 1 for [`MuProp::nvil`], whose
    /// `mu_b` keeps its full weight (only its score term is scaled).
    fn signal_scale(&self) -> f64 {
        if self.signal.scales_mu_b() {
            self.last_scale
        } else {
            1.0
        }
    }

    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_around(logits, group_size, cost, None, None, rng)
    }

    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_around(logits, group_size, cost, None, Some(noise), rng)
    }

    fn estimate_with_mean_field<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        mean_field_cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_around(logits, group_size, cost, Some(mean_field_cost), None, rng)
    }
}

impl MuProp {
    /// The estimate, with the baseline's expansion point evaluated by `mean_field_cost`
    /// if given and by `cost` otherwise, at the injected `noise` if given.
    fn estimate_around<'t, T: Float>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        mean_field_cost: Option<&mut dyn FnMut(Var<'t, T>) -> Var<'t, T>>,
        noise: Option<&InjectedNoise>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        if group_size == 1 {
            // Binary units as two-class pairs; both closures see the units again.
            if logits.is_poisoned() {
                return poisoned_estimate(logits);
            }
            let noise = match noise.map(|n| n.on_pairs(logits.shape().cols, "muprop")) {
                Some(Ok(pairs)) => Some(pairs),
                Some(Err(error)) => return poisoned_estimate(fail(logits.tape(), error)),
                None => None,
            };
            let (pairs, pick) = bernoulli_pairs(logits);
            let mut on_bits = |z: Var<'t, T>| cost(z.matmul(pick));
            let inner = match mean_field_cost {
                Some(mean_field_cost) => {
                    let mut mean_field_on_bits = |z: Var<'t, T>| mean_field_cost(z.matmul(pick));
                    self.estimate_around(
                        pairs,
                        2,
                        &mut on_bits,
                        Some(&mut mean_field_on_bits),
                        noise.as_ref(),
                        rng,
                    )
                }
                None => self.estimate_around(pairs, 2, &mut on_bits, None, noise.as_ref(), rng),
            };
            return on_bits_estimate(inner, pick);
        }
        let values = match read_logits(logits, group_size, "muprop") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let sample = match noise {
            None => sample_one_hot(&values, group_size, 1, rng).into_vec(),
            Some(noise) => match noise.hard_sample(&values, group_size, 1, "muprop") {
                Ok(sample) => sample.into_vec(),
                Err(error) => return poisoned_estimate(fail(logits.tape(), error)),
            },
        };
        let mean = softmax_f64(values.as_slice(), group_size);
        let parts = match taylor_parts(logits, &values, mean, cost, mean_field_cost, sample) {
            Ok(parts) => parts,
            Err(poisoned) => return poisoned,
        };
        let (rows, cols) = (values.rows(), values.cols());
        let (signal, scale) = match &mut self.signal {
            ResidualSignal::Raw => (parts.signal, 1.0),
            ResidualSignal::Normalised(normalisation) => normalisation.apply(&parts.signal),
            ResidualSignal::Nvil(nvil) => nvil.apply(&values, &parts.signal, rng),
        };
        self.last_scale = scale;
        let correction_scale = if self.signal.scales_mu_b() {
            scale
        } else {
            1.0
        };
        let signal = constant_from(logits, rows, 1, signal);
        let term = score_function_term(logits, parts.sample, signal, group_size);
        // mu_b / s = (f'(z_bar) / s) d z_bar / d logits, as a zero-valued term (s = 1
        // for the NVIL variant, which keeps mu_b at full weight).
        let slope: Vec<f64> = parts.slope.iter().map(|g| g / correction_scale).collect();
        let slope = constant_from(logits, rows, cols, slope);
        let linear = (slope * logits.softmax(group_size)).sum_cols();
        let correction = linear - linear.detach();
        Estimate {
            sample: parts.sample,
            cost: parts.cost,
            loss: (parts.cost + term + correction).mean(),
        }
    }
}
