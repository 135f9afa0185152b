//! The [`Op`] trait: what every node on the tape implements.
//!
//! An op is a function of one or more tensors together with its vector-Jacobian
//! product (VJP). The tape calls [`Op::output_shape`] when the op is *recorded* (so a
//! shape mismatch is reported at once, naming the op and the shapes), [`Op::forward`]
//! right after, and [`Op::backward`] during [`Tape::backward`](crate::Tape::backward).
//!
//! The same trait is the crate's custom-op API: implement it for your own struct and
//! record it with [`Tape::record`](crate::Tape::record); `examples/custom_op.rs` shows a
//! complete op gradient-checked with [`gradcheck`](crate::gradcheck()).

use std::fmt::Debug;

use crate::error::Result;
use crate::float::Float;
use crate::tensor::{Shape, Tensor};

/// A differentiable (or explicitly non-differentiable) function on tensors.
///
/// Implementations keep the forward computation and its derivative side by side, and
/// write the derivative in the doc comment, e.g. `d/dx relu(x) = 1[x > 0]`.
///
/// # Contract
/// - `output_shape` validates the inputs (count and shapes) and returns the output
///   shape, or an error naming the op and the offending shapes.
/// - `forward` overwrites every element of `output`, which arrives with the shape
///   returned by `output_shape` (its previous contents are unspecified: in debug
///   builds they are NaN, so an op that reads an element before writing it fails its
///   gradcheck).
/// - `backward` **adds** (`+=`) the VJP for each input into `grad_inputs[i]`, which is
///   `None` for inputs that do not need a gradient. Accumulating rather than assigning
///   is what makes fan-out (a value used several times) correct.
/// - `backward_with_fresh` (provided) is what the tape calls: it says which gradient
///   buffers are new and hold unspecified values, so an op whose VJP is a product can
///   write them instead of adding into zeros.
/// - Ops hold only constants (a temperature, a group size). Randomness comes in as an
///   input tensor, so every op is a deterministic function of its inputs.
pub trait Op<T: Float>: Debug + 'static {
    /// Short name used in errors, tape dumps and graphs, e.g. `"matmul"`.
    fn name(&self) -> &'static str;

    /// Name with parameters for tape dumps, e.g. `"softmax(group=10)"`.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// Checks the input shapes and returns the output shape.
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape>;

    /// Computes the output from the inputs.
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>);

    /// Adds `grad_output`'s pull-back through this op into each `grad_inputs[i]`.
    ///
    /// Never called for an op whose [`Op::differentiable`] is `false`.
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    );

    /// [`Op::backward`] when some gradient buffers are *fresh*: `fresh[i]` says that
    /// `grad_inputs[i]` has received no gradient yet and holds unspecified values. The
    /// op must leave a fresh buffer holding exactly its VJP (assign), and add into the
    /// others as `backward` does.
    ///
    /// The tape calls this method. The provided version zeroes the fresh buffers and
    /// calls `backward`, so an op overrides it only to save that pass, as
    /// [`MatMul`](crate::ops::matmul::MatMul) and [`Linear`](crate::ops::linear::Linear)
    /// do: their products write a fresh buffer directly
    /// ([`gemm_overwrite`](crate::kernels::matmul::gemm_overwrite)) instead of adding
    /// into zeros.
    fn backward_with_fresh(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
        fresh: &[bool],
    ) {
        for (slot, &is_fresh) in grad_inputs.iter_mut().zip(fresh) {
            if is_fresh && let Some(buffer) = slot {
                buffer.fill_zero();
            }
        }
        self.backward(inputs, output, grad_output, grad_inputs);
    }

    /// `false` for ops with no useful derivative (argmax, one-hot, sampling):
    /// gradients stop at their output, and the tape dump marks them.
    fn differentiable(&self) -> bool {
        true
    }
}

/// Checks the number of inputs an op received.
pub fn expect_arity(op: &str, inputs: &[Shape], arity: usize) -> Result<()> {
    if inputs.len() != arity {
        return Err(crate::Error::invalid_argument(
            op,
            format!("expected {arity} input(s), got {}", inputs.len()),
        ));
    }
    Ok(())
}

/// Checks that an op got two inputs of one shape, and returns that shape; otherwise a
/// typed error naming the op, both shapes and `reason`.
pub fn expect_same_shapes(op: &str, inputs: &[Shape], reason: &str) -> Result<Shape> {
    expect_arity(op, inputs, 2)?;
    if inputs[0] != inputs[1] {
        return Err(crate::Error::shape_mismatch(
            op, inputs[0], inputs[1], reason,
        ));
    }
    Ok(inputs[0])
}
