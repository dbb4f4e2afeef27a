//! Sans-IO streaming transcriber for one meeting: audio per speaker in, decode requests out,
//! decode results in, transcript segments out. The caller owns the clock, the threads and the
//! sockets, so tests drive it faster than real time.

use super::agreement::LocalAgreement;
use super::text::{clean_transcript, normalize_word};
use super::utterance::{Segmenter, SegmenterConfig, SegmenterOutput, UtteranceAudio};
use super::whisper::{DecodeKind, Hypothesis};
use crate::audio::samples_to_ms;
use crate::audio::track::AudioChunk;
use crate::audio::vad::VadConfig;
use parley_shared::{MeetingId, Segment, SegmentId, Speaker, SpeakerKey};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Characters of a speaker's previous final given to Whisper as context for the next one.
const PROMPT_CHARS: usize = 200;
/// The previous utterance is context only if it ended at most this long before (16 kHz samples).
const CONTEXT_MAX_GAP: u64 = 30 * 16_000;
/// Context plus utterance must fit Whisper's 30 s window with room to spare.
const CONTEXT_MAX_SAMPLES: usize = 24 * 16_000;
/// Silence between the context and the utterance.
const CONTEXT_GAP_SAMPLES: usize = 16_000 * 3 / 10;

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
    /// Decode each final after the speaker's previous utterance (see [`AcousticContext`]).
    pub acoustic_context: bool,
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
            // Measured on the dev meeting it did not clearly pay for its extra decode time.
            acoustic_context: false,
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
    /// context, kept to be the next utterance's context.
    final_audio: Vec<f32>,
    /// Words of the context decoded before this utterance's own, to strip from the result.
    strip: Option<String>,
}

/// The speaker's previous utterance: decoded again in front of the next one, Whisper hears the
/// voice and the sentence before, which it otherwise lacks on short isolated utterances.
#[derive(Debug)]
struct AcousticContext {
    samples: Vec<f32>,
    text: String,
    end: u64,
}

#[derive(Debug)]
struct Stream {
    speaker: Speaker,
    segmenter: Segmenter,
    open: BTreeMap<u64, Utterance>,
    last_final: String,
    context: Option<AcousticContext>,
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
            context: None,
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
        let mode = self.config.prompt;
        let acoustic_context = self.config.acoustic_context;
        let s = &mut self.streams[stream];
        while let Some(out) = s.segmenter.poll() {
            let (
                kind,
                speculative,
                UtteranceAudio {
                    start,
                    end,
                    samples,
                    ..
                },
            ) = match out {
                SegmenterOutput::Partial(u) => (DecodeKind::Partial, false, u),
                SegmenterOutput::Speculative(u) => (DecodeKind::Final, true, u),
                SegmenterOutput::Final(u) => (DecodeKind::Final, false, u),
            };
            let utt = s.open.entry(start).or_default();
            utt.end = end;
            if kind == DecodeKind::Final && !speculative {
                utt.final_requested = true;
                if utt.decoding_end == Some(end) {
                    // The speculative decode ran on exactly this audio: use its result.
                    if let Some(result) = utt.early.take() {
                        self.ready.push_back((stream, start, end, result));
                    }
                    continue;
                }
            }
            let mut samples = samples;
            let mut prompt_allowed = true;
            if kind == DecodeKind::Final {
                utt.decoding_end = Some(end);
                utt.early = None;
                if acoustic_context {
                    utt.final_audio = samples.clone();
                }
                let usable = s.context.as_ref().filter(|c| {
                    acoustic_context
                        && start.saturating_sub(c.end) <= CONTEXT_MAX_GAP
                        && c.samples.len() + samples.len() <= CONTEXT_MAX_SAMPLES
                });
                if let Some(c) = usable {
                    let mut joined = c.samples.clone();
                    joined.extend(std::iter::repeat_n(0.0, CONTEXT_GAP_SAMPLES));
                    joined.extend_from_slice(&samples);
                    samples = joined;
                    utt.strip = Some(c.text.clone());
                    prompt_allowed = false;
                } else {
                    utt.strip = None;
                }
            }
            let context = match mode {
                PromptContext::None => "",
                PromptContext::Speaker => s.last_final.as_str(),
                PromptContext::Meeting => self.recent.as_str(),
            };
            let prompt = (kind == DecodeKind::Final && prompt_allowed && !context.is_empty())
                .then(|| tail(context, PROMPT_CHARS));
            self.requests.push_back(DecodeRequest {
                stream,
                utterance: start,
                end,
                kind,
                samples,
                prompt,
            });
        }
        while let Some((stream, start, end, result)) = self.ready.pop_front() {
            self.on_result(stream, start, end, DecodeKind::Final, result);
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
        let acoustic_context = self.config.acoustic_context;
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
        let text = match (&utt.strip, kind) {
            (Some(prefix), DecodeKind::Final) => strip_context(prefix, &text),
            _ => text,
        };
        let is_final =
            kind != DecodeKind::Partial && utt.final_requested && utt.decoding_end == Some(end);
        if !is_final {
            if kind != DecodeKind::Partial {
                // Speculative result, utterance still open: keep it for when the pause ends it.
                // It is not shown: decoded with context, it is not comparable with partials.
                if utt.decoding_end == Some(end) {
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
        if text.is_empty() && !utt.partial_shown {
            return;
        }
        if !text.is_empty() {
            s.last_final = tail(&format!("{} {text}", s.last_final), PROMPT_CHARS);
            self.recent = tail(&format!("{} {text}", self.recent), PROMPT_CHARS);
        }
        if acoustic_context && !text.is_empty() && result.is_ok() {
            s.context = Some(AcousticContext {
                samples: utt.final_audio,
                text: text.clone(),
                end: utt.end,
            });
        }
        let seg = segment(meeting, &s.speaker, utterance, utt.end, text, true);
        self.segments.push_back(seg);
    }
}

/// Removes the words of `prefix` (the context's text, as decoded before) from the front of
/// `text`: the cut is where the words so far best match the prefix (edit distance over
/// normalised words), so a context word Whisper now hears differently does not leak through.
fn strip_context(prefix: &str, text: &str) -> String {
    let p: Vec<String> = prefix.split_whitespace().map(normalize_word).collect();
    let words: Vec<&str> = text.split_whitespace().collect();
    let w: Vec<String> = words.iter().map(|x| normalize_word(x)).collect();
    // row[k] = edit distance between all of p and the first k words of w.
    let mut row: Vec<usize> = (0..=w.len()).collect();
    for pw in &p {
        let mut next = vec![row[0] + 1; w.len() + 1];
        for k in 1..=w.len() {
            next[k] = (row[k - 1] + usize::from(*pw != w[k - 1]))
                .min(row[k] + 1)
                .min(next[k - 1] + 1);
        }
        row = next;
    }
    let cut = (0..=w.len())
        .min_by_key(|&k| (row[k], std::cmp::Reverse(k)))
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
        assert_eq!(strip_context("", "Hello there."), "Hello there.");
        assert_eq!(strip_context("Hello there.", "Hello there."), "");
    }
}
