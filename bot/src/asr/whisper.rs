//! The Whisper engine: one model loaded once and shared; one decoder state per worker thread.
//! Decoding settings differ for partials (cheap, greedy, no fallback) and finals (beam search,
//! temperature fallback). The encoder's context is cut to the utterance's length: Whisper pads
//! every input to 30 s, and encoding that padding is most of the cost of a short utterance.

use std::path::Path;
use std::sync::Arc;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// Encoder frames per second of audio: Whisper's 30 s window is 1500.
const CTX_PER_SECOND: f32 = 50.0;
/// The window finals are encoded in: 25.6 s, which holds the longest utterance (20 s) with room
/// to spare. The encoder's attention buffers grow with the square of the window, so this is
/// 24 MB less per decoder than 30 s, with the same WER on our test meetings.
const FULL_AUDIO_CTX: usize = 1280;
/// whisper.cpp declines input shorter than a second; shorter utterances are padded with silence.
const MIN_SAMPLES: usize = 16_000 + 1_600;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot load the Whisper model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("whisper decoding failed: {0}")]
    Decode(String),
}

/// What a decode is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeKind {
    Partial,
    Final,
    /// A whole recording in one call, Whisper's own 30 s windows and timestamps: the offline
    /// baseline the benchmark compares streaming against.
    Whole,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Threads per decode.
    pub threads: usize,
    /// Beam width for finals; 1 means greedy.
    pub final_beam: usize,
    /// Encoder context beyond the audio's own length for partials, in frames (20 ms each);
    /// `None` encodes the full window.
    pub partial_ctx_margin: Option<usize>,
    /// The same for finals. Cutting the window costs accuracy and, with beam search, can make
    /// the decoder loop, so finals encode the full window (25.6 s) by default.
    pub final_ctx_margin: Option<usize>,
    /// Retry a final at higher temperatures when the decode looks unsure (Whisper's fallback).
    /// Sampling makes results vary from run to run and can cost several decodes.
    pub final_fallback: bool,
    /// Language code, or `None` to detect it (multilingual models only).
    pub language: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: 2,
            final_beam: 5,
            partial_ctx_margin: Some(128),
            final_ctx_margin: None,
            final_fallback: false,
            language: Some("en".into()),
        }
    }
}

/// A decoded hypothesis with the scores used to reject hallucinations.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub text: String,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
}

/// How the model is loaded: settings that hold for every decoding state made from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// whisper.cpp's flash attention: attention is computed a block of frames at a time instead
    /// of as one frames-by-frames matrix per head, which saves about 48 MB of the 25.6 s window's
    /// buffers. Off by default because the CPU kernel sums the attention-weighted values in
    /// 16-bit floats: on our test meetings the errors are within noise (115 against 113 of 927
    /// words), but short clean speech loses words (JFK 0 % → 9.1 %).
    pub flash_attention: bool,
}

/// The loaded model, shared by all workers.
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    multilingual: bool,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("multilingual", &self.multilingual)
            .finish()
    }
}

impl WhisperModel {
    pub fn load(path: &Path, options: LoadOptions) -> Result<Self, EngineError> {
        // whisper.cpp logs every tensor at load; route it into tracing (debug level).
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.flash_attn(options.flash_attention);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| EngineError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let multilingual = ctx.is_multilingual();
        Ok(Self {
            ctx: Arc::new(ctx),
            multilingual,
        })
    }

    pub fn decoder(&self, config: EngineConfig) -> Result<Decoder, EngineError> {
        let state = self
            .ctx
            .create_state()
            .map_err(|e| EngineError::Decode(e.to_string()))?;
        let language = if self.multilingual {
            config.language.clone()
        } else {
            Some("en".into())
        };
        Ok(Decoder {
            ctx: Arc::clone(&self.ctx),
            state: Some(state),
            config,
            language,
            eot: self.ctx.token_eot(),
        })
    }
}

