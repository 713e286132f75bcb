//! Reads and writes small files with plain system calls, into caller-owned buffers.
//!
//! `std::fs` would do, but it costs several KB on every target (open options,
//! boxed error strings, Unicode tables for their Debug output); heft only ever
//! reads a few small files whole and writes one. Paths are copied to a
//! C string on the stack here, once, so that system calls take them as they are.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::Fd;
use crate::os;

/// The longest path heft opens, in bytes with the terminating NUL.
pub const PATH_BUF: usize = 1024;

/// Room for one path as a C string: left uninitialised until a path is copied in,
/// so that making one costs no 1 KB clearing.
pub type CPathBuf = heapless::Vec<u8, PATH_BUF>;

/// Copies `path` into `buf` as a C string; a longer path is `ENAMETOOLONG`.
///
/// nix would do the copy itself for a `&Path`, but with a second, allocating
/// copy for long paths, instantiated for every call that takes one.
pub fn c_path<'b>(path: &Path, buf: &'b mut CPathBuf) -> Result<&'b CStr, Errno> {
    let v = buf.as_mut_view();
    v.clear();
    let copied = v.extend_from_slice(path.as_os_str().as_bytes()).is_ok();
    if !copied || v.push(0).is_err() {
        return Err(Errno::ENAMETOOLONG);
    }
    CStr::from_bytes_with_nul(v).map_err(|_| Errno::EINVAL)
}

/// Opens `path` with `flags` and, for a new file, `mode`.
fn open(path: &Path, flags: OFlag, mode: Mode) -> Result<Fd, Errno> {
    os::open(
        c_path(path, &mut CPathBuf::new())?,
        flags.bits(),
        mode.bits(),
    )
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

/// Writes all of `bytes` to `fd`.
pub fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match os::write(fd, bytes)? {
            0 => return Err(Errno::EIO),
            k => bytes = &bytes[k..],
        }
    }
    Ok(())
}

/// Creates or truncates `path` (mode 0644 before the umask) and writes `bytes` to it.
pub fn create(path: &Path, bytes: &[u8]) -> Result<Fd, Errno> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
    let fd = open(path, flags, Mode::from_bits_truncate(0o644))?;
    write_all(fd.as_raw_fd(), bytes)?;
    Ok(fd)
}

/// Renames `from` over `to`.
pub fn rename(from: &Path, to: &Path) -> Result<(), Errno> {
    let mut b = CPathBuf::new();
    os::rename(c_path(from, &mut b)?, c_path(to, &mut CPathBuf::new())?)
}

/// Removes `path`.
pub fn remove(path: &Path) -> Result<(), Errno> {
    os::unlink(c_path(path, &mut CPathBuf::new())?)
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

    #[test]
    fn makes_c_paths_or_says_why_not() {
        let mut b = CPathBuf::new();
        assert_eq!(
            c_path(Path::new("/etc/heft/state.json"), &mut b).unwrap(),
            c"/etc/heft/state.json"
        );
        let long = "a".repeat(PATH_BUF);
        assert_eq!(c_path(Path::new(&long), &mut b), Err(Errno::ENAMETOOLONG));
        assert_eq!(
            c_path(Path::new(&long[1..]), &mut b)
                .unwrap()
                .to_bytes()
                .len(),
            PATH_BUF - 1
        );
        assert_eq!(c_path(Path::new("a\0b"), &mut b), Err(Errno::EINVAL));
    }
}
