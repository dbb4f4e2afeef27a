//! The Whisper engine: one model loaded once and shared; one decoder state per worker thread.
//!
//! A decode encodes a window of audio once and then searches for the text of its last part: the
//! words of everything before that part (the speaker's earlier speech, decoded before) are forced
//! as the start of the transcript, computed in one pass, so only the new words cost a decoder step
//! each. whisper.cpp's own `whisper_full` re-decodes every word in the window; it is used here
//! only for the whole-track baseline of the benchmark.

use super::search::{self, Rules, Scorer, SearchConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperError,
    WhisperState,
};

/// Encoder frames per second of audio: Whisper's 30 s window is 1500.
const FRAMES_PER_SECOND: usize = 50;
const SAMPLES_PER_FRAME: usize = 16_000 / FRAMES_PER_SECOND;
/// The largest window: 25.6 s, which holds the longest utterance (20 s) or a final with its
/// acoustic context (24 s). The encoder's attention buffers grow with the square of the window,
/// so this is 24 MB less per decoder than 30 s, with the same WER on our test meetings.
pub const MAX_WINDOW_FRAMES: usize = 1280;
/// whisper.cpp declines input shorter than a second; shorter audio is padded with silence.
const MIN_SAMPLES: usize = 16_000 + 1_600;
/// The decoder's context holds 448 tokens; the forced words take at most this many of them.
const MAX_PREFIX_TOKENS: usize = 224;
/// Nobody speaks more than about five tokens a second: a decoder past this is looping.
const TOKENS_PER_SECOND: usize = 6;
/// Symbols Whisper writes for sounds that are not speech (OpenAI's list, as whisper.cpp uses it).
const NON_SPEECH: &[&str] = &[
    "\"",
    "#",
    "(",
    ")",
    "*",
    "+",
    "/",
    ":",
    ";",
    "<",
    "=",
    ">",
    "@",
    "[",
    "\\",
    "]",
    "^",
    "_",
    "`",
    "{",
    "|",
    "}",
    "~",
    "「",
    "」",
    "『",
    "』",
    "<<",
    ">>",
    "<<<",
    ">>>",
    "--",
    "---",
    "-(",
    "-[",
    "('",
    "(\"",
    "((",
    "))",
    "(((",
    ")))",
    "[[",
    "]]",
    "{{",
    "}}",
    "♪♪",
    "♪♪♪",
    "♩",
    "♪",
    "♫",
    "♬",
    "♭",
    "♮",
    "♯",
];

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot load the Whisper model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("whisper decoding failed: {0}")]
    Decode(String),
}

impl From<WhisperError> for EngineError {
    fn from(e: WhisperError) -> Self {
        Self::Decode(e.to_string())
    }
}

/// How much of the encoder's window a decode uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The largest window, whatever the audio's length.
    Full,
    /// The audio's length plus this many frames (20 ms each) of the silence after it: the
    /// encoder's cost grows with the window, and Whisper was trained on windows padded with
    /// silence, so some padding is needed to keep it from guessing at the edge.
    Cut { margin_frames: usize },
}

impl Window {
    /// Encoder frames of the window for this many samples of audio.
    pub fn frames(self, samples: usize) -> usize {
        match self {
            Self::Full => MAX_WINDOW_FRAMES,
            Self::Cut { margin_frames } => {
                (samples.div_ceil(SAMPLES_PER_FRAME) + margin_frames).min(MAX_WINDOW_FRAMES)
            }
        }
    }
}

/// One decode: the audio of the window, and the tokens of the words spoken in all but its last
/// `own_samples` (the context), and of the first words of those (settled by earlier decodes).
#[derive(Debug, Clone, Copy)]
pub struct DecodeSpec<'a> {
    pub audio: &'a [f32],
    pub prefix: &'a [i32],
    pub settled: &'a [i32],
    /// Samples at the end of `audio` whose words are wanted: they bound how many tokens the
    /// search may produce.
    pub own_samples: usize,
    /// Beam width; 1 is greedy.
    pub beam: usize,
    pub window: Window,
    /// CPU threads.
    pub threads: usize,
    /// Set while the encoder runs: the beam's result is no longer wanted, a greedy search does.
    pub demote: Option<&'a AtomicBool>,
}

/// A decoded hypothesis with the scores used to reject hallucinations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hypothesis {
    /// The words of the utterance's own audio (the settled ones first).
    pub text: String,
    /// The text's tokens: forced in front of a later decode that has this audio as context.
    pub tokens: Vec<i32>,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
}

