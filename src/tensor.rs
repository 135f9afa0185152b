//! Dense, row-major, two-dimensional tensors.
//!
//! Everything in gumbelgrad is a matrix: a batch of `rows` examples with `cols` features
//! each; a scalar is 1x1. A categorical latent of `N` variables with `K` classes each is
//! a `[batch, N*K]` tensor whose consecutive runs of `K` columns are the *groups*
//! (see [`Tensor::groups`]).

use std::fmt;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::float::Float;

/// The shape of a tensor: `rows x cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    /// Number of rows (usually the batch dimension).
    pub rows: usize,
    /// Number of columns (features).
    pub cols: usize,
}

impl Shape {
    /// A `rows x cols` shape.
    pub const fn new(rows: usize, cols: usize) -> Self {
        Shape { rows, cols }
    }

    /// The 1x1 shape of a scalar.
    pub const SCALAR: Shape = Shape { rows: 1, cols: 1 };

    /// Number of elements, `rows * cols`.
    ///
    /// # Panics
    /// If `rows * cols` overflows `usize`, which no tensor's shape does (every
    /// constructor checks it); [`checked_len`](Shape::checked_len) for other shapes.
    pub const fn len(&self) -> usize {
        match self.checked_len() {
            Some(len) => len,
            None => panic!("Shape::len: rows * cols overflows usize"),
        }
    }

    /// Number of elements, `rows * cols`, or `None` if the product overflows `usize`.
    pub const fn checked_len(&self) -> Option<usize> {
        self.rows.checked_mul(self.cols)
    }

    /// The number of elements of a `rows x cols` tensor, or an
    /// [`Error::InvalidArgument`] naming `op` if `rows * cols` overflows `usize`.
    ///
    /// ```
    /// use gumbelgrad::Shape;
    /// assert_eq!(Shape::new(3, 4).size_for("example").unwrap(), 12);
    /// assert!(Shape::new(1 << 63, 2).size_for("example").is_err());
    /// ```
    pub fn size_for(&self, op: &str) -> Result<usize> {
        self.checked_len().ok_or_else(|| {
            Error::invalid_argument(
                op,
                format!(
                    "a {}x{} tensor has more elements than fit in usize",
                    self.rows, self.cols
                ),
            )
        })
    }

    /// True for a shape with no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.rows, self.cols)
    }
}

/// A dense row-major matrix of `f32` or `f64`.
///
/// ```
/// use gumbelgrad::Tensor;
/// let t = Tensor::<f64>::from_vec(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(t.get(1, 0), 4.0);
/// assert_eq!(t.row(0), &[1.0, 2.0, 3.0]);
/// let flat = t.reshape(1, 6)?; // free: no copy
/// assert_eq!(flat.shape().cols, 6);
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Float> {
    shape: Shape,
    data: Vec<T>,
}

