//! The score-function family: estimators built on `f(z) d/d logits log q(z)`.
//!
//! The *score function* (REINFORCE, "likelihood ratio") identity
//!
//! ```text
//! d/d logits E_{z~q}[f(z)] = E_{z~q}[ f(z) d/d logits log q(z) ]
//! ```
//!
//! needs nothing from `f` but its value at a hard sample, so it is unbiased for any
//! cost, differentiable or not. Its weakness is variance, and every estimator here is a
//! different way of subtracting a *control variate* (a "baseline") `b` from `f`:
//!
//! | estimator | baseline | unbiased | file |
//! |---|---|---|---|
//! | [`Reinforce`] | none, moving average, NVIL's learned baseline, variance normalisation | yes | `reinforce.rs`, `baselines.rs` |
//! | [`MuProp`] | first-order Taylor expansion of `f` at the mean `z_bar`, plus its analytic correction | yes (its NVIL-trained variant [`MuProp::nvil`]: **no**) | `muprop.rs` |
//! | [`Darn`] | the same Taylor expansion without the correction | **no** | `darn.rs` |
//! | [`Vimco`] | leave-one-out mean of `m` other samples | yes | `vimco.rs` |
//! | [`Rebar`] | the Gumbel-Softmax relaxation `f(softmax(z / tau))` at conditionally re-sampled noise | yes | `rebar.rs` |
//! | [`Relax`] | REBAR's control variate plus a learned surrogate network | yes | `relax.rs` |
//! | [`Rloo`] | leave-one-out mean of `m` other samples, the cost called once per sample | yes | `rloo.rs` |
//! | [`ArmEstimator`] | ARM / DisARM: the cost at an antithetic pair of samples (categorical groups by stick-breaking) | yes | `arm.rs` |
//!
//! # Contract of the cost closure
//! All estimators take the downstream cost as a closure `cost(sample) -> [rows, 1]`
//! recorded on the same tape as the logits, exactly as
//! [`GradientEstimator::estimate`] describes. The score-function estimators rely on two
//! more properties, which any ordinary per-example loss has:
//!
//! 1. **Per example**: row `r` of the cost depends only on row `r` of the sample (no
//!    batch norm, no mean over the batch inside the closure).
//! 2. **Deterministic**: calling the closure twice at the same sample gives the same
//!    value (draw any noise the cost needs once, outside the closure).
//!
//! The closure may be called at points that are not one-hot (MuProp and DARN at the
//! mean `softmax(logits)`, REBAR and RELAX at relaxed samples), so it must accept any
//! point of the simplex. MuProp, DARN, REBAR and RELAX differentiate the cost at those
//! points *during* `estimate` by calling [`Tape::backward`](crate::Tape::backward) on an
//! intermediate scalar; this discards gradients already on the tape (harmless, as one
//! calls `estimate` before the final `backward`).
//!
//! # Bernoulli latents
//! A Bernoulli variable `b ~ Bernoulli(sigmoid(phi))` is a `K = 2` categorical with
//! logits `[0, phi]`: `P(class 1) = e^phi / (1 + e^phi) = sigmoid(phi)`, the one-hot
//! sample is `[1 - b, b]`, and the gradient for `phi` is the second logit's. Every
//! estimator here accepts **`group_size = 1`** (the crate's convention for independent
//! binary units, `logits [batch, N]`, samples of zeros and ones) and runs exactly this:
//! the logits are spread to `[0, phi_n]` pairs by a constant matrix product on the tape,
//! the two-class estimator runs, and the cost and the returned sample see only the
//! `b` column of each pair, so the gradient flows back to `phi` through the product.
//! For REBAR and RELAX the `K = 2` categorical relaxation `softmax((logits + g)/tau)` is
//! the binary Concrete `sigmoid((phi + logistic noise)/tau)` in distribution, because the
//! difference of two Gumbels is logistic; so nothing is lost.
//!
//! # Layout of a multi-sample batch (VIMCO)
//! [`Vimco`] draws `m` samples per example and calls the cost once on a
//! `[batch * m, N*K]` tensor laid out *example-major*: row `b * m + j` is sample `j`
//! of example `b`.

