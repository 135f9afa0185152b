//! The statically binarised MNIST of Larochelle & Murray (AISTATS 2011), the data set
//! of the Gumbel-Softmax paper's Table 1.
//!
//! Files `binarized_mnist_{train,valid,test}.amat` (50,000 / 10,000 / 10,000 images),
//! plain or gzip-compressed: plain text, one image a line, 784 values `0` or `1`
//! separated by spaces, row-major 28 x 28. There are no labels.

use std::path::Path;

use crate::data::dataset::Dataset;
use crate::data::pixels::Pixels;
use crate::data::read::{find_file, open_maybe_gzip};
use crate::error::{Error, Result};
use std::io::{BufRead, Read};

/// Values per line (28 x 28).
pub const PIXELS: usize = 784;

/// The longest line read, in bytes: room for 784 values spelled as long decimals
/// (`0.000000000000e+00 `), far more than the 1,568 bytes of the published files. A
/// longer line is an error before more of it is read, so a small gzip file inflating to
/// one endless line cannot fill the memory.
pub const MAX_LINE_BYTES: usize = 32 * PIXELS;

/// Reads an `.amat` file of 0/1 images with `PIXELS` values a line.
///
/// A line with the wrong number of values, or a value other than `0`/`1`, is an
/// [`Error::BadFile`] naming the file, the line number (from 1) and the problem.
pub fn read_amat(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let images = parse_amat(open_maybe_gzip(path)?, path)?;
    Dataset::from_pixels(images, None, 28, 28)
}

/// The 0/1 values of the file as bytes 0 and 255 (intensities 0 and 1), read a line at
/// a time: only the pixels are kept, never the whole text.
fn parse_amat(mut reader: impl BufRead, path: &Path) -> Result<Pixels> {
    let mut pixels: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    let mut lines = 0;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::bad_file(path, format!("unreadable after line {lines} ({e})")))?;
        if read == 0 {
            break;
        }
        lines += 1;
        let number = lines;
        if line.len() > MAX_LINE_BYTES {
            return Err(Error::bad_file(
                path,
                format!("line {number}: longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let start = pixels.len();
        for token in text
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
    pixels.shrink_to_fit();
    Pixels::from_bytes(lines, PIXELS, pixels)
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
