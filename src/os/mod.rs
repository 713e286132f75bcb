//! Holds every `unsafe` block and all assembly: system calls, the static
//! builds' entry point, signal handlers, descriptors, the allocator.
//!
//! Each block says why it is sound. Everything else in heft is safe code.
#![allow(unsafe_code)]

pub mod file;

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libc::c_long;

// System calls go straight to the kernel through `heft_syscall`, a few
// instructions of assembly per architecture, never through the C library's
// wrappers: those set the thread's errno, check for thread cancellation
// (close, read, write, poll are cancellation points in musl) and carry
// fallbacks for kernels older than heft supports. heft reads the result
// itself: -4095 to -1 is an error number.

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.heft_syscall,\"ax\",@progbits",
    ".hidden heft_syscall",
    ".globl heft_syscall",
    ".type heft_syscall,@function",
    "heft_syscall:",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rsi, rdx",
    "mov rdx, rcx",
    "mov r10, r8",
    "mov r8, r9",
    "mov r9, [rsp + 8]",
    "syscall",
    "ret",
    ".popsection",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.heft_syscall,\"ax\",@progbits",
    ".hidden heft_syscall",
    ".globl heft_syscall",
    ".type heft_syscall,%function",
    "heft_syscall:",
    "mov x8, x0",
    "mov x0, x1",
    "mov x1, x2",
    "mov x2, x3",
    "mov x3, x4",
    "mov x4, x5",
    "mov x5, x6",
    "svc #0",
    "ret",
    ".popsection",
);

// ARM code (Thumb callers reach it through BLX): the number goes in r7,
// which Thumb code keeps as its frame pointer, and the fifth and sixth
// arguments come from the stack.
#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".pushsection .text.heft_syscall,\"ax\",%progbits",
    ".hidden heft_syscall",
    ".globl heft_syscall",
    ".type heft_syscall,%function",
    ".arm",
    "heft_syscall:",
    "mov ip, sp",
    "push {{r4, r5, r7, lr}}",
    "mov r7, r0",
    "mov r0, r1",
    "mov r1, r2",
    "mov r2, r3",
    "ldm ip, {{r3, r4, r5}}",
    "svc #0",
    "pop {{r4, r5, r7, pc}}",
    ".popsection",
);

// MIPS o32: the fifth and sixth arguments go at 16 and 20 bytes up the
// stack; the kernel sets $7 when $2 holds an error number, which it returns
// positive. The number is moved into $2 right before `syscall`, from a
// register the call keeps, as kernels that restart a call by re-running the
// instruction before it need (musl does the same).
#[cfg(target_arch = "mips")]
core::arch::global_asm!(
    ".pushsection .text.heft_syscall,\"ax\",@progbits",
    ".hidden heft_syscall",
    ".globl heft_syscall",
    ".type heft_syscall,@function",
    ".set push",
    ".set noreorder",
    "heft_syscall:",
    "move $25, $4",
    "move $4, $5",
    "move $5, $6",
    "move $6, $7",
    "lw $7, 16($sp)",
    "lw $8, 20($sp)",
    "lw $9, 24($sp)",
    "addiu $sp, $sp, -32",
    "sw $8, 16($sp)",
    "sw $9, 20($sp)",
    "move $2, $25",
    "syscall",
    "beq $7, $0, 1f",
    "addiu $sp, $sp, 32",
    "subu $2, $0, $2",
    "1:",
    "jr $31",
    "nop",
    ".set pop",
    ".popsection",
);

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "mips"
))]
unsafe extern "C" {
    /// Makes system call `nr` with six arguments (above); returns the
    /// kernel's result, -errno on failure.
    fn heft_syscall(
        nr: c_long,
        a: c_long,
        b: c_long,
        c: c_long,
        d: c_long,
        e: c_long,
        f: c_long,
    ) -> c_long;
}

/// Makes system call `nr` through the C library, on architectures heft has
/// no assembly for; returns the result as the kernel would, -errno on failure.
///
/// # Safety
/// As for the call itself.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "mips"
)))]
unsafe fn heft_syscall(
    nr: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    // SAFETY: the caller vouches for the call and its arguments.
    match unsafe { libc::syscall(nr, a, b, c, d, e, f) } {
        -1 => -(Errno::last_raw() as c_long),
        r => r,
    }
}

/// Makes system call `nr` with up to six arguments; `Ok` with its result,
/// or the error it returned.
///
/// # Safety
/// The arguments must be what call `nr` takes: integers, or pointers to
/// live memory of the kind and size it reads or writes.
unsafe fn call(nr: c_long, args: [c_long; 6]) -> Result<c_long, Errno> {
    let [a, b, c, d, e, f] = args;
    // SAFETY: the caller vouches for the call and its arguments.
    let r = unsafe { heft_syscall(nr, a, b, c, d, e, f) };
    // -4095 to -1 are error numbers; anything else is a result (an address
    // from mmap may look negative on 32-bit targets).
    if (r as usize) > (-4096isize) as usize {
        Err(Errno::from_raw(-r as i32))
    } else {
        Ok(r)
    }
}

// The static builds start here instead of at the C library's `_start`
// (build.rs sets `heft_own_start` for them): the kernel leaves argc, then
// argv's pointers and a null, then envp's, at the stack pointer. This calls
// `main(argc, argv, envp)` with the stack aligned and the frame chain ended,
// then exit_group with what main returns. musl's start-up would set up the
// thread pointer, run constructors and parse the auxiliary vector, none of
// which heft uses: it has one thread, no thread-locals, no constructors
// (size-report fails on a TLS segment or constructor sections), and reads
// the clock with the system call.

#[cfg(all(heft_own_start, target_arch = "x86_64"))]
core::arch::global_asm!(
    ".pushsection .text.heft_start,\"ax\",@progbits",
    ".globl heft_start",
    ".type heft_start,@function",
    "heft_start:",
    "xor ebp, ebp",
    "mov rdi, [rsp]",
    "lea rsi, [rsp + 8]",
    "lea rdx, [rsi + rdi * 8 + 8]",
    "and rsp, -16",
    "call main",
    "mov edi, eax",
    "mov eax, 231",
    "syscall",
    ".popsection",
);

