//! Sans-IO utterance segmenter for one speaker: opens an utterance when the voice gate opens,
//! asks for a partial decode every so often while it grows, and closes it after a pause, at a
//! shorter pause once it is long, or at its quietest moment when it reaches the hard limit.

use crate::audio::track::AudioChunk;
use crate::audio::vad::{FRAME, Frame, VadConfig, VoiceGate};
use crate::audio::{ms_to_samples, samples_to_ms};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// Audio kept from before the gate opened: onsets are soft and the gate needs a few frames.
    pub preroll_ms: u64,
    /// Silence that ends an utterance. Final latency is this plus decode time.
    pub end_silence_ms: u64,
    /// Utterances with less voiced audio than this are clicks and coughs: dropped.
    pub min_voiced_ms: u64,
    /// New audio between partial decodes (more in a long utterance: `partial_gap`); 0 disables
    /// partials (offline transcription).
    pub partial_every_ms: u64,
    /// Past this length a shorter pause is enough to close the utterance.
    pub soft_max_ms: u64,
    pub split_silence_ms: u64,
    /// No utterance is longer: at this length it is cut at its quietest recent frame.
    pub max_ms: u64,
    /// Silence kept after the last voiced frame, so word endings are not clipped.
    pub tail_ms: u64,
    /// The shortest silence after which the utterance as it stands may be decoded
    /// speculatively: if the pause turns out to end the utterance, its final is ready (or
    /// nearly) when the pause is long enough to say so. The default is the tail: the earliest
    /// moment the final's audio is complete. When within a pause it happens is set by
    /// [`Segmenter::set_speculate_after`] (learned from the meeting's pauses). 0 disables it.
    pub speculate_after_ms: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            preroll_ms: 200,
            end_silence_ms: 700,
            min_voiced_ms: 160,
            partial_every_ms: 2500,
            soft_max_ms: 12_000,
            split_silence_ms: 160,
            max_ms: 20_000,
            tail_ms: 160,
            speculate_after_ms: 160,
        }
    }
}

/// Audio of an utterance in progress or finished. Positions are 16 kHz samples on the meeting clock.
#[derive(Debug, Clone, PartialEq)]
pub struct UtteranceAudio {
    /// Where the voice started: identifies the utterance.
    pub start: u64,
    /// End of the last voiced frame.
    pub end: u64,
    /// Position of `samples[0]`.
    pub audio_start: u64,
    /// The samples to decode (with pre-roll and tail).
    pub samples: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SegmenterOutput {
    Partial(UtteranceAudio),
    /// The utterance as it would be final if the current pause ends it. A later `Final` with
    /// the same `start` and `end` has exactly the same samples.
    Speculative(UtteranceAudio),
    Final(UtteranceAudio),
}

#[derive(Debug)]
struct Current {
    start: u64,
    /// Position of `samples[0]`.
    audio_start: u64,
    samples: Vec<f32>,
    /// RMS per frame, to find the quietest cut point.
    rms: Vec<f32>,
    voiced_end: u64,
    voiced_samples: u64,
    silence_run: u64,
    partial_at: usize,
    partials_sent: bool,
    speculated_end: Option<u64>,
}

/// How a pause inside an utterance turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The speaker went on after this many ms of silence.
    WentOn(u64),
    /// The silence grew long enough to end the utterance.
    Ended,
}

