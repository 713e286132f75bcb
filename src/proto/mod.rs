//! What crosses the agent port: the request classifier and the HTTP answers
//! (health and `/metrics`). Parses and formats bytes; no I/O.

pub mod http;
pub mod request;
