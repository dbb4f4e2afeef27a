//! The bot's integration tests, in one binary: each test binary links whisper.cpp, webrtc-rs and
//! libopus, so one binary instead of eleven builds faster.

mod common;

mod bad_input;
mod decode_repeatable;
mod janus_signalling;
mod livekit_hostile;
mod long_silence;
mod recording;
mod schedule;
mod segmentation;
mod transcribe_real;
mod transcriber;
mod zoom_rtms_hostile;
