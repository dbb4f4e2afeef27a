//! Helpers shared by the integration tests: test data, the installed model, chunking.

use parley_bot::asr::whisper::{LoadOptions, WhisperModel};
use parley_bot::audio::track::AudioChunk;
use parley_models::{ModelName, default_model_dir, find_installed};
use std::path::{Path, PathBuf};

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

/// The installed default model (tiny.en-q8_0); fails with what to do when it is missing.
pub fn tiny_model() -> WhisperModel {
    tiny_model_with(LoadOptions::default())
}

/// The same, loaded with `options`.
pub fn tiny_model_with(options: LoadOptions) -> WhisperModel {
    let dir = default_model_dir();
    let name = ModelName::DEFAULT;
    let installed = find_installed(name, &dir).unwrap_or_else(|e| {
        panic!("{name} is not installed in {}: {e}; run `parley models install {name}` (scripts/test does)", dir.display())
    });
    WhisperModel::load(&installed.path, options).expect("model loads")
}

/// 16 kHz samples cut into 20 ms chunks positioned from zero, as a track decoder emits them.
pub fn chunked(samples: &[f32]) -> Vec<AudioChunk> {
    samples
        .chunks(320)
        .enumerate()
        .map(|(i, c)| AudioChunk {
            start: i as u64 * 320,
            samples: c.to_vec(),
        })
        .collect()
}

/// Replays `inputs` through the pipeline with `model` on one worker.
pub async fn replay(
    model: &WhisperModel,
    inputs: &[PathBuf],
    pace: parley_bot::connector::replay::Pace,
    config: parley_bot::pipeline::PipelineConfig,
) -> (
    parley_bot::local_run::LocalRun,
    parley_bot::asr::pool::AsrPool,
) {
    use parley_bot::asr::pool::{AsrPool, PoolConfig};
    use parley_bot::connector::replay::ReplayConnector;
    use parley_bot::local_run::{Progress, run_replay};
    let pool = AsrPool::start(model, PoolConfig::default()).expect("pool");
    let tracks = ReplayConnector::discover(inputs).expect("tracks");
    let run = run_replay(tracks, &pool, pace, config, Progress::default(), None)
        .await
        .expect("run");
    (run, pool)
}

/// Offline transcription settings: finals only.
pub fn offline() -> parley_bot::pipeline::PipelineConfig {
    parley_bot::pipeline::PipelineConfig {
        transcriber: parley_bot::asr::transcriber::TranscriberConfig::offline(),
        ..Default::default()
    }
}
