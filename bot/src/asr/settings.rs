//! Whisper settings shared by every way of running a bot, and turning them into a loaded model
//! and worker pool (installing the model first when it is missing).

use crate::asr::pool::{ALONE_WINDOW, AsrPool, PARTIAL_WINDOW, PoolConfig};
use crate::asr::transcriber::TranscriberConfig;
use crate::asr::utterance::SegmenterConfig;
use crate::asr::whisper::{EngineConfig, LoadOptions, WhisperModel, Window};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Whisper settings: the model, its decode pool and the live segmenter. Plain data with real
/// defaults; the command line and environment only convert into it (`cli::flags`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrConfig {
    /// A model name from the model cache (tiny.en-q8_0, tiny.en, base-q8_0, base) or a path to
    /// a ggml file.
    pub model: String,
    /// The model cache; `None` is the user's default (`parley_models::default_model_dir`).
    pub model_dir: Option<PathBuf>,
    /// Decodes that run at once, each on its own thread with its own decoder state.
    pub workers: usize,
    /// CPU threads per decode.
    pub threads: usize,
    /// Beam width for finals (1 = greedy).
    pub beam: usize,
    /// Spoken language for multilingual models.
    pub language: String,
    pub partial_ctx: CtxMode,
    pub final_ctx: CtxMode,
    /// Silence that ends an utterance.
    pub end_silence_ms: u64,
    /// Live: a partial after every this many ms of new speech, further apart in long
    /// utterances (0 = none).
    pub partial_every_ms: u64,
    /// Live: decode as final after this much silence, in case the pause ends it (0 = never).
    pub speculate_after_ms: u64,
    /// Seconds of the speaker's earlier speech decoded again before each final.
    pub acoustic_context_secs: usize,
    /// whisper.cpp's flash attention: less memory, some accuracy.
    pub flash_attention: bool,
}

impl Default for AsrConfig {
    fn default() -> Self {
        let segmenter = SegmenterConfig::default();
        Self {
            model: parley_models::ModelName::TinyEnQ8.as_str().to_owned(),
            model_dir: None,
            workers: default_workers(),
            // One thread per worker keeps ggml's spinning threads from competing.
            threads: 1,
            beam: 5,
            language: "en".to_owned(),
            partial_ctx: CtxMode::Cut,
            final_ctx: CtxMode::Full,
            end_silence_ms: segmenter.end_silence_ms,
            partial_every_ms: segmenter.partial_every_ms,
            speculate_after_ms: segmenter.speculate_after_ms,
            acoustic_context_secs: TranscriberConfig::default().acoustic_context / 16_000,
            flash_attention: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CtxMode {
    /// The encoder window cut to the audio's length (fast).
    Cut,
    /// The full 25.6 s window (accurate).
    Full,
}

impl CtxMode {
    /// The window, with `cut` as the cut one.
    fn window(self, cut: Window) -> Window {
        match self {
            Self::Cut => cut,
            Self::Full => Window::Full,
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

impl AsrConfig {
    /// Settings no model could run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.model.trim().is_empty() {
            return Err("the model must be named".into());
        }
        if self.workers == 0 || self.threads == 0 {
            return Err("Whisper workers and threads must be at least 1".into());
        }
        if !(1..=16).contains(&self.beam) {
            return Err(format!("the beam must be 1 to 16, not {}", self.beam));
        }
        if self.language.trim().is_empty() {
            return Err("the language must be named (for example en)".into());
        }
        if self.end_silence_ms == 0 {
            return Err("the end silence must be longer than 0 ms".into());
        }
        Ok(())
    }

    /// The transcriber settings; `live` adds partials.
    pub fn transcriber(&self, live: bool) -> TranscriberConfig {
        let mut c = if live {
            TranscriberConfig::default()
        } else {
            TranscriberConfig::offline()
        };
        c.segmenter.end_silence_ms = self.end_silence_ms;
        if live {
            c.segmenter.partial_every_ms = self.partial_every_ms;
            c.segmenter.speculate_after_ms = self.speculate_after_ms;
        }
        c.acoustic_context = self.acoustic_context_secs * 16_000;
        c
    }

    pub fn pool_config(&self) -> PoolConfig {
        PoolConfig {
            workers: self.workers,
            engine: EngineConfig {
                threads: self.threads,
                language: self.language.clone(),
            },
            final_beam: self.beam,
            final_window: self.final_ctx.window(ALONE_WINDOW),
            partial_window: self.partial_ctx.window(PARTIAL_WINDOW),
            ..PoolConfig::default()
        }
    }

    /// The model cache this bot reads.
    pub fn model_cache(&self) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(parley_models::default_model_dir)
    }

    /// Resolves `--model` to a verified file. A bot never installs: a missing model is an error
    /// that says how to install it.
    pub fn model_path(&self) -> anyhow::Result<PathBuf> {
        Ok(parley_models::resolve(&self.model, &self.model_cache())?)
    }

    pub async fn load(&self) -> anyhow::Result<(WhisperModel, PathBuf)> {
        let settings = self.clone();
        let options = LoadOptions {
            flash_attention: self.flash_attention,
        };
        // Verifying hashes the file and loading reads it: both block.
        tokio::task::spawn_blocking(move || {
            let path = settings.model_path()?;
            let model = WhisperModel::load(&path, options)?;
            Ok((model, path))
        })
        .await
        .context("model loader crashed")?
    }

    pub fn pool(&self, model: &WhisperModel) -> anyhow::Result<AsrPool> {
        Ok(AsrPool::start(model, self.pool_config())?)
    }

    /// Loads the model and starts its decode workers.
    pub async fn load_pool(&self) -> anyhow::Result<LoadedAsr> {
        let (model, path) = self.load().await?;
        let pool = self.pool(&model)?;
        Ok(LoadedAsr {
            _model: model,
            pool,
            path,
        })
    }
}

/// A loaded model and its decode workers, shared by every meeting a process serves.
pub struct LoadedAsr {
    /// Kept alive for the pool's workers.
    _model: WhisperModel,
    pub pool: AsrPool,
    pub path: PathBuf,
}

impl std::fmt::Debug for LoadedAsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAsr")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
