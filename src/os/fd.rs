//! Descriptors: reading, writing, waiting.
//!
//! A descriptor is std's `OwnedFd`, named `Fd` here: closed when dropped,
//! and what nix's calls take and return.

use core::sync::atomic::{AtomicI32, Ordering};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};

use nix::errno::Errno;

pub use std::os::fd::OwnedFd as Fd;

/// A descriptor kept open for the rest of the process, in a static.
///
/// Plain atomic loads and stores, no compare-and-swap (which ARMv6's Thumb
/// code lacks, unlike `OnceLock`): a descriptor given to `set` is never
/// closed, so a borrow of it is good for the process's life.
pub struct StaticFd(AtomicI32);

impl StaticFd {
    /// Holds no descriptor yet.
    pub const fn new() -> StaticFd {
        StaticFd(AtomicI32::new(-1))
    }

    /// Keeps `fd` open for good and hands it out from now on.
    pub fn set(&self, fd: Fd) {
        self.0.store(fd.into_raw_fd(), Ordering::Relaxed);
    }

    /// The descriptor, once one is set.
    pub fn get(&self) -> Option<BorrowedFd<'static>> {
        let fd = self.0.load(Ordering::Relaxed);
        // SAFETY: a descriptor stored by `set` was given up by its owner and
        // is never closed.
        (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    }
}

impl Default for StaticFd {
    fn default() -> StaticFd {
        StaticFd::new()
    }
}

/// Reads from `fd` into `buf`; returns how many bytes came, 0 at the end.
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> Result<usize, Errno> {
    nix::unistd::read(fd, buf)
}

/// Writes all of `bytes` to `fd`.
pub fn write_all(fd: impl AsFd, mut bytes: &[u8]) -> Result<(), Errno> {
    let fd = fd.as_fd();
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes)? {
            0 => return Err(Errno::EIO),
            k => bytes = &bytes[k..],
        }
    }
    Ok(())
}

/// Writes `bytes` to `fd` in one call if `fd` has room within `wait_ms`
/// (0: at once), or not at all: a stalled reader never holds the caller.
/// Returns true if every byte went.
///
/// The descriptor's blocking mode is left alone: its open file description
/// may be shared (a shell's terminal, a pipeline), and O_NONBLOCK there
/// would change it for every other holder. Instead poll says whether there
/// is room: a pipe with a free page takes a write of up to 4 KiB whole, a
/// stream socket with POLLOUT has half its buffer free, and a datagram
/// socket heft opens itself is non-blocking. A terminal stopped by flow
/// control may still hold a write that does not fit its free room.
pub fn write_within(fd: BorrowedFd, bytes: &[u8], wait_ms: i32) -> bool {
    let mut p = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    }];
    matches!(poll(&mut p, wait_ms), Ok(1))
        && matches!(nix::unistd::write(fd, bytes), Ok(n) if n == bytes.len())
}

/// Writes all of `buf` to standard output; false if it could not.
///
/// Straight to descriptor 1: std's `Stdout` would bring its lazily
/// allocated buffer and the flush at exit, which heft never needs.
pub fn write_stdout(buf: &[u8]) -> bool {
    // SAFETY: descriptor 1 stays open for the whole process (std's start-up
    // opens /dev/null there if it was closed) and heft never closes it.
    let fd = unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
    write_all(fd, buf).is_ok()
}

/// Waits for events on `fds` for at most `timeout_ms` (-1: forever).
///
/// Returns the number of ready descriptors; a signal (EINTR) counts as a
/// wake-up with none ready. This is the one place EINTR is handled.
///
/// libc's poll, not nix's: the loop keeps one table of plain `pollfd`s from
/// wake-up to wake-up (a paused listener is -1 in its place), where nix's
/// `PollFd` borrows each descriptor for the table's life.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, Errno> {
    // SAFETY: `fds` is a live, exclusively borrowed slice of `fds.len()` pollfds.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match Errno::result(r) {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}
