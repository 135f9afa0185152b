//! Register-tiled micro-kernels: the only place where the floating-point work happens.
//!
//! # Layout they expect
//!
//! A *block* is `mc x nc` of the output with an inner depth `kc`. Its operands arrive
//! packed (see [`super::pack`]):
//!
//! - `a_packed`: `ceil(mc / MR)` micro-panels, each `kc` columns of `MR` consecutive
//!   values (`a_panel[p * MR + i] = op(A)[i, p]`), rows past `mc` zero;
//! - `b_packed`: `ceil(nc / NR)` micro-panels, each `kc` rows of `NR` consecutive
//!   values (`b_panel[p * NR + j] = op(B)[p, j]`), columns past `nc` zero.
//!
//! # Why the loop is shaped so
//!
//! For each step `p` of the inner dimension the tile loads one row of `NR` values of
//! `B` (one or two SIMD registers), and for each of its `MR` rows broadcasts one value of
//! `A` and does a fused multiply-add into that row's accumulators. The `MR x NR`
//! accumulators stay in registers for the whole `kc` loop (the loop bounds are
//! compile-time constants, so the compiler unrolls `i` and `j` completely and turns the
//! array into registers), and memory is touched only once per `p`: both panels are read
//! strictly sequentially. `MR x NR` is chosen so that the accumulators plus one row of
//! `B` fill the register file (32 registers with AVX-512, 16 with AVX2) and there are
//! enough independent FMA chains to hide the FMA latency.
//!
//! Each output value is `c += sum_p a[i, p] * b[p, j]`, accumulated from zero in
//! increasing `p` by one FMA per step and added to `c` once per block: its rounding does
//! not depend on which tile, thread or instruction set computed it, only on `kc`.
//! (The portable kernel uses a separate multiply and add, as there is no fast fused one
//! without the FMA instructions, so its last bits can differ.)

use crate::float::Float;

/// The element types the fast GEMM is compiled for (`f32`, `f64`).
pub(crate) trait Element: Float {
    /// `self * b + c` with a single rounding (compiles to one FMA instruction when the
    /// `fma` target feature is enabled).
    fn fused_mul_add(self, b: Self, c: Self) -> Self;
}

