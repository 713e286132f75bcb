//! What one rule currently says: smoothing, weight and failure hysteresis; does no I/O.

use super::config::{Rule, Stale, Threshold};
use super::curve::{ema_alpha, Ema};
use super::metrics::push_value;
use crate::model::state::Reason;
use crate::time::Instant;

/// A tripped failure threshold.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Trip {
    /// Since when the value has stayed below `leave`, if it has.
    below_since: Option<Instant>,
}

/// Failure thresholds with hysteresis: trips above `enter`, clears after `hold_ms` below `leave`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Hysteresis {
    /// The trip while the threshold is tripped.
    trip: Option<Trip>,
}

/// A change of a rule's failure state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Change {
    /// The rule now reports the server down.
    Tripped,
    /// The rule no longer does.
    Cleared,
}

impl Hysteresis {
    /// Takes value `x` at time `now`; returns the change it caused, if any.
    pub fn update(&mut self, th: &Threshold, x: u32, now: Instant) -> Option<Change> {
        match &mut self.trip {
            None if x > th.enter => {
                self.trip = Some(Trip { below_since: None });
                Some(Change::Tripped)
            }
            None => None,
            Some(t) if x < th.leave => {
                let since = *t.below_since.get_or_insert(now);
                if now.since(since) >= th.hold_ms {
                    self.trip = None;
                    Some(Change::Cleared)
                } else {
                    None
                }
            }
            Some(t) => {
                t.below_since = None;
                None
            }
        }
    }

    /// Tells whether the threshold is tripped.
    pub fn tripped(&self) -> bool {
        self.trip.is_some()
    }
}

/// How an `http` rule's checks are going.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Health {
    /// No check has finished yet.
    Unknown,
    /// The last check was healthy.
    Good,
    /// Checks fail; the reason says how.
    Failing(Reason),
}

/// One rule's running state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RuleState {
    /// The latest value after smoothing, if there is one.
    pub value: Option<u32>,
    /// The smoothing of the raw values.
    ema: Ema,
    /// When the last value came, if one did since the source last failed.
    last_at: Option<Instant>,
    /// The failure threshold's state.
    hyst: Hysteresis,
    /// The reason shown while the threshold is tripped.
    pub trip_reason: Reason,
    /// For `http` rules: how checks are going.
    pub health: Health,
    /// For `http` rules: when the last healthy answer came.
    pub last_good: Option<Instant>,
    /// Whether the source failed at the last read (to log changes only).
    pub failed: bool,
}

/// What one rule asks of the entries it applies to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Say<'a> {
    /// Weight percentage (100 when the rule has no opinion).
    pub weight: u8,
    /// The rule's minimum weight.
    pub min: u8,
    /// Set when the rule reports the server down.
    pub down: Option<&'a Reason>,
}

impl Default for RuleState {
    fn default() -> Self {
        RuleState::new()
    }
}

impl RuleState {
    /// Starts with no value and nothing tripped.
    pub fn new() -> RuleState {
        RuleState {
            value: None,
            ema: Ema::default(),
            last_at: None,
            hyst: Hysteresis::default(),
            trip_reason: Reason::new(),
            health: Health::Unknown,
            last_good: None,
            failed: false,
        }
    }

    /// Takes a new raw value at `now`: smooths it and moves the thresholds; returns a change.
    pub fn observe(&mut self, rule: &Rule, x: u32, now: Instant) -> Option<Change> {
        let dt = self.last_at.map_or(u32::MAX, |t| now.since(t));
        self.last_at = Some(now);
        let v = self.ema.update(x, ema_alpha(dt, rule.smooth_ms));
        self.value = Some(v);
        let th = rule.threshold.as_ref()?;
        let change = self.hyst.update(th, v, now);
        if change == Some(Change::Tripped) {
            self.trip_reason.clear();
            let _ = self.trip_reason.push_str(&rule.name);
            let _ = self.trip_reason.push_str(" ");
            push_value(&mut self.trip_reason, v, rule.decimals);
            let _ = self.trip_reason.push_str(" > ");
            push_value(&mut self.trip_reason, th.enter, rule.decimals);
        }
        change
    }

    /// Forgets the value (the metric could not be read); keeps a tripped threshold.
    pub fn lose_value(&mut self) {
        self.value = None;
        self.ema.reset();
        self.last_at = None;
    }

    /// Records a finished `http` check: healthy (with its value, if any) or failing.
    pub fn http_result(
        &mut self,
        rule: &Rule,
        result: Result<Option<u32>, Reason>,
        now: Instant,
    ) -> Option<Change> {
        match result {
            Ok(v) => {
                self.last_good = Some(now);
                self.health = Health::Good;
                v.and_then(|v| self.observe(rule, v, now))
            }
            Err(why) => {
                self.health = Health::Failing(why);
                None
            }
        }
    }

    /// Says what this rule asks at `now`.
    pub fn say(&self, rule: &Rule, now: Instant) -> Say<'_> {
        let curve = rule.curve.as_ref();
        let min = curve.map_or(100, |c| c.min());
        let mut say = Say {
            weight: match (curve, self.value) {
                (Some(c), Some(v)) => c.weight(v),
                _ => 100,
            },
            min,
            down: self.hyst.tripped().then_some(&self.trip_reason),
        };
        if let (Some(h), Health::Failing(why)) = (&rule.http, &self.health) {
            let fresh = self.last_good.is_some_and(|t| now.since(t) < h.stale_ms);
            if !fresh {
                match h.stale {
                    Stale::Down => say.down = Some(why),
                    Stale::Keep => {}
                    Stale::Ignore => {
                        say.weight = 100;
                        say.down = None;
                    }
                    Stale::Min => {
                        say.weight = curve.map_or(1, |c| c.min());
                        say.min = say.weight;
                    }
                }
            }
        }
        say
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::config::parse;

