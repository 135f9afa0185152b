//! One-hot of the per-group argmax: the *hard*, discrete choice.
//!
//! This op is **not differentiable**, and says so ([`Op::differentiable`] returns
//! `false`): its output is piecewise constant in its input, so its true derivative is
//! zero almost everywhere (and undefined on ties). The tape therefore stops gradients
//! at its output, and the tape dump marks it `not differentiable`.
//!
//! That zero gradient is exactly the problem gradient estimators exist to work around.
//! The straight-through Gumbel-Softmax estimator, for instance, uses this op's output
//! in the forward pass and the gradient of a relaxed softmax in the backward pass,
//! typically written `hard + (soft - soft.detach())` where
//! `hard = soft.one_hot_argmax(k)` carries no gradient of its own.

use crate::error::Result;
use crate::float::Float;
use crate::kernels::softmax::one_hot_argmax_groups;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor, num_groups};

/// `y_g = one_hot(argmax(x_g))` for every group of `group_size` consecutive columns
/// (the first maximum wins a tie).
///
/// Non-differentiable: `d y / d x = 0` wherever it exists, so no VJP is defined and the
/// tape never calls [`Op::backward`] on it.
#[derive(Debug, Clone, Copy)]
pub struct OneHotArgmax {
    /// Number of classes `K` in each group.
    pub group_size: usize,
}

impl<T: Float> Op<T> for OneHotArgmax {
    fn name(&self) -> &'static str {
        "one_hot_argmax"
    }
    fn describe(&self) -> String {
        format!("one_hot_argmax(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("one_hot_argmax", inputs, 1)?;
        num_groups(inputs[0], self.group_size, "one_hot_argmax")?;
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        one_hot_argmax_groups(inputs[0].as_slice(), output.as_mut_slice(), self.group_size);
    }
    /// Never called: the op is not differentiable (gradients stop at its output).
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        _grad_output: &Tensor<T>,
        _grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
    }
    fn differentiable(&self) -> bool {
        false
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// One-hot of the argmax of each group of `group_size` consecutive columns.
    ///
    /// **Not differentiable**: no gradient flows back through the result (see the
    /// [module documentation](crate::ops::argmax)).
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.variable(&Tensor::from_vec(1, 6, vec![0.1, 2.0, -1.0, 5.0, 0.0, 4.0])?);
    /// let hard = logits.one_hot_argmax(3);
    /// assert_eq!(hard.value()?.as_slice(), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    /// assert!(!hard.requires_grad());
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn one_hot_argmax(self, group_size: usize) -> Var<'t, T> {
        self.tape().record(OneHotArgmax { group_size }, &[self])
    }
}