/// What a decode cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeCost {
    pub encode: Duration,
    pub search: Duration,
    pub window_frames: usize,
    /// Beam width searched.
    pub beam: usize,
    /// Decoder passes of the search (one per beam and step).
    pub evals: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub hypothesis: Hypothesis,
    pub cost: DecodeCost,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// CPU threads per decode.
    pub threads: usize,
    /// Language code for multilingual models (English-only models ignore it).
    pub language: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: 2,
            language: "en".into(),
        }
    }
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

/// Token ids the decoder needs, and the rules of what it may write.
#[derive(Debug)]
struct Vocab {
    /// Start of transcript, then language and task (multilingual models), then no timestamps.
    start: Vec<i32>,
    rules: Rules,
}

impl Vocab {
    fn read(ctx: &WhisperContext) -> Self {
        let eot = ctx.token_eot();
        let mut allowed = vec![true; eot as usize + 1];
        let mut blank = None;
        for (id, slot) in allowed.iter_mut().enumerate() {
            let Ok(bytes) = ctx.token_to_bytes(id as i32) else {
                continue;
            };
            if bytes == b" " {
                blank = Some(id as i32);
            }
            let symbol = bytes.strip_prefix(b" ").unwrap_or(bytes);
            if NON_SPEECH.iter().any(|s| s.as_bytes() == symbol) {
                *slot = false;
            }
        }
        Self {
            start: vec![ctx.token_sot()],
            rules: Rules {
                allowed,
                eot,
                blank,
            },
        }
    }
}

/// The loaded model, shared by all workers.
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    vocab: Arc<Vocab>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("multilingual", &self.ctx.is_multilingual())
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
        let vocab = Vocab::read(&ctx);
        Ok(Self {
            ctx: Arc::new(ctx),
            vocab: Arc::new(vocab),
        })
    }

    pub fn decoder(&self, config: EngineConfig) -> Result<Decoder, EngineError> {
        let mut start = self.vocab.start.clone();
        if self.ctx.is_multilingual() {
            let lang = whisper_rs::get_lang_id(&config.language).ok_or_else(|| {
                EngineError::Decode(format!("unknown language {:?}", config.language))
            })?;
            start.push(self.ctx.token_lang(lang));
            start.push(self.ctx.token_transcribe());
        }
        start.push(self.ctx.token_not());
        Ok(Decoder {
            state: self.ctx.create_state()?,
            ctx: Arc::clone(&self.ctx),
            vocab: Arc::clone(&self.vocab),
            start,
            config,
        })
    }
}

