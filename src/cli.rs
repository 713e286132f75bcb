//! Reads the command line and environment into typed options; does no I/O.
//!
//! A flag beats its `HEFT_*` variable, which beats hapgent's variable, which
//! beats the default. A bad value is reported by `Usage` naming its source.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::allow::AllowList;
use crate::log::Level;
use crate::num;
use crate::state::{self, Name, Reason, Status};

/// The default agent port, hapgent's.
pub const DEFAULT_PORT: u16 = 9777;
/// The default state file.
pub const DEFAULT_STATE_FILE: &str = "/etc/heft/state.json";
/// How long (ms) to wait for a payload's first word or an HTTP request line.
pub const DEFAULT_WAIT_MS: u32 = 5;
/// How long (ms) a connection may live in all.
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// How many connections are served at once.
pub const DEFAULT_SLOTS: u32 = 64;
/// The most connection slots one agent may have.
pub const SLOTS_MAX: u32 = 1024;

/// A value as given (borrowed from `argv` or `environ`) and the flag or variable that gave it.
pub type Given = (&'static str, &'static [u8]);

/// What to run.
pub enum Command {
    /// Run the agent.
    Serve(Serve),
    /// Change the state file and signal the agent.
    Set(Set),
    /// Probe an agent.
    Get(Get),
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
}

/// Options of `heft serve`.
pub struct Serve {
    /// Address to listen on (`::` is dual-stack).
    pub addr: IpAddr,
    /// Port to listen on.
    pub port: u16,
    /// The JSON state file.
    pub state_file: &'static Path,
    /// Where to write our pid, if anywhere.
    pub pid_file: Option<&'static Path>,
    /// How long `ready` is sent after start-up and each status change; `None`: always.
    pub ready_window_ms: Option<u32>,
    /// How long to wait for a payload or HTTP request line before answering.
    pub wait_ms: u32,
    /// How long a connection may stay open.
    pub timeout_ms: u32,
    /// How many connections are served at once.
    pub slots: u32,
    /// The load feedback rules, if any.
    pub feedback: Option<&'static Path>,
    /// Who may ask.
    pub allow: AllowList,
    /// User to run as after binding, and where that was said (flag or variable).
    pub user: Option<Given>,
    /// Group to run as after binding, and where that was said.
    pub group: Option<Given>,
    /// The syslog socket to log to, when logging to syslog.
    pub syslog: Option<&'static Path>,
    /// How much to log.
    pub level: Level,
}

/// Options of `heft set`.
pub struct Set {
    /// The new status.
    pub status: Status,
    /// The new weight, if told.
    pub weight: Option<u8>,
    /// The new maxconn (`Some(None)` removes it), if told.
    pub maxconn: Option<Option<u16>>,
    /// The new reason (empty removes it), if told.
    pub reason: Option<Reason>,
    /// The service to change instead of the top level.
    pub service: Option<Name>,
    /// The state file.
    pub state_file: &'static Path,
    /// The agent's pid file, to send it SIGHUP.
    pub pid_file: Option<&'static Path>,
    /// How much to log.
    pub level: Level,
}

/// Options of `heft get`.
pub struct Get {
    /// Agent address.
    pub addr: IpAddr,
    /// Agent port.
    pub port: u16,
    /// Bytes to send after connecting.
    pub send: heapless::Vec<u8, 256>,
    /// How long to wait for the whole exchange.
    pub timeout_ms: u32,
}

/// A bad command line or environment value.
#[derive(Debug)]
pub struct Usage {
    /// The flag or variable at fault.
    pub source: &'static str,
    /// The value given, if one was.
    pub value: Option<&'static [u8]>,
    /// What was expected.
    pub expected: &'static str,
}

fn bad(source: &'static str, value: &'static [u8], expected: &'static str) -> Usage {
    Usage {
        source,
        value: Some(value),
        expected,
    }
}

/// One option: its flag, its variables, and whether it takes a value.
struct Opt {
    flag: &'static str,
    vars: &'static [&'static str],
    takes_value: bool,
}

