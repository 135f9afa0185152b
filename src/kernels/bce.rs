//! The summed binary cross-entropy with logits of one row, fast: what an evaluation
//! that decodes millions of samples spends most of its non-product time on.
//!
//! ```text
//! sum_j BCE(l_j, x_j) = sum_j max(l_j, 0) - x_j l_j + log1p(exp(-|l_j|))
//! ```
//!
//! The library calls `exp` and `log1p` one value at a time, and a call that cannot be
//! vectorised costs several nanoseconds; 784 pixels times ten million samples makes
//! that more than a minute. [`bce_with_logits_sum`] instead evaluates both functions
//! with short polynomials written as straight-line arithmetic over fixed-width chunks,
//! which the compiler turns into vector instructions (no `unsafe`, no intrinsics):
//!
//! - `exp(-a)`, `a = min(|l|, 87)`: `-a = n ln 2 + r` with `n` an integer and
//!   `|r| <= ln 2 / 2` (`ln 2` split in two constants so `r` is exact to f32 rounding),
//!   `exp(r)` by its Taylor polynomial of degree 6 (error below `2e-8` relative), and
//!   `2^n` built from its exponent bits. (Above 87, `exp(-a)` is below f32's smallest
//!   normal number and its `log1p` below `1e-38`: it cannot change the sum.)
//! - `log1p(e)`, `e` in `[0, 1]`: `log1p(e) = 2 atanh(s)` with `s = e / (2 + e)` in
//!   `[0, 1/3]`, and `atanh(s) = s (1 + s^2/3 + s^4/5 + ... + s^14/15)`: the first
//!   term left out is below `s^16/17 < 2e-9` relative.
//!
//! Each term is within a few f32 roundings of the exact value (the tests compare with
//! the f64 library functions); the terms are added into f64 accumulators, one per
//! lane, and the lanes added in a fixed order, so the result does not depend on
//! anything but the inputs. f64 rows take the plain scalar path
//! ([`bce_with_logits_sum_reference`]).

use crate::float::Float;

/// Values per chunk of the main loop (one AVX-512 or two AVX2 vectors of f32).
const LANES: usize = 16;

/// `sum_j BCE-with-logits(logits[j], targets[j])`, in f64 (see the module docs).
/// `logits` and `targets` must have the same length (extra values of the longer one
/// are ignored).
pub fn bce_with_logits_sum<T: Float>(logits: &[T], targets: &[T]) -> f64 {
    match (T::as_f32(logits), T::as_f32(targets)) {
        (Some(logits), Some(targets)) => sum_f32(logits, targets),
        _ => bce_with_logits_sum_reference(logits, targets),
    }
}

/// The scalar reference: each term `max(l, 0) - x l + ln_1p(exp(-|l|))` through the
/// library's `exp` and `ln_1p` in `T` (the expression of the training loss), added left
/// to right in f64.
pub fn bce_with_logits_sum_reference<T: Float>(logits: &[T], targets: &[T]) -> f64 {
    logits
        .iter()
        .zip(targets)
        .map(|(&l, &x)| (l.max(T::ZERO) - x * l + (-l.abs()).exp().ln_1p()).to_f64())
        .sum()
}

fn sum_f32(logits: &[f32], targets: &[f32]) -> f64 {
    let length = logits.len().min(targets.len());
    let (logits, targets) = (&logits[..length], &targets[..length]);
    let mut lanes = [0.0f64; LANES];
    let mut terms = [0.0f32; LANES];
    let chunks = logits.chunks_exact(LANES).zip(targets.chunks_exact(LANES));
    for (l, x) in chunks {
        for ((term, &l), &x) in terms.iter_mut().zip(l).zip(x) {
            *term = bce_term(l, x);
        }
        for (lane, &term) in lanes.iter_mut().zip(&terms) {
            *lane += f64::from(term);
        }
    }
    let done = length - length % LANES;
    for ((lane, &l), &x) in lanes.iter_mut().zip(&logits[done..]).zip(&targets[done..]) {
        *lane += f64::from(bce_term(l, x));
    }
    lanes.iter().sum()
}

