//! Binary cross-entropy with logits in f32, fast: the decoder loss of every training
//! step, and what an evaluation that decodes millions of samples spends most of its
//! non-product time on.
//!
//! ```text
//! BCE(l, x)        = max(l, 0) - x l + log1p(exp(-|l|))
//! d BCE(l, x) / dl = sigmoid(l) - x
//! ```
//!
//! The library calls `exp` and `log1p` one value at a time, and a call that cannot be
//! vectorised costs several nanoseconds: 78,400 pixels a training step, and 784 pixels
//! times ten million samples for the m = 1000 bound. The functions here instead evaluate
//! both with short polynomials written as straight-line arithmetic over fixed-width
//! chunks, which the compiler turns into vector instructions (no intrinsics). Each loop
//! is compiled for AVX-512, for AVX2 and portably (SSE2 on x86-64), and the build for the
//! CPU is chosen at run time (`compiled_for_each_isa!`); all builds give the same bits.
//!
//! - `exp(-a)`, `a = min(|l|, 87)`: `-a = n ln 2 + r` with `n` an integer and
//!   `|r| <= ln 2 / 2` (`ln 2` split in two constants so `r` is exact to f32 rounding),
//!   `exp(r)` by its Taylor polynomial of degree 6 (error below `2e-8` relative), and
//!   `2^n` built from its exponent bits. (Above 87, `exp(-a)` is below f32's smallest
//!   normal number and its `log1p` below `1e-38`: it cannot change the sum.)
//! - `log1p(e)`, `e` in `[0, 1]`: `log1p(e) = 2 atanh(s)` with `s = e / (2 + e)` in
//!   `[0, 1/3]`, and `atanh(s) = s (1 + s^2/3 + s^4/5 + ... + s^14/15)`: the first
//!   term left out is below `s^16/17 < 2e-9` relative.
//! - `sigmoid(l)`: `1 / (1 + e)` for `l >= 0` and `e / (1 + e)` below, with
//!   `e = exp(-|l|)` as above, so no exponential of a positive number is taken.
//!
//! Each value is within a few f32 roundings of the exact one (the tests compare with
//! the f64 library functions). The f32 training ops ([`BceWithLogits`] and
//! [`BceWithLogitsSumCols`]) take their terms and gradients from here, so the fused
//! and the unfused loss stay bit-identical; f64 tensors (the gradchecks) take the
//! library functions.
//!
//! [`BceWithLogits`]: crate::ops::loss::BceWithLogits
//! [`BceWithLogitsSumCols`]: crate::ops::linear::BceWithLogitsSumCols

use super::per_isa::compiled_for_each_isa;
use crate::float::Float;

/// Values per chunk of the main loop (one AVX-512 or two AVX2 vectors of f32).
const LANES: usize = 16;

/// `sum_j BCE-with-logits(logits[j], targets[j])`, in f64 (see the module docs): the
/// f32 terms are added into f64 accumulators, one per lane, and the lanes added in a
/// fixed order, so the result depends on nothing but the inputs. f64 rows take the
/// scalar path ([`bce_with_logits_sum_reference`]). `logits` and `targets` must have
/// the same length (extra values of the longer one are ignored).
pub fn bce_with_logits_sum<T: Float>(logits: &[T], targets: &[T]) -> f64 {
    match (T::as_f32(logits), T::as_f32(targets)) {
        (Some(logits), Some(targets)) => sum_f32(logits, targets),
        _ => bce_with_logits_sum_reference(logits, targets),
    }
}

/// The scalar reference: each term `max(l, 0) - x l + ln_1p(exp(-|l|))` through the
/// library's `exp` and `ln_1p` in `T` (the expression of the f64 training loss), added
/// left to right in f64.
pub fn bce_with_logits_sum_reference<T: Float>(logits: &[T], targets: &[T]) -> f64 {
    logits
        .iter()
        .zip(targets)
        .map(|(&l, &x)| (l.max(T::ZERO) - x * l + (-l.abs()).exp().ln_1p()).to_f64())
        .sum()
}

/// The loop of [`bce_with_logits_terms_f32`].
#[inline(always)]
fn terms_body(logits: &[f32], targets: &[f32], out: &mut [f32]) {
    let length = logits.len().min(targets.len()).min(out.len());
    let (logits, targets, out) = (&logits[..length], &targets[..length], &mut out[..length]);
    let chunks = out
        .chunks_mut(LANES)
        .zip(logits.chunks(LANES))
        .zip(targets.chunks(LANES));
    for ((out, l), x) in chunks {
        for ((y, &l), &x) in out.iter_mut().zip(l).zip(x) {
            *y = bce_term(l, x);
        }
    }
}

