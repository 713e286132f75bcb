//! A flood of connections that send nothing, or one byte a second, from one
//! local process cannot starve probes: at default flags, with and without
//! services, while 3,000 connections a second arrive for 3 s, probes as
//! HAProxy sends them (no payload: the default agent check; a line: with
//! `agent-send`) are answered with a median under 20 ms (a silent probe may
//! add `--wait` when there are services) and none over 1 s.
//!
//! Bounded: 3 s of flood per case, every flood connection closed within
//! 1.5 s, on 127.0.0.1 only. The cases run one at a time.

mod common;
use common::*;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections the flood opens per second.
const RATE: u32 = 3000;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(3);
/// How long each flood connection is held open before it is reset.
const HOLD: Duration = Duration::from_millis(1500);
/// The product's bounds: median and worst probe latency.
const P50_MAX: Duration = Duration::from_millis(20);
const WORST_MAX: Duration = Duration::from_secs(1);

/// One case at a time: two floods at once would measure the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A flood connection: its socket and when it was opened.
struct Held {
    fd: i32,
    opened: Instant,
}

/// Opens a non-blocking connection to 127.0.0.1:`port` that resets when
/// closed (SO_LINGER 0), so that thousands of them leave no TIME_WAIT behind
/// to use up the ephemeral ports; -1 if the socket could not be made.
fn open(port: u16) -> i32 {
    // SAFETY: plain socket calls on a descriptor this function owns, with
    // correctly sized arguments.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return -1;
        }
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        fd
    }
}

/// Sends one byte without waiting; a connection not yet set up just misses it.
fn send_byte(fd: i32) {
    // SAFETY: send(2) of one byte from a live buffer on our own descriptor.
    unsafe {
        libc::send(
            fd,
            b"x".as_ptr().cast(),
            1,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        );
    }
}

/// Closes a flood connection.
fn close(fd: i32) {
    // SAFETY: closes a descriptor this test opened and closes once.
    unsafe {
        libc::close(fd);
    }
}

/// Floods 127.0.0.1:`port` with `RATE` connections a second for `FLOOD`;
/// with `slow`, each sends one byte when opened and one a second after.
/// Returns how many connections it opened.
fn flood(port: u16, slow: bool) -> u32 {
    let start = Instant::now();
    let mut held: VecDeque<Held> = VecDeque::new();
    // The first of `held` that has not sent its second byte.
    let mut second = 0;
    let mut opened = 0u32;
    while start.elapsed() < FLOOD {
        let now = Instant::now();
        // Catch up with the schedule, in bursts of at most 30.
        let due = (start.elapsed().as_micros() as u64 * RATE as u64 / 1_000_000) as u32;
        for _ in 0..(due - opened).min(30) {
            let fd = open(port);
            if fd >= 0 {
                if slow {
                    send_byte(fd);
                }
                held.push_back(Held { fd, opened: now });
            }
            opened += 1;
        }
        while slow && second < held.len() && held[second].opened + Duration::from_secs(1) <= now {
            send_byte(held[second].fd);
            second += 1;
        }
        while held.front().is_some_and(|h| h.opened + HOLD <= now) {
            close(held.pop_front().unwrap().fd);
            second = second.saturating_sub(1);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    for h in held {
        close(h.fd);
    }
    opened
}

/// Probes 127.0.0.1:`port` with `payload` every 10 ms until `stop`;
/// returns each probe's latency (connect to EOF), checking the reply.
fn probe_until(port: u16, payload: &'static [u8], want: &str, stop: &AtomicBool) -> Vec<Duration> {
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("probe connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if !payload.is_empty() {
            s.write_all(payload).unwrap();
        }
        let mut got = String::new();
        s.read_to_string(&mut got).expect("probe read");
        lat.push(t.elapsed());
        assert_eq!(got, want, "payload {payload:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    lat
}

/// Raises the open-file limit as far as allowed: the flood holds up to
/// 4,500 sockets at once.
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a live, correctly typed struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// The median and worst of `lat`, sorted in place.
fn p50_max(lat: &mut [Duration]) -> (Duration, Duration) {
    lat.sort();
    (lat[(lat.len() - 1) / 2], lat[lat.len() - 1])
}

/// Runs one case: heft at default flags with `state`, flooded (`slow` or
/// silent) while two probers ask, one without a payload and one with `line`.
fn case(
    state: &str,
    line: &'static [u8],
    replies: (&str, &str),
    silent_extra: Duration,
    slow: bool,
) {
    if skip_under_runner("times heft under a flood against the product's latency bounds, which emulation cannot meet") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_nofile();
    let a = Agent::start(Some(state), &[]);
    let port = a.port;
    let stop = Arc::new(AtomicBool::new(false));
    let (silent_reply, line_reply) = (replies.0.to_string(), replies.1.to_string());
    let flooder = std::thread::spawn(move || flood(port, slow));
    // Probes start once the flood runs.
    std::thread::sleep(Duration::from_millis(300));
    let probers: Vec<_> = [(&b""[..], silent_reply), (line, line_reply)]
        .into_iter()
        .map(|(payload, want)| {
            let stop = stop.clone();
            std::thread::spawn(move || probe_until(port, payload, &want, &stop))
        })
        .collect();
    let opened = flooder.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let lats: Vec<Vec<Duration>> = probers.into_iter().map(|p| p.join().unwrap()).collect();
    let kind = if slow { "one byte a second" } else { "silent" };
    let mut report = format!(
        "flood of {opened} {kind} connections in {FLOOD:?} ({} services):",
        if state.contains("services") {
            "with"
        } else {
            "no"
        }
    );
    let mut failures = Vec::new();
    for ((mut lat, what), extra) in lats
        .into_iter()
        .zip(["no payload", "agent-send line"])
        .zip([silent_extra, Duration::ZERO])
    {
        let n = lat.len();
        let (p50, worst) = p50_max(&mut lat);
        report += &format!(" {what}: {n} probes, p50 {p50:?}, max {worst:?};");
        if p50 >= P50_MAX + extra || worst >= WORST_MAX || n < 50 {
            failures.push(what);
        }
    }
    println!("{report}");
    // The flood was one: most of its connections were opened.
    assert!(opened >= RATE * 3 * 9 / 10, "{report}");
    assert!(failures.is_empty(), "starved: {failures:?}: {report}");
    assert!(
        a.log().lines().all(|l| !l.contains("accept:")),
        "{}",
        a.log()
    );
    assert_eq!(a.stop(), Some(0));
}

const SERVICES: &str =
    r#"{"status":"UP","weight":77,"services":{"web":{"status":"DRAIN","weight":50}}}"#;

/// Without services every probe gets the top level, answered on accept.
fn without_services(slow: bool) {
    let top = "up ready 77% maxconn:300\n";
    case(STATE, b"\n", (top, top), Duration::ZERO, slow);
}

/// With services a probe naming one gets its line at once; one that sends
/// nothing gets the top level, and may wait up to --wait for it.
fn with_services(slow: bool) {
    let wait = Duration::from_millis(heft::cli::DEFAULT_WAIT_MS as u64);
    let replies = ("up ready 77%\n", "up drain 50%\n");
    case(SERVICES, b"web\n", replies, wait, slow);
}

#[test]
fn a_silent_flood_cannot_starve_probes_without_services() {
    without_services(false);
}

#[test]
fn a_slow_flood_cannot_starve_probes_without_services() {
    without_services(true);
}

#[test]
fn a_silent_flood_cannot_starve_probes_with_services() {
    with_services(false);
}

#[test]
fn a_slow_flood_cannot_starve_probes_with_services() {
    with_services(true);
}
