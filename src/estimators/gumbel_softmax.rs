//! The Gumbel-Softmax (Concrete) relaxation, as tape ops and as an estimator.
//!
//! Papers: Jang, Gu and Poole, *Categorical Reparameterization with Gumbel-Softmax*
//! (ICLR 2017, arXiv 1611.01144); Maddison, Mnih and Teh, *The Concrete Distribution*
//! (ICLR 2017, arXiv 1611.00712).
//!
//! A categorical sample can be written `z = one_hot(argmax_i (x_i + g_i))` with
//! Gumbel noise `g` (Gumbel-max). The argmax has no useful derivative, so Jang, Gu and
//! Poole (and Maddison, Mnih and Teh, who call it "Concrete") replace it by a softmax at
//! temperature `tau` (eq. 2 of the paper):
//!
//! `y = softmax((x + g) / tau)`, per group of `K` classes.
//!
//! `y` is a point of the simplex, a smooth function of the logits `x` for fixed noise,
//! so the ordinary chain rule gives a gradient. As `tau -> 0`, `y` tends to the one-hot
//! `z` (the relaxation's bias vanishes) but the softmax becomes a step and the gradient's
//! variance grows; as `tau -> inf`, `y` tends to the uniform vector `1/K`.
//!
//! The derivative (with `s = (x + g)/tau`):
//! `d y_i / d x_j = (1/tau) y_i (δ_ij - y_j)`, so the VJP is
//! `grad_x = (1/tau) y ⊙ (grad_y - <grad_y, y>)` per group.
//!
//! ```
//! use gumbelgrad::estimators::{gumbel_softmax, noise};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let tape = Tape::<f64>::new();
//! // one example, two categorical variables with 3 classes each
//! let logits = tape.variable(&Tensor::from_vec(1, 6, vec![1.0, 0.0, -1.0, 0.5, 0.5, 0.0])?);
//! let g = tape.constant(&noise::gumbel(1, 6, &mut rng));
//! let y = gumbel_softmax(logits, g, 0.5, 3);
//! let value = y.value()?;
//! for group in value.groups(3)? {
//!     assert!((group.iter().sum::<f64>() - 1.0).abs() < 1e-12);
//! }
//! tape.backward(y.sum())?; // softmax rows sum to 1, so this gradient is ~0
//! assert!(logits.grad().unwrap().as_slice().iter().all(|g| g.abs() < 1e-12));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use rand::RngCore;

use super::{
    Estimate, GradientEstimator, InjectedNoise, LatentKinds, fail, record_tempered,
    relaxed_estimate, same_shape_grouped,
};
use crate::error::{Result, check_temperature_for};
use crate::float::Float;
use crate::kernels::softmax::{in_group_shares, softmax_backward_groups};
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// `y = softmax((x + g) / tau)` for one group, written into `y` (max-subtracted, so
/// no input overflows: `exp((x_i + g_i - max) / tau)`).
pub(crate) fn tempered_softmax_group<T: Float>(x: &[T], g: &[T], inverse_tau: T, y: &mut [T]) {
    let max = x
        .iter()
        .zip(g)
        .fold(T::NEG_INFINITY, |m, (&a, &b)| m.max(a + b));
    let mut total = T::ZERO;
    for ((yi, &xi), &gi) in y.iter_mut().zip(x).zip(g) {
        *yi = ((xi + gi - max) * inverse_tau).exp();
        total += *yi;
    }
    let inverse_total = T::ONE / total;
    y.iter_mut().for_each(|yi| *yi *= inverse_total);
}

/// [`tempered_softmax_group`] on every group of `k` values of `x + g`, written into
/// `output`; the groups are shared among the threads ([`in_group_shares`]), each
/// computed by one thread, so the bits do not depend on the thread count.
fn tempered_softmax_groups<T: Float>(
    x: &[T],
    g: &[T],
    inverse_tau: T,
    k: usize,
    output: &mut Tensor<T>,
) {
    in_group_shares(k, [x, g], output.as_mut_slice(), |[x, g], y| {
        for ((x, g), y) in x
            .chunks_exact(k)
            .zip(g.chunks_exact(k))
            .zip(y.chunks_exact_mut(k))
        {
            tempered_softmax_group(x, g, inverse_tau, y);
        }
    });
}