/// One term, `max(l, 0) - x l + log1p(exp(-|l|))`, branch-free.
#[inline(always)]
fn bce_term(l: f32, x: f32) -> f32 {
    l.max(0.0) - x * l + log1p_unit(exp_negative(l.abs()))
}

/// `exp(-a)` for `a >= 0` (see the module docs); `a` above 87 is treated as 87.
#[inline(always)]
fn exp_negative(a: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HIGH + LN2_LOW (Cody and Waite's split): LN2_HIGH = 355/512 has 9
    // significant bits, so n * LN2_HIGH is exact for |n| <= 126.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (for |v| < 2^22)
    // in two vectorisable additions, where `f32::round` is a library call without SSE4.1.
    const ROUNDER: f32 = 12_582_912.0;
    let y = -a.min(87.0);
    let n = (y * LOG2_E + ROUNDER) - ROUNDER;
    let r = (y - n * LN2_HIGH) - n * LN2_LOW;
    // exp(r), |r| <= 0.347: Taylor to r^6 / 720, by Horner.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n from the exponent bits (n is in [-126, 0]).
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// `log1p(e)` for `e` in `[0, 1]` (see the module docs).
#[inline(always)]
fn log1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_log1p_agree_with_the_library_to_a_few_roundings() {
        let mut worst_exp = 0.0f64;
        let mut worst_log = 0.0f64;
        for i in 0..=200_000 {
            let a = i as f32 * 1e-3; // 0 .. 200
            let exact = (-f64::from(a.min(87.0))).exp();
            let got = f64::from(exp_negative(a));
            worst_exp = worst_exp.max(((got - exact) / exact).abs());
            let e = (i as f32 / 200_000.0).min(1.0);
            let exact = f64::from(e).ln_1p();
            let got = f64::from(log1p_unit(e));
            if exact > 0.0 {
                worst_log = worst_log.max(((got - exact) / exact).abs());
            }
        }
        assert!(
            worst_exp < 4.0 * f64::from(f32::EPSILON),
            "exp: {worst_exp:e}"
        );
        assert!(
            worst_log < 4.0 * f64::from(f32::EPSILON),
            "log1p: {worst_log:e}"
        );
    }

    #[test]
    fn the_sum_agrees_with_the_reference_for_any_length() {
        for length in [0, 1, 15, 16, 17, 784, 1000] {
            let logits: Vec<f32> = (0..length)
                .map(|i| ((i * 7919) % 2001) as f32 * 0.02 - 20.0)
                .collect();
            let targets: Vec<f32> = (0..length)
                .map(|i| ((i * 31) % 3 == 0) as u8 as f32)
                .collect();
            let exact: f64 = logits
                .iter()
                .zip(&targets)
                .map(|(&l, &x)| {
                    let (l, x) = (f64::from(l), f64::from(x));
                    l.max(0.0) - x * l + (-l.abs()).exp().ln_1p()
                })
                .sum();
            let fast = bce_with_logits_sum(&logits, &targets);
            let terms_scale: f64 = logits.iter().map(|&l| f64::from(l.abs()) + 1.0).sum();
            assert!(
                (fast - exact).abs() <= 4.0 * f64::from(f32::EPSILON) * terms_scale,
                "length {length}: {fast} against {exact}"
            );
            let f64_logits: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
            let f64_targets: Vec<f64> = targets.iter().map(|&x| f64::from(x)).collect();
            let reference = bce_with_logits_sum(&f64_logits, &f64_targets);
            assert!((reference - exact).abs() <= 1e-9 * terms_scale.max(1.0));
        }
    }

    #[test]
    fn huge_logits_stay_finite_and_exact_in_their_linear_part() {
        let logits = [1e30f32, -1e30, 88.0, -88.0, 0.0];
        let targets = [1.0f32, 0.0, 0.0, 1.0, 1.0];
        let sum = bce_with_logits_sum(&logits, &targets);
        let expected = 0.0 + 0.0 + 88.0 + 88.0 + std::f64::consts::LN_2;
        assert!((sum - expected).abs() < 1e-5, "{sum}");
    }
}
