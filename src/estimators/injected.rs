//! Noise handed to an estimator instead of drawn from the caller's generator.
//!
//! [`GradientEstimator::estimate_with_noise`] runs an estimator at an
//! [`InjectedNoise`], so that its output for a given sample (or given uniforms) can be
//! reproduced by hand: a test pins every random choice down, a lesson shows the formula
//! at one point. What each estimator reads:
//!
//! | estimator | [`Sample`](InjectedNoise::Sample) | [`Uniforms`](InjectedNoise::Uniforms) / [`Gumbel`](InjectedNoise::Gumbel) |
//! |---|---|---|
//! | REINFORCE, NVIL, MuProp, DARN | the sample `[B, N*K]` | the Gumbel-max sample of `logits + g` (`v` unused) |
//! | VIMCO (`m` samples) | the samples `[B*m, N*K]`, example-major | the same, from `g [B*m, N*K]` (`v` unused) |
//! | REBAR, RELAX | an error: they need the noise, not only the sample | `b = one_hot(argmax(logits + g))`, conditional noise `z~` from `v` |
//! | Gumbel-Softmax, the straight-through family | an error (the same) | the relaxation at `g` (`v` unused; `st-argmax` has no noise) |
//! | gapped ST, ReinMax | the sample (its estimate is a function of it) | the Gumbel-max sample of `logits + g` (`v` unused) |
//! | Gumbel-Rao (`m` conditional draws) | an error: it needs uniforms for its draws | the Gumbel-max sample of `logits + g`; draw `k` of row `r` from row `r*m + k` of `v [B*m, N*K]` |
//! | the binary-unit estimators | an error (the same) | the logistic noise `g_{2n+1} - g_{2n}` of the two-class layout |
//!
//! with `g = -ln(-ln u)` for [`Uniforms`](InjectedNoise::Uniforms). Estimators that
//! do not implement it (the default) record an [`Error::InvalidArgument`] on the tape.
//!
//! # Binary units
//! With `group_size = 1` (logits `[B, N]`) a [`Sample`](InjectedNoise::Sample) is the
//! bits `[B, N]` of zeros and ones. The noises are given in the two-class layout every
//! estimator runs binary units in (logits `[0, phi_n]`, see
//! [`bernoulli_as_categorical`]): `[B, 2N]`, columns
//! `2n` and `2n + 1` being the "off" and "on" classes of unit `n`, so that
//! `b_n = 1[phi_n + g_{2n+1} - g_{2n} > 0]`.

use rand::RngCore;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

use super::score::{bernoulli_as_categorical, poisoned_estimate};
use super::{Estimate, fail};

#[allow(unused_imports)]
use super::GradientEstimator; // for the rustdoc links above

/// The randomness of one estimator call, given instead of drawn (see the
/// [module documentation](self) for what each estimator reads).
#[derive(Debug, Clone, PartialEq)]
pub enum InjectedNoise {
    /// A hard sample: one-hot groups `[B, N*K]` (VIMCO: `[B*m, N*K]`), or bits `[B, N]`
    /// for binary units.
    Sample(Tensor<f64>),
    /// Uniforms in `(0, 1)`, shaped like the (two-class, for binary units) logits:
    /// `u` gives the Gumbel noise `g = -ln(-ln u)` and the sample
    /// `b = one_hot(argmax(logits + g))`; `v` gives REBAR's and RELAX's conditional
    /// noise `z~` (see [`conditional_gumbel`](super::conditional_gumbel)).
    Uniforms {
        /// Uniforms of the Gumbel noise.
        u: Tensor<f64>,
        /// Uniforms of the conditional noise.
        v: Tensor<f64>,
    },
    /// The Gumbel noise `g` itself (finite), and the conditional uniforms `v` as in
    /// [`Uniforms`](InjectedNoise::Uniforms).
    Gumbel {
        /// Gumbel noise: the sample is `one_hot(argmax(logits + gumbel))`.
        gumbel: Tensor<f64>,
        /// Uniforms of the conditional noise.
        v: Tensor<f64>,
    },
}

