//! Sans-IO streaming transcriber for one meeting: audio per speaker in, decode requests out,
//! decode results in, transcript segments out. The caller owns the clock, the threads and the
//! sockets, so tests drive it faster than real time.

use super::agreement::LocalAgreement;
use super::pauses::PauseStats;
use super::text::clean_transcript;
use super::utterance::{Pause, Segmenter, SegmenterConfig, SegmenterOutput, UtteranceAudio};
use super::whisper::Hypothesis;
use crate::audio::samples_to_ms;
use crate::audio::track::AudioChunk;
use crate::audio::vad::VadConfig;
use parley_shared::words::normalized_words;
use parley_shared::{MeetingId, Segment, SegmentId, Speaker, SpeakerKey};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Context plus utterance must fit the finals' 25.6 s encoder window with room to spare.
const WINDOW_MAX_SAMPLES: usize = 24 * 16_000;
/// Silence between two utterances of the context, and between the context and the utterance.
const CONTEXT_GAP_SAMPLES: usize = 16_000 * 3 / 10;
/// Whisper's own test for a decoder caught in a loop: text that compresses this well repeats.
const LOOP_COMPRESSION_RATIO: f32 = 2.4;

#[derive(Debug, Clone, Copy)]
pub struct TranscriberConfig {
    pub segmenter: SegmenterConfig,
    pub vad: VadConfig,
    /// Whisper's own hallucination test: a decode is dropped when it thinks there was no speech
    /// and is not confident in its words either.
    pub no_speech_threshold: f32,
    pub logprob_threshold: f32,
    /// At most this much of the speaker's earlier speech (16 kHz samples) is decoded again in
    /// front of each final (see [`ContextFinal`]); 0 turns acoustic context off.
    pub acoustic_context: usize,
}

impl Default for TranscriberConfig {
    fn default() -> Self {
        Self {
            segmenter: SegmenterConfig::default(),
            vad: VadConfig::default(),
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            // 16 s of earlier speech: 5 points less WER over the dev and eval meetings than
            // none; more context gained no more and costs decode time (docs/benchmarks.md).
            acoustic_context: 16 * 16_000,
        }
    }
}

impl TranscriberConfig {
    /// Offline transcription: finals only. Speculative decodes only buy latency.
    pub fn offline() -> Self {
        let mut c = Self::default();
        c.segmenter.partial_every_ms = 0;
        c.segmenter.speculate_after_ms = 0;
        c
    }
}

/// Why a decode is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A hypothesis of an utterance still growing: shown dimmed, replaced by the next.
    Partial,
    /// The utterance as it stands at a pause: its final if the pause turns out to end it.
    Speculative,
    /// The utterance's final.
    Final,
    /// A final decoded again without its context, because with it the decoder looped or lost
    /// the utterance's own words.
    Alone,
}

impl Purpose {
    /// Final quality: decoded after the speaker's earlier speech, with the configured beam.
    pub fn is_final(self) -> bool {
        self != Self::Partial
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Partial => "partial",
            Self::Speculative => "speculative",
            Self::Final => "final",
            Self::Alone => "alone",
        }
    }
}

/// A decode the caller should run and report back with [`Transcriber::on_result`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeRequest {
    pub stream: usize,
    pub utterance: u64,
    /// End of the voiced audio decoded: tells a speculative decode's result from a stale one.
    pub end: u64,
    pub purpose: Purpose,
    /// The context's audio (if any), then the utterance's own.
    pub samples: Vec<f32>,
    /// Tokens of the context's words.
    pub prefix: Vec<i32>,
    /// Tokens of the utterance's first words, settled by its earlier partials.
    pub settled: Vec<i32>,
    /// Samples at the end of `samples` that are the utterance's own.
    pub own_samples: usize,
    /// A speculative decode's sign that the speaker went on.
    pub went_on: Option<WentOn>,
}

/// Set when the pause a speculative decode was made in turns out not to end the utterance: its
/// result can then only be shown as a partial, so whoever decodes it need not spend a final's
/// search on it. A decode whose pause ended before its encoder started is not worth a final's
/// window either.
#[derive(Debug, Clone, Default)]
pub struct WentOn(Arc<AtomicBool>);

