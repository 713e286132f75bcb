//! heft: a HAProxy agent-check agent for small machines.
//!
//! HAProxy connects to the agent every few seconds and reads one line such as
//! `up ready 77% maxconn:300`. heft answers from a JSON state file, Unix
//! signals, and (optionally) the host's load, in one thread around one
//! `poll(2)` loop. Why it is built this way:
//!
//! - One thread, no async runtime: an agent answers a handful of probes per
//!   second; a poll loop is all it needs and the smallest thing that works.
//! - Replies are formatted when the state changes, never per probe, so a
//!   probe costs accept, (read), write, shutdown, read, close.
//! - Signal handlers store to atomics and poke an eventfd; the loop does the
//!   rest. Nothing in a handler can block or deadlock.
//! - No heap allocation after start-up: fixed buffers, a slot table sized
//!   once (tests/alloc.rs watches the process's memory stay flat).
//! - No `core::fmt`: it would cost about 8 KB on every target.
//!
//! Not features: TLS, more than 16 services per file, reasons
//! longer than 64 bytes, a configuration file for the agent itself (flags and
//! variables suffice), Windows.
//!
//! Where things live (dependencies point down this list, never up):
//!
//! - `cli/`: the command line (`heft`, `heft get`, `heft set`, `heft check`).
//! - `server/`: the poll loop, connection slots, persistence, the allow
//!   list and the privilege drop.
//! - `feedback/`: load feedback: rules, curves, metrics, the health URL
//!   (cargo feature `feedback`, on by default).
//! - `proto/`: what crosses the wire: the agent request classifier, and the
//!   HTTP port's health answers and `/metrics`.
//! - `model/`: the state, its JSON form, the replies and the agent; no I/O.
//! - `log`, `num`: log lines, and byte helpers for numbers and addresses.
//! - `os/`: the operating system: descriptors, sockets, files, ids,
//!   signals, the clock. The only `unsafe` code; imports nothing above it
//!   but `time`.
//! - `time`: millisecond instants and every comparison of them, right
//!   across the clock's wrap; imports nothing.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
#[cfg(feature = "feedback")]
pub mod feedback;
pub mod log;
pub mod model;
pub mod num;
pub mod os;
pub mod proto;
pub mod server;
pub mod time;