#[cfg(all(heft_own_start, target_arch = "aarch64"))]
core::arch::global_asm!(
    ".pushsection .text.heft_start,\"ax\",@progbits",
    ".globl heft_start",
    ".type heft_start,%function",
    "heft_start:",
    "mov x29, #0",
    "mov x30, #0",
    "ldr x0, [sp]",
    "add x1, sp, #8",
    "add x2, x1, x0, lsl #3",
    "add x2, x2, #8",
    "bl main",
    "mov x8, #94",
    "svc #0",
    ".popsection",
);

#[cfg(all(heft_own_start, target_arch = "arm"))]
core::arch::global_asm!(
    ".pushsection .text.heft_start,\"ax\",%progbits",
    ".globl heft_start",
    ".type heft_start,%function",
    ".arm",
    "heft_start:",
    "mov fp, #0",
    "mov lr, #0",
    "ldr r0, [sp]",
    "add r1, sp, #4",
    "add r2, r1, r0, lsl #2",
    "add r2, r2, #4",
    "bic ip, sp, #15",
    "mov sp, ip",
    "bl main",
    "mov r7, #248",
    "svc #0",
    ".popsection",
);

// MIPS o32 also wants $gp at `_gp` and 16 bytes of argument space below the
// caller's frame.
#[cfg(all(heft_own_start, target_arch = "mips"))]
core::arch::global_asm!(
    ".pushsection .text.heft_start,\"ax\",@progbits",
    ".globl heft_start",
    ".type heft_start,@function",
    ".set push",
    ".set noreorder",
    "heft_start:",
    "lui $28, %hi(_gp)",
    "addiu $28, $28, %lo(_gp)",
    "move $30, $0",
    "move $31, $0",
    "lw $4, 0($sp)",
    "addiu $5, $sp, 4",
    "sll $6, $4, 2",
    "addu $6, $6, $5",
    "addiu $6, $6, 4",
    "addiu $8, $0, -16",
    "and $sp, $sp, $8",
    "jal main",
    "addiu $sp, $sp, -16",
    "move $4, $2",
    "addiu $2, $0, 4246",
    "syscall",
    ".set pop",
    ".popsection",
);

// On MIPS the static build also brings its own memcpy, memmove, memset,
// bcmp and strlen: byte loops of 54 instructions in all, where musl's
// word-at-a-time versions take 1.2 KB. heft copies a few KB at most at a
// time (a state file, a reply), so speed is not the point there.
#[cfg(all(heft_own_start, target_arch = "mips"))]
core::arch::global_asm!(
    ".pushsection .text.heft_mem,\"ax\",@progbits",
    ".set push",
    ".set noreorder",
    ".globl memcpy",
    ".type memcpy,@function",
    "memcpy:",
    "move $2, $4",
    "beqz $6, 2f",
    "nop",
    "1:",
    "lbu $8, 0($5)",
    "addiu $5, $5, 1",
    "addiu $6, $6, -1",
    "sb $8, 0($4)",
    "bnez $6, 1b",
    "addiu $4, $4, 1",
    "2:",
    "jr $31",
    "nop",
    // Backwards only when the destination starts inside the source.
    ".globl memmove",
    ".type memmove,@function",
    "memmove:",
    "sltu $8, $5, $4",
    "beqz $8, memcpy",
    "addu $9, $5, $6",
    "sltu $8, $4, $9",
    "beqz $8, memcpy",
    "move $2, $4",
    "beqz $6, 2f",
    "addu $4, $4, $6",
    "1:",
    "addiu $9, $9, -1",
    "lbu $8, 0($9)",
    "addiu $4, $4, -1",
    "addiu $6, $6, -1",
    "bnez $6, 1b",
    "sb $8, 0($4)",
    "2:",
    "jr $31",
    "nop",
    ".globl memset",
    ".type memset,@function",
    "memset:",
    "move $2, $4",
    "beqz $6, 2f",
    "nop",
    "1:",
    "sb $5, 0($4)",
    "addiu $6, $6, -1",
    "bnez $6, 1b",
    "addiu $4, $4, 1",
    "2:",
    "jr $31",
    "nop",
    // Zero if equal, else one (bcmp need not order the bytes).
    ".globl bcmp",
    ".type bcmp,@function",
    "bcmp:",
    "beqz $6, 2f",
    "move $2, $0",
    "1:",
    "lbu $8, 0($4)",
    "lbu $9, 0($5)",
    "addiu $4, $4, 1",
    "addiu $5, $5, 1",
    "bne $8, $9, 3f",
    "addiu $6, $6, -1",
    "bnez $6, 1b",
    "nop",
    "2:",
    "jr $31",
    "nop",
    "3:",
    "jr $31",
    "addiu $2, $0, 1",
    // The loop steps past the NUL too (the delay slot runs either way).
    ".globl strlen",
    ".type strlen,@function",
    "strlen:",
    "move $2, $4",
    "1:",
    "lbu $8, 0($2)",
    "bnez $8, 1b",
    "addiu $2, $2, 1",
    "addiu $2, $2, -1",
    "jr $31",
    "subu $2, $2, $4",
    ".set pop",
    ".popsection",
);

/// An open file descriptor, closed when dropped.
///
/// std's `OwnedFd` closes through the C library's `close`, a thread
/// cancellation point in musl; this closes with the system call.
#[derive(Debug)]
pub struct Fd(RawFd);

impl Fd {
    /// Takes ownership of `fd`, just returned by a call that opened it.
    fn own(fd: c_long) -> Fd {
        Fd(fd as RawFd)
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: close takes an integer; the descriptor is ours alone. Its
        // error, if any, has no remedy (the descriptor is gone either way).
        let _ = unsafe { call(libc::SYS_close, [self.0 as c_long, 0, 0, 0, 0, 0]) };
    }
}

// The handlers and the loop share these with plain loads and stores, never a
// read-modify-write: ARMv6 in Thumb mode has no atomic swap, and one thread
// needs none. A handler cannot be interrupted by another of ours (each blocks
// them all). SIGUSR1/SIGUSR2 store, in one word, the status asked for and a
// count of such signals; the loop acts when the count differs from the one it
// last saw, so no signal is lost between its read and its bookkeeping. SIGHUP
// is a flag the loop clears *before* re-reading the file, so a SIGHUP that
// lands during a reload causes one more reload, never none.

/// Count of SIGUSR1/SIGUSR2 << 8 | the status the last one asked for (1 + `Status::index`).
static WANT: AtomicU32 = AtomicU32::new(0);
/// The count in WANT that the loop last acted on (only the loop touches it).
static WANT_SEEN: AtomicU32 = AtomicU32::new(0);
/// Whether SIGHUP arrived since the loop last looked.
static HUP: AtomicBool = AtomicBool::new(false);
/// Whether SIGTERM or SIGINT arrived.
static STOP: AtomicBool = AtomicBool::new(false);
/// The write end of the self-pipe that wakes `poll`, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The ordering every atomic here uses (see above).
const R: Ordering = Ordering::Relaxed;