impl WentOn {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for a decoder that looks at it between its steps.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Requests compare by what is decoded; whether the speaker has gone on since is not part of it.
impl PartialEq for WentOn {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl DecodeRequest {
    /// The utterance's own audio, without the context.
    pub fn own_audio(&self) -> &[f32] {
        &self.samples[self.samples.len() - self.own_samples..]
    }
}

#[derive(Debug, Default)]
struct Utterance {
    agreement: LocalAgreement,
    end: u64,
    final_requested: bool,
    partial_shown: bool,
    /// End of the audio a final-quality decode is running (or ran) on.
    decoding_end: Option<u64>,
    /// A final-quality result that came back before the utterance was closed.
    early: Option<Result<Hypothesis, String>>,
    /// The audio of the latest final-quality request, without context: decoded alone if the
    /// decode with context fails or is dropped, and context for later finals.
    final_audio: Vec<f32>,
    /// The latest final-quality request had context in front.
    with_context: bool,
    /// Set when the speaker goes on after the pause of the running speculative decode.
    speculation: Option<WentOn>,
    /// Tokens of the latest hypothesis shown as a partial.
    shown_tokens: Vec<i32>,
    /// The tokens the last two partial hypotheses agree on: forced in front of the next
    /// partial, so it searches only for the words after them.
    settled: Vec<i32>,
}

/// One of the speaker's earlier finals, decoded again in front of the next: short utterances on
/// their own are where Whisper errs most, and with the speaker's recent speech before them it
/// hears the voice and the sentences before, as in the 30 s windows it was trained on.
#[derive(Debug)]
struct ContextFinal {
    samples: Vec<f32>,
    tokens: Vec<i32>,
}

#[derive(Debug)]
struct Stream {
    speaker: Speaker,
    segmenter: Segmenter,
    open: BTreeMap<u64, Utterance>,
    /// Recent finals, oldest first.
    context: VecDeque<ContextFinal>,
    /// Finals waiting for an earlier final of the same speaker, whose words their context needs.
    waiting: VecDeque<UtteranceAudio>,
}

impl Stream {
    /// True while a final of an utterance that started before `start` is still to be reported.
    fn earlier_final_pending(&self, start: u64) -> bool {
        self.open.range(..start).any(|(_, u)| u.final_requested)
    }

    /// The speaker's most recent finals that fit in front of `own` samples: their audio (each
    /// followed by a short silence) and their words' tokens.
    fn context_for(&self, own: usize, limit: usize) -> Option<(Vec<f32>, Vec<i32>)> {
        let budget = limit.min(WINDOW_MAX_SAMPLES.saturating_sub(own));
        let (mut used, mut taken) = (0, 0);
        for c in self.context.iter().rev() {
            let with_this = used + c.samples.len() + CONTEXT_GAP_SAMPLES;
            if with_this > budget {
                break;
            }
            (used, taken) = (with_this, taken + 1);
        }
        if taken == 0 {
            return None;
        }
        let chosen = self.context.range(self.context.len() - taken..);
        let mut samples = Vec::with_capacity(used + own);
        let mut tokens = Vec::new();
        for c in chosen {
            samples.extend_from_slice(&c.samples);
            samples.extend(std::iter::repeat_n(0.0, CONTEXT_GAP_SAMPLES));
            tokens.extend_from_slice(&c.tokens);
        }
        Some((samples, tokens))
    }

