//! Files: reading small files whole into caller-owned buffers, writing the
//! state file, and the calls around replacing it (mode, owner, rename, sync).
//!
//! Paths are given to nix as they are; it copies each into a C string on
//! the stack.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, AT_FDCWD};
use nix::sys::stat::{self, Mode};
use nix::unistd::{self, AccessFlags, Gid, Uid};

use super::Fd;
use crate::os;

/// Opens `path` with `flags` (close-on-exec added) and, for a new file, `mode`.
fn open(path: &Path, flags: OFlag, mode: Mode) -> Result<Fd, Errno> {
    fcntl::open(path, flags | OFlag::O_CLOEXEC, mode)
}

/// Opens `path` for reading.
pub fn open_read(path: &Path) -> Result<Fd, Errno> {
    open(path, OFlag::O_RDONLY, Mode::empty())
}

/// Reads from `fd` until EOF or until `buf` is full; returns the bytes read.
pub fn read_full(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut n = 0;
    while n < buf.len() {
        match os::read(fd, &mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the start of the file at `path` into `buf`; returns the bytes read.
pub fn read(path: &Path, buf: &mut [u8]) -> Result<usize, Errno> {
    read_full(&open_read(path)?, buf)
}

/// Creates or truncates `path` (mode 0644 before the umask) and writes `bytes` to it.
pub fn create(path: &Path, bytes: &[u8]) -> Result<Fd, Errno> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
    let fd = open(path, flags, Mode::from_bits_truncate(0o644))?;
    os::write_all(&fd, bytes)?;
    Ok(fd)
}

/// Renames `from` over `to`.
pub fn rename(from: &Path, to: &Path) -> Result<(), Errno> {
    fcntl::renameat(AT_FDCWD, from, AT_FDCWD, to)
}

/// Removes `path`.
pub fn remove(path: &Path) -> Result<(), Errno> {
    unistd::unlink(path)
}

/// Tells whether this process may write at `path`.
pub fn writable(path: &Path) -> bool {
    unistd::access(path, AccessFlags::W_OK).is_ok()
}

/// Returns the permission bits, owner and group of the file at `path`.
pub fn mode_and_owner(path: &Path) -> Result<(u32, u32, u32), Errno> {
    let st = stat::stat(path)?;
    Ok((st.st_mode as u32 & 0o7777, st.st_uid, st.st_gid))
}

/// Sets the permission bits of the file open at `fd`.
pub fn fchmod(fd: &Fd, mode: u32) -> Result<(), Errno> {
    stat::fchmod(fd, Mode::from_bits_truncate(mode as _))
}

/// Sets the owner and group of the file open at `fd`.
pub fn fchown(fd: &Fd, uid: u32, gid: u32) -> Result<(), Errno> {
    unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
}

/// Flushes what was written to `fd` to the disk.
pub fn fsync(fd: &Fd) -> Result<(), Errno> {
    unistd::fsync(fd)
}

/// Returns the directory that holds `path`: `.` for a bare name.
pub fn dir_of(path: &Path) -> &Path {
    let b = path.as_os_str().as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        Some(0) => Path::new("/"),
        Some(i) => Path::new(std::ffi::OsStr::from_bytes(&b[..i])),
        None => Path::new("."),
    }
}

/// Calls `f` with each line of the file at `path` (without its `\n`), using `buf`
/// as the window; lines longer than `buf` are skipped. Stops when `f` returns `Some`.
pub fn find_line<T>(
    path: &Path,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, Errno> {
    let fd = open_read(path)?;
    let mut have = 0;
    let mut skipping = false;
    loop {
        let k = os::read(&fd, &mut buf[have..])?;
        let eof = k == 0;
        have += k;
        let mut start = 0;
        // At the end of the file, what is left is the last line (one call site of `f`).
        loop {
            let end = match buf[start..have].iter().position(|&c| c == b'\n') {
                Some(p) => start + p,
                None if eof && start < have => have,
                None => break,
            };
            let line = &buf[start..end];
            start = have.min(end + 1);
            if core::mem::take(&mut skipping) {
                continue;
            }
            if let Some(t) = f(line) {
                return Ok(Some(t));
            }
        }
        if eof {
            return Ok(None);
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            have = 0;
            skipping = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_directory() {
        for (p, d) in [
            ("/etc/heft/state.json", "/etc/heft"),
            ("/s.json", "/"),
            ("s.json", "."),
            ("a/b", "a"),
        ] {
            assert_eq!(dir_of(Path::new(p)), Path::new(d));
        }
    }

    #[test]
    fn finds_lines_skipping_long_ones_up_to_the_last() {
        let path = std::env::temp_dir().join(format!("heft-find-line-{}", std::process::id()));
        let long = "x".repeat(40);
        let mut buf = [0u8; 16];
        let mut find = |text: &str, key: &[u8]| {
            std::fs::write(&path, text).unwrap();
            find_line(&path, &mut buf, |l| l.strip_prefix(key).map(<[u8]>::to_vec))
        };
        let text = format!("a:1\n{long}:9\nb:2\nc:3");
        assert_eq!(find(&text, b"a:"), Ok(Some(b"1".to_vec())));
        assert_eq!(find(&text, b"b:"), Ok(Some(b"2".to_vec())));
        assert_eq!(find(&text, b"c:"), Ok(Some(b"3".to_vec())));
        assert_eq!(find(&text, b"x"), Ok(None));
        assert_eq!(find(&format!("a:1\n{long}"), b"x"), Ok(None));
        assert_eq!(find("c:3\n", b"c:"), Ok(Some(b"3".to_vec())));
        assert_eq!(find("", b""), Ok(None));
        std::fs::remove_file(&path).unwrap();
    }
}