/// The loop of [`bce_with_logits_row_sum_f32`].
#[inline(always)]
fn row_sum_body(logits: &[f32], targets: &[f32]) -> f32 {
    let mut terms = [0.0f32; LANES];
    let mut total = 0.0f32;
    for (l, x) in logits.chunks(LANES).zip(targets.chunks(LANES)) {
        let n = l.len().min(x.len());
        for ((term, &l), &x) in terms.iter_mut().zip(l).zip(x) {
            *term = bce_term(l, x);
        }
        for &term in &terms[..n] {
            total += term;
        }
    }
    total
}

/// The loop of [`add_bce_logit_gradient_f32`].
#[inline(always)]
fn logit_gradient_body(logits: &[f32], targets: &[f32], scale: &[f32], grad: &mut [f32]) {
    let chunks = grad
        .chunks_mut(LANES)
        .zip(logits.chunks(LANES))
        .zip(targets.chunks(LANES))
        .zip(scale.chunks(LANES));
    for (((grad, l), x), g) in chunks {
        for (((d, &l), &x), &g) in grad.iter_mut().zip(l).zip(x).zip(g) {
            *d += g * (sigmoid(l) - x);
        }
    }
}

/// The loop of [`add_bce_row_logit_gradient_f32`].
#[inline(always)]
fn row_logit_gradient_body(logits: &[f32], targets: &[f32], scale: f32, grad: &mut [f32]) {
    let chunks = grad
        .chunks_mut(LANES)
        .zip(logits.chunks(LANES))
        .zip(targets.chunks(LANES));
    for ((grad, l), x) in chunks {
        for ((d, &l), &x) in grad.iter_mut().zip(l).zip(x) {
            *d += scale * (sigmoid(l) - x);
        }
    }
}

