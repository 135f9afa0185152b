//! ARM (Yin and Zhou, "ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary
//! Networks", ICLR 2019, arXiv 1807.11143) and DisARM (Dong, Mnih and Tucker, "DisARM:
//! An Antithetic Gradient Estimator for Binary Latent Variables", NeurIPS 2020, arXiv
//! 2006.10680): antithetic estimators for binary units.
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
//! [`inject_gradient`](super::inject_gradient) node; the reported cost is the mean of
//! the two costs, `(f(b1) + f(b2)) / 2` (an unbiased estimate of `E[f]`, so the cost's own
//! parameters get the average of their gradients at the two samples), and
//! [`Estimate::sample`] is `b1`.
//!
//! Binary units only: `group_size` must be 1 (`logits [batch, N]`, samples of zeros
//! and ones). The categorical counterparts (ARSM, CARMS, categorical DisARM) are not
//! implemented here.

use rand::RngCore;

use super::{constant_from, inject_gradient, poisoned_estimate, values_f64};
use crate::error::Error;
use crate::estimators::{Estimate, GradientEstimator, check_cost_shape, fail, noise};
use crate::float::Float;
use crate::ops::unary::sigmoid;
use crate::tape::Var;

/// Which antithetic estimator an [`ArmEstimator`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmKind {
    /// ARM: `(f(b1) - f(b2)) (u - 1/2)`.
    Arm,
    /// DisARM: ARM with the uniform integrated out given the pair.
    DisArm,
}

/// ARM or DisARM for binary units (see the module documentation).
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

impl<T: Float> GradientEstimator<T> for ArmEstimator {
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
        if group_size != 1 {
            let bad = fail(
                logits.tape(),
                Error::invalid_argument(
                    name,
                    format!(
                        "{name} is for binary units: group_size must be 1 (logits [batch, units]), got {group_size}"
                    ),
                ),
            );
            return poisoned_estimate(bad);
        }
        let phi = match logits.value() {
            Ok(value) => value.cast::<f64>(),
            Err(_) => return poisoned_estimate(logits),
        };
        let (rows, cols) = (phi.rows(), phi.cols());
        let u = noise::uniform::<f64, _>(rows, cols, rng);
        let mut b1 = vec![0.0; rows * cols];
        let mut b2 = vec![0.0; rows * cols];
        for (i, (&u, &x)) in u.as_slice().iter().zip(phi.as_slice()).enumerate() {
            (b1[i], b2[i]) = antithetic_pair(u, x);
        }
        let first = constant_from(logits, rows, cols, b1.clone());
        let second = constant_from(logits, rows, cols, b2.clone());
        let f1 = check_cost_shape(first, cost(first));
        let f2 = check_cost_shape(second, cost(second));
        let (c1, c2) = (values_f64(f1), values_f64(f2));
        if c1.len() != rows {
            return poisoned_estimate(f1);
        }
        if c2.len() != rows {
            return poisoned_estimate(f2);
        }
        let mut gradient = vec![0.0; rows * cols];
        for r in 0..rows {
            let span = r * cols..(r + 1) * cols;
            self.unit_estimates(
                &u.as_slice()[span.clone()],
                &phi.as_slice()[span.clone()],
                &b1[span.clone()],
                &b2[span.clone()],
                c1[r] - c2[r],
                &mut gradient[span],
            );
        }
        let gradient = constant_from(logits, rows, cols, gradient);
        let mean_cost = (f1 + f2).scale(T::from_f64(0.5));
        Estimate {
            sample: first,
            cost: mean_cost,
            loss: (mean_cost + inject_gradient(logits, gradient)).mean(),
        }
    }
}
