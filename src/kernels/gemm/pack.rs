//! Packing: copying a block of `op(A)` or `op(B)` into the micro-panel layout the
//! micro-kernels read (see [`super::microkernel`]).
//!
//! Packing is where the transposes disappear: whatever layout the operand is stored
//! in, the packed panels are the same, so all four transpose variants run the same
//! micro-kernel. It also makes every panel contiguous (no cache-set conflicts between
//! rows that are a power of two apart) and zero-pads ragged edges, so the micro-kernel
//! never needs a bounds test inside its loop. Each routine reads its source along the
//! contiguous direction of the stored layout.

use super::microkernel::{Element, MicroKernel};

/// Depths packed together when packing needs a transpose: the `STRIP x NR`
/// destination values (8 KB for f32 with NR = 32) stay in L1 while each source row is
/// read `STRIP` values (four cache lines) at a time. Shorter strips mean too many
/// interleaved read streams for the prefetchers (16 was twice as slow in the VAE step,
/// where the weights come in cold), longer ones push the destination out of L1.
const STRIP: usize = 64;

/// Bytes to which packed panels are aligned: one cache line, so that no vector load
/// of a panel row straddles two lines. (A large `Vec` from the system allocator starts
/// 16 bytes past a page boundary, which would make every 64-byte load of a `B` row a
/// split load.)
const PANEL_ALIGN: usize = 64;

/// The first `len` values of `out` from its first cache-line-aligned element, growing
/// `out` (zero-filled) so that they fit.
fn aligned_prefix<E: Element>(out: &mut Vec<E>, len: usize) -> &mut [E] {
    let slack = PANEL_ALIGN / size_of::<E>();
    if out.len() < len + slack {
        out.resize(len + slack, E::ZERO);
    }
    // `align_offset` counts elements; it is below `slack` because `E`'s size divides 64.
    let start = out.as_ptr().align_offset(PANEL_ALIGN).min(slack);
    &mut out[start..start + len]
}

/// Packs rows `i0..i0+mc` and depths `p0..p0+kc` of `op(A)` (`op(A)` is `m x k`;
/// `a` is stored `m x k`, or `k x m` when `transpose_a`) into `ceil(mc/MR)` panels
/// of `kc x MR` values, `out[panel][p * mr + i] = op(A)[i0 + panel*mr + i, p0 + p]`.
/// Returns the packed slice (a prefix of `out`, grown if needed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a<'o, E: Element, K: MicroKernel<E>>(
    kernel: K,
    transpose_a: bool,
    a: &[E],
    m: usize,
    k: usize,
    rows: (usize, usize),
    depths: (usize, usize),
    out: &'o mut Vec<E>,
) -> &'o [E] {
    let out = aligned_prefix(out, a_block_len::<E, K>(rows.1, depths.1));
    pack_a_into(kernel, transpose_a, a, m, k, rows, depths, out);
    out
}

/// Values in a packed block of `mc` rows and `kc` depths of `op(A)`: whole `MR`-row
/// panels of `kc x MR` values.
pub(crate) fn a_block_len<E: Element, K: MicroKernel<E>>(mc: usize, kc: usize) -> usize {
    mc.div_ceil(K::MR) * K::MR * kc
}

/// [`a_block_len`] rounded up to whole cache lines: the stride from one block to the
/// next in [`pack_a_blocks`], so that every block starts on a line.
pub(crate) fn a_block_stride<E: Element, K: MicroKernel<E>>(mc: usize, kc: usize) -> usize {
    a_block_len::<E, K>(mc, kc).next_multiple_of(PANEL_ALIGN / size_of::<E>())
}

