//! Fast matrix product: cache blocking, packed panels, register-tiled SIMD micro-kernels
//! chosen at run time, and a deterministic split across threads.
//!
//! Computes exactly what [`matmul::gemm_reference`](super::matmul::gemm_reference)
//! computes, `c += op(a) * op(b)` on row-major slices, with the same arguments, but
//! tens of times faster for the sizes of a neural network layer. The algorithm is the
//! classic one of Goto and van de Geijn (also used by BLIS and OpenBLAS):
//!
//! ```text
//! for each column block jc of C (nc columns, so a kc x nc block of B fits in L2)
//!   for each depth block pc (kc values of the inner dimension)
//!     pack op(B)[pc, jc] into kc x NR micro-panels                    (pack.rs)
//!     for each row block ic of C (mc rows)
//!       pack op(A)[ic, pc] into MR x kc micro-panels                  (pack.rs)
//!       for each NR-wide panel of B, for each MR-high panel of A:
//!         C[MR x NR tile] += A panel * B panel, in registers           (microkernel.rs)
//! ```
//!
//! - **Instruction sets.** The micro-kernel is compiled three times: for AVX-512, for
//!   AVX2+FMA (both through `#[target_feature]`, so a plain `cargo build --release`
//!   contains them) and portably. [`Isa::detect`] picks the best one the CPU has, once
//!   per process; [`GemmConfig::with_isa`] forces another one (tests use it to run the
//!   portable path on a machine with AVX-512).
//! - **Threads.** `C` is cut into bands, about three per thread: bands of whole
//!   `NR`-column panels when `n >= m` (each band then packs only its part of the
//!   larger `B`, and all bands read one packed copy of the smaller `A`), else of whole
//!   `MR`-row panels. The calling thread and `threads - 1`
//!   kept-alive helper threads ([`threads`](super::threads)) take bands from a shared
//!   queue until it is empty, so a thread that gets a core late (the machine may be shared) does
//!   less. Each output value is computed inside one band by one thread, with the same
//!   depth blocking and the same order of additions as with one thread, so **the
//!   result is bit-identical for every thread count** (and whoever took which band).
//!   The count comes from [`GemmConfig`], by default from the setting
//!   [`set_num_threads`](super::set_num_threads) (the available cores, at most 4, unless
//!   set; see [`threads`](super::threads)); products too small to
//!   pay for handing work to another thread (see [`GemmConfig::with_min_work_per_thread`]) use fewer.
//! - **Numerics.** With AVX2 or AVX-512 every product is one FMA; the two give identical
//!   bits (same depth blocks, same order). The portable kernel rounds the multiply and
//!   the add separately. All agree with the reference to within the usual dot-product
//!   error bound `k * eps * sum |a||b|`.
//!
//! ```
//! use gumbelgrad::kernels::gemm::{gemm, GemmConfig};
//! // [1 2; 3 4] * [5 6; 7 8], added into zeros
//! let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [5.0f32, 6.0, 7.0, 8.0]);
//! let mut c = [0.0f32; 4];
//! gemm(&GemmConfig::current(), false, false, 2, 2, 2, &a, &b, &mut c)?;
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! // Lengths that do not fit the dimensions are a typed error, even when the size
//! // product overflows.
//! assert!(gemm(&GemmConfig::current(), false, false, 1 << 63, 2, 2, &[], &a, &mut []).is_err());
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

mod microkernel;
mod pack;

use std::cell::RefCell;
use std::sync::{Mutex, OnceLock};

use crate::float::Float;
use microkernel::{Element, MicroKernel, Portable};
use pack::{a_block_len, a_block_stride, pack_a, pack_a_blocks, pack_b};

/// Depth of a block: `kc` inner-dimension steps per pass over `C`. Every value of `C`
/// gets one block-sum added per `KC` steps, so this constant is part of the result's
/// rounding and is the same for every instruction set and thread count.
const KC: usize = 384;
/// Target rows of a packed `A` block (`~120 x 384` f32 = 180 KB, kept in L2).
const MC_TARGET: usize = 120;
/// Target bytes of a packed `B` block (half of a 1 MB L2).
const B_BLOCK_BYTES: usize = 512 * 1024;

/// An instruction set the micro-kernel is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, on any target.
    Portable,
    /// x86-64 AVX2 with FMA (16 registers of 256 bits).
    Avx2,
    /// x86-64 AVX-512F (32 registers of 512 bits).
    Avx512,
}

