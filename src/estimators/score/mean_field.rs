//! The mean-field map `z_bar = softmax(logits)`, per group, as a differentiable op.
//!
//! MuProp and DARN expand the cost around the mean of the categorical sample,
//! `E[z] = softmax(logits)`; REBAR and RELAX need the probabilities inside their
//! conditional noise. (A private stand-in until the relaxation branch's ops are merged.)

use crate::error::Result;
use crate::float::Float;
use crate::kernels::softmax::{softmax_backward_groups, softmax_groups};
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor, num_groups};

/// `y = softmax(x)` over each group of `group_size` consecutive columns.
///
/// Backward: `d y_i / d x_j = y_i (delta_ij - y_j)`, so
/// `grad_x = y ⊙ (grad_y - <grad_y, y>)` per group.
#[derive(Debug, Clone, Copy)]
pub struct GroupSoftmax {
    /// Number of classes per group.
    pub group_size: usize,
}

impl<T: Float> Op<T> for GroupSoftmax {
    fn name(&self) -> &'static str {
        "group_softmax"
    }
    fn describe(&self) -> String {
        format!("group_softmax(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("group_softmax", inputs, 1)?;
        num_groups(inputs[0], self.group_size, "group_softmax")?;
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        softmax_groups(inputs[0].as_slice(), output.as_mut_slice(), self.group_size);
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            softmax_backward_groups(
                output.as_slice(),
                grad_output.as_slice(),
                grad.as_mut_slice(),
                self.group_size,
                T::ONE,
            );
        }
    }
}

/// `softmax(x)` per group of `group_size` columns: see [`GroupSoftmax`].
pub fn softmax<'t, T: Float>(x: Var<'t, T>, group_size: usize) -> Var<'t, T> {
    x.tape().record(GroupSoftmax { group_size }, &[x])
}
