//! VIMCO-style multi-sample score function with leave-one-out baselines (Mnih and
//! Rezende, ICML 2016, arXiv 1602.06725).
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
//! # The multi-sample bound (`VimcoObjective::LogMeanExp`, arXiv 1602.06725)
//! VIMCO proper optimises the `m`-sample bound. With log-weights `w_j = -f(z_j)` (the
//! cost is a negative log-weight, e.g. `-log p(x, z) + log q(z | x)`), the per-example
//! objective is `c = -L_hat`, `L_hat = log (1/m) sum_j exp(w_j)`, and
//!
//! ```text
//! g = sum_k (c - c_{-k}) d log q(z_k)  +  sum_j omega_j d f(z_j),     omega = softmax(w)
//! ```
//!
//! where `c_{-k}` is `c` with `w_k` replaced by the mean of the other log-weights (the
//! geometric mean of the other weights). `c_{-k}` does not depend on `z_k`, so `g` is an
//! **unbiased** estimate of `d E[c]` — the gradient of the bound, not of `E[f]`. Here
//! [`Estimate::cost`] is the per-example bound `c` (`[batch, 1]`) and the loss its mean;
//! the decoder gets the importance-weighted gradient `sum_j omega_j d f(z_j)`. The sum
//! over each example's `m` rows is a product with a dense `[batch, batch * m]` 0/1
//! matrix (the tape has no segment-sum op), so this costs `O(batch^2 m)`: negligible for
//! batches of a few hundred, measurable beyond (the lab's 500-example calls spend most of
//! their 46 us/sample there).
//!
//! # Batch layout
//! The cost closure is called once on a `[batch * m, N*K]` sample, **example-major**:
//! row `b * m + j` is sample `j` of example `b`. A cost that needs per-example data
//! (a decoder's targets `x [batch, D]`) must repeat row `b` of its data `m` times, e.g.
//! with a constant `[batch * m, batch]` 0/1 selection matrix `S` (`S[b*m + j, b] = 1`)
//! as `S.matmul(x)`. [`Estimate::sample`] has `batch * m` rows; with the mean objective
//! so has [`Estimate::cost`] (the loss is `mean(cost)` over them), with the bound it has
//! `batch` rows.

use rand::RngCore;

use super::{
    constant_from, poisoned_estimate, read_logits, sample_one_hot, score_function_term, values_f64,
};
use crate::error::{Error, Result};
use crate::estimators::{
    Estimate, GradientEstimator, InjectedNoise, bernoulli_as_categorical_with_noise,
    check_cost_shape, fail,
};
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
/// let estimate = Vimco::new(4)?.estimate(logits, 2, &mut |z| (z.matmul(pick) - 0.45).square(), &mut rng);
/// assert_eq!(estimate.cost.shape(), gumbelgrad::Shape::new(8, 1)); // 2 examples x 4 samples
/// tape.backward(estimate.loss)?;
/// assert!(Vimco::new(1).is_err()); // no other sample to form the baseline from
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Vimco {
    /// Samples per example, `m >= 2` (the constructors check it).
    num_samples: usize,
    /// What the `m` samples estimate.
    objective: VimcoObjective,
}

/// The objective a [`Vimco`] estimator's `m` samples estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VimcoObjective {
    /// `E[f(z)]`, by the sample mean, with leave-one-out mean baselines.
    #[default]
    Mean,
    /// The `m`-sample bound `E[-log (1/m) sum_j exp(-f(z_j))]` of Mnih and Rezende,
    /// with their leave-one-out (geometric-mean) baselines.
    LogMeanExp,
}

impl Vimco {
    /// VIMCO with `num_samples` samples per example; an
    /// [`Error::InvalidArgument`] below 2 (a
    /// leave-one-out baseline needs another sample).
    pub fn new(num_samples: usize) -> Result<Self> {
        check_num_samples("Vimco::new", num_samples)?;
        Ok(Vimco {
            num_samples,
            objective: VimcoObjective::Mean,
        })
    }

    /// VIMCO on the `m`-sample bound, the cost being a negative log-weight (see the
    /// module documentation); an error below 2 samples, as [`Vimco::new`].
    pub fn log_mean_exp(num_samples: usize) -> Result<Self> {
        check_num_samples("Vimco::log_mean_exp", num_samples)?;
        Ok(Vimco {
            num_samples,
            objective: VimcoObjective::LogMeanExp,
        })
    }