/// Packs all of `op(A)` (`m x k`) once, for products whose every band needs all of it
/// (bands of columns): its blocks of `mc_block` rows and `kc_block` depths, depth block
/// by depth block and, within one, row block by row block (the order
/// [`super::run_band`] visits them), each as [`pack_a`] lays it out and the next one
/// [`a_block_stride`] values further on. Returns the packed blocks (a prefix of `out`,
/// grown if needed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a_blocks<'o, E: Element, K: MicroKernel<E>>(
    kernel: K,
    transpose_a: bool,
    a: &[E],
    m: usize,
    k: usize,
    mc_block: usize,
    kc_block: usize,
    out: &'o mut Vec<E>,
) -> &'o [E] {
    let blocks = || {
        (0..k).step_by(kc_block).flat_map(move |p0| {
            (0..m)
                .step_by(mc_block)
                .map(move |i0| ((i0, mc_block.min(m - i0)), (p0, kc_block.min(k - p0))))
        })
    };
    let total = blocks()
        .map(|((_, mc), (_, kc))| a_block_stride::<E, K>(mc, kc))
        .sum();
    let out = aligned_prefix(out, total);
    let mut rest = &mut *out;
    for (rows, depths) in blocks() {
        let (block, tail) = rest.split_at_mut(a_block_stride::<E, K>(rows.1, depths.1));
        let len = a_block_len::<E, K>(rows.1, depths.1);
        pack_a_into(
            kernel,
            transpose_a,
            a,
            m,
            k,
            rows,
            depths,
            &mut block[..len],
        );
        rest = tail;
    }
    out
}

/// [`pack_a`] into `out`, which holds exactly [`a_block_len`] values.
#[allow(clippy::too_many_arguments)]
fn pack_a_into<E: Element, K: MicroKernel<E>>(
    kernel: K,
    transpose_a: bool,
    a: &[E],
    m: usize,
    k: usize,
    (i0, mc): (usize, usize),
    (p0, kc): (usize, usize),
    out: &mut [E],
) {
    let mr = K::MR;
    for (panel_index, panel) in out.chunks_exact_mut(mr * kc).enumerate() {
        let first_row = i0 + panel_index * mr;
        let rows = mr.min(i0 + mc - first_row);
        if transpose_a {
            // a is k x m: row p of a holds column p of op(A), contiguous in i.
            copy_panel(a, m, p0, (first_row, rows), panel, mr);
        } else {
            // a is m x k: a transpose. Read each row contiguously and scatter with
            // stride mr, STRIP depths at a time so the scattered writes stay in a few
            // cache lines instead of sweeping the whole panel once per row.
            for (strip_index, strip) in panel.chunks_mut(STRIP * mr).enumerate() {
                let p_start = p0 + strip_index * STRIP;
                let depth = strip.len() / mr;
                kernel.transpose(&a[first_row * k + p_start..], k, rows, depth, strip, mr);
                if rows < mr {
                    for dst in strip.chunks_exact_mut(mr) {
                        dst[rows..].fill(E::ZERO);
                    }
                }
            }
        }
    }
}

/// Packs depths `p0..p0+kc` and columns `j0..j0+nc` of `op(B)` (`op(B)` is `k x n`;
/// `b` is stored `k x n`, or `n x k` when `transpose_b`) into `ceil(nc/nr)` panels of
/// `kc x nr` values, `out[panel][p * nr + j] = op(B)[p0 + p, j0 + panel*nr + j]`.
/// Returns the packed slice (a prefix of `out`, grown if needed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b<'o, E: Element, K: MicroKernel<E>>(
    kernel: K,
    transpose_b: bool,
    b: &[E],
    k: usize,
    n: usize,
    (p0, kc): (usize, usize),
    (j0, nc): (usize, usize),
    out: &'o mut Vec<E>,
) -> &'o [E] {
    let nr = K::NR;
    let panels = nc.div_ceil(nr);
    let len = panels * nr * kc;
    let out = aligned_prefix(out, len);
    for (panel_index, panel) in out.chunks_exact_mut(nr * kc).enumerate() {
        let first_col = j0 + panel_index * nr;
        let cols = nr.min(j0 + nc - first_col);
        if transpose_b {
            // b is n x k: a transpose, done STRIP depths at a time as in `pack_a`.
            for (strip_index, strip) in panel.chunks_mut(STRIP * nr).enumerate() {
                let p_start = p0 + strip_index * STRIP;
                let depth = strip.len() / nr;
                kernel.transpose(&b[first_col * k + p_start..], k, cols, depth, strip, nr);
                if cols < nr {
                    for dst in strip.chunks_exact_mut(nr) {
                        dst[cols..].fill(E::ZERO);
                    }
                }
            }
        } else {
            // b is k x n: row p of b is row p of op(B), contiguous in j.
            copy_panel(b, n, p0, (first_col, cols), panel, nr);
        }
    }
    out
}