/// One worker's decoder state.
pub struct Decoder {
    ctx: Arc<WhisperContext>,
    vocab: Arc<Vocab>,
    state: WhisperState,
    /// The tokens every transcript starts with.
    start: Vec<i32>,
    config: EngineConfig,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Decoder {
    /// Encodes the window and searches for the words of its last `own_samples`.
    pub fn decode(&mut self, spec: &DecodeSpec<'_>) -> Result<Decoded, EngineError> {
        let audio = padded(spec.audio);
        let window_frames = spec.window.frames(audio.len());
        let threads = spec.threads.max(1);
        let started = Instant::now();
        let no_speech_prob = self.encode(&audio, window_frames, threads)?;
        let encode = started.elapsed();

        let prefix = &spec.prefix[spec.prefix.len().saturating_sub(MAX_PREFIX_TOKENS)..];
        let mut head = self.start.clone();
        head.extend_from_slice(prefix);
        head.extend_from_slice(spec.settled);
        let mut scorer = StateScorer::new(&mut self.state, &head, threads)?;
        let demoted = spec.demote.is_some_and(|d| d.load(Ordering::Relaxed));
        let config = SearchConfig {
            beam: if demoted { 1 } else { spec.beam.max(1) },
            max_tokens: (spec.own_samples / 16_000 * TOKENS_PER_SECOND + 16)
                .min(self.ctx.n_text_ctx() as usize - head.len() - 1),
            margin: BEAM_MARGIN,
            lookback: BEAM_LOOKBACK,
            fresh: spec.settled.is_empty(),
        };
        let found = search::search(&mut scorer, &self.vocab.rules, &config)?;
        let mut tokens = spec.settled.to_vec();
        tokens.extend_from_slice(&found.tokens);
        let mut bytes = Vec::new();
        for &t in &tokens {
            bytes.extend_from_slice(self.ctx.token_to_bytes(t)?);
        }
        let text = String::from_utf8_lossy(&bytes)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let avg_logprob = if found.tokens.is_empty() {
            0.0
        } else {
            found.logprob / found.tokens.len() as f32
        };
        Ok(Decoded {
            hypothesis: Hypothesis {
                text,
                tokens,
                no_speech_prob,
                avg_logprob,
            },
            cost: DecodeCost {
                encode,
                search: started.elapsed() - encode,
                window_frames,
                beam: config.beam,
                evals: found.evals,
            },
        })
    }

    /// Runs the encoder over the window and returns Whisper's probability that it holds no
    /// speech. whisper.cpp sets the window length only inside `whisper_full`, so this runs it
    /// for a single token, which also computes the no-speech probability; the search after it
    /// starts its own sequence.
    fn encode(
        &mut self,
        audio: &[f32],
        window_frames: usize,
        threads: usize,
    ) -> Result<f32, EngineError> {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(threads as i32);
        params.set_language(Some(&self.config.language));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_single_segment(true);
        params.set_no_timestamps(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_temperature_inc(0.0);
        params.set_audio_ctx(window_frames as i32);
        params.set_max_tokens(1);
        self.state.full(params, audio)?;
        Ok(self
            .state
            .get_segment(0)
            .map_or(0.0, |s| s.no_speech_probability()))
    }

    /// A whole recording in one `whisper_full` call with Whisper's own 30 s windows, timestamps
    /// and beam search: the offline baseline the benchmark compares streaming against.
    pub fn transcribe_whole(&mut self, audio: &[f32], beam: usize) -> Result<String, EngineError> {
        let strategy = if beam > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: beam as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.config.threads.max(1) as i32);
        params.set_language(Some(&self.config.language));
        params.set_translate(false);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_temperature_inc(0.0);
        // whisper.cpp's beam search leaves state behind: a fresh state keeps runs comparable.
        self.state = self.ctx.create_state()?;
        self.state.full(params, &padded(audio))?;
        let mut text = String::new();
        for segment in self.state.as_iter() {
            if let Ok(t) = segment.to_str_lossy() {
                text.push_str(&t);
                text.push(' ');
            }
        }
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Candidates more than this below the step's best (natural log: a 1 in 7 chance relative to
/// it) are not kept as beams.
const BEAM_MARGIN: f32 = 2.0;
/// Beams agree on every token older than this many steps.
const BEAM_LOOKBACK: usize = 4;

fn padded(samples: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    if samples.len() < MIN_SAMPLES {
        let mut padded = samples.to_vec();
        padded.resize(MIN_SAMPLES, 0.0);
        padded.into()
    } else {
        samples.into()
    }
}

/// The search's view of a decoder state whose cache holds the head: the logits after any
/// sequence of tokens that follows it.
struct StateScorer<'a> {
    state: &'a mut WhisperState,
    head: usize,
    threads: usize,
    /// The logits after the head alone.
    head_logits: Vec<f32>,
    /// The tokens after the head in the decoder's cache.
    cached: Vec<i32>,
}

impl<'a> StateScorer<'a> {
    fn new(state: &'a mut WhisperState, head: &[i32], threads: usize) -> Result<Self, EngineError> {
        let (last, rest) = head
            .split_last()
            .ok_or_else(|| EngineError::Decode("no start-of-transcript token".into()))?;
        // whisper.cpp hands out the logits of a batch's first row only: the head's last token
        // goes alone, so its logits are the ones read.
        if !rest.is_empty() {
            state.decode(rest, 0, threads)?;
        }
        state.decode(std::slice::from_ref(last), rest.len(), threads)?;
        let head_logits = state.get_logits()?.to_vec();
        Ok(Self {
            state,
            head: head.len(),
            threads,
            head_logits,
            cached: Vec::new(),
        })
    }
}

impl Scorer for StateScorer<'_> {
    type Error = EngineError;

    fn logits(&mut self, tokens: &[i32]) -> Result<&[f32], EngineError> {
        let Some((last, before)) = tokens.split_last() else {
            return Ok(&self.head_logits);
        };
        let common = self
            .cached
            .iter()
            .zip(before)
            .take_while(|(a, b)| a == b)
            .count();
        if common < before.len() {
            self.state
                .decode(&before[common..], self.head + common, self.threads)?;
        }
        self.state.decode(
            std::slice::from_ref(last),
            self.head + before.len(),
            self.threads,
        )?;
        self.cached.clear();
        self.cached.extend_from_slice(tokens);
        Ok(self.state.get_logits()?)
    }
}
