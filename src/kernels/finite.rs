//! Is every value of a slice finite? The tape asks this of every input it is fed (the
//! 1.17 M parameters of the VAE on every step), so the scan should run at memory speed.
//!
//! `iter().all(|x| x.is_finite())` stops at the first bad value, and that early exit
//! keeps the compiler from vectorising it. Instead, [`all_finite`] uses that `x * 0` is
//! exactly `0` (or `-0`) for a finite `x` and NaN for an infinite or NaN one, and adds
//! those products into `LANES` independent accumulators over fixed-width chunks (no
//! early exit, no dependency between lanes, so the loop becomes vector subtractions and
//! additions). The sum of zeros stays exactly zero; one NaN makes its lane NaN for good.
//! Callers that need to know *where* the bad value is look for it only after this says
//! there is one.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::float::Float;

/// Accumulators, and the chunk width of the main loop (two AVX-512 vectors of f32).
const LANES: usize = 32;

/// Values per share when a long slice is scanned on several threads (256 KB of `f32`,
/// about 15 µs at memory speed, above the cost of a hand-off).
const SHARE: usize = 1 << 16;

/// True if no element of `values` is NaN or infinite.
///
/// A slice of more than one share (the weight matrices and their gradients) is scanned
/// in fixed shares on [`num_threads`](super::num_threads) threads; the answer is the same
/// however the shares fall to threads.
pub fn all_finite<T: Float>(values: &[T]) -> bool {
    if values.len() <= SHARE {
        return all_finite_on_one_thread(values);
    }
    let finite = AtomicBool::new(true);
    super::threads::for_each_shared(values.chunks(SHARE), |share| {
        if !all_finite_on_one_thread(share) {
            finite.store(false, Ordering::Relaxed);
        }
    });
    finite.into_inner()
}

/// [`all_finite`] on the calling thread alone.
fn all_finite_on_one_thread<T: Float>(values: &[T]) -> bool {
    let mut lanes = [T::ZERO; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x * T::ZERO;
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(rest) {
        *lane += x * T::ZERO;
    }
    lanes.iter().all(|&lane| lane == T::ZERO)
}

/// The plain scalar reference [`all_finite`] is tested against.
pub fn all_finite_reference<T: Float>(values: &[T]) -> bool {
    values.iter().all(|x| x.is_finite())
}
