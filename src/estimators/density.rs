//! Log-densities of the relaxed distributions: Concrete / Gumbel-Softmax (eq. 3 of the
//! paper), its log-space form ExpConcrete, and the relaxed Bernoulli.
//!
//! Papers: Maddison, Mnih and Teh, *The Concrete Distribution* (arXiv 1611.00712,
//! appendix C for the log-space forms); Jang, Gu and Poole (arXiv 1611.01144, eq. 3).
//!
//! These are densities of the *relaxed* samples (points of the simplex, or of `(0, 1)`),
//! with respect to Lebesgue measure; they can exceed 1. A relaxed objective with a KL
//! term estimated by Monte Carlo (`log q(y) - log p(y)`) needs them. (What is the
//! log-probability of a *straight-through* sample? No density exists for the one-hot
//! output itself; libraries like Pyro return the relaxed density of the soft sample
//! behind it, which is [`concrete_log_density`] of that soft sample. Nothing here
//! pretends otherwise.)
//!
//! With logits `x` (unnormalised: every formula is unchanged by adding a constant to a
//! group's logits), temperature `tau` and `K` classes per group:
//!
//! - **Concrete (eq. 3)**, `y` on the simplex:
//!   `p(y) = Gamma(K) tau^(K-1) (sum_i e^(x_i) y_i^(-tau))^(-K) prod_i e^(x_i) y_i^(-tau-1)`,
//!   `ln p(y) = ln Gamma(K) + (K-1) ln tau + sum_i (x_i - (tau+1) ln y_i) - K LSE_i(x_i - tau ln y_i)`.
//! - **ExpConcrete**, `s = ln y`:
//!   `ln p(s) = ln Gamma(K) + (K-1) ln tau + sum_i log_softmax(x - tau s)_i`,
//!   and `ln p_Concrete(y) = ln p_ExpConcrete(ln y) - sum_i ln y_i` (change of variables).
//! - **Relaxed Bernoulli**, `y = sigmoid(z)` with `z = (x + logistic)/tau`:
//!   `ln p(z) = ln tau + d - 2 softplus(d)`, `d = x - tau z`, and
//!   `ln p(y) = ln p(logit y) - ln y - ln(1 - y)`.
//!
//! The Concrete and ExpConcrete functions subtract each group's largest logit before
//! anything else (the formulas do not change), so huge logits do not swallow the
//! sample: logits all `1e16`, `tau = 1`, `y = (0.2, 0.3, 0.5)` give the same
//! `ln p = 0.7001` as logits all 0. The relaxed Bernoulli has one logit per unit and
//! nothing to shift: its `d = x - tau z` is the difference the density depends on.
//!
//! The plain functions return one log-density per group (`[rows, N]`), computed in
//! `f64` whatever `T` is. The `_var` functions ([`exp_concrete_log_density_var`],
//! [`concrete_log_density_var`], [`logit_relaxed_bernoulli_log_density_var`],
//! [`relaxed_bernoulli_log_density_var`]) are their tape versions, summed over each
//! row and differentiable in the sample, the logits and the temperature (a `[1, 1]`
//! variable), each gradchecked in `f64` by the property tests.
//!
//! ```
//! use gumbelgrad::estimators::density::concrete_log_density;
//! use gumbelgrad::Tensor;
//!
//! // K = 2, equal logits, tau = 1: y_1 = sigmoid(g_1 - g_2) is uniform on (0, 1),
//! // so the density is 1 everywhere.
//! let logits = Tensor::<f64>::from_vec(1, 2, vec![0.3, 0.3])?;
//! let y = Tensor::from_vec(1, 2, vec![0.2, 0.8])?;
//! let log_p = concrete_log_density(&y, &logits, 1.0, 2)?;
//! assert!(log_p.get(0, 0).abs() < 1e-14);
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use crate::error::{Error, Result, check_temperature};
use crate::float::Float;
use crate::kernels::softmax::logsumexp;
use crate::ops::unary::softplus;
use crate::tape::Var;
use crate::tensor::{Tensor, num_groups};

/// `ln Gamma(k) = ln((k-1)!)` for a whole number of classes.
pub fn ln_gamma_of_classes(classes: usize) -> f64 {
    (2..classes).map(|j| (j as f64).ln()).sum()
}

