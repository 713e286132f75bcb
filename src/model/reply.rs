//! Formats agent reply lines into fixed buffers; does no I/O.
//!
//! Every reply names the health word, the admin word and the weight, so that
//! HAProxy follows the state file whatever it was told before. The field
//! order is `<health> <admin> <weight>%[ maxconn:<n>][ #<reason>]\n`.

use heapless::Vec;

use crate::model::state::{Status, REASON_MAX};
use crate::num::{self, Full};

/// The longest reply line, newline included.
pub const LINE_MAX: usize = 128;
/// A formatted reply line.
pub type Line = Vec<u8, LINE_MAX>;

// "stopped ready 255% maxconn:65535 #" + reason + "\n" must always fit.
const _: () = assert!(34 + REASON_MAX < LINE_MAX);

/// What one reply says.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'a> {
    /// The status to report.
    pub status: Status,
    /// The weight percentage to report, 0 to 255.
    pub weight: u8,
    /// The maxconn to report, if any.
    pub maxconn: Option<u16>,
    /// The reason, sent after `#` for down statuses when not empty.
    pub reason: &'a [u8],
}

/// The reply for a service name nobody configured, when no top-level state exists.
pub const UNKNOWN_SERVICE: &[u8] = b"fail ready 100% #unknown service\n";

/// Formats `r` into `out`; `ready` says whether to send the `ready` admin word.
pub fn format(r: &Reply, ready: bool, out: &mut Line) {
    out.clear();
    // The assertion above makes every reply fit; a failure here would be a bug
    // that leaves a shorter but still newline-free buffer, so say so loudly.
    if write(r, ready, out).is_err() {
        out.clear();
        let _ = out.extend_from_slice(b"fail ready 100% #reply too long\n");
    }
}

/// Appends the reply's fields, failing if they do not fit.
fn write(r: &Reply, ready: bool, out: &mut Line) -> Result<(), Full> {
    let (health, admin): (&[u8], &[u8]) = match r.status {
        Status::Up | Status::Ready => (b"up ", b"ready "),
        Status::Drain => (b"up ", b"drain "),
        Status::Maint => (b"", b"maint "),
        Status::Down => (b"down ", b"ready "),
        Status::Fail => (b"fail ", b"ready "),
        Status::Stopped => (b"stopped ", b"ready "),
    };
    num::push(out, health)?;
    if ready || matches!(r.status, Status::Drain | Status::Maint) {
        num::push(out, admin)?;
    }
    num::push_u32(out, r.weight as u32)?;
    num::push(out, b"%")?;
    if let Some(m) = r.maxconn {
        num::push(out, b" maxconn:")?;
        num::push_u32(out, m as u32)?;
    }
    if r.status.is_down() && !r.reason.is_empty() {
        num::push(out, b" #")?;
        num::push(out, r.reason)?;
    }
    num::push(out, b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(
        status: Status,
        weight: u8,
        maxconn: Option<u16>,
        reason: &str,
        ready: bool,
    ) -> std::string::String {
        let mut out = Line::new();
        format(
            &Reply {
                status,
                weight,
                maxconn,
                reason: reason.as_bytes(),
            },
            ready,
            &mut out,
        );
        std::string::String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn matches_the_table() {
        assert_eq!(
            f(Status::Up, 77, Some(300), "", true),
            "up ready 77% maxconn:300\n"
        );
        assert_eq!(
            f(Status::Ready, 77, Some(300), "", true),
            "up ready 77% maxconn:300\n"
        );
        assert_eq!(
            f(Status::Drain, 77, Some(300), "", true),
            "up drain 77% maxconn:300\n"
        );
        assert_eq!(
            f(Status::Maint, 77, Some(300), "", true),
            "maint 77% maxconn:300\n"
        );
        assert_eq!(
            f(Status::Down, 77, Some(300), "deploy", true),
            "down ready 77% maxconn:300 #deploy\n"
        );
        assert_eq!(
            f(Status::Fail, 100, None, "x y", true),
            "fail ready 100% #x y\n"
        );
        assert_eq!(
            f(Status::Stopped, 0, Some(0), "", true),
            "stopped ready 0% maxconn:0\n"
        );
    }

    #[test]
    fn omits_ready_outside_the_window() {
        assert_eq!(f(Status::Up, 100, None, "", false), "up 100%\n");
        assert_eq!(f(Status::Drain, 100, None, "", false), "up drain 100%\n");
        assert_eq!(f(Status::Maint, 100, None, "", false), "maint 100%\n");
        assert_eq!(f(Status::Down, 100, None, "r", false), "down 100% #r\n");
    }

    #[test]
    fn sends_reasons_only_when_down() {
        assert_eq!(f(Status::Up, 1, None, "ignored", true), "up ready 1%\n");
        assert_eq!(f(Status::Maint, 1, None, "ignored", true), "maint 1%\n");
    }

    #[test]
    fn longest_reply_fits() {
        let r = "r".repeat(REASON_MAX);
        let line = f(Status::Stopped, 255, Some(65535), &r, true);
        assert!(line.len() <= LINE_MAX && line.ends_with(&std::format!("#{r}\n")));
        assert_eq!(line.matches('\n').count(), 1);
    }
}