impl Element for f32 {
    #[inline(always)]
    fn fused_mul_add(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
}

impl Element for f64 {
    #[inline(always)]
    fn fused_mul_add(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
}

/// One `MR x NR` tile: `c_rows[i][col0 + j] += sum_{p < kc} a_panel[p, i] * b_panel[p, j]`
/// for the first `rows x cols` entries (`c_rows.len() >= rows`); with `overwrite`, `=`
/// instead of `+=` (the old values of `C` are never read).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile<E: Element, const MR: usize, const NR: usize, const FUSED: bool>(
    kc: usize,
    a_panel: &[E],
    b_panel: &[E],
    c_rows: &mut [&mut [E]],
    col0: usize,
    rows: usize,
    cols: usize,
    overwrite: bool,
) {
    let mut acc = [[E::ZERO; NR]; MR];
    let (a_columns, _) = a_panel.as_chunks::<MR>();
    let (b_rows, _) = b_panel.as_chunks::<NR>();
    for (a_col, b_row) in a_columns[..kc].iter().zip(&b_rows[..kc]) {
        for i in 0..MR {
            let a_ip = a_col[i];
            for j in 0..NR {
                acc[i][j] = if FUSED {
                    a_ip.fused_mul_add(b_row[j], acc[i][j])
                } else {
                    acc[i][j] + a_ip * b_row[j]
                };
            }
        }
    }
    if rows == MR && cols == NR {
        // A full tile: each row of `C` as a fixed-size array, so the adds become one
        // vector load, add and store per register of the row. The loop runs exactly
        // `MR` times (`c_rows` cut to `MR` rows), so it is unrolled, every index into
        // `acc` is a constant, and `acc` stays in registers; with a trip count the
        // compiler could not see, it kept `acc` in memory (zeroed by a `memset`,
        // loaded and stored around the depth loop), about 10% of a tile's time at
        // depth 100.
        let c_rows = &mut c_rows[..MR];
        for (acc_row, c_row) in acc.iter().zip(c_rows.iter_mut()) {
            let c_row: &mut [E; NR] = (&mut c_row[col0..col0 + NR])
                .try_into()
                .expect("a full tile has NR columns");
            *c_row = if overwrite {
                *acc_row
            } else {
                std::array::from_fn(|j| c_row[j] + acc_row[j])
            };
        }
    } else {
        // A copy, so that only the copy's address is taken and `acc` itself can live
        // in registers.
        let sums = acc;
        store_edge(&sums, c_rows, col0, rows, cols, overwrite);
    }
}

/// The store of an edge tile (`rows < MR` or `cols < NR`): `C += acc` (or `C = acc`)
/// on its first `rows x cols` entries. Out of line and given the sums by reference
/// only here, at the end: when this loop, whose bounds are not constants, sat in
/// [`tile`], the compiler kept the whole accumulator in memory (zeroed by a call to
/// `memset`, loaded and stored at every depth), and edge tiles ran several times slower
/// than full ones.
#[inline(never)]
#[cold]
fn store_edge<E: Element, const MR: usize, const NR: usize>(
    acc: &[[E; NR]; MR],
    c_rows: &mut [&mut [E]],
    col0: usize,
    rows: usize,
    cols: usize,
    overwrite: bool,
) {
    for (acc_row, c_row) in acc.iter().zip(c_rows.iter_mut()).take(rows) {
        let c_row = &mut c_row[col0..col0 + cols];
        for (c_ij, &v) in c_row.iter_mut().zip(acc_row) {
            *c_ij = if overwrite { v } else { *c_ij + v };
        }
    }
}

/// All tiles of one packed block: `c_rows[i][col0 + j] += (A_block * B_block)[i, j]` for
/// `i < mc`, `j < nc` (`c_rows` holds the block's rows of `C`, any number of columns);
/// with `overwrite`, `=` instead of `+=`.
///
/// The outer loop walks the `B` micro-panels and the inner loop the `A` micro-panels, so
/// one `kc x NR` panel of `B` stays in the L1 cache while every panel of `A` (which sits
/// in L2) streams past it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block<E: Element, const MR: usize, const NR: usize, const FUSED: bool>(
    kc: usize,
    mc: usize,
    nc: usize,
    a_packed: &[E],
    b_packed: &[E],
    c_rows: &mut [&mut [E]],
    col0: usize,
    overwrite: bool,
) {
    for (jr, b_panel) in b_packed.chunks_exact(kc * NR).enumerate() {
        let j0 = jr * NR;
        let cols = NR.min(nc - j0);
        for (ir, a_panel) in a_packed.chunks_exact(kc * MR).enumerate() {
            let i0 = ir * MR;
            let rows = MR.min(mc - i0);
            tile::<E, MR, NR, FUSED>(
                kc,
                a_panel,
                b_panel,
                &mut c_rows[i0..],
                col0 + j0,
                rows,
                cols,
                overwrite,
            );
        }
    }
}

/// A micro-kernel for element type `E`: its tile shape and its block routine.
pub(crate) trait MicroKernel<E: Element>: Copy + Send + Sync {
    /// Rows of a register tile (the height of an `A` micro-panel).
    const MR: usize;
    /// Columns of a register tile (the width of a `B` micro-panel).
    const NR: usize;
    /// `c_rows[i][col0 + j] += (A_block * B_block)[i, j]` (with `overwrite`: `=`) on
    /// packed panels (see the module docs);
    /// `a_packed.len() == ceil(mc/MR)*MR*kc`, `b_packed.len() == ceil(nc/NR)*NR*kc`.
    #[allow(clippy::too_many_arguments)]
    fn run_block(
        self,
        kc: usize,
        mc: usize,
        nc: usize,
        a_packed: &[E],
        b_packed: &[E],
        c_rows: &mut [&mut [E]],
        col0: usize,
        overwrite: bool,
    );

    /// `dst[p * dst_stride + j] = src[j * src_stride + p]` for `j < count`,
    /// `p < depth`: the transpose used by packing ([`super::pack::transpose`]),
    /// compiled with this kernel's instruction set so its 8 x 8 tiles become vector
    /// shuffles.
    fn transpose(
        self,
        src: &[E],
        src_stride: usize,
        count: usize,
        depth: usize,
        dst: &mut [E],
        dst_stride: usize,
    ) {
        super::pack::transpose(src, src_stride, count, depth, dst, dst_stride);
    }
}

/// The portable kernel: plain Rust, whatever the target (SSE2 on x86-64).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

