//! DARN's estimator (Gregor, Danihelka, Mnih, Blundell and Wierstra, *Deep
//! AutoRegressive Networks*, arXiv 1310.8499, as described in Jang et al.,
//! arXiv 1611.01144, §3.2). **Biased.**
//! The paper describes it in one sentence: MuProp's Taylor baseline
//! `b(z) = f(z_bar) + <f'(z_bar), z - z_bar>` with `z_bar = 1/2` for Bernoulli units,
//! without MuProp's correction term, "which makes the estimator biased for
//! non-quadratic f". Read literally, that sentence gives two different estimators, and
//! this file has both ([`DarnSignal`]):
//!
//! **Taylor residual** ([`DarnSignal::TaylorResidual`], the literal reading, `darn`,
//! `darn-uniform`):
//!
//! ```text
//! g = (f(z) - f(z_bar) - <f'(z_bar), z - z_bar>) d log q(z)
//! ```
//!
//! The baseline depends on the sample `z`, so subtracting it changes the expectation by
//! `-E[b(z) d log q(z)] = -<f'(z_bar), d E[z] / d logits>`, which this drops (MuProp adds
//! it back). The bias is exactly `-(d z_mean / d logits)^T f'(z_bar)`: this estimator
//! is biased even for a *linear* cost, where its mean is zero. Its variance is
//! MuProp's score term alone.
//!
//! **Sample slope** ([`DarnSignal::SampleSlope`], `darn-sample-slope`): each variable
//! `g` (a binary unit or a categorical group) gets its own score-function term, whose
//! signal is the first-order Taylor expansion, around the sample, of
//! `f(z) - f(z with z_g moved to z_bar_g)`:
//!
//! ```text
//! g_g = <f'(z)_g, z_g - z_bar_g> d log q(z_g)
//! ```
//!
//! For one binary unit `b` with `p = sigmoid(x)` and `z_bar = 1/2` its mean is
//! `p (1 - p) (f'(0) + f'(1)) / 2`: the trapezoid rule for the exact
//! `p (1 - p) (f(1) - f(0)) = p (1 - p) int_0^1 f'`, exact when `f` is quadratic (over
//! independent units too, since the other units' terms average to their means) and
//! biased otherwise: the property the paper states. It needs only the cost's slope at
//! the sample (one backward pass), like straight-through. For `K` classes with
//! `z_bar = 1/K` it is exact for linear costs. docs/results.md compares the two forms in
//! Table 1's DARN column.
//!
//! The expansion point is chosen by [`ExpansionPoint`]: the paper's `z_bar = 1/2` for
//! Bernoulli units generalises to the uniform point `1/K`; the mean `softmax(logits)`
//! is MuProp's point. [`Darn::with_normalisation`] adds NVIL's centring and variance
//! normalisation of the signal ([`SignalNormalisation`]), which the paper says DARN
//! needed to compete.

use rand::RngCore;

use super::injected_gradient::inject_gradient;
use super::muprop::{cost_and_slope, taylor_parts};
use super::{
    SignalNormalisation, constant_from, poisoned_estimate, read_logits, sample_one_hot,
    score_function_term, softmax_f64, values_f64,
};
use crate::error::Result;
use crate::estimators::{
    Estimate, EstimatorState, GradientEstimator, InjectedNoise,
    bernoulli_as_categorical_with_noise, fail,
};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// Applies `normalisation` (if any) to the residual signal; returns the signal and `s`.
fn normalise(normalisation: &mut Option<SignalNormalisation>, signal: Vec<f64>) -> (Vec<f64>, f64) {
    match normalisation {
        Some(n) => n.apply(&signal),
        None => (signal, 1.0),
    }
}

/// Which learning signal DARN multiplies the score by (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DarnSignal {
    /// `f(z) - f(z_bar) - <f'(z_bar), z - z_bar>`: the literal reading.
    #[default]
    TaylorResidual,
    /// `<f'(z), z - z_bar>`: the slope at the sample, exact for quadratic costs of
    /// binary units.
    SampleSlope,
}

