//! REBAR (Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein, NeurIPS 2017): the
//! Gumbel-Softmax relaxation as a control variate, with conditionally re-sampled noise
//! (arXiv 1703.07370).
//!
//! Write the categorical sample through its Gumbel-max noise: `z = log p + g`,
//! `b = one_hot(argmax z)`, with `p = softmax(logits)`. Draw a second noise `z~` from
//! the conditional law `p(z | b)` (below). With the relaxed sample
//! `sigma(z) = softmax(z / tau)` at temperature `tau` and a scale `eta`, REBAR is
//!
//! ```text
//! g = [f(b) - eta f(sigma(z~))] d log p(b) + eta d f(sigma(z)) - eta d f(sigma(z~))
//! ```
//!
//! (all `d` with respect to the logits; the last two are *reparameterised* gradients
//! through the relaxation, `z~` depending on the logits through `p`). **Unbiased for any
//! `eta`, `tau`**: `E[d f(sigma(z))] = d E[f(sigma(z))] = E[f(sigma(z~)) d log p(b)] + E[d f(sigma(z~))]`
//! (split `E_z = E_b E_{z|b}` and differentiate), so the last three terms have mean
//! zero. Variance: the score term now carries `f(b) - eta f(sigma(z~))`, and `z~` shares
//! `b` with `z`, so when the relaxation tracks `f` well it is small; at `tau -> 0` the
//! relaxation is exact but its reparameterised gradient explodes, at large `tau` it is
//! smooth but a poor baseline — hence tuning.
//!
//! # Conditional noise (Tucker et al., arXiv 1703.07370, appendix; [`noise`] and [`conditional_gumbel`](crate::estimators::conditional_gumbel))
//! Given `b` and fresh uniforms `v`: `z~_b = -ln(-ln v_b)` (the maximum of Gumbels with
//! log-probabilities summing to 0 is a standard Gumbel, independent of the argmax) and,
//! for `i != b`, `z~_i = -ln(-ln(v_i) / p_i - ln v_b)` (a Gumbel with location `ln p_i`
//! truncated below `z~_b`). Only the `i != b` entries depend on the logits. The relaxed
//! samples are [`gumbel_softmax`](fn@gumbel_softmax)`(logits, g, tau)` and `gumbel_softmax(z~, 0, tau)`.
//!
//! A Bernoulli unit is the `K = 2` case (logits `[0, phi]`): the two-class relaxation
//! `softmax((logits + g) / tau)` equals the binary Concrete `sigmoid((phi + L) / tau)`
//! with `L` logistic, and the conditional noise above reduces to the Bernoulli one.
//!
//! # Tuning `eta` and `tau` by the variance
//! Because the mean of `g` does not depend on `(eta, tau)`, minimising the variance is
//! minimising `V = E[|g|^2]`. Our tape has no double-backward, so:
//! - `g` is *linear* in `eta`: `g = g_a + eta g_c`, hence `dV/d eta = E[2 g . g_c]`,
//!   exact, from quantities we already have;
//! - for `rho = ln tau`, `dV/d rho` is a central difference
//!   `(V(rho + h) - V(rho - h)) / 2h` (`h = 0.01`) under **common random numbers**: the
//!   same `g`, `b`, `v` at both temperatures, so the difference measures the effect of
//!   the temperature, not of the noise. Both are averaged over the batch and used in one
//!   Adam step *after* the estimate was formed, so every step stays unbiased.
//!
//! This costs `1 + 2 x (1 or 3)` cost evaluations per call (hard sample; relaxed and
//! conditional relaxed samples at `tau`, and at `tau e^{+-h}` when tuning) and one extra
//! backward pass, and the per-example estimate reaches the logits' upstream network
//! through an [`InjectedGradient`](super::InjectedGradient) node. Tuning on every
//! `k`-th call only ([`Rebar::with_tuning_interval`]; default every call) brings the
//! other calls down to `1 + 2`; the call count is part of the checkpointed state. The
//! conditional noise `z~` does not depend on `tau`: it is computed once per call, and
//! its derivative in the logits applied by hand (see `rebar_pass`).

use rand::RngCore;

