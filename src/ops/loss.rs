//! Losses: binary cross-entropy with logits.
//!
//! A Bernoulli decoder (the binarised-MNIST VAE's) outputs a *logit* `x` per pixel,
//! the log-odds of the pixel being on. The negative log-likelihood of an observed pixel
//! `t` (0 or 1, or a probability in between) is
//! `-[t ln sigmoid(x) + (1 - t) ln(1 - sigmoid(x))] = softplus(x) - t x`.
//! Computing it from the logit, rather than from `sigmoid(x)` and then `ln`, never
//! takes the log of a rounded-to-zero probability.

use crate::error::Result;
use crate::float::Float;
use crate::kernels::bce;
use crate::op::{Op, expect_same_shapes};
use crate::ops::unary::sigmoid;
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// Elementwise binary cross-entropy with logits: inputs `(logits x, targets t)` of the
/// same shape, output `bce(x, t) = softplus(x) - t x`.
///
/// Evaluated as `max(x, 0) - t x + ln(1 + e^-|x|)`: no exponential of a positive number
/// is ever taken, and for a confident correct logit (`x = 1e4, t = 1`) the first two
/// terms cancel exactly, so the result is finite (and accurate) for any finite `x`.
///
/// `d bce / d x = sigmoid(x) - t`, `d bce / d t = -x`.
///
/// f32 tensors take `exp`, `log1p` and `sigmoid` from the vectorised polynomials of
/// [`kernels::bce`](crate::kernels::bce) (within a few roundings of the library's);
/// other types take [`bce_with_logits`] and the library functions.
#[derive(Debug, Clone, Copy)]
pub struct BceWithLogits;

/// `softplus(x) - t x`, without overflow or cancellation (see [`BceWithLogits`]), through
/// the library's `exp` and `ln_1p`: the scalar form of the loss, and the f64 ops' terms.
#[inline(always)]
pub fn bce_with_logits<T: Float>(logit: T, target: T) -> T {
    logit.max(T::ZERO) - target * logit + (-logit.abs()).exp().ln_1p()
}

impl<T: Float> Op<T> for BceWithLogits {
    fn name(&self) -> &'static str {
        "bce_with_logits"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_same_shapes(
            "bce_with_logits",
            inputs,
            "logits and targets must have the same shape",
        )
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let (logits, targets) = (inputs[0].as_slice(), inputs[1].as_slice());
        let output = output.as_mut_slice();
        if let (Some(l), Some(t), Some(y)) =
            (T::as_f32(logits), T::as_f32(targets), T::as_f32_mut(output))
        {
            return bce::bce_with_logits_terms_f32(l, t, y);
        }
        for ((y, &x), &t) in output.iter_mut().zip(logits).zip(targets) {
            *y = bce_with_logits(x, t);
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let (logits, targets) = (inputs[0].as_slice(), inputs[1].as_slice());
        let g = grad_output.as_slice();
        let [grad_logits, grad_targets] = grad_inputs else {
            unreachable!("bce_with_logits has two inputs")
        };
        if let Some(grad) = grad_logits.as_deref_mut() {
            let grad = grad.as_mut_slice();
            if let (Some(l), Some(t), Some(g), Some(d)) = (
                T::as_f32(logits),
                T::as_f32(targets),
                T::as_f32(g),
                T::as_f32_mut(grad),
            ) {
                bce::add_bce_logit_gradient_f32(l, t, g, d);
            } else {
                for (((d, &x), &t), &go) in grad.iter_mut().zip(logits).zip(targets).zip(g) {
                    *d += go * (sigmoid(x) - t);
                }
            }
        }
        if let Some(grad) = grad_targets.as_deref_mut() {
            for ((d, &x), &go) in grad.as_mut_slice().iter_mut().zip(logits).zip(g) {
                *d -= go * x;
            }
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise binary cross-entropy `softplus(x) - t x` between these logits `x`
    /// and `targets` `t` of the same shape (a shape mismatch is recorded as an
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch)). Differentiable in both.
    ///
    /// Sum it over the columns for the negative log-likelihood of each example:
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.variable(&Tensor::from_vec(1, 3, vec![0.0, 1e4, -1e4])?);
    /// let pixels = tape.constant(&Tensor::from_vec(1, 3, vec![1.0, 1.0, 1.0])?);
    /// let nll = logits.bce_with_logits(pixels).sum_cols(); // [1, 1]
    /// // ln 2 for the unsure pixel, 0 for the confident right one, 1e4 for the wrong one
    /// assert!((nll.scalar()? - (2f64.ln() + 1e4)).abs() < 1e-9);
    /// tape.backward(nll)?;
    /// assert_eq!(logits.grad().unwrap().as_slice(), &[-0.5, 0.0, -1.0]); // sigmoid(x) - t
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn bce_with_logits(self, targets: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(BceWithLogits, &[self, targets])
    }
}