/// WANT's low byte for SIGUSR1 (`Up`).
const UP: u8 = 1 + crate::model::state::Status::Up as u8;
/// WANT's low byte for SIGUSR2 (`Down`).
const DOWN: u8 = 1 + crate::model::state::Status::Down as u8;

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work: atomic stores and one write(2).
    match sig {
        libc::SIGUSR1 | libc::SIGUSR2 => {
            let status = if sig == libc::SIGUSR1 { UP } else { DOWN };
            WANT.store((WANT.load(R) >> 8).wrapping_add(1) << 8 | status as u32, R);
        }
        libc::SIGHUP => HUP.store(true, R),
        _ => STOP.store(true, R),
    }
    let fd = WAKE_FD.load(R);
    if fd >= 0 {
        let bang = b"!".as_ptr() as c_long;
        // SAFETY: write(2) is async-signal-safe, and the raw call leaves
        // errno alone; the buffer is static and a full pipe (EAGAIN) is
        // fine: the loop is awake already.
        let _ = unsafe { call(libc::SYS_write, [fd as c_long, bang, 1, 0, 0, 0]) };
    }
}

/// What the signal handlers recorded since the last call.
#[derive(Default, Clone, Copy, Debug)]
pub struct Signals {
    /// The status asked for by SIGUSR1 (`Up`) or SIGUSR2 (`Down`), the last one delivered.
    pub status: Option<crate::model::state::Status>,
    /// Whether the state file must be re-read.
    pub reload: bool,
    /// Whether to shut down.
    pub stop: bool,
}

impl Signals {
    /// Tells whether any signal arrived.
    pub fn any(&self) -> bool {
        self.status.is_some() || self.reload || self.stop
    }
}

/// Takes what the handlers recorded, leaving nothing pending; costs no syscall.
pub fn take_signals() -> Signals {
    let want = WANT.load(R);
    let mut status = None;
    if want >> 8 != WANT_SEEN.load(R) {
        WANT_SEEN.store(want >> 8, R);
        status = match (want & 0xff) as u8 {
            UP => Some(crate::model::state::Status::Up),
            DOWN => Some(crate::model::state::Status::Down),
            _ => None,
        };
    }
    let reload = HUP.load(R);
    if reload {
        HUP.store(false, R);
    }
    Signals {
        status,
        reload,
        stop: STOP.load(R),
    }
}

/// Tells whether a handler recorded anything not yet taken; costs no syscall.
pub fn signals_pending() -> bool {
    WANT.load(R) >> 8 != WANT_SEEN.load(R) || HUP.load(R) || STOP.load(R)
}

/// Installs the handlers and returns the self-pipe's read end for `poll`.
///
/// SA_RESTART makes every other blocking call resume by itself, so the one
/// place that sees EINTR is `poll` below.
pub fn install_signals() -> Result<Fd, Errno> {
    let mut fds = [-1 as libc::c_int; 2];
    let flags = (libc::O_NONBLOCK | libc::O_CLOEXEC) as c_long;
    let p = fds.as_mut_ptr() as c_long;
    // SAFETY: the kernel writes two descriptors to `fds`, which outlives the call.
    unsafe { call(libc::SYS_pipe2, [p, flags, 0, 0, 0, 0]) }?;
    // The write end lives for the whole process: the handler may use it at any time.
    WAKE_FD.store(fds[1], R);
    let r = Fd::own(fds[0] as c_long);
    let ours = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGINT,
    ];
    // Each handler blocks all of ours while it runs, so handlers never nest.
    let mask = ours.iter().fold(0, |m, &sig| m | 1 << (sig - 1));
    for sig in ours {
        // SAFETY: the handler only touches atomics and calls write(2).
        unsafe { set_action(sig, on_signal as *const () as usize, libc::SA_RESTART, mask)? };
    }
    Ok(r)
}

/// Sets what `sig` does: `handler` (a function, or SIG_IGN) with `flags`,
/// blocking the signals of `mask` (bit n - 1 for signal n, n < 32) while it runs.
///
/// Straight to libc: nix's `SigSet` fills the mask through sigaddset.
///
/// # Safety
/// A handler must only do what is async-signal-safe.
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
unsafe fn set_action(
    sig: libc::c_int,
    handler: libc::sighandler_t,
    flags: libc::c_int,
    mask: libc::c_ulong,
) -> Result<(), Errno> {
    // SAFETY: sigaction is plain data; all zeroes is a valid value (an empty mask).
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: a sigset_t is an array of c_ulong whose first word holds
    // signals 1 to 32 as bits 0 to 31, as sigaddset sets them.
    unsafe {
        (&mut act.sa_mask as *mut libc::sigset_t)
            .cast::<libc::c_ulong>()
            .write(mask)
    };
    // SAFETY: `act` is a live sigaction; the caller vouches for the handler.
    Errno::result(unsafe { libc::sigaction(sig, &act, core::ptr::null_mut()) }).map(drop)
}

/// The kernel's `struct sigaction` on MIPS: flags, handler, a 128-signal mask.
#[cfg(target_arch = "mips")]
#[repr(C)]
struct KernelAction {
    flags: libc::c_uint,
    handler: libc::sighandler_t,
    mask: [libc::c_ulong; 4],
}

/// The kernel's `struct sigaction` on x86_64, aarch64 and ARM: handler,
/// flags, the code that returns from a handler, a 64-signal mask.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm"))]
#[repr(C)]
struct KernelAction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: Option<unsafe extern "C" fn()>,
    mask: [libc::c_ulong; 8 / core::mem::size_of::<libc::c_ulong>()],
}

// The code a handler returns to on x86_64 (the kernel wants one from user
// space): rt_sigreturn, as musl's own __restore_rt does.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.heft_restore_rt,\"ax\",@progbits",
    ".hidden heft_restore_rt",
    ".globl heft_restore_rt",
    "heft_restore_rt:",
    "mov eax, 15",
    "syscall",
    ".popsection",
);

/// Says that `KernelAction::restorer` is set (libc does not name it).
#[cfg(target_arch = "x86_64")]
const SA_RESTORER: libc::c_int = 0x0400_0000;

