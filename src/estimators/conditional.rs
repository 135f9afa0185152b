//! Conditional relaxation noise as differentiable tape ops, for REBAR and RELAX.
//!
//! REBAR and RELAX need, beside the sample `b = H(z)`, a second relaxed variable
//! `z_tilde ~ p(z | b)` drawn *given* the discrete sample, and they differentiate
//! through it: `z_tilde` is a reparameterised function of the logits and fresh
//! uniforms `v`. The maps themselves live in [`noise`](super::noise)
//! ([`conditional_gumbel_from_uniform`](super::noise::conditional_gumbel_from_uniform),
//! [`conditional_logistic_from_uniform`](super::noise::conditional_logistic_from_uniform));
//! these ops add their derivatives with respect to the logits. The uniforms and the
//! sample are constants (no gradient).
//!
//! ```
//! use gumbelgrad::estimators::{conditional_gumbel, gumbel_softmax, noise};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(4);
//! let logits = Tensor::<f64>::from_vec(1, 4, vec![0.5, -1.0, 2.0, 0.0])?;
//! let sample = noise::sample_categorical(&logits, 4, &mut rng)?;
//! let tape = Tape::new();
//! let x = tape.variable(&logits);
//! let v = tape.constant(&noise::uniform(1, 4, &mut rng));
//! let b = tape.constant(&sample.one_hot);
//! let z_tilde = conditional_gumbel(x, v, b, 4);
//! // z_tilde | b has its maximum at the sampled class
//! let z = z_tilde.value()?;
//! let top = (0..4).max_by(|&i, &j| z.get(0, i).total_cmp(&z.get(0, j))).unwrap();
//! assert_eq!(top, sample.classes[0]);
//! // the relaxed conditional sample REBAR feeds to the cost, differentiable in x
//! let zeros = tape.constant(&Tensor::zeros(1, 4));
//! let y_tilde = gumbel_softmax(z_tilde, zeros, 0.5, 4);
//! tape.backward((y_tilde * y_tilde).sum())?;
//! assert!(x.grad().is_some());
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use super::noise::{conditional_gumbel_group, conditional_logistic_logs, conditional_logistic_one};
use super::same_shape_grouped;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::softmax::{log_softmax_groups, softmax_groups};
use crate::op::{Op, expect_arity};
use crate::ops::unary::sigmoid;
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// The sampled class of a one-hot group (the position of its largest entry).
fn class_of<T: Float>(one_hot: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in one_hot.iter().enumerate() {
        if v > one_hot[best] {
            best = i;
        }
    }
    best
}

/// Conditional Gumbel: inputs `(logits, uniforms v, one-hot sample b)`, output the
/// perturbed log-probabilities `z_tilde ~ p(ln theta + g | argmax = b)` per group
/// (see [`conditional_gumbel_from_uniform`](super::noise::conditional_gumbel_from_uniform)).
///
/// With `l = log_softmax(x)`, `E_i = -ln v_i`, `a_i = ln E_i - l_i`, `c = ln E_b`:
/// `z_b = -c` (independent of `x`) and `z_i = -logaddexp(a_i, c)` for `i != b`, so
/// `d z_i / d l_i = w_i = sigmoid(a_i - c)`. Through `l = log_softmax(x)`:
/// `grad_l_i = grad_z_i w_i` (0 at `b`), `grad_x = grad_l - theta * sum(grad_l)`.
#[derive(Debug, Clone, Copy)]
pub struct ConditionalGumbel {
    /// Classes per categorical variable, `K`.
    pub group_size: usize,
}