const SERVE: &[Opt] = &[
    Opt {
        flag: "--addr",
        vars: &["HEFT_ADDR", "HAPGENT_IP"],
        takes_value: true,
    },
    Opt {
        flag: "--port",
        vars: &["HEFT_PORT", "HAPGENT_PORT"],
        takes_value: true,
    },
    Opt {
        flag: "--state-file",
        vars: &["HEFT_STATE_FILE", "HAPGENT_STATE_FILE"],
        takes_value: true,
    },
    Opt {
        flag: "--pid-file",
        vars: &["HEFT_PID_FILE"],
        takes_value: true,
    },
    Opt {
        flag: "--ready-window",
        vars: &["HEFT_READY_WINDOW"],
        takes_value: true,
    },
    Opt {
        flag: "--wait",
        vars: &["HEFT_WAIT"],
        takes_value: true,
    },
    Opt {
        flag: "--timeout",
        vars: &["HEFT_TIMEOUT"],
        takes_value: true,
    },
    Opt {
        flag: "--slots",
        vars: &["HEFT_SLOTS"],
        takes_value: true,
    },
    Opt {
        flag: "--feedback",
        vars: &["HEFT_FEEDBACK"],
        takes_value: true,
    },
    Opt {
        flag: "--allow",
        vars: &["HEFT_ALLOW"],
        takes_value: true,
    },
    Opt {
        flag: "--user",
        vars: &["HEFT_USER"],
        takes_value: true,
    },
    Opt {
        flag: "--group",
        vars: &["HEFT_GROUP"],
        takes_value: true,
    },
    Opt {
        flag: "--syslog",
        vars: &["HEFT_SYSLOG"],
        takes_value: false,
    },
    Opt {
        flag: "--syslog-socket",
        vars: &["HEFT_SYSLOG_SOCKET"],
        takes_value: true,
    },
];

const SET: &[Opt] = &[
    Opt {
        flag: "--weight",
        vars: &[],
        takes_value: true,
    },
    Opt {
        flag: "--maxconn",
        vars: &[],
        takes_value: true,
    },
    Opt {
        flag: "--reason",
        vars: &[],
        takes_value: true,
    },
    Opt {
        flag: "--service",
        vars: &[],
        takes_value: true,
    },
    Opt {
        flag: "--state-file",
        vars: &["HEFT_STATE_FILE", "HAPGENT_STATE_FILE"],
        takes_value: true,
    },
    Opt {
        flag: "--pid-file",
        vars: &["HEFT_PID_FILE"],
        takes_value: true,
    },
];

const GET: &[Opt] = &[
    Opt {
        flag: "--addr",
        vars: &[],
        takes_value: true,
    },
    Opt {
        flag: "--port",
        vars: &["HEFT_PORT", "HAPGENT_PORT"],
        takes_value: true,
    },
    Opt {
        flag: "--send",
        vars: &[],
        takes_value: true,
    },
    Opt {
        flag: "--timeout",
        vars: &[],
        takes_value: true,
    },
];

/// The values found for one command's options, by index into its table.
struct Found {
    /// `(source, value)`; a switch without a value has an empty one.
    vals: [Option<Given>; 16],
    positional: Option<&'static [u8]>,
    level: Level,
}

fn scan(
    table: &'static [Opt],
    args: &mut dyn Iterator<Item = &'static [u8]>,
    env: &dyn Fn(&str) -> Option<&'static [u8]>,
    positional: bool,
) -> Result<Found, Usage> {
    let mut f = Found {
        vals: Default::default(),
        positional: None,
        level: Level::Info,
    };
    while let Some(arg) = args.next() {
        let bytes = arg;
        match bytes {
            b"-q" | b"--quiet" => f.level = Level::Error,
            b"-v" | b"--verbose" => f.level = Level::Debug,
            _ if bytes.starts_with(b"-") && bytes.len() > 1 => {
                let (name, inline) = match bytes.iter().position(|&c| c == b'=') {
                    Some(i) => (
                        &bytes[..i],
                        Some(&bytes[i + 1..]),
                    ),
                    None => (bytes, None),
                };
                let Some(i) = table.iter().position(|o| o.flag.as_bytes() == name) else {
                    return Err(bad("option", arg, "see heft --help"));
                };
                let o = &table[i];
                let v = if !o.takes_value {
                    if inline.is_some() {
                        return Err(bad(o.flag, arg, "no value"));
                    }
                    &[][..]
                } else {
                    match inline.or_else(|| args.next()) {
                        Some(v) => v,
                        None => {
                            return Err(Usage {
                                source: o.flag,
                                value: None,
                                expected: "a value",
                            })
                        }
                    }
                };
                f.vals[i] = Some((o.flag, v));
            }
            _ if positional && f.positional.is_none() => f.positional = Some(arg),
            _ => return Err(bad("argument", arg, "see heft --help")),
        }
    }
    for (i, o) in table.iter().enumerate() {
        if f.vals[i].is_none() {
            f.vals[i] = o
                .vars
                .iter()
                .find_map(|&v| env(v).filter(|x| !x.is_empty()).map(|x| (v, x)));
        }
    }
    if let Some(l) = env("HEFT_LOG") {
        if f.level == Level::Info {
            f.level = match l {
                b"quiet" => Level::Error,
                b"verbose" => Level::Debug,
                _ => Level::Info,
            };
        }
    }
    Ok(f)
}

