//! Turning gray images into binary ones, for Bernoulli likelihoods.
//!
//! Three schemes are common in the VAE literature, and they give different numbers, so
//! always say which one a result used:
//!
//! - **threshold**: pixel = 1 if intensity > level (usually 0.5). Deterministic.
//! - **static sampled**: pixel = 1 with probability = intensity, drawn *once* from a
//!   seed, then fixed for the whole run (Larochelle & Murray's binarised MNIST is one
//!   such fixed draw, made long ago).
//! - **dynamic**: drawn afresh every time an image is used in a minibatch, a form of
//!   data augmentation that gives lower (better) test likelihoods.
//!
//! ```
//! use gumbelgrad::data::binarize::{sample, threshold};
//! use gumbelgrad::Tensor;
//! use rand::SeedableRng;
//! let gray = Tensor::from_vec(1, 4, vec![0.0f32, 0.4, 0.6, 1.0])?;
//! assert_eq!(threshold(&gray, 0.5).as_slice(), &[0.0, 0.0, 1.0, 1.0]);
//! let drawn = sample(&gray, &mut rand::rngs::StdRng::seed_from_u64(0));
//! assert_eq!((drawn.as_slice()[0], drawn.as_slice()[3]), (0.0, 1.0)); // p = 0 and p = 1
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::dataset::Dataset;
use crate::data::pixels::Pixels;
use crate::tensor::Tensor;

/// 1 where the value exceeds `level`, else 0.
pub fn threshold(images: &Tensor<f32>, level: f32) -> Tensor<f32> {
    images.map(|x| if x > level { 1.0 } else { 0.0 })
}

/// 1 with probability equal to the value (clamped to `[0, 1]`), from `rng`.
pub fn sample<R: Rng + ?Sized>(images: &Tensor<f32>, rng: &mut R) -> Tensor<f32> {
    let mut out = images.clone();
    for x in out.as_mut_slice() {
        let u: f32 = rng.random();
        *x = if u < *x { 1.0 } else { 0.0 };
    }
    out
}

/// How a data set's images become binary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binarization {
    /// Keep the images as they are (already binary, or a model with a gray likelihood).
    None,
    /// [`threshold`] at this level, once.
    Threshold(f32),
    /// [`sample`] once from this seed, then fixed.
    Static {
        /// Seed of the one draw.
        seed: u64,
    },
    /// [`sample`] again for every minibatch, from the training loop's generator.
    Dynamic,
}

impl Binarization {
    /// Applies the once-only schemes (threshold, static) to a whole data set; `None`
    /// and `Dynamic` leave it unchanged.
    pub fn prepare(&self, dataset: &Dataset) -> Dataset {
        let images = match *self {
            Binarization::Threshold(level) => threshold(&dataset.images.to_tensor(), level),
            Binarization::Static { seed } => sample(
                &dataset.images.to_tensor(),
                &mut StdRng::seed_from_u64(seed),
            ),
            Binarization::None | Binarization::Dynamic => return dataset.clone(),
        };
        Dataset {
            images: Pixels::from_tensor(&images).expect("binary values lie in [0, 1]"),
            ..dataset.clone()
        }
    }

    /// Applies the per-minibatch scheme: `Dynamic` resamples `batch` from `rng`;
    /// the others return it unchanged (and draw nothing from `rng`).
    pub fn batch<R: Rng + ?Sized>(&self, batch: Tensor<f32>, rng: &mut R) -> Tensor<f32> {
        match self {
            Binarization::Dynamic => sample(&batch, rng),
            _ => batch,
        }
    }
}
