//! First-run errors that say what to do: a missing state file or directory
//! is reported with its path, the flag or variable that chose it, and what to
//! create, for the agent's start-up log, `heft set` and `heft check`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::log;
use crate::model::agent::LoadError;
use crate::os::fs;

/// Tells whether the directory that should hold `path` does not exist.
pub fn dir_missing(path: &Path) -> bool {
    fs::open_read(fs::dir_of(path)).err() == Some(Errno::ENOENT)
}

/// Tells a missing directory (`NoDir`) from a missing file, for the reply's reason.
pub fn refine(path: &Path, e: LoadError) -> LoadError {
    match e {
        LoadError::Io(Errno::ENOENT) if dir_missing(path) => LoadError::NoDir,
        e => e,
    }
}

/// The error line for the state file `path`, missing (ENOENT) itself or with
/// its directory: names what chose the path (`from`: a flag or variable,
/// empty for the default) and what to create.
#[cold]
#[inline(never)]
pub fn missing(path: &Path, from: &str) -> log::Line {
    let dir = fs::dir_of(path).as_os_str().as_bytes();
    let (set_by, from) = match from {
        "" => ("the default", ""),
        f => ("from ", f),
    };
    let mut l = log::error();
    l.s("state file ")
        .b(path.as_os_str().as_bytes())
        .s(" (")
        .s(set_by)
        .s(from)
        .s("): unreadable ENOENT");
    if dir_missing(path) {
        l.s(", no directory ")
            .b(dir)
            .s("; create it (mkdir -p ")
            .b(dir)
            .s(", writable by the agent)");
    } else {
        l.s("; create it (heft set UP --state-file ")
            .b(path.as_os_str().as_bytes())
            .s(")");
    }
    l.s(" or point --state-file / HEFT_STATE_FILE elsewhere");
    l
}

/// The error line for `path` that `heft set` could not write: the advice of
/// `missing` when its directory does not exist, else `None`.
pub fn unwritable(path: &Path, from: &str) -> Option<log::Line> {
    dir_missing(path).then(|| missing(path, from))
}
