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
//! - **A product beside another task.** A layer's backward pass runs `dX = G W^T` on the
//!   calling thread while a helper runs `dW = X^T G`; `dX` also packs all of `W`
//!   (transposed), so it takes longer. The helper, once `dW` is done, takes `dX`'s
//!   remaining bands from the same kind of queue (the crate-internal `gemm_beside`).
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

use super::threads::{FirstComer, lock};
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
    let threads = (config.threads, config.min_work_per_thread);
    // Each element type has its own micro-kernels; `Float` says (safely) which type T is.
    if let (Some(a), Some(b), Some(c)) = (T::as_f32(a), T::as_f32(b), T::as_f32_mut(c)) {
        let work = Banded {
            threads,
            problem,
            a,
            b,
            c,
        };
        dispatch_f32(config.isa, work);
    } else if let (Some(a), Some(b), Some(c)) = (T::as_f64(a), T::as_f64(b), T::as_f64_mut(c)) {
        let work = Banded {
            threads,
            problem,
            a,
            b,
            c,
        };
        dispatch_f64(config.isa, work);
    } else {
        if overwrite {
            c.fill(T::ZERO);
        }
        super::matmul::gemm_reference(transpose_a, transpose_b, m, n, k, a, b, c);
    }
    Ok(())
}

/// [`gemm`] (or, with `overwrite`, [`gemm_overwrite`]) on the calling thread, run side
/// by side with `right`, which a kept-alive helper runs and, once done, helps with the
/// product's last bands. Returns what `right` returns. With one thread, the product
/// and then `right`.
///
/// For a layer's backward pass: `dX = G W^T` packs all of `W` (transposed) and its
/// twin `dW = X^T G` packs only the small `G`, so with one product per thread the
/// thread of `dW` would wait. The product's bits are those of one thread, as always.
///
/// The lengths are checked first as in [`gemm`]; on an error neither the product nor
/// `right` runs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_beside<T: Float, R: Send>(
    config: &GemmConfig,
    overwrite: bool,
    (transpose_a, transpose_b): (bool, bool),
    (m, n, k): (usize, usize, usize),
    a: &[T],
    b: &[T],
    c: &mut [T],
    right: impl FnOnce() -> R + Send,
) -> crate::error::Result<R> {
    let name = "kernels::gemm::gemm_beside";
    super::matmul::check_gemm_lengths(name, m, n, k, a.len(), b.len(), c.len())?;
    let problem = Problem {
        transpose_a,
        transpose_b,
        m,
        n,
        k,
        overwrite,
    };
    if m == 0 || n == 0 || k == 0 {
        product(config, problem, a, b, c, name)?;
        return Ok(right());
    }
    let threads = config.threads;
    if let (Some(a), Some(b), Some(c)) = (T::as_f32(a), T::as_f32(b), T::as_f32_mut(c)) {
        let work = Beside {
            threads,
            problem,
            a,
            b,
            c,
            right,
        };
        Ok(dispatch_f32(config.isa, work))
    } else if let (Some(a), Some(b), Some(c)) = (T::as_f64(a), T::as_f64(b), T::as_f64_mut(c)) {
        let work = Beside {
            threads,
            problem,
            a,
            b,
            c,
            right,
        };
        Ok(dispatch_f64(config.isa, work))
    } else {
        product(config, problem, a, b, c, name)?;
        Ok(right())
    }
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

/// Work that runs with a micro-kernel for elements `E`, whichever [`dispatch_f32`] or
/// [`dispatch_f64`] picks: a product cut into bands ([`Banded`]) or a product run beside
/// another task ([`Beside`]).
trait KernelWork<E: Element> {
    type Output;
    fn run<K: MicroKernel<E>>(self, kernel: K) -> Self::Output;
}

/// A product run by [`run_threads`].
struct Banded<'x, E> {
    threads: (usize, usize),
    problem: Problem,
    a: &'x [E],
    b: &'x [E],
    c: &'x mut [E],
}

impl<E: Buffered> KernelWork<E> for Banded<'_, E> {
    type Output = ();
    fn run<K: MicroKernel<E>>(self, kernel: K) {
        run_threads(kernel, self.threads, self.problem, self.a, self.b, self.c);
    }
}

/// A product run by [`run_beside`] beside `right`.
struct Beside<'x, E, F> {
    threads: usize,
    problem: Problem,
    a: &'x [E],
    b: &'x [E],
    c: &'x mut [E],
    right: F,
}