fn number(
    v: &Option<Given>,
    min: u32,
    max: u32,
    expected: &'static str,
) -> Result<Option<u32>, Usage> {
    match v {
        None => Ok(None),
        Some((src, val)) => match num::parse_u32(val) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(bad(src, val, expected)),
        },
    }
}

fn addr(v: &Option<Given>, default: &str) -> Result<IpAddr, Usage> {
    let (src, val) = match v {
        None => return Ok(default.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
        Some((s, v)) => (*s, v),
    };
    OsStr::from_bytes(val)
        .to_str()
        .and_then(|s| s.trim_start_matches('[').trim_end_matches(']').parse().ok())
        .ok_or_else(|| bad(src, val, "an IPv4 or IPv6 address"))
}

fn path(v: Option<Given>) -> Option<&'static Path> {
    v.map(|(_, p)| Path::new(OsStr::from_bytes(p)))
}

/// Parses the arguments after the program name, reading variables through `env`.
pub fn parse(
    args: impl Iterator<Item = &'static [u8]>,
    env: &dyn Fn(&str) -> Option<&'static [u8]>,
) -> Result<Command, Usage> {
    const SERVE_CMD: u8 = 0;
    const SET_CMD: u8 = 1;
    const GET_CMD: u8 = 2;
    let mut args = args.peekable();
    let (table, cmd, named) = match args.peek().copied() {
        Some(b"--help" | b"-h" | b"help") => return Ok(Command::Help),
        Some(b"--version" | b"-V" | b"version") => return Ok(Command::Version),
        Some(b"set") => (SET, SET_CMD, true),
        Some(b"get") => (GET, GET_CMD, true),
        Some(b"serve") => (SERVE, SERVE_CMD, true),
        _ => (SERVE, SERVE_CMD, false),
    };
    if named {
        args.next();
    }
    let found = scan(table, &mut args, env, cmd == SET_CMD)?;
    match cmd {
        SET_CMD => parse_set(found).map(Command::Set),
        GET_CMD => parse_get(found).map(Command::Get),
        _ => parse_serve(found).map(Command::Serve),
    }
}

fn parse_serve(mut f: Found) -> Result<Serve, Usage> {
    let v = &f.vals;
    let allow = match &v[9] {
        None => AllowList::everyone(),
        Some((src, val)) => AllowList::parse(val)
            .ok_or_else(|| bad(src, val, "CIDR[,CIDR...] like 10.0.0.0/8,::1/128"))?,
    };
    let syslog = match &v[12] {
        None => false,
        Some((_, b"" | b"1" | b"yes")) => true,
        Some((_, b"0" | b"no")) => false,
        Some((src, val)) => return Err(bad(src, val, "1 or 0")),
    };
    Ok(Serve {
        addr: addr(&v[0], "0.0.0.0")?,
        port: number(&v[1], 1, 65535, "a port from 1 to 65535")?.unwrap_or(DEFAULT_PORT as u32)
            as u16,
        ready_window_ms: number(&v[4], 1, 86400, "seconds from 1 to 86400")?.map(|s| s * 1000),
        wait_ms: number(&v[5], 0, 10_000, "milliseconds from 0 to 10000")?
            .unwrap_or(DEFAULT_WAIT_MS),
        timeout_ms: number(&v[6], 10, 60_000, "milliseconds from 10 to 60000")?
            .unwrap_or(DEFAULT_TIMEOUT_MS),
        slots: number(&v[7], 1, SLOTS_MAX, "a number from 1 to 1024")?.unwrap_or(DEFAULT_SLOTS),
        state_file: path(f.vals[2].take()).unwrap_or(Path::new(DEFAULT_STATE_FILE)),
        pid_file: path(f.vals[3].take()),
        feedback: path(f.vals[8].take()),
        allow,
        user: f.vals[10].take(),
        group: f.vals[11].take(),
        syslog: match (syslog, f.vals[13].take()) {
            (_, Some((_, p))) => Some(Path::new(OsStr::from_bytes(p))),
            (true, None) => Some(Path::new("/dev/log")),
            (false, None) => None,
        },
        level: f.level,
    })
}

