//! Replaces the state file atomically: temp file, fsync, rename, fsync of the directory.
//!
//! A crash or power cut at any moment leaves the old file or the new one. The
//! agent's temporary file has a fixed name, so one left by a crash is reused
//! (truncated) by the next write instead of piling up.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::log;
use crate::model::agent::LoadError;
use crate::model::state::{self, State, FILE_MAX};
use crate::os::fs as file;
use crate::os::fsync;

/// The step of a write that failed, for the log, and its error if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteError(&'static str, Option<Errno>);

impl WriteError {
    /// Starts the error line `writing PATH: step[: errno]` for a failed write of `path`.
    pub fn line(self, path: &Path) -> log::Line {
        let l = log::error()
            .s("writing ")
            .b(path.as_os_str().as_encoded_bytes())
            .s(": ")
            .s(self.0);
        match self.1 {
            Some(e) => l.s(": ").errno(e),
            None => l,
        }
    }
}

/// Makes the error of a failed step from its name.
fn failed(step: &'static str) -> impl Fn(Errno) -> WriteError {
    move |e| WriteError(step, Some(e))
}

/// Reads and parses the state file into a caller-owned buffer.
pub fn read(path: &Path, buf: &mut [u8; FILE_MAX + 1]) -> Result<State, LoadError> {
    let n = file::read(path, buf).map_err(LoadError::Io)?;
    // A full buffer is a file larger than FILE_MAX, which parse refuses as such.
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
    state::write(st, &mut out).map_err(|_| WriteError("state larger than 16384 bytes", None))?;
    let result = write_via(path, tmp, &out);
    if result.is_err() {
        let _ = file::remove(tmp);
    }
    result
}

/// Gives the new file the old one's mode and (when we may) owner, else mode
/// 0644 whatever the umask: `heft set` run as root must not leave a file the
/// agent, running as its own user, can no longer read or replace.
fn keep_mode_and_owner(path: &Path, f: &crate::os::Fd) {
    let me = crate::os::euid();
    // Without the old file's mode and owner: 0644, and our own uid (no chown).
    let (mode, uid, gid) = file::mode_and_owner(path).unwrap_or((0o644, me, 0));
    // Failures leave the umask's mode or our own owner: nothing better to do.
    let _ = file::fchmod(f, mode);
    if uid != me {
        let _ = file::fchown(f, uid, gid);
    }
}

/// Writes `bytes` to `tmp`, syncs it, renames it over `path` and syncs the directory.
fn write_via(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let f = file::create(tmp, bytes).map_err(failed("writing the temporary file"))?;
    keep_mode_and_owner(path, &f);
    fsync(&f).map_err(failed("fsync"))?;
    drop(f);
    file::rename(tmp, path).map_err(failed("rename"))?;
    file::open_read(file::dir_of(path))
        .and_then(|d| fsync(&d))
        .map_err(failed("fsync"))
}
