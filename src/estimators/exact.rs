//! Exact expectations and exact gradients by enumerating every configuration.
//!
//! For a small discrete latent (`N` categorical variables with `K` classes, so `K^N`
//! configurations, or `N` Bernoulli units, `2^N`) the objective `E_{z~q}[f(z)]` and
//! its gradient can be computed exactly:
//!
//! `E[f] = sum_z q(z) f(z)`, and
//! `d E[f] / d logits = sum_z f(z) q(z) d ln q(z) / d logits`,
//!
//! where, for a categorical group `q = softmax(x)` with chosen class `c`,
//! `d ln q / d x_j = 1[j = c] - q_j`, and for a Bernoulli unit with `q(1) = sigmoid(x)`,
//! `d ln q(z) / d x = z - sigmoid(x)`. (The score-function identity; summed over all
//! `z` it is exact, not a Monte Carlo estimate.)
//!
//! This is the oracle every estimator is compared against in the tests and in
//! `examples/estimator_lab.rs`. Problems with more than [`MAX_CONFIGURATIONS`]
//! configurations are rejected with an [`Error::InvalidArgument`].
//!
//! ```
//! use gumbelgrad::estimators::exact;
//!
//! // One variable with 3 classes, f(z) = index of the chosen class.
//! let logits = [0.0, 0.0, 0.0];
//! let result = exact::categorical(&logits, 3, |z| z[1] + 2.0 * z[2])?;
//! assert!((result.value - 1.0).abs() < 1e-12); // uniform: (0 + 1 + 2) / 3
//! // d E / d x_j = q_j (f_j - E[f]) = (1/3)(j - 1)
//! assert!((result.gradient[2] - 1.0 / 3.0).abs() < 1e-12);
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::kernels::softmax::softmax_groups;
use crate::ops::unary::sigmoid;

/// The largest number of configurations the enumerators accept (2^22, about 4 million).
pub const MAX_CONFIGURATIONS: usize = 1 << 22;

/// An exact expectation and its exact gradient with respect to the logits.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactExpectation {
    /// `E_{z~q}[f(z)]`.
    pub value: f64,
    /// `d E[f] / d logits`, one entry per logit.
    pub gradient: Vec<f64>,
    /// `Var_{z~q}[f(z)]`, handy to judge estimator variances against.
    pub variance: f64,
    /// How many configurations were enumerated.
    pub configurations: usize,
}

fn too_large(op: &str, base: usize, exponent: usize) -> Error {
    Error::invalid_argument(
        op,
        format!(
            "{base}^{exponent} configurations is more than the {MAX_CONFIGURATIONS} that can be enumerated"
        ),
    )
}

/// Exact `E[f(z)]` and its gradient for `N = logits.len() / group_size` independent
/// categorical variables, `z_n ~ softmax(logits of group n)`.
///
/// `f` receives each configuration as a one-hot vector of length `N*K` (the layout the
/// estimators use for one example) and returns its cost.
pub fn categorical(
    logits: &[f64],
    group_size: usize,
    mut f: impl FnMut(&[f64]) -> f64,
) -> Result<ExactExpectation> {
    let op = "exact::categorical";
    if group_size == 0 || logits.is_empty() || !logits.len().is_multiple_of(group_size) {
        return Err(Error::invalid_argument(
            op,
            format!(
                "group size {group_size} does not divide the {} logits",
                logits.len()
            ),
        ));
    }
    if let Some(bad) = logits.iter().find(|x| !x.is_finite()) {
        return Err(Error::NonFiniteInput {
            what: format!("{op} logits (value {bad})"),
        });
    }
    let groups = logits.len() / group_size;
    let count = u32::try_from(groups)
        .ok()
        .and_then(|n| group_size.checked_pow(n))
        .filter(|&c| c <= MAX_CONFIGURATIONS)
        .ok_or_else(|| too_large(op, group_size, groups))?;
    let mut probs = vec![0.0; logits.len()];
    softmax_groups(logits, &mut probs, group_size);

    let mut classes = vec![0usize; groups];
    let mut one_hot = vec![0.0; logits.len()];
    let (mut value, mut second_moment) = (0.0, 0.0);
    // sum_z f q 1[z_n = c]  per (n, c), and sum_z f q
    let mut f_q_at = vec![0.0; logits.len()];
    for _ in 0..count {
        one_hot.iter_mut().for_each(|v| *v = 0.0);
        let mut q = 1.0;
        for (n, &c) in classes.iter().enumerate() {
            one_hot[n * group_size + c] = 1.0;
            q *= probs[n * group_size + c];
        }
        let cost = f(&one_hot);
        value += q * cost;
        second_moment += q * cost * cost;
        for (n, &c) in classes.iter().enumerate() {
            f_q_at[n * group_size + c] += q * cost;
        }
        // next configuration (odometer)
        for c in classes.iter_mut().rev() {
            *c += 1;
            if *c < group_size {
                break;
            }
            *c = 0;
        }
    }
    // d E / d x_{n,j} = sum_z f q (1[z_n = j] - q_{n,j}) = f_q_at[n,j] - q_{n,j} E[f]
    let gradient = f_q_at
        .iter()
        .zip(&probs)
        .map(|(&a, &p)| a - p * value)
        .collect();
    Ok(ExactExpectation {
        value,
        gradient,
        variance: (second_moment - value * value).max(0.0),
        configurations: count,
    })
}

/// Exact `E[f(z)]` and its gradient for independent Bernoulli units,
/// `z_n ~ Bernoulli(sigmoid(logits[n]))`. `f` receives each configuration as a vector
/// of zeros and ones.
pub fn bernoulli(logits: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Result<ExactExpectation> {
    let op = "exact::bernoulli";
    if logits.is_empty() {
        return Err(Error::invalid_argument(op, "no logits"));
    }
    if let Some(bad) = logits.iter().find(|x| !x.is_finite()) {
        return Err(Error::NonFiniteInput {
            what: format!("{op} logits (value {bad})"),
        });
    }
    let units = logits.len();
    let count = u32::try_from(units)
        .ok()
        .and_then(|n| 2usize.checked_pow(n))
        .filter(|&c| c <= MAX_CONFIGURATIONS)
        .ok_or_else(|| too_large(op, 2, units))?;
    let probs: Vec<f64> = logits.iter().map(|&x| sigmoid(x)).collect();
    let mut z = vec![0.0; units];
    let (mut value, mut second_moment) = (0.0, 0.0);
    let mut f_q_on = vec![0.0; units]; // sum_z f q z_n
    for index in 0..count {
        let mut q = 1.0;
        for n in 0..units {
            let on = (index >> n) & 1 == 1;
            z[n] = if on { 1.0 } else { 0.0 };
            q *= if on { probs[n] } else { 1.0 - probs[n] };
        }
        let cost = f(&z);
        value += q * cost;
        second_moment += q * cost * cost;
        for n in 0..units {
            f_q_on[n] += q * cost * z[n];
        }
    }
    // d E / d x_n = sum_z f q (z_n - p_n)
    let gradient = f_q_on
        .iter()
        .zip(&probs)
        .map(|(&a, &p)| a - p * value)
        .collect();
    Ok(ExactExpectation {
        value,
        gradient,
        variance: (second_moment - value * value).max(0.0),
        configurations: count,
    })
}
