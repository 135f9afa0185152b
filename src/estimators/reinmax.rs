//! ReinMax: second-order straight-through (Liu, Dong, Liu, Yu and Gao, "Bridging
//! Discrete and Backpropagation: Straight-Through and Beyond", NeurIPS 2023, arXiv
//! 2304.08612).
//!
//! Straight-through back-propagates as if the sample were its mean, a first-order
//! approximation of the gradient. ReinMax uses Heun's method (the trapezoidal rule)
//! instead, needing no second derivatives:
//!
//! ```text
//! forward:   D ~ Categorical(pi_0),  pi_0 = softmax(x)          (no temperature, no Gumbel noise)
//! backward:  grad_x = 2 J(pi_1) grad_D - 1/2 J(pi_0) grad_D,
//!            pi_1 = (softmax(x/tau) + D) / 2,   J(p) = diag(p) - p p^T
//! ```
//!
//! `tau` enters only through `pi_1`: there is no `1/tau` factor (unlike ST-GS), and the
//! sample does not depend on it. (The reference package rejects `tau < 1` and its
//! authors recommend `tau >= 1`; any `tau > 0` is accepted here.) The reference
//! implementation also centres the gradient over each group, a no-op in exact
//! arithmetic since `1^T J(p) = 0`; it is not repeated here.
//!
//! **Biased**, but to second order: for a cost **quadratic** in `z` (any quadratic form
//! over all groups) and `tau = 1`, `E[grad_x]` is *exactly* the gradient of `E[f]`.
//! With `g_i = grad f(e_i)`, the true gradient is
//! `1/2 sum_i pi_i (e_i e_i^T - e_i pi^T - pi e_i^T + diag(pi)) g_i` (write
//! `f(e_i) - f(e_j) = 1/2 (g_i + g_j)^T (e_i - e_j)`, exact for quadratics), and at
//! `D = e_i`, `2 J((pi + e_i)/2) - 1/2 J(pi)` is that same matrix. The tests check it by
//! enumeration, and measure the bias on a non-quadratic cost against straight-through's.
//! The estimate is a deterministic function of `D`, so its expectation is a finite sum
//! over the configurations. One cost evaluation, one categorical draw per group.
//!
//! Binary units (`group_size = 1`) run as two-class categoricals with logits `[0, phi]`
//! (the sample is the `b` column of each pair): with `p_0 = sigmoid(phi)` and
//! `p_1 = (b + sigmoid(phi/tau))/2`, `grad_phi = f'(b) (2 p_1 (1 - p_1) - p_0 (1 - p_0)/2)`.

use rand::RngCore;

use super::{
    Estimate, GradientEstimator, InjectedNoise, LatentKinds, OneHotNode, fail, one_hot_estimate,
    one_hot_estimate_with_noise, one_hot_node, one_hot_sample, sample_like_logits,
};
use crate::error::{Result, check_temperature_for};
use crate::float::Float;
use crate::kernels::softmax::softmax_groups;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// Adds `scale * J(p) g = scale * p ⊙ (g - <g, p>)` to `out`.
fn add_softmax_jacobian<T: Float>(p: &[T], g: &[T], scale: T, out: &mut [T]) {
    let inner: T = g.iter().zip(p).map(|(&a, &b)| a * b).sum();
    for i in 0..p.len() {
        out[i] += scale * p[i] * (g[i] - inner);
    }
}

/// The ReinMax node: inputs `logits [B, N*K]` and `sample [B, N*K]` (one-hot); output
/// the sample.
///
/// Backward: `grad_logits += 2 J(pi_1) grad - 1/2 J(pi_0) grad` per group, with
/// `pi_0 = softmax(logits)` and `pi_1 = (softmax(logits/tau) + sample)/2` recomputed.
/// The sample gets no gradient.
#[derive(Debug, Clone, Copy)]
pub struct ReinMaxOp<T: Float> {
    /// The temperature inside `pi_1`, `tau > 0`.
    pub temperature: T,
    /// Classes per categorical variable.
    pub group_size: usize,
}