/// The packing that needs no transpose: row `p` of `panel` (rows of `width` values) gets
/// values `first .. first + count` of row `p0 + p` of `src` (rows `stride` apart), then
/// zeros up to `width`. A whole panel's rows (`count == width`, the kernel's `MR` or
/// `NR`, a constant once this is inlined) are copied with a length the compiler knows,
/// as a few vector moves rather than one call to `memcpy` per row of 128 bytes.
#[inline(always)]
fn copy_panel<E: Element>(
    src: &[E],
    stride: usize,
    p0: usize,
    (first, count): (usize, usize),
    panel: &mut [E],
    width: usize,
) {
    let rows = panel.chunks_exact_mut(width).enumerate();
    if count == width {
        for (p, dst) in rows {
            dst.copy_from_slice(&src[(p0 + p) * stride + first..][..width]);
        }
    } else {
        for (p, dst) in rows {
            dst[..count].copy_from_slice(&src[(p0 + p) * stride + first..][..count]);
            dst[count..].fill(E::ZERO);
        }
    }
}

/// `dst[p * dst_stride + j] = src[j * src_stride + p]` for `j < count`, `p < depth`:
/// `count` source rows of `depth` contiguous values become `depth` destination rows.
/// The portable version: [`transpose_tiled`] with plain-Rust 8 x 8 tiles.
pub(crate) fn transpose<E: Element>(
    src: &[E],
    src_stride: usize,
    count: usize,
    depth: usize,
    dst: &mut [E],
    dst_stride: usize,
) {
    transpose_tiled::<E, 8>(
        src,
        src_stride,
        count,
        depth,
        dst,
        dst_stride,
        scalar_tile::<E, 8>,
    );
}

/// One `T x T` tile: `dst[p * dst_stride + j] = src[j * src_stride + p]`, `j, p < T`.
#[inline(always)]
fn scalar_tile<E: Element, const T: usize>(
    src: &[E],
    src_stride: usize,
    dst: &mut [E],
    dst_stride: usize,
) {
    for j in 0..T {
        let row = &src[j * src_stride..][..T];
        for (p, &value) in row.iter().enumerate() {
            dst[p * dst_stride + j] = value;
        }
    }
}

/// The transpose of [`transpose`], in `T x T` tiles done by `tile` (which gets the
/// tile's corner in `src` and `dst` and the two strides), with the ragged edges done by
/// a scalar loop. Working in tiles turns 64 scattered stores into 8 contiguous ones;
/// the SIMD kernels pass a `tile` made of vector shuffles (`microkernel::x86`), since
/// the compiler does not find those by itself.
#[inline(always)]
pub(crate) fn transpose_tiled<E: Element, const T: usize>(
    src: &[E],
    src_stride: usize,
    count: usize,
    depth: usize,
    dst: &mut [E],
    dst_stride: usize,
    tile: impl Fn(&[E], usize, &mut [E], usize),
) {
    let full_count = count / T * T;
    let full_depth = depth / T * T;
    for j0 in (0..full_count).step_by(T) {
        for p0 in (0..full_depth).step_by(T) {
            tile(
                &src[j0 * src_stride + p0..],
                src_stride,
                &mut dst[p0 * dst_stride + j0..],
                dst_stride,
            );
        }
        for p in full_depth..depth {
            for jj in 0..T {
                dst[p * dst_stride + j0 + jj] = src[(j0 + jj) * src_stride + p];
            }
        }
    }
    for j in full_count..count {
        for p in 0..depth {
            dst[p * dst_stride + j] = src[j * src_stride + p];
        }
    }
}