    /// The instant `ms` after the clock's zero.
    fn at(ms: u32) -> Instant {
        Instant::from_ms(ms)
    }

    fn rule(json: &str) -> Rule {
        let text = std::format!(r#"{{"rules":[{json}]}}"#);
        parse(text.as_bytes()).unwrap().rules[0].clone()
    }

    #[test]
    fn hysteresis_trips_above_enter_and_holds_below_leave() {
        let th = Threshold {
            enter: 95,
            leave: 80,
            hold_ms: 1000,
        };
        let mut h = Hysteresis::default();
        assert_eq!(h.update(&th, 95, at(0)), None); // at enter: not above
        assert_eq!(h.update(&th, 96, at(10)), Some(Change::Tripped));
        assert_eq!(h.update(&th, 90, at(20)), None); // between leave and enter: stays
        assert_eq!(h.update(&th, 70, at(100)), None); // below leave: hold starts
        assert_eq!(h.update(&th, 70, at(600)), None);
        assert_eq!(h.update(&th, 85, at(900)), None); // back above leave: hold restarts
        assert_eq!(h.update(&th, 70, at(1000)), None);
        assert_eq!(h.update(&th, 70, at(1999)), None);
        assert!(h.tripped());
        assert_eq!(h.update(&th, 70, at(2000)), Some(Change::Cleared));
        assert!(!h.tripped());
        assert_eq!(h.update(&th, 90, at(2100)), None);
        // Hold 0: clears on the first value below leave; times wrap.
        let th = Threshold {
            enter: 5,
            leave: 5,
            hold_ms: 0,
        };
        let mut h = Hysteresis::default();
        assert_eq!(h.update(&th, 6, at(u32::MAX - 5)), Some(Change::Tripped));
        assert_eq!(h.update(&th, 5, at(3)), None);
        assert_eq!(h.update(&th, 4, at(4)), Some(Change::Cleared));
    }

    #[test]
    fn reasons_name_rule_and_value() {
        let r = rule(r#"{"metric":"cpu","enter":95,"leave":80}"#);
        let mut s = RuleState::new();
        assert_eq!(s.observe(&r, 97, at(0)), Some(Change::Tripped));
        assert_eq!(s.say(&r, at(0)).down.unwrap().as_str(), "cpu 97 > 95");
        assert_eq!(s.say(&r, at(0)).weight, 100);
        let r = rule(r#"{"metric":"load","name":"load1","enter":1.5}"#);
        let mut s = RuleState::new();
        s.observe(&r, 175, at(0));
        assert_eq!(s.say(&r, at(0)).down.unwrap().as_str(), "load1 1.75 > 1.50");
    }

    #[test]
    fn smoothing_keeps_one_spike_from_tripping() {
        let r =
            rule(r#"{"metric":"cpu","enter":90,"smooth_ms":10000,"curve":"linear","limit":100}"#);
        let mut s = RuleState::new();
        let mut t = 0;
        for _ in 0..10 {
            s.observe(&r, 10, at(t));
            t += 2000;
        }
        assert_eq!(s.observe(&r, 100, at(t)), None);
        let say = s.say(&r, at(t));
        assert!(say.down.is_none());
        assert!(say.weight > 70, "weight jumped to {}", say.weight);
        for _ in 0..40 {
            t += 2000;
            s.observe(&r, 100, at(t));
        }
        assert!(s.say(&r, at(t)).down.is_some());
    }

    #[test]
    fn http_failures_wait_for_staleness() {
        let r = rule(r#"{"metric":"http","url":"http://127.0.0.1:1/","stale_ms":5000}"#);
        let mut s = RuleState::new();
        let why = || {
            let mut w = Reason::new();
            let _ = w.push_str("http timeout");
            w
        };
        assert!(s.say(&r, at(0)).down.is_none());
        // Failing from the start: nothing cached, so down at once.
        s.http_result(&r, Err(why()), at(0));
        assert_eq!(s.say(&r, at(0)).down.unwrap().as_str(), "http timeout");
        s.http_result(&r, Ok(None), at(100));
        assert!(s.say(&r, at(100)).down.is_none());
        s.http_result(&r, Err(why()), at(2000));
        assert!(s.say(&r, at(5099)).down.is_none());
        assert!(s.say(&r, at(5100)).down.is_some());
        let keep = rule(r#"{"metric":"http","url":"http://127.0.0.1:1/","stale":"keep"}"#);
        let mut s = RuleState::new();
        s.http_result(&keep, Err(why()), at(0));
        assert!(s.say(&keep, at(99_999)).down.is_none());
        let min = rule(
            r#"{"metric":"http","url":"http://127.0.0.1:1/","stale":"min","curve":"linear","limit":9,"min_weight":3}"#,
        );
        let mut s = RuleState::new();
        s.http_result(&min, Err(why()), at(0));
        let say = s.say(&min, at(0));
        assert_eq!((say.weight, say.down), (3, None));
        let ignore = rule(
            r#"{"metric":"http","url":"http://127.0.0.1:1/","stale":"ignore","enter":5,"field":"q"}"#,
        );
        let mut s = RuleState::new();
        s.http_result(&ignore, Ok(Some(9)), at(0));
        assert!(s.say(&ignore, at(0)).down.is_some());
        s.http_result(&ignore, Err(why()), at(10));
        assert!(s.say(&ignore, at(10)).down.is_none());
    }
}