impl Isa {
    /// The best instruction set this CPU runs, detected once per process.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2]
                .into_iter()
                .find(|isa| isa.is_available())
                .unwrap_or(Isa::Portable)
        })
    }

    /// Whether this CPU can run this instruction set.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => microkernel::Avx2::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => microkernel::Avx512::detect().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// How a product runs: which micro-kernel, how many threads. Never changes results
/// beyond the rounding note in the module docs (threads never change them at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmConfig {
    isa: Isa,
    threads: usize,
    min_work_per_thread: usize,
}

impl GemmConfig {
    /// The detected instruction set and the process-wide thread setting
    /// ([`num_threads`](super::num_threads)).
    pub fn current() -> Self {
        GemmConfig {
            isa: Isa::detect(),
            threads: super::num_threads(),
            min_work_per_thread: MIN_WORK_PER_THREAD,
        }
    }

    /// Same configuration with `threads` threads (at least 1).
    pub fn with_threads(self, threads: usize) -> Self {
        GemmConfig {
            threads: threads.max(1),
            ..self
        }
    }

    /// Same configuration forced onto instruction set `isa`, or `None` if this CPU
    /// cannot run it.
    pub fn with_isa(self, isa: Isa) -> Option<Self> {
        isa.is_available().then_some(GemmConfig { isa, ..self })
    }

    /// Same configuration giving each thread at least `work` multiply-adds
    /// (`m * n * k / threads`); the default is 2,000,000, below which starting a thread
    /// costs more than it saves. Tests set 1 to make even tiny products use every
    /// thread they can.
    pub fn with_min_work_per_thread(self, work: usize) -> Self {
        GemmConfig {
            min_work_per_thread: work.max(1),
            ..self
        }
    }

    /// The instruction set used.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The number of threads used.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// `c += op(a) * op(b)`, `op(a)` `m x k`, `op(b)` `k x n`, all row-major; the same
/// contract as [`matmul::gemm_reference`](super::matmul::gemm_reference)
/// (`transpose_a`: `a` is stored `k x m`; `transpose_b`: `b` is stored `n x k`).
///
/// The slice lengths are checked first, with checked arithmetic
/// ([`check_gemm_lengths`](super::matmul::check_gemm_lengths)): a mismatch, or a size
/// product that overflows `usize`, is an [`Error::InvalidArgument`](crate::Error) and
/// nothing is computed.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    config: &GemmConfig,
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
) -> crate::error::Result<()> {
    let problem = Problem {
        transpose_a,
        transpose_b,
        m,
        n,
        k,
        overwrite: false,
    };
    product(config, problem, a, b, c, "kernels::gemm::gemm")
}

/// `c = op(a) * op(b)`: [`gemm`] with the old contents of `c` ignored (`beta = 0` in
/// BLAS terms). The first depth block stores its sums where [`gemm`] would add them,
/// so `c` is neither zeroed first nor read: for a gradient buffer that receives its
/// first contribution, this saves a pass over memory.
///
/// Gives the bits `gemm` gives on a zeroed `c` (up to the sign of a zero sum).
///
/// ```
/// use gumbelgrad::kernels::gemm::{gemm_overwrite, GemmConfig};
/// let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [5.0f32, 6.0, 7.0, 8.0]);
/// let mut c = [f32::NAN; 4]; // old contents do not matter
/// gemm_overwrite(&GemmConfig::current(), false, false, 2, 2, 2, &a, &b, &mut c)?;
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm_overwrite<T: Float>(
    config: &GemmConfig,
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
) -> crate::error::Result<()> {
    let problem = Problem {
        transpose_a,
        transpose_b,
        m,
        n,
        k,
        overwrite: true,
    };
    product(config, problem, a, b, c, "kernels::gemm::gemm_overwrite")
}

