//! Gumbel and logistic noise, Gumbel-max sampling, and *conditional* noise.
//!
//! Every random quantity in the estimators is drawn here, from a caller-supplied
//! generator, and then enters the tape as a constant. So a sample can be saved,
//! replayed, or supplied by a test, and every op stays a deterministic function.
//!
//! # Why the uniform draws avoid 0
//! A Gumbel(0, 1) variable is `g = -ln(-ln u)` with `u ~ U(0, 1)`. If `u` is exactly
//! `0`, `-ln u = inf` and `g = -inf`; a softmax over a row containing `-inf` plus the
//! gradient through it then gives NaN. PyTorch's `gumbel_softmax` produced such NaNs
//! for years (pytorch issues #1817, #22442, #22557). Here `u` is drawn from
//! `[smallest positive normal float, 1)`, like TensorFlow Probability does, so `g` is
//! always finite: between about `-6.6` and `+36.7` in `f64` (`+16.6` in `f32`).
//!
//! ```
//! use gumbelgrad::estimators::noise;
//! use gumbelgrad::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let logits = Tensor::<f64>::from_vec(1, 3, vec![2.0, 0.0, -1.0])?;
//! let noise = noise::gumbel(1, 3, &mut rng);
//! assert!(noise.all_finite());
//! // Gumbel-max: the class is the argmax of logits + noise.
//! let classes = noise::gumbel_max(&logits, &noise, 3)?;
//! assert!(classes[0] < 3);
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use rand::Rng;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::softmax::{argmax_groups, log_softmax_groups};
use crate::kernels::threads::for_each_shared;
use crate::tensor::Tensor;

/// One draw of `u` from `[T::MIN_POSITIVE, 1)`: never 0 and never 1, in `T`'s own
/// precision (an `f64` draw close to 1 would round to exactly `1.0` in `f32`, so it is
/// clamped to the largest `T` below 1).
pub fn uniform_open<T: Float, R: Rng + ?Sized>(rng: &mut R) -> T {
    let u = T::from_f64(rng.random::<f64>());
    let below_one = T::ONE - T::EPSILON / (T::ONE + T::ONE);
    if u >= T::ONE {
        below_one
    } else {
        u.max(T::MIN_POSITIVE)
    }
}

/// `g = -ln(-ln u)`, the Gumbel(0, 1) inverse CDF, evaluated in `f64`.
/// Finite for every `u` in `(0, 1)`.
pub fn gumbel_from_uniform<T: Float>(u: T) -> T {
    let u = u.to_f64();
    T::from_f64(-(-u.ln()).ln())
}

/// `l = ln u - ln(1 - u)`, the Logistic(0, 1) inverse CDF (the difference of two
/// Gumbels), evaluated in `f64`. Finite for every `u` in `(0, 1)`.
pub fn logistic_from_uniform<T: Float>(u: T) -> T {
    let u = u.to_f64();
    T::from_f64(u.ln() - (-u).ln_1p())
}

/// A `rows x cols` tensor of uniforms from `[T::MIN_POSITIVE, 1)` (see [`uniform_open`]).
pub fn uniform<T: Float, R: Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Tensor<T> {
    let data = (0..rows * cols).map(|_| uniform_open(rng)).collect();
    Tensor::from_vec(rows, cols, data).expect("length matches")
}

/// A `rows x cols` tensor of i.i.d. Gumbel(0, 1) noise, `g = -ln(-ln u)`.
pub fn gumbel<T: Float, R: Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Tensor<T> {
    let data = (0..rows * cols)
        .map(|_| gumbel_from_uniform(uniform_open(rng)))
        .collect();
    Tensor::from_vec(rows, cols, data).expect("length matches")
}

/// Values per share of the Gumbel transform handed out among threads: two `f64`
/// logarithms each, about 50 µs of work, well above the cost of a hand-off.
const GUMBEL_CHUNK: usize = 2048;

