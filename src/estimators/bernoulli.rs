//! Binary latents: the relaxed Bernoulli (binary Concrete), its straight-through
//! version (the binary ST Gumbel-Softmax), straight-through Bernoulli, and
//! slope-annealed straight-through (Chung, Ahn and Bengio 2016).
//!
//! Papers: the binary Concrete of Maddison, Mnih and Teh (arXiv 1611.00712) and Jang,
//! Gu and Poole (arXiv 1611.01144); straight-through, Bengio, Léonard and Courville
//! (arXiv 1308.3432); slope annealing, Chung, Ahn and Bengio, *Hierarchical Multiscale
//! Recurrent Neural Networks* (arXiv 1609.01704).
//!
//! A Bernoulli unit with logit `x` is sampled by `b = 1[x + l > 0]` with logistic noise
//! `l = ln u - ln(1 - u)` (the difference of two Gumbels: this is Gumbel-max with
//! `K = 2`). Every column of the logits is one independent unit, so the estimators
//! take `group_size = 1`.
//!
//! | op | forward | backward `d/dx` |
//! |---|---|---|
//! | [`RelaxedBernoulli`] | `y = sigmoid((x + l)/tau)` | `y (1 - y) / tau` |
//! | [`StRelaxedBernoulli`] | `b = 1[x + l > 0]` | `y (1 - y) / tau`: as if `b` were `y` |
//! | [`StBernoulli`] | `b = 1[x + l > 0]` | `sigmoid'(x)`: as if `b` were its mean `sigmoid(x)` |
//! | [`SlopeAnnealedSt`] | `b = 1[slope x + l > 0]` | `slope sigmoid'(slope x)` |
//!
//! ```
//! use gumbelgrad::estimators::{noise, relaxed_bernoulli};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(5);
//! let tape = Tape::<f64>::new();
//! let x = tape.variable(&Tensor::from_vec(1, 3, vec![-2.0, 0.0, 3.0])?);
//! let l = tape.constant(&noise::logistic(1, 3, &mut rng));
//! let y = relaxed_bernoulli(x, l, 0.5);
//! assert!(y.value()?.as_slice().iter().all(|&v| 0.0 < v && v < 1.0));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use rand::RngCore;

use super::{
    Estimate, GradientEstimator, InjectedNoise, LatentKinds, fail, record_tempered,
    relaxed_estimate,
};
use crate::error::{Error, Result, check_temperature_for};
use crate::float::Float;
use crate::op::{Op, expect_same_shapes};
use crate::ops::unary::sigmoid;
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

fn same_shape(op: &str, inputs: &[Shape]) -> Result<Shape> {
    expect_same_shapes(op, inputs, "logits and noise must have the same shape")
}

/// The relaxed Bernoulli / binary Concrete: inputs `(logits, logistic noise)`, output
/// `y = sigmoid((x + l)/tau)` in `(0, 1)`. Backward: `d y / d x = y (1 - y) / tau`
/// (the same for the noise input).
#[derive(Debug, Clone, Copy)]
pub struct RelaxedBernoulli<T: Float> {
    /// The temperature `tau > 0`.
    pub temperature: T,
}

impl<T: Float> Op<T> for RelaxedBernoulli<T> {
    fn name(&self) -> &'static str {
        "relaxed_bernoulli"
    }
    fn describe(&self) -> String {
        format!("relaxed_bernoulli(tau={})", self.temperature)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        check_temperature_for::<T>("relaxed_bernoulli", self.temperature.to_f64())?;
        same_shape("relaxed_bernoulli", inputs)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let inverse_tau = T::ONE / self.temperature;
        for ((y, &x), &l) in output
            .as_mut_slice()
            .iter_mut()
            .zip(inputs[0].as_slice())
            .zip(inputs[1].as_slice())
        {
            *y = sigmoid((x + l) * inverse_tau);
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        relaxed_backward(inputs, self.temperature, grad_output, grad_inputs);
    }
}

