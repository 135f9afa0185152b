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

use std::io::Read;
use std::path::Path;

use crate::data::dataset::Dataset;
use crate::data::pixels::Pixels;
use crate::data::read::{Announced, find_file, open_maybe_gzip, read_announced, read_header};
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
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads an image file: `(images [n, rows * cols], rows, cols)`, a byte per pixel
/// (intensity `byte / 255`).
///
/// The 16-byte header is read and checked first; then exactly the pixel bytes it
/// announces are read (decompressed on the fly for a gzip file), and one more byte to
/// detect trailing data. Memory is bounded by the pixels the file really holds, however
/// large the header's counts or the decompressed stream.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(Pixels, usize, usize)> {
    let path = path.as_ref();
    read_images_from(&mut open_maybe_gzip(path)?, path)
}

/// Reads a label file: one byte per label (header first, then exactly the announced
/// labels, as [`read_idx_images`]).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    read_labels_from(&mut open_maybe_gzip(path)?, path)
}

/// Reads and checks the `N`-byte header of an IDX file of the `expected` magic number.
fn read_checked_header<const N: usize>(
    reader: &mut dyn Read,
    expected: u32,
    path: &Path,
) -> Result<[u8; N]> {
    let mut header = [0u8; N];
    let filled = read_header(reader, &mut header, path)?;
    let kind = if expected == IMAGES_MAGIC {
        "image"
    } else {
        "label"
    };
    let truncated = || {
        Error::bad_file(
            path,
            format!(
                "truncated: {filled} bytes, shorter than the {N}-byte header of an IDX {kind} file"
            ),
        )
    };
    if filled < 4 {
        return Err(truncated());
    }
    let magic = be_u32(&header, 0);
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
    if filled < N {
        return Err(truncated());
    }
    Ok(header)
}

/// [`read_idx_images`] on an open (already decompressing) reader.
pub(crate) fn read_images_from(
    reader: &mut dyn Read,
    path: &Path,
) -> Result<(Pixels, usize, usize)> {
    let header = read_checked_header::<16>(reader, IMAGES_MAGIC, path)?;
    let count = be_u32(&header, 4) as usize;
    let rows = be_u32(&header, 8) as usize;
    let cols = be_u32(&header, 12) as usize;
    if rows == 0 || cols == 0 {
        return Err(Error::bad_file(
            path,
            format!("images of {rows}x{cols} pixels"),
        ));
    }
    let expected = rows
        .checked_mul(cols)
        .and_then(|pixels| pixels.checked_mul(count))
        .ok_or_else(|| Error::bad_file(path, "image count overflows"))?;
    let (bytes, status) = read_announced(reader, expected, path)?;
    match status {
        Announced::Exact => {}
        Announced::Short => {
            return Err(Error::bad_file(
                path,
                format!(
                    "truncated: the header promises {count} images of {rows}x{cols} \
                     ({expected} pixel bytes), the file has {} pixel bytes",
                    bytes.len()
                ),
            ));
        }
        Announced::Trailing => {
            return Err(Error::bad_file(
                path,
                format!(
                    "trailing bytes: the header promises {count} images of {rows}x{cols} \
                     ({expected} pixel bytes), the file has more"
                ),
            ));
        }
    }
    let images = Pixels::from_bytes(count, rows * cols, bytes)?;
    Ok((images, rows, cols))
}

/// [`read_idx_labels`] on an open (already decompressing) reader.
pub(crate) fn read_labels_from(reader: &mut dyn Read, path: &Path) -> Result<Vec<u8>> {
    let header = read_checked_header::<8>(reader, LABELS_MAGIC, path)?;
    let count = be_u32(&header, 4) as usize;
    let (bytes, status) = read_announced(reader, count, path)?;
    match status {
        Announced::Exact => Ok(bytes),
        Announced::Short => Err(Error::bad_file(
            path,
            format!(
                "truncated: the header promises {count} labels, the file has {}",
                bytes.len()
            ),
        )),
        Announced::Trailing => Err(Error::bad_file(
            path,
            format!("trailing bytes: the header promises {count} labels, the file has more"),
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::read::MultiGzDecoder;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// A reader that counts the bytes it hands out.
    struct Counting<R> {
        inner: R,
        count: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.count += n;
            Ok(n)
        }
    }

    /// A gzip stream whose header promises 2 images of 2x2 pixels, followed by
    /// `zeros` zero bytes: small compressed, large inflated.
    fn lying_gzip(magic: u32, words: &[u32], zeros: usize) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&magic.to_be_bytes()).unwrap();
        for word in words {
            encoder.write_all(&word.to_be_bytes()).unwrap();
        }
        let chunk = vec![0u8; 1 << 16];
        let mut left = zeros;
        while left > 0 {
            let n = left.min(chunk.len());
            encoder.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn a_small_gzip_promising_few_images_is_never_inflated_past_its_header() {
        let zeros = 16 << 20;
        let path = Path::new("lying.gz");
        let images = lying_gzip(IMAGES_MAGIC, &[2, 2, 2], zeros);
        assert!(images.len() < zeros / 100, "{} bytes", images.len());
        let mut reader = Counting {
            inner: MultiGzDecoder::new(&images[..]),
            count: 0,
        };
        let err = read_images_from(&mut reader, path).unwrap_err();
        assert!(err.to_string().contains("trailing bytes"), "{err}");
        // Header, 8 pixel bytes and the one byte that shows there is more.
        assert_eq!(reader.count, 16 + 8 + 1);

        let labels = lying_gzip(LABELS_MAGIC, &[3], zeros);
        let mut reader = Counting {
            inner: MultiGzDecoder::new(&labels[..]),
            count: 0,
        };
        let err = read_labels_from(&mut reader, path).unwrap_err();
        assert!(err.to_string().contains("trailing bytes"), "{err}");
        assert_eq!(reader.count, 8 + 3 + 1);
    }
}