#[cfg(target_arch = "x86_64")]
unsafe extern "C" {
    /// Returns from a signal handler (above); never called from Rust.
    fn heft_restore_rt();
}

/// Sets what `sig` does, as above, with a raw rt_sigaction.
///
/// musl's sigaction (its lock against abort() and thread bookkeeping heft
/// has no use for) costs 1.5 KB on MIPS, 1.0 to 1.2 KB on ARM, 0.75 KB on x86_64.
///
/// # Safety
/// A handler must only do what is async-signal-safe.
#[cfg(any(
    target_arch = "mips",
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm"
))]
unsafe fn set_action(
    sig: libc::c_int,
    handler: libc::sighandler_t,
    flags: libc::c_int,
    mask: libc::c_ulong,
) -> Result<(), Errno> {
    #[cfg(target_arch = "mips")]
    let act = KernelAction {
        flags: flags as libc::c_uint,
        handler,
        mask: [mask, 0, 0, 0],
    };
    #[cfg(target_arch = "x86_64")]
    let act = KernelAction {
        handler,
        flags: (flags | SA_RESTORER) as libc::c_ulong,
        restorer: Some(heft_restore_rt),
        mask: [mask],
    };
    // Without SA_RESTORER the kernel returns through its own sigreturn code
    // (the restorer slot is still there: __ARCH_HAS_SA_RESTORER): on arm64
    // the vDSO's sigtramp (arch/arm64/kernel/signal.c, setup_return), on
    // 32-bit ARM the sigpage's ARM or Thumb sequence, as the handler's low
    // address bit says (arch/arm/kernel/signal.c, setup_return; on an arm64
    // kernel the compat sigpage, arch/arm64/kernel/signal32.c).
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    let act = {
        let mut act = KernelAction {
            handler,
            flags: flags as libc::c_ulong,
            restorer: None,
            mask: Default::default(),
        };
        act.mask[0] = mask;
        act
    };
    let size = core::mem::size_of_val(&act.mask) as c_long;
    let act = &act as *const KernelAction as c_long;
    // SAFETY: `act` points at a live kernel sigaction (no old one is asked
    // for); the caller vouches for the handler.
    unsafe { call(libc::SYS_rt_sigaction, [sig as c_long, act, 0, size, 0, 0]) }.map(drop)
}

/// Ignores SIGPIPE, as std's runtime would have: a write to a closed pipe
/// (stderr, stdout) fails with EPIPE instead of killing heft. Sockets are
/// written with MSG_NOSIGNAL anyway.
pub fn ignore_sigpipe() {
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { set_action(libc::SIGPIPE, libc::SIG_IGN, 0, 0) };
}

/// Empties the self-pipe after it woke `poll`.
pub fn drain_wake(fd: &Fd) {
    let mut buf = [0u8; 64];
    while let Ok(n) = read(fd, &mut buf) {
        if n < buf.len() {
            break;
        }
    }
}

/// Waits for events on `fds` for at most `timeout_ms` (-1: forever).
///
/// Returns the number of ready descriptors; a signal (EINTR) counts as a
/// wake-up with none ready. This is the one place EINTR is handled.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, Errno> {
    let (p, n) = (fds.as_mut_ptr() as c_long, fds.len() as c_long);
    // aarch64 has only ppoll, which takes a timespec (null: forever).
    #[cfg(target_arch = "aarch64")]
    let r = {
        let ts = [
            (timeout_ms / 1000) as i64,
            (timeout_ms % 1000) as i64 * 1_000_000,
        ];
        let t = if timeout_ms < 0 {
            0
        } else {
            ts.as_ptr() as c_long
        };
        // SAFETY: `fds` is a live, exclusively borrowed slice of `n`
        // pollfds, `ts` a live timespec; no signal mask (null) is given.
        unsafe { call(libc::SYS_ppoll, [p, n, t, 0, 0, 0]) }
    };
    #[cfg(not(target_arch = "aarch64"))]
    // SAFETY: `fds` is a live, exclusively borrowed slice of `n` pollfds.
    let r = unsafe { call(libc::SYS_poll, [p, n, timeout_ms as c_long, 0, 0, 0]) };
    match r {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Reads the monotonic clock in milliseconds, wrapping every 49 days.
///
/// Callers compare times with `wrapping_sub`, which keeps 32-bit targets free
/// of 64-bit arithmetic. Through the C library on architectures heft has no
/// assembly for.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "mips"
)))]
pub fn now_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ms(ts.tv_sec as u32, ts.tv_nsec as u32)
}

/// Turns a time in seconds and nanoseconds into wrapping milliseconds.
fn ms(sec: u32, nsec: u32) -> u32 {
    sec.wrapping_mul(1000).wrapping_add(nsec / 1_000_000)
}

/// Whether the kernel lacks `clock_gettime64` (Linux before 5.1; 32-bit targets only).
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "mips"
))]
static OLD_CLOCK: AtomicBool = AtomicBool::new(false);

/// Reads the monotonic clock in milliseconds, wrapping every 49 days.
///
/// A system call, not the vDSO: musl's clock_gettime looks the vDSO up by
/// name (and needs musl's start-up to find it) and, on 32-bit targets,
/// converts between time formats (aarch64 -1.2 KB, armv7 -1.4 KB, mipsel
/// -1.8 KB). The loop reads the clock once per wake-up, so a probe costs six
/// system calls. On 32-bit targets `clock_gettime64` comes first, as a
/// kernel may be built without the old call; the old one before Linux 5.1.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "mips"
))]
pub fn now_ms() -> u32 {
    /// The 64-bit `clock_gettime` (libc does not name it on 32-bit targets):
    /// 403, after MIPS o32's base of 4000.
    const CLOCK_GETTIME64: c_long = if cfg!(target_arch = "mips") {
        4000 + 403
    } else if cfg!(target_arch = "arm") {
        403
    } else {
        libc::SYS_clock_gettime
    };
    // After ENOSYS from clock_gettime64 (32-bit targets only), the old call.
    let old = cfg!(target_pointer_width = "32") && OLD_CLOCK.load(R);
    let nr = if old {
        libc::SYS_clock_gettime
    } else {
        CLOCK_GETTIME64
    };
    // Room for either timespec: two i64, or the old call's two i32.
    let mut ts = [0u32; 4];
    let (clock, p) = (libc::CLOCK_MONOTONIC as c_long, ts.as_mut_ptr() as c_long);
    let args = [clock, p, 0, 0, 0, 0];
    // SAFETY: the kernel writes one timespec, at most 16 bytes, to `ts`,
    // which outlives the call.
    let r = unsafe { call(nr, args) };
    if r.is_err() && cfg!(target_pointer_width = "32") && !old {
        OLD_CLOCK.store(true, R);
        return now_ms();
    }
    // The low words of the 64-bit seconds and nanoseconds, or the old pair.
    let (sec, nsec) = match (old, cfg!(target_endian = "little")) {
        (true, _) => (ts[0], ts[1]),
        (false, true) => (ts[0], ts[2]),
        (false, false) => (ts[1], ts[3]),
    };
    ms(sec, nsec)
}

