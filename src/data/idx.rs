//! The IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//!
//! All integers are big-endian. An image file (`*-images-idx3-ubyte`) has a 16-byte
//! header: magic `0x00000803` (2051: two zero bytes, type `0x08` = unsigned byte,
//! 3 dimensions), the number of images, rows, columns; then the pixels, one byte each,
//! row-major, image after image (0 = background, 255 = ink). A label file
//! (`*-labels-idx1-ubyte`) has an 8-byte header: magic `0x00000801` (2049) and the
//! number of labels; then one byte per label.
//!
//! Pixels are scaled to `[0, 1]` by dividing by 255.

use std::path::Path;

use crate::data::dataset::Dataset;
use crate::data::pixels::Pixels;
use crate::data::read::{find_file, read_maybe_gzip};
use crate::error::{Error, Result};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Which half of MNIST to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MnistSplit {
    /// The 60,000 training images (`train-*`).
    Train,
    /// The 10,000 test images (`t10k-*`).
    Test,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads an image file: `(images [n, rows * cols], rows, cols)`, a byte per pixel
/// (intensity `byte / 255`).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(Pixels, usize, usize)> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    parse_images(bytes, path)
}

/// Reads a label file: one byte per label.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    parse_labels(&bytes, path)
}

fn check_magic(bytes: &[u8], expected: u32, header: usize, path: &Path) -> Result<()> {
    let kind = if expected == IMAGES_MAGIC {
        "image"
    } else {
        "label"
    };
    let truncated = || {
        Error::bad_file(
            path,
            format!(
                "truncated: {} bytes, shorter than the {header}-byte header of an IDX {kind} file",
                bytes.len()
            ),
        )
    };
    if bytes.len() < 4 {
        return Err(truncated());
    }
    let magic = be_u32(bytes, 0);
    if magic != expected {
        let hint = match magic {
            IMAGES_MAGIC => " (this is an image file)",
            LABELS_MAGIC => " (this is a label file)",
            _ => " (not an IDX file, or a gzip file that failed to be recognised)",
        };
        return Err(Error::bad_file(
            path,
            format!(
                "wrong magic number {magic:#010x}, expected {expected:#010x} for an IDX {kind} file{hint}"
            ),
        ));
    }
    if bytes.len() < header {
        return Err(truncated());
    }
    Ok(())
}

fn parse_images(mut bytes: Vec<u8>, path: &Path) -> Result<(Pixels, usize, usize)> {
    check_magic(&bytes, IMAGES_MAGIC, 16, path)?;
    let count = be_u32(&bytes, 4) as usize;
    let rows = be_u32(&bytes, 8) as usize;
    let cols = be_u32(&bytes, 12) as usize;
    if rows == 0 || cols == 0 {
        return Err(Error::bad_file(
            path,
            format!("images of {rows}x{cols} pixels"),
        ));
    }
    let expected = count
        .checked_mul(rows * cols)
        .ok_or_else(|| Error::bad_file(path, "image count overflows"))?;
    let data = &bytes[16..];
    if data.len() != expected {
        let what = if data.len() < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(Error::bad_file(
            path,
            format!(
                "{what}: the header promises {count} images of {rows}x{cols} \
                 ({expected} pixel bytes), the file has {} pixel bytes",
                data.len()
            ),
        ));
    }
    // The pixel bytes are the file's bytes after the header: keep them, no copy.
    bytes.drain(..16);
    let images = Pixels::from_bytes(count, rows * cols, bytes)?;
    Ok((images, rows, cols))
}

fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    check_magic(bytes, LABELS_MAGIC, 8, path)?;
    let count = be_u32(bytes, 4) as usize;
    let data = &bytes[8..];
    if data.len() != count {
        let what = if data.len() < count {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(Error::bad_file(
            path,
            format!(
                "{what}: the header promises {count} labels, the file has {}",
                data.len()
            ),
        ));
    }
    Ok(data.to_vec())
}

/// Loads one split of MNIST (or Fashion-MNIST) from a folder holding the IDX files
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each plain or with `.gz` (the dotted spelling
/// `train-images.idx3-ubyte` is accepted too). Image and label counts must agree.
pub fn load_mnist(dir: impl AsRef<Path>, split: MnistSplit) -> Result<Dataset> {
    let dir = dir.as_ref();
    let prefix = match split {
        MnistSplit::Train => "train",
        MnistSplit::Test => "t10k",
    };
    let images_path = find_file(
        dir,
        &[
            &format!("{prefix}-images-idx3-ubyte"),
            &format!("{prefix}-images.idx3-ubyte"),
        ],
        "MNIST image file",
    )?;
    let labels_path = find_file(
        dir,
        &[
            &format!("{prefix}-labels-idx1-ubyte"),
            &format!("{prefix}-labels.idx1-ubyte"),
        ],
        "MNIST label file",
    )?;
    let (images, rows, cols) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != images.rows() {
        return Err(Error::bad_file(
            &labels_path,
            format!(
                "count mismatch: {} labels but {} has {} images",
                labels.len(),
                images_path.display(),
                images.rows()
            ),
        ));
    }
    Dataset::from_pixels(images, Some(labels), rows, cols)
}