mod arm;
mod baselines;
mod darn;
mod flat_adam;
mod injected_gradient;
mod muprop;
mod rebar;
mod reinforce;
mod relax;
mod rloo;
mod score_function;
mod vimco;

pub use arm::{
    ArmEstimator, ArmKind, first_success_one_hot, stick_breaking_logits, stick_breaking_vjp,
};
pub use baselines::{
    Baseline, LearnedBaseline, MovingAverage, NvilSignal, SignalNormalisation, VarianceNormaliser,
};
pub use darn::{Darn, DarnSignal, ExpansionPoint};
pub use injected_gradient::{InjectedGradient, inject_gradient};
pub use muprop::MuProp;
pub use rebar::Rebar;

pub use reinforce::Reinforce;
pub use relax::{Relax, Surrogate};
pub use rloo::Rloo;

pub use score_function::{LogProb, ScoreFunction, log_prob, score_function_term};
pub use vimco::{Vimco, VimcoObjective};

use rand::RngCore;

use super::{fail, noise};
use crate::error::Error;
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

#[allow(unused_imports)]
use super::GradientEstimator; // for the rustdoc link above

use super::Estimate;

/// Softmax of each group of `group_size` values of a row-major slice, in `f64`: the
/// class probabilities of logits read with [`read_logits`].
pub fn softmax_f64(values: &[f64], group_size: usize) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    crate::kernels::softmax::softmax_groups(values, &mut out, group_size);
    out
}

/// Draws `repeats` one-hot samples per row of `values` (logits, `[rows, N*K]`) by
/// Gumbel-max ([`noise::sample_categorical`]), laid out example-major (row
/// `r * repeats + j`): the hard sample a score-function estimator evaluates its cost at.
/// `group_size` must divide the columns (check it first with [`read_logits`]).
pub fn sample_one_hot(
    values: &Tensor<f64>,
    group_size: usize,
    repeats: usize,
    rng: &mut dyn RngCore,
) -> Tensor<f64> {
    let (rows, cols) = (values.rows(), values.cols());
    let mut repeated = Vec::with_capacity(rows * repeats * cols);
    for r in 0..rows {
        for _ in 0..repeats {
            repeated.extend_from_slice(values.row(r));
        }
    }
    let repeated = Tensor::from_vec(rows * repeats, cols, repeated).expect("sizes");
    noise::sample_categorical(&repeated, group_size, rng)
        .expect("group size checked by read_logits")
        .one_hot
}

/// Runs a categorical estimator on binary units (`group_size = 1`, `logits [B, N]`):
/// the pairs `[0, phi_n]` are `logits.matmul(spread)` with the constant `spread [N, 2N]`
/// (`spread[n, 2n+1] = 1`), the cost and the returned sample see `z.matmul(pick)` with
/// `pick [2N, N]` (`pick[2n+1, n] = 1`), i.e. the `b` entry of each one-hot pair.
///
/// A categorical estimator supports binary units by starting its `estimate` with
/// `if group_size == 1 { return bernoulli_as_categorical(logits, cost, rng, |pairs, cost, rng| self.estimate(pairs, 2, cost, rng)); }`.
pub fn bernoulli_as_categorical<'t, T: Float>(
    logits: Var<'t, T>,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    rng: &mut dyn RngCore,
    categorical: impl FnOnce(
        Var<'t, T>,
        &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        &mut dyn RngCore,
    ) -> Estimate<'t, T>,
) -> Estimate<'t, T> {
    if logits.is_poisoned() {
        return poisoned_estimate(logits);
    }
    let (pairs, pick) = bernoulli_pairs(logits);
    let mut on_bits = |z: Var<'t, T>| cost(z.matmul(pick));
    let inner = categorical(pairs, &mut on_bits, rng);
    on_bits_estimate(inner, pick)
}