use super::flat_adam::FlatAdam;
use super::injected_gradient::inject_gradient;
use super::{constant_from, poisoned_estimate, read_logits, softmax_f64, values_f64};
use crate::error::{Result, check_temperature_for};
use crate::estimators::{
    Estimate, EstimatorState, GradientEstimator, InjectedNoise,
    bernoulli_as_categorical_with_noise, check_cost_shape, fail, gumbel_softmax, noise,
};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// `d z~_i / d ln p_i` for the conditional noise of every element: with
/// `E_i = -ln v_i`, `z~_i = -ln(E_i / p_i + E_b) = -logaddexp(ln E_i - ln p_i, ln E_b)`,
/// so the slope is `sigmoid(ln E_i - ln p_i - ln E_b)` off the sampled class and 0 on
/// it (computed in log space, finite even when `p_i` underflows).
#[cfg(test)]
pub(crate) fn conditional_slopes(
    values: &[f64],
    sample: &[f64],
    uniforms: &[f64],
    group_size: usize,
) -> Vec<f64> {
    conditional_noise_and_slopes(values, sample, uniforms, group_size).1
}

/// The conditional noise `z~` of every element (as
/// [`conditional_gumbel_from_uniform`](crate::estimators::noise::conditional_gumbel_from_uniform),
/// in `f64`) and its `conditional_slopes`, sharing their logarithms: with
/// `a_i = ln E_i - ln p_i`, `c = ln E_b` and `t = exp(-|a_i - c|)`,
/// `z~_i = -(max(a_i, c) + ln(1 + t))` and the slope is `sigmoid(a_i - c)`, i.e.
/// `1 / (1 + t)` or `t / (1 + t)`; on the sampled class `z~_b = -c`, slope 0.
pub(crate) fn conditional_noise_and_slopes(
    values: &[f64],
    sample: &[f64],
    uniforms: &[f64],
    group_size: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut log_p = vec![0.0; values.len()];
    crate::kernels::softmax::log_softmax_groups(values, &mut log_p, group_size);
    let mut noise = vec![0.0; values.len()];
    let mut slopes = vec![0.0; values.len()];
    for ((((zs, os), ls), bs), vs) in noise
        .chunks_exact_mut(group_size)
        .zip(slopes.chunks_exact_mut(group_size))
        .zip(log_p.chunks_exact(group_size))
        .zip(sample.chunks_exact(group_size))
        .zip(uniforms.chunks_exact(group_size))
    {
        let b = bs.iter().position(|&z| z > 0.5).unwrap_or(0);
        let log_top = (-vs[b].ln()).ln();
        for i in 0..group_size {
            if i == b {
                zs[i] = -log_top;
                os[i] = 0.0;
            } else {
                let x = (-vs[i].ln()).ln() - ls[i] - log_top;
                let t = (-x.abs()).exp();
                zs[i] = -(log_top + x.max(0.0) + t.ln_1p());
                os[i] = if x >= 0.0 {
                    1.0 / (1.0 + t)
                } else {
                    t / (1.0 + t)
                };
            }
        }
    }
    (noise, slopes)
}

/// The noise of one REBAR/RELAX call, in `f64`.
pub(crate) struct Draw {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// `p = softmax(logits)`.
    pub(crate) probabilities: Vec<f64>,
    pub(crate) gumbel: Vec<f64>,
    /// The one-hot `b = one_hot(argmax(logits + gumbel))`.
    pub(crate) sample: Vec<f64>,
    /// Fresh uniforms for the conditional noise.
    pub(crate) uniforms: Vec<f64>,
}