#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    /// Silence (ms) after which to speculate now; `None`: not at all.
    speculate_after: Option<u64>,
    pauses: Vec<Pause>,
    gate: VoiceGate,
    preroll: VecDeque<f32>,
    /// Next expected sample position; a chunk elsewhere is a discontinuity.
    cursor: Option<u64>,
    /// Samples of the frame being filled, and the position of its first sample.
    pending: Vec<f32>,
    pending_start: u64,
    current: Option<Current>,
    out: VecDeque<SegmenterOutput>,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig, vad: VadConfig) -> Self {
        Self {
            config,
            speculate_after: (config.speculate_after_ms > 0).then_some(config.speculate_after_ms),
            pauses: Vec::new(),
            gate: VoiceGate::new(vad),
            preroll: VecDeque::new(),
            cursor: None,
            pending: Vec::with_capacity(FRAME),
            pending_start: 0,
            current: None,
            out: VecDeque::new(),
        }
    }

    pub fn push(&mut self, chunk: &AudioChunk) {
        if self.cursor.is_some_and(|c| c != chunk.start) {
            // A jump in the timeline: what was pending belongs to a different moment.
            self.close(false);
            self.gate.reset();
            self.preroll.clear();
            self.pending.clear();
        }
        if self.pending.is_empty() {
            self.pending_start = chunk.start;
        }
        self.cursor = Some(chunk.start + chunk.samples.len() as u64);
        let mut rest = chunk.samples.as_slice();
        while !rest.is_empty() {
            let take = (FRAME - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME {
                let frame = std::mem::take(&mut self.pending);
                let decision = self.gate.classify(&frame);
                let pos = self.pending_start;
                self.frame(pos, &frame, decision);
                self.pending = frame;
                self.pending.clear();
                self.pending_start = pos + FRAME as u64;
            }
        }
    }

    /// End of the track (or of its stretch: audio may resume later at any position): closes
    /// the utterance in progress and forgets the partial frame, whose position would otherwise
    /// carry over to the audio that resumes.
    pub fn finish(&mut self) {
        self.close(false);
        self.cursor = None;
        self.gate.reset();
        self.preroll.clear();
        self.pending.clear();
    }

    /// Speculates after `ms` of silence from now on (never below the configured shortest;
    /// `None`: not at all).
    pub fn set_speculate_after(&mut self, ms: Option<u64>) {
        let floor = self.config.speculate_after_ms;
        self.speculate_after = ms.filter(|_| floor > 0).map(|ms| ms.max(floor));
    }

    /// How the pauses since the last call turned out.
    pub fn take_pauses(&mut self) -> Vec<Pause> {
        std::mem::take(&mut self.pauses)
    }

    /// The position just after the last sample pushed, while the track is heard.
    pub fn position(&self) -> Option<u64> {
        self.cursor
    }

    pub fn poll(&mut self) -> Option<SegmenterOutput> {
        self.out.pop_front()
    }

    fn frame(&mut self, pos: u64, samples: &[f32], decision: Frame) {
        let Frame { voiced, rms, .. } = decision;
        let cfg = self.config;
        match (&mut self.current, voiced) {
            (None, false) => {
                self.preroll.extend(samples);
                let keep = ms_to_samples(cfg.preroll_ms) as usize;
                while self.preroll.len() > keep {
                    self.preroll.pop_front();
                }
                return;
            }
            (None, true) => {
                let pre: Vec<f32> = self.preroll.drain(..).collect();
                let audio_start = pos - pre.len() as u64;
                let mut samples_all = pre;
                samples_all.extend_from_slice(samples);
                let pre_frames = (samples_all.len() - samples.len()).div_ceil(FRAME);
                let mut rms_all = vec![0.0; pre_frames];
                rms_all.push(rms);
                self.current = Some(Current {
                    start: pos,
                    audio_start,
                    samples: samples_all,
                    rms: rms_all,
                    voiced_end: pos + FRAME as u64,
                    voiced_samples: FRAME as u64,
                    silence_run: 0,
                    partial_at: 0,
                    partials_sent: false,
                    speculated_end: None,
                });
            }
            (Some(cur), voiced) => {
                cur.samples.extend_from_slice(samples);
                cur.rms.push(rms);
                if voiced {
                    if cur.silence_run >= ms_to_samples(cfg.speculate_after_ms.max(1)) {
                        self.pauses
                            .push(Pause::WentOn(samples_to_ms(cur.silence_run)));
                    }
                    cur.voiced_end = pos + FRAME as u64;
                    cur.voiced_samples += FRAME as u64;
                    cur.silence_run = 0;
                } else {
                    cur.silence_run += FRAME as u64;
                }
            }
        }
        let Some(cur) = &mut self.current else { return };
        let len = pos + FRAME as u64 - cur.start;
        let ended = cur.silence_run >= ms_to_samples(cfg.end_silence_ms);
        if ended
            || (len >= ms_to_samples(cfg.soft_max_ms)
                && cur.silence_run >= ms_to_samples(cfg.split_silence_ms))
        {
            if ended {
                self.pauses.push(Pause::Ended);
            }
            self.close(false);
        } else if len >= ms_to_samples(cfg.max_ms) {
            self.close(true);
        } else if let Some(after) = self.speculate_after
            && cur.silence_run >= ms_to_samples(after)
            // The gate opens only on the next voiced frame: a pause whose voice is coming back
            // would be decoded for nothing.
            && !decision.opening
            && cur.speculated_end != Some(cur.voiced_end)
            && cur.voiced_samples >= ms_to_samples(cfg.min_voiced_ms)
        {
            cur.speculated_end = Some(cur.voiced_end);
            // Its result is shown as a partial too: the next partial waits a full interval.
            cur.partial_at = cur.samples.len();
            let keep_to = final_len(cur, cfg.tail_ms);
            self.out
                .push_back(SegmenterOutput::Speculative(UtteranceAudio {
                    start: cur.start,
                    end: cur.voiced_end,
                    audio_start: cur.audio_start,
                    samples: cur.samples[..keep_to].to_vec(),
                }));
        } else if cfg.partial_every_ms > 0
            && cur.silence_run == 0
            && cur.samples.len() - cur.partial_at >= partial_gap(cur.partial_at, &cfg)
            && cur.voiced_samples >= ms_to_samples(cfg.min_voiced_ms)
        {
            cur.partial_at = cur.samples.len();
            cur.partials_sent = true;
            self.out.push_back(SegmenterOutput::Partial(UtteranceAudio {
                start: cur.start,
                end: cur.voiced_end,
                audio_start: cur.audio_start,
                samples: cur.samples.clone(),
            }));
        }
    }

    /// Closes the current utterance. A hard cut splits at the quietest frame of the last 2 s and
    /// carries the rest into a new utterance, so no word is lost at the seam.
    fn close(&mut self, hard_cut: bool) {
        let Some(mut cur) = self.current.take() else {
            return;
        };
        let mut carry: Option<Current> = None;
        if hard_cut {
            let frames = cur.rms.len();
            let look = (ms_to_samples(2000) as usize / FRAME).min(frames.saturating_sub(1));
            let (cut_frame, _) = cur.rms[frames - look..]
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, r)| (frames - look + i, *r))
                .unwrap_or((frames, 0.0));
            let cut_sample = (cut_frame * FRAME).min(cur.samples.len());
            let rest = cur.samples.split_off(cut_sample);
            let rest_rms = cur.rms.split_off(cut_frame.min(cur.rms.len()));
            let cut_pos = cur.audio_start + cut_sample as u64;
            cur.voiced_end = cur.voiced_end.min(cut_pos);
            if !rest.is_empty() {
                carry = Some(Current {
                    start: cut_pos,
                    audio_start: cut_pos,
                    voiced_end: cut_pos + rest.len() as u64,
                    voiced_samples: rest.len() as u64,
                    samples: rest,
                    rms: rest_rms,
                    silence_run: 0,
                    partial_at: 0,
                    partials_sent: false,
                    speculated_end: None,
                });
            }
        }
        let keep_to = final_len(&cur, self.config.tail_ms);
        // The silence after the tail is the next utterance's pre-roll.
        if carry.is_none() && keep_to < cur.samples.len() {
            let keep = ms_to_samples(self.config.preroll_ms) as usize;
            let silence = &cur.samples[keep_to..];
            self.preroll.clear();
            self.preroll
                .extend(&silence[silence.len().saturating_sub(keep)..]);
        }
        cur.samples.truncate(keep_to);
        if cur.voiced_samples >= ms_to_samples(self.config.min_voiced_ms) || cur.partials_sent {
            self.out.push_back(SegmenterOutput::Final(UtteranceAudio {
                start: cur.start,
                end: cur.voiced_end,
                audio_start: cur.audio_start,
                samples: cur.samples,
            }));
        }
        self.current = carry;
    }
}

/// New samples before the next partial, `partial_at` samples into the utterance. Each partial
/// decodes the whole utterance so far, so at a fixed interval a long turn's partials would cost
/// more per second of speech the longer it runs; spaced by a share of the length already shown
/// ([`PARTIAL_GROWTH_DIVISOR`]), they cost a bounded multiple of the speech.
fn partial_gap(partial_at: usize, cfg: &SegmenterConfig) -> usize {
    (ms_to_samples(cfg.partial_every_ms) as usize).max(partial_at / PARTIAL_GROWTH_DIVISOR)
}

/// Partials are at least half the utterance shown so far apart: by default 2.5, 5, 7.5, 11.25 s
/// into a turn.
const PARTIAL_GROWTH_DIVISOR: usize = 2;

/// How many of the utterance's samples its final decodes: up to the tail after the voice.
fn final_len(cur: &Current, tail_ms: u64) -> usize {
    let to = (cur.voiced_end + ms_to_samples(tail_ms)).saturating_sub(cur.audio_start) as usize;
    to.min(cur.samples.len())
}
