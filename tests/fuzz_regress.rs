//! Regression tests for what the fuzz targets in tests/fuzz found: each input a
//! fuzzer reported, through the same library function and the same property.
//!
//! Each was a bug when found and is fixed; the test keeps it fixed.

#[cfg(feature = "feedback")]
use heft::feedback::config;
use heft::model::agent::Agent;
use heft::model::state;
use heft::proto::http;
use heft::proto::http::Counters;
use heft::proto::request::{classify, Request};

fn quiet() {
    heft::log::set_level(heft::log::Level::Error);
}

/// fuzz target `state`, artifacts crash-bc7e6182… and crash-ace5cac4…: a file
/// whose only field is an empty `services` object parses to a state with no
/// entry at all; `state::write` writes it as `{}`, which does not parse
/// ("status missing"). So SIGUSR1/SIGUSR2 on such a file persist a file that
/// the next SIGHUP or restart refuses. Either `parse` must refuse it (the
/// README: `status` is "required unless `services` is there") or write must
/// keep it readable.
#[test]
fn empty_services_object_round_trips() {
    for input in [
        &b"{\"services\":{    }}"[..],
        b"{\"t\":s\"P\xff\",\"services\":{}}",
        b"{\"services\":{}}",
    ] {
        let Ok(s) = state::parse(input) else { continue };
        let mut out = heapless::Vec::<u8, { state::FILE_MAX }>::new();
        state::write(&s, &mut out).unwrap();
        assert_eq!(
            state::parse(&out).as_ref(),
            Ok(&s),
            "{:?} was written as {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&out)
        );
    }
}

/// fuzz target `request`, artifact crash-b210492d…: with services in the
/// state, a payload that starts with separators is decided on
/// its first byte (no word: the top-level reply), but the same bytes arriving
/// in one segment with a word after them name that service. The answer then
/// depends on how TCP splits the payload.
#[test]
fn leading_separators_classify_the_same_whatever_follows() {
    let buf: &[u8] = b"\0\0\x00204T@&/db\0\0\0\0";
    let whole = classify(buf, false, false);
    for k in 1..buf.len() {
        let p = classify(&buf[..k], false, false);
        if p != Request::Partial {
            assert_eq!(p, whole, "prefix {:?} of {:?}", &buf[..k], buf);
            break;
        }
    }
    // The same with a payload HAProxy could send.
    let whole = classify(b"\nweb\n", false, false);
    let first = classify(b"\n", false, false);
    assert!(
        first == Request::Partial || first == whole,
        "{first:?} vs {whole:?}"
    );
}

/// fuzz target `request`, artifact crash-82b28876… (`GET /metrics HTTP/1.1\n`
/// against the largest state a file may hold: a top level and 16 services
/// with 32-byte names, all with maxconn): the metrics body fits in its buffer
/// but not together with the head, so the response says `Content-Length:
/// 4027` (with zero counters) and carries no body. Since heft_heap_allocations_total
/// was added, the body itself overflows and /metrics says only "# metrics truncated".
#[test]
fn metrics_of_the_largest_state_have_their_body() {
    quiet();
    let mut s = state::State::default();
    let mut top = state::Entry::new(state::Status::Stopped);
    top.weight = 255;
    top.maxconn = Some(65535);
    top.reason.push_str(&"r".repeat(state::REASON_MAX)).unwrap();
    s.top = Some(top.clone());
    for i in 0..state::SERVICES_MAX {
        let mut n = state::Name::new();
        n.push_str(&"s".repeat(state::NAME_MAX - 2)).unwrap();
        n.push((b'a' + i as u8) as char).unwrap();
        n.push('x').unwrap();
        s.services.push((n, top.clone())).unwrap();
    }
    let mut agent = Agent::new(None);
    agent.load(Ok(s), heft::time::Instant::default());
    let Request::Http { head, path } = classify(b"GET /metrics HTTP/1.1\n", false, true) else {
        panic!("not HTTP");
    };
    let mut buf = http::Response::new();
    let out = http::respond(&mut buf, head, path, &agent, &Counters::default());
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head_text = String::from_utf8_lossy(&out[..end]).into_owned();
    let length: usize = head_text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, out.len() - end - 4, "{head_text}");
    // A body that does not fit is still answered whole, saying only
    // "# metrics truncated"; this one must fit.
    let body = String::from_utf8_lossy(&out[end + 4..]).into_owned();
    assert!(
        body.contains("heft_probes_total") && !body.starts_with("# metrics truncated"),
        "{body}"
    );
}

/// fuzz target `feedback_config`, artifact crash-4074a177… (`{"rules": 0}`):
/// well-formed JSON whose `rules` is not an array, or whose `interval_ms` is
/// an object or array, is refused with a bare "expected an array" / "expected
/// a string or a number" that names no field.
#[cfg(feature = "feedback")]
#[test]
fn feedback_errors_name_the_field() {
    for (input, field) in [
        (&br#"{"rules": 0}"#[..], "rules"),
        (br#"{"rules": {"metric":"cpu"}}"#, "rules"),
        (br#"{"interval_ms": {}}"#, "interval_ms"),
        (br#"{"interval_ms": [500]}"#, "interval_ms"),
    ] {
        let e = config::parse(input).unwrap_err();
        assert_eq!(
            e.field.as_str(),
            field,
            "{}: {}",
            String::from_utf8_lossy(input),
            e.what
        );
    }
}