impl Draw {
    /// Gumbel-max sample and fresh conditional uniforms, from [`noise`].
    ///
    /// The uniforms go onto a tape of `T` (the conditional-noise ops read them there),
    /// so they are drawn in `T`'s open interval: an `f64` uniform such as `1 - 1e-8`
    /// would round to exactly `1.0` in `f32`, where `ln(-ln v)` is `-inf` and the
    /// relaxed sample `sigma(z~)` becomes NaN.
    pub(crate) fn new<T: Float>(
        values: &Tensor<f64>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Self {
        let (rows, cols) = (values.rows(), values.cols());
        let drawn = noise::sample_categorical(values, group_size, rng)
            .expect("group size checked by read_logits");
        let uniforms = noise::uniform::<T, _>(rows, cols, rng).cast::<f64>();
        Draw {
            rows,
            cols,
            probabilities: softmax_f64(values.as_slice(), group_size),
            gumbel: drawn.noise.into_vec(),
            sample: drawn.one_hot.into_vec(),
            uniforms: uniforms.into_vec(),
        }
    }

    /// The noise of an [`InjectedNoise`] (see [`InjectedNoise::relaxation_noise`]).
    pub(crate) fn injected<T: Float>(
        values: &Tensor<f64>,
        group_size: usize,
        noise: &InjectedNoise,
        op: &str,
    ) -> Result<Self> {
        let (gumbel, sample, uniforms) = noise.relaxation_noise::<T>(values, group_size, op)?;
        Ok(Draw {
            rows: values.rows(),
            cols: values.cols(),
            probabilities: softmax_f64(values.as_slice(), group_size),
            gumbel: gumbel.into_vec(),
            sample: sample.into_vec(),
            uniforms: uniforms.into_vec(),
        })
    }

    /// The score `d log p(b) / d logits = b - p`.
    pub(crate) fn score(&self) -> Vec<f64> {
        self.sample
            .iter()
            .zip(&self.probabilities)
            .map(|(b, p)| b - p)
            .collect()
    }
}

/// The relaxed quantities at one temperature.
pub(crate) struct Relaxed {
    pub(crate) temperature: f64,
    /// `d/d logits [f(sigma(z)) - f(sigma(z~))]`, per row, `[rows * cols]`.
    pub(crate) gradient: Vec<f64>,
    /// `f(sigma(z~))` per row.
    pub(crate) cost_tilde: Vec<f64>,
    /// `sigma(z)` and `sigma(z~)`, `[rows * cols]`.
    pub(crate) relaxed: Vec<f64>,
    pub(crate) relaxed_tilde: Vec<f64>,
}

/// The hard sample's cost and the relaxed evaluations at each temperature.
pub(crate) struct RebarPass<'t, T: Float> {
    pub(crate) sample: Var<'t, T>,
    pub(crate) cost: Var<'t, T>,
    pub(crate) cost_values: Vec<f64>,
    pub(crate) relaxed: Vec<Relaxed>,
    /// `conditional_slopes` of the call.
    pub(crate) slopes: Vec<f64>,
}

/// Evaluates the cost at the hard sample and, for every temperature, at `sigma(z)` and
/// `sigma(z~)`; one backward pass from the sum of all relaxed costs gives every per-row
/// gradient (rows and temperatures are separate).
///
/// `sigma(z)` is built on a fresh leaf copy of the logits per temperature. The
/// conditional noise `z~` does not depend on the temperature, so it is computed once,
/// in `f64`, and enters the tape as a leaf per temperature; its gradient reaches the
/// logits by the chain rule written out here: `z~_i` depends on `ln p_i` only, with
/// slope `conditional_slopes` (0 on the sampled class), and
/// `d ln p / d logits = I - 1 p^T` per group, so `grad_logits = u - p sum(u)` per
/// group with `u = slope * grad_z~`. (The same derivative as the
/// [`conditional_gumbel`](crate::estimators::conditional_gumbel) op, once per call
/// instead of a forward and a backward per temperature.)
pub(crate) fn rebar_pass<'t, T: Float>(
    logits: Var<'t, T>,
    values: &Tensor<f64>,
    draw: &Draw,
    group_size: usize,
    temperatures: &[f64],
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    _name: &str,
) -> std::result::Result<RebarPass<'t, T>, Estimate<'t, T>> {
    let tape = logits.tape();
    let (rows, cols) = (draw.rows, draw.cols);
    let sample = constant_from(logits, rows, cols, draw.sample.clone());
    let cost_value = check_cost_shape(sample, cost(sample));
    let gumbel = constant_from(logits, rows, cols, draw.gumbel.clone());
    let no_noise = constant_from(logits, rows, cols, vec![0.0; rows * cols]);
    let copy = values.cast::<T>();
    let (z_tilde, slopes) =
        conditional_noise_and_slopes(values.as_slice(), &draw.sample, &draw.uniforms, group_size);
    let z_tilde = Tensor::from_vec(rows, cols, z_tilde)
        .expect("shape of the logits")
        .cast::<T>();
    let mut total: Option<Var<'t, T>> = None;
    let mut parts = Vec::with_capacity(temperatures.len());
    for &temperature in temperatures {
        let leaf = tape.variable(&copy);
        let tilde_leaf = tape.variable(&z_tilde);
        let relaxed = gumbel_softmax(leaf, gumbel, temperature, group_size);
        let relaxed_tilde = gumbel_softmax(tilde_leaf, no_noise, temperature, group_size);
        let f = check_cost_shape(relaxed, cost(relaxed));
        let f_tilde = check_cost_shape(relaxed_tilde, cost(relaxed_tilde));
        let difference = (f - f_tilde).sum();
        total = Some(match total {
            Some(t) => t + difference,
            None => difference,
        });
        parts.push((
            temperature,
            leaf,
            tilde_leaf,
            relaxed,
            relaxed_tilde,
            f_tilde,
        ));
    }
    if let Some(total) = total {
        let _ = tape.backward(total);
    }
    let cost_values = values_f64(cost_value);
    if tape.check().is_err() || cost_values.len() != rows {
        return Err(poisoned_estimate(cost_value));
    }
    let grad_f64 = |leaf: Var<'t, T>| -> Vec<f64> {
        leaf.grad()
            .map(|g| g.as_slice().iter().map(|x| x.to_f64()).collect())
            .unwrap_or_else(|| vec![0.0; rows * cols])
    };
    let relaxed = parts
        .into_iter()
        .map(
            |(temperature, leaf, tilde_leaf, relaxed, relaxed_tilde, f_tilde)| {
                let mut gradient = grad_f64(leaf);
                let through_tilde = grad_f64(tilde_leaf);
                for ((gs, us), (ss, ps)) in gradient
                    .chunks_exact_mut(group_size)
                    .zip(through_tilde.chunks_exact(group_size))
                    .zip(
                        slopes
                            .chunks_exact(group_size)
                            .zip(draw.probabilities.chunks_exact(group_size)),
                    )
                {
                    let total: f64 = us.iter().zip(ss).map(|(u, s)| u * s).sum();
                    for (((g, u), s), p) in gs.iter_mut().zip(us).zip(ss).zip(ps) {
                        *g += u * s - p * total;
                    }
                }
                Relaxed {
                    temperature,
                    gradient,
                    cost_tilde: values_f64(f_tilde),
                    relaxed: values_f64(relaxed),
                    relaxed_tilde: values_f64(relaxed_tilde),
                }
            },
        )
        .collect();
    Ok(RebarPass {
        sample,
        cost: cost_value,
        cost_values,
        relaxed,
        slopes,
    })
}

