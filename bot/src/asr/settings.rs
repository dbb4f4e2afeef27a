//! Options shared by every command that runs Whisper, and turning them into a loaded model and
//! worker pool (installing the model first when it is missing).

use crate::asr::pool::AsrPool;
use crate::asr::transcriber::{PromptContext, TranscriberConfig};
use crate::asr::utterance::SegmenterConfig;
use crate::asr::whisper::{EngineConfig, LoadOptions, WhisperModel};
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
    /// Whisper worker threads (decodes run in parallel, one per worker).
    #[arg(long, default_value_t = 1, env = "PARLEY_ASR_WORKERS")]
    pub workers: usize,
    /// CPU threads per decode.
    #[arg(long, default_value_t = default_threads(), env = "PARLEY_ASR_THREADS")]
    pub threads: usize,
    /// Beam width for final segments (1 = greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Retry unsure finals at higher temperatures (Whisper's fallback; slower, not repeatable).
    #[arg(long)]
    pub fallback: bool,
    /// Spoken language for multilingual models (English-only models ignore it).
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Encoder window for partials: `cut` to the audio's length (fast) or `full` (25.6 s).
    #[arg(long, default_value = "cut")]
    pub partial_ctx: CtxMode,
    /// Encoder window for finals: `full` 25.6 s (accurate) or `cut` to the audio's length.
    #[arg(long, default_value = "full")]
    pub final_ctx: CtxMode,
    /// Text given to Whisper as context for each final: the meeting's recent words, the
    /// speaker's own, or none (it scored best on our test meetings, and a prompt makes a
    /// transcript depend on the order decodes finish in).
    #[arg(long, default_value = "none")]
    pub prompt: PromptContext,
    /// Silence that ends an utterance, in ms. Shorter: captions finalise sooner; longer: fewer
    /// sentence splits, more context per decode.
    #[arg(long, default_value_t = SegmenterConfig::default().end_silence_ms)]
    pub end_silence_ms: u64,
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
    fn margin(self) -> Option<usize> {
        match self {
            // 2.5 s beyond the audio: less and Whisper starts guessing at the edge.
            Self::Cut => Some(128),
            Self::Full => None,
        }
    }
}

fn default_threads() -> usize {
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
        c.prompt = self.prompt;
        c.segmenter.end_silence_ms = self.end_silence_ms;
        c.acoustic_context = self.acoustic_context * 16_000;
        c
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            threads: self.threads,
            final_beam: self.beam,
            partial_ctx_margin: self.partial_ctx.margin(),
            final_ctx_margin: self.final_ctx.margin(),
            final_fallback: self.fallback,
            language: Some(self.language.clone()),
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
        Ok(AsrPool::start(model, self.workers, self.engine())?)
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