/// One worker's decoder state.
pub struct Decoder {
    ctx: Arc<WhisperContext>,
    /// `None` only between dropping a used state and creating its replacement.
    state: Option<WhisperState>,
    config: EngineConfig,
    language: Option<String>,
    eot: i32,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Decoder {
    pub fn decode(
        &mut self,
        samples: &[f32],
        kind: DecodeKind,
        prompt: Option<&str>,
    ) -> Result<Hypothesis, EngineError> {
        let audio: std::borrow::Cow<'_, [f32]> = if samples.len() < MIN_SAMPLES {
            let mut padded = samples.to_vec();
            padded.resize(MIN_SAMPLES, 0.0);
            padded.into()
        } else {
            samples.into()
        };
        let strategy = match (kind, self.config.final_beam) {
            (DecodeKind::Final | DecodeKind::Whole, beam) if beam > 1 => {
                SamplingStrategy::BeamSearch {
                    beam_size: beam as i32,
                    patience: -1.0,
                }
            }
            _ => SamplingStrategy::Greedy { best_of: 1 },
        };
        let beam_search = matches!(strategy, SamplingStrategy::BeamSearch { .. });
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.config.threads.max(1) as i32);
        params.set_language(self.language.as_deref());
        params.set_translate(false);
        let whole = kind == DecodeKind::Whole;
        params.set_no_context(!whole);
        params.set_single_segment(!whole);
        params.set_no_timestamps(!whole);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        if kind == DecodeKind::Partial || !self.config.final_fallback {
            params.set_temperature_inc(0.0);
        }
        let margin = match kind {
            DecodeKind::Partial => self.config.partial_ctx_margin,
            DecodeKind::Final => self.config.final_ctx_margin,
            DecodeKind::Whole => None,
        };
        if kind != DecodeKind::Whole {
            let frames = (audio.len() as f32 / 16_000.0 * CTX_PER_SECOND).ceil() as usize;
            let ctx = margin.map_or(FULL_AUDIO_CTX, |m| frames + m);
            params.set_audio_ctx(ctx.min(FULL_AUDIO_CTX) as i32);
        }
        // A decoder stuck in a loop repeats a phrase until the context is full; nobody speaks more
        // than about five tokens a second.
        if !whole {
            params.set_max_tokens((audio.len() / 16_000 * 6 + 16) as i32);
        }
        if let Some(p) = prompt.filter(|p| !p.is_empty()) {
            params.set_initial_prompt(p);
        }
        if beam_search {
            // whisper.cpp's beam search leaves state behind in a reused decoder state: the same
            // audio then decodes differently depending on what was decoded before it. A fresh
            // state per beam-search decode keeps finals repeatable. The old one goes first, so
            // the two never hold their buffers (about 100 MB) at once.
            self.state = None;
        }
        let state = match &mut self.state {
            Some(state) => state,
            empty => empty.insert(
                self.ctx
                    .create_state()
                    .map_err(|e| EngineError::Decode(e.to_string()))?,
            ),
        };
        state
            .full(params, &audio)
            .map_err(|e| EngineError::Decode(e.to_string()))?;

        let mut text = String::new();
        let mut no_speech_prob: f32 = 0.0;
        let (mut logprob_sum, mut tokens) = (0.0f32, 0usize);
        for segment in state.as_iter() {
            no_speech_prob = no_speech_prob.max(segment.no_speech_probability());
            if let Ok(t) = segment.to_str_lossy() {
                text.push_str(&t);
                text.push(' ');
            }
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    let data = token.token_data();
                    if data.id < self.eot {
                        logprob_sum += data.plog;
                        tokens += 1;
                    }
                }
            }
        }
        let avg_logprob = if tokens == 0 {
            0.0
        } else {
            logprob_sum / tokens as f32
        };
        Ok(Hypothesis {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            no_speech_prob,
            avg_logprob,
        })
    }
}