/// REBAR's per-row parts: `g = g_a + eta g_c` with `g_a = f(b) (b - p)` and
/// `g_c = -f(sigma(z~)) (b - p) + d[f(sigma(z)) - f(sigma(z~))]`.
pub(crate) fn rebar_parts(
    pass_costs: &[f64],
    score: &[f64],
    relaxed: &Relaxed,
    cols: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut g_a = vec![0.0; score.len()];
    let mut g_c = vec![0.0; score.len()];
    for (r, &f) in pass_costs.iter().enumerate() {
        for i in r * cols..(r + 1) * cols {
            g_a[i] = f * score[i];
            g_c[i] = -relaxed.cost_tilde[r] * score[i] + relaxed.gradient[i];
        }
    }
    (g_a, g_c)
}

/// `mean over rows of |g_r|^2`.
pub(crate) fn mean_square(g: &[f64], rows: usize) -> f64 {
    g.iter().map(|x| x * x).sum::<f64>() / rows as f64
}

/// The temperatures to evaluate: `tau`, and `tau e^{+-h}` when tuning.
pub(crate) const LOG_TEMPERATURE_STEP: f64 = 0.01;

/// Bounds on `ln tau` while tuning (`tau` in `[0.01, 100]`).
pub(crate) const LOG_TEMPERATURE_RANGE: (f64, f64) = (-4.6, 4.6);

/// When REBAR and RELAX tune: on every `interval`-th call, counted in the checkpointed
/// state (key `tuning_calls`) so a resumed run tunes on the same calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TuningSchedule {
    pub(crate) interval: u64,
    /// Calls so far.
    pub(crate) calls: u64,
}

impl Default for TuningSchedule {
    fn default() -> Self {
        TuningSchedule {
            interval: 1,
            calls: 0,
        }
    }
}

impl TuningSchedule {
    /// Every `interval`-th call; an error naming `op` if `interval` is 0.
    pub(crate) fn every(interval: u64, op: &str) -> Result<Self> {
        if interval == 0 {
            return Err(crate::error::Error::invalid_argument(
                op,
                "the tuning interval must be at least 1",
            ));
        }
        Ok(TuningSchedule { interval, calls: 0 })
    }