/// Accepts one connection as a non-blocking, close-on-exec descriptor, with the peer's address.
pub fn accept(listener: &Fd) -> Result<(Fd, Option<IpAddr>), Errno> {
    // Room for a sockaddr_in6, the largest address a TCP listener sees.
    let mut a = RawAddr {
        bytes: [0; 28],
        len: 28,
    };
    let flags = (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as c_long;
    let (p, l) = (
        a.bytes.as_mut_ptr() as c_long,
        &mut a.len as *mut _ as c_long,
    );
    // SAFETY: `a.bytes` and `a.len` are live and describe a buffer of `a.len` bytes.
    let fd =
        Fd::own(unsafe { call(libc::SYS_accept4, [listener.0 as c_long, p, l, flags, 0, 0]) }?);
    let b = &a.bytes;
    let peer = match u16::from_ne_bytes([b[0], b[1]]) as libc::c_int {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))),
        libc::AF_INET6 => {
            let mut v6 = [0; 16];
            v6.copy_from_slice(&b[8..24]);
            Some(IpAddr::V6(Ipv6Addr::from(v6)))
        }
        _ => None,
    };
    Ok((fd, peer))
}

/// A socket address in the kernel's layout: `sockaddr_in` or `sockaddr_in6`.
#[repr(C, align(4))]
struct RawAddr {
    bytes: [u8; 28],
    len: libc::socklen_t,
}

/// Lays out `ip`:`port` as the kernel reads it (one builder instead of nix's
/// per-family address types in every caller).
fn raw_addr(ip: IpAddr, port: u16) -> RawAddr {
    let mut a = RawAddr {
        bytes: [0; 28],
        len: 16,
    };
    a.bytes[2..4].copy_from_slice(&port.to_be_bytes());
    match ip {
        IpAddr::V4(v4) => {
            a.bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            a.bytes[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            a.bytes[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            a.bytes[8..24].copy_from_slice(&v6.octets());
            a.len = 28;
        }
    }
    a
}

/// Opens a close-on-exec socket of `family` and `kind` (which may add SOCK_NONBLOCK).
///
/// A raw system call: musl's socket() carries a fallback for kernels without
/// SOCK_CLOEXEC (before 2.6.27; mipsel -240 B).
fn socket(family: libc::c_int, kind: libc::c_int) -> Result<Fd, Errno> {
    let kind = (kind | libc::SOCK_CLOEXEC) as c_long;
    // SAFETY: socket takes integers; a new descriptor is ours alone.
    unsafe { call(libc::SYS_socket, [family as c_long, kind, 0, 0, 0, 0]) }.map(Fd::own)
}

/// Opens a non-blocking, close-on-exec TCP socket for `ip`'s family.
pub fn tcp_socket(ip: IpAddr) -> Result<Fd, Errno> {
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK)
}

/// Binds `fd` to `ip`:`port`.
pub fn bind(fd: &Fd, ip: IpAddr, port: u16) -> Result<(), Errno> {
    addr_call(libc::SYS_bind, fd, raw_addr(ip, port))
}

/// Starts connecting `fd` to `ip`:`port`; `EINPROGRESS` while a non-blocking connect runs.
pub fn connect(fd: &Fd, ip: IpAddr, port: u16) -> Result<(), Errno> {
    addr_call(libc::SYS_connect, fd, raw_addr(ip, port))
}

/// Runs bind or connect (`nr`) on `fd` with the address `a`.
fn addr_call(nr: c_long, fd: &Fd, a: RawAddr) -> Result<(), Errno> {
    let (p, len) = (a.bytes.as_ptr() as c_long, a.len as c_long);
    // SAFETY: `a.bytes` holds a sockaddr of `a.len` bytes and outlives the call.
    unsafe { call(nr, [fd.0 as c_long, p, len, 0, 0, 0]) }.map(drop)
}

/// Sets an integer socket option.
///
/// A raw system call: on 32-bit targets musl's setsockopt and getsockopt
/// carry time64 conversions for options heft never uses (about 0.9 KB).
pub fn set_opt(fd: &Fd, level: i32, name: i32, value: i32) -> Result<(), Errno> {
    let (p, len) = (&value as *const i32 as c_long, 4);
    let args = [fd.0 as c_long, level as c_long, name as c_long, p, len, 0];
    // SAFETY: the kernel reads `len` (4) bytes at `&value`, which outlives the call.
    unsafe { call(libc::SYS_setsockopt, args) }.map(drop)
}

/// Takes the error a non-blocking connect ended with (`SO_ERROR`); `Ok` if it connected.
pub fn socket_error(fd: &Fd) -> Result<(), Errno> {
    let mut value: i32 = 0;
    let mut len = core::mem::size_of::<i32>() as libc::socklen_t;
    let (v, l) = (
        &mut value as *mut i32 as c_long,
        &mut len as *mut _ as c_long,
    );
    let (level, name) = (libc::SOL_SOCKET as c_long, libc::SO_ERROR as c_long);
    // SAFETY: the kernel writes at most `len` bytes to `value` and the length
    // to `len`, both alive for the call.
    unsafe { call(libc::SYS_getsockopt, [fd.0 as c_long, level, name, v, l, 0]) }?;
    match value {
        0 => Ok(()),
        e => Err(Errno::from_raw(e)),
    }
}

/// Sends bytes without raising SIGPIPE; returns how many were taken.
pub fn send(fd: &Fd, buf: &[u8]) -> Result<usize, Errno> {
    let (p, n) = (buf.as_ptr() as c_long, buf.len() as c_long);
    let flags = libc::MSG_NOSIGNAL as c_long;
    // SAFETY: the kernel reads `n` bytes at `p`, a live slice; no address (null).
    unsafe { call(libc::SYS_sendto, [fd.0 as c_long, p, n, flags, 0, 0]) }.map(|k| k as usize)
}

/// Reads what has arrived; 0 means the peer closed.
pub fn recv(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    let (p, n) = (buf.as_mut_ptr() as c_long, buf.len() as c_long);
    let flags = libc::MSG_DONTWAIT as c_long;
    // SAFETY: the kernel writes at most `n` bytes at `p`, a live slice; no address (null).
    unsafe { call(libc::SYS_recvfrom, [fd.0 as c_long, p, n, flags, 0, 0]) }.map(|k| k as usize)
}

/// Reads from `fd` into `buf`; returns how many bytes came, 0 at the end.
pub fn read(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    let (p, n) = (buf.as_mut_ptr() as c_long, buf.len() as c_long);
    // SAFETY: the kernel writes at most `n` bytes at `p`, a live slice.
    unsafe { call(libc::SYS_read, [fd.0 as c_long, p, n, 0, 0, 0]) }.map(|k| k as usize)
}

/// Writes from `buf` to the descriptor `fd`; returns how many bytes were taken.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    let (p, n) = (buf.as_ptr() as c_long, buf.len() as c_long);
    // SAFETY: the kernel reads `n` bytes at `p`, a live slice.
    unsafe { call(libc::SYS_write, [fd as c_long, p, n, 0, 0, 0]) }.map(|k| k as usize)
}

