//! The one documented setting of the kernels: how many threads a matrix product may use.
//!
//! The setting is process-wide (an atomic integer), defaults to **1** and only changes
//! when you call [`set_num_threads`]. It changes *speed only*: every output tile of a
//! matrix product is computed by exactly one thread with a fixed order over the inner
//! dimension, so the results are bit-identical whatever the thread count (see
//! [`gemm`](crate::kernels::gemm)).
//!
//! Threads are not kept alive between products: each large product splits its output
//! rows into contiguous bands and runs them under [`std::thread::scope`], the calling
//! thread taking the first band.
//!
//! ```
//! gumbelgrad::kernels::set_num_threads(2);
//! assert_eq!(gumbelgrad::kernels::num_threads(), 2);
//! gumbelgrad::kernels::set_num_threads(1);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

static NUM_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads matrix products may use (values below 1 are treated as 1).
pub fn set_num_threads(threads: usize) {
    NUM_THREADS.store(threads.max(1), Ordering::Relaxed);
}

/// The number of threads matrix products currently may use (1 unless set).
pub fn num_threads() -> usize {
    NUM_THREADS.load(Ordering::Relaxed)
}
