//! Instants on heft's millisecond clock, and the only arithmetic on them.
//!
//! The clock is a `u32` of milliseconds, so it wraps every 49.7 days; 32-bit
//! targets stay free of 64-bit arithmetic. Spans are plain `u32`
//! milliseconds. Two instants are ordered by their wrapping difference read
//! as signed, as TCP orders sequence numbers: right whenever they are less
//! than 24.8 days apart, which every deadline and timestamp heft keeps is.
//! Nothing outside this module subtracts or compares raw clock values.
//!
//! There is deliberately no `Ord`: across the wrap the order is not total.

use core::ops::Add;

/// A point in time, in milliseconds of the monotonic clock (wrapping).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Instant(u32);

impl Instant {
    /// Makes the instant `ms` milliseconds after the clock's (wrapping) zero.
    pub const fn from_ms(ms: u32) -> Instant {
        Instant(ms)
    }

    /// Returns the milliseconds from `earlier` to `self` (wrapping: `self` must not be before it).
    pub fn since(self, earlier: Instant) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// Tells whether `self` comes strictly before `other`.
    pub fn is_before(self, other: Instant) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// Tells whether `deadline` has come at `self` (it is now or earlier).
    pub fn reached(self, deadline: Instant) -> bool {
        !self.is_before(deadline)
    }

    /// Returns the milliseconds from `self` to `deadline`, 0 if it has come; at most `i32::MAX`.
    pub fn until(self, deadline: Instant) -> u32 {
        (deadline.0.wrapping_sub(self.0) as i32).max(0) as u32
    }
}

/// `instant + ms`: the instant `ms` milliseconds later.
impl Add<u32> for Instant {
    type Output = Instant;

    fn add(self, ms: u32) -> Instant {
        Instant(self.0.wrapping_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Just before the wrap, and a few milliseconds after it.
    const LATE: Instant = Instant::from_ms(u32::MAX - 4);
    const EARLY: Instant = Instant::from_ms(5);

    #[test]
    fn adds_across_the_wrap() {
        assert_eq!(LATE + 10, EARLY);
        assert_eq!(LATE + 0, LATE);
    }

    #[test]
    fn measures_across_the_wrap() {
        assert_eq!(EARLY.since(LATE), 10);
        assert_eq!(LATE.since(LATE), 0);
        assert_eq!((LATE + 1000).since(LATE), 1000);
    }

    #[test]
    fn orders_across_the_wrap() {
        assert!(LATE.is_before(EARLY));
        assert!(!EARLY.is_before(LATE));
        assert!(!LATE.is_before(LATE));
        // Up to 24.8 days apart, either way round.
        let far = LATE + (i32::MAX as u32);
        assert!(LATE.is_before(far));
        assert!(!far.is_before(LATE));
    }

    #[test]
    fn reaches_deadlines_across_the_wrap() {
        assert!(!LATE.reached(EARLY));
        assert!(EARLY.reached(LATE));
        assert!(EARLY.reached(EARLY));
        assert!((LATE + 9).reached(LATE + 9));
        assert!(!(LATE + 8).reached(LATE + 9));
    }

    #[test]
    fn waits_until_deadlines_across_the_wrap() {
        assert_eq!(LATE.until(EARLY), 10);
        assert_eq!(EARLY.until(LATE), 0);
        assert_eq!(EARLY.until(EARLY), 0);
        assert_eq!(LATE.until(LATE + (i32::MAX as u32)), i32::MAX as u32);
    }
}
