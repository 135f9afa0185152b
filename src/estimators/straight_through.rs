//! Straight-through estimators: a hard one-hot sample forward, a soft gradient backward.
//!
//! Papers: Bengio, Léonard and Courville, *Estimating or Propagating Gradients Through
//! Stochastic Neurons* (arXiv 1308.3432), for straight-through; Jang, Gu and Poole
//! (arXiv 1611.01144, §2.2) for straight-through Gumbel-Softmax.
//!
//! A straight-through (ST) node outputs an exact one-hot vector, so the downstream cost
//! sees a genuine discrete sample, but its backward pass pretends the node was a smooth
//! function and returns that function's gradient. Three variants:
//!
//! | op | forward | backward as if the output were |
//! |---|---|---|
//! | [`StGumbelSoftmax`] (§2.2) | `one_hot(argmax(x + g))` | `softmax((x + g)/tau)` |
//! | [`St`] (the paper's "ST", §3.1) | `one_hot(argmax(x + g))` | `softmax(x/tau)` |
//! | [`StArgmax`] | `one_hot(argmax x)` (no noise) | `softmax(x/tau)` |
//!
//! `argmax(x + g)` with Gumbel noise `g` is an exact categorical sample, and it is
//! also the argmax of the Gumbel-Softmax sample `softmax((x + g)/tau)` for every `tau`.
//! The forward writes exact zeros and ones (PyTorch's `y_hard - y.detach() + y` can
//! miss 1 by an ulp).
//!
//! All three are **biased**: the backward is the gradient of a different function than
//! the forward. Their gradients are not finite-difference checkable (the forward is
//! piecewise constant); instead the tests check that their backward equals the
//! gradient of the gradient-checked soft op it imitates.
//!
//! ```
//! use gumbelgrad::estimators::{noise, st_gumbel_softmax};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(2);
//! let tape = Tape::<f32>::new();
//! let logits = tape.variable(&Tensor::from_vec(1, 4, vec![0.5, 1.5, -1.0, 0.0])?);
//! let g = tape.constant(&noise::gumbel(1, 4, &mut rng));
//! let z = st_gumbel_softmax(logits, g, 0.5, 4);
//! let value = z.value()?;
//! assert_eq!(value.sum(), 1.0); // exactly one 1, the rest exactly 0
//! assert!(value.as_slice().iter().all(|&v| v == 0.0 || v == 1.0));
//! let weights = tape.constant(&Tensor::from_vec(1, 4, vec![1.0, 2.0, 3.0, 4.0])?);
//! tape.backward((z * weights).sum())?; // the Gumbel-Softmax gradient flows back
//! assert!(logits.grad().unwrap().as_slice().iter().any(|&d| d != 0.0));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use rand::RngCore;

use super::gumbel_softmax::tempered_softmax_group;
use super::{
    Estimate, GradientEstimator, InjectedNoise, LatentKinds, record_tempered, relaxed_estimate,
    same_shape_grouped,
};
use crate::error::{Result, check_temperature_for};
use crate::float::Float;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// Writes `one_hot(argmax_i (x_i + g_i))` (first index on ties) into `out`.
fn one_hot_of_perturbed<T: Float>(x: &[T], g: Option<&[T]>, out: &mut [T]) {
    let value = |i: usize| x[i] + g.map_or(T::ZERO, |g| g[i]);
    let mut best = 0;
    for i in 1..x.len() {
        if value(i) > value(best) {
            best = i;
        }
    }
    out.iter_mut().for_each(|o| *o = T::ZERO);
    out[best] = T::ONE;
}

/// The forward pass the three straight-through ops share: `one_hot(argmax(x + g))` for
/// every group of `group_size` (`g = 0` without noise).
fn one_hot_forward<T: Float>(
    logits: &Tensor<T>,
    noise: Option<&Tensor<T>>,
    output: &mut Tensor<T>,
    group_size: usize,
) {
    let k = group_size;
    let x = logits.as_slice().chunks_exact(k);
    let out = output.as_mut_slice().chunks_exact_mut(k);
    match noise {
        Some(g) => {
            for ((x, g), out) in x.zip(g.as_slice().chunks_exact(k)).zip(out) {
                one_hot_of_perturbed(x, Some(g), out);
            }
        }
        None => {
            for (x, out) in x.zip(out) {
                one_hot_of_perturbed(x, None, out);
            }
        }
    }
}

