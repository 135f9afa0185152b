//! The score-function node: `log q(z)` of a categorical sample and its gradient.
//!
//! For one categorical variable with logits `l` and probabilities `p = softmax(l)`,
//! a one-hot sample `z` has `log q(z) = <z, log_softmax(l)>`, and
//!
//! ```text
//! d log q(z) / d l = z - p          (the "score")
//! ```
//!
//! (for a general weight vector `s` instead of a one-hot `z`,
//! `d <s, log_softmax(l)> / d l = s - (sum_i s_i) p`, which is what the ops compute, so
//! they can be gradient-checked at arbitrary inputs). A row of `N` variables sums this
//! over its `N` groups.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::softmax::{log_softmax_groups, softmax_groups};
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor, num_groups};

/// Checks `[logits [B, C], sample [B*m, C], ...]` and returns `m`.
fn check_logits_and_sample(
    op: &str,
    logits: Shape,
    sample: Shape,
    group_size: usize,
) -> Result<usize> {
    num_groups(logits, group_size, op)?;
    if logits.cols != sample.cols || logits.rows == 0 || !sample.rows.is_multiple_of(logits.rows) {
        return Err(Error::shape_mismatch(
            op,
            logits,
            sample,
            "the sample must have the logits' columns and a multiple of their rows",
        ));
    }
    Ok(sample.rows / logits.rows)
}

/// Adds `weight * (s - (sum s) softmax(l))` group by group into `grad_row`.
fn add_score<T: Float>(
    logits_row: &[T],
    sample_row: &[T],
    weight: T,
    grad_row: &mut [T],
    group_size: usize,
) {
    let mut probabilities = vec![T::ZERO; logits_row.len()];
    softmax_groups(logits_row, &mut probabilities, group_size);
    for ((ps, ss), gs) in probabilities
        .chunks_exact(group_size)
        .zip(sample_row.chunks_exact(group_size))
        .zip(grad_row.chunks_exact_mut(group_size))
    {
        let mass: T = ss.iter().copied().sum();
        for ((g, &p), &s) in gs.iter_mut().zip(ps).zip(ss) {
            *g += weight * (s - mass * p);
        }
    }
}

/// `log q(z)`: inputs `logits [B, N*K]` and `sample [B*m, N*K]`, output `[B*m, 1]`,
/// row `r` being `sum_groups <sample_r, log_softmax(logits_{r / m})>`.
///
/// Backward: `d out_r / d logits_{r/m} = sample_r - (sum sample_r) softmax(logits_{r/m})`
/// per group (the score `z - p` for a one-hot sample). The sample gets no gradient.
#[derive(Debug, Clone, Copy)]
pub struct LogProb {
    /// Number of classes `K` per categorical variable.
    pub group_size: usize,
}

impl<T: Float> Op<T> for LogProb {
    fn name(&self) -> &'static str {
        "log_prob"
    }
    fn describe(&self) -> String {
        format!("log_prob(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("log_prob", inputs, 2)?;
        check_logits_and_sample("log_prob", inputs[0], inputs[1], self.group_size)?;
        Ok(Shape::new(inputs[1].rows, 1))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let (logits, sample) = (inputs[0], inputs[1]);
        let m = sample.rows() / logits.rows();
        let mut log_p = vec![T::ZERO; logits.cols()];
        for row in 0..logits.rows() {
            log_softmax_groups(logits.row(row), &mut log_p, self.group_size);
            for j in 0..m {
                let r = row * m + j;
                let value: T = sample.row(r).iter().zip(&log_p).map(|(&s, &l)| s * l).sum();
                output.as_mut_slice()[r] = value;
            }
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let (logits, sample) = (inputs[0], inputs[1]);
        let m = sample.rows() / logits.rows();
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            for r in 0..sample.rows() {
                let row = r / m;
                add_score(
                    logits.row(row),
                    sample.row(r),
                    grad_output.as_slice()[r],
                    grad.row_mut(row),
                    self.group_size,
                );
            }
        }
    }
}

/// The REINFORCE surrogate: value `0`, gradient `signal * d log q(z) / d logits`.
///
/// Inputs `logits [B, N*K]`, `sample [B*m, N*K]` (one-hot), `signal [B*m, 1]` (the
/// learning signal `f(z) - baseline`, treated as a constant). Output `[B*m, 1]` of zeros.
///
/// This is the "magic box" form of the score-function estimator: the output is
/// `signal_r * (log q(z_r) - stop_gradient(log q(z_r)))`, whose value is exactly zero
/// (so adding it to a loss leaves the reported loss `mean(cost)` unchanged) and whose
/// backward is
///
/// ```text
/// grad_logits_{r/m} += grad_out_r * signal_r * (z_r - softmax(logits_{r/m}))
/// ```
///
/// Neither the sample nor the signal gets a gradient. Because its value is constant, it
/// cannot be gradient-checked directly; the tests check that its backward equals the
/// gradient of `signal * log_prob(logits, sample)`, and [`LogProb`] is gradient-checked.
#[derive(Debug, Clone, Copy)]
pub struct ScoreFunction {
    /// Number of classes `K` per categorical variable.
    pub group_size: usize,
}

impl<T: Float> Op<T> for ScoreFunction {
    fn name(&self) -> &'static str {
        "score_function"
    }
    fn describe(&self) -> String {
        format!("score_function(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("score_function", inputs, 3)?;
        check_logits_and_sample("score_function", inputs[0], inputs[1], self.group_size)?;
        let expected = Shape::new(inputs[1].rows, 1);
        if inputs[2] != expected {
            return Err(Error::shape_mismatch(
                "score_function",
                inputs[1],
                inputs[2],
                "the signal must be [sample rows, 1]",
            ));
        }
        Ok(expected)
    }
    fn forward(&self, _inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        output.fill_zero();
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let (logits, sample, signal) = (inputs[0], inputs[1], inputs[2]);
        let m = sample.rows() / logits.rows();
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            for r in 0..sample.rows() {
                let row = r / m;
                let weight = grad_output.as_slice()[r] * signal.as_slice()[r];
                add_score(
                    logits.row(row),
                    sample.row(r),
                    weight,
                    grad.row_mut(row),
                    self.group_size,
                );
            }
        }
    }
}

/// `log q(sample)` under `softmax(logits)` per group of `group_size`: see [`LogProb`].
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::score::log_prob;
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(1, 2, vec![0.0, 0.0])?);
/// let sample = tape.constant(&Tensor::from_vec(1, 2, vec![0.0, 1.0])?);
/// let lp = log_prob(logits, sample, 2);
/// assert!((lp.scalar()? - 0.5f64.ln()).abs() < 1e-12);
/// tape.backward(lp)?;
/// assert_eq!(logits.grad().unwrap().as_slice(), &[-0.5, 0.5]); // z - p
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
pub fn log_prob<'t, T: Float>(
    logits: Var<'t, T>,
    sample: Var<'t, T>,
    group_size: usize,
) -> Var<'t, T> {
    logits
        .tape()
        .record(LogProb { group_size }, &[logits, sample])
}

/// The zero-valued REINFORCE term whose gradient is `signal * d log q(sample)`:
/// see [`ScoreFunction`].
pub fn score_function_term<'t, T: Float>(
    logits: Var<'t, T>,
    sample: Var<'t, T>,
    signal: Var<'t, T>,
    group_size: usize,
) -> Var<'t, T> {
    logits
        .tape()
        .record(ScoreFunction { group_size }, &[logits, sample, signal])
}
