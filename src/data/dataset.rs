//! A set of images with optional labels.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::pixels::Pixels;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Images (one per row, `height * width` intensities in `[0, 1]`, 1 = ink, stored a
/// byte per pixel) and optional class labels.
///
/// ```
/// use gumbelgrad::data::Dataset;
/// use gumbelgrad::Tensor;
/// let images = Tensor::from_vec(4, 4, (0..16).map(|i| (i % 2) as f32).collect())?;
/// let data = Dataset::new(images, Some(vec![0, 1, 2, 3]), 2, 2)?;
/// let (train, valid) = data.split_validation(1, 7)?;
/// assert_eq!((train.len(), valid.len()), (3, 1));
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `[n, height * width]` pixel intensities, a byte each.
    pub images: Pixels,
    /// One label per image, if the source has them.
    pub labels: Option<Vec<u8>>,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl Dataset {
    /// Checks that the pieces fit together (columns = height * width, one label per
    /// image) and stores the intensities as bytes (see [`Pixels::from_tensor`]: values
    /// must lie in `[0, 1]`; they are kept to the nearest 1/255).
    pub fn new(
        images: Tensor<f32>,
        labels: Option<Vec<u8>>,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        Self::from_pixels(Pixels::from_tensor(&images)?, labels, height, width)
    }

    /// As [`Dataset::new`], from pixels already stored as bytes.
    pub fn from_pixels(
        images: Pixels,
        labels: Option<Vec<u8>>,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        if images.cols() != height * width {
            return Err(Error::invalid_argument(
                "Dataset::new",
                format!(
                    "images have {} columns, but {height}x{width} images need {}",
                    images.cols(),
                    height * width
                ),
            ));
        }
        if let Some(labels) = &labels
            && labels.len() != images.rows()
        {
            return Err(Error::invalid_argument(
                "Dataset::new",
                format!("{} labels for {} images", labels.len(), images.rows()),
            ));
        }
        Ok(Dataset {
            images,
            labels,
            height,
            width,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.rows()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels per image, `height * width` (784 for MNIST).
    pub fn dimension(&self) -> usize {
        self.images.cols()
    }

    /// The images at `indices`, stacked into a `[indices.len(), dimension]` tensor
    /// (a minibatch). Panics on an index out of range, like slice indexing.
    pub fn gather(&self, indices: &[usize]) -> Tensor<f32> {
        self.images.gather(indices)
    }

    /// The images and labels at `indices`, as a new data set.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            images: self.images.select(indices),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            height: self.height,
            width: self.width,
        }
    }

    /// The first `count` images (all of them if there are fewer).
    pub fn take(&self, count: usize) -> Dataset {
        let indices: Vec<usize> = (0..count.min(self.len())).collect();
        self.subset(&indices)
    }

    /// Splits off `count` images chosen at random (from `seed`) as a validation set.
    /// Both parts keep the original order of their images.
    pub fn split_validation(&self, count: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        if count > self.len() {
            return Err(Error::invalid_argument(
                "Dataset::split_validation",
                format!("cannot hold out {count} of {} images", self.len()),
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut held_out = vec![false; self.len()];
        for &index in &order[..count] {
            held_out[index] = true;
        }
        let (valid, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| held_out[i]);
        Ok((self.subset(&train), self.subset(&valid)))
    }

    /// How many images carry each label `0..=max label` (empty without labels).
    pub fn label_counts(&self) -> Vec<usize> {
        let Some(labels) = &self.labels else {
            return Vec::new();
        };
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        let mut counts = vec![0; classes];
        for &label in labels {
            counts[label as usize] += 1;
        }
        counts
    }
}