/// Flushes what was written to `fd` to the disk.
pub fn fsync(fd: &Fd) -> Result<(), Errno> {
    // SAFETY: fsync takes a descriptor.
    unsafe { call(libc::SYS_fsync, [fd.0 as c_long, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Closes the write side, so the peer sees the end of the reply.
pub fn shutdown_write(fd: &Fd) -> Result<(), Errno> {
    let how = libc::SHUT_WR as c_long;
    // SAFETY: shutdown takes a descriptor and an integer.
    unsafe { call(libc::SYS_shutdown, [fd.0 as c_long, how, 0, 0, 0, 0]) }.map(drop)
}

/// Starts listening on `fd`, with room for `backlog` connections not yet accepted.
pub fn listen(fd: &Fd, backlog: i32) -> Result<(), Errno> {
    // SAFETY: listen takes a descriptor and an integer.
    unsafe {
        call(
            libc::SYS_listen,
            [fd.0 as c_long, backlog as c_long, 0, 0, 0, 0],
        )
    }
    .map(drop)
}

/// Sends `sig` to process `pid`.
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill takes integers.
    unsafe { call(libc::SYS_kill, [pid as c_long, sig as c_long, 0, 0, 0, 0]) }.map(drop)
}

/// Returns this process's id.
pub fn pid() -> u32 {
    // SAFETY: getpid takes nothing and cannot fail.
    unsafe { heft_syscall(libc::SYS_getpid, 0, 0, 0, 0, 0, 0) as u32 }
}

/// Returns this process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { heft_syscall(id_calls::GETEUID, 0, 0, 0, 0, 0, 0) as u32 }
}

/// Opens `path` with `flags` (close-on-exec added) and, for a new file, `mode`.
///
/// A raw openat: musl's open adds an fcntl for kernels that ignore
/// O_CLOEXEC (before 2.6.23). O_LARGEFILE as musl adds it.
pub fn open(path: &core::ffi::CStr, flags: libc::c_int, mode: libc::c_uint) -> Result<Fd, Errno> {
    let flags = (flags | libc::O_CLOEXEC | libc::O_LARGEFILE) as c_long;
    // SAFETY: openat takes a flag and a mode, integers.
    unsafe { path_call(libc::SYS_openat, path, flags, mode as c_long) }.map(Fd::own)
}

/// Runs a system call on a path relative to the working directory, as
/// `nr(AT_FDCWD, path, b, c)`.
///
/// # Safety
/// `b` and `c` must be what call `nr` takes there: integers, or pointers to
/// live NUL-terminated paths.
unsafe fn path_call(
    nr: c_long,
    path: &core::ffi::CStr,
    b: c_long,
    c: c_long,
) -> Result<c_long, Errno> {
    let (at, p) = (libc::AT_FDCWD as c_long, path.as_ptr() as c_long);
    // SAFETY: `path` outlives the call; the caller vouches for `b` and `c`.
    unsafe { call(nr, [at, p, b, c, 0, 0]) }
}

/// Renames `from` over `to` (raw renameat: no libc and nix wrappers).
pub fn rename(from: &core::ffi::CStr, to: &core::ffi::CStr) -> Result<(), Errno> {
    let to = to.as_ptr() as libc::c_long;
    // SAFETY: renameat takes another directory and a path, here the working one and `to`.
    unsafe { path_call(libc::SYS_renameat, from, libc::AT_FDCWD as c_long, to) }.map(drop)
}

/// Removes the file at `path` (raw unlinkat).
pub fn unlink(path: &core::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: unlinkat takes integer flags, 0 here; the fourth argument is unused.
    unsafe { path_call(libc::SYS_unlinkat, path, 0, 0) }.map(drop)
}

/// Tells whether this process may write at `path` (raw faccessat).
pub fn writable(path: &core::ffi::CStr) -> bool {
    // SAFETY: faccessat takes an integer mode; the fourth argument is unused.
    unsafe { path_call(libc::SYS_faccessat, path, libc::W_OK as c_long, 0) }.is_ok()
}

/// The start of the kernel's `struct statx`, the same on every architecture
/// (the call needs room for all 256 bytes).
#[repr(C)]
struct Statx {
    mask: u32,
    blksize: u32,
    attributes: u64,
    nlink: u32,
    uid: u32,
    gid: u32,
    mode: u16,
    rest: [u16; 113],
}

/// Returns the permission bits, owner and group of the file at `path` (raw statx).
///
/// musl's stat converts the kernel's per-architecture struct (mipsel 1.2 KB);
/// statx's layout is one for all. Linux before 4.11 has no statx: ENOSYS.
pub fn mode_and_owner(path: &core::ffi::CStr) -> Result<(u32, u32, u32), Errno> {
    /// Asks for the file type and mode, owner and group.
    const WANT: libc::c_uint =
        libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_UID | libc::STATX_GID;
    let mut st = core::mem::MaybeUninit::<Statx>::uninit();
    let (at, p) = (libc::AT_FDCWD as c_long, path.as_ptr() as c_long);
    let args = [at, p, 0, WANT as c_long, st.as_mut_ptr() as c_long, 0];
    // SAFETY: statx takes a path that outlives the call, flags (0: follow
    // links, as stat does), the mask wanted and a 256-byte buffer, `st`,
    // which outlives the call.
    unsafe { call(libc::SYS_statx, args) }?;
    let st = st.as_ptr();
    // SAFETY: a successful statx has written the mode, owner and group (it
    // always fills them), and `st` points at the live buffer.
    let (mode, uid, gid) = unsafe { ((*st).mode, (*st).uid, (*st).gid) };
    Ok((mode as u32 & 0o7777, uid, gid))
}

/// Sets the permission bits of the file open at `fd` (raw fchmod).
pub fn fchmod(fd: &Fd, mode: u32) {
    // SAFETY: fchmod takes a descriptor and an integer.
    let _ = unsafe {
        call(
            libc::SYS_fchmod,
            [fd.0 as c_long, mode as c_long, 0, 0, 0, 0],
        )
    };
}

/// Sets the owner and group of the file open at `fd` (raw fchown: musl's
/// falls back to a /proc path, 650 B with fchmod's).
pub fn fchown(fd: &Fd, uid: u32, gid: u32) {
    let args = [fd.0 as c_long, uid as c_long, gid as c_long, 0, 0, 0];
    // SAFETY: fchown takes a descriptor and integers.
    let _ = unsafe { call(id_calls::FCHOWN, args) };
}

/// Writes a log line to `fd` in one call, ignoring failures (there is nowhere to report them).
pub fn log_write(fd: RawFd, buf: &[u8]) {
    let _ = write(fd, buf);
}

/// The id system calls that take 32-bit ids: ARM's original calls take 16-bit ones.
#[cfg(target_arch = "arm")]
mod id_calls {
    pub use libc::{
        SYS_fchown32 as FCHOWN, SYS_geteuid32 as GETEUID, SYS_setgroups32 as SETGROUPS,
        SYS_setresgid32 as SETRESGID, SYS_setresuid32 as SETRESUID, SYS_setuid32 as SETUID,
    };
}
/// The id system calls; on every other target they take 32-bit ids.
#[cfg(not(target_arch = "arm"))]
mod id_calls {
    pub use libc::{
        SYS_fchown as FCHOWN, SYS_geteuid as GETEUID, SYS_setgroups as SETGROUPS,
        SYS_setresgid as SETRESGID, SYS_setresuid as SETRESUID, SYS_setuid as SETUID,
    };
}

/// Runs an id-changing system call on this thread only.
///
/// musl's set*id functions stop every thread and repeat the call in each
/// (about 2 KB of code for its thread broadcast); heft has one thread, where
/// the raw system call has the same effect.
fn id_call(nr: c_long, a: c_long, b: c_long, c: c_long) -> Result<(), Errno> {
    // SAFETY: the id calls take integers, and a null list with length 0 for
    // setgroups; they touch no memory of ours.
    unsafe { call(nr, [a, b, c, 0, 0, 0]) }.map(drop)
}

/// Clears the supplementary groups.
pub fn clear_groups() -> Result<(), Errno> {
    id_call(id_calls::SETGROUPS, 0, 0, 0)
}

/// Sets the real, effective and saved group id.
pub fn set_gid(g: u32) -> Result<(), Errno> {
    let g = g as c_long;
    id_call(id_calls::SETRESGID, g, g, g)
}

/// Sets the real, effective and saved user id.
pub fn set_uid(u: u32) -> Result<(), Errno> {
    let u = u as c_long;
    id_call(id_calls::SETRESUID, u, u, u)
}

/// Tells whether this process can still become root (it must not, after a drop).
pub fn can_become_root() -> bool {
    id_call(id_calls::SETUID, 0, 0, 0).is_ok()
}

/// The environment heft was started with (`envp`): a null-terminated array
/// of `NAME=value` strings, or null before `start`.
static ENVIRON: core::sync::atomic::AtomicPtr<*const libc::c_char> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Looks a variable up in the environment heft was started with.
///
/// Read straight from `envp`: std's lookup takes a lock and copies the name
/// into a C string, and libc's getenv adds strchrnul; heft only reads the
/// environment while starting, and nothing in it sets variables.
pub fn env_var(name: &str) -> Option<&'static [u8]> {
    let mut p = ENVIRON.load(R) as *const *const libc::c_char;
    while !p.is_null() {
        // SAFETY: `p` points into the null-terminated `envp` array.
        let entry = unsafe { *p };
        if entry.is_null() {
            break;
        }
        // SAFETY: each entry is a NUL-terminated string that lives as long as the process.
        let bytes = unsafe { core::ffi::CStr::from_ptr(entry) }.to_bytes();
        if let Some(value) = bytes
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
        {
            return Some(value);
        }
        // SAFETY: the array ends with a null entry, checked above before moving on.
        p = unsafe { p.add(1) };
    }
    None
}

/// Keeps `envp` for `env_var` and yields the program's arguments, after its
/// name, straight from `argv`.
///
/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings and `envp` be
/// a null-terminated array of them, all living as long as the process, as
/// `_start` passes them to `main`.
pub unsafe fn start(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> impl Iterator<Item = &'static [u8]> {
    ENVIRON.store(envp as *mut _, R);
    (1..argc.max(1) as usize).map(move |i| {
        // SAFETY: i < argc, and each of the first argc entries is a valid C
        // string that lives as long as the process (the caller's promise).
        unsafe { core::ffi::CStr::from_ptr(*argv.add(i)) }.to_bytes()
    })
}

/// Views bytes as a `str` if they are all ASCII, without core's UTF-8
/// validator (0.5 to 1 KB): every text heft keeps is checked to be ASCII.
/// A byte loop: `is_ascii`'s word-at-a-time one costs 160 B more, and the
/// texts are short.
pub fn ascii_str(b: &[u8]) -> Option<&str> {
    if !b.iter().all(|&c| c < 0x80) {
        return None;
    }
    // SAFETY: every byte is ASCII, and ASCII text is valid UTF-8.
    Some(unsafe { core::str::from_utf8_unchecked(b) })
}

/// Writes all of `buf` to standard output; false if it could not.
pub fn write_stdout(buf: &[u8]) -> bool {
    crate::os::file::write_all(1, buf).is_ok()
}

/// Connects a datagram socket to the syslog socket at `path` and sends every later log line there.
pub fn connect_syslog(path: &std::path::Path) -> Result<(), Errno> {
    let fd = socket(libc::AF_UNIX, libc::SOCK_DGRAM)?;
    // The address by hand (nix's `UnixAddr` wants a C string copy first).
    // Paths come from argv or environ, which hold no NUL.
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    let b = path.as_os_str().as_bytes();
    if b.len() >= a.sun_path.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &c) in a.sun_path.iter_mut().zip(b) {
        *d = c as libc::c_char;
    }
    let len = (core::mem::offset_of!(libc::sockaddr_un, sun_path) + b.len()) as c_long;
    let p = &a as *const libc::sockaddr_un as c_long;
    // SAFETY: `a` is a live sockaddr_un whose first `len` bytes are the address.
    unsafe { call(libc::SYS_connect, [fd.0 as c_long, p, len, 0, 0, 0]) }?;
    crate::log::use_syslog(fd.0, pid() as i32);
    // The socket lives as long as the process: every log line may use it.
    core::mem::forget(fd);
    Ok(())
}

