//! Deriving independent random streams from one seed.
//!
//! Training draws its noise from a generator seeded by `(seed, step)` (and shuffles
//! each epoch with one seeded by `(seed, epoch)`, in
//! [`Minibatches::for_epoch`](crate::data::Minibatches::for_epoch)). Nothing random is carried
//! from one step to the next, so a run resumed from a checkpoint (which stores the
//! step) draws exactly the numbers the uninterrupted run would have drawn.

use rand::SeedableRng;
use rand::rngs::StdRng;

/// What a derived stream is for; keeps the streams of different purposes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Model initialisation.
    Init = 1,
    /// The noise of one training step.
    Step = 2,
    /// Evaluation.
    Eval = 4,
    /// The noise of one shard of a training step split into shards ([`rng_for_shard`]).
    Shard = 8,
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A generator for `stream` number `index` of the run seeded with `seed`.
///
/// ```
/// use gumbelgrad::models::seeds::{rng_for, Stream};
/// use rand::Rng;
/// let a: u64 = rng_for(7, Stream::Step, 100).random();
/// let b: u64 = rng_for(7, Stream::Step, 100).random();
/// let c: u64 = rng_for(7, Stream::Step, 101).random();
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// ```
pub fn rng_for(seed: u64, stream: Stream, index: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(seed) ^ stream as u64) ^ index))
}

/// The generator of shard `shard` of training step `step` in the run seeded with `seed`
/// (a data-parallel step draws each shard's noise from its own stream, so the noise does
/// not depend on which thread runs which shard, or when).
///
/// ```
/// use gumbelgrad::models::seeds::rng_for_shard;
/// use rand::Rng;
/// let a: u64 = rng_for_shard(7, 100, 0).random();
/// let b: u64 = rng_for_shard(7, 100, 1).random();
/// let c: u64 = rng_for_shard(7, 101, 0).random();
/// assert!(a != b && a != c);
/// assert_eq!(a, rng_for_shard(7, 100, 0).random::<u64>());
/// ```
pub fn rng_for_shard(seed: u64, step: u64, shard: u64) -> StdRng {
    StdRng::seed_from_u64(mix(
        mix(mix(mix(seed) ^ Stream::Shard as u64) ^ step) ^ shard
    ))
}
