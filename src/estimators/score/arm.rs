//! ARM (Yin and Zhou, "ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary
//! Networks", ICLR 2019, arXiv 1807.11143) and DisARM (Dong, Mnih and Tucker, "DisARM:
//! An Antithetic Gradient Estimator for Binary Latent Variables", NeurIPS 2020, arXiv
//! 2006.10680): antithetic estimators for binary units, and for categorical groups by
//! stick-breaking.
//!
//! For `N` Bernoulli units with logits `phi` and one uniform vector `u ~ U(0, 1)^N`, the
//! antithetic pair
//!
//! ```text
//! b1 = 1[u > sigmoid(-phi)],     b2 = 1[u < sigmoid(phi)]
//! ```
//!
//! has each member distributed as `Bernoulli(sigmoid(phi))` (`b2` is `b1` at `1 - u`).
//! The cost is evaluated at both, and the estimate for unit `v` is
//!
//! ```text
//! ARM:     g_v = (f(b1) - f(b2)) (u_v - 1/2)
//! DisARM:  g_v = 1/2 (f(b1) - f(b2)) (-1)^{b2_v} 1[b1_v != b2_v] sigmoid(|phi_v|)
//! ```
//!
//! DisARM is ARM with `u_v` integrated out given the pair `(b1_v, b2_v)` (a
//! Rao-Blackwellisation), so it has the same mean and never more variance per unit;
//! its estimate for a unit is zero whenever the pair agrees on that unit.
//! One-dimensional check of both means: with `p = sigmoid(phi)`, each equals
//! `p (1 - p) (f(1) - f(0)) = d E[f] / d phi`; the tests check the `N`-dimensional case
//! against enumeration. **Unbiased**, two cost evaluations per example, one uniform per
//! unit, no temperature; the cost need not be differentiable.
//!
//! On the tape: the logits receive the per-example estimate through an
//! [`inject_gradient`] node; the reported cost is the mean of
//! the two costs, `(f(b1) + f(b2)) / 2` (an unbiased estimate of `E[f]`, so the cost's own
//! parameters get the average of their gradients at the two samples), and
//! [`Estimate::sample`] is `b1`.
//!
//! # Categorical groups, by stick-breaking
//! A categorical `z ~ softmax(theta)` over `K` classes is the first success of `K - 1`
//! *independent* bits `c_k ~ Bernoulli(sigmoid(eta_k))`,
//! `eta_k = theta_k - logsumexp_{j > k} theta_j` (so `sigmoid(eta_k) = P(z = k | z >= k)`;
//! no success means class `K`). The cost is a function of those bits, so the binary
//! estimator on the `N (K - 1)` bits of a row is unbiased for `d E[f] / d eta`, and the
//! chain rule through `eta(theta)` gives the gradient for the logits. This is the
//! stick-breaking reduction of Dong, Mnih and Tucker's coupled estimators (arXiv
//! 2106.08056) *without* their importance weights and logit sorting, which reduce the
//! variance further (bits after the first success do not change the cost but still
//! carry antithetic noise here). `K = 2` is the binary estimator on `theta_0 - theta_1`.
//! ARSM and CARMS are not implemented.
//!
//! `group_size = 1` means binary units (`logits [batch, N]`, samples of zeros and
//! ones); any other `group_size` means categorical groups, samples one-hot.

use rand::RngCore;

use super::{constant_from, inject_gradient, poisoned_estimate, read_logits, values_f64};
use crate::estimators::{Estimate, GradientEstimator, check_cost_shape, noise};
use crate::float::Float;
use crate::kernels::softmax::logsumexp;
use crate::ops::unary::sigmoid;
use crate::tape::Var;
use crate::tensor::Tensor;

/// Which antithetic estimator an [`ArmEstimator`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmKind {
    /// ARM: `(f(b1) - f(b2)) (u - 1/2)`.
    Arm,
    /// DisARM: ARM with the uniform integrated out given the pair.
    DisArm,
}

/// ARM or DisARM, for binary units or categorical groups (see the module documentation).
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::ArmEstimator;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let tape = Tape::<f64>::new();
/// // two examples, three binary units each
/// let logits = tape.variable(&Tensor::from_vec(2, 3, vec![0.5, -1.0, 0.0, 2.0, 0.1, -0.3])?);
/// let target = tape.constant(&Tensor::from_vec(1, 3, vec![0.45, 0.1, 0.9])?);
/// let mut disarm = ArmEstimator::disarm();
/// let estimate = disarm.estimate(logits, 1, &mut |b| (b - target).square().sum_cols(), &mut rng);
/// tape.backward(estimate.loss)?;
/// assert_eq!(logits.grad().unwrap().shape(), gumbelgrad::Shape::new(2, 3));
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmEstimator {
    kind: ArmKind,
}

impl ArmEstimator {
    /// The estimator of the given kind.
    pub fn new(kind: ArmKind) -> Self {
        ArmEstimator { kind }
    }
    /// ARM (Yin and Zhou 2019).
    pub fn arm() -> Self {
        ArmEstimator::new(ArmKind::Arm)
    }
    /// DisARM (Dong, Mnih and Tucker 2020).
    pub fn disarm() -> Self {
        ArmEstimator::new(ArmKind::DisArm)
    }
    /// Which of the two this is.
    pub fn kind(&self) -> ArmKind {
        self.kind
    }
    /// The estimator's name: `"arm"` or `"disarm"`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ArmKind::Arm => "arm",
            ArmKind::DisArm => "disarm",
        }
    }

    /// The per-unit estimate for one example from the uniforms `u`, the logits `phi`,
    /// the pair `(b1, b2)` and the cost difference `f(b1) - f(b2)`, written into `out`.
    pub fn unit_estimates(
        &self,
        u: &[f64],
        phi: &[f64],
        b1: &[f64],
        b2: &[f64],
        difference: f64,
        out: &mut [f64],
    ) {
        for v in 0..out.len() {
            out[v] = match self.kind {
                ArmKind::Arm => difference * (u[v] - 0.5),
                ArmKind::DisArm => {
                    if b1[v] == b2[v] {
                        0.0
                    } else {
                        0.5 * difference * (1.0 - 2.0 * b2[v]) * sigmoid(phi[v].abs())
                    }
                }
            };
        }
    }
}

