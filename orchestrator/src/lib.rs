//! Parley's orchestrator and command line: the server (accounts, meetings, event ingest,
//! in-process bots), model management, offline transcription of recorded meetings, and
//! benchmarks.

pub mod api;
pub mod app;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deletion;
pub mod fleet;
pub mod ingest;
pub mod jobs;
pub mod live;
pub mod mail;
pub mod mcp;
pub mod metrics;
pub mod store;
pub mod summary;
pub mod supervise;
pub mod webhooks;
