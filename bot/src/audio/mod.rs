//! Sans-IO audio path from network or file to 16 kHz mono speech: RTP reordering and loss
//! concealment, Opus decoding, resampling and the voice gate. Nothing here reads a clock or a socket.

pub mod file;
pub mod jitter;
pub mod opus_decode;
pub mod resample;
pub mod track;
pub mod vad;

/// Whisper's input rate.
pub const ASR_RATE: u32 = 16_000;
/// Opus always decodes at 48 kHz here; RTP timestamps for Opus tick at 48 kHz too (RFC 7587).
pub const OPUS_RATE: u32 = 48_000;

/// Milliseconds to 16 kHz samples.
pub fn ms_to_samples(ms: u64) -> u64 {
    ms * u64::from(ASR_RATE) / 1000
}

/// 16 kHz samples to milliseconds.
pub fn samples_to_ms(samples: u64) -> u64 {
    samples * 1000 / u64::from(ASR_RATE)
}
