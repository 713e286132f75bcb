//! Unit tests of the command line: every option, its variables, its errors.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::*;

/// Parses `args` with the variables `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, Usage> {
    let lookup = |k: &str| env.iter().find(|e| e.0 == k).map(|e| os(e.1));
    parse(
        args.iter().map(OsString::from).collect::<Vec<_>>().leak(),
        &lookup,
    )
}

/// `s` kept for the life of the test process, as the arguments and
/// variables `parse` reads are.
fn os(s: impl Into<OsString>) -> &'static OsStr {
    OsStr::from_bytes(s.into().into_vec().leak())
}

/// The error line `u` says, as a log line would hold it.
fn message(u: &Usage) -> Vec<u8> {
    let mut line = Vec::new();
    u.say(&mut |part| line.extend_from_slice(part));
    line
}

/// The error line `args` and `env` give.
fn err(args: &[&str], env: &[(&str, &str)]) -> String {
    match run(args, env) {
        Err(u) => String::from_utf8(message(&u)).unwrap(),
        Ok(_) => panic!("{args:?} {env:?}: no error"),
    }
}

fn serve(args: &[&str], env: &[(&str, &str)]) -> Serve {
    match run(args, env) {
        Ok(Command::Serve(s)) => s,
        Err(u) => panic!("{args:?}: {}", String::from_utf8_lossy(&message(&u))),
        Ok(_) => panic!("{args:?}: not serve"),
    }
}

fn set(args: &[&str], env: &[(&str, &str)]) -> Set {
    let args = [&["set"], args].concat();
    match run(&args, env) {
        Ok(Command::Set(s)) => s,
        Err(u) => panic!("{args:?}: {}", String::from_utf8_lossy(&message(&u))),
        Ok(_) => panic!("{args:?}: not set"),
    }
}

fn get(args: &[&str], env: &[(&str, &str)]) -> Get {
    let args = [&["get"], args].concat();
    match run(&args, env) {
        Ok(Command::Get(g)) => g,
        Err(u) => panic!("{args:?}: {}", String::from_utf8_lossy(&message(&u))),
        Ok(_) => panic!("{args:?}: not get"),
    }
}

