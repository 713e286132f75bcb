//! Turns a metric value into a weight percentage and smooths values, in integer maths.
//!
//! The curves are Haproxy.AgentCheck's: 100% (the maximum weight M) at or
//! below the lower bound x0, the minimum weight m at the limit x1, and between
//! them either a straight line or the first-order response
//! `w(x) = (M−m+1)·e^(−k·t) + m − 1` with `t = (x−x0)/(x1−x0)` and
//! `k = ln(M−m+1)`, which is the same as `(M−m+1)^(1−t) + m − 1`. That power
//! is computed as `2^((1−t)·log2(M−m+1))` from a 65-entry table of `2^(i/64)`
//! that the compiler evaluates, so no float code reaches the binary.

/// The largest metric value kept; larger values are clamped to it.
pub const VALUE_MAX: u32 = 10_000_000;

/// One in the Q10 fixed point used for the position between the bounds.
const T_ONE: u32 = 1024;

/// Computes e^y by its Taylor series; only ever evaluated by the compiler.
const fn exp_const(y: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut n = 1;
    while n < 40 {
        term = term * y / n as f64;
        sum += term;
        n += 1;
    }
    sum
}

/// 2^(i/64) in Q16, for i in 0..=64.
const EXP2: [u32; 65] = {
    let mut t = [0u32; 65];
    let mut i = 0;
    while i <= 64 {
        let v = exp_const(i as f64 / 64.0 * core::f64::consts::LN_2);
        t[i] = (v * 65536.0 + 0.5) as u32;
        i += 1;
    }
    t
};

/// log2(e) in Q16.
const LOG2_E_Q16: u32 = 94548;

/// Raises 2 to `y` (Q16, below 15.0) and returns the result in Q16.
///
/// Inlined: a call in `RuleState::say` made it save every callee-saved register.
#[inline(always)]
pub fn exp2_q16(y: u32) -> u32 {
    let int = y >> 16;
    let frac = y & 0xffff;
    let idx = (frac >> 10) as usize;
    let rem = frac & 1023;
    let lo = EXP2[idx];
    let hi = EXP2[idx + 1];
    (lo + (((hi - lo) * rem + 512) >> 10)) << int
}

/// Takes log2 of `r` (1 to 65535) and returns it in Q16.
pub fn log2_q16(r: u32) -> u32 {
    if r == 0 {
        return 0;
    }
    let n = 31 - r.leading_zeros();
    // x in Q15 within [1, 2): squaring it stays below 2^32.
    let mut x = (r << 15) >> n;
    let mut out = n << 16;
    let mut bit = 1u32 << 15;
    while bit != 0 {
        x = (x * x) >> 15;
        if x >= 2 << 15 {
            x >>= 1;
            out |= bit;
        }
        bit >>= 1;
    }
    out
}

/// How weight falls between the bounds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// A straight line from the maximum weight to the minimum.
    Linear,
    /// Haproxy.AgentCheck's first-order response: steep at first, flat near the limit.
    FirstOrder,
}

/// A weight curve with its bounds and weights, ready to evaluate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Curve {
    /// How weight falls between the bounds.
    shape: Shape,
    /// The value at or below which the weight is the maximum.
    low: u32,
    /// The value at or above which the weight is the minimum.
    limit: u32,
    /// The minimum weight (%).
    min: u8,
    /// The maximum weight (%).
    max: u8,
    /// log2(max − min + 1) in Q16, for the first-order shape.
    log2r: u32,
}

impl Curve {
    /// Prepares a curve; `low < limit` and `min <= max <= 100` are the caller's to check.
    pub fn new(shape: Shape, low: u32, limit: u32, min: u8, max: u8) -> Curve {
        Curve {
            shape,
            low,
            limit: limit.max(low + 1),
            min: min.min(max),
            max,
            log2r: log2_q16((max - min.min(max)) as u32 + 1),
        }
    }

    /// Returns the minimum weight this curve gives.
    pub fn min(&self) -> u8 {
        self.min
    }

