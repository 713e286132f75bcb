//! The monotonic clock.

use nix::time::{clock_gettime, ClockId};

use crate::time::Instant;

/// Reads the monotonic clock, in milliseconds that wrap every 49.7 days.
///
/// musl serves CLOCK_MONOTONIC from the vDSO where the kernel has one, so
/// reading the clock costs no system call there.
pub fn now() -> Instant {
    // CLOCK_MONOTONIC exists on every Linux heft runs on; the call cannot fail.
    let Ok(ts) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        return Instant::default();
    };
    let ms = (ts.tv_sec() as u32)
        .wrapping_mul(1000)
        .wrapping_add(ts.tv_nsec() as u32 / 1_000_000);
    Instant::from_ms(ms)
}
