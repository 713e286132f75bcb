//! Load feedback: samples the host on a timer inside the poll loop and turns the values into a weight and a health verdict.
pub mod config;
pub mod curve;
pub mod json;
pub mod metrics;
pub mod rule;
