//! What Parley's tests and benchmarks share: scoring transcripts against a reference, private
//! throw-away Postgres and Redis servers, and this process's CPU and memory. Only test and
//! benchmark code depends on this crate, so none of it reaches the production binaries.

pub mod eval;
pub mod procstat;
pub mod servers;