fn check_inputs<T: Float>(
    op: &str,
    sample: &Tensor<T>,
    logits: &Tensor<T>,
    temperature: f64,
    group_size: usize,
) -> Result<usize> {
    check_temperature(op, temperature)?;
    if sample.shape() != logits.shape() {
        return Err(Error::shape_mismatch(
            op,
            sample.shape(),
            logits.shape(),
            "sample and logits must have the same shape",
        ));
    }
    logits.check_finite(&format!("{op} logits"))?;
    num_groups(logits.shape(), group_size, op)
}

/// The largest logit of a group, in `f64`: every Concrete formula is unchanged by
/// subtracting it from the group's logits, and after the subtraction the logits are
/// `<= 0` with one of them exactly 0, so `x_i - tau ln y_i` keeps the sample's
/// digits even when the logits are huge (`1e16` has an `f64` spacing of 2).
fn group_max<T: Float>(logits: &[T]) -> f64 {
    let max = logits
        .iter()
        .map(|x| x.to_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    if max.is_finite() { max } else { 0.0 }
}

/// `logits` minus the maximum of each group as a constant on the tape: the same
/// densities, gradients and all (the formula is shift-invariant, so its derivative at
/// `x - c` equals the one at `x`), without losing the sample's digits next to huge
/// logits. A poisoned or badly grouped `logits` is returned as it is, for the ops
/// that follow to report.
fn shifted_by_group_max<'t, T: Float>(logits: Var<'t, T>, group_size: usize) -> Var<'t, T> {
    if logits.is_poisoned() || group_size == 0 || !logits.shape().cols.is_multiple_of(group_size) {
        return logits;
    }
    let Ok(value) = logits.value() else {
        return logits;
    };
    let mut shift = Vec::with_capacity(value.len());
    for group in value.as_slice().chunks_exact(group_size) {
        let max = T::from_f64(group_max(group));
        shift.extend(std::iter::repeat_n(max, group_size));
    }
    let shape = logits.shape();
    let shift = Tensor::from_vec(shape.rows, shape.cols, shift).expect("one per logit");
    logits - logits.tape().constant(&shift)
}

/// Per-group ExpConcrete log-density of `log_sample = ln y` (see the module docs).
/// Returns `[rows, N]`. `log_sample` must be finite.
pub fn exp_concrete_log_density<T: Float>(
    log_sample: &Tensor<T>,
    logits: &Tensor<T>,
    temperature: f64,
    group_size: usize,
) -> Result<Tensor<T>> {
    let op = "exp_concrete_log_density";
    let groups = check_inputs(op, log_sample, logits, temperature, group_size)?;
    log_sample.check_finite(&format!("{op} sample"))?;
    let constant = ln_gamma_of_classes(group_size) + (group_size as f64 - 1.0) * temperature.ln();
    let mut out = Tensor::zeros(logits.rows(), groups);
    let mut a = vec![0.0f64; group_size];
    for ((o, s), x) in out
        .as_mut_slice()
        .iter_mut()
        .zip(log_sample.as_slice().chunks_exact(group_size))
        .zip(logits.as_slice().chunks_exact(group_size))
    {
        let shift = group_max(x);
        for i in 0..group_size {
            a[i] = (x[i].to_f64() - shift) - temperature * s[i].to_f64();
        }
        // sum_i log_softmax(a)_i = sum_i a_i - K LSE(a)
        let lse = logsumexp(&a);
        let total: f64 = a.iter().map(|&ai| ai - lse).sum();
        *o = T::from_f64(constant + total);
    }
    Ok(out)
}

/// Per-group Concrete / Gumbel-Softmax log-density of a simplex point `y` (eq. 3).
/// Returns `[rows, N]`. Every `y_i` must be `> 0` (the density lives on the open
/// simplex); otherwise an [`Error::InvalidArgument`].
pub fn concrete_log_density<T: Float>(
    sample: &Tensor<T>,
    logits: &Tensor<T>,
    temperature: f64,
    group_size: usize,
) -> Result<Tensor<T>> {
    let op = "concrete_log_density";
    let groups = check_inputs(op, sample, logits, temperature, group_size)?;
    if let Some(bad) = sample
        .as_slice()
        .iter()
        .find(|y| !(y.to_f64() > 0.0 && y.is_finite()))
    {
        return Err(Error::invalid_argument(
            op,
            format!("sample values must be finite and > 0, got {bad}"),
        ));
    }
    let constant = ln_gamma_of_classes(group_size) + (group_size as f64 - 1.0) * temperature.ln();
    let k = group_size as f64;
    let mut out = Tensor::zeros(logits.rows(), groups);
    let mut a = vec![0.0f64; group_size];
    for ((o, y), x) in out
        .as_mut_slice()
        .iter_mut()
        .zip(sample.as_slice().chunks_exact(group_size))
        .zip(logits.as_slice().chunks_exact(group_size))
    {
        let shift = group_max(x);
        let mut linear = 0.0;
        for i in 0..group_size {
            let (xi, ln_y) = (x[i].to_f64() - shift, y[i].to_f64().ln());
            linear += xi - (temperature + 1.0) * ln_y;
            a[i] = xi - temperature * ln_y;
        }
        *o = T::from_f64(constant + linear - k * logsumexp(&a));
    }
    Ok(out)
}