/// Checks the lengths, then runs `problem` with the micro-kernels of `T`.
fn product<T: Float>(
    config: &GemmConfig,
    problem: Problem,
    a: &[T],
    b: &[T],
    c: &mut [T],
    name: &str,
) -> crate::error::Result<()> {
    let Problem {
        transpose_a,
        transpose_b,
        m,
        n,
        k,
        overwrite,
    } = problem;
    super::matmul::check_gemm_lengths(name, m, n, k, a.len(), b.len(), c.len())?;
    if overwrite && k == 0 {
        c.fill(T::ZERO);
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    // Each element type has its own micro-kernels; `Float` says (safely) which type T is.
    if let (Some(a), Some(b), Some(c)) = (T::as_f32(a), T::as_f32(b), T::as_f32_mut(c)) {
        dispatch_f32(config, problem, a, b, c);
    } else if let (Some(a), Some(b), Some(c)) = (T::as_f64(a), T::as_f64(b), T::as_f64_mut(c)) {
        dispatch_f64(config, problem, a, b, c);
    } else {
        if overwrite {
            c.fill(T::ZERO);
        }
        super::matmul::gemm_reference(transpose_a, transpose_b, m, n, k, a, b, c);
    }
    Ok(())
}

/// The dimensions and transpose flags of one product, and whether it replaces `C`
/// (`C = op(A) op(B)`) or adds into it (`C += op(A) op(B)`).
#[derive(Debug, Clone, Copy)]
struct Problem {
    transpose_a: bool,
    transpose_b: bool,
    m: usize,
    n: usize,
    k: usize,
    overwrite: bool,
}

/// The packing buffers of one band: packed `A` block, packed `B` block.
type PackBuffers<E> = (Vec<E>, Vec<E>);

/// Element types with packing buffers kept in a thread-local of the *calling* thread,
/// one pair per thread, lent to the helper threads for the duration of a product.
/// Reused across calls, so a steady stream of products allocates (and page-faults)
/// nothing.
trait Buffered: Element {
    fn with_pack_buffers<R>(bands: usize, f: impl FnOnce(&mut [PackBuffers<Self>]) -> R) -> R;
}

macro_rules! buffered {
    ($t:ty, $name:ident) => {
        thread_local! {
            static $name: RefCell<Vec<PackBuffers<$t>>> = const { RefCell::new(Vec::new()) };
        }
        impl Buffered for $t {
            fn with_pack_buffers<R>(
                bands: usize,
                f: impl FnOnce(&mut [PackBuffers<Self>]) -> R,
            ) -> R {
                $name.with(|cell| {
                    let buffers = &mut *cell.borrow_mut();
                    if buffers.len() < bands {
                        buffers.resize_with(bands, Default::default);
                    }
                    f(&mut buffers[..bands])
                })
            }
        }
    };
}
buffered!(f32, PACK_F32);
buffered!(f64, PACK_F64);

// Picks the micro-kernel for `config.isa` (falling back to the portable one if the
// CPU lacks it, which `GemmConfig::with_isa` already prevents) and runs the product.
macro_rules! dispatch_for {
    ($name:ident, $t:ty) => {
        fn $name(config: &GemmConfig, problem: Problem, a: &[$t], b: &[$t], c: &mut [$t]) {
            let threads = (config.threads, config.min_work_per_thread);
            #[cfg(target_arch = "x86_64")]
            {
                use microkernel::{Avx2, Avx512};
                match config.isa {
                    Isa::Avx512 => {
                        if let Some(kernel) = Avx512::detect() {
                            return run_threads(kernel, threads, problem, a, b, c);
                        }
                    }
                    Isa::Avx2 => {
                        if let Some(kernel) = Avx2::detect() {
                            return run_threads(kernel, threads, problem, a, b, c);
                        }
                    }
                    Isa::Portable => {}
                }
            }
            run_threads(Portable, threads, problem, a, b, c)
        }
    };
}
dispatch_for!(dispatch_f32, f32);
dispatch_for!(dispatch_f64, f64);

/// The depth of the blocks for inner dimension `k`: `k` cut into `ceil(k / KC)` nearly
/// equal blocks (784 -> 3 x 262, not 2 x 384 + 16, whose thin last block would cost a
/// whole extra pass over `C` for little work). A function of `k` alone, so it is the
/// same for every thread count and instruction set.
fn depth_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC))
}

/// Default for [`GemmConfig::with_min_work_per_thread`]: below this many multiply-adds
/// per thread (~50 µs of work at full speed) handing work to another thread costs
/// more than it saves, so small products use fewer threads.
const MIN_WORK_PER_THREAD: usize = 2_000_000;

/// A band of `C`: its top-left corner `(row, column)` and its rows, each slice
/// starting at the band's first column.
type Band<'c, E> = ((usize, usize), Vec<&'c mut [E]>);

/// Bands handed out per thread: more, smaller bands let a thread that got a core
/// sooner (the machine is often shared) take over work from one that got it later.
const BANDS_PER_THREAD: usize = 3;