fn check(args: &[&str], env: &[(&str, &str)]) -> Serve {
    let args = [&["check"], args].concat();
    match run(&args, env) {
        Ok(Command::Check(c)) => c,
        Err(u) => panic!("{args:?}: {}", String::from_utf8_lossy(&message(&u))),
        Ok(_) => panic!("{args:?}: not check"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn serve_defaults() {
    let s = serve(&[], &[]);
    assert_eq!(
        (s.addr, s.port, s.http().map(|(a, p, _)| (*a, p))),
        (ip("0.0.0.0"), 9777, None)
    );
    assert_eq!(s.state_file, Path::new("/etc/heft/state.json"));
    assert_eq!((s.pid_file, s.ready_window_ms), (None, None));
    assert_eq!((s.wait_ms, s.timeout_ms, s.slots), (50, 2000, 64));
    #[cfg(feature = "feedback")]
    assert_eq!(s.feedback, None);
    assert_eq!(s.allow, AllowList::everyone());
    assert_eq!((s.user, s.group, s.syslog), (None, None, None));
    assert_eq!(s.level, Level::Info);
    // `serve` may be said or not.
    assert_eq!(serve(&["serve"], &[]).port, 9777);
}

#[test]
fn set_and_get_defaults() {
    let s = set(&["up"], &[]);
    assert_eq!((s.status, s.weight, s.maxconn), (Status::Up, None, None));
    assert_eq!((s.reason, s.service), (None, None));
    assert_eq!(s.state_file, Path::new("/etc/heft/state.json"));
    assert_eq!((s.pid_file, s.level), (None, Level::Info));
    let g = get(&[], &[]);
    assert_eq!((g.addr, g.port), (ip("127.0.0.1"), 9777));
    assert_eq!((&g.send[..], g.timeout_ms), (&b""[..], 2000));
}

#[test]
fn flag_beats_heft_variable_beats_hapgent_variable_beats_default() {
    let all = [("HEFT_PORT", "1000"), ("HAPGENT_PORT", "2000")];
    assert_eq!(serve(&["--port", "3000"], &all).port, 3000);
    assert_eq!(serve(&["--port=3001"], &all).port, 3001);
    assert_eq!(serve(&[], &all).port, 1000);
    assert_eq!(serve(&[], &all[1..]).port, 2000);
    assert_eq!(serve(&[], &[]).port, 9777);
    assert_eq!(get(&[], &all).port, 1000);
    assert_eq!(get(&[], &all[1..]).port, 2000);
    assert_eq!(get(&["--port", "3"], &all).port, 3);

    let addrs = [("HEFT_ADDR", "::1"), ("HAPGENT_IP", "10.0.0.1")];
    assert_eq!(serve(&["--addr", "::"], &addrs).addr, ip("::"));
    assert_eq!(serve(&[], &addrs).addr, ip("::1"));
    assert_eq!(serve(&[], &addrs[1..]).addr, ip("10.0.0.1"));
    // `heft get` reads no address variable: HEFT_ADDR is where to listen.
    assert_eq!(get(&[], &addrs).addr, ip("127.0.0.1"));

    let files = [
        ("HEFT_STATE_FILE", "/heft.json"),
        ("HAPGENT_STATE_FILE", "/hapgent.json"),
    ];
    for (args, env, want) in [
        (
            &["--state-file", "/flag.json"][..],
            &files[..],
            "/flag.json",
        ),
        (&[], &files, "/heft.json"),
        (&[], &files[1..], "/hapgent.json"),
    ] {
        assert_eq!(serve(args, env).state_file, Path::new(want));
        assert_eq!(
            set(&[&["up"], args].concat(), env).state_file,
            Path::new(want)
        );
    }
}

#[test]
fn a_flag_hides_a_bad_variable_and_the_stronger_variable_is_read() {
    let env = [
        ("HEFT_PORT", "x"),
        ("HAPGENT_PORT", "9"),
        ("HEFT_ADDR", "nowhere"),
    ];
    let s = serve(&["--port", "1", "--addr", "::"], &env);
    assert_eq!((s.port, s.addr), (1, ip("::")));
    assert_eq!(
        err(&[], &env[..2]),
        "HEFT_PORT: bad value \"x\": expected a port number 1-65535"
    );
    // A good HEFT_PORT hides a bad HAPGENT_PORT.
    assert_eq!(
        serve(&[], &[("HEFT_PORT", "9"), ("HAPGENT_PORT", "x")]).port,
        9
    );
}

#[test]
fn empty_variables_are_not_set() {
    let env = [("HEFT_PORT", ""), ("HAPGENT_PORT", "7"), ("HEFT_ALLOW", "")];
    let s = serve(&[], &env);
    assert_eq!((s.port, s.allow), (7, AllowList::everyone()));
}

#[test]
fn every_serve_option_and_its_variable() {
    type Check = fn(&Serve) -> bool;
    let cases: &[(&str, &str, &str, Check)] = &[
        ("--addr", "HEFT_ADDR", "[::1]", |s| s.addr == ip("::1")),
        ("--addr", "HAPGENT_IP", "192.0.2.1", |s| {
            s.addr == ip("192.0.2.1")
        }),
        ("--port", "HEFT_PORT", "65535", |s| s.port == 65535),
        ("--port", "HAPGENT_PORT", "1", |s| s.port == 1),
        ("--http-port", "HEFT_HTTP_PORT", "80", |s| {
            s.http().map(|(a, p, _)| (*a, p)) == Some((ip("0.0.0.0"), 80))
        }),
        ("--http-addr", "HEFT_HTTP_ADDR", "::1", |s| {
            s.http().map(|(a, p, _)| (*a, p)) == Some((ip("::1"), 9778))
        }),
        ("--state-file", "HEFT_STATE_FILE", "/s.json", |s| {
            s.state_file == Path::new("/s.json")
        }),
        ("--state-file", "HAPGENT_STATE_FILE", "/h.json", |s| {
            s.state_file == Path::new("/h.json")
        }),
        ("--pid-file", "HEFT_PID_FILE", "/run/h.pid", |s| {
            s.pid_file == Some(Path::new("/run/h.pid"))
        }),
        ("--ready-window", "HEFT_READY_WINDOW", "86400", |s| {
            s.ready_window_ms == Some(86_400_000)
        }),
        ("--wait", "HEFT_WAIT", "0", |s| s.wait_ms == 0),
        ("--timeout", "HEFT_TIMEOUT", "60000", |s| {
            s.timeout_ms == 60_000
        }),
        ("--slots", "HEFT_SLOTS", "1024", |s| s.slots == 1024),
        #[cfg(feature = "feedback")]
        ("--feedback", "HEFT_FEEDBACK", "/f.json", |s| {
            s.feedback == Some(Path::new("/f.json"))
        }),
        ("--allow", "HEFT_ALLOW", "10.0.0.0/8,::1/128", |s| {
            s.allow != AllowList::everyone()
        }),
        ("--user", "HEFT_USER", "heft", |s| {
            s.user.as_ref().is_some_and(|g| g.value == "heft")
        }),
        ("--group", "HEFT_GROUP", "0", |s| {
            s.group.as_ref().is_some_and(|g| g.value == "0")
        }),
        ("--syslog-socket", "HEFT_SYSLOG_SOCKET", "/l", |s| {
            s.syslog == Some(Path::new("/l"))
        }),
    ];
    for &(flag, var, value, check) in cases {
        assert!(check(&serve(&[flag, value], &[])), "{flag} {value}");
        assert!(
            check(&serve(&[&format!("{flag}={value}")], &[])),
            "{flag}={value}"
        );
        assert!(check(&serve(&[], &[(var, value)])), "{var}={value}");
    }
    // The variables the table gives are the ones these cases read.
    let read: Vec<&str> = cases.iter().map(|c| c.1).collect();
    for (_, vars) in SERVE.flags {
        for var in *vars {
            // HEFT_SYSLOG is a switch, tested with the levels; HEFT_FEEDBACK
            // has a test of its own in builds without the feature.
            let own_test =
                *var == "HEFT_SYSLOG" || !cfg!(feature = "feedback") && *var == "HEFT_FEEDBACK";
            assert!(read.contains(var) || own_test, "{var}");
        }
    }
}

#[test]
fn user_and_group_remember_their_source() {
    let s = serve(&["--user", "nobody"], &[("HEFT_GROUP", "nogroup")]);
    let (user, group) = (s.user.unwrap(), s.group.unwrap());
    assert_eq!((user.source, group.source), ("--user", "HEFT_GROUP"));
    assert_eq!(
        String::from_utf8(message(&group.bad("a group in /etc/group or a number"))).unwrap(),
        "HEFT_GROUP: bad value \"nogroup\": expected a group in /etc/group or a number"
    );
}

#[test]
fn http_listens_only_when_asked_on_the_agents_address_by_default() {
    assert_eq!(serve(&[], &[]).http().map(|(a, p, _)| (*a, p)), None);
    let s = serve(&["--addr", "::1", "--http-port", "9778"], &[]);
    assert_eq!(s.http().map(|(a, p, _)| (*a, p)), Some((ip("::1"), 9778)));
    let s = serve(
        &["--http-addr", "127.0.0.2"],
        &[("HEFT_HTTP_PORT", "1"), ("HEFT_ADDR", "::")],
    );
    assert_eq!(
        s.http().map(|(a, p, _)| (*a, p)),
        Some((ip("127.0.0.2"), 1))
    );
    let s = serve(
        &[],
        &[("HEFT_HTTP_ADDR", "[::1]"), ("HEFT_HTTP_PORT", "80")],
    );
    assert_eq!(s.http().map(|(a, p, _)| (*a, p)), Some((ip("::1"), 80)));
    // The scope goes with its address: HTTP's own, else the agent's.
    let s = serve(&["--addr", "fe80::1%lo", "--http-port", "80"], &[]);
    assert_eq!(s.http(), Some((&ip("fe80::1"), 80, &b"lo"[..])));
    let s = serve(
        &["--addr", "fe80::1%lo", "--http-addr", "fe80::2%eth0"],
        &[],
    );
    assert_eq!(s.http(), Some((&ip("fe80::2"), 9778, &b"eth0"[..])));
    let s = serve(&["--addr", "fe80::1%lo", "--http-addr", "::1"], &[]);
    assert_eq!(s.http(), Some((&ip("::1"), 9778, &b""[..])));
    // An address alone turns HTTP on at its default port.
    let s = serve(&["--http-addr", "127.0.0.1"], &[]);
    assert_eq!(
        s.http().map(|(a, p, _)| (*a, p)),
        Some((ip("127.0.0.1"), 9778))
    );
    assert_eq!(
        err(&[], &[("HEFT_HTTP_PORT", "0")]),
        "HEFT_HTTP_PORT: bad value \"0\": expected a port number 1-65535"
    );
    assert_eq!(
        err(&["--http-addr", "x", "--http-port", "1"], &[]),
        "--http-addr: bad value \"x\": expected an IPv4 or IPv6[%interface] address"
    );
}

#[test]
fn serve_ranges() {
    // (flag, variable, lowest, highest, what the errors say)
    let ranges = [
        ("--port", "HEFT_PORT", 1, 65535, "a port number 1-65535"),
        (
            "--ready-window",
            "HEFT_READY_WINDOW",
            1,
            86400,
            "seconds 1-86400",
        ),
        ("--wait", "HEFT_WAIT", 0, 10000, "milliseconds 0-10000"),
        (
            "--timeout",
            "HEFT_TIMEOUT",
            10,
            60000,
            "milliseconds 10-60000",
        ),
        ("--slots", "HEFT_SLOTS", 1, 1024, "a number 1-1024"),
    ];
    for (flag, var, min, max, wants) in ranges {
        for ok in [min, max] {
            serve(&[flag, &ok.to_string()], &[]);
        }
        let mut bad = vec![(max + 1).to_string(), "x".into(), "-1".into(), "".into()];
        bad.extend((min > 0).then(|| (min - 1).to_string()));
        bad.push("99999999999".into());
        for v in &bad {
            assert_eq!(
                err(&[flag, v], &[]),
                format!("{flag}: bad value \"{v}\": expected {wants}")
            );
            if !v.is_empty() {
                assert_eq!(
                    err(&[], &[(var, v)]),
                    format!("{var}: bad value \"{v}\": expected {wants}")
                );
            }
        }
        assert_eq!(err(&[flag], &[]), format!("{flag} wants {wants}"));
    }
    assert_eq!(
        err(&[], &[("HAPGENT_PORT", "0")]),
        "HAPGENT_PORT: bad value \"0\": expected a port number 1-65535"
    );
}

#[test]
fn serve_bad_values() {
    for (args, env, want) in [
        (
            &["--addr", "1.2.3"][..],
            &[][..],
            "--addr: bad value \"1.2.3\": expected an IPv4 or IPv6[%interface] address",
        ),
        (
            &[],
            &[("HEFT_ADDR", "nowhere")],
            "HEFT_ADDR: bad value \"nowhere\": expected an IPv4 or IPv6[%interface] address",
        ),
        (
            &[],
            &[("HAPGENT_IP", "nope")],
            "HAPGENT_IP: bad value \"nope\": expected an IPv4 or IPv6[%interface] address",
        ),
        (
            &["--allow", "10.0.0.0/33"],
            &[],
            "--allow: bad value \"10.0.0.0/33\": expected CIDR[,CIDR...] like 10.0.0.0/8,::1/128",
        ),
        (
            &[],
            &[("HEFT_ALLOW", "fe80::/200")],
            "HEFT_ALLOW: bad value \"fe80::/200\": expected CIDR[,CIDR...] like 10.0.0.0/8,::1/128",
        ),
        (
            &["--state-file="],
            &[],
            "--state-file: bad value \"\": expected a path",
        ),
        (
            &["--pid-file", ""],
            &[],
            "--pid-file: bad value \"\": expected a path",
        ),
        (
            &["--user", ""],
            &[],
            "--user: bad value \"\": expected a user name or number",
        ),
        (
            &[],
            &[("HEFT_SYSLOG", "on")],
            "HEFT_SYSLOG: bad value \"on\": expected 1, yes, 0 or no",
        ),
        (
            &["--syslog=1"],
            &[],
            "--syslog: bad value \"1\": expected no value",
        ),
    ] {
        assert_eq!(err(args, env), want, "{args:?} {env:?}");
    }
}

#[test]
fn missing_values() {
    for (args, want) in [
        (
            &["--addr"][..],
            "--addr wants an IPv4 or IPv6[%interface] address",
        ),
        (&["--port"], "--port wants a port number 1-65535"),
        (&["--state-file"], "--state-file wants a path"),
        (&["--pid-file"], "--pid-file wants a path"),
        #[cfg(feature = "feedback")]
        (&["--feedback"], "--feedback wants a path"),
        (
            &["--allow"],
            "--allow wants CIDR[,CIDR...] like 10.0.0.0/8,::1/128",
        ),
        (&["--user"], "--user wants a user name or number"),
        (&["--group"], "--group wants a group name or number"),
        (&["--syslog-socket"], "--syslog-socket wants a path"),
        (
            &["set"],
            "set wants a STATUS: UP, READY, DRAIN, MAINT, DOWN, FAIL or STOPPED",
        ),
        (&["set", "up", "--weight"], "--weight wants a weight 0-255"),
        (
            &["set", "up", "--maxconn"],
            "--maxconn wants a number 0-65535 or none",
        ),
        (
            &["set", "up", "--reason"],
            "--reason wants at most 64 printable ASCII bytes without #",
        ),
        (
            &["set", "up", "--service"],
            "--service wants a name of 1 to 32 bytes of [A-Za-z0-9_.-]",
        ),
        (&["set", "up", "--state-file"], "--state-file wants a path"),
        (&["set", "up", "--pid-file"], "--pid-file wants a path"),
        (
            &["get", "--addr"],
            "--addr wants an IPv4 or IPv6[%interface] address",
        ),
        (&["get", "--port"], "--port wants a port number 1-65535"),
        (
            &["get", "--send"],
            "--send wants a payload of at most 256 bytes",
        ),
        (
            &["get", "--timeout"],
            "--timeout wants milliseconds 1-600000",
        ),
    ] {
        assert_eq!(err(args, &[]), want, "{args:?}");
    }
}

#[test]
fn unknown_options_point_at_their_subcommands_help() {
    for (args, want) in [
        (
            &["--prot", "9777"][..],
            "unknown option --prot (see heft --help)",
        ),
        (
            &["serve", "--prot=9777"],
            "unknown option --prot (see heft --help)",
        ),
        (&["-x"], "unknown option -x (see heft --help)"),
        (&["--"], "unknown option -- (see heft --help)"),
        (
            &["--weight", "5"],
            "unknown option --weight (see heft --help)",
        ),
        (
            &["set", "up", "--bogus"],
            "unknown option --bogus (see heft set --help)",
        ),
        (
            &["set", "up", "--port", "1"],
            "unknown option --port (see heft set --help)",
        ),
        (
            &["get", "--bogus"],
            "unknown option --bogus (see heft get --help)",
        ),
        (
            &["get", "--slots", "1"],
            "unknown option --slots (see heft get --help)",
        ),
    ] {
        assert_eq!(err(args, &[]), want, "{args:?}");
    }
    let odd = OsString::from_vec(b"--\xff".to_vec());
    let e = parse(vec![odd.clone()].leak(), &|_| None).err().unwrap();
    assert_eq!(
        e,
        Usage::Unknown {
            option: os(odd),
            page: "heft --help"
        }
    );
}

#[test]
fn unexpected_arguments() {
    for (args, want) in [
        (
            &["serve", "extra"][..],
            "unexpected argument \"extra\" (see heft --help)",
        ),
        (
            &["quiet"],
            "unexpected argument \"quiet\" (see heft --help)",
        ),
        (&["-"], "unexpected argument \"-\" (see heft --help)"),
        (
            &["set", "up", "down"],
            "unexpected argument \"down\" (see heft set --help)",
        ),
        (
            &["get", "web"],
            "unexpected argument \"web\" (see heft get --help)",
        ),
    ] {
        assert_eq!(err(args, &[]), want, "{args:?}");
    }
}

#[test]
fn help_for_each_subcommand() {
    for (args, page) in [
        (&["--help"][..], HELP),
        (&["-h"], HELP),
        (&["help"], HELP),
        (&["help", "serve"], HELP),
        (&["serve", "--help"], HELP),
        (&["--port", "1", "-h"], HELP),
        (&["set", "--help"], SET_HELP),
        (&["set", "drain", "--weight", "5", "-h"], SET_HELP),
        (&["help", "set"], SET_HELP),
        (&["get", "--help"], GET_HELP),
        (&["get", "-h"], GET_HELP),
        (&["help", "get"], GET_HELP),
        (&["check", "--help"], CHECK_HELP),
        (&["help", "check"], CHECK_HELP),
    ] {
        match run(args, &[("HEFT_PORT", "x")]) {
            Ok(Command::Help(text)) => assert_eq!(text, page, "{args:?}"),
            _ => panic!("{args:?}: not help"),
        }
    }
    for args in [&["--version"][..], &["-V"], &["version"]] {
        assert!(matches!(run(args, &[]), Ok(Command::Version)));
    }
}

/// Each help page names each variable its subcommand reads, and each flag
/// a page shows is one its subcommand takes.
#[test]
fn help_pages_and_options_agree() {
    // `heft check --help` shows the flags of serve that name files.
    let files = ["--state-file", "--feedback"];
    let check: Vec<_> = SERVE
        .flags
        .iter()
        .copied()
        .filter(|f| files.contains(&f.0.name()))
        .collect();
    for (page, vars, cmd) in [
        (HELP, SERVE.flags, "serve"),
        (SET_HELP, SET.flags, "set"),
        (GET_HELP, GET.flags, "get"),
        (CHECK_HELP, &check[..], "check"),
    ] {
        for (flag, vars) in vars {
            assert!(page.contains(flag.name()), "{cmd}: {flag:?}");
            for var in *vars {
                assert!(page.contains(var), "{cmd}: {var}");
            }
        }
        // The option lines: `  --flag VALUE ...` or `  -q | -v ...`.
        let lines = page.lines().filter(|l| l.starts_with("  -"));
        let words = lines.flat_map(|l| {
            l.split_whitespace()
                .take_while(|w| w.len() < 3 || w.starts_with('-'))
        });
        let flags: Vec<&str> = words.filter(|w| w.starts_with('-')).collect();
        assert!(
            flags.contains(&"--state-file") || cmd == "get",
            "{cmd}: {flags:?}"
        );
        assert!(
            flags.contains(&"-q") || cmd == "get" || cmd == "check",
            "{cmd}: {flags:?}"
        );
        for flag in flags {
            let args = [cmd, "up", flag, "1"];
            let args = if cmd == "set" {
                &args[..]
            } else {
                &[cmd, flag, "1"][..]
            };
            if let Err(Usage::Unknown { .. }) = run(args, &[]) {
                panic!("{cmd} --help shows {flag}, which {cmd} does not take");
            }
        }
    }
}

#[test]
fn levels() {
    let level = |args: &[&str], env: &[(&str, &str)]| serve(args, env).level;
    assert_eq!(level(&["-q"], &[]), Level::Error);
    assert_eq!(level(&["--quiet"], &[]), Level::Error);
    assert_eq!(level(&["-v"], &[]), Level::Debug);
    assert_eq!(level(&["--verbose"], &[]), Level::Debug);
    assert_eq!(level(&["-q", "-v"], &[]), Level::Debug);
    assert_eq!(level(&["-q"], &[("HEFT_LOG", "verbose")]), Level::Error);
    assert_eq!(level(&[], &[("HEFT_LOG", "verbose")]), Level::Debug);
    assert_eq!(level(&[], &[("HEFT_LOG", "quiet")]), Level::Error);
    // Other values are ignored.
    assert_eq!(level(&[], &[("HEFT_LOG", "--quiet")]), Level::Info);
    assert_eq!(set(&["up", "-v"], &[]).level, Level::Debug);
    assert_eq!(set(&["-q", "up"], &[]).level, Level::Error);
    assert_eq!(set(&["up"], &[("HEFT_LOG", "quiet")]).level, Level::Error);
    assert_eq!(
        err(&["-q=1"], &[]),
        "-q: bad value \"1\": expected no value"
    );
}

#[test]
fn syslog_switch_and_socket() {
    let syslog = |args: &[&str], env: &[(&str, &str)]| serve(args, env).syslog;
    let dev_log = Some(Path::new("/dev/log"));
    assert_eq!(syslog(&["--syslog"], &[]), dev_log);
    for on in ["1", "yes"] {
        assert_eq!(syslog(&[], &[("HEFT_SYSLOG", on)]), dev_log);
    }
    for off in ["0", "no"] {
        assert_eq!(syslog(&[], &[("HEFT_SYSLOG", off)]), None);
    }
    // The flag beats the variable that turns it off.
    assert_eq!(syslog(&["--syslog"], &[("HEFT_SYSLOG", "0")]), dev_log);
    // A socket is used whether or not the switch is on.
    let socket = Some(Path::new("/s"));
    assert_eq!(syslog(&["--syslog-socket", "/s", "--syslog"], &[]), socket);
    assert_eq!(
        syslog(&["--syslog-socket", "/s"], &[("HEFT_SYSLOG", "0")]),
        socket
    );
}

#[test]
fn set_options() {
    let s = set(
        &[
            "drain",
            "--weight",
            "5",
            "--maxconn",
            "none",
            "--reason",
            "x y",
            "--service",
            "web.1",
        ],
        &[],
    );
    assert_eq!(
        (s.status, s.weight, s.maxconn),
        (Status::Drain, Some(5), Some(None))
    );
    assert_eq!((s.reason, s.service), (Some("x y"), Some("web.1")));
    // The status may come anywhere, in any case; `=` works as for serve.
    let s = set(
        &["--weight=255", "Maint", "--maxconn=65535", "--reason="],
        &[],
    );
    assert_eq!(
        (s.status, s.weight, s.maxconn),
        (Status::Maint, Some(255), Some(Some(65535)))
    );
    assert_eq!(s.reason, Some(""));
    assert_eq!(set(&["up", "--maxconn", "0"], &[]).maxconn, Some(Some(0)));
    let s = set(&["up", "--pid-file", "/p"], &[("HEFT_PID_FILE", "/q")]);
    assert_eq!(s.pid_file, Some(Path::new("/p")));
    assert_eq!(
        set(&["up"], &[("HEFT_PID_FILE", "/q")]).pid_file,
        Some(Path::new("/q"))
    );
    // Serve's other variables are not set's.
    set(&["up"], &[("HEFT_PORT", "x"), ("HEFT_ALLOW", "x")]);
    for status in ["up", "READY", "drain", "maint", "down", "fail", "stopped"] {
        set(&[status], &[]);
    }
}

#[test]
fn set_bad_values() {
    let statuses = "UP, READY, DRAIN, MAINT, DOWN, FAIL or STOPPED";
    for (args, want) in [
        (
            &["sideways"][..],
            format!("STATUS: bad value \"sideways\": expected {statuses}"),
        ),
        (
            &["up", "--weight", "256"],
            "--weight: bad value \"256\": expected a weight 0-255".into(),
        ),
        (
            &["up", "--weight", "-1"],
            "--weight: bad value \"-1\": expected a weight 0-255".into(),
        ),
        (
            &["up", "--maxconn", "65536"],
            "--maxconn: bad value \"65536\": expected a number 0-65535 or none".into(),
        ),
        (
            &["up", "--maxconn", "lots"],
            "--maxconn: bad value \"lots\": expected a number 0-65535 or none".into(),
        ),
        (
            &["up", "--reason", "a#b"],
            "--reason: bad value \"a#b\": expected at most 64 printable ASCII bytes without #"
                .into(),
        ),
        (
            &["up", "--service", "a b"],
            "--service: bad value \"a b\": expected a name of 1 to 32 bytes of [A-Za-z0-9_.-]"
                .into(),
        ),
        (
            &["up", "--service", ""],
            "--service: bad value \"\": expected a name of 1 to 32 bytes of [A-Za-z0-9_.-]".into(),
        ),
    ] {
        assert_eq!(err(&[&["set"], args].concat(), &[]), want, "{args:?}");
    }
    let long = "x".repeat(65);
    assert!(err(&["set", "up", "--reason", &long], &[]).starts_with("--reason: bad value"));
    set(&["up", "--reason", &long[1..]], &[]);
    assert!(err(&["set", "up", "--reason", "tab\there"], &[]).starts_with("--reason: bad value"));
}

#[test]
fn get_options() {
    let g = get(
        &["--addr", "::1", "--port", "1", "--timeout", "600000"],
        &[],
    );
    assert_eq!((g.addr, g.port, g.timeout_ms), (ip("::1"), 1, 600_000));
    assert_eq!(get(&["--addr=[::1]"], &[]).addr, ip("::1"));
    assert_eq!(get(&["--timeout", "1"], &[]).timeout_ms, 1);
    // Serve's timeout variable is not get's.
    assert_eq!(get(&[], &[("HEFT_TIMEOUT", "5")]).timeout_ms, 2000);
    for (args, want) in [
        (
            &["--port", "0"][..],
            "--port: bad value \"0\": expected a port number 1-65535",
        ),
        (
            &["--port", "http"],
            "--port: bad value \"http\": expected a port number 1-65535",
        ),
        (
            &["--timeout", "0"],
            "--timeout: bad value \"0\": expected milliseconds 1-600000",
        ),
        (
            &["--timeout", "600001"],
            "--timeout: bad value \"600001\": expected milliseconds 1-600000",
        ),
        (
            &["--addr", "localhost"],
            "--addr: bad value \"localhost\": expected an IPv4 or IPv6[%interface] address",
        ),
    ] {
        assert_eq!(err(&[&["get"], args].concat(), &[]), want, "{args:?}");
    }
    assert_eq!(
        err(&["get"], &[("HEFT_PORT", "x")]),
        "HEFT_PORT: bad value \"x\": expected a port number 1-65535"
    );
}

#[test]
fn send_escapes() {
    let send = |s: &str| get(&["--send", s], &[]).send;
    assert_eq!(send("web\\n"), b"web\n");
    assert_eq!(send("\\tweb\\r\\n"), b"\tweb\r\n");
    assert_eq!(send("a\\\\n"), b"a\\n");
    assert_eq!(send("\\x"), b"x");
    assert_eq!(send("end\\"), b"end\\");
    assert_eq!(send(""), b"");
    assert_eq!(get(&["--send=a=b"], &[]).send, b"a=b");
    assert_eq!(send(&"x".repeat(256)).len(), 256);
    assert_eq!(send(&"\\n".repeat(256)), [b'\n'; 256]);
    let long = "x".repeat(257);
    assert_eq!(
        err(&["get", "--send", &long], &[]),
        format!("--send: bad value \"{long}\": expected a payload of at most 256 bytes")
    );
}

#[test]
fn values_need_not_be_utf8() {
    let path = OsString::from_vec(b"/tmp/\xff.json".to_vec());
    let args = [OsString::from("--state-file"), path.clone()];
    match parse(Vec::from(args).leak(), &|_| None) {
        Ok(Command::Serve(s)) => assert_eq!(s.state_file.as_os_str(), path),
        _ => panic!("not serve"),
    }
    let value = os(path.clone());
    let env = |k: &str| (k == "HEFT_PID_FILE").then_some(value);
    match parse(vec!["set".into(), "up".into()].leak(), &env) {
        Ok(Command::Set(s)) => assert_eq!(s.pid_file, Some(Path::new(&path))),
        _ => panic!("not set"),
    }
}

#[test]
fn the_last_flag_given_wins() {
    assert_eq!(serve(&["--port", "1", "--port", "2"], &[]).port, 2);
    assert_eq!(
        set(&["up", "--weight", "1", "--weight=2"], &[]).weight,
        Some(2)
    );
    // A value may look like a flag.
    assert_eq!(set(&["up", "--reason", "-v"], &[]).reason, Some("-v"));
}

#[cfg(not(feature = "feedback"))]
#[test]
fn feedback_needs_the_feature() {
    assert_eq!(
        err(&["--feedback", "/f.json"], &[]),
        "--feedback: bad value \"/f.json\": expected a build with the feedback feature \
         (this one leaves load feedback out)"
    );
    assert_eq!(
        err(&[], &[("HEFT_FEEDBACK", "/f.json")]),
        "HEFT_FEEDBACK: bad value \"/f.json\": expected a build with the feedback feature \
         (this one leaves load feedback out)"
    );
}

#[test]
fn a_scope_follows_an_ipv6_address() {
    for (given, want, scope) in [
        ("fe80::1%br-lan", "fe80::1", "br-lan"),
        ("[fe80::1%2]", "fe80::1", "2"),
        ("fe80::1%eth0.100", "fe80::1", "eth0.100"),
        ("fe80::1%abcdefghijklmno", "fe80::1", "abcdefghijklmno"),
        ("fe80::1", "fe80::1", ""),
    ] {
        let s = serve(&["--addr", given], &[]);
        assert_eq!(
            (s.addr, &s.scope[..]),
            (ip(want), scope.as_bytes()),
            "{given}"
        );
        let g = get(&["--addr", given], &[]);
        assert_eq!(
            (g.addr, &g.scope[..]),
            (ip(want), scope.as_bytes()),
            "{given}"
        );
    }
    assert_eq!(
        &serve(&[], &[("HAPGENT_IP", "fe80::1%lo")]).scope[..],
        b"lo"
    );
    // No scope for IPv4, none empty, none longer than an interface name (15
    // bytes); the kernel judges the rest (and `heft serve` waits for it).
    for bad in ["10.0.0.1%lo", "fe80::1%", "fe80::1%abcdefghijklmnop"] {
        assert_eq!(
            err(&["--addr", bad], &[]),
            format!("--addr: bad value \"{bad}\": expected an IPv4 or IPv6[%interface] address")
        );
    }
}

#[test]
fn the_state_file_remembers_what_named_it() {
    assert_eq!(serve(&[], &[]).state_from, "");
    let s = serve(&[], &[("HAPGENT_STATE_FILE", "/h.json")]);
    assert_eq!(
        (s.state_file, s.state_from),
        (Path::new("/h.json"), "HAPGENT_STATE_FILE")
    );
    let s = set(
        &["up", "--state-file=/a.json"],
        &[("HEFT_STATE_FILE", "/h.json")],
    );
    assert_eq!(
        (s.state_file, s.state_from),
        (Path::new("/a.json"), "--state-file")
    );
    let c = check(
        &[],
        &[("HEFT_STATE_FILE", "/h.json"), ("HAPGENT_STATE_FILE", "/x")],
    );
    assert_eq!(
        (c.state_file, c.state_from),
        (Path::new("/h.json"), "HEFT_STATE_FILE")
    );
}

#[test]
fn check_takes_serves_options() {
    let c = check(&[], &[]);
    assert_eq!(c.state_file, Path::new("/etc/heft/state.json"));
    assert_eq!(c.level, Level::Info);
    assert_eq!(check(&["-q"], &[]).level, Level::Error);
    let c = check(
        &["--port", "1", "--addr", "fe80::1%lo"],
        &[("HEFT_SLOTS", "3")],
    );
    assert_eq!((c.port, c.slots, &c.scope[..]), (1, 3, &b"lo"[..]));
    #[cfg(feature = "feedback")]
    {
        assert_eq!(check(&[], &[]).feedback, None);
        let c = check(&["--feedback", "/f.json"], &[]);
        assert_eq!(c.feedback, Some(Path::new("/f.json")));
        let c = check(&[], &[("HEFT_FEEDBACK", "/g.json")]);
        assert_eq!(c.feedback, Some(Path::new("/g.json")));
    }
    #[cfg(not(feature = "feedback"))]
    assert!(err(&["check", "--feedback", "/f.json"], &[]).contains("feedback feature"));
    assert_eq!(
        err(&["check", "--prot", "1"], &[]),
        "unknown option --prot (see heft check --help)"
    );
    assert_eq!(
        err(&["check", "x.json"], &[]),
        "unexpected argument \"x.json\" (see heft check --help)"
    );
    assert_eq!(
        err(&["check"], &[("HEFT_PORT", "0")]),
        "HEFT_PORT: bad value \"0\": expected a port number 1-65535"
    );
}
