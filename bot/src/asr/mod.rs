//! Streaming transcription: per-speaker utterance segmentation behind a voice gate, partial
//! hypotheses stabilised by local agreement, finals at end of utterance, all decoded by one shared
//! Whisper model on a bounded pool of worker threads off the async executor.

pub mod agreement;
pub mod pauses;
pub mod pool;
pub mod schedule;
pub mod search;
pub mod settings;
pub mod text;
pub mod transcriber;
pub mod utterance;
pub mod whisper;
