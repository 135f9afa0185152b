//! A node that injects a precomputed gradient into its input.
//!
//! REBAR and RELAX compute their per-example estimate `g_r` of `d f_r / d logits_r`
//! numerically (it mixes a score-function term, reparameterised gradients of the
//! relaxed cost at two noise draws, and a learned surrogate), and then need the
//! logits' upstream network to receive exactly that gradient. This op does it.

use crate::error::Result;
use crate::float::Float;
use crate::op::{Op, expect_same_shapes};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// Inputs `x [B, C]` and `gradient [B, C]` (a constant); output `[B, 1]` of zeros.
///
/// Backward: `grad_x_r += grad_out_r * gradient_r`, i.e. the output behaves like
/// `<gradient_r, x_r - stop_gradient(x_r)>`: value zero, gradient `gradient`. The
/// gradient input gets no gradient.
#[derive(Debug, Clone, Copy)]
pub struct InjectedGradient;

impl<T: Float> Op<T> for InjectedGradient {
    fn name(&self) -> &'static str {
        "injected_gradient"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let shape = expect_same_shapes(
            "injected_gradient",
            inputs,
            "the gradient must have the input's shape",
        )?;
        Ok(Shape::new(shape.rows, 1))
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
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            for r in 0..grad.rows() {
                let weight = grad_output.as_slice()[r];
                for (g, &v) in grad.row_mut(r).iter_mut().zip(inputs[1].row(r)) {
                    *g += weight * v;
                }
            }
        }
    }
}

/// A zero-valued `[B, 1]` term whose gradient with respect to `x` is `gradient`.
pub fn inject_gradient<'t, T: Float>(x: Var<'t, T>, gradient: Var<'t, T>) -> Var<'t, T> {
    x.tape().record(InjectedGradient, &[x, gradient])
}
