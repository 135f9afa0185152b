//! The vectorised finite check against the plain scalar reference, in f32 and f64:
//! random lengths (across the 32-wide chunks and their remainder), with NaN, +inf or
//! -inf planted at random places, or none.

use gumbelgrad::Float;
use gumbelgrad::kernels::finite::{all_finite, all_finite_reference};
use gumbelgrad::testing::config;
use proptest::prelude::*;

fn check<T: Float>(values: &[f64], bad: &[(usize, u8)]) -> Result<(), TestCaseError> {
    let mut values: Vec<T> = values.iter().map(|&v| T::from_f64(v)).collect();
    for &(position, kind) in bad {
        if values.is_empty() {
            break;
        }
        let position = position % values.len();
        values[position] = T::from_f64(match kind % 3 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            _ => f64::NEG_INFINITY,
        });
    }
    prop_assert_eq!(all_finite(&values), all_finite_reference(&values));
    prop_assert_eq!(all_finite(&values), bad.is_empty() || values.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn all_finite_matches_the_scalar_reference(
        values in proptest::collection::vec(-1e30f64..1e30, 0..200),
        bad in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        check::<f32>(&values, &bad)?;
        check::<f64>(&values, &bad)?;
    }
}

#[test]
fn extremes_are_finite_and_non_finite_values_are_found_anywhere() {
    let extremes = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0, 0.0, 1e-45];
    assert!(all_finite(&extremes));
    for length in [1, 31, 32, 33, 64, 100] {
        for position in [0, length / 2, length - 1] {
            let mut values = vec![1.5f64; length];
            values[position] = f64::NAN;
            assert!(!all_finite(&values), "NaN at {position} of {length}");
            values[position] = f64::INFINITY;
            assert!(!all_finite(&values), "inf at {position} of {length}");
        }
    }
}