/// Log-density of the logit-space relaxed Bernoulli sample `z = (x + l)/tau`
/// (`l` logistic): `ln tau + d - 2 softplus(d)`, `d = x - tau z`, elementwise.
pub fn logit_relaxed_bernoulli_log_density<T: Float>(
    logit_sample: &Tensor<T>,
    logits: &Tensor<T>,
    temperature: f64,
) -> Result<Tensor<T>> {
    let op = "logit_relaxed_bernoulli_log_density";
    check_inputs(op, logit_sample, logits, temperature, 1)?;
    logit_sample.check_finite(&format!("{op} sample"))?;
    Ok(Tensor::from_vec(
        logits.rows(),
        logits.cols(),
        logit_sample
            .as_slice()
            .iter()
            .zip(logits.as_slice())
            .map(|(&z, &x)| {
                let d = x.to_f64() - temperature * z.to_f64();
                T::from_f64(temperature.ln() + d - 2.0 * softplus(d))
            })
            .collect(),
    )
    .expect("same shape"))
}

/// Log-density of the relaxed Bernoulli sample `y = sigmoid((x + l)/tau)` in `(0, 1)`,
/// elementwise: the logit-space density at `ln y - ln(1-y)` minus `ln y + ln(1 - y)`.
/// Every `y` must lie strictly inside `(0, 1)`.
pub fn relaxed_bernoulli_log_density<T: Float>(
    sample: &Tensor<T>,
    logits: &Tensor<T>,
    temperature: f64,
) -> Result<Tensor<T>> {
    let op = "relaxed_bernoulli_log_density";
    check_inputs(op, sample, logits, temperature, 1)?;
    if let Some(bad) = sample
        .as_slice()
        .iter()
        .find(|y| !(y.to_f64() > 0.0 && y.to_f64() < 1.0))
    {
        return Err(Error::invalid_argument(
            op,
            format!("sample values must lie in (0, 1), got {bad}"),
        ));
    }
    Ok(Tensor::from_vec(
        logits.rows(),
        logits.cols(),
        sample
            .as_slice()
            .iter()
            .zip(logits.as_slice())
            .map(|(&y, &x)| {
                let y = y.to_f64();
                let (ln_y, ln_1my) = (y.ln(), (-y).ln_1p());
                let d = x.to_f64() - temperature * (ln_y - ln_1my);
                T::from_f64(temperature.ln() + d - 2.0 * softplus(d) - ln_y - ln_1my)
            })
            .collect(),
    )
    .expect("same shape"))
}

/// Checks a `[1, 1]` temperature variable's current value; on a bad value stores the
/// error on the tape and returns it poisoned.
fn checked_temperature<'t, T: Float>(op: &str, temperature: Var<'t, T>) -> Var<'t, T> {
    if temperature.is_poisoned() {
        return temperature;
    }
    let shape = temperature.shape();
    if shape.rows != 1 || shape.cols != 1 {
        return super::fail(
            temperature.tape(),
            Error::shape_mismatch(
                op,
                shape,
                crate::tensor::Shape::new(1, 1),
                "the temperature must be a [1, 1] variable",
            ),
        );
    }
    match temperature.scalar() {
        Ok(value) => match check_temperature(op, value.to_f64()) {
            Ok(()) => temperature,
            Err(error) => super::fail(temperature.tape(), error),
        },
        Err(_) => temperature,
    }
}

