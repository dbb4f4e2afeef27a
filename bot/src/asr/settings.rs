//! Options shared by every command that runs Whisper, and turning them into a loaded model and
//! worker pool (installing the model first when it is missing).

use crate::asr::pool::{AsrPool, PARTIAL_WINDOW, PoolConfig};
use crate::asr::transcriber::TranscriberConfig;
use crate::asr::utterance::SegmenterConfig;
use crate::asr::whisper::{EngineConfig, LoadOptions, WhisperModel, Window};
use crate::models::{self, InstallOptions, ModelName};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct AsrArgs {
    /// Whisper model: a name (tiny.en-q8_0, tiny.en, base-q8_0, base) from the model cache, or a
    /// path to a ggml file.
    #[arg(long, default_value = "tiny.en-q8_0", env = "PARLEY_MODEL")]
    pub model: String,
    /// Model cache folder.
    #[arg(long, env = "PARLEY_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Whisper workers: decodes that run at once, each on its own thread with its own decoder
    /// state (about 115 MB each) [default: one per core, at most 4].
    #[arg(long, default_value_t = default_workers(), env = "PARLEY_ASR_WORKERS")]
    pub workers: usize,
    /// CPU threads per decode. One per worker keeps ggml's spinning threads from competing:
    /// with several meetings, two one-thread workers on two cores beat one two-thread worker
    /// (finals p95 2.4 s against 3.0 s, and no accuracy lost to degradation).
    #[arg(long, default_value_t = 1, env = "PARLEY_ASR_THREADS")]
    pub threads: usize,
    /// Beam width for final segments (1 = greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Spoken language for multilingual models (English-only models ignore it).
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Encoder window for partials: `cut` to the audio's length (fast) or `full` (25.6 s).
    #[arg(long, default_value = "cut")]
    pub partial_ctx: CtxMode,
    /// Encoder window for finals: `full` 25.6 s (accurate) or `cut` to the audio's length.
    #[arg(long, default_value = "full")]
    pub final_ctx: CtxMode,
    /// Silence that ends an utterance, in ms. Shorter: captions finalise sooner; longer: fewer
    /// sentence splits, more context per decode.
    #[arg(long, default_value_t = SegmenterConfig::default().end_silence_ms)]
    pub end_silence_ms: u64,
    /// Live: a partial hypothesis after every this many ms of new speech (0 = none).
    #[arg(long, default_value_t = SegmenterConfig::default().partial_every_ms)]
    pub partial_every_ms: u64,
    /// Live: after this many ms of silence the utterance is decoded as final in case the pause
    /// ends it, so its final is ready sooner (0 = never; finals then wait for the end silence).
    #[arg(long, default_value_t = SegmenterConfig::default().speculate_after_ms)]
    pub speculate_after_ms: u64,
    /// Seconds of the speaker's earlier speech decoded again in front of each final, so Whisper
    /// hears the voice and the sentences before (0 = off: each utterance alone).
    #[arg(long, value_name = "SECONDS", default_value_t = TranscriberConfig::default().acoustic_context / 16_000)]
    pub acoustic_context: usize,
    /// Lower memory: whisper.cpp's flash attention saves about 48 MB per Whisper worker (a bot
    /// with three speakers in Janus peaked at 152 MB instead of 201 MB), at some accuracy: its
    /// CPU kernel adds up in 16-bit floats, and short clean speech loses words (JFK 0 % → 9.1 %).
    #[arg(long, env = "PARLEY_FLASH_ATTENTION")]
    pub flash_attention: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CtxMode {
    Cut,
    Full,
}

impl CtxMode {
    fn window(self) -> Window {
        match self {
            Self::Cut => PARTIAL_WINDOW,
            Self::Full => Window::Full,
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

impl Default for AsrArgs {
    /// The flags' defaults, as a command line without any of them gives.
    fn default() -> Self {
        crate::cli::flag_defaults()
    }
}

impl AsrArgs {
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
        c.acoustic_context = self.acoustic_context * 16_000;
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
            final_window: self.final_ctx.window(),
            partial_window: self.partial_ctx.window(),
            ..PoolConfig::default()
        }
    }

    /// Resolves `--model` to a file, installing a named model that is not there yet.
    pub async fn model_path(&self) -> anyhow::Result<PathBuf> {
        let as_path = PathBuf::from(&self.model);
        if as_path.is_file() {
            return Ok(as_path);
        }
        let name: ModelName = self.model.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let dir = self
            .model_dir
            .clone()
            .unwrap_or_else(models::default_model_dir);
        if let Ok(found) = models::find_installed(name, &dir) {
            return Ok(found.path);
        }
        eprintln!(
            "model {name} is not installed in {}; installing it now",
            dir.display()
        );
        let opts = InstallOptions {
            dir,
            from: None,
            allow_download: true,
        };
        let installed = models::install(name, &opts, &|line: &str| eprintln!("  {line}")).await?;
        Ok(installed.path)
    }

    pub async fn load(&self) -> anyhow::Result<(WhisperModel, PathBuf)> {
        let path = self.model_path().await?;
        let p = path.clone();
        let options = LoadOptions {
            flash_attention: self.flash_attention,
        };
        let model = tokio::task::spawn_blocking(move || WhisperModel::load(&p, options))
            .await
            .context("model loader crashed")??;
        Ok((model, path))
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
