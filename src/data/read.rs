//! Reading a whole data file, gunzipping it when it is gzip-compressed.

use std::io::Read;
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
