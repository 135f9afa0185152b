//! The statically binarised MNIST of Larochelle & Murray (AISTATS 2011), the data set
//! of the Gumbel-Softmax paper's Table 1.
//!
//! Files `binarized_mnist_{train,valid,test}.amat` (50,000 / 10,000 / 10,000 images),
//! plain or gzip-compressed: plain text, one image a line, 784 values `0` or `1`
//! separated by spaces, row-major 28 x 28. There are no labels.

use std::path::Path;

use crate::data::dataset::Dataset;
use crate::data::pixels::Pixels;
use crate::data::read::{find_file, read_maybe_gzip};
use crate::error::{Error, Result};

/// Values per line (28 x 28).
pub const PIXELS: usize = 784;

/// Reads an `.amat` file of 0/1 images with `PIXELS` values a line.
///
/// A line with the wrong number of values, or a value other than `0`/`1`, is an
/// [`Error::BadFile`] naming the file, the line number (from 1) and the problem.
pub fn read_amat(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    let images = parse_amat(&bytes, path)?;
    drop(bytes);
    Dataset::from_pixels(images, None, 28, 28)
}

/// The 0/1 values of the file as bytes 0 and 255 (intensities 0 and 1).
fn parse_amat(bytes: &[u8], path: &Path) -> Result<Pixels> {
    let mut pixels: Vec<u8> = Vec::with_capacity(bytes.len() / 2 + PIXELS);
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // A final newline leaves one empty piece; that is not a line.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = pixels.len();
        for token in line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|t| !t.is_empty())
        {
            let value = match token {
                b"0" => 0,
                b"1" => 255,
                other => match std::str::from_utf8(other)
                    .ok()
                    .and_then(|s| s.parse::<f32>().ok())
                {
                    Some(0.0) => 0,
                    Some(1.0) => 255,
                    _ => {
                        return Err(Error::bad_file(
                            path,
                            format!(
                                "line {number}, value {}: `{}` is not 0 or 1",
                                pixels.len() - start + 1,
                                String::from_utf8_lossy(other)
                            ),
                        ));
                    }
                },
            };
            pixels.push(value);
            if pixels.len() - start > PIXELS {
                break;
            }
        }
        let count = pixels.len() - start;
        if count != PIXELS {
            let found = if count > PIXELS {
                "more".to_string()
            } else {
                count.to_string()
            };
            return Err(Error::bad_file(
                path,
                format!("line {number}: expected {PIXELS} values, found {found}"),
            ));
        }
    }
    Pixels::from_bytes(lines.len(), PIXELS, pixels)
}

/// Which split of binarised MNIST to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmatSplit {
    /// 50,000 training images.
    Train,
    /// 10,000 validation images.
    Valid,
    /// 10,000 test images.
    Test,
}

impl AmatSplit {
    /// The file stem, e.g. `"binarized_mnist_train.amat"`.
    pub fn file_name(self) -> &'static str {
        match self {
            AmatSplit::Train => "binarized_mnist_train.amat",
            AmatSplit::Valid => "binarized_mnist_valid.amat",
            AmatSplit::Test => "binarized_mnist_test.amat",
        }
    }

    /// The number of images the published file holds.
    pub fn expected_len(self) -> usize {
        match self {
            AmatSplit::Train => 50_000,
            AmatSplit::Valid | AmatSplit::Test => 10_000,
        }
    }
}

/// Loads one split from a folder holding `binarized_mnist_{train,valid,test}.amat`
/// (plain or `.gz`), checking it has the published number of images.
pub fn load_binarized_mnist(dir: impl AsRef<Path>, split: AmatSplit) -> Result<Dataset> {
    let path = find_file(dir.as_ref(), &[split.file_name()], "binarised MNIST file")?;
    let data = read_amat(&path)?;
    if data.len() != split.expected_len() {
        return Err(Error::bad_file(
            &path,
            format!(
                "count mismatch: {} images, the published file has {} (truncated?)",
                data.len(),
                split.expected_len()
            ),
        ));
    }
    Ok(data)
}
