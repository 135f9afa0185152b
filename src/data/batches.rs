//! Seeded, shuffled minibatches.
//!
//! An epoch visits every example once, in an order drawn from a random generator, in
//! batches of `batch_size` (the last batch is smaller unless `drop_last`). With
//! [`Minibatches::for_epoch`] the order depends only on `(seed, epoch)`, so a run
//! resumed from a checkpoint at the start of epoch `e` sees exactly the batches an
//! uninterrupted run would.
//!
//! ```
//! use gumbelgrad::data::Minibatches;
//! let batches = Minibatches::for_epoch(10, 4, false, 42, 0)?;
//! assert_eq!(batches.len(), 3); // 4 + 4 + 2
//! let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
//! seen.sort();
//! assert_eq!(seen, (0..10).collect::<Vec<_>>());
//! assert_eq!(batches, Minibatches::for_epoch(10, 4, false, 42, 0)?); // same seed, same order
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// The batches of one epoch: a permutation of `0..n` cut into pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minibatches {
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
}

impl Minibatches {
    /// Batches over `0..n` in order (for evaluation).
    pub fn sequential(n: usize, batch_size: usize) -> Result<Self> {
        check(batch_size)?;
        Ok(Minibatches {
            order: (0..n).collect(),
            batch_size,
            drop_last: false,
        })
    }

    /// Batches over a random permutation of `0..n` drawn from `rng`.
    pub fn shuffled<R: Rng + ?Sized>(
        n: usize,
        batch_size: usize,
        drop_last: bool,
        rng: &mut R,
    ) -> Result<Self> {
        check(batch_size)?;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        Ok(Minibatches {
            order,
            batch_size,
            drop_last,
        })
    }

    /// The shuffled batches of epoch `epoch` of a run seeded with `seed`: the same
    /// `(seed, epoch)` always gives the same batches.
    pub fn for_epoch(
        n: usize,
        batch_size: usize,
        drop_last: bool,
        seed: u64,
        epoch: u64,
    ) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(epoch_seed(seed, epoch));
        Self::shuffled(n, batch_size, drop_last, &mut rng)
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        if self.drop_last {
            self.order.len() / self.batch_size
        } else {
            self.order.len().div_ceil(self.batch_size)
        }
    }

    /// True when there is no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch number `index`: the example indices in it.
    pub fn batch(&self, index: usize) -> &[usize] {
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        &self.order[start..end]
    }

    /// The batches in order.
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        (0..self.len()).map(|i| self.batch(i))
    }
}

fn check(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::invalid_argument(
            "Minibatches",
            "batch size must be > 0",
        ));
    }
    Ok(())
}

/// Mixes a run seed and an epoch number into one seed (SplitMix64 finaliser), so
/// neighbouring epochs get unrelated streams.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