impl InjectedNoise {
    /// The one-hot sample for categorical `logits` (`[B, N*K]`, groups of
    /// `group_size`), repeated `repeats` times per example (rows `b * repeats + j`):
    /// the given sample after checking it, or the Gumbel-max sample of the given noise.
    /// `op` names the estimator in errors (wrong shape, not one-hot, a uniform outside
    /// `(0, 1)`, a non-finite Gumbel).
    pub fn hard_sample(
        &self,
        logits: &Tensor<f64>,
        group_size: usize,
        repeats: usize,
        op: &str,
    ) -> Result<Tensor<f64>> {
        let (rows, cols) = (logits.rows() * repeats, logits.cols());
        crate::tensor::num_groups(logits.shape(), group_size, op)?;
        let expected = crate::tensor::Shape::new(rows, cols);
        let gumbel = match self {
            InjectedNoise::Sample(sample) => {
                check_shape(op, "sample", sample, expected)?;
                check_one_hot(op, sample, group_size)?;
                return Ok(sample.clone());
            }
            InjectedNoise::Uniforms { u, .. } => {
                check_shape(op, "u", u, expected)?;
                check_uniforms::<f64>(op, "u", u)?;
                u.map(|u| -(-u.ln()).ln())
            }
            InjectedNoise::Gumbel { gumbel, .. } => {
                check_shape(op, "gumbel", gumbel, expected)?;
                if let Some(bad) = gumbel.as_slice().iter().find(|g| !g.is_finite()) {
                    return Err(Error::invalid_argument(
                        op,
                        format!("the injected Gumbel noise must be finite, got {bad}"),
                    ));
                }
                gumbel.clone()
            }
        };
        let mut perturbed = gumbel.into_vec();
        for (r, row) in perturbed.chunks_exact_mut(cols).enumerate() {
            for (x, &l) in row.iter_mut().zip(logits.row(r / repeats)) {
                *x += l;
            }
        }
        let mut out = vec![0.0; rows * cols];
        for (group, one_hot) in perturbed
            .chunks_exact(group_size)
            .zip(out.chunks_exact_mut(group_size))
        {
            let best = (0..group_size).fold(0, |b, i| if group[i] > group[b] { i } else { b });
            one_hot[best] = 1.0;
        }
        Ok(Tensor::from_vec(rows, cols, out).expect("sizes"))
    }

    /// The Gumbel noise, the one-hot sample and the conditional uniforms for REBAR and
    /// RELAX, all shaped like `logits`; the uniforms are checked to stay inside
    /// `(0, 1)` in `T` (where the conditional-noise ops read them). A
    /// [`Sample`](InjectedNoise::Sample) is an error: these estimators need the noise
    /// that produced the sample.
    pub fn relaxation_noise<T: Float>(
        &self,
        logits: &Tensor<f64>,
        group_size: usize,
        op: &str,
    ) -> Result<(Tensor<f64>, Tensor<f64>, Tensor<f64>)> {
        let v = match self {
            InjectedNoise::Sample(_) => {
                return Err(Error::invalid_argument(
                    op,
                    "this estimator relaxes the sample's own noise: inject `Uniforms` or \
                     `Gumbel`, not a `Sample`",
                ));
            }
            InjectedNoise::Uniforms { v, .. } | InjectedNoise::Gumbel { v, .. } => v,
        };
        check_shape(op, "v", v, logits.shape())?;
        check_uniforms::<T>(op, "v", v)?;
        let sample = self.hard_sample(logits, group_size, 1, op)?;
        let gumbel = match self {
            InjectedNoise::Uniforms { u, .. } => u.map(|u| -(-u.ln()).ln()),
            InjectedNoise::Gumbel { gumbel, .. } => gumbel.clone(),
            InjectedNoise::Sample(_) => unreachable!("rejected above"),
        };
        Ok((gumbel, sample, v.clone()))
    }

    /// The Gumbel noise `[rows, cols]` for the relaxed estimators (Gumbel-Softmax, the
    /// straight-through family): `gumbel`, or `-ln(-ln u)`. A
    /// [`Sample`](InjectedNoise::Sample) is an error (a relaxation needs the noise).
    pub fn gumbel_noise(&self, shape: crate::Shape, op: &str) -> Result<Tensor<f64>> {
        let gumbel = match self {
            InjectedNoise::Sample(_) => {
                return Err(Error::invalid_argument(
                    op,
                    "this estimator relaxes the sample's own noise: inject `Uniforms` or \
                     `Gumbel`, not a `Sample`",
                ));
            }
            InjectedNoise::Uniforms { u, .. } => {
                check_shape(op, "u", u, shape)?;
                check_uniforms::<f64>(op, "u", u)?;
                u.map(|u| -(-u.ln()).ln())
            }
            InjectedNoise::Gumbel { gumbel, .. } => {
                check_shape(op, "gumbel", gumbel, shape)?;
                gumbel.clone()
            }
        };
        if let Some(bad) = gumbel.as_slice().iter().find(|g| !g.is_finite()) {
            return Err(Error::invalid_argument(
                op,
                format!("the injected Gumbel noise must be finite, got {bad}"),
            ));
        }
        Ok(gumbel)
    }

    /// The logistic noise `[rows, N]` of binary units from Gumbel noise in the
    /// two-class layout `[rows, 2N]`: `l_n = g_{2n+1} - g_{2n}` (the difference of two
    /// Gumbels is logistic), so `1[phi_n + l_n > 0]` is the unit's Gumbel-max sample.
    pub fn logistic_noise(&self, units: crate::Shape, op: &str) -> Result<Tensor<f64>> {
        let pairs = crate::Shape::new(units.rows, 2 * units.cols);
        let gumbel = self.gumbel_noise(pairs, op)?;
        let logistic = gumbel
            .as_slice()
            .chunks_exact(2)
            .map(|g| g[1] - g[0])
            .collect();
        Ok(Tensor::from_vec(units.rows, units.cols, logistic).expect("one per pair"))
    }

