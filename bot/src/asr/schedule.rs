//! Which decode runs next, and how well: the decode pool's policy, sans-IO (the caller passes
//! the time, so tests run a simulated decoder faster than real time).
//!
//! Every live decode has a deadline, derived from when its audio ended. Finals run first,
//! earliest deadline first, then speculative finals, then partials. Under overload the policy
//! degrades in a fixed order, each step counted:
//! 1. `partial`: partials wait behind everything else; one that is replaced by a newer one of its
//!    speaker, or whose deadline passed, is dropped without running.
//! 2. `speculation`: a speculative final runs only when no final waits and it can finish before
//!    the deadline of the final it anticipates; otherwise it is dropped.
//! 3. `beam`, then `context`: a final is decoded at the best quality that still lets every
//!    waiting final meet its deadline (the others at their cheapest): beam search after the
//!    speaker's earlier speech, greedy after it, or greedy on the utterance alone in a window cut
//!    to its length. A final that cannot be decoded well in time is decoded cheaply rather than
//!    late, and no final is ever dropped.
//!
//! Decodes without a deadline (offline transcription) always run at full quality, in order.

use super::transcriber::Purpose;
pub use parley_shared::fleet::{Degradations, Step};
use std::time::{Duration, Instant};

/// How a final-quality decode is made, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// After the speaker's earlier speech, beam search.
    Full,
    /// After the speaker's earlier speech, greedy.
    Greedy,
    /// The utterance alone, greedy, in a window cut to its length (also how partials decode).
    Alone,
}

impl Quality {
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Greedy => "greedy",
            Self::Alone => "alone",
        }
    }
}

/// The sizes the cost of a decode depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSize {
    /// Encoder frames of the window with the context in front.
    pub frames: usize,
    /// Encoder frames of the window of the utterance alone.
    pub own_frames: usize,
    /// Length of the utterance's own audio, which sets how many tokens are searched for.
    pub own_ms: u64,
}

/// What a decode cost, as the engine measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    pub beam: usize,
    pub window_frames: usize,
    pub tokens: usize,
    pub evals: usize,
    pub encode: Duration,
    pub search: Duration,
}

/// Running estimates of what decodes cost on this machine, learned from the decodes it made.
#[derive(Debug, Clone, Copy)]
pub struct CostModel {
    encode_us_per_frame: f64,
    us_per_eval: f64,
    /// Decoder passes per produced token with the configured beam (1 + the token per greedy).
    beam_evals_per_token: f64,
}

/// A decode is due no sooner than this many times its own estimated time after it is queued.
const OWN_TIME_SLACK: f64 = 1.25;
/// New observations weigh this much in the running estimates.
const LEARNING_RATE: f64 = 0.2;
/// Tokens per second of speech, for estimating a search's length before it runs.
const TOKENS_PER_SECOND: f64 = 3.5;

impl Default for CostModel {
    /// A cautious start: about what a 2-thread decode costs on a CPU with AVX2 (on AVX-512 it is
    /// faster); the estimates follow the first decodes.
    fn default() -> Self {
        Self {
            encode_us_per_frame: 400.0,
            us_per_eval: 5_000.0,
            beam_evals_per_token: 2.5,
        }
    }
}

impl CostModel {
    /// What a decode of this size at this quality should take.
    pub fn estimate(&self, size: &JobSize, quality: Quality) -> Duration {
        let tokens = size.own_ms as f64 / 1000.0 * TOKENS_PER_SECOND + 1.0;
        let (frames, evals) = match quality {
            Quality::Full => (size.frames, tokens * self.beam_evals_per_token),
            Quality::Greedy => (size.frames, tokens),
            Quality::Alone => (size.own_frames, tokens),
        };
        let us = frames as f64 * self.encode_us_per_frame + evals * self.us_per_eval;
        Duration::from_micros(us as u64)
    }