    /// Keeps a final as context for later ones, forgetting what no window could hold.
    fn remember(&mut self, samples: Vec<f32>, tokens: Vec<i32>, limit: usize) {
        self.context.push_back(ContextFinal { samples, tokens });
        let mut total: usize = self.context.iter().map(|c| c.samples.len()).sum();
        while total > limit.min(WINDOW_MAX_SAMPLES) {
            let Some(old) = self.context.pop_front() else {
                break;
            };
            total -= old.samples.len();
        }
    }
}

#[derive(Debug)]
pub struct Transcriber {
    meeting: MeetingId,
    config: TranscriberConfig,
    streams: Vec<Stream>,
    by_key: HashMap<SpeakerKey, usize>,
    requests: VecDeque<DecodeRequest>,
    segments: VecDeque<Segment>,
    /// How the meeting's pauses turned out: when to speculate.
    pauses: PauseStats,
    /// Finals whose speculative result was already in when the utterance closed.
    ready: VecDeque<(usize, u64, u64, Result<Hypothesis, String>)>,
}

impl Transcriber {
    pub fn new(meeting: MeetingId, config: TranscriberConfig) -> Self {
        Self {
            meeting,
            config,
            streams: Vec::new(),
            by_key: HashMap::new(),
            requests: VecDeque::new(),
            segments: VecDeque::new(),
            pauses: PauseStats::new(config.segmenter.end_silence_ms),
            ready: VecDeque::new(),
        }
    }

    /// Registers a speaker (or renames a known one) and returns its stream index.
    pub fn add_speaker(&mut self, speaker: Speaker) -> usize {
        if let Some(&i) = self.by_key.get(&speaker.key) {
            self.streams[i].speaker.name = speaker.name;
            return i;
        }
        let i = self.streams.len();
        self.by_key.insert(speaker.key.clone(), i);
        let mut segmenter = Segmenter::new(self.config.segmenter, self.config.vad);
        segmenter.set_speculate_after(self.speculate_after());
        self.streams.push(Stream {
            speaker,
            segmenter,
            open: BTreeMap::new(),
            context: VecDeque::new(),
            waiting: VecDeque::new(),
        });
        i
    }

    pub fn speakers(&self) -> usize {
        self.streams.len()
    }

    pub fn speaker(&self, stream: usize) -> Option<&Speaker> {
        self.streams.get(stream).map(|s| &s.speaker)
    }

    pub fn push_audio(&mut self, stream: usize, chunk: &AudioChunk) {
        if let Some(s) = self.streams.get_mut(stream) {
            s.segmenter.push(chunk);
            self.collect(stream);
        }
    }

    /// The speaker's track ended: whatever they were saying is final now.
    pub fn finish_stream(&mut self, stream: usize) {
        if let Some(s) = self.streams.get_mut(stream) {
            s.segmenter.finish();
            self.collect(stream);
        }
    }

    /// How far a speaker's audio has been heard (16 kHz samples on the meeting clock).
    pub fn position(&self, stream: usize) -> Option<u64> {
        self.streams.get(stream)?.segmenter.position()
    }

    pub fn poll_request(&mut self) -> Option<DecodeRequest> {
        self.requests.pop_front()
    }

    pub fn poll_segment(&mut self) -> Option<Segment> {
        self.segments.pop_front()
    }

    /// Utterances whose final has been requested but not yet reported.
    pub fn pending_finals(&self) -> usize {
        self.streams
            .iter()
            .flat_map(|s| s.open.values())
            .filter(|u| u.final_requested)
            .count()
    }

    /// When to speculate, from the pauses so far.
    fn speculate_after(&self) -> Option<u64> {
        self.pauses
            .speculate_after(self.config.segmenter.speculate_after_ms)
    }

    /// Learns from the stream's latest pauses and tells every speaker's segmenter.
    fn learn_pauses(&mut self, stream: usize) {
        let pauses = self.streams[stream].segmenter.take_pauses();
        if pauses.is_empty() {
            return;
        }
        for pause in pauses {
            match pause {
                Pause::WentOn(ms) => {
                    self.pauses.went_on(ms);
                    // The utterance still growing is the one whose pause this was.
                    let growing = self.streams[stream].open.values_mut();
                    for utt in growing.filter(|u| !u.final_requested) {
                        if let Some(went_on) = utt.speculation.take() {
                            went_on.set();
                        }
                    }
                }
                Pause::Ended => self.pauses.ended(),
            }
        }
        let after = self.speculate_after();
        for s in &mut self.streams {
            s.segmenter.set_speculate_after(after);
        }
    }

