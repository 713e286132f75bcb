//! The monotonic clock.

use nix::time::{clock_gettime, ClockId};

/// Reads the monotonic clock in milliseconds, wrapping every 49 days.
///
/// Callers compare times with `wrapping_sub`, which keeps 32-bit targets free
/// of 64-bit arithmetic. musl serves CLOCK_MONOTONIC from the vDSO where the
/// kernel has one, so reading the clock costs no system call there.
pub fn now_ms() -> u32 {
    // CLOCK_MONOTONIC exists on every Linux heft runs on; the call cannot fail.
    let Ok(ts) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        return 0;
    };
    (ts.tv_sec() as u32)
        .wrapping_mul(1000)
        .wrapping_add(ts.tv_nsec() as u32 / 1_000_000)
}
