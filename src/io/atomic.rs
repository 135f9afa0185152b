//! Atomic file writes: write a temporary file next to the target, flush it to disk,
//! then rename it over the target.
//!
//! A rename within one directory is atomic on POSIX file systems, so readers (and a
//! run that crashes half-way) see either the complete old file or the complete new
//! one. The temporary file lives in the *same* directory because a rename across file
//! systems is a copy, not atomic.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to `path` atomically (temporary file + fsync + rename).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("gumbelgrad-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("hello.txt");
/// gumbelgrad::io::write_atomic(&path, b"hello")?;
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
pub fn write_atomic(path: impl AsRef<Path>, contents: &[u8]) -> Result<()> {
    write_atomic_with(path, |writer| writer.write_all(contents))
}

/// Writes to `path` atomically, streaming: `write` fills a buffered writer on the
/// temporary file. If `write` fails, the temporary file is removed and the target is
/// left untouched.
pub fn write_atomic_with(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let temporary = temporary_path(path)?;
    let result = (|| -> std::io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(error) = result {
        let _ = fs::remove_file(&temporary);
        return Err(Error::io(path, &error));
    }
    // Make the rename itself durable. Not every platform can open a directory, so a
    // failure here is not an error: the data is already safely in place.
    if let Some(parent) = path.parent()
        && let Ok(directory) = File::open(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
    {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Checks, without writing the target, that `path` could be written atomically now:
/// it is not a folder and a temporary file can be created (and is removed again) in
/// its folder. Long runs call this before starting, so that a read-only output folder
/// fails at once rather than after the first epoch.
pub fn check_writable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if path.is_dir() {
        return Err(Error::Io {
            path: path.display().to_string(),
            message: "is a folder, but a file is to be written there".to_string(),
        });
    }
    let temporary = temporary_path(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|error| Error::io(path, &error))?;
    fs::remove_file(&temporary).map_err(|error| Error::io(&temporary, &error))
}

/// Removes the temporary files that a process which died while writing `path`
/// atomically left next to it (`.name.tmp.<pid>.<n>`), and returns how many.
///
/// Only files of processes that no longer exist are removed, so a concurrent writer
/// is never disturbed. Where that cannot be known (no `/proc`), nothing is removed.
pub fn remove_stale_temporaries(path: impl AsRef<Path>) -> Result<usize> {
    let path = path.as_ref();
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.display().to_string(),
        message: "not a file path".to_string(),
    })?;
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return Ok(0);
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(Error::io(folder, &error)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, counter)) = rest.split_once('.') else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), counter.parse::<u64>()) else {
            continue;
        };
        if pid == std::process::id() || proc.join(pid.to_string()).exists() {
            continue;
        }
        let stale = entry.path();
        fs::remove_file(&stale).map_err(|error| Error::io(&stale, &error))?;
        removed += 1;
    }
    Ok(removed)
}

/// `dir/.name.tmp.<pid>.<n>`: hidden, unique within and across processes.
fn temporary_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.display().to_string(),
        message: "not a file path".to_string(),
    })?;
    let unique = format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Ok(path.with_file_name(unique))
}
