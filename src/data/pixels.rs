//! Images stored as one byte per pixel, and the [`RowSource`] trait a training loop
//! draws minibatch rows from.
//!
//! MNIST's pixels are bytes (`0..=255`) and binarised MNIST's are 0 or 1, so holding
//! them as `f32` spends four bytes on one byte of information: the 70,000 MNIST images
//! take 220 MB as `f32` and 55 MB as bytes. [`Pixels`] keeps the bytes and converts a
//! row to floats only when a minibatch is gathered, with `value = byte / 255` computed
//! in `f32` exactly as the MNIST reader always did, so a model sees the same numbers
//! (bit for bit) as from an `f32` tensor.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::Tensor;

/// A matrix of pixel intensities in `[0, 1]`, one row per image, stored as bytes:
/// intensity `= byte / 255`.
///
/// ```
/// use gumbelgrad::data::Pixels;
/// use gumbelgrad::Tensor;
/// let images = Tensor::from_vec(2, 3, vec![0.0, 1.0, 0.5, 1.0, 0.0, 0.2])?;
/// let pixels = Pixels::from_tensor(&images)?;
/// assert_eq!(pixels.row_bytes(0), &[0, 255, 128]); // 0.5 is stored as 128/255
/// assert_eq!(pixels.get(1, 0), 1.0);
/// assert_eq!(pixels.to_tensor::<f32>().shape(), images.shape());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
}

/// `byte / 255` in `f32`, the MNIST reader's conversion.
#[inline(always)]
fn intensity(byte: u8) -> f32 {
    byte as f32 / 255.0
}

impl Pixels {
    /// Wraps `rows * cols` bytes (row-major); intensity `= byte / 255`.
    pub fn from_bytes(rows: usize, cols: usize, bytes: Vec<u8>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(bytes.len()) {
            return Err(Error::invalid_argument(
                "Pixels::from_bytes",
                format!(
                    "{} bytes cannot fill {rows} rows of {cols} pixels",
                    bytes.len()
                ),
            ));
        }
        Ok(Pixels { rows, cols, bytes })
    }