/// Overwrites every element of `noise` with fresh Gumbel(0, 1) noise: the same numbers
/// [`gumbel`] would draw from `rng`, without allocating.
///
/// The uniforms are drawn in order on the calling thread; their two logarithms each,
/// which cost far more than the draw, are taken in fixed chunks shared among
/// [`num_threads`](crate::kernels::num_threads) threads. Each value is a function of its
/// own uniform alone, so the noise is the same for every thread count.
pub fn fill_gumbel<T: Float, R: Rng + ?Sized>(noise: &mut Tensor<T>, rng: &mut R) {
    let values = noise.as_mut_slice();
    for u in values.iter_mut() {
        *u = uniform_open(rng);
    }
    for_each_shared(values.chunks_mut(GUMBEL_CHUNK), |chunk| {
        for g in chunk {
            *g = gumbel_from_uniform(*g);
        }
    });
}

/// A `rows x cols` tensor of i.i.d. Logistic(0, 1) noise, `l = ln u - ln(1 - u)`:
/// the noise of the binary Concrete / relaxed Bernoulli, where
/// `1[logit + l > 0] ~ Bernoulli(sigmoid(logit))`.
pub fn logistic<T: Float, R: Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Tensor<T> {
    let data = (0..rows * cols)
        .map(|_| logistic_from_uniform(uniform_open(rng)))
        .collect();
    Tensor::from_vec(rows, cols, data).expect("length matches")
}

fn same_shape<T: Float>(op: &str, a: &Tensor<T>, b: &Tensor<T>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(
            op,
            a.shape(),
            b.shape(),
            "logits and noise must have the same shape",
        ));
    }
    Ok(())
}

/// Gumbel-max (eq. 1 of the paper): for each group of `group_size` columns, the index
/// `argmax_i (logits_i + noise_i)`. With Gumbel noise this is an exact sample from
/// `Categorical(softmax(logits))`. Returns one index per group, row by row.
pub fn gumbel_max<T: Float>(
    logits: &Tensor<T>,
    noise: &Tensor<T>,
    group_size: usize,
) -> Result<Vec<usize>> {
    same_shape("gumbel_max", logits, noise)?;
    let groups = crate::tensor::num_groups(logits.shape(), group_size, "gumbel_max")?;
    let perturbed: Vec<T> = logits
        .as_slice()
        .iter()
        .zip(noise.as_slice())
        .map(|(&x, &g)| x + g)
        .collect();
    let mut classes = vec![0; logits.rows() * groups];
    argmax_groups(&perturbed, group_size, &mut classes);
    Ok(classes)
}

/// One-hot encoding of per-group class indices: a `[rows, classes.len()/rows * K]`
/// tensor with exactly one `1` in each group of `group_size`.
pub fn one_hot<T: Float>(rows: usize, classes: &[usize], group_size: usize) -> Result<Tensor<T>> {
    if rows == 0 || !classes.len().is_multiple_of(rows) {
        return Err(Error::invalid_argument(
            "one_hot",
            format!("{} classes cannot be split into {rows} rows", classes.len()),
        ));
    }
    if let Some(&bad) = classes.iter().find(|&&c| c >= group_size) {
        return Err(Error::invalid_argument(
            "one_hot",
            format!("class {bad} is out of range for groups of {group_size}"),
        ));
    }
    let cols = classes.len() / rows * group_size;
    let mut out = Tensor::zeros(rows, cols);
    for (group, &class) in out.as_mut_slice().chunks_exact_mut(group_size).zip(classes) {
        group[class] = T::ONE;
    }
    Ok(out)
}

/// A categorical sample together with the noise that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalSample<T: Float> {
    /// The sampled class of every group, row by row.
    pub classes: Vec<usize>,
    /// The same sample one-hot encoded, shaped like the logits.
    pub one_hot: Tensor<T>,
    /// The Gumbel noise used (`classes = argmax(logits + noise)` per group).
    pub noise: Tensor<T>,
}

/// Draws one sample per group from `Categorical(softmax(logits))` by Gumbel-max,
/// keeping the noise.
pub fn sample_categorical<T: Float, R: Rng + ?Sized>(
    logits: &Tensor<T>,
    group_size: usize,
    rng: &mut R,
) -> Result<CategoricalSample<T>> {
    crate::tensor::num_groups(logits.shape(), group_size, "sample_categorical")?;
    let noise = gumbel(logits.rows(), logits.cols(), rng);
    let classes = gumbel_max(logits, &noise, group_size)?;
    // `one_hot` cannot tell the width of zero rows; an empty batch samples an empty
    // `[0, cols]` one-hot.
    let one_hot = if logits.rows() == 0 {
        Tensor::zeros(0, logits.cols())
    } else {
        one_hot(logits.rows(), &classes, group_size)?
    };
    Ok(CategoricalSample {
        classes,
        one_hot,
        noise,
    })
}

