//! Proptest strategies for property-testing ops, the ones the crate's own tests use.
//!
//! Enabled by the default `testing` feature. Use them to property-test your own ops
//! with [`gradcheck`](crate::gradcheck()):
//!
//! ```
//! use gumbelgrad::testing::{config, tensor_in};
//! use gumbelgrad::{gradcheck, GradcheckOptions};
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::new(config(16));
//! runner.run(&tensor_in(1..=4, 1..=4, -2.0..2.0), |x| {
//!     let report = gradcheck(&[x], GradcheckOptions::default(), |_, v| v[0] * v[0]).unwrap();
//!     prop_assert!(report.max_rel_error < 1e-6, "{}", report);
//!     Ok(())
//! }).unwrap();
//! ```

use std::ops::{Range, RangeInclusive};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use crate::tensor::{Shape, Tensor};

/// The seed every suite in this crate starts from, so failures reproduce exactly.
pub const SEED: u64 = 0x6775_6d62_656c;

/// A proptest configuration with `cases` cases, a fixed seed (reproducible runs),
/// shrinking on, and no regression files written beside the sources.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// Shapes with rows and columns in the given ranges (the crate's tests use `1..=8`).
pub fn shape(
    rows: RangeInclusive<usize>,
    cols: RangeInclusive<usize>,
) -> impl Strategy<Value = Shape> {
    (rows, cols).prop_map(|(r, c)| Shape::new(r, c))
}

/// A tensor of the given shape with values drawn from `values`.
pub fn tensor_of_shape(shape: Shape, values: Range<f64>) -> impl Strategy<Value = Tensor<f64>> {
    proptest::collection::vec(values, shape.len())
        .prop_map(move |data| Tensor::from_vec(shape.rows, shape.cols, data).expect("length"))
}

/// A tensor of random shape (rows and columns in the ranges) with values in `values`.
pub fn tensor_in(
    rows: RangeInclusive<usize>,
    cols: RangeInclusive<usize>,
    values: Range<f64>,
) -> impl Strategy<Value = Tensor<f64>> {
    shape(rows, cols).prop_flat_map(move |s| tensor_of_shape(s, values.clone()))
}

/// A tensor of the given shape whose values stay at least `min_abs` away from zero
/// (in `[-max_abs, -min_abs] U [min_abs, max_abs]`): for ops with a kink at zero, such
/// as `relu`, where finite differences straddling the kink are meaningless.
pub fn tensor_away_from_zero(
    shape: Shape,
    min_abs: f64,
    max_abs: f64,
) -> impl Strategy<Value = Tensor<f64>> {
    proptest::collection::vec((min_abs..max_abs, any::<bool>()), shape.len()).prop_map(
        move |pairs| {
            let data = pairs
                .into_iter()
                .map(|(magnitude, negative)| if negative { -magnitude } else { magnitude })
                .collect();
            Tensor::from_vec(shape.rows, shape.cols, data).expect("length")
        },
    )
}

/// A shape for grouped ops: `(rows, group_size, groups)`, giving a
/// `[rows, groups * group_size]` tensor. Columns stay at most `max_cols`.
pub fn grouped_shape(
    rows: RangeInclusive<usize>,
    max_cols: usize,
) -> impl Strategy<Value = (usize, usize, usize)> {
    (rows, 1..=max_cols.max(1)).prop_flat_map(move |(r, group_size)| {
        (
            Just(r),
            Just(group_size),
            1..=(max_cols / group_size).max(1),
        )
    })
}

/// Two tensors of the same random shape, values in `values`.
pub fn tensor_pair(
    rows: RangeInclusive<usize>,
    cols: RangeInclusive<usize>,
    values: Range<f64>,
) -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    shape(rows, cols).prop_flat_map(move |s| {
        (
            tensor_of_shape(s, values.clone()),
            tensor_of_shape(s, values.clone()),
        )
    })
}

/// Two shapes that broadcast together to a `[rows, cols]` result (rows and columns
/// drawn from the ranges): each side is independently the full `[rows, cols]`, a
/// `[1, cols]` row, a `[rows, 1]` column or a `[1, 1]` scalar.
///
/// ```
/// use gumbelgrad::testing::{broadcast_shapes, config};
/// use proptest::test_runner::TestRunner;
/// let mut runner = TestRunner::new(config(32));
/// runner.run(&broadcast_shapes(1..=8, 1..=8), |(left, right)| {
///     assert!(left.rows == right.rows || left.rows == 1 || right.rows == 1);
///     assert!(left.cols == right.cols || left.cols == 1 || right.cols == 1);
///     Ok(())
/// }).unwrap();
/// ```
pub fn broadcast_shapes(
    rows: RangeInclusive<usize>,
    cols: RangeInclusive<usize>,
) -> impl Strategy<Value = (Shape, Shape)> {
    let form = |full: Shape, which: u8| match which {
        0 => full,
        1 => Shape::new(1, full.cols),
        2 => Shape::new(full.rows, 1),
        _ => Shape::SCALAR,
    };
    (shape(rows, cols), 0..4u8, 0..4u8)
        .prop_map(move |(full, left, right)| (form(full, left), form(full, right)))
}

/// A `[rows, groups * group_size]` tensor with at most `max_cols` columns, together
/// with its `group_size`, for grouped ops (softmax over categorical groups).
pub fn grouped_tensor(
    rows: RangeInclusive<usize>,
    max_cols: usize,
    values: Range<f64>,
) -> impl Strategy<Value = (usize, Tensor<f64>)> {
    grouped_shape(rows, max_cols).prop_flat_map(move |(r, group_size, groups)| {
        (
            Just(group_size),
            tensor_of_shape(Shape::new(r, group_size * groups), values.clone()),
        )
    })
}

/// A non-empty range `start..end` with `end <= len` (for slicing).
pub fn sub_range(len: usize) -> impl Strategy<Value = (usize, usize)> {
    (0..len.max(1)).prop_flat_map(move |start| (Just(start), start + 1..=len.max(start + 1)))
}
