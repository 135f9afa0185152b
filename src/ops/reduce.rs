//! Reductions: sums and means over everything, over rows, or over columns.
//!
//! Naming: `sum_rows` adds the rows together (reducing the row dimension, so a
//! `[B, C]` batch becomes a `[1, C]` row: a sum over the batch); `sum_cols` adds the
//! columns together (a `[B, C]` batch becomes `[B, 1]`: one number per example).

use crate::error::Result;
use crate::float::Float;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// Which dimension a reduction removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Reduce everything to a `[1, 1]` scalar.
    All,
    /// Reduce the rows: `[R, C] -> [1, C]`.
    Rows,
    /// Reduce the columns: `[R, C] -> [R, 1]`.
    Cols,
}

/// Sum (or, with `mean = true`, mean) along an [`Axis`].
///
/// `y_j = c * sum_i x_ij` over the reduced elements, with `c = 1` (sum) or
/// `1/count` (mean). `d y / d x_ij = c`: the backward broadcasts the upstream gradient
/// back over the reduced dimension, times `c`.
#[derive(Debug, Clone, Copy)]
pub struct Reduce {
    /// The dimension removed.
    pub axis: Axis,
    /// Divide by the number of elements reduced.
    pub mean: bool,
}

impl Reduce {
    fn count(&self, shape: Shape) -> usize {
        match self.axis {
            Axis::All => shape.len(),
            Axis::Rows => shape.rows,
            Axis::Cols => shape.cols,
        }
    }

    fn factor<T: Float>(&self, shape: Shape) -> T {
        if self.mean {
            T::ONE / T::from_f64(self.count(shape).max(1) as f64)
        } else {
            T::ONE
        }
    }

    /// Output index that input element `(row, col)` contributes to.
    #[inline(always)]
    fn target(&self, row: usize, col: usize) -> usize {
        match self.axis {
            Axis::All => 0,
            Axis::Rows => col,
            Axis::Cols => row,
        }
    }
}

impl<T: Float> Op<T> for Reduce {
    fn name(&self) -> &'static str {
        match (self.axis, self.mean) {
            (Axis::All, false) => "sum",
            (Axis::Rows, false) => "sum_rows",
            (Axis::Cols, false) => "sum_cols",
            (Axis::All, true) => "mean",
            (Axis::Rows, true) => "mean_rows",
            (Axis::Cols, true) => "mean_cols",
        }
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity(Op::<T>::name(self), inputs, 1)?;
        let shape = inputs[0];
        Ok(match self.axis {
            Axis::All => Shape::SCALAR,
            Axis::Rows => Shape::new(1, shape.cols),
            Axis::Cols => Shape::new(shape.rows, 1),
        })
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let x = inputs[0];
        let shape = x.shape();
        let factor: T = self.factor(shape);
        let out = output.as_mut_slice();
        out.iter_mut().for_each(|o| *o = T::ZERO);
        for (row, values) in x.as_slice().chunks_exact(shape.cols.max(1)).enumerate() {
            for (col, &value) in values.iter().enumerate() {
                out[self.target(row, col)] += value;
            }
        }
        out.iter_mut().for_each(|o| *o *= factor);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let shape = inputs[0].shape();
        let factor: T = self.factor(shape);
        let g = grad_output.as_slice();
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            let cols = shape.cols.max(1);
            for (row, values) in grad.as_mut_slice().chunks_exact_mut(cols).enumerate() {
                for (col, value) in values.iter_mut().enumerate() {
                    *value += factor * g[self.target(row, col)];
                }
            }
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    fn reduce(self, axis: Axis, mean: bool) -> Var<'t, T> {
        self.tape().record(Reduce { axis, mean }, &[self])
    }

    /// Sum of all elements, as a `[1, 1]` scalar.
    pub fn sum(self) -> Var<'t, T> {
        self.reduce(Axis::All, false)
    }

    /// Mean of all elements, as a `[1, 1]` scalar.
    pub fn mean(self) -> Var<'t, T> {
        self.reduce(Axis::All, true)
    }

    /// Adds the rows together: `[R, C] -> [1, C]` (a sum over the batch).
    pub fn sum_rows(self) -> Var<'t, T> {
        self.reduce(Axis::Rows, false)
    }

    /// Mean of the rows: `[R, C] -> [1, C]` (a mean over the batch).
    pub fn mean_rows(self) -> Var<'t, T> {
        self.reduce(Axis::Rows, true)
    }

    /// Adds the columns together: `[R, C] -> [R, 1]` (one number per example).
    pub fn sum_cols(self) -> Var<'t, T> {
        self.reduce(Axis::Cols, false)
    }

    /// Mean of the columns: `[R, C] -> [R, 1]`.
    pub fn mean_cols(self) -> Var<'t, T> {
        self.reduce(Axis::Cols, true)
    }
}