/// Splits `C` into bands and runs them on `threads` threads (the calling thread and
/// `threads - 1` scoped helpers), each thread taking the next band from a shared queue
/// until none is left.
///
/// When `n >= m`, `op(B)` is the larger operand and the bands are ranges of whole
/// `NR`-column panels: each band packs only its own columns of `B`, and reads all of
/// the smaller `A`, which the calling thread packs once before the bands start rather
/// than every band packing it again.
/// Otherwise the bands are ranges of whole `MR`-row panels and each packs its rows of
/// `A` and the smaller `B`. Which thread takes which band depends on timing, but each
/// value of `C` is computed inside one band, by one thread, with exactly the operations
/// of the one-thread case, so the result does not depend on it.
fn run_threads<E: Buffered, K: MicroKernel<E>>(
    kernel: K,
    (threads, min_work_per_thread): (usize, usize),
    problem: Problem,
    a: &[E],
    b: &[E],
    c: &mut [E],
) {
    let Problem { m, n, k, .. } = problem;
    let mut rows: Vec<&mut [E]> = c.chunks_mut(n).collect();
    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = threads.min((work / min_work_per_thread).max(1));
    let blocks = Blocks::of::<E, K>(problem);
    if threads <= 1 {
        E::with_pack_buffers(1, |buffers| {
            let (a_buffer, b_buffer) = &mut buffers[0];
            // With more than one column block, each would pack all of A again; packed
            // once instead when A is no larger than B (as the bands of columns below).
            let a_source = if n > blocks.nc && m <= n {
                ASource::Packed(pack_a_all(kernel, problem, a, blocks, a_buffer))
            } else {
                ASource::Pack(a_buffer)
            };
            run_band(
                kernel,
                (problem, blocks),
                a,
                b,
                (0, 0),
                &mut rows,
                (a_source, b_buffer),
            );
        });
        return;
    }
    let split_columns = n >= m;
    let (length, panel) = if split_columns {
        (n, K::NR)
    } else {
        (m, K::MR)
    };
    let panels = length.div_ceil(panel);
    let band_size = panels.div_ceil((threads * BANDS_PER_THREAD).min(panels)) * panel;
    let bands: Vec<Band<'_, E>> = if split_columns {
        let count = n.div_ceil(band_size);
        let mut bands: Vec<_> = (0..count)
            .map(|band| ((0, band * band_size), Vec::with_capacity(m)))
            .collect();
        for row in rows {
            let mut rest = row;
            for (_, band_rows) in &mut bands {
                let (head, tail) = rest.split_at_mut(band_size.min(rest.len()));
                band_rows.push(head);
                rest = tail;
            }
        }
        bands
    } else {
        let mut bands = Vec::with_capacity(m.div_ceil(band_size));
        let mut rest = rows;
        while !rest.is_empty() {
            let tail = rest.split_off(band_size.min(rest.len()));
            bands.push(((m - rest.len() - tail.len(), 0), rest));
            rest = tail;
        }
        bands
    };
    let queue = Mutex::new(bands.into_iter());
    let work = |mut a_source: ASource<'_, E>, b_buffer: &mut Vec<E>| {
        loop {
            let next = queue
                .lock()
                .expect("no thread panics holding the queue")
                .next();
            let Some((corner, mut band_rows)) = next else {
                break;
            };
            run_band(
                kernel,
                (problem, blocks),
                a,
                b,
                corner,
                &mut band_rows,
                (a_source.reborrow(), &mut *b_buffer),
            );
        }
    };
    E::with_pack_buffers(threads, |buffers| {
        let ((first_a, first_b), helpers) = buffers.split_first_mut().expect("threads >= 2");
        // Bands of columns all need all of A: it is packed once, by the calling thread
        // before the bands start, and read by every band.
        let (first_source, shared_a) = if split_columns {
            let packed = pack_a_all(kernel, problem, a, blocks, first_a);
            (ASource::Packed(packed), Some(packed))
        } else {
            (ASource::Pack(first_a), None)
        };
        match super::threads::helper_pool(threads - 1) {
            Some(pool) => super::threads::threaded_pass(&pool, threads - 1, |scope| {
                for (helper_a, helper_b) in helpers {
                    let source = match shared_a {
                        Some(packed) => ASource::Packed(packed),
                        None => ASource::Pack(helper_a),
                    };
                    scope.spawn(move |_| work(source, helper_b));
                }
                work(first_source, first_b);
            }),
            // No helper threads to be had: the calling thread takes every band.
            None => work(first_source, first_b),
        }
    });
}