impl<T: Float> Op<T> for ConditionalGumbel {
    fn name(&self) -> &'static str {
        "conditional_gumbel"
    }
    fn describe(&self) -> String {
        format!("conditional_gumbel(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("conditional_gumbel", inputs, 3)?;
        same_shape_grouped("conditional_gumbel", inputs[0], inputs[1], self.group_size)?;
        same_shape_grouped("conditional_gumbel", inputs[0], inputs[2], self.group_size)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let k = self.group_size;
        let mut log_probs = vec![T::ZERO; inputs[0].len()];
        log_softmax_groups(inputs[0].as_slice(), &mut log_probs, k);
        for (((z, lp), v), b) in output
            .as_mut_slice()
            .chunks_exact_mut(k)
            .zip(log_probs.chunks_exact(k))
            .zip(inputs[1].as_slice().chunks_exact(k))
            .zip(inputs[2].as_slice().chunks_exact(k))
        {
            conditional_gumbel_group(lp, v, class_of(b), z);
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let Some(grad) = grad_inputs[0].as_deref_mut() else {
            return;
        };
        let k = self.group_size;
        let x = inputs[0].as_slice();
        let mut log_probs = vec![T::ZERO; x.len()];
        log_softmax_groups(x, &mut log_probs, k);
        let mut probs = vec![T::ZERO; x.len()];
        softmax_groups(x, &mut probs, k);
        let mut grad_l = vec![0.0f64; k];
        for ((((gx, lp), p), (v, b)), gz) in grad
            .as_mut_slice()
            .chunks_exact_mut(k)
            .zip(log_probs.chunks_exact(k))
            .zip(probs.chunks_exact(k))
            .zip(
                inputs[1]
                    .as_slice()
                    .chunks_exact(k)
                    .zip(inputs[2].as_slice().chunks_exact(k)),
            )
            .zip(grad_output.as_slice().chunks_exact(k))
        {
            let b = class_of(b);
            let c = (-v[b].to_f64().ln()).ln();
            let mut total = 0.0;
            for i in 0..k {
                grad_l[i] = if i == b {
                    0.0
                } else {
                    let a = (-v[i].to_f64().ln()).ln() - lp[i].to_f64();
                    gz[i].to_f64() * sigmoid(a - c)
                };
                total += grad_l[i];
            }
            for i in 0..k {
                gx[i] += T::from_f64(grad_l[i] - p[i].to_f64() * total);
            }
        }
    }
}

/// Conditional logistic (Bernoulli): inputs `(logits, uniforms v, sample b in {0,1})`,
/// output `z_tilde ~ p(x + logistic | 1[z > 0] = b)` elementwise (see
/// [`conditional_logistic_from_uniform`](super::noise::conditional_logistic_from_uniform)).
///
/// With `theta = sigmoid(x)`, `z = x + ln v' - ln(1 - v')`:
/// - `b = 1`, `v' = (1-theta) + v theta`: `dz/dx = theta - (1-v) theta (1-theta) / v'`;
/// - `b = 0`, `v' = v (1-theta)`: `dz/dx = (1-theta) - v theta (1-theta) / (1 - v')`.
#[derive(Debug, Clone, Copy)]
pub struct ConditionalLogistic;

impl<T: Float> Op<T> for ConditionalLogistic {
    fn name(&self) -> &'static str {
        "conditional_logistic"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("conditional_logistic", inputs, 3)?;
        for other in [inputs[1], inputs[2]] {
            if other != inputs[0] {
                return Err(Error::shape_mismatch(
                    "conditional_logistic",
                    inputs[0],
                    other,
                    "logits, uniforms and sample must have the same shape",
                ));
            }
        }
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        for (((z, &x), &v), &b) in output
            .as_mut_slice()
            .iter_mut()
            .zip(inputs[0].as_slice())
            .zip(inputs[1].as_slice())
            .zip(inputs[2].as_slice())
        {
            *z = T::from_f64(conditional_logistic_one(
                x.to_f64(),
                v.to_f64(),
                b > T::from_f64(0.5),
            ));
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let Some(grad) = grad_inputs[0].as_deref_mut() else {
            return;
        };
        for ((((g, &x), &v), &b), &go) in grad
            .as_mut_slice()
            .iter_mut()
            .zip(inputs[0].as_slice())
            .zip(inputs[1].as_slice())
            .zip(inputs[2].as_slice())
            .zip(grad_output.as_slice())
        {
            let (x, v, b) = (x.to_f64(), v.to_f64(), b > T::from_f64(0.5));
            let log_theta = -crate::ops::unary::softplus(-x);
            let log_one_minus_theta = -crate::ops::unary::softplus(x);
            let (log_v1, log_one_minus_v1) = conditional_logistic_logs(x, v, b);
            let derivative = if b {
                log_theta.exp() - ((-v).ln_1p() + log_theta + log_one_minus_theta - log_v1).exp()
            } else {
                log_one_minus_theta.exp()
                    - (v.ln() + log_theta + log_one_minus_theta - log_one_minus_v1).exp()
            };
            *g += go * T::from_f64(derivative);
        }
    }
}

/// Records a [`ConditionalGumbel`] op: `z_tilde` given the one-hot `sample`.
pub fn conditional_gumbel<'t, T: Float>(
    logits: Var<'t, T>,
    uniforms: Var<'t, T>,
    sample: Var<'t, T>,
    group_size: usize,
) -> Var<'t, T> {
    logits.tape().record(
        ConditionalGumbel { group_size },
        &[logits, uniforms, sample],
    )
}

/// Records a [`ConditionalLogistic`] op: `z_tilde` given the binary `sample`.
pub fn conditional_logistic<'t, T: Float>(
    logits: Var<'t, T>,
    uniforms: Var<'t, T>,
    sample: Var<'t, T>,
) -> Var<'t, T> {
    logits
        .tape()
        .record(ConditionalLogistic, &[logits, uniforms, sample])
}
