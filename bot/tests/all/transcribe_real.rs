//! The whole live path on real recordings with the real Whisper model: replayed Opus tracks
//! through reorder, decode, voice gate, streaming transcription and the event sink.
//! Needs the tiny.en-q8_0 model installed (`parley models install tiny.en`; CI does it first).

use crate::common;

use common::testdata;
use parley_bot::asr::whisper::LoadOptions;
use parley_bot::connector::replay::Pace;
use parley_bot::local_run::LocalRun;
use parley_bot::pipeline::PipelineConfig;
use parley_shared::EventBody;
use parley_testkit::eval::{HypSegment, Reference, score};
use std::path::Path;

/// The tests in this file take turns: each loads the model and keeps both cores busy, and the
/// live test's partials only appear when decodes keep up with the audio.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn transcribe(
    dir: &Path,
    config: PipelineConfig,
    pace: Pace,
    options: LoadOptions,
) -> (Reference, LocalRun) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let reference = Reference::load(&dir.join("reference.json")).expect("reference");
    let model = common::tiny_model_with(options);
    let (run, _pool) = common::replay(&model, &[dir.to_path_buf()], pace, config).await;
    (reference, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_meeting_lands_under_the_right_names() {
    let (reference, run) = transcribe(
        &testdata("meeting-dev"),
        common::offline(),
        Pace::Unpaced,
        LoadOptions::default(),
    )
    .await;
    let s = score(&reference, &HypSegment::finals(run.finals()));
    eprintln!(
        "WER {:.1} % ({:?}), attribution {:.1} %",
        s.overall.rate() * 100.0,
        s.per_speaker,
        s.attribution() * 100.0
    );
    assert!(
        s.overall.rate() <= 0.18,
        "WER {:.1} %",
        s.overall.rate() * 100.0
    );
    assert_eq!(s.attribution(), 1.0);
    let transcript = run.transcript();
    let names: std::collections::BTreeSet<_> = transcript
        .segments
        .iter()
        .map(|l| l.speaker.as_str())
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["Maria Santos", "Priya Shah", "Tom Becker"]
    );
}

/// `--flash-attention`, the low-memory mode, runs a different attention kernel; it must still
/// transcribe a meeting about as well (it scored 6.6 % here against 7.6 % without).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_attention_transcribes_the_dev_meeting() {
    let flash = LoadOptions {
        flash_attention: true,
    };
    let (reference, run) = transcribe(
        &testdata("meeting-dev"),
        common::offline(),
        Pace::Unpaced,
        flash,
    )
    .await;
    let s = score(&reference, &HypSegment::finals(run.finals()));
    assert!(
        s.overall.rate() <= 0.15,
        "WER {:.1} % with flash attention: {:?}",
        s.overall.rate() * 100.0,
        run.transcript()
    );
    assert_eq!(s.attribution(), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_speech_is_transcribed_accurately() {
    let (reference, run) = transcribe(
        &testdata("jfk"),
        common::offline(),
        Pace::Unpaced,
        LoadOptions::default(),
    )
    .await;
    let s = score(&reference, &HypSegment::finals(run.finals()));
    assert!(
        s.overall.rate() <= 0.05,
        "JFK WER {:.1} %: {:?}",
        s.overall.rate() * 100.0,
        run.transcript()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_emits_stable_partials_then_one_final_per_segment() {
    // Twice real time: the live path with partials, in half the time.
    let (reference, run) = transcribe(
        &testdata("sample"),
        PipelineConfig::default(),
        Pace::Speed(2.0),
        LoadOptions::default(),
    )
    .await;
    let s = score(&reference, &HypSegment::finals(run.finals()));
    assert!(
        s.overall.rate() <= 0.25,
        "sample WER {:.1} %",
        s.overall.rate() * 100.0
    );
    let mut partials = 0;
    let mut finals_seen = std::collections::HashSet::new();
    for e in &run.events {
        if let EventBody::Segment(seg) = &e.event.body {
            assert!(
                !finals_seen.contains(&seg.segment_id),
                "an event for {} came after its final",
                seg.segment_id
            );
            if seg.is_final {
                finals_seen.insert(seg.segment_id);
            } else {
                partials += 1;
            }
        }
    }
    assert!(partials > 0, "no partials in real-time replay");
    // Sequence numbers are dense and increasing.
    for (i, e) in run.events.iter().enumerate() {
        assert_eq!(e.event.seq, i as u64);
    }
}
