//! RLOO: REINFORCE with `m` samples per example and the leave-one-out baseline (Kool,
//! van Hoof, Welling, "Buy 4 REINFORCE Samples, Get a Baseline for Free!", ICLR 2019
//! workshop DeepRLStructPred; OpenReview `r1lgTGL5DE`, no arXiv id).
//!
//! Draw `m >= 2` independent samples `z_1..z_m ~ q` per example and evaluate the cost at
//! each. Every sample's baseline is the mean cost of the *other* samples:
//!
//! ```text
//! g = (1/m) sum_j ( f(z_j) - b_j ) d log q(z_j),   b_j = (1/(m-1)) sum_{i != j} f(z_i)
//!   = (1/(m-1)) sum_j ( f(z_j) - f_bar ) d log q(z_j),   f_bar = (1/m) sum_i f(z_i)
//! ```
//!
//! with `d log q(z) / d logits = z - softmax(logits)` per group (`b - sigmoid(phi)` for a
//! Bernoulli unit). **Unbiased**: `b_j` is built from samples independent of `z_j`, so
//! `E[b_j d log q(z_j)] = E[b_j] E[d log q(z_j)] = 0`. The baseline is per *example*
//! (all the groups of a row share one cost). Variance: the baseline tracks the
//! example's own expected cost at no modelling cost, and the `m` samples average each
//! other's noise, at the price of `m` cost evaluations; there is no temperature.
//!
//! The estimate is the same as [`Vimco`](super::Vimco) with its mean objective; what
//! differs is the closure contract. RLOO calls the cost `m` times, each on an ordinary
//! `[batch, N*K]` sample, so any cost closure written for the single-sample estimators
//! (a decoder with per-example targets) works unchanged. [`Estimate::cost`] is the
//! per-example mean cost over the `m` samples (`[batch, 1]`, an unbiased estimate of
//! `E[f]` whose gradient gives the cost's own parameters the `m`-sample average of
//! their gradients), and [`Estimate::sample`] is the first of the `m` samples.
//!
//! Binary units (`group_size = 1`) run as two-class categoricals with logits
//! `[0, phi]` (see the [module documentation](super)).

use rand::RngCore;

use super::{
    constant_from, poisoned_estimate, read_logits, sample_one_hot, score_function_term, values_f64,
};
use crate::error::{Error, Result};
use crate::estimators::{Estimate, GradientEstimator, check_cost_shape};
use crate::float::Float;
use crate::tape::Var;

/// REINFORCE with `num_samples` samples per example and leave-one-out baselines.
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::Rloo;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(5);
/// let mut rloo = Rloo::new(4)?;
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(2, 3, vec![0.0, 0.3, 1.0, 0.0, -0.3, 0.2])?);
/// let weights = tape.constant(&Tensor::from_vec(3, 1, vec![1.0, 2.0, 3.0])?);
/// // the closure sees [2, 3] samples, four times
/// let estimate = rloo.estimate(logits, 3, &mut |z| z.matmul(weights).square(), &mut rng);
/// assert_eq!(estimate.cost.shape(), gumbelgrad::Shape::new(2, 1));
/// tape.backward(estimate.loss)?;
/// assert!(Rloo::new(1).is_err()); // a leave-one-out baseline needs another sample
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rloo {
    num_samples: usize,
}

impl Rloo {
    /// RLOO with `num_samples` samples per example; an [`Error::InvalidArgument`] below
    /// 2 (there is no other sample to form the baseline from).
    pub fn new(num_samples: usize) -> Result<Self> {
        if num_samples < 2 {
            return Err(Error::invalid_argument(
                "Rloo::new",
                format!("num_samples must be at least 2, got {num_samples}"),
            ));
        }
        Ok(Rloo { num_samples })
    }

    /// Samples (and cost evaluations) per example, `m >= 2`.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// The estimator's name, `"rloo"`.
    pub fn name(&self) -> &'static str {
        "rloo"
    }
}

/// The leave-one-out signals `f_j - mean_{i != j} f_i` of `m` costs.
pub(crate) fn leave_one_out(costs: &[f64]) -> Vec<f64> {
    let m = costs.len();
    let total: f64 = costs.iter().sum();
    costs
        .iter()
        .map(|&f| f - (total - f) / (m - 1) as f64)
        .collect()
}

impl<T: Float> GradientEstimator<T> for Rloo {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(*self))
    }

    fn name(&self) -> &'static str {
        Rloo::name(self)
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
        let values = match read_logits(logits, group_size, "rloo") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let m = self.num_samples;
        let (rows, cols) = (values.rows(), values.cols());
        let mut samples = Vec::with_capacity(m);
        let mut cost_vars = Vec::with_capacity(m);
        let mut costs = Vec::with_capacity(m);
        for _ in 0..m {
            let sample = sample_one_hot(&values, group_size, 1, rng).into_vec();
            let sample = constant_from(logits, rows, cols, sample);
            let value = check_cost_shape(sample, cost(sample));
            let per_row = values_f64(value);
            if per_row.len() != rows {
                return poisoned_estimate(value);
            }
            samples.push(sample);
            cost_vars.push(value);
            costs.push(per_row);
        }
        // signal[j][r] = f_j(r) - mean_{i != j} f_i(r)
        let mut signals = vec![vec![0.0; rows]; m];
        for r in 0..rows {
            let row: Vec<f64> = costs.iter().map(|c| c[r]).collect();
            for (j, s) in leave_one_out(&row).into_iter().enumerate() {
                signals[j][r] = s;
            }
        }
        let mut total = cost_vars[0];
        let mut terms = score_function_term(
            logits,
            samples[0],
            constant_from(logits, rows, 1, signals[0].clone()),
            group_size,
        );
        for j in 1..m {
            total = total + cost_vars[j];
            let signal = constant_from(logits, rows, 1, signals[j].clone());
            terms = terms + score_function_term(logits, samples[j], signal, group_size);
        }
        let inverse_m = T::from_f64(1.0 / m as f64);
        let mean_cost = total.scale(inverse_m);
        Estimate {
            sample: samples[0],
            cost: mean_cost,
            loss: (mean_cost + terms.scale(inverse_m)).mean(),
        }
    }
}