/// Where DARN expands the cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpansionPoint {
    /// The mean of the sample, `softmax(logits)` (as MuProp).
    #[default]
    Mean,
    /// The centre of the simplex, `1/K` in every class (the paper's `1/2` for Bernoulli).
    Uniform,
}

/// The biased DARN estimator: see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Darn {
    /// Where the cost is expanded.
    pub expansion: ExpansionPoint,
    /// Which signal multiplies the score.
    pub signal: DarnSignal,
    normalisation: Option<SignalNormalisation>,
    last_scale: f64,
}

impl Default for Darn {
    fn default() -> Self {
        Darn::new(ExpansionPoint::default())
    }
}

impl Darn {
    /// DARN expanding around the given point, with the raw residual as its signal.
    pub fn new(expansion: ExpansionPoint) -> Self {
        Darn {
            expansion,
            signal: DarnSignal::TaylorResidual,
            normalisation: None,
            last_scale: 1.0,
        }
    }

    /// DARN with the sample-slope signal `<f'(z), z - z_bar>` around the uniform point
    /// (the paper's `z_bar = 1/2` for binary units).
    pub fn sample_slope() -> Self {
        Darn {
            signal: DarnSignal::SampleSlope,
            ..Darn::new(ExpansionPoint::Uniform)
        }
    }

    /// The same, with NVIL's centring and variance normalisation (decay 0.8).
    pub fn with_normalisation(mut self) -> Self {
        self.normalisation = Some(SignalNormalisation::nvil());
        self
    }

    /// The divisor `s` of the last call (1 without normalisation).
    pub fn last_scale(&self) -> f64 {
        self.last_scale
    }
}

impl<T: Float> GradientEstimator<T> for Darn {
    fn name(&self) -> &'static str {
        let normalised = self.normalisation.is_some();
        match (self.signal, self.expansion, normalised) {
            (DarnSignal::TaylorResidual, ExpansionPoint::Mean, false) => "darn",
            (DarnSignal::TaylorResidual, ExpansionPoint::Uniform, false) => "darn-uniform",
            (DarnSignal::TaylorResidual, ExpansionPoint::Mean, true) => "darn-normalised",
            (DarnSignal::TaylorResidual, ExpansionPoint::Uniform, true) => {
                "darn-uniform-normalised"
            }
            (DarnSignal::SampleSlope, ExpansionPoint::Uniform, false) => "darn-sample-slope",
            (DarnSignal::SampleSlope, ExpansionPoint::Uniform, true) => {
                "darn-sample-slope-normalised"
            }
            (DarnSignal::SampleSlope, ExpansionPoint::Mean, false) => "darn-sample-slope-mean",
            (DarnSignal::SampleSlope, ExpansionPoint::Mean, true) => {
                "darn-sample-slope-mean-normalised"
            }
        }
    }

    fn is_unbiased(&self) -> bool {
        false
    }

    /// The normalisation's averages (`centre`, `variance`), if any, and the last scale.
    fn save_state(&self, state: &mut EstimatorState) {
        if let Some(normalisation) = &self.normalisation {
            normalisation.save_state(state);
        }
        state.set_scalar("last_scale", self.last_scale);
    }

    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        if let Some(normalisation) = &mut self.normalisation {
            normalisation.load_state(state)?;
        }
        self.last_scale = state.scalar("last_scale")?;
        Ok(())
    }

    fn signal_scale(&self) -> f64 {
        self.last_scale
    }

    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_at(logits, group_size, None, cost, rng)
    }

    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_at(logits, group_size, Some(noise), cost, rng)
    }
}

