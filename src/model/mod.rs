//! The agent's state and what it answers: the state file's JSON form, the
//! replies and the agent that ties them together. No I/O.

pub mod agent;
pub mod json;
pub mod reply;
pub mod state;