fn parse_set(mut f: Found) -> Result<Set, Usage> {
    let status = match &f.positional {
        None => {
            return Err(Usage {
                source: "STATUS",
                value: None,
                expected: "UP READY DRAIN MAINT DOWN FAIL or STOPPED",
            })
        }
        Some(s) => Status::parse(s)
            .ok_or_else(|| bad("STATUS", s, "UP READY DRAIN MAINT DOWN FAIL or STOPPED"))?,
    };
    let v = &f.vals;
    let maxconn = match &v[1] {
        Some((_, b"none")) => Some(None),
        _ => number(&v[1], 0, 65535, "0 to 65535, or none")?.map(|m| Some(m as u16)),
    };
    let reason = match &v[2] {
        None => None,
        Some((src, val)) => {
            let mut r = Reason::new();
            let s = OsStr::from_bytes(val)
                .to_str()
                .filter(|s| state::check_reason(s.as_bytes()).is_ok());
            match s {
                Some(s) if r.push_str(s).is_ok() => Some(r),
                _ => return Err(bad(src, val, "at most 64 printable ASCII bytes without #")),
            }
        }
    };
    let service = match &v[3] {
        None => None,
        Some((src, val)) => {
            let mut n = Name::new();
            match OsStr::from_bytes(val)
                .to_str()
                .filter(|s| state::check_name(s.as_bytes()).is_ok())
            {
                Some(s) if n.push_str(s).is_ok() => Some(n),
                _ => return Err(bad(src, val, "a name of 1 to 32 bytes of [A-Za-z0-9_.-]")),
            }
        }
    };
    Ok(Set {
        status,
        weight: number(&v[0], 0, 255, "0 to 255")?.map(|w| w as u8),
        maxconn,
        reason,
        service,
        state_file: path(f.vals[4].take()).unwrap_or(Path::new(DEFAULT_STATE_FILE)),
        pid_file: path(f.vals[5].take()),
        level: f.level,
    })
}

fn parse_get(f: Found) -> Result<Get, Usage> {
    let v = &f.vals;
    let mut send = heapless::Vec::new();
    if let Some((src, val)) = &v[2] {
        unescape(val, &mut send).map_err(|_| bad(src, val, "at most 256 bytes"))?;
    }
    Ok(Get {
        addr: addr(&v[0], "127.0.0.1")?,
        port: number(&v[1], 1, 65535, "a port from 1 to 65535")?.unwrap_or(DEFAULT_PORT as u32)
            as u16,
        send,
        timeout_ms: number(&v[3], 1, 600_000, "milliseconds from 1 to 600000")?
            .unwrap_or(DEFAULT_TIMEOUT_MS),
    })
}

/// Copies `s` into `out`, turning `\n`, `\r`, `\t` and `\\` into their bytes.
fn unescape(s: &[u8], out: &mut heapless::Vec<u8, 256>) -> Result<(), num::Full> {
    let mut it = s.iter();
    while let Some(&c) = it.next() {
        let b = if c == b'\\' {
            match it.next() {
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(&o) => o,
                None => b'\\',
            }
        } else {
            c
        };
        out.push(b).map_err(|_| num::Full)?;
    }
    Ok(())
}

/// The text `heft --help` prints.
pub const HELP: &str = "\
usage: heft [serve] [options]      run the agent in the foreground
       heft set STATUS [options]   change the state file, then SIGHUP the agent
       heft get [options]          probe an agent and print its reply line
       heft --help | --version

serve options (each also read from the variable shown):
  --addr ADDR           HEFT_ADDR, HAPGENT_IP        listen address (0.0.0.0; :: is dual-stack)
  --port PORT           HEFT_PORT, HAPGENT_PORT      listen port (9777)
  --state-file PATH     HEFT_STATE_FILE, HAPGENT_STATE_FILE  (/etc/heft/state.json)
  --pid-file PATH       HEFT_PID_FILE                write the pid here (none)
  --ready-window SEC    HEFT_READY_WINDOW            send `ready` only SEC after a change (always)
  --wait MS             HEFT_WAIT                    wait for a payload or HTTP request (5)
  --timeout MS          HEFT_TIMEOUT                 close connections after MS (2000)
  --slots N             HEFT_SLOTS                   connections served at once (64)
  --feedback PATH       HEFT_FEEDBACK                load feedback rules (none)
  --allow CIDR,...      HEFT_ALLOW                   who may ask (everyone)
  --user NAME           HEFT_USER                    run as NAME after binding
  --group NAME          HEFT_GROUP                   run as group NAME after binding
  --syslog              HEFT_SYSLOG=1                log to /dev/log, facility daemon
  --syslog-socket PATH  HEFT_SYSLOG_SOCKET           log to this syslog socket instead
  -q | -v               HEFT_LOG=quiet|verbose       log less | more

