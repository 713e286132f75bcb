//! Descriptors: reading, writing, waiting.
//!
//! A descriptor is std's `OwnedFd`, named `Fd` here: closed when dropped,
//! and what nix's calls take and return.

use std::os::fd::AsFd;

use nix::errno::Errno;

pub use std::os::fd::OwnedFd as Fd;

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

/// Writes all of `buf` to standard output; false if it could not.
pub fn write_stdout(buf: &[u8]) -> bool {
    write_all(std::io::stdout().as_fd(), buf).is_ok()
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