/// The ExpConcrete log-density on the tape, summed over the `N` groups of each row:
/// `[rows, 1]`, differentiable in the log-sample, the logits and the temperature (a
/// `[1, 1]` variable; a constant if it is not learned).
///
/// `N (ln Gamma(K) + (K-1) ln tau) + sum_groups sum_i log_softmax(x - tau s)_i`.
/// Use it for a Monte Carlo relaxed KL, `ln q(s) - ln p(s)` at an
/// [`exp_concrete`](super::exp_concrete) sample `s`. A temperature `<= 0`, NaN or
/// infinite is stored on the tape as [`Error::InvalidTemperature`].
///
/// ```
/// use gumbelgrad::estimators::density::{exp_concrete_log_density, exp_concrete_log_density_var};
/// use gumbelgrad::{Tape, Tensor};
/// let logits = Tensor::<f64>::from_vec(1, 3, vec![0.2, -0.1, 0.4])?;
/// let log_y = Tensor::from_vec(1, 3, vec![-1.5, -0.6, -1.3])?;
/// let tape = Tape::new();
/// let tau = tape.variable(&Tensor::scalar(0.7));
/// let log_p = exp_concrete_log_density_var(tape.constant(&log_y), tape.variable(&logits), tau, 3);
/// let plain = exp_concrete_log_density(&log_y, &logits, 0.7, 3)?;
/// assert!((log_p.scalar()? - plain.get(0, 0)).abs() < 1e-12);
/// tape.backward(log_p)?;
/// assert!(tau.grad().is_some()); // d ln p / d tau
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
pub fn exp_concrete_log_density_var<'t, T: Float>(
    log_sample: Var<'t, T>,
    logits: Var<'t, T>,
    temperature: Var<'t, T>,
    group_size: usize,
) -> Var<'t, T> {
    let temperature = checked_temperature("exp_concrete_log_density_var", temperature);
    let groups = logits.shape().cols.checked_div(group_size).unwrap_or(0);
    let constant = groups as f64 * ln_gamma_of_classes(group_size);
    let per_groups = T::from_f64(groups as f64 * (group_size as f64 - 1.0));
    let logits = shifted_by_group_max(logits, group_size);
    (logits - log_sample * temperature)
        .log_softmax(group_size)
        .sum_cols()
        + temperature.ln().scale(per_groups)
        + T::from_f64(constant)
}

/// The Concrete / Gumbel-Softmax log-density (eq. 3) on the tape, summed over the `N`
/// groups of each row: `[rows, 1]`, differentiable in the sample `y` (entries `> 0`),
/// the logits and the `[1, 1]` temperature. By the change of variables `s = ln y`, it
/// is [`exp_concrete_log_density_var`] at `ln y` minus `sum_i ln y_i`.
pub fn concrete_log_density_var<'t, T: Float>(
    sample: Var<'t, T>,
    logits: Var<'t, T>,
    temperature: Var<'t, T>,
    group_size: usize,
) -> Var<'t, T> {
    let log_sample = sample.ln();
    exp_concrete_log_density_var(log_sample, logits, temperature, group_size)
        - log_sample.sum_cols()
}

/// The logit-space relaxed Bernoulli (binary Concrete) log-density on the tape, summed
/// over the units of each row: `[rows, 1]`, differentiable in the logit sample `z`,
/// the logits and the `[1, 1]` temperature:
/// `sum_n (ln tau + d_n - 2 softplus(d_n))`, `d = x - tau z`.
pub fn logit_relaxed_bernoulli_log_density_var<'t, T: Float>(
    logit_sample: Var<'t, T>,
    logits: Var<'t, T>,
    temperature: Var<'t, T>,
) -> Var<'t, T> {
    let temperature = checked_temperature("logit_relaxed_bernoulli_log_density_var", temperature);
    let units = T::from_f64(logits.shape().cols as f64);
    let d = logits - logit_sample * temperature;
    (d - d.softplus().scale(T::from_f64(2.0))).sum_cols() + temperature.ln().scale(units)
}

/// The relaxed Bernoulli (binary Concrete) log-density of `y` in `(0, 1)` on the tape,
/// summed over the units of each row: `[rows, 1]`, differentiable in `y`, the logits
/// and the `[1, 1]` temperature: the logit-space density at `ln y - ln(1 - y)` minus
/// `sum_n (ln y_n + ln(1 - y_n))`.
pub fn relaxed_bernoulli_log_density_var<'t, T: Float>(
    sample: Var<'t, T>,
    logits: Var<'t, T>,
    temperature: Var<'t, T>,
) -> Var<'t, T> {
    let ln_y = sample.ln();
    let ln_1my = sample.scale(T::from_f64(-1.0)).add_scalar(T::ONE).ln();
    logit_relaxed_bernoulli_log_density_var(ln_y - ln_1my, logits, temperature)
        - (ln_y + ln_1my).sum_cols()
}
