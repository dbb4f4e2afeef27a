//! Parley's orchestrator and command line: model management, offline and streaming
//! transcription of recorded meetings, and benchmarks.

pub mod cli;
pub mod telemetry;