    fn collect(&mut self, stream: usize) {
        let with_context = self.config.acoustic_context > 0;
        while let Some(out) = self.streams[stream].segmenter.poll() {
            let (purpose, audio) = match out {
                SegmenterOutput::Partial(u) => (Purpose::Partial, u),
                SegmenterOutput::Speculative(u) => (Purpose::Speculative, u),
                SegmenterOutput::Final(u) => (Purpose::Final, u),
            };
            let s = &mut self.streams[stream];
            let utt = s.open.entry(audio.start).or_default();
            utt.end = audio.end;
            if purpose == Purpose::Final {
                utt.final_requested = true;
                if utt.decoding_end == Some(audio.end) {
                    // The speculative decode ran on exactly this audio: use its result.
                    if let Some(result) = utt.early.take() {
                        self.ready
                            .push_back((stream, audio.start, audio.end, result));
                    }
                    continue;
                }
            }
            if purpose.is_final() && with_context && s.earlier_final_pending(audio.start) {
                // Its context includes words not decoded yet: a final waits for them, a
                // speculative decode is not worth making.
                if purpose == Purpose::Final {
                    s.waiting.push_back(audio);
                }
                continue;
            }
            self.request(stream, purpose, audio.start, audio.end, audio.samples);
        }
        // After the requests: a speculative decode asked for in this audio may already be stale.
        self.learn_pauses(stream);
        while let Some((stream, start, end, result)) = self.ready.pop_front() {
            self.on_result(stream, start, end, Purpose::Final, result);
        }
    }

    /// Queues a decode of an utterance's audio; a final-quality one with the speaker's earlier
    /// finals in front when acoustic context is on (unless it is to be decoded alone).
    fn request(&mut self, stream: usize, purpose: Purpose, start: u64, end: u64, own: Vec<f32>) {
        let limit = self.config.acoustic_context;
        let s = &mut self.streams[stream];
        let context = match purpose {
            Purpose::Speculative | Purpose::Final if limit > 0 => s.context_for(own.len(), limit),
            _ => None,
        };
        let Some(utt) = s.open.get_mut(&start) else {
            return;
        };
        let own_samples = own.len();
        let settled = if purpose == Purpose::Partial {
            utt.settled.clone()
        } else {
            Vec::new()
        };
        let (samples, prefix) = match context {
            Some((mut joined, tokens)) => {
                joined.extend_from_slice(&own);
                (joined, tokens)
            }
            None => (own, Vec::new()),
        };
        let went_on = (purpose == Purpose::Speculative).then(WentOn::default);
        if purpose.is_final() {
            utt.decoding_end = Some(end);
            utt.early = None;
            utt.with_context = own_samples < samples.len();
            utt.final_audio = samples[samples.len() - own_samples..].to_vec();
            utt.speculation.clone_from(&went_on);
        }
        self.requests.push_back(DecodeRequest {
            stream,
            utterance: start,
            end,
            purpose,
            samples,
            prefix,
            settled,
            own_samples,
            went_on,
        });
    }

    /// Requests the oldest waiting final of a stream once no earlier final is outstanding.
    fn release_waiting(&mut self, stream: usize) {
        let s = &mut self.streams[stream];
        let ready = s
            .waiting
            .front()
            .is_some_and(|w| !s.earlier_final_pending(w.start));
        if !ready {
            return;
        }
        if let Some(audio) = s.waiting.pop_front() {
            self.request(
                stream,
                Purpose::Final,
                audio.start,
                audio.end,
                audio.samples,
            );
        }
    }

    /// A decode was dropped without running (the pool was behind). A dropped partial needs
    /// nothing; a final waiting for a dropped speculative decode of its audio is asked for now.
    pub fn on_dropped(&mut self, stream: usize, utterance: u64, end: u64) {
        let Some(utt) = self
            .streams
            .get_mut(stream)
            .and_then(|s| s.open.get_mut(&utterance))
        else {
            return;
        };
        if utt.decoding_end != Some(end) || utt.early.is_some() {
            return;
        }
        utt.decoding_end = None;
        if !utt.final_requested {
            return;
        }
        let audio = UtteranceAudio {
            start: utterance,
            end,
            audio_start: utterance,
            samples: std::mem::take(&mut utt.final_audio),
        };
        let s = &mut self.streams[stream];
        if self.config.acoustic_context > 0 && s.earlier_final_pending(utterance) {
            let at = s.waiting.partition_point(|w| w.start < utterance);
            s.waiting.insert(at, audio);
        } else {
            self.request(stream, Purpose::Final, utterance, end, audio.samples);
        }
    }