/// The Gumbel-Softmax op: inputs `(logits, noise)` of equal shape `[B, N*K]`, output
/// `y = softmax((logits + noise) / tau)` per group of `K = group_size`.
///
/// Backward (both inputs, since `y` depends on `x + g`):
/// `grad_x = (1/tau) y ⊙ (grad_y - <grad_y, y>)`.
#[derive(Debug, Clone, Copy)]
pub struct GumbelSoftmax<T: Float> {
    /// The temperature `tau > 0`.
    pub temperature: T,
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for GumbelSoftmax<T> {
    fn name(&self) -> &'static str {
        "gumbel_softmax"
    }
    fn describe(&self) -> String {
        format!(
            "gumbel_softmax(tau={}, group={})",
            self.temperature, self.group_size
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("gumbel_softmax", inputs, 2)?;
        check_temperature_for::<T>("gumbel_softmax", self.temperature.to_f64())?;
        same_shape_grouped("gumbel_softmax", inputs[0], inputs[1], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let (x, g) = (inputs[0].as_slice(), inputs[1].as_slice());
        tempered_softmax_groups(x, g, T::ONE / self.temperature, self.group_size, output);
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let inverse_tau = T::ONE / self.temperature;
        for grad in grad_inputs.iter_mut().flatten() {
            softmax_backward_groups(
                output.as_slice(),
                grad_output.as_slice(),
                grad.as_mut_slice(),
                self.group_size,
                inverse_tau,
            );
        }
    }
}

/// Gumbel-Softmax with the temperature as a third input, a `1x1` tensor, so that a
/// learnable `tau` receives a gradient.
///
/// With `s = (x + g)/tau` and `y = softmax(s)`: `d s / d tau = -s / tau`, hence
/// `d y / d tau = -(1/tau) y ⊙ (s - <s, y>)` and
/// `grad_tau = -(1/tau) sum_groups (<grad_y ⊙ y, s> - <grad_y, y> <s, y>)`.
/// The gradients for `x` and `g` are those of [`GumbelSoftmax`].
#[derive(Debug, Clone, Copy)]
pub struct GumbelSoftmaxLearnedTemperature {
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for GumbelSoftmaxLearnedTemperature {
    fn name(&self) -> &'static str {
        "gumbel_softmax_learned_tau"
    }
    fn describe(&self) -> String {
        format!("gumbel_softmax_learned_tau(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let name = "gumbel_softmax_learned_tau";
        expect_arity(name, inputs, 3)?;
        if inputs[2] != Shape::SCALAR {
            return Err(crate::Error::shape_mismatch(
                name,
                inputs[0],
                inputs[2],
                "the temperature must be a 1x1 tensor",
            ));
        }
        same_shape_grouped(name, inputs[0], inputs[1], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let (x, g) = (inputs[0].as_slice(), inputs[1].as_slice());
        let inverse_tau = T::ONE / inputs[2].as_slice()[0];
        tempered_softmax_groups(x, g, inverse_tau, self.group_size, output);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let k = self.group_size;
        let tau = inputs[2].as_slice()[0];
        let inverse_tau = T::ONE / tau;
        let [grad_x, grad_g, grad_tau] = grad_inputs else {
            unreachable!("three inputs")
        };
        for grad in [grad_x, grad_g].into_iter().flatten() {
            softmax_backward_groups(
                output.as_slice(),
                grad_output.as_slice(),
                grad.as_mut_slice(),
                k,
                inverse_tau,
            );
        }
        if let Some(grad_tau) = grad_tau.as_deref_mut() {
            let mut total = T::ZERO;
            for (((x, g), y), gy) in inputs[0]
                .as_slice()
                .chunks_exact(k)
                .zip(inputs[1].as_slice().chunks_exact(k))
                .zip(output.as_slice().chunks_exact(k))
                .zip(grad_output.as_slice().chunks_exact(k))
            {
                // s is shifted by the group max: <s - c, y> terms cancel the shift,
                // and the shift keeps the products small.
                let max = x
                    .iter()
                    .zip(g)
                    .fold(T::NEG_INFINITY, |m, (&a, &b)| m.max(a + b));
                let mut gy_y_s = T::ZERO;
                let mut gy_y = T::ZERO;
                let mut s_y = T::ZERO;
                for i in 0..k {
                    let s = (x[i] + g[i] - max) * inverse_tau;
                    gy_y_s += gy[i] * y[i] * s;
                    gy_y += gy[i] * y[i];
                    s_y += s * y[i];
                }
                total += gy_y_s - gy_y * s_y;
            }
            grad_tau.as_mut_slice()[0] += -inverse_tau * total;
        }
    }
}

/// The log-space ("ExpConcrete", Maddison et al.) relaxation: inputs `(logits,
/// noise)`, output `log y = s - logsumexp(s)` with `s = (x + g)/tau`, per group.
///
/// Working with `log y` avoids the underflow of small `y_i` at low temperature, which
/// makes its log-density (`density::exp_concrete_log_density`) usable.
/// Backward: `d log y_i / d s_j = δ_ij - y_j`, so
/// `grad_x = (1/tau) (grad - y * sum(grad))` per group, with `y = exp(output)`.
#[derive(Debug, Clone, Copy)]
pub struct ExpConcrete<T: Float> {
    /// The temperature `tau > 0`.
    pub temperature: T,
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for ExpConcrete<T> {
    fn name(&self) -> &'static str {
        "exp_concrete"
    }
    fn describe(&self) -> String {
        format!(
            "exp_concrete(tau={}, group={})",
            self.temperature, self.group_size
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("exp_concrete", inputs, 2)?;
        check_temperature_for::<T>("exp_concrete", self.temperature.to_f64())?;
        same_shape_grouped("exp_concrete", inputs[0], inputs[1], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let k = self.group_size;
        let inverse_tau = T::ONE / self.temperature;
        for ((x, g), out) in inputs[0]
            .as_slice()
            .chunks_exact(k)
            .zip(inputs[1].as_slice().chunks_exact(k))
            .zip(output.as_mut_slice().chunks_exact_mut(k))
        {
            for ((o, &xi), &gi) in out.iter_mut().zip(x).zip(g) {
                *o = (xi + gi) * inverse_tau;
            }
            let lse = crate::kernels::softmax::logsumexp(out);
            out.iter_mut().for_each(|o| *o -= lse);
        }
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let k = self.group_size;
        let inverse_tau = T::ONE / self.temperature;
        for grad in grad_inputs.iter_mut().flatten() {
            for ((gx, log_y), go) in grad
                .as_mut_slice()
                .chunks_exact_mut(k)
                .zip(output.as_slice().chunks_exact(k))
                .zip(grad_output.as_slice().chunks_exact(k))
            {
                let total: T = go.iter().copied().sum();
                for ((gxi, &goi), &log_yi) in gx.iter_mut().zip(go).zip(log_y) {
                    *gxi += inverse_tau * (goi - log_yi.exp() * total);
                }
            }
        }
    }
}

/// `y = softmax((logits + noise) / temperature)` per group of `group_size`: records a
/// [`GumbelSoftmax`] op. An invalid temperature (`<= 0`, NaN, infinite) is stored on
/// the tape as [`Error::InvalidTemperature`](crate::Error::InvalidTemperature).
pub fn gumbel_softmax<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    record_tempered(
        "gumbel_softmax",
        &[logits, noise],
        temperature,
        |temperature| GumbelSoftmax {
            temperature,
            group_size,
        },
    )
}

/// Gumbel-Softmax with a learnable temperature, a `1x1` variable (see
/// [`GumbelSoftmaxLearnedTemperature`]). The temperature's current value is checked:
/// `<= 0` or NaN is stored on the tape as an
/// [`Error::InvalidTemperature`](crate::Error::InvalidTemperature). Parametrising
/// `temperature = exp(log_temperature)` (see
/// [`LearnableTemperature`](super::LearnableTemperature)) keeps it positive.
pub fn gumbel_softmax_learned_temperature<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: Var<'t, T>,
    group_size: usize,
) -> Var<'t, T> {
    let name = "gumbel_softmax_learned_tau";
    if let Ok(Ok(value)) = temperature.with_value(|t| t.to_scalar())
        && let Err(error) = check_temperature_for::<T>(name, value.to_f64())
    {
        return fail(logits.tape(), error);
    }
    logits.tape().record(
        GumbelSoftmaxLearnedTemperature { group_size },
        &[logits, noise, temperature],
    )
}

/// `log y = s - logsumexp(s)`, `s = (logits + noise)/temperature` per group: records
/// an [`ExpConcrete`] op (invalid temperatures become a tape error).
pub fn exp_concrete<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    record_tempered(
        "exp_concrete",
        &[logits, noise],
        temperature,
        |temperature| ExpConcrete {
            temperature,
            group_size,
        },
    )
}

/// The Gumbel-Softmax estimator (§2.1 of the paper): evaluate the cost at the relaxed
/// sample `y = softmax((logits + g)/tau)` and backpropagate through it.
///
/// **Biased** for the discrete objective `E_z[f(z)]`: it is the exact gradient of the
/// relaxed objective `E_g[f(y)]`, a different function of the logits (even for a
/// linear `f`, since `E[y] != softmax(logits)` in general). The bias shrinks as
/// `tau -> 0` while the variance grows.
/// The cost sees a non-one-hot `y`, so `f` must accept points of the simplex.
#[derive(Debug, Clone)]
pub struct GumbelSoftmaxEstimator<T: Float> {
    temperature: f64,
    last_noise: Option<Tensor<T>>,
}

impl<T: Float> GumbelSoftmaxEstimator<T> {
    /// A Gumbel-Softmax estimator at `temperature` (an error unless finite and `> 0`).
    pub fn new(temperature: f64) -> Result<Self> {
        check_temperature_for::<T>("GumbelSoftmaxEstimator", temperature)?;
        Ok(GumbelSoftmaxEstimator {
            temperature,
            last_noise: None,
        })
    }
    /// The current temperature.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }
    /// Changes the temperature (for schedules); rejects invalid values.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<T>("GumbelSoftmaxEstimator", temperature)?;
        self.temperature = temperature;
        Ok(())
    }
    /// The Gumbel noise used by the last sample, shaped like the logits.
    pub fn last_noise(&self) -> Option<&Tensor<T>> {
        self.last_noise.as_ref()
    }
    /// The relaxed sample for the given noise (no randomness): `softmax((logits +
    /// noise)/tau)`.
    pub fn sample_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &Tensor<T>,
    ) -> Var<'t, T> {
        let g = logits.tape().constant(noise);
        self.last_noise = Some(noise.clone());
        gumbel_softmax(logits, g, self.temperature, group_size)
    }
}

impl<T: Float> GradientEstimator<T> for GumbelSoftmaxEstimator<T> {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(self.clone()))
    }

    fn name(&self) -> &'static str {
        "gumbel-softmax"
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
        Some(self.temperature)
    }
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        GumbelSoftmaxEstimator::set_temperature(self, temperature)
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
    /// At the Gumbel noise of [`InjectedNoise::Uniforms`] or [`InjectedNoise::Gumbel`].
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        _rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        match noise.gumbel_noise(logits.shape(), "gumbel-softmax") {
            Ok(g) => relaxed_estimate(self.sample_with_noise(logits, group_size, &g.cast()), cost),
            Err(error) => super::score::poisoned_estimate(fail(logits.tape(), error)),
        }
    }
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        // Draw into the buffer kept from the last call (no allocation once warm).
        let shape = logits.shape();
        let mut noise = match self.last_noise.take() {
            Some(buffer) if buffer.shape() == shape => buffer,
            _ => Tensor::zeros(shape.rows, shape.cols),
        };
        super::noise::fill_gumbel(&mut noise, rng);
        let g = logits.tape().constant(&noise);
        self.last_noise = Some(noise);
        gumbel_softmax(logits, g, self.temperature, group_size)
    }
}