/// The heap of the `heft` binary: a bump allocator over a static arena, with
/// large blocks mapped straight from the kernel. Nothing is ever freed.
///
/// heft allocates only while starting (argument strings, the connection
/// table, the feedback rules) and never while serving, so a general-purpose
/// `malloc` (about 3 KB in a static build) has nothing to do. Each allocation
/// is counted, and `/metrics` shows the count, so a test can prove it stays
/// constant after start-up. One thread, and handlers never allocate, so plain
/// loads and stores suffice. Install it with `#[global_allocator]` in a binary;
/// the library's tests and fuzzers keep the system allocator.
pub struct Arena;

/// Bytes of the arena: start-up's small allocations fit many times over.
const ARENA_BYTES: usize = 64 * 1024;
/// Blocks at least this large are mapped on their own.
const MAP_BYTES: usize = 8 * 1024;

/// The arena's bytes, shareable as a static.
struct ArenaBytes(core::cell::UnsafeCell<[u8; ARENA_BYTES]>);
// SAFETY: only the one thread that runs heft touches the arena (see `Arena`).
unsafe impl Sync for ArenaBytes {}
/// The arena itself, in a section of its own so that the MIPS link can put
/// it after every small variable (cross/mips.ld).
#[link_section = ".bss.heft_arena"]
static ARENA: ArenaBytes = ArenaBytes(core::cell::UnsafeCell::new([0; ARENA_BYTES]));
/// Bytes of the arena handed out so far.
static ARENA_USED: AtomicU32 = AtomicU32::new(0);
/// Allocations made so far.
static ALLOCATIONS: AtomicU32 = AtomicU32::new(0);

