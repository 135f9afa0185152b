//! Grouped softmax, log-softmax and logsumexp.
//!
//! A categorical latent of `N` variables with `K` classes each is stored as a
//! `[batch, N*K]` tensor; each run of `K` consecutive columns (a *group*) holds the
//! logits of one variable. These ops normalise every group on its own. `group_size`
//! (`K`) must divide the number of columns, which is checked when the op is recorded.
//!
//! All three subtract each group's maximum before exponentiating (see
//! [`kernels::softmax`](crate::kernels::softmax)), so logits of any size, even
//! `±1e4`, give finite values and finite gradients.

use crate::error::Result;
use crate::float::Float;
use crate::kernels::softmax::{
    log_softmax_backward_groups, log_softmax_groups, logsumexp_backward_groups, logsumexp_groups,
    softmax_backward_groups, softmax_groups,
};
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor, num_groups};

/// `y_g = softmax(x_g)`, i.e. `y_i = exp(x_i) / sum_j exp(x_j)` within each group.
///
/// `d y_i / d x_j = y_i (δ_ij - y_j)`, so the VJP is
/// `grad_x = y ⊙ (grad_y - <grad_y, y>)` per group.
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    /// Number of classes `K` in each group.
    pub group_size: usize,
}

impl<T: Float> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn describe(&self) -> String {
        format!("softmax(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("softmax", inputs, 1)?;
        num_groups(inputs[0], self.group_size, "softmax")?;
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

/// `y_g = log_softmax(x_g) = x_g - logsumexp(x_g)` within each group: the
/// log-probabilities of a categorical distribution with logits `x_g`.
///
/// `d y_i / d x_j = δ_ij - p_j` with `p = softmax(x) = exp(y)`, so the VJP is
/// `grad_x = grad_y - p * sum(grad_y)` per group.
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax {
    /// Number of classes `K` in each group.
    pub group_size: usize,
}

impl<T: Float> Op<T> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn describe(&self) -> String {
        format!("log_softmax(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("log_softmax", inputs, 1)?;
        num_groups(inputs[0], self.group_size, "log_softmax")?;
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        log_softmax_groups(inputs[0].as_slice(), output.as_mut_slice(), self.group_size);
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            log_softmax_backward_groups(
                output.as_slice(),
                grad_output.as_slice(),
                grad.as_mut_slice(),
                self.group_size,
            );
        }
    }
}

/// `y_g = logsumexp(x_g) = ln sum_i exp(x_i)` for each group: `[B, N*K] -> [B, N]`.
///
/// `d y_g / d x_j = softmax(x_g)_j = exp(x_j - y_g)`, so the VJP is
/// `grad_x_j = grad_y_g * exp(x_j - y_g)`.
#[derive(Debug, Clone, Copy)]
pub struct LogSumExp {
    /// Number of values `K` in each group.
    pub group_size: usize,
}

impl<T: Float> Op<T> for LogSumExp {
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn describe(&self) -> String {
        format!("logsumexp(group={})", self.group_size)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("logsumexp", inputs, 1)?;
        let groups = num_groups(inputs[0], self.group_size, "logsumexp")?;
        Ok(Shape::new(inputs[0].rows, groups))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        logsumexp_groups(inputs[0].as_slice(), output.as_mut_slice(), self.group_size);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            logsumexp_backward_groups(
                inputs[0].as_slice(),
                output.as_slice(),
                grad_output.as_slice(),
                grad.as_mut_slice(),
                self.group_size,
            );
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Softmax over each group of `group_size` consecutive columns.
    ///
    /// Records an [`Error::InvalidArgument`](crate::Error::InvalidArgument) on the tape
    /// if `group_size` does not divide the number of columns.
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// // One example, two categorical variables with 2 classes each.
    /// let logits = tape.constant(&Tensor::from_vec(1, 4, vec![0.0, 0.0, 1e4, -1e4])?);
    /// let probabilities = logits.softmax(2).value()?;
    /// assert_eq!(probabilities.as_slice(), &[0.5, 0.5, 1.0, 0.0]);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn softmax(self, group_size: usize) -> Var<'t, T> {
        self.tape().record(Softmax { group_size }, &[self])
    }

    /// Log-softmax over each group of `group_size` consecutive columns: the
    /// log-probabilities `x - logsumexp(x)`, computed without overflow.
    pub fn log_softmax(self, group_size: usize) -> Var<'t, T> {
        self.tape().record(LogSoftmax { group_size }, &[self])
    }

    /// `ln sum exp` of each group of `group_size` consecutive columns:
    /// `[B, N*K] -> [B, N]`.
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(&Tensor::from_vec(1, 4, vec![0.0, 0.0, 1e4, 1e4])?);
    /// let lse = x.logsumexp(2).value()?;
    /// assert_eq!(lse.shape(), gumbelgrad::Shape::new(1, 2));
    /// assert!((lse.get(0, 0) - 2f64.ln()).abs() < 1e-15);
    /// assert!((lse.get(0, 1) - (1e4 + 2f64.ln())).abs() < 1e-11);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn logsumexp(self, group_size: usize) -> Var<'t, T> {
        self.tape().record(LogSumExp { group_size }, &[self])
    }
}