    /// A decode finished (or failed: a failed final still closes the utterance, with what the
    /// partials had committed, so nothing already shown disappears).
    pub fn on_result(
        &mut self,
        stream: usize,
        utterance: u64,
        end: u64,
        purpose: Purpose,
        result: Result<Hypothesis, String>,
    ) {
        let (no_speech, logprob) = (
            self.config.no_speech_threshold,
            self.config.logprob_threshold,
        );
        let meeting = self.meeting;
        let limit = self.config.acoustic_context;
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        let Some(utt) = s.open.get_mut(&utterance) else {
            return;
        };
        let text = match &result {
            Ok(h) if h.no_speech_prob > no_speech && h.avg_logprob < logprob => String::new(),
            Ok(h) => clean_transcript(&h.text),
            Err(_) => String::new(),
        };
        let current = purpose.is_final() && utt.decoding_end == Some(end);
        let after_context = utt.with_context && purpose != Purpose::Alone;
        if current && after_context && (text.is_empty() || looks_looped(&text)) {
            // With its context in front the decoder looped or lost the utterance's own words:
            // decode the utterance alone.
            let own = std::mem::take(&mut utt.final_audio);
            self.request(stream, Purpose::Alone, utterance, end, own);
            return;
        }
        let is_final = current && utt.final_requested;
        if !is_final {
            if purpose.is_final() {
                // Speculative result, utterance still open: keep it for when the pause ends it.
                if !current {
                    return;
                }
                utt.early = Some(result.clone());
            }
            // Partials, and speculative results while the speaker may go on, are shown dimmed.
            if utt.final_requested || text.is_empty() {
                return;
            }
            if let Ok(h) = &result {
                let agreed = utt
                    .shown_tokens
                    .iter()
                    .zip(&h.tokens)
                    .take_while(|(a, b)| a == b)
                    .count();
                utt.settled = h.tokens[..agreed].to_vec();
                utt.shown_tokens.clone_from(&h.tokens);
            }
            let shown = utt.agreement.update(&text).full();
            utt.partial_shown = true;
            let seg = segment(meeting, &s.speaker, utterance, utt.end, shown, false);
            self.segments.push_back(seg);
            return;
        }
        let Some(utt) = s.open.remove(&utterance) else {
            return;
        };
        let text = match &result {
            Ok(_) => text,
            Err(_) => utt.agreement.committed(),
        };
        if limit > 0
            && !text.is_empty()
            && let Ok(h) = result
        {
            s.remember(utt.final_audio, h.tokens, limit);
        }
        if !text.is_empty() || utt.partial_shown {
            let seg = segment(meeting, &s.speaker, utterance, utt.end, text, true);
            self.segments.push_back(seg);
        }
        self.release_waiting(stream);
    }
}

/// Whisper's sign of a decoder caught in a loop: the text compresses too well, or one word
/// repeats ("jon-jon-jon-jon").
fn looks_looped(text: &str) -> bool {
    let words = normalized_words(text);
    let repeats = words.windows(4).any(|w| w.iter().all(|x| *x == w[0]));
    repeats || compression_ratio(text) > LOOP_COMPRESSION_RATIO
}

fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    match z.write_all(text.as_bytes()).and_then(|()| z.finish()) {
        Ok(packed) if !packed.is_empty() => text.len() as f32 / packed.len() as f32,
        _ => 0.0,
    }
}

fn segment(
    meeting: MeetingId,
    speaker: &Speaker,
    start: u64,
    end: u64,
    text: String,
    is_final: bool,
) -> Segment {
    Segment {
        segment_id: SegmentId::derive(meeting, &speaker.key, samples_to_ms(start)),
        speaker: speaker.clone(),
        start_ms: samples_to_ms(start),
        end_ms: samples_to_ms(end),
        text,
        is_final,
    }
}