/// The loop of [`sum_f32`]: `LANES` f64 sums, each of every `LANES`-th term, added
/// in a fixed order at the end.
#[inline(always)]
fn sum_body(logits: &[f32], targets: &[f32]) -> f64 {
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

compiled_for_each_isa! {
    /// `out[j] = BCE(logits[j], targets[j])` (see the module docs). The three slices must
    /// have the same length (extra values of a longer one are left alone).
    pub fn bce_with_logits_terms_f32 / terms_on(
        logits: &[f32], targets: &[f32], out: &mut [f32]
    ) = terms_body;
}

compiled_for_each_isa! {
    /// `sum_j BCE(logits[j], targets[j])` in f32, added left to right from zero: the same
    /// bits as [`bce_with_logits_terms_f32`] followed by a left-to-right sum (what
    /// `sum_cols` does), without storing the terms.
    pub fn bce_with_logits_row_sum_f32 / row_sum_on(logits: &[f32], targets: &[f32]) -> f32 = row_sum_body;
}

compiled_for_each_isa! {
    /// `grad[j] += scale[j] * (sigmoid(logits[j]) - targets[j])`: the logits' gradient of
    /// the elementwise loss (see the module docs). All four slices have the same length.
    pub fn add_bce_logit_gradient_f32 / logit_gradient_on(
        logits: &[f32], targets: &[f32], scale: &[f32], grad: &mut [f32]
    ) = logit_gradient_body;
}

compiled_for_each_isa! {
    /// `grad[j] += scale * (sigmoid(logits[j]) - targets[j])`: the logits' gradient of one
    /// row's summed loss, whose output gradient `scale` is shared by the row.
    pub fn add_bce_row_logit_gradient_f32 / row_logit_gradient_on(
        logits: &[f32], targets: &[f32], scale: f32, grad: &mut [f32]
    ) = row_logit_gradient_body;
}

compiled_for_each_isa! {
    /// The f32 sum of [`bce_with_logits_sum`].
    fn sum_f32 / sum_on(logits: &[f32], targets: &[f32]) -> f64 = sum_body;
}

/// One term, `max(l, 0) - x l + log1p(exp(-|l|))`, branch-free.
#[inline(always)]
fn bce_term(l: f32, x: f32) -> f32 {
    l.max(0.0) - x * l + log1p_unit(exp_negative(l.abs()))
}

/// `sigmoid(l)`, branch-free: `1 / (1 + e)` for `l >= 0`, `e / (1 + e)` below, with
/// `e = exp(-|l|)`.
#[inline(always)]
fn sigmoid(l: f32) -> f32 {
    let e = exp_negative(l.abs());
    let numerator = if l >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
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
    let shifted = y * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (y - n * LN2_HIGH) - n * LN2_LOW;
    // exp(r), |r| <= 0.347: Taylor to r^6 / 720, by Horner.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n from the exponent bits (n is in [-126, 0]). `shifted` = 1.5 * 2^23 + n lies in
    // [2^23, 2^24), where one unit of the last place is 1, so its bits are those of
    // 1.5 * 2^23 plus n: integer arithmetic on them gives n + 127 without a float to
    // integer conversion (which, saturating in Rust, the compiler does one lane at a
    // time).
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUNDER.to_bits())
        .wrapping_add(127);
    let scale = f32::from_bits(biased << 23);
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
    use crate::kernels::gemm::Isa;

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

    fn sample_row(length: usize) -> (Vec<f32>, Vec<f32>) {
        let logits = (0..length)
            .map(|i| ((i * 7919) % 2001) as f32 * 0.02 - 20.0)
            .collect();
        let targets = (0..length)
            .map(|i| ((i * 31) % 3 == 0) as u8 as f32)
            .collect();
        (logits, targets)
    }

    #[test]
    fn sigmoid_agrees_with_the_library_to_a_few_roundings() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let l = i as f32 * 1e-3; // -200 .. 200
            let exact = 1.0 / (1.0 + (-f64::from(l)).exp());
            let got = f64::from(sigmoid(l));
            // Below about -87 the exact value is under f32's normal range.
            if exact > 1e-37 {
                worst = worst.max(((got - exact) / exact).abs());
            }
        }
        assert!(worst < 4.0 * f64::from(f32::EPSILON), "sigmoid: {worst:e}");
        assert_eq!(sigmoid(1e30), 1.0);
        // exp(-a) is clamped at a = 87, so far below zero the value is 1.6e-38, not 0.
        assert!(sigmoid(-1e30) < 1e-37);
    }

    #[test]
    fn terms_row_sums_and_gradients_agree_with_f64_for_any_length() {
        for length in [0, 1, 15, 16, 17, 784] {
            let (logits, targets) = sample_row(length);
            let mut terms = vec![0.0f32; length];
            bce_with_logits_terms_f32(&logits, &targets, &mut terms);
            let mut left_to_right = 0.0f32;
            for (j, (&l, &x)) in logits.iter().zip(&targets).enumerate() {
                let (l64, x64) = (f64::from(l), f64::from(x));
                let exact = l64.max(0.0) - x64 * l64 + (-l64.abs()).exp().ln_1p();
                let bound = 4.0 * f64::from(f32::EPSILON) * (l64.abs() + 1.0);
                assert!((f64::from(terms[j]) - exact).abs() <= bound, "term {j}");
                left_to_right += terms[j];
            }
            // The row sum is the terms added left to right, bit for bit.
            let sum = bce_with_logits_row_sum_f32(&logits, &targets);
            assert_eq!(sum.to_bits(), left_to_right.to_bits(), "length {length}");

            let scale: Vec<f32> = (0..length).map(|j| 0.5 + j as f32 * 0.01).collect();
            let mut grad = vec![1.0f32; length];
            add_bce_logit_gradient_f32(&logits, &targets, &scale, &mut grad);
            let mut row_grad = vec![1.0f32; length];
            add_bce_row_logit_gradient_f32(&logits, &targets, 0.75, &mut row_grad);
            for j in 0..length {
                let (l, x) = (f64::from(logits[j]), f64::from(targets[j]));
                let slope = 1.0 / (1.0 + (-l).exp()) - x;
                let expected = 1.0 + f64::from(scale[j]) * slope;
                assert!((f64::from(grad[j]) - expected).abs() <= 1e-6, "grad {j}");
                let expected = 1.0 + 0.75 * slope;
                assert!((f64::from(row_grad[j]) - expected).abs() <= 1e-6, "row {j}");
            }
        }
    }

    /// Every instruction set's build of every loop gives the portable build's bits, on
    /// rows of every length around the chunk width, with logits from -100 to 100
    /// (both sides of the clamp at 87) and soft and hard targets. Builds this CPU lacks
    /// run the portable code, and the test says which were not exercised.
    #[test]
    fn every_instruction_set_gives_the_portable_bits() {
        let isas = [Isa::Avx2, Isa::Avx512];
        for isa in isas.into_iter().filter(|isa| !isa.is_available()) {
            eprintln!("{isa:?} not available on this CPU: its BCE build is not tested here");
        }
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for length in [0, 1, 7, 15, 16, 17, 31, 33, 200, 784] {
            let logits: Vec<f32> = (0..length)
                .map(|i| ((i * 7919) % 2001) as f32 * 0.1 - 100.0)
                .collect();
            let targets: Vec<f32> = (0..length).map(|i| (i % 5) as f32 * 0.25).collect();
            let scale: Vec<f32> = (0..length).map(|j| 0.5 - j as f32 * 0.01).collect();
            let run = |isa: Isa| {
                let mut terms = vec![0.0f32; length];
                terms_on(isa, &logits, &targets, &mut terms);
                let mut grad = vec![1.0f32; length];
                logit_gradient_on(isa, &logits, &targets, &scale, &mut grad);
                let mut row_grad = vec![1.0f32; length];
                row_logit_gradient_on(isa, &logits, &targets, -0.75, &mut row_grad);
                let row_sum = row_sum_on(isa, &logits, &targets).to_bits();
                let sum = sum_on(isa, &logits, &targets).to_bits();
                (bits(&terms), bits(&grad), bits(&row_grad), row_sum, sum)
            };
            let portable = run(Isa::Portable);
            for isa in isas.into_iter().filter(|isa| isa.is_available()) {
                assert!(run(isa) == portable, "{isa:?}, length {length}");
            }
        }
    }
}
