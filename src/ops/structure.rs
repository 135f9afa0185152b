//! Structural ops: taking column or row ranges out of a tensor and gluing tensors
//! together side by side or one above the other.
//!
//! The structured-prediction experiment splits each 784-pixel image into its top half
//! (`x.slice_cols(0, 392)`) and bottom half (`x.slice_cols(392, 784)`);
//! [`Tape::concat_cols`] puts pieces back together. These ops move values without
//! changing them, so their VJPs move gradients back the same way: slicing scatters the
//! upstream gradient into the sliced range (zero elsewhere), concatenation hands each
//! input its own block of the upstream gradient.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::{Op, expect_arity};
use crate::tape::{Tape, Var};
use crate::tensor::{Shape, Tensor};

/// Checks `start < end <= len` for a range along a dimension called `what`.
fn check_range(op: &str, start: usize, end: usize, len: usize, what: &str) -> Result<()> {
    if start >= end || end > len {
        return Err(Error::invalid_argument(
            op,
            format!("{what} range {start}..{end} is empty or past the end of the {len} {what}"),
        ));
    }
    Ok(())
}

/// Columns `start..end` of every row: `[R, C] -> [R, end - start]`.
///
/// `y_ij = x_i(start + j)`, so `d y_ij / d x_ik = 1[k = start + j]`: the VJP adds
/// `grad_y` into columns `start..end` of `grad_x`.
#[derive(Debug, Clone, Copy)]
pub struct SliceCols {
    /// First column kept.
    pub start: usize,
    /// One past the last column kept.
    pub end: usize,
}

impl<T: Float> Op<T> for SliceCols {
    fn name(&self) -> &'static str {
        "slice_cols"
    }
    fn describe(&self) -> String {
        format!("slice_cols({}..{})", self.start, self.end)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("slice_cols", inputs, 1)?;
        check_range(
            "slice_cols",
            self.start,
            self.end,
            inputs[0].cols,
            "columns",
        )?;
        Ok(Shape::new(inputs[0].rows, self.end - self.start))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let x = inputs[0];
        for row in 0..x.rows() {
            output
                .row_mut(row)
                .copy_from_slice(&x.row(row)[self.start..self.end]);
        }
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            for row in 0..grad.rows() {
                let target = &mut grad.row_mut(row)[self.start..self.end];
                for (d, &g) in target.iter_mut().zip(grad_output.row(row)) {
                    *d += g;
                }
            }
        }
    }
}

/// Inputs placed side by side: `[R, C1], [R, C2], ... -> [R, C1 + C2 + ...]`.
///
/// Each output column is a copy of one input column, so the VJP gives input `k` the
/// columns of `grad_y` it filled.
#[derive(Debug, Clone, Copy)]
pub struct ConcatCols;

impl<T: Float> Op<T> for ConcatCols {
    fn name(&self) -> &'static str {
        "concat_cols"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let Some(&first) = inputs.first() else {
            return Err(Error::invalid_argument(
                "concat_cols",
                "needs at least one input",
            ));
        };
        let mut cols = 0;
        for &shape in inputs {
            if shape.rows != first.rows {
                return Err(Error::shape_mismatch(
                    "concat_cols",
                    first,
                    shape,
                    "all inputs must have the same number of rows",
                ));
            }
            cols += shape.cols;
        }
        Ok(Shape::new(first.rows, cols))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        for row in 0..output.rows() {
            let mut start = 0;
            let out = output.row_mut(row);
            for x in inputs {
                let piece = x.row(row);
                out[start..start + piece.len()].copy_from_slice(piece);
                start += piece.len();
            }
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let mut start = 0;
        for (x, grad) in inputs.iter().zip(grad_inputs.iter_mut()) {
            let width = x.cols();
            if let Some(grad) = grad.as_deref_mut() {
                for row in 0..grad.rows() {
                    let source = &grad_output.row(row)[start..start + width];
                    for (d, &g) in grad.row_mut(row).iter_mut().zip(source) {
                        *d += g;
                    }
                }
            }
            start += width;
        }
    }
}

/// Rows `start..end`: `[R, C] -> [end - start, C]` (a sub-batch).
///
/// `d y_ij / d x_kj = 1[k = start + i]`: the VJP adds `grad_y` into rows
/// `start..end` of `grad_x`.
#[derive(Debug, Clone, Copy)]
pub struct SliceRows {
    /// First row kept.
    pub start: usize,
    /// One past the last row kept.
    pub end: usize,
}

