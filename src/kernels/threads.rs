//! The one documented setting of the kernels: how many threads a matrix product may use.
//!
//! The setting is process-wide (an atomic integer). Until [`set_num_threads`] is
//! called it is [`default_num_threads`]: the cores the process may use, at most 4 (the
//! examples' `--threads` has the same default). It changes *speed only*: every output
//! tile of a matrix product is computed by exactly one thread with a fixed order over
//! the inner dimension, so the results are bit-identical whatever the thread count
//! (see [`gemm`](crate::kernels::gemm)). The cap: the models' matrices are small
//! (100-row minibatches), and beyond a few threads each one gets too little work to
//! pay for starting it.
//!
//! Threads are not kept alive between products: each large product splits its output
//! rows into contiguous bands and runs them under [`std::thread::scope`], the calling
//! thread taking the first band; products too small to pay for a thread use fewer.
//!
//! ```
//! gumbelgrad::kernels::set_num_threads(2);
//! assert_eq!(gumbelgrad::kernels::num_threads(), 2);
//! gumbelgrad::kernels::set_num_threads(1);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

/// The most threads [`default_num_threads`] picks.
pub const MAX_DEFAULT_THREADS: usize = 4;

/// The thread count; 0 until set or first read.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The thread count used until [`set_num_threads`] is called: the cores the process may
/// use ([`std::thread::available_parallelism`], 1 if unknown), at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_num_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_DEFAULT_THREADS)
}

/// Sets how many threads matrix products may use (values below 1 are treated as 1).
pub fn set_num_threads(threads: usize) {
    NUM_THREADS.store(threads.max(1), Ordering::Relaxed);
}

/// The number of threads matrix products currently may use ([`default_num_threads`]
/// unless set).
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => {
            // Computed once: a concurrent `set_num_threads` wins over the default.
            let _ = NUM_THREADS.compare_exchange(
                0,
                default_num_threads(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            NUM_THREADS.load(Ordering::Relaxed)
        }
        threads => threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_available_cores_at_most_four() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_num_threads(), cores.min(MAX_DEFAULT_THREADS));
        assert!((1..=MAX_DEFAULT_THREADS).contains(&default_num_threads()));
    }
}