    /// Samples per example, `m` (at least 2).
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// What the `m` samples estimate.
    pub fn objective(&self) -> VimcoObjective {
        self.objective
    }
}

fn check_num_samples(op: &str, num_samples: usize) -> Result<()> {
    if num_samples < 2 {
        return Err(Error::invalid_argument(
            op,
            format!("num_samples must be at least 2, got {num_samples}"),
        ));
    }
    Ok(())
}

impl<T: Float> GradientEstimator<T> for Vimco {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(*self))
    }

    fn name(&self) -> &'static str {
        match self.objective {
            VimcoObjective::Mean => "vimco",
            VimcoObjective::LogMeanExp => "vimco-bound",
        }
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

impl Vimco {
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
                "vimco",
                |pairs, noise, cost, rng| self.estimate_at(pairs, 2, noise, cost, rng),
            );
        }
        let values = match read_logits(logits, group_size, "vimco") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let m = self.num_samples;
        let (rows, cols) = (values.rows(), values.cols());
        let samples = match noise {
            None => sample_one_hot(&values, group_size, m, rng).into_vec(),
            Some(noise) => match noise.hard_sample(&values, group_size, m, "vimco") {
                Ok(samples) => samples.into_vec(),
                Err(error) => return poisoned_estimate(fail(logits.tape(), error)),
            },
        };
        let sample = constant_from(logits, rows * m, cols, samples);
        let cost_value = check_cost_shape(sample, cost(sample));
        let costs = values_f64(cost_value);
        if costs.len() != rows * m {
            return poisoned_estimate(cost_value);
        }
        if self.objective == VimcoObjective::LogMeanExp {
            return bound_estimate(logits, sample, cost_value, &costs, rows, m, group_size);
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

/// `-log (1/m) sum_j exp(w_j)` for log-weights `w`.
fn negative_log_mean_exp(w: &[f64]) -> f64 {
    -(crate::kernels::softmax::logsumexp(w) - (w.len() as f64).ln())
}

/// The multi-sample bound's estimate (see the module documentation).
fn bound_estimate<'t, T: Float>(
    logits: Var<'t, T>,
    sample: Var<'t, T>,
    cost_value: Var<'t, T>,
    costs: &[f64],
    rows: usize,
    m: usize,
    group_size: usize,
) -> Estimate<'t, T> {
    let mut offset = vec![0.0; rows];
    let mut weights = vec![0.0; rows * m];
    let mut signal = vec![0.0; rows * m];
    for b in 0..rows {
        let f = &costs[b * m..(b + 1) * m];
        let w: Vec<f64> = f.iter().map(|f| -f).collect();
        let c = negative_log_mean_exp(&w);
        let total: f64 = w.iter().sum();
        let max = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let normaliser: f64 = w.iter().map(|x| (x - max).exp()).sum();
        let mut pathwise = 0.0;
        for k in 0..m {
            let omega = (w[k] - max).exp() / normaliser;
            weights[b * m + k] = omega;
            pathwise += omega * f[k];
            let mut others = w.clone();
            others[k] = (total - w[k]) / (m - 1) as f64;
            signal[b * m + k] = c - negative_log_mean_exp(&others);
        }
        offset[b] = c - pathwise;
    }
    let mut grouping = vec![0.0; rows * rows * m];
    for b in 0..rows {
        for j in 0..m {
            grouping[b * rows * m + b * m + j] = 1.0;
        }
    }
    let grouping = constant_from(logits, rows, rows * m, grouping);
    let weights = constant_from(logits, rows * m, 1, weights);
    let offset = constant_from(logits, rows, 1, offset);
    // Value: sum_j omega_j f_j + (c - sum_j omega_j f_j) = c; gradient: sum_j omega_j d f_j.
    let per_example = grouping.matmul(weights * cost_value) + offset;
    let signal = constant_from(logits, rows * m, 1, signal);
    let term = grouping.matmul(score_function_term(logits, sample, signal, group_size));
    Estimate {
        sample,
        cost: per_example,
        loss: (per_example + term).mean(),
    }
}