/// The relaxed sample's VJP, shared by [`RelaxedBernoulli`] and [`StRelaxedBernoulli`]:
/// `grad_x += grad_y y (1 - y) / tau` and the same for the noise, with
/// `y = sigmoid((x + l)/tau)` recomputed from the inputs (the same expression, so the
/// same bits, as the relaxed forward).
fn relaxed_backward<T: Float>(
    inputs: &[&Tensor<T>],
    temperature: T,
    grad_output: &Tensor<T>,
    grad_inputs: &mut [Option<&mut Tensor<T>>],
) {
    let inverse_tau = T::ONE / temperature;
    for grad in grad_inputs.iter_mut().flatten() {
        for (((g, &x), &l), &go) in grad
            .as_mut_slice()
            .iter_mut()
            .zip(inputs[0].as_slice())
            .zip(inputs[1].as_slice())
            .zip(grad_output.as_slice())
        {
            let y = sigmoid((x + l) * inverse_tau);
            *g += go * y * (T::ONE - y) * inverse_tau;
        }
    }
}

/// Straight-through relaxed Bernoulli, the binary case of the paper's ST Gumbel-Softmax
/// (§2.2 with `k = 2`): inputs `(logits, logistic noise)`. Forward the exact sample
/// `b = 1[x + l > 0]`, which is the relaxed sample `y = sigmoid((x + l)/tau)` rounded
/// at 1/2 (for any `tau`); backward as if `b` were `y`:
/// `grad_x = grad_l = grad_b y (1 - y) / tau`.
///
/// It differs from [`StBernoulli`], whose backward uses the mean `sigmoid(x)` and so
/// ignores the noise that produced `b`.
#[derive(Debug, Clone, Copy)]
pub struct StRelaxedBernoulli<T: Float> {
    /// The temperature `tau > 0` of the relaxed sample the backward pass uses.
    pub temperature: T,
}

impl<T: Float> Op<T> for StRelaxedBernoulli<T> {
    fn name(&self) -> &'static str {
        "st_relaxed_bernoulli"
    }
    fn describe(&self) -> String {
        format!("st_relaxed_bernoulli(tau={})", self.temperature)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        check_temperature_for::<T>("st_relaxed_bernoulli", self.temperature.to_f64())?;
        same_shape("st_relaxed_bernoulli", inputs)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        hard_threshold(inputs, T::ONE, output);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        relaxed_backward(inputs, self.temperature, grad_output, grad_inputs);
    }
}

/// Straight-through Bernoulli: inputs `(logits, logistic noise)`.
/// Forward `b = 1[x + l > 0]` (an exact `Bernoulli(sigmoid(x))` sample, exactly 0 or
/// 1); backward as if `b` were its mean: `grad_x = grad_b sigmoid(x) (1 - sigmoid(x))`.
#[derive(Debug, Clone, Copy)]
pub struct StBernoulli;

impl<T: Float> Op<T> for StBernoulli {
    fn name(&self) -> &'static str {
        "st_bernoulli"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        same_shape("st_bernoulli", inputs)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        hard_threshold(inputs, T::ONE, output);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        sigmoid_backward(inputs[0], T::ONE, grad_output, &mut grad_inputs[0]);
    }
}

/// Slope-annealed straight-through (Chung et al. 2016): inputs `(logits, logistic
/// noise)`. The unit fires with probability `sigmoid(slope x)`: forward
/// `b = 1[slope x + l > 0]`, backward `grad_x = grad_b slope sigmoid'(slope x)`.
/// Raising the slope during training makes the backward sigmoid approach the step the
/// forward uses (Chung et al. use a hard sigmoid; this is the smooth sigmoid).
#[derive(Debug, Clone, Copy)]
pub struct SlopeAnnealedSt<T: Float> {
    /// The slope, `> 0` (1 gives [`StBernoulli`]).
    pub slope: T,
}

impl<T: Float> Op<T> for SlopeAnnealedSt<T> {
    fn name(&self) -> &'static str {
        "slope_annealed_st"
    }
    fn describe(&self) -> String {
        format!("slope_annealed_st(slope={})", self.slope)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        check_slope::<T>(self.slope.to_f64())?;
        same_shape("slope_annealed_st", inputs)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        hard_threshold(inputs, self.slope, output);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        sigmoid_backward(inputs[0], self.slope, grad_output, &mut grad_inputs[0]);
    }
}

/// `out = 1[slope x + l > 0]`.
fn hard_threshold<T: Float>(inputs: &[&Tensor<T>], slope: T, output: &mut Tensor<T>) {
    for ((b, &x), &l) in output
        .as_mut_slice()
        .iter_mut()
        .zip(inputs[0].as_slice())
        .zip(inputs[1].as_slice())
    {
        *b = if slope * x + l > T::ZERO {
            T::ONE
        } else {
            T::ZERO
        };
    }
}

