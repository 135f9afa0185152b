//! Packing: copying a block of `op(A)` or `op(B)` into the micro-panel layout the
//! micro-kernels read (see [`super::microkernel`]).
//!
//! Packing is where the transposes disappear: whatever layout the operand is stored
//! in, the packed panels are the same, so all four transpose variants run the same
//! micro-kernel. It also makes every panel contiguous (no cache-set conflicts between
//! rows that are a power of two apart) and zero-pads ragged edges, so the micro-kernel
//! never needs a bounds test inside its loop. Each routine reads its source along the
//! contiguous direction of the stored layout.

use super::microkernel::Element;

/// Depths packed together when packing needs a transpose: the `STRIP x NR`
/// destination values (8 KB for f32 with NR = 32) stay in L1 while each source row is
/// read `STRIP` values (four cache lines) at a time. Shorter strips mean too many
/// interleaved read streams for the prefetchers (16 was twice as slow in the VAE step,
/// where the weights come in cold), longer ones push the destination out of L1.
const STRIP: usize = 64;

/// Packs rows `i0..i0+mc` and depths `p0..p0+kc` of `op(A)` (`op(A)` is `m x k`;
/// `a` is stored `m x k`, or `k x m` when `transpose_a`) into `ceil(mc/mr)` panels
/// of `kc x mr` values, `out[panel][p * mr + i] = op(A)[i0 + panel*mr + i, p0 + p]`.
/// Returns the packed slice (a prefix of `out`, grown if needed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a<'o, E: Element>(
    transpose_a: bool,
    a: &[E],
    m: usize,
    k: usize,
    (i0, mc): (usize, usize),
    (p0, kc): (usize, usize),
    mr: usize,
    out: &'o mut Vec<E>,
) -> &'o [E] {
    let panels = mc.div_ceil(mr);
    let len = panels * mr * kc;
    if out.len() < len {
        out.resize(len, E::ZERO);
    }
    let out = &mut out[..len];
    for (panel_index, panel) in out.chunks_exact_mut(mr * kc).enumerate() {
        let first_row = i0 + panel_index * mr;
        let rows = mr.min(i0 + mc - first_row);
        if transpose_a {
            // a is k x m: row p of a holds column p of op(A), contiguous in i.
            for (p, dst) in panel.chunks_exact_mut(mr).enumerate() {
                let src = &a[(p0 + p) * m + first_row..][..rows];
                dst[..rows].copy_from_slice(src);
                dst[rows..].fill(E::ZERO);
            }
        } else {
            // a is m x k: a transpose. Read each row contiguously and scatter with
            // stride mr, STRIP depths at a time so the scattered writes stay in a few
            // cache lines instead of sweeping the whole panel once per row.
            for (strip_index, strip) in panel.chunks_mut(STRIP * mr).enumerate() {
                let p_start = p0 + strip_index * STRIP;
                let depth = strip.len() / mr;
                for i in 0..rows {
                    let src = &a[(first_row + i) * k + p_start..][..depth];
                    for (dst, &v) in strip.chunks_exact_mut(mr).zip(src) {
                        dst[i] = v;
                    }
                }
                if rows < mr {
                    for dst in strip.chunks_exact_mut(mr) {
                        dst[rows..].fill(E::ZERO);
                    }
                }
            }
        }
    }
    out
}

/// Packs depths `p0..p0+kc` and columns `j0..j0+nc` of `op(B)` (`op(B)` is `k x n`;
/// `b` is stored `k x n`, or `n x k` when `transpose_b`) into `ceil(nc/nr)` panels of
/// `kc x nr` values, `out[panel][p * nr + j] = op(B)[p0 + p, j0 + panel*nr + j]`.
/// Returns the packed slice (a prefix of `out`, grown if needed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b<'o, E: Element>(
    transpose_b: bool,
    b: &[E],
    k: usize,
    n: usize,
    (p0, kc): (usize, usize),
    (j0, nc): (usize, usize),
    nr: usize,
    out: &'o mut Vec<E>,
) -> &'o [E] {
    let panels = nc.div_ceil(nr);
    let len = panels * nr * kc;
    if out.len() < len {
        out.resize(len, E::ZERO);
    }
    let out = &mut out[..len];
    for (panel_index, panel) in out.chunks_exact_mut(nr * kc).enumerate() {
        let first_col = j0 + panel_index * nr;
        let cols = nr.min(j0 + nc - first_col);
        if transpose_b {
            // b is n x k: a transpose, done STRIP depths at a time as in `pack_a`.
            for (strip_index, strip) in panel.chunks_mut(STRIP * nr).enumerate() {
                let p_start = p0 + strip_index * STRIP;
                let depth = strip.len() / nr;
                for j in 0..cols {
                    let src = &b[(first_col + j) * k + p_start..][..depth];
                    for (dst, &v) in strip.chunks_exact_mut(nr).zip(src) {
                        dst[j] = v;
                    }
                }
                if cols < nr {
                    for dst in strip.chunks_exact_mut(nr) {
                        dst[cols..].fill(E::ZERO);
                    }
                }
            }
        } else {
            // b is k x n: row p of b is row p of op(B), contiguous in j.
            for (p, dst) in panel.chunks_exact_mut(nr).enumerate() {
                let src = &b[(p0 + p) * n + first_col..][..cols];
                dst[..cols].copy_from_slice(src);
                dst[cols..].fill(E::ZERO);
            }
        }
    }
    out
}
