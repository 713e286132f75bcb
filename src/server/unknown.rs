//! Logs probes that name a service the state file does not have, once per
//! name: such a probe gets the reply for no name (the top level), which is
//! easy to miss when a backend's `agent-send` has a typo.
//!
//! The last `REMEMBERED` names logged are kept as hashes (a collision only
//! skips a line), and at most one new name is logged per second, so a client
//! sending random names cannot flood the log; a name skipped that way is
//! logged at a later probe.

use crate::log;
use crate::model::state::State;
use crate::time::Instant;

/// How many names logged are remembered.
const REMEMBERED: usize = 16;
/// The shortest time (ms) between two lines.
const GAP_MS: u32 = 1000;

/// The names already logged and when the last line was.
#[derive(Default)]
pub struct Unknown {
    /// FNV-1a hashes of the names logged, with the low bit set (0: free).
    seen: [u32; REMEMBERED],
    /// Where the next name goes in `seen`.
    next: usize,
    /// When a name was last logged.
    last: Option<Instant>,
}

impl Unknown {
    /// Logs `name` at `now` if `state` has no such service and it was not logged yet.
    pub fn note(&mut self, state: &State, name: Option<&[u8]>, now: Instant) {
        let Some(name) = name.filter(|n| state.service(n).is_none()) else {
            return;
        };
        let h = crate::num::fnv1a(name) | 1;
        if self.seen.contains(&h) || self.last.is_some_and(|t| now.since(t) < GAP_MS) {
            return;
        }
        self.last = Some(now);
        self.seen[self.next % REMEMBERED] = h;
        self.next = self.next.wrapping_add(1);
        log::info()
            .s("probe for unknown service \"")
            .b(name)
            .s("\" (answered as if none was named)")
            .send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_names_and_spaces_lines() {
        let state = crate::model::state::parse(br#"{"services":{"web":{"status":"UP"}}}"#).unwrap();
        let mut u = Unknown::default();
        let at = Instant::from_ms;
        u.note(&state, Some(b"web"), at(0));
        assert_eq!(u.last, None);
        u.note(&state, Some(b"wbe"), at(0));
        assert_eq!((u.last, u.next), (Some(at(0)), 1));
        // The same name again, or a new one within the second: no line.
        u.note(&state, Some(b"wbe"), at(5000));
        u.note(&state, Some(b"db"), at(500));
        assert_eq!((u.last, u.next), (Some(at(0)), 1));
        u.note(&state, Some(b"db"), at(1000));
        assert_eq!((u.last, u.next), (Some(at(1000)), 2));
        u.note(&state, None, at(9000));
        assert_eq!(u.next, 2);
    }
}