    pub fn learn(&mut self, o: &Observed) {
        let ema = |old: &mut f64, new: f64| *old += LEARNING_RATE * (new - *old);
        if o.window_frames > 0 {
            ema(
                &mut self.encode_us_per_frame,
                o.encode.as_micros() as f64 / o.window_frames as f64,
            );
        }
        if o.evals > 0 {
            ema(
                &mut self.us_per_eval,
                o.search.as_micros() as f64 / o.evals as f64,
            );
            if o.beam > 1 {
                ema(
                    &mut self.beam_evals_per_token,
                    o.evals as f64 / (o.tokens + 1) as f64,
                );
            }
        }
    }
}

/// A decode waiting to run.
#[derive(Debug)]
pub struct Entry<J> {
    pub job: J,
    /// A speaker in a meeting, unique in the process.
    pub stream: u64,
    pub utterance: u64,
    pub purpose: Purpose,
    /// When the result is due; `None` for offline work.
    pub due: Option<Instant>,
    pub size: JobSize,
}

/// The next decode to run.
#[derive(Debug)]
pub struct Next<J> {
    pub job: J,
    pub purpose: Purpose,
    pub quality: Quality,
    /// Time it waited in the queue.
    pub waited: Duration,
}

#[derive(Debug)]
struct Queued<J> {
    entry: Entry<J>,
    at: Instant,
}

/// The queue of decodes and the policy that picks the next one.
#[derive(Debug)]
pub struct Schedule<J> {
    finals: Vec<Queued<J>>,
    speculative: Vec<Queued<J>>,
    partials: Vec<Queued<J>>,
    /// Decodes that can run at once.
    workers: usize,
    costs: CostModel,
    degraded: Degradations,
    /// Decodes dropped without running, for their owners to hear of.
    dropped: Vec<J>,
}

impl<J> Schedule<J> {
    pub fn new(workers: usize) -> Self {
        Self {
            finals: Vec::new(),
            speculative: Vec::new(),
            partials: Vec::new(),
            workers: workers.max(1),
            costs: CostModel::default(),
            degraded: Degradations::default(),
            dropped: Vec::new(),
        }
    }

    /// The decodes dropped since the last call: a speculative final's owner may be waiting for
    /// it to become the final.
    pub fn take_dropped(&mut self) -> Vec<J> {
        std::mem::take(&mut self.dropped)
    }

    fn drop_where(
        queue: &mut Vec<Queued<J>>,
        dropped: &mut Vec<J>,
        gone: impl Fn(&Entry<J>) -> bool,
    ) -> u64 {
        let mut count = 0;
        let mut i = 0;
        while i < queue.len() {
            if gone(&queue[i].entry) {
                dropped.push(queue.remove(i).entry.job);
                count += 1;
            } else {
                i += 1;
            }
        }
        count
    }

    pub fn degraded(&self) -> Degradations {
        self.degraded
    }

    pub fn costs(&self) -> &CostModel {
        &self.costs
    }