/// Counts the heap allocations made since the process started.
pub fn allocations() -> u32 {
    ALLOCATIONS.load(R)
}

// SAFETY: `alloc` returns either null or a block of `layout.size()` bytes
// aligned to `layout.align()` that no other call returns: arena blocks never
// overlap (the cursor only moves forward) and mapped blocks are fresh pages.
unsafe impl core::alloc::GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.store(ALLOCATIONS.load(R).wrapping_add(1), R);
        let used = ARENA_USED.load(R) as usize;
        // Aligned as an address, not as an offset: the arena's own address is
        // only byte-aligned.
        let base = ARENA.0.get() as usize;
        let start = ((base + used + layout.align() - 1) & !(layout.align() - 1)) - base;
        if layout.size() < MAP_BYTES && start + layout.size() <= ARENA_BYTES {
            ARENA_USED.store((start + layout.size()) as u32, R);
            // SAFETY: `start + size` is within the arena, checked above.
            return unsafe { ARENA.0.get().cast::<u8>().add(start) };
        }
        if layout.align() > 4096 {
            return core::ptr::null_mut();
        }
        // A raw system call: musl's mmap checks for cases heft never makes
        // (x86_64 -176 B, mipsel -368 B). 32-bit targets map with mmap2, whose offset is in
        // pages; it is 0 here either way.
        #[cfg(target_pointer_width = "64")]
        const MMAP: c_long = libc::SYS_mmap;
        #[cfg(target_pointer_width = "32")]
        const MMAP: c_long = libc::SYS_mmap2;
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as c_long;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as c_long;
        // SAFETY: an anonymous private mapping touches no existing memory.
        let p = unsafe { call(MMAP, [0, layout.size() as c_long, prot, flags, -1, 0]) };
        p.map_or(core::ptr::null_mut(), |p| p as *mut u8)
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
}

/// Names the errors heft reports, without pulling in the whole strerror table.
///
/// Codes as `u16` (every errno fits) and one string of names: smaller than a
/// `match`, which costs a compare and two loads per name (x86_64 -144 B,
/// mipsel -352 B).
pub fn errno_name(e: Errno) -> &'static str {
    use Errno::*;
    const CODES: [u16; 23] = [
        EACCES as u16,
        EPERM as u16,
        ENOENT as u16,
        ENOTDIR as u16,
        EISDIR as u16,
        EROFS as u16,
        ENOSPC as u16,
        EDQUOT as u16,
        EIO as u16,
        EADDRINUSE as u16,
        EADDRNOTAVAIL as u16,
        EAFNOSUPPORT as u16,
        EMFILE as u16,
        ENFILE as u16,
        ENOMEM as u16,
        ENOBUFS as u16,
        ECONNREFUSED as u16,
        ECONNRESET as u16,
        ECONNABORTED as u16,
        EPIPE as u16,
        ETIMEDOUT as u16,
        ESRCH as u16,
        EINVAL as u16,
    ];
    const NAMES: &str = "EACCES EPERM ENOENT ENOTDIR EISDIR EROFS ENOSPC EDQUOT EIO EADDRINUSE \
        EADDRNOTAVAIL EAFNOSUPPORT EMFILE ENFILE ENOMEM ENOBUFS ECONNREFUSED ECONNRESET \
        ECONNABORTED EPIPE ETIMEDOUT ESRCH EINVAL";
    let Some(mut i) = CODES.iter().position(|&c| c == e as u16) else {
        return "errno";
    };
    let mut names = NAMES.as_bytes();
    loop {
        let end = names.iter().position(|&c| c == b' ').unwrap_or(names.len());
        if i == 0 {
            return ascii_str(&names[..end]).unwrap_or("errno");
        }
        i -= 1;
        names = &names[end + 1..];
    }
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
                "errno" => {}
                name => {
                    assert_eq!(name, format!("{e:?}"));
                    named += 1;
                }
            }
        }
        assert_eq!(named, 23);
    }
}
