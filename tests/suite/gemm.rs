//! The fast GEMM (`kernels::gemm`) against the scalar reference (`gemm_reference`):
//! every instruction set this CPU has (the portable one always), f32 and f64, all four
//! transpose variants, awkward shapes; and bit-identical results for 1, 2 and 3 threads.

use gumbelgrad::Float;
use gumbelgrad::kernels::gemm::{GemmConfig, Isa, gemm, gemm_overwrite};
use gumbelgrad::kernels::matmul::{self, gemm_reference};
use gumbelgrad::testing::config;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The instruction sets this machine can run (always includes `Portable`).
fn available_isas() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|isa| isa.is_available())
        .collect()
}

/// Writes a line to the process's stderr directly, past the test harness's capture (which
/// only takes `print!`/`eprint!` output): shown by `cargo test` even for passing tests,
/// so CI logs say which kernels were not exercised on this machine.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn random_vec<T: Float>(len: usize, rng: &mut StdRng) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f64(rng.random_range(-1.0..1.0)))
        .collect()
}

/// Asserts `got` equals `want` (both `c0 + op(a) op(b)` computed in type `T`) up to the
/// dot-product rounding bound: each is within `(k + 1) eps (|c0| + sum_p |a||b|)` of the
/// exact value, so they are within twice that of each other.
#[allow(clippy::too_many_arguments)]
fn assert_close<T: Float>(
    what: &str,
    (ta, tb, m, n, k): (bool, bool, usize, usize, usize),
    a: &[T],
    b: &[T],
    c0: &[T],
    got: &[T],
    want: &[T],
) {
    let abs_a: Vec<T> = a.iter().map(|v| v.abs()).collect();
    let abs_b: Vec<T> = b.iter().map(|v| v.abs()).collect();
    let mut magnitude: Vec<T> = c0.iter().map(|v| v.abs()).collect();
    gemm_reference(ta, tb, m, n, k, &abs_a, &abs_b, &mut magnitude);
    let eps = T::EPSILON.to_f64();
    for (index, ((&g, &w), &mag)) in got.iter().zip(want).zip(&magnitude).enumerate() {
        let bound = 2.0 * (k as f64 + 2.0) * eps * mag.to_f64() * 1.01;
        let diff = (g.to_f64() - w.to_f64()).abs();
        assert!(
            diff <= bound,
            "{what} {} ta={ta} tb={tb} m={m} n={n} k={k}: c[{index}] = {g}, reference {w}, \
             |diff| {diff:e} > bound {bound:e}",
            T::NAME
        );
    }
}

fn check_against_reference<T: Float>(dims: (bool, bool, usize, usize, usize), seed: u64) {
    let (ta, tb, m, n, k) = dims;
    let mut rng = StdRng::seed_from_u64(seed);
    let a = random_vec::<T>(m * k, &mut rng);
    let b = random_vec::<T>(k * n, &mut rng);
    let c0 = random_vec::<T>(m * n, &mut rng);
    let mut want = c0.clone();
    gemm_reference(ta, tb, m, n, k, &a, &b, &mut want);
    for isa in available_isas() {
        let cfg = GemmConfig::current().with_threads(1).with_isa(isa).unwrap();
        let mut got = c0.clone();
        gemm(&cfg, ta, tb, m, n, k, &a, &b, &mut got).unwrap();
        assert_close(&format!("{isa:?}"), dims, &a, &b, &c0, &got, &want);
    }
    // The dispatching entry point the ops use (fast or plain depending on size).
    let mut got = c0.clone();
    matmul::gemm(ta, tb, m, n, k, &a, &b, &mut got);
    assert_close("matmul::gemm", dims, &a, &b, &c0, &got, &want);
}

/// Dimensions that hit ragged edges of every tile shape (MR in 4, 6, 10; NR in 4..32).
fn edge_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 2, 5, 7, 9, 11, 13, 17, 31, 33, 63, 65, 100]),
        1usize..=130,
    ]
}