/// `grad_x += grad_b * slope * s (1 - s)`, `s = sigmoid(slope x)`.
fn sigmoid_backward<T: Float>(
    x: &Tensor<T>,
    slope: T,
    grad_output: &Tensor<T>,
    grad: &mut Option<&mut Tensor<T>>,
) {
    if let Some(grad) = grad.as_deref_mut() {
        for ((g, &x), &go) in grad
            .as_mut_slice()
            .iter_mut()
            .zip(x.as_slice())
            .zip(grad_output.as_slice())
        {
            let s = sigmoid(slope * x);
            *g += go * slope * s * (T::ONE - s);
        }
    }
}

/// The slope of [`SlopeAnnealedSt`] must be finite and `> 0`; a bad one is reported as
/// an [`Error::InvalidTemperature`] (the slope is an inverse temperature).
fn check_slope<T: Float>(slope: f64) -> Result<()> {
    check_temperature_for::<T>("slope_annealed_st (slope)", slope)
}

/// Records a [`RelaxedBernoulli`] op (invalid temperatures become a tape error).
pub fn relaxed_bernoulli<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
) -> Var<'t, T> {
    record_tempered(
        "relaxed_bernoulli",
        &[logits, noise],
        temperature,
        |temperature| RelaxedBernoulli { temperature },
    )
}

/// Records an [`StRelaxedBernoulli`] op (invalid temperatures become a tape error).
pub fn st_relaxed_bernoulli<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
) -> Var<'t, T> {
    record_tempered(
        "st_relaxed_bernoulli",
        &[logits, noise],
        temperature,
        |temperature| StRelaxedBernoulli { temperature },
    )
}

/// Records an [`StBernoulli`] op.
pub fn st_bernoulli<'t, T: Float>(logits: Var<'t, T>, noise: Var<'t, T>) -> Var<'t, T> {
    logits.tape().record(StBernoulli, &[logits, noise])
}

/// Records a [`SlopeAnnealedSt`] op (an invalid slope becomes a tape error).
pub fn slope_annealed_st<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    slope: f64,
) -> Var<'t, T> {
    if let Err(error) = check_slope::<T>(slope) {
        return fail(logits.tape(), error);
    }
    logits.tape().record(
        SlopeAnnealedSt {
            slope: T::from_f64(slope),
        },
        &[logits, noise],
    )
}

/// Which Bernoulli node a [`BernoulliEstimator`] records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BernoulliKind {
    /// [`RelaxedBernoulli`] at this temperature.
    Relaxed {
        /// The temperature `tau > 0`.
        temperature: f64,
    },
    /// [`StRelaxedBernoulli`] (binary ST Gumbel-Softmax) at this temperature.
    StraightThroughRelaxed {
        /// The temperature `tau > 0` of the backward pass's relaxed sample.
        temperature: f64,
    },
    /// [`StBernoulli`].
    StraightThrough,
    /// [`SlopeAnnealedSt`] at this slope.
    SlopeAnnealed {
        /// The slope `> 0`.
        slope: f64,
    },
}

/// The estimators for binary latents: relaxed Bernoulli, its straight-through version,
/// ST Bernoulli, slope-annealed ST (see [`BernoulliKind`]). All **biased**. The logits are `[batch, units]`, one
/// independent unit per column; `group_size` must be 1.
#[derive(Debug, Clone)]
pub struct BernoulliEstimator<T: Float> {
    kind: BernoulliKind,
    last_noise: Option<Tensor<T>>,
}

