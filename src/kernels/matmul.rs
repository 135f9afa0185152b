//! Matrix products on row-major slices, with the transposed variants the backward
//! pass needs, computed without materialising any transpose.
//!
//! [`gemm`] is what the ops call: it sends products big enough to pay for packing to
//! the blocked SIMD kernel in [`kernels::gemm`](super::gemm) (with the thread count of
//! [`set_num_threads`](super::set_num_threads)) and computes small ones with the plain
//! loops of [`gemm_reference`], the scalar reference the fast kernel is tested against.

use crate::error::{Error, Result};
use crate::float::Float;

/// Products with fewer than this many multiply-adds (`m * n * k`) use the plain loops:
/// below it, packing the operands costs more than the faster inner loop saves. Measured
/// in f64 on the AVX-512 machine of `docs/performance.md`: at 8 x 8 x 8 the plain loops
/// take half the time of the fast path (~0.2 µs of fixed cost), at 16 x 16 x 16 the
/// fast path is 1.3-2.4x faster, at 8 x 64 x 8 they tie.
pub const FAST_GEMM_MIN_WORK: usize = 4096;

/// `c += op(a) * op(b)` where `op(a)` is `m x k` and `op(b)` is `k x n`, all row-major.
///
/// - `transpose_a = false`: `a` is stored `m x k`; `true`: `a` is stored `k x m`.
/// - `transpose_b = false`: `b` is stored `k x n`; `true`: `b` is stored `n x k`.
///
/// The result is *added* into `c` (`m x n`), which is what both the forward pass (into
/// a zeroed output) and the backward pass (accumulating gradients) want.
///
/// # Panics
/// If a slice length does not match its dimensions (a caller bug: the ops check shapes
/// before calling); [`check_gemm_lengths`] gives the same check as a typed error.
///
/// Dispatches to [`kernels::gemm::gemm`](super::gemm::gemm) when
/// `m * n * k >= FAST_GEMM_MIN_WORK`, else to [`gemm_reference`]. The results agree up
/// to rounding; for a given shape, they never depend on the thread count.
///
/// ```
/// // [1 2; 3 4] * [5 6; 7 8]
/// let mut c = [0.0f64; 4];
/// gumbelgrad::kernels::matmul::gemm(false, false, 2, 2, 2, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c);
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    product(false, transpose_a, transpose_b, m, n, k, a, b, c);
}

/// `c = op(a) * op(b)`: [`gemm`] with the old contents of `c` ignored (never read), for
/// an output or a gradient buffer that gets its first value from this product. The
/// fast path stores the first depth block's sums instead of adding them
/// ([`kernels::gemm::gemm_overwrite`](super::gemm::gemm_overwrite)); small products zero
/// `c` and add. Same bits as [`gemm`] on a zeroed `c`, up to the sign of a zero.
///
/// # Panics
/// As [`gemm`]: if a slice length does not match its dimensions.
///
/// ```
/// let mut c = [f64::NAN; 4];
/// gumbelgrad::kernels::matmul::gemm_overwrite(false, false, 2, 2, 2, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c);
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm_overwrite<T: Float>(
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    product(true, transpose_a, transpose_b, m, n, k, a, b, c);
}

/// [`gemm`] (`overwrite = false`) or [`gemm_overwrite`] (`true`): the length check, then
/// the fast kernel for products worth packing and the plain loops for the rest.
#[allow(clippy::too_many_arguments)]
fn product<T: Float>(
    overwrite: bool,
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    let name = if overwrite { "gemm_overwrite" } else { "gemm" };
    if let Err(e) = check_gemm_lengths(name, m, n, k, a.len(), b.len(), c.len()) {
        panic!("{e}");
    }
    // The lengths are checked: m * k, k * n and m * n fit, so the saturating product
    // only caps a work count that is in any case far above the threshold.
    if m.saturating_mul(n).saturating_mul(k) >= FAST_GEMM_MIN_WORK {
        let config = super::gemm::GemmConfig::current();
        let fast = if overwrite {
            super::gemm::gemm_overwrite
        } else {
            super::gemm::gemm
        };
        if let Err(e) = fast(&config, transpose_a, transpose_b, m, n, k, a, b, c) {
            panic!("{e}");
        }
    } else {
        if overwrite {
            c.fill(T::ZERO);
        }
        gemm_reference(transpose_a, transpose_b, m, n, k, a, b, c);
    }
}

/// One product `c += op(a) * op(b)` (or, with `overwrite`, `c = op(a) * op(b)`) given
/// by its operands, for a caller that decides later how to run it: the backward passes
/// of `ops::matmul` and `ops::linear` run one of their two products beside the other
/// ([`Product::run_beside`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Product<'a, T> {
    /// Replace `c` ([`gemm_overwrite`]) rather than add into it ([`gemm`]).
    pub overwrite: bool,
    /// `a` is stored `k x m`.
    pub transpose_a: bool,
    /// `b` is stored `n x k`.
    pub transpose_b: bool,
    /// Rows of `op(a)` and of `c`.
    pub m: usize,
    /// Columns of `op(b)` and of `c`.
    pub n: usize,
    /// Columns of `op(a)`, rows of `op(b)`.
    pub k: usize,
    /// The left operand.
    pub a: &'a [T],
    /// The right operand.
    pub b: &'a [T],
}