    /// The same noise for binary units run as two-class pairs (see the [module
    /// documentation](self)): bits `b` become one-hot pairs `[1 - b, b]`; noises must
    /// already be in the pair layout (twice the units' columns) and pass unchanged.
    pub fn on_pairs(&self, units: usize, op: &str) -> Result<InjectedNoise> {
        match self {
            InjectedNoise::Sample(bits) => {
                if bits.cols() != units {
                    return Err(Error::invalid_argument(
                        op,
                        format!(
                            "the injected bits must have one column per unit ({units}), got {}",
                            bits.cols()
                        ),
                    ));
                }
                if let Some(bad) = bits.as_slice().iter().find(|&&b| b != 0.0 && b != 1.0) {
                    return Err(Error::invalid_argument(
                        op,
                        format!("injected bits must be 0 or 1, got {bad}"),
                    ));
                }
                let pairs = bits.as_slice().iter().flat_map(|&b| [1.0 - b, b]).collect();
                Ok(InjectedNoise::Sample(
                    Tensor::from_vec(bits.rows(), 2 * units, pairs).expect("two per bit"),
                ))
            }
            other => {
                let (name, noise) = match other {
                    InjectedNoise::Uniforms { u, .. } => ("u", u),
                    InjectedNoise::Gumbel { gumbel, .. } => ("gumbel", gumbel),
                    InjectedNoise::Sample(_) => unreachable!("matched above"),
                };
                if noise.cols() != 2 * units {
                    return Err(Error::invalid_argument(
                        op,
                        format!(
                            "for {units} binary units the injected `{name}` is in the two-class \
                             layout, {} columns, got {}",
                            2 * units,
                            noise.cols()
                        ),
                    ));
                }
                Ok(other.clone())
            }
        }
    }
}

/// Runs `categorical` on binary units (`group_size = 1`) as two-class pairs, like
/// [`bernoulli_as_categorical`], handing it the noise in the pair layout
/// ([`InjectedNoise::on_pairs`]) when there is one. A noise that does not fit is an
/// error on the tape.
pub fn bernoulli_as_categorical_with_noise<'t, T: Float>(
    logits: Var<'t, T>,
    noise: Option<&InjectedNoise>,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    rng: &mut dyn RngCore,
    op: &str,
    categorical: impl FnOnce(
        Var<'t, T>,
        Option<&InjectedNoise>,
        &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        &mut dyn RngCore,
    ) -> Estimate<'t, T>,
) -> Estimate<'t, T> {
    if logits.is_poisoned() {
        return poisoned_estimate(logits);
    }
    let pairs = match noise
        .map(|n| n.on_pairs(logits.shape().cols, op))
        .transpose()
    {
        Ok(pairs) => pairs,
        Err(error) => return poisoned_estimate(fail(logits.tape(), error)),
    };
    bernoulli_as_categorical(logits, cost, rng, |logits, cost, rng| {
        categorical(logits, pairs.as_ref(), cost, rng)
    })
}

fn check_shape(op: &str, what: &str, tensor: &Tensor<f64>, expected: crate::Shape) -> Result<()> {
    if tensor.shape() != expected {
        return Err(Error::shape_mismatch(
            op,
            tensor.shape(),
            expected,
            format!("the injected `{what}` has the wrong shape"),
        ));
    }
    Ok(())
}

fn check_one_hot(op: &str, sample: &Tensor<f64>, group_size: usize) -> Result<()> {
    for group in sample.as_slice().chunks_exact(group_size) {
        let ones = group.iter().filter(|&&v| v == 1.0).count();
        let zeros = group.iter().filter(|&&v| v == 0.0).count();
        if ones != 1 || zeros != group_size - 1 {
            return Err(Error::invalid_argument(
                op,
                format!("every group of {group_size} must be one-hot, got {group:?}"),
            ));
        }
    }
    Ok(())
}

/// Every entry strictly inside `(0, 1)`, also after rounding to `T`.
pub(crate) fn check_uniforms<T: Float>(op: &str, what: &str, uniforms: &Tensor<f64>) -> Result<()> {
    let inside = |x: f64| {
        let rounded = T::from_f64(x).to_f64();
        x > 0.0 && x < 1.0 && rounded > 0.0 && rounded < 1.0
    };
    if let Some(bad) = uniforms.as_slice().iter().find(|&&x| !inside(x)) {
        return Err(Error::invalid_argument(
            op,
            format!(
                "the injected `{what}` must lie strictly inside (0, 1) (in this precision), got {bad}"
            ),
        ));
    }
    Ok(())
}