impl<E: Buffered, R: Send, F: FnOnce() -> R + Send> KernelWork<E> for Beside<'_, E, F> {
    type Output = R;
    fn run<K: MicroKernel<E>>(self, kernel: K) -> R {
        let operands = (self.a, self.b, self.c);
        run_beside(kernel, self.threads, self.problem, operands, self.right)
    }
}

// Picks the micro-kernel for `isa` (falling back to the portable one if the CPU lacks
// it, which `GemmConfig::with_isa` already prevents) and runs `work` with it.
macro_rules! dispatch_for {
    ($name:ident, $t:ty) => {
        fn $name<W: KernelWork<$t>>(isa: Isa, work: W) -> W::Output {
            #[cfg(target_arch = "x86_64")]
            {
                use microkernel::{Avx2, Avx512};
                match isa {
                    Isa::Avx512 => {
                        if let Some(kernel) = Avx512::detect() {
                            return work.run(kernel);
                        }
                    }
                    Isa::Avx2 => {
                        if let Some(kernel) = Avx2::detect() {
                            return work.run(kernel);
                        }
                    }
                    Isa::Portable => {}
                }
            }
            work.run(Portable)
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
struct Band<'c, E> {
    corner: (usize, usize),
    rows: Vec<&'c mut [E]>,
}

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
    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = threads.min((work / min_work_per_thread).max(1));
    let blocks = Blocks::of::<E, K>(problem);
    let pool = super::threads::helpers_for(threads);
    let Some(pool) = pool else {
        return run_alone(kernel, (problem, blocks), a, b, c);
    };
    let bands = Band::split(problem, K::MR, K::NR, threads * BANDS_PER_THREAD, c);
    E::with_pack_buffers(threads, |buffers| {
        let ((first_a, first_b), helpers) = buffers.split_first_mut().expect("threads >= 2");
        let (queue, first_a) = BandQueue::new(kernel, (problem, blocks), a, b, bands, first_a);
        let queue = &queue;
        super::threads::threaded_pass(&pool, threads - 1, |pass| {
            for (helper_a, helper_b) in helpers {
                pass.spawn(move || queue.drain(Some(helper_a), helper_b));
            }
            queue.drain(first_a, first_b);
        });
    });
}

/// The whole product on the calling thread, as one band.
fn run_alone<E: Buffered, K: MicroKernel<E>>(
    kernel: K,
    (problem, blocks): (Problem, Blocks),
    a: &[E],
    b: &[E],
    c: &mut [E],
) {
    let Problem { m, n, .. } = problem;
    let mut rows: Vec<&mut [E]> = c.chunks_mut(n).collect();
    E::with_pack_buffers(1, |buffers| {
        let (a_buffer, b_buffer) = &mut buffers[0];
        // With more than one column block, each would pack all of A again; packed
        // once instead when A is no larger than B (as the bands of columns).
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
}

/// Bands of the left product handed out per thread in [`run_beside`]: smaller than
/// [`BANDS_PER_THREAD`]'s, because the thread that joins late should find a band that
/// ends soon after the calling thread's last one.
const BESIDE_BANDS_PER_THREAD: usize = 6;

/// Computes the product on the calling thread while `right` runs on a kept-alive helper
/// (with one thread: the product, then `right`); the helper, once `right` is done,
/// takes the product's remaining bands. With more than two threads the others take
/// bands from the start.
///
/// For two pieces of work of which one is a product and the other takes about as long
/// or less: neither waits for the other longer than one band. The bands are those of
/// [`run_threads`], so the product's bits are those of one thread.
fn run_beside<E: Buffered, K: MicroKernel<E>, R: Send>(
    kernel: K,
    threads: usize,
    problem: Problem,
    (a, b, c): (&[E], &[E], &mut [E]),
    right: impl FnOnce() -> R + Send,
) -> R {
    let blocks = Blocks::of::<E, K>(problem);
    let pool = super::threads::helpers_for(threads);
    let Some(pool) = pool else {
        run_alone(kernel, (problem, blocks), a, b, c);
        return right();
    };
    let bands = Band::split(problem, K::MR, K::NR, threads * BESIDE_BANDS_PER_THREAD, c);
    let first_comer = FirstComer::new(right);
    let right = &first_comer;
    let not_started = E::with_pack_buffers(threads, |buffers| {
        let ((first_a, first_b), helpers) = buffers.split_first_mut().expect("threads >= 2");
        let (right_buffers, others) = helpers.split_first_mut().expect("threads >= 2");
        // Set by the calling thread once it has packed `A` (while the helper runs
        // `right`); a helper that finds it unset has nothing left to take.
        let queue = OnceLock::<BandQueue<'_, '_, E, K>>::new();
        let queue = &queue;
        super::threads::threaded_pass(&pool, threads - 1, move |pass| {
            let (right_a, right_b) = right_buffers;
            pass.spawn(move || {
                right.run(1);
                if let Some(queue) = queue.get() {
                    queue.drain(Some(right_a), right_b);
                }
            });
            let (band_queue, first_a) =
                BandQueue::new(kernel, (problem, blocks), a, b, bands, first_a);
            let queue = queue.get_or_init(|| band_queue);
            for (helper_a, helper_b) in others {
                pass.spawn(move || queue.drain(Some(helper_a), helper_b));
            }
            queue.drain(first_a, first_b);
            // A helper that has not started `right` by now leaves it to the calling
            // thread, which runs it below, once it has given back the packing buffers
            // that `right`'s own products take.
            right.take()
        })
    });
    match not_started {
        Some(task) => task(),
        None => first_comer.into_result(),
    }
}

impl<'c, E> Band<'c, E> {
    /// `c` (`m x n`) cut into at most `count` bands: ranges of whole `nr`-column panels
    /// when `n >= m`, else of whole `mr`-row panels (see [`run_threads`]).
    fn split(problem: Problem, mr: usize, nr: usize, count: usize, c: &'c mut [E]) -> Vec<Self> {
        let Problem { m, n, .. } = problem;
        let rows: Vec<&mut [E]> = c.chunks_mut(n).collect();
        let split_columns = n >= m;
        let (length, panel) = if split_columns { (n, nr) } else { (m, mr) };
        let panels = length.div_ceil(panel);
        let band_size = panels.div_ceil(count.min(panels)) * panel;
        if split_columns {
            let count = n.div_ceil(band_size);
            let mut bands: Vec<_> = (0..count)
                .map(|band| Band {
                    corner: (0, band * band_size),
                    rows: Vec::with_capacity(m),
                })
                .collect();
            for row in rows {
                let mut rest = row;
                for band in &mut bands {
                    let (head, tail) = rest.split_at_mut(band_size.min(rest.len()));
                    band.rows.push(head);
                    rest = tail;
                }
            }
            bands
        } else {
            let mut bands = Vec::with_capacity(m.div_ceil(band_size));
            let mut rest = rows;
            while !rest.is_empty() {
                let tail = rest.split_off(band_size.min(rest.len()));
                bands.push(Band {
                    corner: (m - rest.len() - tail.len(), 0),
                    rows: rest,
                });
                rest = tail;
            }
            bands
        }
    }
}

/// The bands of one product not yet taken, and what every band reads.
struct BandQueue<'x, 'p, E, K> {
    kernel: K,
    problem: Problem,
    blocks: Blocks,
    a: &'x [E],
    b: &'x [E],
    /// All of `op(A)`, packed once, when the bands are columns (all of them read it).
    shared_a: Option<&'p [E]>,
    bands: Mutex<std::vec::IntoIter<Band<'x, E>>>,
}

impl<'x, 'p, E: Buffered, K: MicroKernel<E>> BandQueue<'x, 'p, E, K> {
    /// The queue of `bands`; when they are bands of columns, `op(A)` is packed first
    /// into `a_buffer` for all of them, else `a_buffer` is handed back for the calling
    /// thread's bands to pack their rows of `A` into.
    fn new(
        kernel: K,
        (problem, blocks): (Problem, Blocks),
        a: &'x [E],
        b: &'x [E],
        bands: Vec<Band<'x, E>>,
        a_buffer: &'p mut Vec<E>,
    ) -> (Self, Option<&'p mut Vec<E>>) {
        let (shared_a, a_buffer) = if problem.n >= problem.m {
            (Some(pack_a_all(kernel, problem, a, blocks, a_buffer)), None)
        } else {
            (None, Some(a_buffer))
        };
        let queue = BandQueue {
            kernel,
            problem,
            blocks,
            a,
            b,
            shared_a,
            bands: Mutex::new(bands.into_iter()),
        };
        (queue, a_buffer)
    }

    /// Takes bands until none is left, packing into this thread's buffers (`a_buffer`
    /// is only used when `A` is not shared).
    fn drain(&self, a_buffer: Option<&mut Vec<E>>, b_buffer: &mut Vec<E>) {
        let mut a_source = match (self.shared_a, a_buffer) {
            (Some(packed), _) => ASource::Packed(packed),
            (None, Some(buffer)) => ASource::Pack(buffer),
            (None, None) => unreachable!("bands of rows pack their own A"),
        };
        loop {
            let next = lock(&self.bands).next();
            let Some(Band { corner, mut rows }) = next else {
                break;
            };
            run_band(
                self.kernel,
                (self.problem, self.blocks),
                self.a,
                self.b,
                corner,
                &mut rows,
                (a_source.reborrow(), &mut *b_buffer),
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// Deterministic values in (-1, 1) that are not round numbers.
    fn values<T: Float>(len: usize, seed: u64) -> Vec<T> {
        (0..len as u64)
            .map(|i| {
                let x = (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97) % 20_011) as f64;
                T::from_f64(x / 10_005.5 - 1.0)
            })
            .collect()
    }

    /// `gemm_beside` gives the bits of a one-thread product, with `right` run once and
    /// its result returned, for every thread count, transpose and shape kind.
    fn check_beside<T: Float>() {
        // n >= m (bands of columns, A packed once) and n < m (bands of rows).
        for (m, n, k) in [(37, 300, 70), (300, 45, 50), (100, 784, 512)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                for overwrite in [false, true] {
                    let (a, b) = (values::<T>(m * k, 1), values::<T>(k * n, 2));
                    let c0 = values::<T>(m * n, 3);
                    let mut want = c0.clone();
                    let one = GemmConfig::current().with_threads(1);
                    let problem = Problem {
                        transpose_a: ta,
                        transpose_b: tb,
                        m,
                        n,
                        k,
                        overwrite,
                    };
                    product(&one, problem, &a, &b, &mut want, "test").unwrap();
                    for threads in 1..=3 {
                        let config = GemmConfig::current().with_threads(threads);
                        let mut got = c0.clone();
                        let mut right_runs = 0;
                        let returned = gemm_beside(
                            &config,
                            overwrite,
                            (ta, tb),
                            (m, n, k),
                            &a,
                            &b,
                            &mut got,
                            || {
                                right_runs += 1;
                                m + n
                            },
                        )
                        .unwrap();
                        assert_eq!((returned, right_runs), (m + n, 1));
                        let same = got
                            .iter()
                            .zip(&want)
                            .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits());
                        assert!(
                            same,
                            "{threads} threads, {m}x{n}x{k}, ta={ta} tb={tb}, overwrite={overwrite}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_product_beside_another_task_has_the_bits_of_one_thread() {
        check_beside::<f32>();
        check_beside::<f64>();
    }

    #[test]
    fn the_calling_thread_runs_right_itself_when_no_helper_is_free() {
        // The one helper of a two-thread pool is busy for a while, so the calling
        // thread does all of the product's bands and then `right`, whose own product
        // takes the packing buffers the calling thread lent out during the bands.
        let pool = crate::kernels::threads::helper_pool(1).expect("a helper thread");
        let started = Arc::new(Barrier::new(2));
        let on_helper = Arc::clone(&started);
        pool.spawn(move || {
            on_helper.wait();
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
        started.wait();
        let config = GemmConfig::current().with_threads(2);
        let (m, n, k) = (20, 300, 64);
        let (a, b) = (values::<f32>(m * k, 4), values::<f32>(k * n, 5));
        let (mut left, mut inner) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
        let operands = (&a, &b, &mut left);
        let right_thread = gemm_beside(
            &config,
            true,
            (false, false),
            (m, n, k),
            operands.0,
            operands.1,
            operands.2,
            || {
                let two = GemmConfig::current().with_threads(2);
                gemm_overwrite(&two, false, false, m, n, k, &a, &b, &mut inner).unwrap();
                std::thread::current().id()
            },
        )
        .unwrap();
        assert_eq!(right_thread, std::thread::current().id());
        assert_eq!(left, inner);
    }

    #[test]
    fn a_product_beside_another_task_checks_lengths_before_running_either() {
        let config = GemmConfig::current().with_threads(2);
        let (a, b) = ([1.0f32; 6], [1.0f32; 6]);
        let mut c = [0.0f32; 3];
        let mut ran = false;
        let result = gemm_beside(
            &config,
            false,
            (false, false),
            (2, 2, 3),
            &a,
            &b,
            &mut c,
            || {
                ran = true;
            },
        );
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("c should hold 2x2")
        );
        assert!(!ran);
        // An empty depth: an overwritten C is zeroed, and `right` still runs.
        let mut c = [f32::NAN; 4];
        let result = gemm_beside(
            &config,
            true,
            (false, false),
            (2, 2, 0),
            &[],
            &[],
            &mut c,
            || 7,
        );
        assert_eq!((result.unwrap(), c), (7, [0.0; 4]));
    }
}