impl<T: Float> Product<'_, T> {
    /// Runs the product into `c`, as [`gemm`] or [`gemm_overwrite`].
    ///
    /// # Panics
    /// As [`gemm`]: if a slice length does not match its dimensions.
    pub(crate) fn run(&self, c: &mut [T]) {
        let Product {
            overwrite,
            transpose_a,
            transpose_b,
            m,
            n,
            k,
            a,
            b,
        } = *self;
        product(overwrite, transpose_a, transpose_b, m, n, k, a, b, c);
    }

    /// Runs the product into `c` on the calling thread and `right` on a helper, which
    /// then helps with the product's last bands
    /// ([`kernels::gemm`](super::gemm)'s `gemm_beside`); small products run beside
    /// `right` whole ([`join`](super::threads::join)). Returns what `right` returns.
    ///
    /// # Panics
    /// As [`gemm`]: if a slice length does not match its dimensions.
    pub(crate) fn run_beside<R: Send>(&self, c: &mut [T], right: impl FnOnce() -> R + Send) -> R {
        let Product {
            overwrite,
            transpose_a,
            transpose_b,
            m,
            n,
            k,
            a,
            b,
        } = *self;
        if m.saturating_mul(n).saturating_mul(k) < FAST_GEMM_MIN_WORK {
            return super::threads::join(|| self.run(c), right).1;
        }
        let config = super::gemm::GemmConfig::current();
        let (transposes, dimensions) = ((transpose_a, transpose_b), (m, n, k));
        super::gemm::gemm_beside(&config, overwrite, transposes, dimensions, a, b, c, right)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Checks the slice lengths of a product `c += op(a) * op(b)` against its dimensions
/// with checked arithmetic: `a` must hold `m * k` values, `b` `k * n`, `c` `m * n`. A
/// mismatch, or a product that overflows `usize`, is an [`Error::InvalidArgument`] naming the
/// operand's dimensions and the length given; a size is never wrapped.
///
/// ```
/// use gumbelgrad::kernels::matmul::check_gemm_lengths;
/// assert!(check_gemm_lengths("gemm", 2, 3, 4, 8, 12, 6).is_ok());
/// assert!(check_gemm_lengths("gemm", 1 << 63, 2, 2, 0, 4, 0).is_err());
/// ```
pub fn check_gemm_lengths(
    op: &str,
    m: usize,
    n: usize,
    k: usize,
    a_len: usize,
    b_len: usize,
    c_len: usize,
) -> Result<()> {
    for (name, rows, cols, len) in [("a", m, k, a_len), ("b", k, n, b_len), ("c", m, n, c_len)] {
        if rows.checked_mul(cols) != Some(len) {
            return Err(Error::invalid_argument(
                op,
                format!("{name} should hold {rows}x{cols} values, it has {len}"),
            ));
        }
    }
    Ok(())
}

/// The scalar reference: `c += op(a) * op(b)`, same arguments as [`gemm`], computed
/// by plain loops (used for small products and as the oracle in tests).
///
/// Each loop order keeps the innermost loop running along contiguous memory so the
/// compiler can vectorise it.
///
/// # Panics
/// If a slice length does not match its dimensions (see [`check_gemm_lengths`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_reference<T: Float>(
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    if let Err(e) = check_gemm_lengths("gemm_reference", m, n, k, a.len(), b.len(), c.len()) {
        panic!("{e}");
    }
    match (transpose_a, transpose_b) {
        // c[i, :] += a[i, p] * b[p, :]
        (false, false) => {
            for (a_row, c_row) in a.chunks_exact(k.max(1)).zip(c.chunks_exact_mut(n.max(1))) {
                for (&a_ip, b_row) in a_row.iter().zip(b.chunks_exact(n.max(1))) {
                    axpy(a_ip, b_row, c_row);
                }
            }
        }
        // c[i, j] += dot(a[i, :], b[j, :])
        (false, true) => {
            for (a_row, c_row) in a.chunks_exact(k.max(1)).zip(c.chunks_exact_mut(n.max(1))) {
                for (c_ij, b_row) in c_row.iter_mut().zip(b.chunks_exact(k.max(1))) {
                    *c_ij += dot(a_row, b_row);
                }
            }
        }
        // c[i, :] += a[p, i] * b[p, :]
        (true, false) => {
            for (a_row, b_row) in a.chunks_exact(m.max(1)).zip(b.chunks_exact(n.max(1))) {
                for (&a_pi, c_row) in a_row.iter().zip(c.chunks_exact_mut(n.max(1))) {
                    axpy(a_pi, b_row, c_row);
                }
            }
        }
        // c[i, j] += sum_p a[p, i] * b[j, p]
        (true, true) => {
            for i in 0..m {
                for j in 0..n {
                    let mut sum = T::ZERO;
                    for p in 0..k {
                        sum += a[p * m + i] * b[j * k + p];
                    }
                    c[i * n + j] += sum;
                }
            }
        }
    }
}

/// `y += alpha * x`.
#[inline]
pub fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) {
    for (y_i, &x_i) in y.iter_mut().zip(x) {
        *y_i += alpha * x_i;
    }
}

/// `sum_i x_i * y_i`, with four independent accumulators so the additions pipeline.
#[inline]
pub fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::ZERO; 4];
    let chunks = x.len() / 4;
    for c in 0..chunks {
        for lane in 0..4 {
            acc[lane] += x[4 * c + lane] * y[4 * c + lane];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in 4 * chunks..x.len().min(y.len()) {
        sum += x[i] * y[i];
    }
    sum
}