/// Adds `(1/tau) p ⊙ (grad - <grad, p>)` with `p = softmax((x + g)/tau)` (or
/// `softmax(x/tau)` when `g` is `None`) to `grad_x`, group by group, recomputing `p`.
/// The backward pass the three straight-through ops share.
fn soft_backward<T: Float>(
    logits: &Tensor<T>,
    noise: Option<&Tensor<T>>,
    grad_output: &Tensor<T>,
    grad: &mut Tensor<T>,
    group_size: usize,
    temperature: T,
) {
    let (x, g) = (logits.as_slice(), noise.map(Tensor::as_slice));
    let (grad_output, grad_x) = (grad_output.as_slice(), grad.as_mut_slice());
    let inverse_tau = T::ONE / temperature;
    let zeros = vec![T::ZERO; group_size];
    let mut p = vec![T::ZERO; group_size];
    for (index, (xs, (go, gx))) in x
        .chunks_exact(group_size)
        .zip(
            grad_output
                .chunks_exact(group_size)
                .zip(grad_x.chunks_exact_mut(group_size)),
        )
        .enumerate()
    {
        let gs = g.map_or(&zeros[..], |g| {
            &g[index * group_size..(index + 1) * group_size]
        });
        tempered_softmax_group(xs, gs, inverse_tau, &mut p);
        let inner: T = go.iter().zip(&p).map(|(&a, &b)| a * b).sum();
        for i in 0..group_size {
            gx[i] += inverse_tau * p[i] * (go[i] - inner);
        }
    }
}

/// Straight-through Gumbel-Softmax (§2.2): inputs `(logits, noise)`.
///
/// Forward: `z = one_hot(argmax(x + g))`, exactly one-hot.
/// Backward: the Gumbel-Softmax VJP `grad_x = (1/tau) y ⊙ (grad_z - <grad_z, y>)`
/// with `y = softmax((x + g)/tau)` recomputed from the inputs.
#[derive(Debug, Clone, Copy)]
pub struct StGumbelSoftmax<T: Float> {
    /// The temperature of the backward softmax, `tau > 0`.
    pub temperature: T,
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for StGumbelSoftmax<T> {
    fn name(&self) -> &'static str {
        "st_gumbel_softmax"
    }
    fn describe(&self) -> String {
        format!(
            "st_gumbel_softmax(tau={}, group={})",
            self.temperature, self.group_size
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("st_gumbel_softmax", inputs, 2)?;
        check_temperature_for::<T>("st_gumbel_softmax", self.temperature.to_f64())?;
        same_shape_grouped("st_gumbel_softmax", inputs[0], inputs[1], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        one_hot_forward(inputs[0], Some(inputs[1]), output, self.group_size);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        // d z / d g = d z / d x: logits and noise enter only through x + g.
        for grad in grad_inputs.iter_mut().flatten() {
            soft_backward(
                inputs[0],
                Some(inputs[1]),
                grad_output,
                grad,
                self.group_size,
                self.temperature,
            );
        }
    }
}

/// Straight-through categorical, the paper's "ST" (§3.1, after Bengio et al. 2013):
/// inputs `(logits, noise)`.
///
/// Forward: `z = one_hot(argmax(x + g))`, an exact sample from `softmax(x)`.
/// Backward: as if `z` were its (tempered) mean `p = softmax(x/tau)`:
/// `grad_x = (1/tau) p ⊙ (grad_z - <grad_z, p>)`. The noise gets no gradient.
#[derive(Debug, Clone, Copy)]
pub struct St<T: Float> {
    /// The temperature of the backward softmax (1 gives the plain mean).
    pub temperature: T,
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for St<T> {
    fn name(&self) -> &'static str {
        "st"
    }
    fn describe(&self) -> String {
        format!("st(tau={}, group={})", self.temperature, self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("st", inputs, 2)?;
        check_temperature_for::<T>("st", self.temperature.to_f64())?;
        same_shape_grouped("st", inputs[0], inputs[1], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        one_hot_forward(inputs[0], Some(inputs[1]), output, self.group_size);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            soft_backward(
                inputs[0],
                None,
                grad_output,
                grad,
                self.group_size,
                self.temperature,
            );
        }
    }
}

/// Straight-through argmax: input `logits` only, no randomness.
///
/// Forward: `z = one_hot(argmax x)` (deterministic). Backward: as if `z` were
/// `softmax(x/tau)`: `grad_x = (1/tau) p ⊙ (grad_z - <grad_z, p>)`.
#[derive(Debug, Clone, Copy)]
pub struct StArgmax<T: Float> {
    /// The temperature of the backward softmax.
    pub temperature: T,
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for StArgmax<T> {
    fn name(&self) -> &'static str {
        "st_argmax"
    }
    fn describe(&self) -> String {
        format!(
            "st_argmax(tau={}, group={})",
            self.temperature, self.group_size
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("st_argmax", inputs, 1)?;
        check_temperature_for::<T>("st_argmax", self.temperature.to_f64())?;
        same_shape_grouped("st_argmax", inputs[0], inputs[0], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        one_hot_forward(inputs[0], None, output, self.group_size);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            soft_backward(
                inputs[0],
                None,
                grad_output,
                grad,
                self.group_size,
                self.temperature,
            );
        }
    }
}

/// Records an [`StGumbelSoftmax`] op (invalid temperatures become a tape error).
pub fn st_gumbel_softmax<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    record_tempered(
        "st_gumbel_softmax",
        &[logits, noise],
        temperature,
        |temperature| StGumbelSoftmax {
            temperature,
            group_size,
        },
    )
}

/// Records an [`St`] op (invalid temperatures become a tape error).
pub fn st<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    record_tempered("st", &[logits, noise], temperature, |temperature| St {
        temperature,
        group_size,
    })
}

/// Records an [`StArgmax`] op (invalid temperatures become a tape error).
pub fn st_argmax<'t, T: Float>(
    logits: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    record_tempered("st_argmax", &[logits], temperature, |temperature| {
        StArgmax {
            temperature,
            group_size,
        }
    })
}

/// Which straight-through node an [`StraightThroughEstimator`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StraightThroughKind {
    /// [`StGumbelSoftmax`]: backward through `softmax((x + g)/tau)`.
    GumbelSoftmax,
    /// [`St`]: backward through `softmax(x/tau)`.
    Categorical,
    /// [`StArgmax`]: deterministic forward, backward through `softmax(x/tau)`.
    Argmax,
}

