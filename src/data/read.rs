//! Reading a whole data file, gunzipping it when it is gzip-compressed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The bytes of `path`, decompressed if the file starts with the gzip magic bytes
/// (whatever its name).
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::bad_file(path, format!("gzip data is corrupt or truncated ({e})"))
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// A buffered reader over the bytes of `path`, decompressing on the fly if the file
/// starts with the gzip magic bytes (whatever its name). For files too large to hold
/// decompressed in memory at once, like the 78 MB of binarised MNIST's training text.
pub(crate) fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut file = BufReader::new(File::open(path).map_err(|e| Error::io(path, &e))?);
    let gzip = file
        .fill_buf()
        .map_err(|e| Error::io(path, &e))?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

/// The first of `names` (each tried as is and with `.gz`) that exists in `dir`.
pub(crate) fn find_file(dir: &Path, names: &[&str], what: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir.display().to_string(),
            message: format!("not a directory (looking for the {what})"),
        });
    }
    for name in names {
        for candidate in [format!("{name}.gz"), name.to_string()] {
            let path = dir.join(candidate);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(Error::Io {
        path: dir.join(names[0]).display().to_string(),
        message: format!(
            "{what} not found (looked for {} with or without .gz)",
            names.join(", ")
        ),
    })
}