macro_rules! portable_kernel {
    ($t:ty, $mr:literal, $nr:literal) => {
        impl MicroKernel<$t> for Portable {
            const MR: usize = $mr;
            const NR: usize = $nr;
            fn run_block(
                self,
                kc: usize,
                mc: usize,
                nc: usize,
                a_packed: &[$t],
                b_packed: &[$t],
                c_rows: &mut [&mut [$t]],
                col0: usize,
                overwrite: bool,
            ) {
                block::<$t, $mr, $nr, false>(
                    kc, mc, nc, a_packed, b_packed, c_rows, col0, overwrite,
                );
            }
        }
    };
}
portable_kernel!(f32, 4, 8);
portable_kernel!(f64, 4, 4);

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::pack::transpose_tiled;
    use super::{MicroKernel, block};
    use std::arch::x86_64::{
        _mm256_loadu_pd, _mm256_loadu_ps, _mm256_permute2f128_pd, _mm256_permute2f128_ps,
        _mm256_shuffle_ps, _mm256_storeu_pd, _mm256_storeu_ps, _mm256_unpackhi_pd,
        _mm256_unpackhi_ps, _mm256_unpacklo_pd, _mm256_unpacklo_ps,
    };

    /// An 8 x 8 f32 tile transposed in AVX registers:
    /// `dst[p * dst_stride + j] = src[j * src_stride + p]`, `j, p < 8`.
    ///
    /// Eight rows are loaded; interleaving pairs of rows (`unpacklo/hi`), then pairs of
    /// pairs (`shuffle`), then swapping 128-bit halves (`permute2f128`) leaves column
    /// `p` of the tile in register `p`, which is stored as row `p` of `dst`:
    /// 8 loads + 24 shuffles + 8 stores instead of 64 scalar loads and stores.
    #[inline]
    #[target_feature(enable = "avx")]
    fn tile_8x8_f32(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
        let row =
            |j: usize| -> &[f32; 8] { src[j * src_stride..][..8].try_into().expect("8 values") };
        // SAFETY: each `row(j)` is a bounds-checked reference to 8 contiguous f32, which
        // is exactly what the unaligned 256-bit load reads.
        let r = unsafe { [0, 1, 2, 3, 4, 5, 6, 7].map(|j| _mm256_loadu_ps(row(j).as_ptr())) };
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let columns = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (p, column) in columns.into_iter().enumerate() {
            let out: &mut [f32; 8] = (&mut dst[p * dst_stride..][..8])
                .try_into()
                .expect("8 values");
            // SAFETY: `out` is a bounds-checked unique reference to 8 contiguous f32,
            // exactly what the unaligned 256-bit store writes.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), column) };
        }
    }

    /// A 4 x 4 f64 tile transposed in AVX registers (as [`tile_8x8_f32`], one level
    /// fewer: `unpacklo/hi` on row pairs, then swapping 128-bit halves).
    #[inline]
    #[target_feature(enable = "avx")]
    fn tile_4x4_f64(src: &[f64], src_stride: usize, dst: &mut [f64], dst_stride: usize) {
        let row =
            |j: usize| -> &[f64; 4] { src[j * src_stride..][..4].try_into().expect("4 values") };
        // SAFETY: each `row(j)` is a bounds-checked reference to 4 contiguous f64, which
        // is exactly what the unaligned 256-bit load reads.
        let r = unsafe { [0, 1, 2, 3].map(|j| _mm256_loadu_pd(row(j).as_ptr())) };
        let t0 = _mm256_unpacklo_pd(r[0], r[1]);
        let t1 = _mm256_unpackhi_pd(r[0], r[1]);
        let t2 = _mm256_unpacklo_pd(r[2], r[3]);
        let t3 = _mm256_unpackhi_pd(r[2], r[3]);
        let columns = [
            _mm256_permute2f128_pd::<0x20>(t0, t2),
            _mm256_permute2f128_pd::<0x20>(t1, t3),
            _mm256_permute2f128_pd::<0x31>(t0, t2),
            _mm256_permute2f128_pd::<0x31>(t1, t3),
        ];
        for (p, column) in columns.into_iter().enumerate() {
            let out: &mut [f64; 4] = (&mut dst[p * dst_stride..][..4])
                .try_into()
                .expect("4 values");
            // SAFETY: `out` is a bounds-checked unique reference to 4 contiguous f64,
            // exactly what the unaligned 256-bit store writes.
            unsafe { _mm256_storeu_pd(out.as_mut_ptr(), column) };
        }
    }

    /// Proof that the CPU has AVX2 and FMA: only [`Avx2::detect`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2(());

    impl Avx2 {
        /// `Some` if this CPU runs AVX2 and FMA instructions.
        pub(crate) fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Avx2(()))
        }
    }

    /// Proof that the CPU has AVX-512F (and FMA): only [`Avx512::detect`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx512(());

    impl Avx512 {
        /// `Some` if this CPU runs AVX-512F and FMA instructions.
        pub(crate) fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma"))
            .then_some(Avx512(()))
        }
    }

    // The same generic block, compiled four times with the instruction sets enabled.
    // Tile shapes: AVX-512 has 32 vector registers of 16 f32 / 8 f64; 10 rows x 2
    // registers = 20 accumulators (two FMA pipes x 4 cycles latency need at least 8
    // independent chains), and 10 rows divide the VAE's batch of 100 exactly. 12 rows
    // ran at the same speed on full tiles; 14 rows (28 accumulators) made LLVM spill
    // the accumulators and ran 50x slower. AVX2 has 16 registers of 8 f32 / 4 f64, so
    // 6 rows x 2 registers = 12 accumulators. Both leave registers for the row of B.
    macro_rules! simd_kernel {
        (
            $proof:ident,
            $features:literal,
            $func:ident,
            $transpose_func:ident,
            $tile:ident,
            $tile_size:literal,
            $t:ty,
            $mr:literal,
            $nr:literal
        ) => {
            #[target_feature(enable = $features)]
            fn $transpose_func(
                src: &[$t],
                src_stride: usize,
                count: usize,
                depth: usize,
                dst: &mut [$t],
                dst_stride: usize,
            ) {
                transpose_tiled::<$t, $tile_size>(
                    src,
                    src_stride,
                    count,
                    depth,
                    dst,
                    dst_stride,
                    |s, ss, d, ds| $tile(s, ss, d, ds),
                );
            }

            #[allow(clippy::too_many_arguments)]
            #[target_feature(enable = $features)]
            fn $func(
                kc: usize,
                mc: usize,
                nc: usize,
                a_packed: &[$t],
                b_packed: &[$t],
                c_rows: &mut [&mut [$t]],
                col0: usize,
                overwrite: bool,
            ) {
                block::<$t, $mr, $nr, true>(
                    kc, mc, nc, a_packed, b_packed, c_rows, col0, overwrite,
                );
            }

            impl MicroKernel<$t> for $proof {
                const MR: usize = $mr;
                const NR: usize = $nr;
                fn run_block(
                    self,
                    kc: usize,
                    mc: usize,
                    nc: usize,
                    a_packed: &[$t],
                    b_packed: &[$t],
                    c_rows: &mut [&mut [$t]],
                    col0: usize,
                    overwrite: bool,
                ) {
                    // SAFETY: `self` is a value of the proof type, which only its
                    // `detect()` creates after checking at run time that the CPU has
                    // every feature `$func` is compiled for. The function itself is
                    // safe Rust (bounds-checked slices).
                    unsafe { $func(kc, mc, nc, a_packed, b_packed, c_rows, col0, overwrite) }
                }

                fn transpose(
                    self,
                    src: &[$t],
                    src_stride: usize,
                    count: usize,
                    depth: usize,
                    dst: &mut [$t],
                    dst_stride: usize,
                ) {
                    // SAFETY: as in `run_block`: `self` proves the CPU has the features
                    // `$transpose_func` is compiled for; its body is safe Rust.
                    unsafe { $transpose_func(src, src_stride, count, depth, dst, dst_stride) }
                }
            }
        };
    }
    #[rustfmt::skip]
    simd_kernel!(Avx512, "avx512f,avx2,fma", block_avx512_f32, transpose_avx512_f32, tile_8x8_f32, 8, f32, 10, 32);
    #[rustfmt::skip]
    simd_kernel!(Avx512, "avx512f,avx2,fma", block_avx512_f64, transpose_avx512_f64, tile_4x4_f64, 4, f64, 10, 16);
    #[rustfmt::skip]
    simd_kernel!(Avx2, "avx2,fma", block_avx2_f32, transpose_avx2_f32, tile_8x8_f32, 8, f32, 6, 16);
    #[rustfmt::skip]
    simd_kernel!(Avx2, "avx2,fma", block_avx2_f64, transpose_avx2_f64, tile_4x4_f64, 4, f64, 6, 8);
}