    /// Decodes waiting, all kinds.
    pub fn len(&self) -> usize {
        self.finals.len() + self.speculative.len() + self.partials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finals waiting.
    pub fn finals_waiting(&self) -> usize {
        self.finals.len()
    }

    /// Seconds of decoding the waiting work needs at full quality, per worker: how far behind
    /// real time this pool is.
    pub fn backlog(&self) -> Duration {
        let total: Duration = self
            .finals
            .iter()
            .chain(&self.speculative)
            .map(|q| self.costs.estimate(&q.entry.size, Quality::Full))
            .chain(
                self.partials
                    .iter()
                    .map(|q| self.costs.estimate(&q.entry.size, Quality::Alone)),
            )
            .sum();
        total / self.workers as u32
    }

    /// Queues a decode. A stream has at most one waiting partial; an utterance at most one
    /// waiting final-quality decode (a newer one, with more audio or the final itself, replaces
    /// a waiting speculative one), and its final replaces its stream's waiting partial.
    pub fn push(&mut self, mut entry: Entry<J>, now: Instant) {
        // A decode is never due before it could be done alone: a long utterance on a slow CPU
        // is not degraded for taking its time, only for waiting behind others.
        if let Some(due) = &mut entry.due {
            let quality = match entry.purpose {
                Purpose::Partial => Quality::Alone,
                _ => Quality::Full,
            };
            let alone = self
                .costs
                .estimate(&entry.size, quality)
                .mul_f64(OWN_TIME_SLACK);
            *due = (*due).max(now + alone);
        }
        let (stream, utterance) = (entry.stream, entry.utterance);
        let of_stream = |e: &Entry<J>| e.stream == stream;
        if entry.purpose.is_final() {
            let of_utterance = |e: &Entry<J>| (e.stream, e.utterance) == (stream, utterance);
            self.degraded.speculation +=
                Self::drop_where(&mut self.speculative, &mut self.dropped, of_utterance);
        }
        // A newer decode of the stream makes its waiting partial moot: it never ran because the
        // pool was busy, so it counts as a degradation.
        self.degraded.partial += Self::drop_where(&mut self.partials, &mut self.dropped, of_stream);
        let queued = Queued { entry, at: now };
        match queued.entry.purpose {
            Purpose::Partial => self.partials.push(queued),
            Purpose::Speculative => self.speculative.push(queued),
            Purpose::Final | Purpose::Alone => self.finals.push(queued),
        }
    }

    /// Learns from a decode that ran.
    pub fn record(&mut self, observed: &Observed) {
        self.costs.learn(observed);
    }

    /// The decode to run now, and at what quality; `None` when nothing is worth running.
    pub fn next(&mut self, now: Instant) -> Option<Next<J>> {
        if !self.finals.is_empty() {
            return Some(self.next_final(now));
        }
        while let Some(q) = take_earliest(&mut self.speculative) {
            let fits = q
                .entry
                .due
                .is_none_or(|due| now + self.costs.estimate(&q.entry.size, Quality::Full) <= due);
            if fits {
                return Some(next(q, Quality::Full, now));
            }
            self.degraded.count(Step::Speculation);
            self.dropped.push(q.entry.job);
        }
        while let Some(q) = take_earliest(&mut self.partials) {
            if q.entry.due.is_none_or(|due| now <= due) {
                return Some(next(q, Quality::Alone, now));
            }
            self.degraded.count(Step::Partial);
            self.dropped.push(q.entry.job);
        }
        None
    }

    /// The final due first, at the best quality that keeps every waiting final in time.
    fn next_final(&mut self, now: Instant) -> Next<J> {
        self.finals
            .sort_by_key(|q| (q.entry.due.is_none(), q.entry.due, q.at));
        let q = self.finals.remove(0);
        if q.entry.due.is_none() {
            return next(q, Quality::Full, now);
        }
        // This one at `quality`, then every other waiting final at its cheapest, in deadline
        // order: does each still finish before it is due?
        let in_time = |quality: Quality| {
            let mut done = now + self.costs.estimate(&q.entry.size, quality);
            if q.entry.due.is_some_and(|due| done > due) {
                return false;
            }
            for o in &self.finals {
                done += self.costs.estimate(&o.entry.size, Quality::Alone) / self.workers as u32;
                if o.entry.due.is_some_and(|due| done > due) {
                    return false;
                }
            }
            true
        };
        let quality = [Quality::Full, Quality::Greedy]
            .into_iter()
            .find(|&quality| in_time(quality))
            .unwrap_or(Quality::Alone);
        if quality != Quality::Full {
            self.degraded.count(Step::Beam);
        }
        if quality == Quality::Alone {
            self.degraded.count(Step::Context);
        }
        next(q, quality, now)
    }
}

fn next<J>(q: Queued<J>, quality: Quality, now: Instant) -> Next<J> {
    Next {
        purpose: q.entry.purpose,
        job: q.entry.job,
        quality,
        waited: now.saturating_duration_since(q.at),
    }
}

/// Removes the entry due first (arrival order among equals).
fn take_earliest<J>(queue: &mut Vec<Queued<J>>) -> Option<Queued<J>> {
    let i = (0..queue.len()).min_by_key(|&i| {
        let e = &queue[i];
        (e.entry.due.is_none(), e.entry.due, e.at)
    })?;
    Some(queue.remove(i))
}