/// A straight-through estimator (ST-GS, ST, or ST-argmax, see [`StraightThroughKind`]):
/// the cost is evaluated at an exact one-hot sample; the gradient is that of a softmax.
///
/// **Biased** for `E_z[f(z)]` (all three). ST-GS has the Gumbel-Softmax's trade-off in
/// `tau` but a discrete forward; ST and ST-argmax have low variance (ST-argmax none at
/// all in the sample) and a bias that does not vanish as `tau` changes.
#[derive(Debug, Clone)]
pub struct StraightThroughEstimator<T: Float> {
    kind: StraightThroughKind,
    temperature: f64,
    last_noise: Option<Tensor<T>>,
}

impl<T: Float> StraightThroughEstimator<T> {
    /// A straight-through estimator of the given kind at `temperature` (an error unless
    /// finite and `> 0`).
    pub fn new(kind: StraightThroughKind, temperature: f64) -> Result<Self> {
        check_temperature_for::<T>("StraightThroughEstimator", temperature)?;
        Ok(StraightThroughEstimator {
            kind,
            temperature,
            last_noise: None,
        })
    }
    /// Which node this estimator records.
    pub fn kind(&self) -> StraightThroughKind {
        self.kind
    }
    /// The current temperature.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }
    /// Changes the temperature (for schedules); rejects invalid values.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<T>("StraightThroughEstimator", temperature)?;
        self.temperature = temperature;
        Ok(())
    }
    /// The Gumbel noise used by the last sample (`None` for ST-argmax, which has none).
    pub fn last_noise(&self) -> Option<&Tensor<T>> {
        self.last_noise.as_ref()
    }
    /// The straight-through sample for the given noise (ignored by ST-argmax).
    pub fn sample_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &Tensor<T>,
    ) -> Var<'t, T> {
        let tau = self.temperature;
        match self.kind {
            StraightThroughKind::Argmax => {
                self.last_noise = None;
                st_argmax(logits, tau, group_size)
            }
            kind => {
                self.last_noise = Some(noise.clone());
                let g = logits.tape().constant(noise);
                if kind == StraightThroughKind::GumbelSoftmax {
                    st_gumbel_softmax(logits, g, tau, group_size)
                } else {
                    st(logits, g, tau, group_size)
                }
            }
        }
    }
}

impl<T: Float> GradientEstimator<T> for StraightThroughEstimator<T> {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(self.clone()))
    }

    fn name(&self) -> &'static str {
        match self.kind {
            StraightThroughKind::GumbelSoftmax => "st-gumbel-softmax",
            StraightThroughKind::Categorical => "st",
            StraightThroughKind::Argmax => "st-argmax",
        }
    }
    fn is_unbiased(&self) -> bool {
        false
    }
    fn gradient_through_sample(&self) -> bool {
        true
    }
    fn latent_kinds(&self) -> LatentKinds {
        LatentKinds::CATEGORICAL
    }
    fn temperature(&self) -> Option<f64> {
        Some(StraightThroughEstimator::temperature(self))
    }
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        StraightThroughEstimator::set_temperature(self, temperature)
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
    /// At the Gumbel noise of [`InjectedNoise::Uniforms`] or [`InjectedNoise::Gumbel`]
    /// (which `st-argmax`, having no noise, checks and ignores).
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        _rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let name = <Self as GradientEstimator<T>>::name(self);
        match noise.gumbel_noise(logits.shape(), name) {
            Ok(g) => relaxed_estimate(self.sample_with_noise(logits, group_size, &g.cast()), cost),
            Err(error) => super::score::poisoned_estimate(super::fail(logits.tape(), error)),
        }
    }
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        let shape = logits.shape();
        let noise = if self.kind == StraightThroughKind::Argmax {
            Tensor::zeros(shape.rows, shape.cols)
        } else {
            super::noise::gumbel(shape.rows, shape.cols, rng)
        };
        self.sample_with_noise(logits, group_size, &noise)
    }
}