    /// Counts a call; whether it tunes (the first, then every `interval`-th).
    pub(crate) fn next_call_tunes(&mut self) -> bool {
        let tunes = self.calls.is_multiple_of(self.interval);
        self.calls = self.calls.saturating_add(1);
        tunes
    }

    pub(crate) fn save_state(&self, state: &mut EstimatorState) {
        state.set_scalar("tuning_calls", self.calls as f64);
    }

    /// The call count of a saved state (0 in a state saved without one).
    pub(crate) fn load_calls(state: &EstimatorState) -> Result<u64> {
        if state.contains("tuning_calls") {
            state.count("tuning_calls")
        } else {
            Ok(0)
        }
    }
}

/// REBAR with its own `eta` and temperature, optionally tuned to minimise the variance.
///
/// # The cost closure
/// Called `1 + 2 x (1 or 3)` times per call, at the hard sample and at relaxed points of
/// the simplex; it must be per example and deterministic (see the [module
/// docs](super)). Runnable example on the Bernoulli toy `E[(b - 0.45)^2]`:
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::Rebar;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(9);
/// let mut rebar = Rebar::new(1.0, 0.5)?; // eta = 1, tau = 0.5, tuned as it goes
/// let mut estimates = Vec::new();
/// for _ in 0..20 {
///     let tape = Tape::<f64>::new();
///     // 50 examples, each a Bernoulli(sigmoid(0)) as a 2-class categorical [0, phi].
///     let logits = tape.variable(&Tensor::from_vec(50, 2, [0.0, 0.0].repeat(50))?);
///     let pick = tape.constant(&Tensor::from_vec(2, 1, vec![0.0, 1.0])?);
///     let estimate = rebar.estimate(logits, 2, &mut |z| (z.matmul(pick) - 0.45).square(), &mut rng);
///     tape.backward(estimate.loss)?;
///     // The loss is a batch mean: each example's estimate of dL/dphi is 50 x its row.
///     estimates.extend(logits.grad().unwrap().as_slice().chunks(2).map(|g| 50.0 * g[1]));
/// }
/// let n = estimates.len() as f64;
/// let mean = estimates.iter().sum::<f64>() / n;
/// let se = (estimates.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
/// assert!((mean - 0.025).abs() < 4.0 * se, "{mean} +- {se}"); // exact: (1 - 2t)/4
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rebar {
    /// `[eta, ln tau]`.
    params: [f64; 2],
    tune: bool,
    adam: FlatAdam,
    schedule: TuningSchedule,
}

impl Rebar {
    /// REBAR with scale `eta` and temperature `temperature`, tuned by Adam (learning
    /// rate 0.01) on the variance. Errors on an invalid temperature.
    pub fn new(eta: f64, temperature: f64) -> Result<Self> {
        check_temperature_for::<f64>("Rebar::new", temperature)?;
        Ok(Rebar {
            params: [eta, temperature.ln()],
            tune: true,
            adam: FlatAdam::new(0.01, 2),
            schedule: TuningSchedule::default(),
        })
    }

    /// Turns variance tuning of `eta` and the temperature on or off.
    pub fn with_tuning(mut self, tune: bool) -> Self {
        self.tune = tune;
        self
    }

    /// Tunes on every `interval`-th call only (the first call, then every `interval`
    /// calls after it; default 1, every call). A call that does not tune evaluates the
    /// cost `1 + 2` times instead of `1 + 2 x 3`. The estimate is unbiased at any `eta`
    /// and `tau`, so this changes the variance, never the mean. An error if `interval`
    /// is 0.
    pub fn with_tuning_interval(mut self, interval: u64) -> Result<Self> {
        self.schedule = TuningSchedule::every(interval, "Rebar::with_tuning_interval")?;
        Ok(self)
    }

    /// The current control-variate scale `eta`.
    pub fn eta(&self) -> f64 {
        self.params[0]
    }

    /// Restarts the temperature at `temperature` (tuning continues from there).
    /// Rejects `<= 0`, NaN and infinity.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<f64>("set_temperature", temperature)?;
        self.params[1] = temperature.ln();
        Ok(())
    }

    /// The current relaxation temperature `tau`.
    pub fn temperature(&self) -> f64 {
        self.params[1].exp()
    }
}