set options: --weight N, --maxconn N|none, --reason TEXT, --service NAME,
             --state-file PATH, --pid-file PATH
get options: --addr ADDR (127.0.0.1), --port PORT, --send PAYLOAD (\\n \\r \\t
             understood), --timeout MS (2000)

exit codes: 0 stopped by SIGTERM/SIGINT (get: a whole line came back),
            1 get: no whole line, 100 bad usage or configuration,
            111 a system call failed at start-up
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&'static str], env: &[(&str, &'static str)]) -> Result<Command, Usage> {
        let lookup = |k: &str| env.iter().find(|e| e.0 == k).map(|e| e.1.as_bytes());
        parse(args.iter().map(|a| a.as_bytes()), &lookup)
    }

    fn serve(args: &[&'static str], env: &[(&str, &'static str)]) -> Serve {
        match run(args, env) {
            Ok(Command::Serve(s)) => s,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn defaults() {
        let s = serve(&[], &[]);
        assert_eq!(s.addr.to_string(), "0.0.0.0");
        assert_eq!(s.port, 9777);
        assert_eq!(s.state_file, Path::new("/etc/heft/state.json"));
        assert!(s.pid_file.is_none() && s.ready_window_ms.is_none());
    }

    #[test]
    fn flag_beats_variable_beats_hapgent() {
        let env = [
            ("HEFT_PORT", "1000"),
            ("HAPGENT_PORT", "2000"),
            ("HAPGENT_IP", "127.0.0.1"),
        ];
        assert_eq!(serve(&["--port", "3000"], &env).port, 3000);
        assert_eq!(serve(&["--port=3001"], &env).port, 3001);
        assert_eq!(serve(&[], &env).port, 1000);
        assert_eq!(serve(&[], &env[1..]).port, 2000);
        assert_eq!(serve(&["serve"], &env).addr.to_string(), "127.0.0.1");
        assert_eq!(serve(&["--addr", "::"], &env).addr.to_string(), "::");
        let s = serve(
            &[],
            &[
                ("HAPGENT_STATE_FILE", "/x.json"),
                ("HEFT_READY_WINDOW", "6"),
            ],
        );
        assert_eq!(
            (s.state_file, s.ready_window_ms),
            (Path::new("/x.json"), Some(6000))
        );
    }

    #[test]
    fn names_bad_values() {
        let e = run(&["--port", "99999"], &[]).err().unwrap();
        assert_eq!(
            (e.source, e.value.unwrap()),
            ("--port", &b"99999"[..])
        );
        let e = run(&[], &[("HEFT_PORT", "x")]).err().unwrap();
        assert_eq!(e.source, "HEFT_PORT");
        assert_eq!(
            run(&["--addr", "1.2.3"], &[]).err().unwrap().source,
            "--addr"
        );
        assert_eq!(run(&["--bogus"], &[]).err().unwrap().source, "option");
        assert_eq!(run(&["--port"], &[]).err().unwrap().source, "--port");
    }

    #[test]
    fn set_and_get() {
        match run(
            &[
                "set",
                "drain",
                "--weight",
                "5",
                "--maxconn",
                "none",
                "--reason",
                "x y",
            ],
            &[],
        ) {
            Ok(Command::Set(s)) => {
                assert_eq!(
                    (s.status, s.weight, s.maxconn),
                    (Status::Drain, Some(5), Some(None))
                );
                assert_eq!(s.reason.unwrap().as_str(), "x y");
            }
            _ => panic!(),
        }
        assert_eq!(
            run(&["set", "up", "--reason", "a#b"], &[])
                .err()
                .unwrap()
                .source,
            "--reason"
        );
        assert_eq!(run(&["set"], &[]).err().unwrap().source, "STATUS");
        match run(&["get", "--send", "web\\n", "--port", "1"], &[]) {
            Ok(Command::Get(g)) => assert_eq!((&g.send[..], g.port), (&b"web\n"[..], 1)),
            _ => panic!(),
        }
    }
}
