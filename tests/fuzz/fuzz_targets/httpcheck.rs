//! The answer of a health URL (`http` feedback rules): `httpcheck::judge`.
//!
//! Input: one flag byte (bit 0: `eof`, bits 1-2: which field is asked for,
//! bits 3-4: decimals, bit 5: build a well-formed answer from the rest instead
//! of judging the raw bytes), then the bytes.
//!
//! Properties on raw bytes:
//! - never panics; with `eof` it always decides;
//! - `Status(c)` only for an `HTTP/1.x ddd` line whose digits are `c`, not 2xx;
//!   `Healthy`/`NoField` only for 2xx; a value only when a field was asked
//!   for, and at most `VALUE_MAX`;
//! - consistent: a decision taken on a prefix is the decision on every longer
//!   answer, and stays the same at EOF.
//! Properties on well-formed answers (status, headers, a JSON body with the
//! field among others and nested decoys): the status and the number extracted
//! are exactly those written (an independent decimal reader is the oracle).
#![no_main]

use heft::feedback::curve::VALUE_MAX;
use heft::feedback::httpcheck::{judge, Outcome};
use libfuzzer_sys::fuzz_target;

fn code_of(buf: &[u8]) -> Option<u16> {
    let l = buf.get(..12)?;
    if !l.starts_with(b"HTTP/1.") || l[8] != b' ' || !l[9..12].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(l[9..12].iter().fold(0u16, |a, &d| a * 10 + (d - b'0') as u16))
}

fn check_raw(buf: &[u8], eof: bool, field: Option<&[u8]>, decimals: u8) -> Option<Outcome> {
    let o = judge(buf, eof, field, decimals);
    if eof {
        assert!(o.is_some(), "undecided at EOF");
    }
    match o {
        Some(Outcome::Status(c)) => {
            assert_eq!(code_of(buf), Some(c));
            assert!(!(200..300).contains(&c));
        }
        Some(Outcome::Healthy(v)) => {
            assert!((200..300).contains(&code_of(buf).expect("healthy without a status")));
            assert_eq!(v.is_some(), field.is_some());
            assert!(v.map_or(true, |v| v <= VALUE_MAX));
        }
        Some(Outcome::NoField) => {
            assert!((200..300).contains(&code_of(buf).unwrap()));
            assert!(field.is_some());
        }
        Some(Outcome::BadReply) | None => {}
        Some(o) => panic!("judge gave {o:?}, which only I/O can give"),
    }
    o
}

/// Reads `[-]digits[.digits]` as units of 10^-decimals, truncated, capped: the oracle.
fn decimal(neg: bool, int: &[u8], frac: &[u8], decimals: u8) -> u32 {
    if neg {
        return 0;
    }
    let mut v: u128 = 0;
    for &d in int.iter().chain(frac.iter().chain(std::iter::repeat(&b'0')).take(decimals as usize)) {
        v = v.saturating_mul(10).saturating_add((d - b'0') as u128);
    }
    v.min(VALUE_MAX as u128) as u32
}

fn well_formed(rest: &[u8], eof: bool, decimals: u8) {
    let mut it = rest.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let code = 100 + (next() as u16 % 5) * 100 + next() as u16 % 100;
    let (crlf, with_len, neg, quoted) = {
        let f = next();
        (f & 1 != 0, f & 2 != 0, f & 4 != 0, f & 8 != 0)
    };
    let mut int: Vec<u8> = (0..1 + next() % 24).map(|_| b'0' + next() % 10).collect();
    // JSON numbers have no leading zero (the body must be valid JSON).
    if int.len() > 1 && int[0] == b'0' {
        int[0] = b'1';
    }
    let frac: Vec<u8> = (0..next() % 6).map(|_| b'0' + next() % 10).collect();
    let mut num = Vec::new();
    if neg {
        num.push(b'-');
    }
    num.extend_from_slice(&int);
    if !frac.is_empty() {
        num.push(b'.');
        num.extend_from_slice(&frac);
    }
    let value: Vec<u8> = if quoted {
        [&b"\""[..], &num, b"\""].concat()
    } else {
        num.clone()
    };
    let body = [
        &br#"{"status":"ok","nested":{"queue":1,"a":[1,{"queue":2}]},"queue": "#[..],
        &value,
        br#" ,"s":"a\"b","queue2":3}"#,
    ]
    .concat();
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut answer = format!("HTTP/1.1 {code:03} Whatever").into_bytes();
    answer.extend_from_slice(nl);
    answer.extend_from_slice(b"Server: x");
    answer.extend_from_slice(nl);
    if with_len {
        answer.extend_from_slice(format!("content-length: {}", body.len()).as_bytes());
        answer.extend_from_slice(nl);
    }
    answer.extend_from_slice(nl);
    answer.extend_from_slice(&body);

    let got = judge(&answer, eof, Some(b"queue"), decimals);
    let want = if !(200..300).contains(&code) {
        Some(Outcome::Status(code))
    } else if !eof && !with_len {
        None
    } else {
        // Only the letters of a bare number reach the field; a decoy nested "queue" must not.
        let dec = decimal(neg, &int, &frac, decimals);
        Some(Outcome::Healthy(Some(dec)))
    };
    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&answer));
    // And without a field: healthy (2xx) or the status.
    let got = judge(&answer, eof, None, decimals);
    let want = if (200..300).contains(&code) {
        Outcome::Healthy(None)
    } else {
        Outcome::Status(code)
    };
    assert_eq!(got, Some(want));
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let eof = flags & 1 != 0;
    let decimals = (flags >> 3) & 3;
    if flags & 0x20 != 0 {
        well_formed(buf, eof, decimals);
        return;
    }
    let field: Option<&[u8]> = match (flags >> 1) & 3 {
        0 => None,
        1 => Some(b"queue"),
        2 => Some(b"q"),
        _ => Some(b"a\\\"b"),
    };
    let buf = &buf[..buf.len().min(heft::feedback::httpcheck::RESPONSE_MAX)];
    let o = check_raw(buf, eof, field, decimals);
    if !eof {
        if let Some(o) = o {
            assert_eq!(judge(buf, true, field, decimals), Some(o), "EOF changes it");
        }
    }
    // A decision on the shortest deciding prefix holds for the whole answer.
    if buf.len() <= 512 {
        for k in 0..buf.len() {
            if let Some(p) = judge(&buf[..k], false, field, decimals) {
                assert_eq!(Some(p), judge(buf, false, field, decimals), "prefix {k}");
                assert_eq!(Some(p), judge(buf, true, field, decimals), "prefix {k} at EOF");
                break;
            }
        }
    }
});
