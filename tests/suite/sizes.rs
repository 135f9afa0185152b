//! Sizes from the public API are computed with checked arithmetic: a `rows x cols` whose
//! product overflows `usize` is a typed error (or, for the infallible constructors, a
//! panic naming the overflow), never a wrapped, too small buffer.

use gumbelgrad::{Error, Shape, Tensor};
use proptest::prelude::*;

/// Dimensions whose product may or may not overflow: small, huge and in between.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=8,
        Just(usize::MAX),
        Just(1usize << 63),
        Just(1usize << 32),
        (1usize << 31)..=(1usize << 33),
        any::<usize>(),
    ]
}

proptest! {
    #![proptest_config(gumbelgrad::testing::config(256))]

    #[test]
    fn from_vec_accepts_exactly_the_lengths_that_fit(rows in dim(), cols in dim(), len in 0usize..=16) {
        let data = vec![0.5f32; len];
        let result = Tensor::from_vec(rows, cols, data.clone());
        match rows.checked_mul(cols) {
            Some(n) if n == len => {
                let t = result.unwrap();
                prop_assert_eq!(t.shape(), Shape::new(rows, cols));
                prop_assert_eq!(t.len(), len);
            }
            _ => prop_assert!(
                matches!(result, Err(Error::BadLength { rows: r, cols: c, len: l }) if r == rows && c == cols && l == len),
                "{rows}x{cols} from {len}"
            ),
        }
        let reshaped = Tensor::from_vec(1, len, data).unwrap().reshape(rows, cols);
        prop_assert_eq!(reshaped.is_ok(), rows.checked_mul(cols) == Some(len));
    }

    #[test]
    fn try_zeros_errors_exactly_when_the_size_overflows(rows in dim(), cols in dim()) {
        let shape = Shape::new(rows, cols);
        prop_assert_eq!(shape.checked_len(), rows.checked_mul(cols));
        match rows.checked_mul(cols) {
            // Only build the small ones; a large valid size would allocate.
            Some(n) if n <= 64 => {
                let t = Tensor::<f64>::try_zeros(rows, cols).unwrap();
                prop_assert_eq!(t.len(), n);
                prop_assert_eq!(Tensor::<f32>::try_full(rows, cols, 2.0).unwrap().len(), n);
            }
            Some(_) => {}
            None => {
                let zeros = matches!(Tensor::<f64>::try_zeros(rows, cols), Err(Error::InvalidArgument { .. }));
                let full = matches!(Tensor::<f32>::try_full(rows, cols, 1.0), Err(Error::InvalidArgument { .. }));
                prop_assert!(zeros && full, "{}x{}", rows, cols);
                prop_assert!(shape.size_for("test").is_err());
            }
        }
    }
}

/// The cases of the report: each used to return a length-0 buffer.
#[test]
fn overflowing_shapes_are_refused() {
    assert!(matches!(
        Tensor::<f32>::from_vec(1 << 63, 2, vec![]),
        Err(Error::BadLength { .. })
    ));
    assert!(Tensor::<f32>::try_zeros(1 << 63, 2).is_err());
    for build in [
        || drop(Tensor::<f32>::zeros(1 << 63, 2)),
        || drop(Tensor::<f32>::full(2, 1 << 63, 1.0)),
        || drop(Tensor::<f64>::ones(usize::MAX, usize::MAX)),
        || {
            let _ = Shape::new(1 << 63, 4).len();
        },
    ] {
        let message = std::panic::catch_unwind(build).unwrap_err();
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            text.contains("overflow") || text.contains("fit in usize"),
            "{text}"
        );
    }
}
