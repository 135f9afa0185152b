//! VIMCO-style multi-sample score function with leave-one-out baselines (Mnih and
//! Rezende, ICML 2016).
//!
//! Draw `m >= 2` independent samples `z_1..z_m` per example. The objective is the
//! average cost `(1/m) sum_j f(z_j)`, an unbiased estimate of `E[f(z)]`, and each
//! sample's learning signal is its cost minus the mean cost of the *other* samples:
//!
//! ```text
//! g = (1/m) sum_j ( f(z_j) - (1/(m-1)) sum_{i != j} f(z_i) ) d log q(z_j)
//! ```
//!
//! **Unbiased**: the baseline of sample `j` is built only from samples independent of
//! `z_j`, so it has zero mean against `d log q(z_j)`. For an objective linear in the
//! samples, as this average is, VIMCO's rule "replace the `j`-th term by the mean of the
//! others" gives exactly this baseline (the log-mean-exp bound of the paper is the
//! nonlinear case; the Gumbel-Softmax paper quotes this simplified form). Variance: an
//! input-dependent, sample-based baseline at no extra modelling cost, at the price of
//! `m` cost evaluations per example; the `m` samples also average each other's noise.
//!
//! # Batch layout
//! The cost closure is called once on a `[batch * m, N*K]` sample, **example-major**:
//! row `b * m + j` is sample `j` of example `b`. A cost that needs per-example data
//! (a decoder's targets `x [batch, D]`) must repeat row `b` of its data `m` times, e.g.
//! with a constant `[batch * m, batch]` 0/1 selection matrix `S` (`S[b*m + j, b] = 1`)
//! as `S.matmul(x)`. [`Estimate::sample`] and [`Estimate::cost`] have `batch * m` rows;
//! the loss is `mean(cost)` over them.

use rand::RngCore;

use super::{
    constant_from, poisoned_estimate, read_logits, sample_one_hot, score_function_term, values_f64,
};
use crate::estimators::{Estimate, GradientEstimator, check_cost_shape};
use crate::float::Float;
use crate::tape::Var;

/// The multi-sample leave-one-out estimator with `num_samples` samples per example.
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::Vimco;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(5);
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(2, 2, vec![0.0, 0.3, 0.0, -0.3])?);
/// let pick = tape.constant(&Tensor::from_vec(2, 1, vec![0.0, 1.0])?);
/// let estimate = Vimco::new(4).estimate(logits, 2, &mut |z| (z.matmul(pick) - 0.45).square(), &mut rng);
/// assert_eq!(estimate.cost.shape(), gumbelgrad::Shape::new(8, 1)); // 2 examples x 4 samples
/// tape.backward(estimate.loss)?;
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Vimco {
    /// Samples per example, `m >= 2`.
    pub num_samples: usize,
}

impl Vimco {
    /// VIMCO with `num_samples` samples per example (values below 2 are raised to 2:
    /// a leave-one-out baseline needs another sample).
    pub fn new(num_samples: usize) -> Self {
        Vimco {
            num_samples: num_samples.max(2),
        }
    }
}

impl<T: Float> GradientEstimator<T> for Vimco {
    fn name(&self) -> &'static str {
        "vimco"
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
        if group_size == 1 {
            return super::bernoulli_as_categorical(logits, cost, rng, |pairs, cost, rng| {
                <Self as GradientEstimator<T>>::estimate(self, pairs, 2, cost, rng)
            });
        }
        let values = match read_logits(logits, group_size, "vimco") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let m = self.num_samples.max(2);
        let (rows, cols) = (values.rows(), values.cols());
        let samples = sample_one_hot(&values, group_size, m, rng).into_vec();
        let sample = constant_from(logits, rows * m, cols, samples);
        let cost_value = check_cost_shape(sample, cost(sample));
        let costs = values_f64(cost_value);
        if costs.len() != rows * m {
            return poisoned_estimate(cost_value);
        }
        let mut signal = vec![0.0; rows * m];
        for (group, out) in costs.chunks_exact(m).zip(signal.chunks_exact_mut(m)) {
            let total: f64 = group.iter().sum();
            for (s, &f) in out.iter_mut().zip(group) {
                *s = f - (total - f) / (m - 1) as f64;
            }
        }
        let signal = constant_from(logits, rows * m, 1, signal);
        let term = score_function_term(logits, sample, signal, group_size);
        Estimate {
            sample,
            cost: cost_value,
            loss: (cost_value + term).mean(),
        }
    }
}
