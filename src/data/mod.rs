//! Data: MNIST-format readers, the binarised MNIST of Larochelle & Murray, an embedded
//! synthetic digit set, binarisation, and seeded minibatches.
//!
//! Everything loads into a [`Dataset`]: images as one `[n, height * width]` matrix of
//! byte [`Pixels`] with intensities in `[0, 1]` (1 = ink; a byte per pixel, converted
//! to floats a minibatch at a time), plus optional labels.
//!
//! | source | loader | needs files? |
//! |---|---|---|
//! | procedurally drawn digits | [`synthetic::SyntheticDigits`] | no: generated from a seed |
//! | MNIST / Fashion-MNIST IDX (plain or `.gz`) | [`idx::load_mnist`] | yes |
//! | statically binarised MNIST (`.amat[.gz]`) | [`amat::load_binarized_mnist`] | yes |
//!
//! Unreadable files give [`Error::Io`](crate::Error::Io) (cannot open) or
//! [`Error::BadFile`](crate::Error::BadFile) (wrong contents), both naming the file and
//! what is wrong. This module uses only tensors and the error type.

pub mod amat;
pub mod batches;
pub mod binarize;
pub mod dataset;
pub mod idx;
pub mod pixels;
pub(crate) mod read;
pub mod synthetic;

pub use amat::{AmatSplit, load_binarized_mnist, read_amat};
pub use batches::Minibatches;
pub use binarize::Binarization;
pub use dataset::Dataset;
pub use idx::{MnistSplit, load_mnist, read_idx_images, read_idx_labels};
pub use pixels::{Pixels, RowSource};
pub use synthetic::SyntheticDigits;
