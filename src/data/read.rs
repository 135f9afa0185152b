//! Opening a data file, gunzipping it on the fly when it is gzip-compressed, and
//! reading no more of it than its header announces.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Reads exactly `len` bytes from `reader` (the part of a file its header announced),
/// then checks that nothing follows. Never reads more than `len + 1` bytes, and grows
/// the buffer only as bytes arrive, so neither a lying header nor a small gzip stream
/// inflating to gigabytes sets the memory used: at most `len` bytes, and only as many
/// as the file really holds.
///
/// Returns the bytes read (all `len` of them unless the file is short) and how the
/// file's length compares with `len`.
pub(crate) fn read_announced(
    reader: &mut dyn Read,
    len: usize,
    path: &Path,
) -> Result<(Vec<u8>, Announced)> {
    let mut data = Vec::new();
    let limit = u64::try_from(len)
        .map_err(|_| Error::bad_file(path, "the header announces more bytes than fit in memory"))?;
    (&mut *reader)
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| corrupt(path, &e))?;
    if data.len() < len {
        return Ok((data, Announced::Short));
    }
    let mut one = [0u8; 1];
    let extra = loop {
        match reader.read(&mut one) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(path, &e)),
        }
    };
    let status = if extra == 0 {
        Announced::Exact
    } else {
        Announced::Trailing
    };
    Ok((data, status))
}

/// How the bytes that followed a header compare with what it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announced {
    /// Fewer bytes than announced (the file is truncated).
    Short,
    /// Exactly the announced bytes, then the end of the file.
    Exact,
    /// The announced bytes, then more (only one extra byte is read, never the rest).
    Trailing,
}

/// Reads a fixed-size header: `Ok(n)` bytes read, `n < header.len()` at the end of the
/// file.
pub(crate) fn read_header(reader: &mut dyn Read, header: &mut [u8], path: &Path) -> Result<usize> {
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(path, &e)),
        }
    }
    Ok(filled)
}

fn corrupt(path: &Path, e: &std::io::Error) -> Error {
    Error::bad_file(path, format!("gzip data is corrupt or truncated ({e})"))
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
