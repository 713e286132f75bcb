//! The operating system: descriptors, sockets, files, ids, signals, the
//! clock. System calls go through `nix`, or `libc` where nix has no wrapper
//! that fits; each file says where and why.
//!
//! This module holds every `unsafe` block in heft, each with the reason it is
//! sound, and imports nothing from the rest of the crate but `time`'s
//! `Instant`, the clock's reading: it reports what the system says, and the
//! layers above decide what that means.
#![allow(unsafe_code)]

pub mod clock;
pub mod fd;
pub mod fs;
pub mod ids;
pub mod net;
pub mod signal;

pub use clock::now;
pub use fd::{poll, read, write_all, write_stdout, write_within, Fd};
pub use fs::fsync;
pub use ids::{euid, pid};
pub use net::{accept, connect, connect_result, recv, send, send_last, shutdown_write, tcp_socket};
pub use signal::{kill, UserSignal};

use nix::errno::Errno;

/// Returns the environment variable `name`, through libc's getenv(3):
/// std's lookup brings a lock and a heap copy of the name with it. The value
/// is borrowed, not copied: it lives as long as the process.
pub fn env(name: &str) -> Option<&'static std::ffi::OsStr> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = [0; 1024];
    let name = fs::c(std::path::Path::new(name), &mut buf).ok()?;
    // SAFETY: `name` is a C string that outlives the call.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: a non-null getenv(3) result is a NUL-terminated C string in
    // the environment the process started with; heft never changes its
    // environment, so the string stays there, unchanged, until it exits.
    let v: &'static std::ffi::CStr = unsafe { std::ffi::CStr::from_ptr(v) };
    Some(std::ffi::OsStr::from_bytes(v.to_bytes()))
}

/// Views bytes as a `str` if they are all ASCII, without core's UTF-8
/// validator: every text heft keeps is checked to be ASCII.
pub fn ascii_str(b: &[u8]) -> Option<&str> {
    // Byte by byte: `<[u8]>::is_ascii` reads by words, more code for texts this short.
    if !b.iter().all(u8::is_ascii) {
        return None;
    }
    // SAFETY: every byte is ASCII, and ASCII text is valid UTF-8.
    Some(unsafe { core::str::from_utf8_unchecked(b) })
}

/// The errors `errno_name` names, each with its name.
const ERRNO_NAMES: [(Errno, &str); 29] = [
    (Errno::ESPIPE, "not a regular file (a FIFO)"),
    (Errno::ENODEV, "not a regular file (a device or socket)"),
    (Errno::ENOLINK, "a symlink in a directory others can write"),
    (Errno::EACCES, "EACCES"),
    (Errno::EPERM, "EPERM"),
    (Errno::ENOENT, "ENOENT"),
    (Errno::ENOTDIR, "ENOTDIR"),
    (Errno::ELOOP, "ELOOP"),
    (Errno::ENAMETOOLONG, "ENAMETOOLONG"),
    (Errno::EISDIR, "EISDIR"),
    (Errno::EROFS, "EROFS"),
    (Errno::ENOSPC, "ENOSPC"),
    (Errno::EDQUOT, "EDQUOT"),
    (Errno::EIO, "EIO"),
    (Errno::EADDRINUSE, "EADDRINUSE"),
    (Errno::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
    (Errno::EAFNOSUPPORT, "EAFNOSUPPORT"),
    (Errno::EMFILE, "EMFILE"),
    (Errno::ENFILE, "ENFILE"),
    (Errno::ENOMEM, "ENOMEM"),
    (Errno::ENOBUFS, "ENOBUFS"),
    (Errno::ECONNREFUSED, "ECONNREFUSED"),
    (Errno::ECONNRESET, "ECONNRESET"),
    (Errno::ECONNABORTED, "ECONNABORTED"),
    (Errno::EPIPE, "EPIPE"),
    (Errno::ETIMEDOUT, "ETIMEDOUT"),
    (Errno::ESRCH, "ESRCH"),
    (Errno::EAGAIN, "EAGAIN"),
    (Errno::EINVAL, "EINVAL"),
];

/// Names the errors heft reports, without pulling in the whole strerror
/// table; `None` for the others (`num::errno_text` gives their number).
///
/// Three stand for what `fs` refuses rather than what the kernel said:
/// ESPIPE and ENODEV for a file that is not regular, ENOLINK for a symlink
/// heft will not follow.
pub fn errno_name(e: Errno) -> Option<&'static str> {
    ERRNO_NAMES
        .iter()
        .find(|&&(n, _)| n == e)
        .map(|&(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_errnos_as_nix_does() {
        let mut named = 0;
        for raw in 0..4096 {
            let e = Errno::from_raw(raw);
            match errno_name(e) {
                None => {}
                Some(n) if !n.starts_with('E') => assert!(fs_refusal(e), "{e:?}"),
                Some(name) => {
                    assert_eq!(name, format!("{e:?}"));
                    named += 1;
                }
            }
        }
        assert_eq!(named, 26);
    }

    /// The errnos `fs` uses for what it refuses.
    fn fs_refusal(e: Errno) -> bool {
        matches!(e, Errno::ESPIPE | Errno::ENODEV | Errno::ENOLINK)
    }

    #[test]
    fn takes_ascii_only() {
        assert_eq!(ascii_str(b"up 50%"), Some("up 50%"));
        assert_eq!(ascii_str("é".as_bytes()), None);
    }
}