    /// Stores intensities in `[0, 1]` as the nearest `byte / 255` (exact for 0, 1 and
    /// anything read from MNIST). A value that is NaN, infinite or outside `[0, 1]` is
    /// an [`Error::InvalidArgument`] naming its row and column.
    pub fn from_tensor(images: &Tensor<f32>) -> Result<Self> {
        let cols = images.cols();
        let mut bytes = Vec::with_capacity(images.len());
        for (index, &value) in images.as_slice().iter().enumerate() {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::invalid_argument(
                    "Pixels::from_tensor",
                    format!(
                        "pixel ({}, {}) is {value}; intensities must lie in [0, 1]",
                        index / cols.max(1),
                        index % cols.max(1)
                    ),
                ));
            }
            bytes.push((value * 255.0).round() as u8);
        }
        Ok(Pixels {
            rows: images.rows(),
            cols,
            bytes,
        })
    }

    /// Number of images.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Pixels per image.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of pixels in all.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when there is no pixel.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The intensity of pixel `col` of image `row`. Panics out of range, like indexing.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        assert!(col < self.cols, "column {col} of {}", self.cols);
        intensity(self.bytes[row * self.cols + col])
    }

    /// The stored bytes of image `row`.
    pub fn row_bytes(&self, row: usize) -> &[u8] {
        &self.bytes[row * self.cols..(row + 1) * self.cols]
    }

    /// All stored bytes, row-major.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Image `row` as intensities.
    pub fn row_values<T: Float>(&self, row: usize) -> Vec<T> {
        self.row_bytes(row)
            .iter()
            .map(|&b| T::from_f64(intensity(b) as f64))
            .collect()
    }

    /// The sum of all intensities (in f64).
    pub fn sum(&self) -> f64 {
        self.bytes.iter().map(|&b| intensity(b) as f64).sum()
    }

    /// The images at `indices`, in that order. Panics on an index out of range.
    pub fn select(&self, indices: &[usize]) -> Pixels {
        let mut bytes = Vec::with_capacity(indices.len() * self.cols);
        for &index in indices {
            bytes.extend_from_slice(self.row_bytes(index));
        }
        Pixels {
            rows: indices.len(),
            cols: self.cols,
            bytes,
        }
    }

    /// Every image cut into its columns `[0, at)` and `[at, cols)`, as two byte images
    /// (for the SBN: upper and lower halves of a digit without a float copy). An `at`
    /// past the last column is an [`Error::InvalidArgument`].
    pub fn split_cols(&self, at: usize) -> Result<(Pixels, Pixels)> {
        if at > self.cols {
            return Err(Error::invalid_argument(
                "Pixels::split_cols",
                format!("cannot split {} columns at column {at}", self.cols),
            ));
        }
        let mut left = Vec::with_capacity(self.rows * at);
        let mut right = Vec::with_capacity(self.rows * (self.cols - at));
        for row in 0..self.rows {
            let (l, r) = self.row_bytes(row).split_at(at);
            left.extend_from_slice(l);
            right.extend_from_slice(r);
        }
        Ok((
            Pixels::from_bytes(self.rows, at, left)?,
            Pixels::from_bytes(self.rows, self.cols - at, right)?,
        ))
    }

    /// The images at `indices` as a `[indices.len(), cols]` tensor of intensities.
    /// Panics on an index out of range.
    pub fn gather<T: Float>(&self, indices: &[usize]) -> Tensor<T> {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        self.append_rows(indices, &mut data)
            .unwrap_or_else(|error| panic!("Pixels::gather: {error}"));
        Tensor::from_vec(indices.len(), self.cols, data).expect("rows of equal length")
    }

    /// Every image as a `[rows, cols]` tensor of intensities (4 or 8 bytes a pixel:
    /// meant for evaluation sets and small data, not for all of MNIST at once).
    pub fn to_tensor<T: Float>(&self) -> Tensor<T> {
        let data = self
            .bytes
            .iter()
            .map(|&b| T::from_f64(intensity(b) as f64))
            .collect();
        Tensor::from_vec(self.rows, self.cols, data).expect("rows of equal length")
    }
}

/// Where a training loop draws minibatch rows from: a [`Tensor`] of intensities, or
/// byte [`Pixels`] converted row by row as they are drawn.
pub trait RowSource<T: Float> {
    /// Number of rows (examples).
    fn num_rows(&self) -> usize;
    /// Values per row.
    fn num_cols(&self) -> usize;
    /// Appends row `row`, as values of type `T`, to `out`. Panics out of range.
    fn append_row(&self, row: usize, out: &mut Vec<T>);

    /// Appends the rows `rows`, in that order, to `out` (a minibatch). A row out of
    /// range is an [`Error::InvalidArgument`]; the rows before it are already appended.
    fn append_rows(&self, rows: &[usize], out: &mut Vec<T>) -> Result<()> {
        for &row in rows {
            if row >= self.num_rows() {
                return Err(Error::invalid_argument(
                    "RowSource::append_rows",
                    format!("row {row} is out of range ({} rows)", self.num_rows()),
                ));
            }
            self.append_row(row, out);
        }
        Ok(())
    }
}

impl<T: Float> RowSource<T> for Tensor<T> {
    fn num_rows(&self) -> usize {
        self.rows()
    }
    fn num_cols(&self) -> usize {
        self.cols()
    }
    fn append_row(&self, row: usize, out: &mut Vec<T>) {
        out.extend_from_slice(self.row(row));
    }
}

impl<T: Float> RowSource<T> for Pixels {
    fn num_rows(&self) -> usize {
        self.rows
    }
    fn num_cols(&self) -> usize {
        self.cols
    }
    fn append_row(&self, row: usize, out: &mut Vec<T>) {
        out.extend(
            self.row_bytes(row)
                .iter()
                .map(|&b| T::from_f64(intensity(b) as f64)),
        );
    }
}