/// The two pieces of [`bernoulli_as_categorical`]: the pairs `[0, phi_n]` as
/// categorical logits `[B, 2N]`, and the constant `pick [2N, N]` that maps a pair
/// back to its unit. (For estimators that wrap more than one cost closure.)
pub fn bernoulli_pairs<'t, T: Float>(logits: Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
    let n = logits.shape().cols;
    let mut spread = vec![0.0; n * 2 * n];
    let mut pick = vec![0.0; 2 * n * n];
    for i in 0..n {
        spread[i * 2 * n + 2 * i + 1] = 1.0;
        pick[(2 * i + 1) * n + i] = 1.0;
    }
    let spread = constant_from(logits, n, 2 * n, spread);
    let pick = constant_from(logits, 2 * n, n, pick);
    (logits.matmul(spread), pick)
}

/// A categorical estimate on the pairs, with its sample mapped back to the units.
pub fn on_bits_estimate<'t, T: Float>(inner: Estimate<'t, T>, pick: Var<'t, T>) -> Estimate<'t, T> {
    Estimate {
        sample: inner.sample.matmul(pick),
        cost: inner.cost,
        loss: inner.loss,
    }
}

/// The logits as `f64`, after checking that `group_size` divides their columns: how a
/// score-function estimator starts. On failure the error (named after `estimator`) is
/// stored on the tape and `Err(poisoned estimate)` returned, which the estimator hands
/// back as it is.
///
/// A batch of 0 rows is valid and also ends the estimator there: `Err` holds the
/// [`empty_estimate`] (an empty sample and cost, a loss of 0), the same result the
/// relaxed estimators give, and no baseline or surrogate state changes.
pub fn read_logits<'t, T: Float>(
    logits: Var<'t, T>,
    group_size: usize,
    estimator: &str,
) -> Result<Tensor<f64>, Estimate<'t, T>> {
    let value = match logits.value() {
        Ok(value) => value,
        Err(_) => return Err(poisoned_estimate(logits)),
    };
    if let Err(error) = value.num_groups(group_size) {
        let bad = fail(logits.tape(), error_in(estimator, error));
        return Err(poisoned_estimate(bad));
    }
    if value.rows() == 0 {
        return Err(empty_estimate(logits));
    }
    Ok(value.cast::<f64>())
}

/// The estimate for a batch of 0 rows (`logits [0, C]`): the sample is an empty
/// `[0, C]` constant, the cost an empty `[0, 1]` constant, and the loss `mean(logits)`,
/// whose value is 0 (the mean of nothing) and whose gradient is the empty `[0, C]`.
pub fn empty_estimate<'t, T: Float>(logits: Var<'t, T>) -> Estimate<'t, T> {
    let cols = logits.shape().cols;
    let tape = logits.tape();
    Estimate {
        sample: tape.constant(&Tensor::zeros(0, cols)),
        cost: tape.constant(&Tensor::zeros(0, 1)),
        loss: logits.mean(),
    }
}

fn error_in(estimator: &str, error: Error) -> Error {
    match error {
        Error::InvalidArgument { message, .. } => Error::invalid_argument(estimator, message),
        other => other,
    }
}

/// An estimate whose three parts are the given (poisoned) variable: what an estimator
/// returns after recording an error with [`fail`].
pub fn poisoned_estimate<'t, T: Float>(var: Var<'t, T>) -> Estimate<'t, T> {
    Estimate {
        sample: var,
        cost: var,
        loss: var,
    }
}

/// A `[rows, cols]` constant on `like`'s tape from `f64` data.
pub fn constant_from<'t, T: Float>(
    like: Var<'t, T>,
    rows: usize,
    cols: usize,
    data: Vec<f64>,
) -> Var<'t, T> {
    let tensor = Tensor::from_vec(rows, cols, data).expect("length computed by caller");
    like.tape().constant(&tensor.cast::<T>())
}

/// The values of a variable as `f64` (empty if the tape has failed).
pub fn values_f64<T: Float>(var: Var<'_, T>) -> Vec<f64> {
    var.with_value(|t| t.as_slice().iter().map(|x| x.to_f64()).collect())
        .unwrap_or_default()
}