impl<T: Float> BernoulliEstimator<T> {
    /// An estimator of the given kind; the temperature or slope must be finite and
    /// `> 0` ([`Error::InvalidTemperature`] otherwise).
    pub fn new(kind: BernoulliKind) -> Result<Self> {
        match kind {
            BernoulliKind::Relaxed { temperature }
            | BernoulliKind::StraightThroughRelaxed { temperature } => {
                check_temperature_for::<T>("BernoulliEstimator", temperature)?
            }
            BernoulliKind::SlopeAnnealed { slope } => check_slope::<T>(slope)?,
            BernoulliKind::StraightThrough => {}
        }
        Ok(BernoulliEstimator {
            kind,
            last_noise: None,
        })
    }
    /// Which node this estimator records, with its parameter.
    pub fn kind(&self) -> BernoulliKind {
        self.kind
    }
    /// The temperature: `tau` for the relaxed Bernoulli and its ST version, `1 / slope`
    /// for slope-annealed ST, `None` for plain ST.
    pub fn temperature(&self) -> Option<f64> {
        match self.kind {
            BernoulliKind::Relaxed { temperature }
            | BernoulliKind::StraightThroughRelaxed { temperature } => Some(temperature),
            BernoulliKind::SlopeAnnealed { slope } => Some(1.0 / slope),
            BernoulliKind::StraightThrough => None,
        }
    }
    /// Sets the temperature for schedules: `tau` of the relaxed Bernoulli (plain or
    /// straight-through), the slope
    /// `1 / temperature` of slope-annealed ST (so annealing the temperature down raises
    /// the slope, as Chung et al. do); ignored by plain ST. Rejects invalid values.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<T>("BernoulliEstimator::set_temperature", temperature)?;
        match &mut self.kind {
            BernoulliKind::Relaxed { temperature: t }
            | BernoulliKind::StraightThroughRelaxed { temperature: t } => *t = temperature,
            BernoulliKind::SlopeAnnealed { slope } => *slope = 1.0 / temperature,
            BernoulliKind::StraightThrough => {}
        }
        Ok(())
    }
    /// The logistic noise used by the last sample, shaped like the logits.
    pub fn last_noise(&self) -> Option<&Tensor<T>> {
        self.last_noise.as_ref()
    }
    /// The sample for the given logistic noise (no randomness).
    pub fn sample_with_noise<'t>(&mut self, logits: Var<'t, T>, noise: &Tensor<T>) -> Var<'t, T> {
        self.last_noise = Some(noise.clone());
        let l = logits.tape().constant(noise);
        match self.kind {
            BernoulliKind::Relaxed { temperature } => relaxed_bernoulli(logits, l, temperature),
            BernoulliKind::StraightThroughRelaxed { temperature } => {
                st_relaxed_bernoulli(logits, l, temperature)
            }
            BernoulliKind::StraightThrough => st_bernoulli(logits, l),
            BernoulliKind::SlopeAnnealed { slope } => slope_annealed_st(logits, l, slope),
        }
    }
}

impl<T: Float> GradientEstimator<T> for BernoulliEstimator<T> {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(self.clone()))
    }

    fn name(&self) -> &'static str {
        match self.kind {
            BernoulliKind::Relaxed { .. } => "relaxed-bernoulli",
            BernoulliKind::StraightThroughRelaxed { .. } => "st-relaxed-bernoulli",
            BernoulliKind::StraightThrough => "st-bernoulli",
            BernoulliKind::SlopeAnnealed { .. } => "slope-annealed-st",
        }
    }
    fn is_unbiased(&self) -> bool {
        false
    }
    fn gradient_through_sample(&self) -> bool {
        true
    }
    fn latent_kinds(&self) -> LatentKinds {
        LatentKinds::BINARY
    }
    fn temperature(&self) -> Option<f64> {
        BernoulliEstimator::temperature(self)
    }
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        BernoulliEstimator::set_temperature(self, temperature)
    }
    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let sample = GradientEstimator::sample(self, logits, group_size, rng);
        relaxed_estimate(sample, cost)
    }
    /// At the logistic noise `g_{2n+1} - g_{2n}` of Gumbel noise in the two-class
    /// layout `[B, 2N]` ([`InjectedNoise::logistic_noise`]).
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        if group_size != 1 {
            // the same typed error as `sample`
            let sample = GradientEstimator::sample(self, logits, group_size, rng);
            return relaxed_estimate(sample, cost);
        }
        let name = <Self as GradientEstimator<T>>::name(self);
        match noise.logistic_noise(logits.shape(), name) {
            Ok(l) => relaxed_estimate(self.sample_with_noise(logits, &l.cast()), cost),
            Err(error) => super::score::poisoned_estimate(fail(logits.tape(), error)),
        }
    }
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        if group_size != 1 {
            return fail(
                logits.tape(),
                Error::invalid_argument(
                    self.name(),
                    format!(
                        "Bernoulli estimators treat every column as one binary unit: \
                         group_size must be 1, got {group_size}"
                    ),
                ),
            );
        }
        let shape = logits.shape();
        let noise = super::noise::logistic(shape.rows, shape.cols, rng);
        self.sample_with_noise(logits, &noise)
    }
}