/// Draws `1[logit + l > 0]` with logistic noise `l` for every element: a sample from
/// `Bernoulli(sigmoid(logit))`. Returns `(sample, noise)`.
pub fn sample_bernoulli<T: Float, R: Rng + ?Sized>(
    logits: &Tensor<T>,
    rng: &mut R,
) -> (Tensor<T>, Tensor<T>) {
    let noise = logistic(logits.rows(), logits.cols(), rng);
    let sample = Tensor::from_vec(
        logits.rows(),
        logits.cols(),
        logits
            .as_slice()
            .iter()
            .zip(noise.as_slice())
            .map(|(&x, &l)| if x + l > T::ZERO { T::ONE } else { T::ZERO })
            .collect(),
    )
    .expect("same length");
    (sample, noise)
}

/// `ln(e^a + e^b)` without overflow.
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Conditional Gumbel noise for REBAR / RELAX (Tucker et al. 2017, Grathwohl et al.
/// 2018): perturbed log-probabilities `z_tilde ~ p(z | argmax z = b)` where
/// `z = ln theta + g`, `theta = softmax(logits)` per group and `b = classes[group]`.
///
/// With fresh uniforms `v` (one per element, from `[MIN_POSITIVE, 1)`):
/// - `z_tilde_b = -ln(-ln v_b)`,
/// - `z_tilde_i = -ln(-ln v_i / theta_i - ln v_b)` for `i != b`,
///
/// evaluated in log space as `-logaddexp(ln(-ln v_i) - ln theta_i, ln(-ln v_b))`, so
/// it stays finite even when `theta_i` underflows (logits of `-1e4`). The result
/// always has its group maximum at `b`. See [`ConditionalGumbel`](super::ConditionalGumbel)
/// for the same map as a differentiable tape op (REBAR differentiates through it).
pub fn conditional_gumbel_from_uniform<T: Float>(
    logits: &Tensor<T>,
    uniforms: &Tensor<T>,
    classes: &[usize],
    group_size: usize,
) -> Result<Tensor<T>> {
    same_shape("conditional_gumbel", logits, uniforms)?;
    let groups = crate::tensor::num_groups(logits.shape(), group_size, "conditional_gumbel")?;
    if classes.len() != logits.rows() * groups {
        return Err(Error::invalid_argument(
            "conditional_gumbel",
            format!(
                "{} classes given for {} groups",
                classes.len(),
                logits.rows() * groups
            ),
        ));
    }
    let mut log_probs = vec![T::ZERO; logits.len()];
    log_softmax_groups(logits.as_slice(), &mut log_probs, group_size);
    let mut out = Tensor::zeros(logits.rows(), logits.cols());
    for (((z, lp), v), &b) in out
        .as_mut_slice()
        .chunks_exact_mut(group_size)
        .zip(log_probs.chunks_exact(group_size))
        .zip(uniforms.as_slice().chunks_exact(group_size))
        .zip(classes)
    {
        if b >= group_size {
            return Err(Error::invalid_argument(
                "conditional_gumbel",
                format!("class {b} is out of range for groups of {group_size}"),
            ));
        }
        conditional_gumbel_group(lp, v, b, z);
    }
    Ok(out)
}

/// The per-group map behind [`conditional_gumbel_from_uniform`], from normalised
/// log-probabilities `lp`. Also used by the tape op.
pub(crate) fn conditional_gumbel_group<T: Float>(lp: &[T], v: &[T], b: usize, z: &mut [T]) {
    let log_e_b = (-v[b].to_f64().ln()).ln(); // ln(-ln v_b)
    for i in 0..lp.len() {
        z[i] = if i == b {
            T::from_f64(-log_e_b)
        } else {
            let a = (-v[i].to_f64().ln()).ln() - lp[i].to_f64();
            T::from_f64(-log_add_exp(a, log_e_b))
        };
    }
}

/// Draws conditional Gumbel noise (see [`conditional_gumbel_from_uniform`]) with fresh
/// uniforms from `rng`. Returns `(z_tilde, uniforms)`.
pub fn conditional_gumbel<T: Float, R: Rng + ?Sized>(
    logits: &Tensor<T>,
    classes: &[usize],
    group_size: usize,
    rng: &mut R,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let v = uniform(logits.rows(), logits.cols(), rng);
    let z = conditional_gumbel_from_uniform(logits, &v, classes, group_size)?;
    Ok((z, v))
}

/// Conditional logistic noise for the Bernoulli case of REBAR / RELAX: given
/// `b = 1[z > 0]` with `z = logit + ln u - ln(1-u)`, a fresh `z_tilde ~ p(z | b)`.
///
/// With `theta = sigmoid(logit)` and a fresh `v ~ U(0,1)`:
/// `v' = v (1 - theta)` if `b = 0`, `v' = v theta + (1 - theta)` if `b = 1`, and
/// `z_tilde = logit + ln v' - ln(1 - v')` (RELAX paper, appendix), evaluated in log
/// space so no cancellation or underflow occurs. See
/// [`ConditionalLogistic`](super::ConditionalLogistic) for the differentiable tape op.
pub fn conditional_logistic_from_uniform<T: Float>(
    logits: &Tensor<T>,
    uniforms: &Tensor<T>,
    sample: &Tensor<T>,
) -> Result<Tensor<T>> {
    same_shape("conditional_logistic", logits, uniforms)?;
    same_shape("conditional_logistic", logits, sample)?;
    let mut out = Tensor::zeros(logits.rows(), logits.cols());
    for (((z, &x), &v), &b) in out
        .as_mut_slice()
        .iter_mut()
        .zip(logits.as_slice())
        .zip(uniforms.as_slice())
        .zip(sample.as_slice())
    {
        *z = T::from_f64(conditional_logistic_one(
            x.to_f64(),
            v.to_f64(),
            b > T::from_f64(0.5),
        ));
    }
    Ok(out)
}

/// `z_tilde` for one unit; see [`conditional_logistic_from_uniform`].
pub(crate) fn conditional_logistic_one(x: f64, v: f64, b: bool) -> f64 {
    let (log_v1, log_one_minus_v1) = conditional_logistic_logs(x, v, b);
    x + log_v1 - log_one_minus_v1
}

/// `(ln v', ln(1 - v'))` for [`conditional_logistic_one`], in log space with
/// `ln theta = -softplus(-x)` and `ln(1 - theta) = -softplus(x)`:
/// - `b = 0`: `v' = v (1-theta)`, `1 - v' = (1 - v) + v theta`;
/// - `b = 1`: `v' = (1-theta) + v theta`, `1 - v' = theta (1 - v)`.
///
/// Every term is a sum of non-negative numbers (a `logaddexp`), so nothing cancels
/// and nothing underflows even for logits of `+-1e4`.
pub(crate) fn conditional_logistic_logs(x: f64, v: f64, b: bool) -> (f64, f64) {
    let log_theta = -crate::ops::unary::softplus(-x);
    let log_one_minus_theta = -crate::ops::unary::softplus(x);
    if b {
        (
            log_add_exp(log_one_minus_theta, v.ln() + log_theta),
            log_theta + (-v).ln_1p(),
        )
    } else {
        (
            v.ln() + log_one_minus_theta,
            log_add_exp((-v).ln_1p(), v.ln() + log_theta),
        )
    }
}

/// Draws conditional logistic noise (see [`conditional_logistic_from_uniform`]) with
/// fresh uniforms. Returns `(z_tilde, uniforms)`.
pub fn conditional_logistic<T: Float, R: Rng + ?Sized>(
    logits: &Tensor<T>,
    sample: &Tensor<T>,
    rng: &mut R,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let v = uniform(logits.rows(), logits.cols(), rng);
    let z = conditional_logistic_from_uniform(logits, &v, sample)?;
    Ok((z, v))
}
