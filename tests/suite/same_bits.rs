//! Bit-for-bit comparison of two models' parameters, for the tests that hold a resumed or
//! re-split run to an uninterrupted one.

use gumbelgrad::Float;
use gumbelgrad::nn::Parameters;

/// Asserts that `a` and `b` hold the same parameters with the same bits, naming the first
/// parameter that differs.
pub fn assert_same_parameters<T: Float>(a: &Parameters<T>, b: &Parameters<T>, after: &str) {
    assert_eq!(
        a.iter().count(),
        b.iter().count(),
        "parameter count differs {after}"
    );
    for ((name, x), (other, y)) in a.iter().zip(b.iter()) {
        assert_eq!(name, other, "parameter order differs {after}");
        let same = x.shape() == y.shape()
            && x.as_slice()
                .iter()
                .zip(y.as_slice())
                .all(|(p, q)| p.to_f64().to_bits() == q.to_f64().to_bits());
        assert!(same, "parameter {name} differs {after}");
    }
}