impl Darn {
    /// The estimate at the injected `noise` if given, else at a fresh sample.
    fn estimate_at<'t, T: Float>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: Option<&InjectedNoise>,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        if group_size == 1 {
            return bernoulli_as_categorical_with_noise(
                logits,
                noise,
                cost,
                rng,
                "darn",
                |pairs, noise, cost, rng| self.estimate_at(pairs, 2, noise, cost, rng),
            );
        }
        let values = match read_logits(logits, group_size, "darn") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let sample_values = match noise {
            None => sample_one_hot(&values, group_size, 1, rng).into_vec(),
            Some(noise) => match noise.hard_sample(&values, group_size, 1, "darn") {
                Ok(sample) => sample.into_vec(),
                Err(error) => return poisoned_estimate(fail(logits.tape(), error)),
            },
        };
        let point = match self.expansion {
            ExpansionPoint::Mean => softmax_f64(values.as_slice(), group_size),
            ExpansionPoint::Uniform => vec![1.0 / group_size as f64; values.len()],
        };
        if self.signal == DarnSignal::SampleSlope {
            let parts = match sample_slope_parts(
                logits,
                &values,
                &point,
                group_size,
                cost,
                sample_values,
            ) {
                Ok(parts) => parts,
                Err(poisoned) => return poisoned,
            };
            let (signal, scale) = normalise(&mut self.normalisation, parts.signal);
            self.last_scale = scale;
            // Each variable's signal times its own score `z - softmax(logits)`.
            let probabilities = softmax_f64(values.as_slice(), group_size);
            let gradient: Vec<f64> = parts
                .sample_values
                .iter()
                .zip(&probabilities)
                .enumerate()
                .map(|(i, (z, q))| signal[i / group_size] * (z - q))
                .collect();
            let gradient = constant_from(logits, values.rows(), values.cols(), gradient);
            let injected = inject_gradient(logits, gradient);
            return Estimate {
                sample: parts.sample,
                cost: parts.cost,
                loss: (parts.cost + injected).mean(),
            };
        }
        let parts = match taylor_parts(logits, &values, point, cost, None, sample_values) {
            Ok(parts) => parts,
            Err(poisoned) => return poisoned,
        };
        let (signal, scale) = normalise(&mut self.normalisation, parts.signal);
        self.last_scale = scale;
        let signal = constant_from(logits, values.rows(), 1, signal);
        let term = score_function_term(logits, parts.sample, signal, group_size);
        Estimate {
            sample: parts.sample,
            cost: parts.cost,
            loss: (parts.cost + term).mean(),
        }
    }
}

/// The sample-slope pieces: the sample and its cost, and one signal per categorical
/// variable (per binary unit) and row.
struct SlopeParts<'t, T: Float> {
    sample: Var<'t, T>,
    cost: Var<'t, T>,
    sample_values: Vec<f64>,
    /// `<f'(z)_g, z_g - z_bar_g>` for each group `g` of each row, `[rows * groups]`.
    signal: Vec<f64>,
}

/// Evaluates the cost at the one-hot `sample_values` on a leaf (one backward pass gives
/// `f'(z)` for every row, since the cost is per example), and forms each variable's
/// own signal `<f'(z)_g, z_g - z_bar_g>`. Each variable gets its own, as DARN
/// approximates each unit's own finite difference: a single per-row sum would mix the
/// other units' terms into every unit's gradient, and their correlation with this
/// unit's sample would bias even a quadratic cost.
fn sample_slope_parts<'t, T: Float>(
    logits: Var<'t, T>,
    values: &Tensor<f64>,
    point: &[f64],
    group_size: usize,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    sample_values: Vec<f64>,
) -> Result<SlopeParts<'t, T>, Estimate<'t, T>> {
    let (rows, cols) = (values.rows(), values.cols());
    let (sample, cost_at_sample, slope) = cost_and_slope(logits, rows, cols, &sample_values, cost);
    if values_f64(cost_at_sample).len() != rows || logits.tape().check().is_err() {
        return Err(poisoned_estimate(cost_at_sample));
    }
    let signal = slope
        .chunks(group_size)
        .zip(sample_values.chunks(group_size))
        .zip(point.chunks(group_size))
        .map(|((slope, z), z_bar)| {
            slope
                .iter()
                .zip(z)
                .zip(z_bar)
                .map(|((s, z), z_bar)| s * (z - z_bar))
                .sum()
        })
        .collect();
    Ok(SlopeParts {
        sample,
        cost: cost_at_sample,
        sample_values,
        signal,
    })
}
