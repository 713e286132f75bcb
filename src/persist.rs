//! Replaces the state file atomically: temp file, fsync, rename, fsync of the directory.
//!
//! A crash or power cut at any moment leaves the old file or the new one. The
//! agent's temporary file has a fixed name, so one left by a crash is reused
//! (truncated) by the next write instead of piling up.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::agent::LoadError;
use crate::state::{self, State, FILE_MAX};

/// The step of a write that failed, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The state did not fit in 4096 bytes (it always does; kept for honesty).
    TooLarge,
    /// Creating or writing the temporary file.
    Write(Errno),
    /// fsync of the file or the directory.
    Sync(Errno),
    /// Renaming over the state file.
    Rename(Errno),
}

impl WriteError {
    /// Names the failed step and its error.
    pub fn parts(self) -> (&'static str, Option<Errno>) {
        match self {
            WriteError::TooLarge => ("state larger than 4096 bytes", None),
            WriteError::Write(e) => ("writing the temporary file", Some(e)),
            WriteError::Sync(e) => ("fsync", Some(e)),
            WriteError::Rename(e) => ("rename", Some(e)),
        }
    }
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Reads and parses the state file into a caller-owned buffer.
pub fn read(path: &Path, buf: &mut [u8; FILE_MAX + 1]) -> Result<State, LoadError> {
    let mut f = File::open(path).map_err(|e| LoadError::Io(errno(&e)))?;
    let mut n = 0;
    loop {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n == buf.len() {
                    return Err(LoadError::Invalid(state::StateError::TooLarge));
                }
            }
            Err(e) => return Err(LoadError::Io(errno(&e))),
        }
    }
    state::parse(&buf[..n]).map_err(LoadError::Invalid)
}

/// Names the temporary file `<path><suffix>` in the state file's directory.
pub fn temp_path(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `state` to `path` through `tmp`, so that `path` is never half-written.
pub fn write(path: &Path, tmp: &Path, st: &State) -> Result<(), WriteError> {
    let mut out: heapless::Vec<u8, FILE_MAX> = heapless::Vec::new();
    state::write(st, &mut out).map_err(|_| WriteError::TooLarge)?;
    let result = write_via(path, tmp, &out);
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

fn write_via(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(tmp)
        .map_err(|e| WriteError::Write(errno(&e)))?;
    f.write_all(bytes)
        .map_err(|e| WriteError::Write(errno(&e)))?;
    f.sync_all().map_err(|e| WriteError::Sync(errno(&e)))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| WriteError::Rename(errno(&e)))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let d = File::open(dir).map_err(|e| WriteError::Sync(errno(&e)))?;
    d.sync_all().map_err(|e| WriteError::Sync(errno(&e)))
}