/// The antithetic pair `(1[u > sigmoid(-phi)], 1[u < sigmoid(phi)])` for one unit.
pub(crate) fn antithetic_pair(u: f64, phi: f64) -> (f64, f64) {
    let on = |c: bool| if c { 1.0 } else { 0.0 };
    (on(u > sigmoid(-phi)), on(u < sigmoid(phi)))
}

/// The stick-breaking logits of every group of `group_size` logits `theta`:
/// `eta_k = theta_k - logsumexp_{j > k} theta_j` for `k < K - 1`, so that
/// `sigmoid(eta_k) = P(z = k | z >= k)`. Returns `[rows, groups * (K - 1)]`.
pub fn stick_breaking_logits(theta: &Tensor<f64>, group_size: usize) -> Tensor<f64> {
    let k = group_size;
    let groups = theta.cols() / k;
    let mut out = Vec::with_capacity(theta.rows() * groups * (k - 1));
    for group in theta.as_slice().chunks_exact(k) {
        for i in 0..k - 1 {
            out.push(group[i] - logsumexp(&group[i + 1..]));
        }
    }
    Tensor::from_vec(theta.rows(), groups * (k - 1), out).expect("sizes")
}

/// One-hot samples from stick-breaking bits: per group, the first class `k < K - 1`
/// whose bit is 1, or the last class if none is.
pub fn first_success_one_hot(bits: &[f64], group_size: usize) -> Vec<f64> {
    let k = group_size;
    let mut out = Vec::with_capacity(bits.len() / (k - 1) * k);
    for group in bits.chunks_exact(k - 1) {
        let class = group.iter().position(|&b| b == 1.0).unwrap_or(k - 1);
        out.extend((0..k).map(|i| if i == class { 1.0 } else { 0.0 }));
    }
    out
}

/// `J^T g` for the map [`stick_breaking_logits`], group by group: with
/// `s^(i)_j = exp(theta_j - logsumexp_{l > i} theta_l)` for `j > i`,
/// `(J^T g)_j = g_j [j < K - 1] - sum_{i < j} g_i s^(i)_j`.
pub fn stick_breaking_vjp(theta: &[f64], bit_gradient: &[f64], group_size: usize) -> Vec<f64> {
    let k = group_size;
    let mut out = vec![0.0; theta.len()];
    for ((x, g), o) in theta
        .chunks_exact(k)
        .zip(bit_gradient.chunks_exact(k - 1))
        .zip(out.chunks_exact_mut(k))
    {
        for i in 0..k - 1 {
            o[i] += g[i];
            let tail = logsumexp(&x[i + 1..]);
            for j in i + 1..k {
                o[j] -= g[i] * (x[j] - tail).exp();
            }
        }
    }
    out
}

impl<T: Float> GradientEstimator<T> for ArmEstimator {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(*self))
    }

    fn name(&self) -> &'static str {
        ArmEstimator::name(self)
    }

    fn is_unbiased(&self) -> bool {
        true
    }

    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let name = ArmEstimator::name(self);
        let theta = match read_logits(logits, group_size, name) {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        // The independent bits and their logits: the units themselves, or the
        // stick-breaking bits of every categorical group.
        let phi = if group_size == 1 {
            theta.clone()
        } else {
            stick_breaking_logits(&theta, group_size)
        };
        let (rows, cols) = (theta.rows(), theta.cols());
        let bits = phi.cols();
        let u = noise::uniform::<f64, _>(rows, bits, rng);
        let mut b1 = vec![0.0; rows * bits];
        let mut b2 = vec![0.0; rows * bits];
        for (i, (&u, &x)) in u.as_slice().iter().zip(phi.as_slice()).enumerate() {
            (b1[i], b2[i]) = antithetic_pair(u, x);
        }
        let decode = |b: &[f64]| {
            if group_size == 1 {
                b.to_vec()
            } else {
                first_success_one_hot(b, group_size)
            }
        };
        let first = constant_from(logits, rows, cols, decode(&b1));
        let second = constant_from(logits, rows, cols, decode(&b2));
        let f1 = check_cost_shape(first, cost(first));
        let f2 = check_cost_shape(second, cost(second));
        let (c1, c2) = (values_f64(f1), values_f64(f2));
        if c1.len() != rows {
            return poisoned_estimate(f1);
        }
        if c2.len() != rows {
            return poisoned_estimate(f2);
        }
        let mut bit_gradient = vec![0.0; rows * bits];
        for r in 0..rows {
            let span = r * bits..(r + 1) * bits;
            self.unit_estimates(
                &u.as_slice()[span.clone()],
                &phi.as_slice()[span.clone()],
                &b1[span.clone()],
                &b2[span.clone()],
                c1[r] - c2[r],
                &mut bit_gradient[span],
            );
        }
        let gradient = if group_size == 1 {
            bit_gradient
        } else {
            stick_breaking_vjp(theta.as_slice(), &bit_gradient, group_size)
        };
        let gradient = constant_from(logits, rows, cols, gradient);
        let mean_cost = (f1 + f2).scale(T::from_f64(0.5));
        Estimate {
            sample: first,
            cost: mean_cost,
            loss: (mean_cost + inject_gradient(logits, gradient)).mean(),
        }
    }
}
