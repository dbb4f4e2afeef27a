//! A bounded pool of Whisper worker threads shared by every meeting in the process.
//!
//! Queue policy when busy: final-quality decodes run first, in arrival order, and are dropped
//! only when a newer one for the same utterance (more audio) replaces it; a stream has at most one
//! waiting partial, and a newer partial (or that stream's final) replaces it; past
//! `max_partials` waiting in all, the oldest partial is dropped. Finals are bounded by their
//! producers, which stop reading media while too many of their finals are outstanding.

use super::whisper::{DecodeKind, Decoder, EngineConfig, EngineError, Hypothesis, WhisperModel};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// A decode request. `stream` identifies one speaker in one meeting; `utterance` the utterance.
#[derive(Debug)]
pub struct Job {
    pub stream: u64,
    pub utterance: u64,
    pub end: u64,
    pub kind: DecodeKind,
    pub samples: Vec<f32>,
    pub prompt: Option<String>,
    pub reply: UnboundedSender<JobDone>,
}

#[derive(Debug)]
pub struct JobDone {
    pub stream: u64,
    pub utterance: u64,
    pub end: u64,
    pub kind: DecodeKind,
    pub result: Result<Hypothesis, String>,
}

#[derive(Debug, Default)]
pub struct PoolStats {
    pub finals: AtomicU64,
    pub partials: AtomicU64,
    pub partials_dropped: AtomicU64,
    /// Speculative final decodes replaced by a newer one for the same utterance before they ran.
    pub finals_superseded: AtomicU64,
    pub final_micros: AtomicU64,
    pub partial_micros: AtomicU64,
    /// Time final-quality jobs waited in the queue: how much of caption latency is contention.
    pub final_wait_micros: AtomicU64,
}

struct Queued {
    job: Job,
    at: Instant,
}

#[derive(Default)]
struct Queue {
    finals: VecDeque<Queued>,
    partials: VecDeque<Queued>,
    closed: bool,
}

impl Queue {
    /// Queues a job by the policy above; returns (partials dropped, finals superseded).
    fn push(&mut self, job: Job, at: Instant, max_partials: usize) -> (u64, u64) {
        let (stream, utterance) = (job.stream, job.utterance);
        let before = self.partials.len();
        self.partials.retain(|p| p.job.stream != stream);
        let mut dropped = (before - self.partials.len()) as u64;
        let mut superseded = 0;
        let queued = Queued { job, at };
        match queued.job.kind {
            DecodeKind::Final | DecodeKind::Whole => {
                let before = self.finals.len();
                self.finals
                    .retain(|f| (f.job.stream, f.job.utterance) != (stream, utterance));
                superseded = (before - self.finals.len()) as u64;
                self.finals.push_back(queued);
            }
            DecodeKind::Partial => {
                self.partials.push_back(queued);
                while self.partials.len() > max_partials {
                    self.partials.pop_front();
                    dropped += 1;
                }
            }
        }
        (dropped, superseded)
    }

    fn pop(&mut self) -> Option<Queued> {
        self.finals
            .pop_front()
            .or_else(|| self.partials.pop_front())
    }
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    stats: PoolStats,
    max_partials: usize,
}