    /// Maps a value to a weight percentage between the minimum and the maximum.
    pub fn weight(&self, x: u32) -> u8 {
        let t = self.position(x);
        let (min, max) = (self.min as u32, self.max as u32);
        let w = match self.shape {
            Shape::Linear => max - (((max - min) * t + T_ONE / 2) / T_ONE),
            Shape::FirstOrder => {
                let y = ((T_ONE - t) * self.log2r) / T_ONE;
                ((exp2_q16(y) + 0x8000) >> 16) + min - 1
            }
        };
        w.clamp(min, max) as u8
    }

    /// Places `x` between the bounds as 0 to 1024.
    fn position(&self, x: u32) -> u32 {
        if x <= self.low {
            return 0;
        }
        if x >= self.limit {
            return T_ONE;
        }
        let (mut d, mut span) = (x - self.low, self.limit - self.low);
        while span >= 1 << 22 {
            d >>= 1;
            span >>= 1;
        }
        d * T_ONE / span
    }
}

/// Returns the EMA weight (Q8, 1 to 256) of a new sample `dt_ms` after the last, for time constant `tau_ms`.
///
/// This is `1 − e^(−dt/τ)`, so the smoothed value covers 63% of a step after τ.
pub fn ema_alpha(dt_ms: u32, tau_ms: u32) -> u32 {
    if tau_ms == 0 || dt_ms >= tau_ms.saturating_mul(12) {
        return 256;
    }
    // Both below 2^22, so d·T_ONE fits in 32 bits; the ratio is what counts.
    let (mut d, mut t) = (dt_ms, tau_ms);
    while d.max(t) >= 1 << 22 {
        d >>= 1;
        t >>= 1;
    }
    let r = d * T_ONE / t.max(1); // dt/τ in Q10, below 12.0
    let z = (r * LOG2_E_Q16) >> 10; // dt/τ·log2(e) in Q16
    let (int, frac) = (z >> 16, z & 0xffff);
    // e^(−r) = 2^(−int) · 2^(1−frac) / 2
    let e = (exp2_q16(0x10000 - frac) >> 1) >> int;
    (256 - (e >> 8)).clamp(1, 256)
}

/// A value smoothed by an exponential moving average, kept in Q6.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ema {
    /// The smoothed value in Q6; `None` before the first sample.
    q6: Option<i32>,
}

impl Ema {
    /// Folds in sample `x` with weight `alpha` (Q8) and returns the smoothed value.
    pub fn update(&mut self, x: u32, alpha: u32) -> u32 {
        let x6 = (x.min(VALUE_MAX) as i32) << 6;
        let s = match self.q6 {
            None => x6,
            Some(prev) => {
                let delta = x6 - prev;
                // delta·alpha/256 without overflowing 32 bits.
                let a = alpha as i32;
                prev + (delta >> 8) * a + (((delta & 255) * a) >> 8)
            }
        };
        self.q6 = Some(s);
        ((s.max(0) + 32) >> 6) as u32
    }