fn dims_strategy() -> impl Strategy<Value = (bool, bool, usize, usize, usize)> {
    (
        any::<bool>(),
        any::<bool>(),
        edge_dim(),
        edge_dim(),
        edge_dim(),
    )
}

#[test]
fn fast_gemm_matches_reference_on_random_shapes_f32() {
    let mut runner = TestRunner::new(config(48));
    runner
        .run(&(dims_strategy(), any::<u64>()), |(dims, seed)| {
            check_against_reference::<f32>(dims, seed);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fast_gemm_matches_reference_on_random_shapes_f64() {
    let mut runner = TestRunner::new(config(48));
    runner
        .run(&(dims_strategy(), any::<u64>()), |(dims, seed)| {
            check_against_reference::<f64>(dims, seed);
            Ok(())
        })
        .unwrap();
}

/// Deep and wide products: several depth blocks (k > 384), row blocks and column blocks, all four
/// transpose variants, plus the model's own shapes.
#[test]
fn fast_gemm_matches_reference_on_large_shapes() {
    let shapes = [
        (100, 512, 784),
        (65, 700, 777),
        (129, 33, 1000),
        (7, 1100, 65),
        // Two row blocks, three depth blocks and (in f64) several column blocks, all
        // reading one copy of A packed beforehand.
        (130, 1100, 800),
    ];
    for (index, &(m, n, k)) in shapes.iter().enumerate() {
        for ta in [false, true] {
            for tb in [false, true] {
                check_against_reference::<f32>((ta, tb, m, n, k), index as u64);
                check_against_reference::<f64>((ta, tb, m, n, k), 100 + index as u64);
            }
        }
    }
}

#[test]
fn empty_products_leave_c_alone() {
    let cfg = GemmConfig::current();
    let mut c = vec![3.0f32; 6];
    gemm(&cfg, false, false, 2, 3, 0, &[], &[], &mut c).unwrap();
    assert_eq!(c, vec![3.0; 6]);
    let mut empty: Vec<f64> = vec![];
    gemm(&cfg, true, true, 0, 4, 5, &[], &[0.5; 20], &mut empty).unwrap();
}

/// `gemm_overwrite` into a buffer of NaN gives the bits `gemm` gives into zeros, for
/// every instruction set and thread count, one depth block or several; the old
/// contents are never read (a NaN read would spread).
fn check_overwrite_matches_zeroed<T: Float>(dims: (bool, bool, usize, usize, usize), seed: u64) {
    let (ta, tb, m, n, k) = dims;
    let mut rng = StdRng::seed_from_u64(seed);
    let a = random_vec::<T>(m * k, &mut rng);
    let b = random_vec::<T>(k * n, &mut rng);
    for isa in available_isas() {
        for threads in [1, 2, 3] {
            let cfg = GemmConfig::current()
                .with_isa(isa)
                .unwrap()
                .with_min_work_per_thread(1)
                .with_threads(threads);
            let mut added = vec![T::ZERO; m * n];
            gemm(&cfg, ta, tb, m, n, k, &a, &b, &mut added).unwrap();
            let mut written = vec![T::from_f64(f64::NAN); m * n];
            gemm_overwrite(&cfg, ta, tb, m, n, k, &a, &b, &mut written).unwrap();
            let same = added
                .iter()
                .zip(&written)
                .all(|(x, y)| x.to_f64() == y.to_f64() && !y.to_f64().is_nan());
            assert!(same, "{isa:?} {} {dims:?} {threads} threads", T::NAME);
        }
    }
    // Through the ops' entry point, small products (the plain loops) included.
    let mut added = vec![T::ZERO; m * n];
    matmul::gemm(ta, tb, m, n, k, &a, &b, &mut added);
    let mut written = vec![T::from_f64(f64::NAN); m * n];
    matmul::gemm_overwrite(ta, tb, m, n, k, &a, &b, &mut written);
    assert!(
        added
            .iter()
            .zip(&written)
            .all(|(x, y)| x.to_f64() == y.to_f64())
    );
}

#[test]
fn overwriting_products_ignore_the_old_contents() {
    let mut runner = TestRunner::new(config(16));
    let dims = (
        any::<bool>(),
        any::<bool>(),
        0usize..=40,
        0usize..=70,
        0usize..=900,
    );
    runner
        .run(&(dims, any::<u64>()), |(dims, seed)| {
            check_overwrite_matches_zeroed::<f32>(dims, seed);
            check_overwrite_matches_zeroed::<f64>(dims, seed);
            Ok(())
        })
        .unwrap();
    check_overwrite_matches_zeroed::<f32>((false, false, 100, 512, 784), 1);
    check_overwrite_matches_zeroed::<f32>((false, true, 100, 784, 512), 2);
}

fn check_thread_counts_bit_identical<T: Float>(dims: (bool, bool, usize, usize, usize), seed: u64) {
    let (ta, tb, m, n, k) = dims;
    let mut rng = StdRng::seed_from_u64(seed);
    let a = random_vec::<T>(m * k, &mut rng);
    let b = random_vec::<T>(k * n, &mut rng);
    let c0 = random_vec::<T>(m * n, &mut rng);
    for isa in available_isas() {
        // Every product splits, however small.
        let base = GemmConfig::current()
            .with_isa(isa)
            .unwrap()
            .with_min_work_per_thread(1);
        let mut one = c0.clone();
        gemm(&base.with_threads(1), ta, tb, m, n, k, &a, &b, &mut one).unwrap();
        for threads in [2, 3] {
            let mut many = c0.clone();
            gemm(
                &base.with_threads(threads),
                ta,
                tb,
                m,
                n,
                k,
                &a,
                &b,
                &mut many,
            )
            .unwrap();
            let same = one
                .iter()
                .zip(&many)
                .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits());
            assert!(
                same,
                "{isa:?} {} {dims:?}: {threads} threads differ from 1",
                T::NAME
            );
        }
    }
}

#[test]
fn thread_count_does_not_change_a_single_bit() {
    let mut runner = TestRunner::new(config(16));
    let dims = (
        any::<bool>(),
        any::<bool>(),
        1usize..=150,
        1usize..=150,
        1usize..=900,
    );
    runner
        .run(&(dims, any::<u64>()), |(dims, seed)| {
            check_thread_counts_bit_identical::<f32>(dims, seed);
            check_thread_counts_bit_identical::<f64>(dims, seed);
            Ok(())
        })
        .unwrap();
    check_thread_counts_bit_identical::<f32>((false, false, 100, 512, 784), 1);
    check_thread_counts_bit_identical::<f32>((true, false, 784, 512, 100), 2);
}

/// The AVX2 and AVX-512 kernels do the same FMAs in the same order, so they agree
/// bit for bit (checked only where the CPU has both).
#[test]
fn avx2_and_avx512_agree_bit_for_bit() {
    if !(Isa::Avx2.is_available() && Isa::Avx512.is_available()) {
        report("avx2_and_avx512_agree_bit_for_bit: SKIPPED, this CPU lacks AVX2 or AVX-512");
        return;
    }
    let mut rng = StdRng::seed_from_u64(7);
    for &(ta, tb, m, n, k) in &[
        (false, false, 100, 200, 784),
        (true, true, 37, 65, 401),
        (true, false, 13, 130, 17),
    ] {
        let a = random_vec::<f32>(m * k, &mut rng);
        let b = random_vec::<f32>(k * n, &mut rng);
        let mut results = Vec::new();
        for isa in [Isa::Avx2, Isa::Avx512] {
            let cfg = GemmConfig::current().with_threads(1).with_isa(isa).unwrap();
            let mut c = vec![0.0f32; m * n];
            gemm(&cfg, ta, tb, m, n, k, &a, &b, &mut c).unwrap();
            results.push(c);
        }
        assert!(
            results[0]
                .iter()
                .zip(&results[1])
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }
}

/// Each instruction set the micro-kernel is compiled for, one test each, against the
/// scalar reference on random and large shapes, f32 and f64. The portable kernel runs on
/// every machine; the x86-64 ones run where the CPU has them and otherwise report, in
/// the output `cargo test` prints, that they were not exercised.
fn check_isa_against_reference(isa: Isa) {
    if !isa.is_available() {
        report(&format!(
            "gemm {isa:?} micro-kernel: NOT TESTED, this CPU does not have {isa:?} \
             (set GUMBELGRAD_REQUIRE_ISAS to make this a failure)"
        ));
        let required = std::env::var("GUMBELGRAD_REQUIRE_ISAS").unwrap_or_default();
        assert!(
            !required
                .split(',')
                .any(|name| name.trim().eq_ignore_ascii_case(&format!("{isa:?}"))),
            "GUMBELGRAD_REQUIRE_ISAS={required} requires {isa:?}, which this CPU lacks"
        );
        return;
    }
    let cfg = GemmConfig::current().with_threads(1).with_isa(isa).unwrap();
    assert_eq!(cfg.isa(), isa);
    let mut rng = StdRng::seed_from_u64(11);
    let shapes = [
        (1, 1, 1),
        (7, 9, 13),
        (33, 65, 17),
        (100, 130, 400),
        (5, 300, 450),
    ];
    for &(m, n, k) in &shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let dims = (ta, tb, m, n, k);
            let a = random_vec::<f32>(m * k, &mut rng);
            let b = random_vec::<f32>(k * n, &mut rng);
            let c0 = random_vec::<f32>(m * n, &mut rng);
            let (mut got, mut want) = (c0.clone(), c0.clone());
            gemm_reference(ta, tb, m, n, k, &a, &b, &mut want);
            gemm(&cfg, ta, tb, m, n, k, &a, &b, &mut got).unwrap();
            assert_close(&format!("{isa:?}"), dims, &a, &b, &c0, &got, &want);
            let a: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
            let b: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
            let c0: Vec<f64> = c0.iter().map(|&v| f64::from(v)).collect();
            let (mut got, mut want) = (c0.clone(), c0.clone());
            gemm_reference(ta, tb, m, n, k, &a, &b, &mut want);
            gemm(&cfg, ta, tb, m, n, k, &a, &b, &mut got).unwrap();
            assert_close(&format!("{isa:?}"), dims, &a, &b, &c0, &got, &want);
        }
    }
    report(&format!(
        "gemm {isa:?} micro-kernel: tested against the scalar reference"
    ));
}

#[test]
fn portable_kernel_agrees_with_reference() {
    check_isa_against_reference(Isa::Portable);
}

#[test]
fn avx2_kernel_agrees_with_reference_or_reports_not_tested() {
    check_isa_against_reference(Isa::Avx2);
}

#[test]
fn avx512_kernel_agrees_with_reference_or_reports_not_tested() {
    check_isa_against_reference(Isa::Avx512);
}

/// Lengths that do not fit the dimensions are typed errors, including size products that
/// overflow `usize` (which once wrapped to 0 and passed the check).
#[test]
fn gemm_lengths_are_checked_without_wrapping() {
    let cfg = GemmConfig::current();
    let huge = 1usize << 63;
    let mut c: Vec<f32> = vec![];
    for (m, n, k, a_len, b_len) in [
        (huge, 2, 2, 0, 4),
        (2, huge, 2, 4, 0),
        (2, 2, huge, 0, 0),
        (2, 2, 2, 3, 4),
    ] {
        let a = vec![0.0f32; a_len];
        let b = vec![0.0f32; b_len];
        let err = gemm(&cfg, false, false, m, n, k, &a, &b, &mut c).unwrap_err();
        assert!(
            matches!(err, gumbelgrad::Error::InvalidArgument { .. }),
            "{err:?}"
        );
        assert!(matmul::check_gemm_lengths("gemm", m, n, k, a_len, b_len, 0).is_err());
    }
    let result = std::panic::catch_unwind(|| {
        let mut c: Vec<f64> = vec![];
        matmul::gemm(false, false, huge, 2, 2, &[], &[0.0; 4], &mut c);
    });
    assert!(result.is_err(), "matmul::gemm must refuse, not wrap");
}