pub struct AsrPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for AsrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrPool")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl AsrPool {
    /// Starts `workers` threads, each with its own decoder state on the shared model.
    pub fn start(
        model: &WhisperModel,
        workers: usize,
        engine: EngineConfig,
    ) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            stats: PoolStats::default(),
            max_partials: workers.max(1) * 4,
        });
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let decoder = model.decoder(engine.clone())?;
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("whisper-{i}"))
                .spawn(move || worker(decoder, &shared))
                .map_err(|e| EngineError::Decode(format!("cannot start a worker thread: {e}")))?;
            handles.push(handle);
        }
        Ok(Self {
            shared,
            workers: handles,
        })
    }

    pub fn stats(&self) -> &PoolStats {
        &self.shared.stats
    }

    pub fn submit(&self, job: Job) {
        let mut q = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (dropped, superseded) = q.push(job, Instant::now(), self.shared.max_partials);
        drop(q);
        let stats = &self.shared.stats;
        stats.partials_dropped.fetch_add(dropped, Ordering::Relaxed);
        stats
            .finals_superseded
            .fetch_add(superseded, Ordering::Relaxed);
        self.shared.ready.notify_one();
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.shared.ready.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(mut decoder: Decoder, shared: &Shared) {
    loop {
        let next = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(j) = q.pop() {
                    break Some(j);
                }
                if q.closed {
                    break None;
                }
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let Some(Queued { job, at }) = next else {
            return;
        };
        if job.kind != DecodeKind::Partial {
            let waited = at.elapsed().as_micros() as u64;
            shared
                .stats
                .final_wait_micros
                .fetch_add(waited, Ordering::Relaxed);
        }
        let started = Instant::now();
        let result = decoder
            .decode(&job.samples, job.kind, job.prompt.as_deref())
            .map_err(|e| e.to_string());
        let decoding = started.elapsed();
        let (count, micros) = match job.kind {
            DecodeKind::Partial => (&shared.stats.partials, &shared.stats.partial_micros),
            DecodeKind::Final | DecodeKind::Whole => {
                (&shared.stats.finals, &shared.stats.final_micros)
            }
        };
        count.fetch_add(1, Ordering::Relaxed);
        micros.fetch_add(decoding.as_micros() as u64, Ordering::Relaxed);
        // The meeting may have ended meanwhile; nobody to tell then.
        let _ = job.reply.send(JobDone {
            stream: job.stream,
            utterance: job.utterance,
            end: job.end,
            kind: job.kind,
            result,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(stream: u64, utterance: u64, kind: DecodeKind, reply: &UnboundedSender<JobDone>) -> Job {
        Job {
            stream,
            utterance,
            end: 0,
            kind,
            samples: Vec::new(),
            prompt: None,
            reply: reply.clone(),
        }
    }

    fn order(q: &mut Queue) -> Vec<(u64, u64, DecodeKind)> {
        std::iter::from_fn(|| q.pop())
            .map(|j| (j.job.stream, j.job.utterance, j.job.kind))
            .collect()
    }

    #[test]
    fn finals_first_and_never_dropped_stale_partials_replaced() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut q = Queue::default();
        let now = Instant::now();
        assert_eq!(q.push(job(1, 10, DecodeKind::Partial, &tx), now, 2), (0, 0));
        assert_eq!(
            q.push(job(1, 10, DecodeKind::Partial, &tx), now, 2),
            (1, 0),
            "newer partial replaces"
        );
        assert_eq!(q.push(job(2, 20, DecodeKind::Partial, &tx), now, 2), (0, 0));
        assert_eq!(
            q.push(job(3, 30, DecodeKind::Partial, &tx), now, 2),
            (1, 0),
            "over the cap: oldest goes"
        );
        for i in 0..50 {
            assert_eq!(
                q.push(job(4 + i, 1, DecodeKind::Final, &tx), now, 2),
                (0, 0)
            );
        }
        let out = order(&mut q);
        assert_eq!(out.len(), 52);
        assert!(
            out[..50].iter().all(|(_, _, k)| *k == DecodeKind::Final),
            "finals run first"
        );
        assert_eq!(
            &out[50..],
            &[(2, 20, DecodeKind::Partial), (3, 30, DecodeKind::Partial)]
        );
    }

    #[test]
    fn a_newer_final_for_the_same_utterance_supersedes_and_clears_its_partial() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut q = Queue::default();
        let now = Instant::now();
        q.push(job(1, 10, DecodeKind::Final, &tx), now, 4);
        q.push(job(1, 10, DecodeKind::Partial, &tx), now, 4);
        assert_eq!(
            q.push(job(1, 11, DecodeKind::Final, &tx), now, 4),
            (1, 0),
            "a final clears its stream's partial"
        );
        assert_eq!(
            q.push(job(1, 10, DecodeKind::Final, &tx), now, 4),
            (0, 1),
            "more audio supersedes"
        );
        assert_eq!(
            order(&mut q),
            vec![(1, 11, DecodeKind::Final), (1, 10, DecodeKind::Final)]
        );
    }
}