    /// Forgets the history.
    pub fn reset(&mut self) {
        self.q6 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_table_is_exact_enough() {
        assert_eq!(EXP2[0], 65536);
        assert_eq!(EXP2[64], 131072);
        assert_eq!(EXP2[32], 92682); // sqrt(2)·65536 = 92681.9
        assert_eq!(exp2_q16(3 << 16), 8 << 16);
        assert_eq!(log2_q16(1), 0);
        assert_eq!(log2_q16(2), 1 << 16);
        assert_eq!(log2_q16(256), 8 << 16);
        // log2(100) = 6.643856 → 435412 in Q16
        assert!((log2_q16(100) as i32 - 435412).abs() <= 2);
    }

    #[test]
    fn linear_ends_midpoint_and_clamping() {
        let c = Curve::new(Shape::Linear, 0, 90, 1, 100);
        assert_eq!(c.weight(0), 100);
        assert_eq!(c.weight(90), 1);
        assert_eq!(c.weight(45), 50); // 100 − 99/2 = 50.5, rounded down
        assert_eq!(c.weight(1000), 1);
        let c = Curve::new(Shape::Linear, 50, 90, 10, 80);
        assert_eq!(c.weight(0), 80);
        assert_eq!(c.weight(50), 80);
        assert_eq!(c.weight(70), 45);
        assert_eq!(c.weight(90), 10);
        assert_eq!(c.weight(u32::MAX), 10);
    }

    #[test]
    fn first_order_ends_midpoint_and_clamping() {
        let c = Curve::new(Shape::FirstOrder, 0, 100, 1, 100);
        assert_eq!(c.weight(0), 100);
        assert_eq!(c.weight(100), 1);
        // (M−m+1)^(1/2) + m − 1 = sqrt(100) = 10
        assert_eq!(c.weight(50), 10);
        // t = 0.25: 100^0.75 = 31.6
        assert_eq!(c.weight(25), 32);
        assert_eq!(c.weight(500), 1);
        let c = Curve::new(Shape::FirstOrder, 20, 60, 5, 100);
        assert_eq!(c.weight(10), 100);
        assert_eq!(c.weight(60), 5);
        // sqrt(96) + 4 = 13.8
        assert_eq!(c.weight(40), 14);
    }

    #[test]
    fn curves_fall_monotonically_and_keep_the_floor() {
        for shape in [Shape::Linear, Shape::FirstOrder] {
            let c = Curve::new(shape, 10, 1000, 1, 100);
            let mut last = 100;
            for x in 0..1100 {
                let w = c.weight(x);
                assert!(w <= last, "{shape:?} rises at {x}");
                assert!(w >= 1, "{shape:?} below the 1% floor at {x}");
                last = w;
            }
            assert_eq!(last, 1);
        }
        // min == max: flat.
        let c = Curve::new(Shape::FirstOrder, 0, 10, 40, 40);
        assert_eq!((c.weight(0), c.weight(5), c.weight(10)), (40, 40, 40));
        // A zero minimum is allowed and reached.
        let c = Curve::new(Shape::Linear, 0, 10, 0, 100);
        assert_eq!(c.weight(10), 0);
        // Huge bounds do not overflow.
        let c = Curve::new(Shape::Linear, 0, VALUE_MAX, 1, 100);
        assert_eq!(c.weight(VALUE_MAX / 2), 50);
    }

    #[test]
    fn alpha_follows_one_minus_exp() {
        assert_eq!(ema_alpha(2000, 0), 256);
        // 1 − e^−1 = 0.632 → 162
        assert!((ema_alpha(1000, 1000) as i32 - 162).abs() <= 1);
        // 1 − e^−0.2 = 0.181 → 46
        assert!((ema_alpha(2000, 10000) as i32 - 46).abs() <= 1);
        assert_eq!(ema_alpha(1, 1_000_000), 1);
        assert_eq!(ema_alpha(100_000, 1000), 256);
        // Long gaps and long time constants: only the ratio counts.
        for (dt, tau) in [
            (5_000, 1_000),
            (4_500, 1_000),
            (3_000, 1_000),
            (1_000, 1_000),
        ] {
            assert_eq!(
                ema_alpha(dt * 1_000, tau * 1_000),
                ema_alpha(dt, tau),
                "{dt} {tau}"
            );
            assert_eq!(
                ema_alpha(dt * 4_000, tau * 4_000),
                ema_alpha(dt, tau),
                "{dt} {tau}"
            );
        }
    }

    #[test]
    fn smoothing_damps_a_spike_and_converges() {
        let mut e = Ema::default();
        let a = ema_alpha(2000, 10000);
        assert_eq!(e.update(20, a), 20);
        let spike = e.update(100, a);
        assert!(spike > 20 && spike < 40, "one spike moved to {spike}");
        let mut v = spike;
        for _ in 0..60 {
            v = e.update(100, a);
        }
        assert_eq!(v, 100);
        for _ in 0..60 {
            v = e.update(0, a);
        }
        assert_eq!(v, 0);
        // The largest values do not overflow.
        let mut e = Ema::default();
        e.update(0, 256);
        assert_eq!(e.update(VALUE_MAX, 256), VALUE_MAX);
        assert_eq!(e.update(0, 256), 0);
        e.reset();
        assert_eq!(e.update(7, 1), 7);
    }
}
