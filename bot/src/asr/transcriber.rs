//! Sans-IO streaming transcriber for one meeting: audio per speaker in, decode requests out,
//! decode results in, transcript segments out. The caller owns the clock, the threads and the
//! sockets, so tests drive it faster than real time.

use super::agreement::LocalAgreement;
use super::text::{clean_transcript, normalize_word, normalized_words};
use super::utterance::{Segmenter, SegmenterConfig, SegmenterOutput, UtteranceAudio};
use super::whisper::{DecodeKind, Hypothesis};
use crate::audio::samples_to_ms;
use crate::audio::track::AudioChunk;
use crate::audio::vad::VadConfig;
use parley_shared::{MeetingId, Segment, SegmentId, Speaker, SpeakerKey};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Characters of a speaker's previous final given to Whisper as context for the next one.
const PROMPT_CHARS: usize = 200;
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
    /// What Whisper is told came before an utterance it finalises.
    pub prompt: PromptContext,
    /// At most this much of the speaker's earlier speech (16 kHz samples) is decoded again in
    /// front of each final (see [`ContextFinal`]); 0 turns acoustic context off.
    pub acoustic_context: usize,
}

/// Text given to Whisper as the words spoken before the utterance: isolated short utterances are
/// where it errs most, and the conversation so far is the context it was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptContext {
    None,
    /// The same speaker's recent finals.
    Speaker,
    /// The meeting's recent finals, whoever spoke them.
    Meeting,
}

impl std::str::FromStr for PromptContext {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "speaker" => Ok(Self::Speaker),
            "meeting" => Ok(Self::Meeting),
            other => Err(format!(
                "unknown prompt context {other:?} (none, speaker or meeting)"
            )),
        }
    }
}