impl<T: Float> Op<T> for ReinMaxOp<T> {
    fn name(&self) -> &'static str {
        "reinmax"
    }
    fn describe(&self) -> String {
        format!(
            "reinmax(tau={}, group={})",
            self.temperature, self.group_size
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("reinmax", inputs, 2)?;
        check_temperature_for::<T>("reinmax", self.temperature.to_f64())?;
        sample_like_logits("reinmax", inputs[0], inputs[1], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        output.as_mut_slice().copy_from_slice(inputs[1].as_slice());
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let Some(grad) = grad_inputs[0].as_deref_mut() else {
            return;
        };
        let (logits, sample) = (inputs[0], inputs[1]);
        let k = self.group_size;
        let inverse_tau = T::ONE / self.temperature;
        let half = T::from_f64(0.5);
        let two = T::from_f64(2.0);
        let (mut pi0, mut pi1, mut scaled) = (vec![T::ZERO; k], vec![T::ZERO; k], vec![T::ZERO; k]);
        for (((x, d), go), gx) in logits
            .as_slice()
            .chunks_exact(k)
            .zip(sample.as_slice().chunks_exact(k))
            .zip(grad_output.as_slice().chunks_exact(k))
            .zip(grad.as_mut_slice().chunks_exact_mut(k))
        {
            softmax_groups(x, &mut pi0, k);
            for (s, &xi) in scaled.iter_mut().zip(x) {
                *s = xi * inverse_tau;
            }
            softmax_groups(&scaled, &mut pi1, k);
            for (p, &di) in pi1.iter_mut().zip(d) {
                *p = half * (*p + di);
            }
            add_softmax_jacobian(&pi1, go, two, gx);
            add_softmax_jacobian(&pi0, go, -half, gx);
        }
    }
}

/// Records a [`ReinMaxOp`] (invalid temperatures and shapes become a tape error).
pub fn reinmax<'t, T: Float>(
    logits: Var<'t, T>,
    sample: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    if let Err(error) = check_temperature_for::<T>("reinmax", temperature) {
        return fail(logits.tape(), error);
    }
    logits.tape().record(
        ReinMaxOp {
            temperature: T::from_f64(temperature),
            group_size,
        },
        &[logits, sample],
    )
}

/// The ReinMax estimator (see the module documentation). **Biased**; exact in
/// expectation for quadratic costs at `temperature = 1`.
///
/// ```
/// use gumbelgrad::estimators::{GradientEstimator, ReinMax};
/// use gumbelgrad::{Tape, Tensor};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let mut estimator = ReinMax::new(1.3)?;
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(1, 3, vec![0.5, -0.2, 1.0])?);
/// let weights = tape.constant(&Tensor::from_vec(1, 3, vec![1.0, -2.0, 0.5])?);
/// let estimate = estimator.estimate(logits, 3, &mut |z| (z * weights).sum_cols().square(), &mut rng);
/// assert_eq!(estimate.sample.value()?.sum(), 1.0); // the forward is one-hot
/// tape.backward(estimate.loss)?;
/// assert!(ReinMax::new(0.0).is_err());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReinMax {
    temperature: f64,
}

impl ReinMax {
    /// ReinMax at `temperature` (an error unless finite and positive; the authors
    /// recommend `temperature >= 1`).
    pub fn new(temperature: f64) -> Result<Self> {
        check_temperature_for::<f64>("ReinMax::new", temperature)?;
        Ok(ReinMax { temperature })
    }
    /// The estimator's name, `"reinmax"`.
    pub fn name(&self) -> &'static str {
        "reinmax"
    }
    /// The temperature inside `pi_1`.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }
    /// Changes the temperature (for schedules); rejects invalid values.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<f64>("ReinMax::set_temperature", temperature)?;
        self.temperature = temperature;
        Ok(())
    }
}

impl OneHotNode for ReinMax {
    fn node<'t, T: Float>(
        &self,
        logits: Var<'t, T>,
        group_size: usize,
        draw: &mut dyn FnMut(&Tensor<f64>) -> Result<Tensor<f64>>,
    ) -> Var<'t, T> {
        one_hot_node(logits, draw, |logits, sample| {
            reinmax(logits, sample, self.temperature, group_size)
        })
    }
}

impl<T: Float> GradientEstimator<T> for ReinMax {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(self.clone()))
    }

    fn name(&self) -> &'static str {
        ReinMax::name(self)
    }
    fn is_unbiased(&self) -> bool {
        false
    }
    fn gradient_through_sample(&self) -> bool {
        true
    }
    /// Categorical groups, and binary units as two-class groups.
    fn latent_kinds(&self) -> LatentKinds {
        LatentKinds::BOTH
    }
    fn temperature(&self) -> Option<f64> {
        Some(ReinMax::temperature(self))
    }
    /// Checks the temperature for `T` (the tape's float type), then sets it.
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<T>("ReinMax::set_temperature", temperature)?;
        ReinMax::set_temperature(self, temperature)
    }
    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        one_hot_estimate(self, logits, group_size, cost, rng)
    }
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        one_hot_sample(self, logits, group_size, rng)
    }
    /// At a given sample, or at the Gumbel-max sample of given noise (ReinMax itself
    /// draws no noise; binary units take the two-class layout of [`InjectedNoise`]).
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        _rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        one_hot_estimate_with_noise(self, ReinMax::name(self), logits, group_size, noise, cost)
    }
}