impl<T: Float> Tensor<T> {
    /// Builds a `rows x cols` tensor from row-major data; errors if the length is wrong.
    /// `rows * cols` is computed with checked arithmetic: a product that overflows
    /// `usize` is a [`Error::BadLength`] like any other mismatch, never a wrapped size.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::BadLength {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(Tensor {
            shape: Shape::new(rows, cols),
            data,
        })
    }

    /// Builds a tensor by copying a row-major slice.
    pub fn from_slice(rows: usize, cols: usize, data: &[T]) -> Result<Self> {
        Self::from_vec(rows, cols, data.to_vec())
    }

    /// Builds a tensor from rows of equal length.
    ///
    /// ```
    /// let t = gumbelgrad::Tensor::<f32>::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]])?;
    /// assert_eq!(t.shape(), gumbelgrad::Shape::new(2, 2));
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn from_rows(rows: &[Vec<T>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (index, row) in rows.iter().enumerate() {
            if row.len() != cols {
                return Err(Error::invalid_argument(
                    "Tensor::from_rows",
                    format!("row {index} has {} elements, row 0 has {cols}", row.len()),
                ));
            }
            data.extend_from_slice(row);
        }
        Self::from_vec(rows.len(), cols, data)
    }

    /// A 1x1 tensor.
    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: Shape::SCALAR,
            data: vec![value],
        }
    }

    /// A tensor filled with `value`.
    ///
    /// # Panics
    /// If `rows * cols` overflows `usize` (never a wrapped, too small buffer); use
    /// [`try_full`](Tensor::try_full) for sizes that come from input.
    pub fn full(rows: usize, cols: usize, value: T) -> Self {
        Self::try_full(rows, cols, value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A tensor filled with `value`, or an [`Error::InvalidArgument`] if `rows * cols`
    /// overflows `usize`.
    ///
    /// ```
    /// use gumbelgrad::Tensor;
    /// assert_eq!(Tensor::<f32>::try_full(2, 3, 1.5)?.sum(), 9.0);
    /// assert!(Tensor::<f32>::try_full(1 << 63, 2, 0.0).is_err());
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn try_full(rows: usize, cols: usize, value: T) -> Result<Self> {
        let shape = Shape::new(rows, cols);
        let len = shape.size_for("Tensor::full")?;
        Ok(Tensor {
            shape,
            data: vec![value; len],
        })
    }

    /// A tensor of zeros.
    ///
    /// # Panics
    /// If `rows * cols` overflows `usize`; [`try_zeros`](Tensor::try_zeros) returns
    /// an error instead.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::full(rows, cols, T::ZERO)
    }

    /// A tensor of zeros, or an [`Error::InvalidArgument`] if `rows * cols` overflows
    /// `usize`.
    pub fn try_zeros(rows: usize, cols: usize) -> Result<Self> {
        Self::try_full(rows, cols, T::ZERO)
    }

    /// A tensor of ones.
    ///
    /// # Panics
    /// If `rows * cols` overflows `usize`.
    pub fn ones(rows: usize, cols: usize) -> Self {
        Self::full(rows, cols, T::ONE)
    }

    /// A tensor of zeros with the given shape.
    pub fn zeros_like_shape(shape: Shape) -> Self {
        Self::zeros(shape.rows, shape.cols)
    }

    /// Uniform random values in `[low, high)` drawn from the caller's generator.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let t = gumbelgrad::Tensor::<f64>::random_uniform(3, 4, -1.0, 1.0, &mut rng);
    /// assert!(t.as_slice().iter().all(|&x| (-1.0..1.0).contains(&x)));
    /// ```
    ///
    /// # Panics
    /// If `rows * cols` overflows `usize`.
    pub fn random_uniform<R: Rng + ?Sized>(
        rows: usize,
        cols: usize,
        low: f64,
        high: f64,
        rng: &mut R,
    ) -> Self {
        let len = Shape::new(rows, cols).len();
        let data = (0..len)
            .map(|_| T::from_f64(low + (high - low) * rng.random::<f64>()))
            .collect();
        Tensor {
            shape: Shape::new(rows, cols),
            data,
        }
    }

    /// Normal random values with the given mean and standard deviation.
    ///
    /// # Panics
    /// If `rows * cols` overflows `usize`.
    pub fn random_normal<R: Rng + ?Sized>(
        rows: usize,
        cols: usize,
        mean: f64,
        std_dev: f64,
        rng: &mut R,
    ) -> Self {
        let len = Shape::new(rows, cols).len();
        let data = (0..len)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                T::from_f64(mean + std_dev * z)
            })
            .collect();
        Tensor {
            shape: Shape::new(rows, cols),
            data,
        }
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.shape.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.shape.cols
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The elements, row-major, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives back the underlying buffer.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The element at `(row, col)`; panics when out of range, like slice indexing.
    pub fn get(&self, row: usize, col: usize) -> T {
        assert!(
            row < self.shape.rows && col < self.shape.cols,
            "index out of range"
        );
        self.data[row * self.shape.cols + col]
    }

    /// Sets the element at `(row, col)`; panics when out of range, like slice indexing.
    pub fn set(&mut self, row: usize, col: usize, value: T) {
        assert!(
            row < self.shape.rows && col < self.shape.cols,
            "index out of range"
        );
        self.data[row * self.shape.cols + col] = value;
    }

    /// Row `row` as a slice.
    pub fn row(&self, row: usize) -> &[T] {
        let cols = self.shape.cols;
        &self.data[row * cols..(row + 1) * cols]
    }

    /// Row `row` as a mutable slice.
    pub fn row_mut(&mut self, row: usize) -> &mut [T] {
        let cols = self.shape.cols;
        &mut self.data[row * cols..(row + 1) * cols]
    }

    /// The value of a 1x1 tensor (errors on any other shape).
    pub fn to_scalar(&self) -> Result<T> {
        if self.shape != Shape::SCALAR {
            return Err(Error::invalid_argument(
                "Tensor::to_scalar",
                format!("expected a 1x1 tensor, got {}", self.shape),
            ));
        }
        Ok(self.data[0])
    }

    /// The same elements seen as `rows x cols` (no copy); errors if the count differs.
    pub fn reshape(self, rows: usize, cols: usize) -> Result<Self> {
        if rows.checked_mul(cols) != Some(self.data.len()) {
            return Err(Error::BadLength {
                rows,
                cols,
                len: self.data.len(),
            });
        }
        Ok(Tensor {
            shape: Shape::new(rows, cols),
            data: self.data,
        })
    }

    /// Number of groups of `group_size` consecutive columns in each row; errors unless
    /// `group_size` divides the number of columns.
    pub fn num_groups(&self, group_size: usize) -> Result<usize> {
        num_groups(self.shape, group_size, "Tensor::num_groups")
    }

    /// Iterates over every group of `group_size` consecutive columns, row by row:
    /// for a `[batch, N*K]` latent with `group_size = K` this yields `batch * N`
    /// slices of length `K`, one per categorical variable.
    ///
    /// ```
    /// let t = gumbelgrad::Tensor::<f64>::from_vec(1, 4, vec![0.1, 0.9, 0.5, 0.5])?;
    /// let sums: Vec<f64> = t.groups(2)?.map(|g| g.iter().sum()).collect();
    /// assert_eq!(sums, vec![1.0, 1.0]);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn groups(&self, group_size: usize) -> Result<std::slice::ChunksExact<'_, T>> {
        num_groups(self.shape, group_size, "Tensor::groups")?;
        Ok(self.data.chunks_exact(group_size))
    }

    /// Mutable version of [`Tensor::groups`].
    pub fn groups_mut(&mut self, group_size: usize) -> Result<std::slice::ChunksExactMut<'_, T>> {
        num_groups(self.shape, group_size, "Tensor::groups_mut")?;
        Ok(self.data.chunks_exact_mut(group_size))
    }

    /// Applies `f` to every element, giving a new tensor.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape,
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    /// Converts to another element type (f32 <-> f64).
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape,
            data: self.data.iter().map(|&x| U::from_f64(x.to_f64())).collect(),
        }
    }

    /// True when no element is NaN or infinite.
    pub fn all_finite(&self) -> bool {
        crate::kernels::finite::all_finite(&self.data)
    }

    /// Errors with [`Error::NonFiniteInput`] naming `what` if any element is NaN or infinite.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        if self.all_finite() {
            return Ok(());
        }
        match self.data.iter().position(|x| !x.is_finite()) {
            None => Ok(()),
            Some(index) => Err(Error::NonFiniteInput {
                what: format!(
                    "{what} at row {}, column {} (value {})",
                    index / self.shape.cols.max(1),
                    index % self.shape.cols.max(1),
                    self.data[index]
                ),
            }),
        }
    }

    /// Largest absolute difference to another tensor of the same shape.
    pub fn max_abs_diff(&self, other: &Tensor<T>) -> Result<f64> {
        if self.shape != other.shape {
            return Err(Error::shape_mismatch(
                "Tensor::max_abs_diff",
                self.shape,
                other.shape,
                "shapes must be equal",
            ));
        }
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
            .fold(0.0, f64::max))
    }

    /// Sum of all elements.
    pub fn sum(&self) -> T {
        self.data.iter().copied().sum()
    }

    /// Sets every element to zero, keeping the buffer.
    pub fn fill_zero(&mut self) {
        self.data.iter_mut().for_each(|x| *x = T::ZERO);
    }

    /// Builds a tensor around an existing buffer, resizing it to `shape` and zeroing it.
    /// Used by the tape's buffer pool to avoid fresh allocations.
    /// A copy of `values` (of shape `shape`) in `buffer`'s memory, without zeroing it
    /// first.
    pub(crate) fn from_buffer_copied(mut buffer: Vec<T>, shape: Shape, values: &[T]) -> Self {
        debug_assert_eq!(values.len(), shape.len());
        buffer.clear();
        buffer.extend_from_slice(values);
        Tensor {
            shape,
            data: buffer,
        }
    }

    /// A tensor of `shape` on `buffer` whose values do not matter (a placeholder): the
    /// buffer's old values are kept when it already has the right length, else zeros.
    pub(crate) fn from_buffer_unspecified(mut buffer: Vec<T>, shape: Shape) -> Self {
        if buffer.len() != shape.len() {
            buffer.clear();
            buffer.resize(shape.len(), T::ZERO);
        }
        Tensor {
            shape,
            data: buffer,
        }
    }

    pub(crate) fn from_buffer_zeroed(mut buffer: Vec<T>, shape: Shape) -> Self {
        buffer.clear();
        buffer.resize(shape.len(), T::ZERO);
        Tensor {
            shape,
            data: buffer,
        }
    }
}

/// Checks that `group_size` divides `shape.cols` and returns the number of groups per row.
pub(crate) fn num_groups(shape: Shape, group_size: usize, op: &str) -> Result<usize> {
    if group_size == 0 || !shape.cols.is_multiple_of(group_size) {
        return Err(Error::invalid_argument(
            op,
            format!(
                "group size {group_size} does not divide the {} columns of {shape}",
                shape.cols
            ),
        ));
    }
    Ok(shape.cols / group_size)
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{} ", T::NAME, self.shape)?;
        f.debug_list()
            .entries(self.data.chunks(self.shape.cols.max(1)))
            .finish()
    }
}
