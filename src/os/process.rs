//! Child processes: starting a command with its output in a pipe and in a
//! process group of its own, finding children that ended, killing a group.
//!
//! A bare `clone` system call (what fork(2) is) and execv, rather than
//! `posix_spawn` (musl builds its file actions with malloc), libc's `fork`
//! (1.4 KB of musl's at-fork locking, for threads heft does not have) or
//! std's `Command` (copies on the heap, and several KB of code). heft has one
//! thread, so its child may make any async-signal-safe call until it execs;
//! it makes only system calls on memory the parent prepared.
//!
//! Children are noticed through SIGCHLD (the handler in `signal` wakes the
//! loop) and `waitid`, which works on every kernel heft runs on; a pidfd
//! would need Linux 5.3.

use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::Fd;

/// The most arguments a command may have, its path included.
pub const ARGS_MAX: usize = 32;

/// How a child ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exit {
    /// It exited with this code.
    Code(u8),
    /// This signal killed it.
    Signal(u8),
}

/// The exit code of a child that could not exec its program (as a shell's
/// 127); it prints `cannot run: ERRNO` first.
pub const CANNOT_RUN: u8 = 127;

/// Starts `command` (its arguments, each followed by a NUL byte, the first an
/// absolute path) in a new process group, with stdin and stderr on
/// `/dev/null` and stdout on a pipe; returns its pid and the pipe's read end
/// (non-blocking, close-on-exec).
pub fn spawn(command: &[u8]) -> Result<(i32, Fd), Errno> {
    // Built before fork: the child must not allocate.
    let mut argv = [core::ptr::null::<libc::c_char>(); ARGS_MAX + 1];
    let mut n = 0;
    let mut start = 0;
    for (i, &c) in command.iter().enumerate() {
        if c == 0 {
            if n == ARGS_MAX {
                return Err(Errno::E2BIG);
            }
            argv[n] = command[start..].as_ptr().cast();
            n += 1;
            start = i + 1;
        }
    }
    if n == 0 || start != command.len() {
        return Err(Errno::EINVAL);
    }
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // Only the loop's end is non-blocking: the command writes as to any pipe.
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    // SAFETY: fork(2) as a clone without shared memory (on every target the
    // arguments after the flags are unused when 0); heft has one thread, and
    // the child only makes system calls on memory prepared above before it
    // execs or exits.
    match unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) } as i32 {
        -1 => Err(Errno::last()),
        0 => child(&argv, w.as_raw_fd()),
        pid => {
            // Also here, as shells do: a group kill may follow before the
            // child has run (EACCES once it has exec'd is fine).
            // SAFETY: setpgid(2) has no memory effects.
            unsafe { libc::setpgid(pid, pid) };
            Ok((pid, r))
        }
    }
}

/// Makes `fd` the descriptor `to`, kept open across exec.
fn place(fd: RawFd, to: RawFd) {
    // SAFETY: plain system calls on descriptor numbers (dup3, which every
    // target has, as the bare system call: dup2 is not one on all of them).
    unsafe {
        if fd == to {
            libc::fcntl(fd, libc::F_SETFD, 0);
        } else {
            libc::syscall(libc::SYS_dup3, fd, to, 0);
        }
    }
}

/// Sets up the child of `spawn` and execs `argv`; writes why not and exits if it cannot.
fn child(argv: &[*const libc::c_char; ARGS_MAX + 1], out: RawFd) -> ! {
    // SAFETY: async-signal-safe system calls only, on the argument vector and
    // strings the parent built, which stay valid in the child's copy.
    unsafe {
        libc::setpgid(0, 0);
        // Killed if heft stops first (the bare system call: musl's prctl
        // wrapper is 200 bytes of variadic handling).
        libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // Handlers end at exec by themselves; an ignored SIGPIPE (std's
        // runtime) and a blocked mask would not.
        let mut none: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, core::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        place(out, 1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        place(null, 0);
        place(null, 2);
        // Whatever heft inherited without close-on-exec (Linux 5.9; older
        // kernels say ENOSYS, and heft's own descriptors are all close-on-exec).
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::execv(argv[0], argv.as_ptr());
        let why = super::errno_name(Errno::last()).unwrap_or("errno");
        for part in [&b"cannot run: "[..], why.as_bytes(), b"\n"] {
            libc::write(1, part.as_ptr().cast(), part.len());
        }
        libc::_exit(CANNOT_RUN as i32)
    }
}

/// Returns a child that has ended, if any, leaving it unreaped: while it is
/// a zombie its pid, and so its process group's id, cannot be reused.
pub fn ended() -> Option<i32> {
    // SAFETY: waitid writes only into `info`; a zeroed siginfo_t is valid.
    unsafe {
        let mut info: libc::siginfo_t = core::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        if libc::waitid(libc::P_ALL, 0, &mut info, flags) != 0 {
            return None;
        }
        Some(info.si_pid()).filter(|&p| p > 0)
    }
}

/// Reaps the ended child `pid` and tells how it ended.
pub fn reap(pid: i32) -> Exit {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status) as u8)
    } else {
        Exit::Code(libc::WEXITSTATUS(status) as u8)
    }
}

/// Sends SIGKILL to every process in the group `pgid`.
pub fn kill_group(pgid: i32) {
    // 0 and 1 would name heft's own group and every process.
    if pgid > 1 {
        // SAFETY: kill(2) has no memory effects; a negative pid names a group.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}