impl<T: Float> GradientEstimator<T> for Rebar {
    fn name(&self) -> &'static str {
        "rebar"
    }

    fn is_unbiased(&self) -> bool {
        true
    }

    fn temperature(&self) -> Option<f64> {
        Some(Rebar::temperature(self))
    }

    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        Rebar::set_temperature(self, temperature)
    }

    /// `eta`, `log_temperature` and the tuning Adam's moments.
    fn save_state(&self, state: &mut EstimatorState) {
        state.set_scalar("eta", self.params[0]);
        state.set_scalar("log_temperature", self.params[1]);
        self.adam.save_state(state);
        self.schedule.save_state(state);
    }

    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        let params = [state.scalar("eta")?, state.scalar("log_temperature")?];
        let calls = TuningSchedule::load_calls(state)?;
        self.adam.load_state(state)?;
        self.params = params;
        self.schedule.calls = calls;
        Ok(())
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

impl Rebar {
    /// The estimate at the injected `noise` if given, else at fresh noise from `rng`.
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
                "rebar",
                |pairs, noise, cost, rng| self.estimate_at(pairs, 2, noise, cost, rng),
            );
        }
        let values = match read_logits(logits, group_size, "rebar") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let draw = match noise {
            None => Draw::new::<T>(&values, group_size, rng),
            Some(noise) => match Draw::injected::<T>(&values, group_size, noise, "rebar") {
                Ok(draw) => draw,
                Err(error) => return poisoned_estimate(fail(logits.tape(), error)),
            },
        };
        let tune = self.tune && self.schedule.next_call_tunes();
        let (eta, log_tau) = (self.params[0], self.params[1]);
        let mut temperatures = vec![log_tau.exp()];
        if tune {
            temperatures.push((log_tau + LOG_TEMPERATURE_STEP).exp());
            temperatures.push((log_tau - LOG_TEMPERATURE_STEP).exp());
        }
        let pass = match rebar_pass(
            logits,
            &values,
            &draw,
            group_size,
            &temperatures,
            cost,
            "rebar",
        ) {
            Ok(pass) => pass,
            Err(poisoned) => return poisoned,
        };
        let score = draw.score();
        let (g_a, g_c) = rebar_parts(&pass.cost_values, &score, &pass.relaxed[0], draw.cols);
        let g: Vec<f64> = g_a.iter().zip(&g_c).map(|(a, c)| a + eta * c).collect();

        if tune {
            let rows = draw.rows;
            let d_eta = 2.0 * g.iter().zip(&g_c).map(|(x, c)| x * c).sum::<f64>() / rows as f64;
            let at = |relaxed: &Relaxed| {
                let (a, c) = rebar_parts(&pass.cost_values, &score, relaxed, draw.cols);
                let g: Vec<f64> = a.iter().zip(&c).map(|(a, c)| a + eta * c).collect();
                mean_square(&g, rows)
            };
            let d_log_tau =
                (at(&pass.relaxed[1]) - at(&pass.relaxed[2])) / (2.0 * LOG_TEMPERATURE_STEP);
            self.adam.step(&mut self.params, &[d_eta, d_log_tau]);
            self.params[1] = self.params[1].clamp(LOG_TEMPERATURE_RANGE.0, LOG_TEMPERATURE_RANGE.1);
        }

        let gradient = constant_from(logits, draw.rows, draw.cols, g);
        let injected = inject_gradient(logits, gradient);
        Estimate {
            sample: pass.sample,
            cost: pass.cost,
            loss: (pass.cost + injected).mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimators::noise::conditional_gumbel_from_uniform;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// The shared-logarithm noise is the noise module's conditional Gumbel map, also
    /// where a probability underflows.
    #[test]
    fn conditional_noise_matches_the_noise_module() {
        let mut rng = StdRng::seed_from_u64(3);
        for spread in [1.0, 30.0, 800.0] {
            let values = Tensor::<f64>::random_uniform(4, 6, -spread, spread, &mut rng);
            let draw = Draw::new::<f64>(&values, 3, &mut rng);
            let (noise, slopes) =
                conditional_noise_and_slopes(values.as_slice(), &draw.sample, &draw.uniforms, 3);
            let classes: Vec<usize> = draw
                .sample
                .chunks(3)
                .map(|g| g.iter().position(|&x| x > 0.5).unwrap())
                .collect();
            let uniforms = Tensor::from_slice(4, 6, &draw.uniforms).unwrap();
            let expected =
                conditional_gumbel_from_uniform(&values, &uniforms, &classes, 3).unwrap();
            for (a, b) in noise.iter().zip(expected.as_slice()) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
            }
            assert!(slopes.iter().all(|s| (0.0..=1.0).contains(s)));
        }
    }
}
