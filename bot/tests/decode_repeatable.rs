//! A final decodes the same whatever the worker decoded before it: beam search in a reused
//! whisper.cpp state once made the same audio come out differently from run to run.

mod common;

use parley_bot::asr::whisper::{DecodeKind, EngineConfig};

#[test]
fn the_same_audio_gives_the_same_final_after_other_decodes() {
    let model = common::tiny_model();
    let samples =
        parley_bot::audio::file::read_16k(&common::testdata("meeting-dev/maria.opus"), 600_000)
            .expect("decode");
    let (a, b) = (
        &samples[16_000 * 17..16_000 * 22],
        &samples[16_000 * 5..16_000 * 13],
    );
    let mut decoder = model.decoder(EngineConfig::default()).expect("decoder");
    let first = decoder
        .decode(a, DecodeKind::Final, None)
        .expect("decode")
        .text;
    for _ in 0..2 {
        decoder.decode(b, DecodeKind::Final, None).expect("decode");
        decoder
            .decode(a, DecodeKind::Partial, None)
            .expect("decode");
        assert_eq!(
            decoder
                .decode(a, DecodeKind::Final, None)
                .expect("decode")
                .text,
            first
        );
    }
}