/// The block sizes of one product: `mc` rows of `A`, `kc` depths, `nc` columns of `B`.
#[derive(Clone, Copy)]
struct Blocks {
    mc: usize,
    kc: usize,
    nc: usize,
}

impl Blocks {
    fn of<E: Element, K: MicroKernel<E>>(problem: Problem) -> Blocks {
        let mc = (MC_TARGET / K::MR).max(1) * K::MR;
        let kc = depth_block(problem.k);
        // As many columns as keep a kc x nc block of B within B_BLOCK_BYTES, using the
        // actual depth: a shallow product (k = 100) takes all its columns in one block
        // and so packs A once.
        let nc = ((B_BLOCK_BYTES / (kc * size_of::<E>())) / K::NR).max(1) * K::NR;
        Blocks { mc, kc, nc }
    }
}

/// Where a band gets its packed blocks of `op(A)`.
enum ASource<'p, E> {
    /// Pack each block into this buffer as it is needed.
    Pack(&'p mut Vec<E>),
    /// All of `op(A)`, packed beforehand by [`pack_a_all`].
    Packed(&'p [E]),
}

impl<E> ASource<'_, E> {
    /// The same source, for one more band.
    fn reborrow(&mut self) -> ASource<'_, E> {
        match self {
            ASource::Pack(buffer) => ASource::Pack(buffer),
            ASource::Packed(packed) => ASource::Packed(packed),
        }
    }
}

/// All of `op(A)` packed into `buffer` block by block, in the order [`run_band`] visits
/// the blocks of a band that covers all `m` rows.
fn pack_a_all<'p, E: Element, K: MicroKernel<E>>(
    kernel: K,
    problem: Problem,
    a: &[E],
    blocks: Blocks,
    buffer: &'p mut Vec<E>,
) -> &'p [E] {
    let Problem {
        transpose_a, m, k, ..
    } = problem;
    pack_a_blocks(kernel, transpose_a, a, m, k, blocks.mc, blocks.kc, buffer)
}

/// The blocked product for one band of `C` whose top-left corner is
/// `(first_row, first_col)`: rows `first_row ..` (one per entry of `c_rows`) and columns
/// `first_col ..` (as many as each `c_rows[i]` holds, which starts at column
/// `first_col`), in blocks of `blocks` (the sizes by which an `A` packed beforehand was
/// laid out), packing `B` into `b_buffer` and taking `A`'s blocks from `a_source`.
fn run_band<E: Buffered, K: MicroKernel<E>>(
    kernel: K,
    (problem, blocks): (Problem, Blocks),
    a: &[E],
    b: &[E],
    (first_row, first_col): (usize, usize),
    c_rows: &mut [&mut [E]],
    (mut a_source, b_buffer): (ASource<'_, E>, &mut Vec<E>),
) {
    let Problem {
        transpose_a,
        transpose_b,
        m,
        n,
        k,
        overwrite,
    } = problem;
    let band_rows = c_rows.len();
    let band_cols = c_rows.first().map_or(0, |row| row.len());
    let Blocks {
        mc: mc_block,
        kc: kc_block,
        nc: nc_block,
    } = blocks;
    for jc in (0..band_cols).step_by(nc_block) {
        let nc = nc_block.min(band_cols - jc);
        // Where the next block of a packed-beforehand A starts.
        let mut a_offset = 0;
        for pc in (0..k).step_by(kc_block) {
            let kc = kc_block.min(k - pc);
            let b_packed = pack_b(
                kernel,
                transpose_b,
                b,
                k,
                n,
                (pc, kc),
                (first_col + jc, nc),
                b_buffer,
            );
            for ic in (0..band_rows).step_by(mc_block) {
                let mc = mc_block.min(band_rows - ic);
                let a_packed = match &mut a_source {
                    ASource::Pack(buffer) => pack_a(
                        kernel,
                        transpose_a,
                        a,
                        m,
                        k,
                        (first_row + ic, mc),
                        (pc, kc),
                        buffer,
                    ),
                    ASource::Packed(all) => {
                        let block = &all[a_offset..][..a_block_len::<E, K>(mc, kc)];
                        a_offset += a_block_stride::<E, K>(mc, kc);
                        block
                    }
                };
                // The first depth block of an overwriting product stores its sums; the
                // later ones add theirs.
                let first_overwrites = overwrite && pc == 0;
                kernel.run_block(
                    kc,
                    mc,
                    nc,
                    a_packed,
                    b_packed,
                    &mut c_rows[ic..ic + mc],
                    jc,
                    first_overwrites,
                );
            }
        }
    }
}