impl<T: Float> Op<T> for SliceRows {
    fn name(&self) -> &'static str {
        "slice_rows"
    }
    fn describe(&self) -> String {
        format!("slice_rows({}..{})", self.start, self.end)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("slice_rows", inputs, 1)?;
        check_range("slice_rows", self.start, self.end, inputs[0].rows, "rows")?;
        Ok(Shape::new(self.end - self.start, inputs[0].cols))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let cols = inputs[0].cols();
        let source = &inputs[0].as_slice()[self.start * cols..self.end * cols];
        output.as_mut_slice().copy_from_slice(source);
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            let cols = grad.cols();
            let target = &mut grad.as_mut_slice()[self.start * cols..self.end * cols];
            for (d, &g) in target.iter_mut().zip(grad_output.as_slice()) {
                *d += g;
            }
        }
    }
}

/// Inputs stacked one above the other: `[R1, C], [R2, C], ... -> [R1 + R2 + ..., C]`.
///
/// The VJP gives input `k` the rows of `grad_y` it filled.
#[derive(Debug, Clone, Copy)]
pub struct ConcatRows;

impl<T: Float> Op<T> for ConcatRows {
    fn name(&self) -> &'static str {
        "concat_rows"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let Some(&first) = inputs.first() else {
            return Err(Error::invalid_argument(
                "concat_rows",
                "needs at least one input",
            ));
        };
        let mut rows = 0;
        for &shape in inputs {
            if shape.cols != first.cols {
                return Err(Error::shape_mismatch(
                    "concat_rows",
                    first,
                    shape,
                    "all inputs must have the same number of columns",
                ));
            }
            rows += shape.rows;
        }
        Ok(Shape::new(rows, first.cols))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let mut start = 0;
        let out = output.as_mut_slice();
        for x in inputs {
            out[start..start + x.len()].copy_from_slice(x.as_slice());
            start += x.len();
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let mut start = 0;
        for (x, grad) in inputs.iter().zip(grad_inputs.iter_mut()) {
            if let Some(grad) = grad.as_deref_mut() {
                let source = &grad_output.as_slice()[start..start + x.len()];
                for (d, &g) in grad.as_mut_slice().iter_mut().zip(source) {
                    *d += g;
                }
            }
            start += x.len();
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Columns `start..end` of every row: `[R, C] -> [R, end - start]`.
    ///
    /// An empty range or one past the last column is recorded as an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let image = tape.constant(&Tensor::from_vec(1, 4, vec![1.0, 2.0, 3.0, 4.0])?);
    /// let (top, bottom) = (image.slice_cols(0, 2), image.slice_cols(2, 4));
    /// assert_eq!(bottom.value()?.as_slice(), &[3.0, 4.0]);
    /// let whole = tape.concat_cols(&[top, bottom]);
    /// assert_eq!(whole.value()?.as_slice(), &[1.0, 2.0, 3.0, 4.0]);
    /// assert!(image.slice_cols(3, 5).value().is_err()); // past the end
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn slice_cols(self, start: usize, end: usize) -> Var<'t, T> {
        self.tape().record(SliceCols { start, end }, &[self])
    }

    /// `[self, other]` side by side (see [`Tape::concat_cols`] for more than two).
    pub fn concat_cols(self, other: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(ConcatCols, &[self, other])
    }

    /// Rows `start..end`: `[R, C] -> [end - start, C]`.
    pub fn slice_rows(self, start: usize, end: usize) -> Var<'t, T> {
        self.tape().record(SliceRows { start, end }, &[self])
    }

    /// `self` stacked above `other` (see [`Tape::concat_rows`] for more than two).
    pub fn concat_rows(self, other: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(ConcatRows, &[self, other])
    }
}

impl<T: Float> Tape<T> {
    /// The `parts` side by side: `[R, C1], [R, C2], ... -> [R, C1 + C2 + ...]`.
    ///
    /// Different row counts are an [`Error::ShapeMismatch`]; an empty list is an
    /// [`Error::InvalidArgument`]. Both are recorded on the tape (errors are sticky:
    /// see the [tape module](crate::tape)).
    pub fn concat_cols<'t>(&'t self, parts: &[Var<'t, T>]) -> Var<'t, T> {
        self.record(ConcatCols, parts)
    }

    /// The `parts` stacked top to bottom: `[R1, C], [R2, C], ... -> [R1 + R2 + ..., C]`.
    ///
    /// Different column counts are an [`Error::ShapeMismatch`]; an empty list is an
    /// [`Error::InvalidArgument`].
    pub fn concat_rows<'t>(&'t self, parts: &[Var<'t, T>]) -> Var<'t, T> {
        self.record(ConcatRows, parts)
    }
}
