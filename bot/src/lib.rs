//! Parley's meeting bot: joins a meeting through a connector, turns each participant's track into
//! live transcript segments with Whisper, and publishes them as events.

pub mod asr;
pub mod audio;
pub mod cli;
pub mod config;
pub mod connector;
pub mod egress;
pub mod fleet;
pub mod local_run;
pub mod pipeline;
pub mod sink;
pub mod telemetry;