impl Default for TranscriberConfig {
    fn default() -> Self {
        Self {
            segmenter: SegmenterConfig::default(),
            vad: VadConfig::default(),
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            // Prompting finals with the meeting's recent words scored 1.7 points worse over the
            // dev and eval meetings (861 words), and its prompt tokens cost about 17 MB of
            // decoder buffers; without it, live finals are the same as offline ones.
            prompt: PromptContext::None,
            // 16 s of earlier speech: 5 points less WER over the dev and eval meetings than
            // none; more context gained no more and costs decode time (ARCHITECTURE.md).
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

/// A decode the caller should run and report back with [`Transcriber::on_result`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeRequest {
    pub stream: usize,
    pub utterance: u64,
    /// End of the voiced audio decoded: tells a speculative decode's result from a stale one.
    pub end: u64,
    pub kind: DecodeKind,
    pub samples: Vec<f32>,
    pub prompt: Option<String>,
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
    /// With acoustic context on: the audio of the latest final-quality request, without
    /// context: decoded alone if the decode with context fails, and context for later finals.
    final_audio: Vec<f32>,
    /// Words of the context decoded before this utterance's own, to strip from the result.
    strip: Option<String>,
}

/// One of the speaker's earlier finals, decoded again in front of the next: short utterances on
/// their own are where Whisper errs most, and with the speaker's recent speech before them it
/// hears the voice and the sentences before, as in the 30 s windows it was trained on.
#[derive(Debug)]
struct ContextFinal {
    samples: Vec<f32>,
    text: String,
}

#[derive(Debug)]
struct Stream {
    speaker: Speaker,
    segmenter: Segmenter,
    open: BTreeMap<u64, Utterance>,
    last_final: String,
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
    /// followed by a short silence) and their words.
    fn context_for(&self, own: usize, limit: usize) -> Option<(Vec<f32>, String)> {
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
        let mut words = Vec::with_capacity(taken);
        for c in chosen {
            samples.extend_from_slice(&c.samples);
            samples.extend(std::iter::repeat_n(0.0, CONTEXT_GAP_SAMPLES));
            words.push(c.text.as_str());
        }
        Some((samples, words.join(" ")))
    }

    /// Keeps a final as context for later ones, forgetting what no window could hold.
    fn remember(&mut self, samples: Vec<f32>, text: String, limit: usize) {
        self.context.push_back(ContextFinal { samples, text });
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
    /// The meeting's recent final text, for prompts.
    recent: String,
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
            recent: String::new(),
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
        self.streams.push(Stream {
            speaker,
            segmenter: Segmenter::new(self.config.segmenter, self.config.vad),
            open: BTreeMap::new(),
            last_final: String::new(),
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

    fn collect(&mut self, stream: usize) {
        let with_context = self.config.acoustic_context > 0;
        while let Some(out) = self.streams[stream].segmenter.poll() {
            let (kind, speculative, audio) = match out {
                SegmenterOutput::Partial(u) => (DecodeKind::Partial, false, u),
                SegmenterOutput::Speculative(u) => (DecodeKind::Final, true, u),
                SegmenterOutput::Final(u) => (DecodeKind::Final, false, u),
            };
            let s = &mut self.streams[stream];
            let utt = s.open.entry(audio.start).or_default();
            utt.end = audio.end;
            if kind == DecodeKind::Final && !speculative {
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
            if kind == DecodeKind::Final && with_context && s.earlier_final_pending(audio.start) {
                // Its context includes words not decoded yet: a final waits for them, a
                // speculative decode is not worth making.
                if !speculative {
                    s.waiting.push_back(audio);
                }
                continue;
            }
            self.request(stream, kind, audio.start, audio.end, audio.samples, true);
        }
        while let Some((stream, start, end, result)) = self.ready.pop_front() {
            self.on_result(stream, start, end, DecodeKind::Final, result);
        }
    }

    /// Queues a decode of an utterance's audio: a final with the speaker's earlier finals in
    /// front when `with_context` and acoustic context is on, otherwise with the configured prompt.
    fn request(
        &mut self,
        stream: usize,
        kind: DecodeKind,
        start: u64,
        end: u64,
        own: Vec<f32>,
        with_context: bool,
    ) {
        let limit = self.config.acoustic_context;
        let s = &mut self.streams[stream];
        let context = if kind == DecodeKind::Final && limit > 0 && with_context {
            s.context_for(own.len(), limit)
        } else {
            None
        };
        let Some(utt) = s.open.get_mut(&start) else {
            return;
        };
        let mut samples = own;
        let mut prompt_allowed = true;
        if kind == DecodeKind::Final {
            utt.decoding_end = Some(end);
            utt.early = None;
            utt.strip = None;
            if limit > 0 {
                utt.final_audio = samples.clone();
            }
            if let Some((mut joined, words)) = context {
                joined.extend_from_slice(&samples);
                samples = joined;
                utt.strip = Some(words);
                prompt_allowed = false;
            }
        }
        let context_text = match self.config.prompt {
            PromptContext::None => "",
            PromptContext::Speaker => s.last_final.as_str(),
            PromptContext::Meeting => self.recent.as_str(),
        };
        let prompt = (kind == DecodeKind::Final && prompt_allowed && !context_text.is_empty())
            .then(|| tail(context_text, PROMPT_CHARS));
        self.requests.push_back(DecodeRequest {
            stream,
            utterance: start,
            end,
            kind,
            samples,
            prompt,
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
                DecodeKind::Final,
                audio.start,
                audio.end,
                audio.samples,
                true,
            );
        }
    }

    /// A decode finished (or failed: a failed final still closes the utterance, with what the
    /// partials had committed, so nothing already shown disappears).
    pub fn on_result(
        &mut self,
        stream: usize,
        utterance: u64,
        end: u64,
        kind: DecodeKind,
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
        let current = kind != DecodeKind::Partial && utt.decoding_end == Some(end);
        let text = match (&utt.strip, kind) {
            (Some(prefix), DecodeKind::Final) => {
                let own = strip_context(prefix, &text);
                if current && (own.is_empty() || looks_looped(&text)) {
                    // With its context in front the decoder looped or lost the utterance's own
                    // words: decode the utterance alone.
                    let own = std::mem::take(&mut utt.final_audio);
                    self.request(stream, kind, utterance, end, own, false);
                    return;
                }
                own
            }
            _ => text,
        };
        let is_final = current && utt.final_requested;
        if !is_final {
            if kind != DecodeKind::Partial {
                // Speculative result, utterance still open: keep it for when the pause ends it.
                // It is not shown: decoded with context, it is not comparable with partials.
                if current {
                    utt.early = Some(result);
                }
                return;
            }
            if utt.final_requested || text.is_empty() {
                return;
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
        let text = if result.is_err() {
            utt.agreement.committed()
        } else {
            text
        };
        if !text.is_empty() {
            s.last_final = tail(&format!("{} {text}", s.last_final), PROMPT_CHARS);
            self.recent = tail(&format!("{} {text}", self.recent), PROMPT_CHARS);
            if limit > 0 && result.is_ok() {
                s.remember(utt.final_audio, text.clone(), limit);
            }
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

/// Removes the words of `prefix` (the context's text, as decoded before) from the front of
/// `text`: the cut is the word boundary where the text so far best matches the prefix, by edit
/// distance over their letters. Letters, not words, because Whisper hearing the context again
/// splits and joins words differently ("today" as "to nay"), and a word-level match would leave
/// the remainder in front of the utterance's own words.
fn strip_context(prefix: &str, text: &str) -> String {
    let p: Vec<char> = prefix
        .split_whitespace()
        .flat_map(|w| normalize_word(w).chars().collect::<Vec<_>>())
        .collect();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut t: Vec<char> = Vec::new();
    let mut boundaries = vec![0];
    for w in &words {
        t.extend(normalize_word(w).chars());
        boundaries.push(t.len());
    }
    // row[k] = edit distance between all of p and the first k letters of the text.
    let mut row: Vec<usize> = (0..=t.len()).collect();
    for pc in &p {
        let mut next = vec![row[0] + 1; t.len() + 1];
        for k in 1..=t.len() {
            next[k] = (row[k - 1] + usize::from(*pc != t[k - 1]))
                .min(row[k] + 1)
                .min(next[k - 1] + 1);
        }
        row = next;
    }
    let cut = (0..=words.len())
        .min_by_key(|&i| (row[boundaries[i]], std::cmp::Reverse(i)))
        .unwrap_or(0);
    words[cut..].join(" ")
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

/// The last `n` characters of `s`, starting at a word boundary, trimmed.
fn tail(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.trim().to_owned();
    }
    let cut: String = s.chars().skip(count - n).collect();
    match cut.split_once(' ') {
        Some((_, rest)) => rest.trim().to_owned(),
        None => cut.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::strip_context;

    #[test]
    fn strips_the_context_even_when_heard_a_little_differently() {
        assert_eq!(
            strip_context(
                "Good morning, everyone.",
                "Good morning everyone. Let's start."
            ),
            "Let's start."
        );
        assert_eq!(
            strip_context(
                "Nice work. Did anything fail?",
                "Nice work, did any thing fail? Only three."
            ),
            "Only three."
        );
        assert_eq!(
            strip_context(
                "I will ping them today.",
                "I will ping them to nay. I can give you access."
            ),
            "I can give you access."
        );
        assert_eq!(strip_context("", "Hello there."), "Hello there.");
        assert_eq!(strip_context("Hello there.", "Hello there."), "");
    }
}
