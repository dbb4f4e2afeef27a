//! The decode pool shared by every meeting in the process: worker threads, each with its own
//! decoder state on the one loaded model, taking decodes from one queue in the order and at the
//! quality [`Schedule`] decides.

use super::schedule::{Degradations, Entry, JobSize, Observed, Quality, Schedule};
use super::transcriber::{DecodeRequest, Purpose, WentOn};
use super::whisper::{
    DecodeSpec, Decoder, EngineConfig, EngineError, Hypothesis, WhisperModel, Window,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How the pool decodes.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Decodes that run at once, each on its own thread and decoder state (about 130 MB each).
    pub workers: usize,
    pub engine: EngineConfig,
    /// Beam width of finals at full quality.
    pub final_beam: usize,
    /// Window of final-quality decodes (context and utterance).
    pub final_window: Window,
    /// Window of partials.
    pub partial_window: Window,
    /// Window of finals decoded cheaply, the utterance alone.
    pub alone_window: Window,
    /// CPU threads of a partial's decode. One: a small window keeps a second thread waiting at
    /// every step (2 threads cost about a quarter more CPU for the same partial, measured), and
    /// partials are not what latency is counted on.
    pub partial_threads: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            engine: EngineConfig::default(),
            final_beam: 5,
            final_window: Window::Full,
            partial_window: PARTIAL_WINDOW,
            alone_window: ALONE_WINDOW,
            partial_threads: 1,
        }
    }
}

impl PoolConfig {
    /// The window of a decode of the utterance alone: a partial's, or a final's decoded cheaply.
    fn own_window(&self, purpose: Purpose) -> Window {
        if purpose == Purpose::Partial {
            self.partial_window
        } else {
            self.alone_window
        }
    }
}

/// A partial's window: its audio and 0.64 s of the silence after it. The margin costs encoder
/// frames on every partial: with margins of 0, 16, 32 and 128 frames the dev meeting's partials
/// were the same word for word (0 and 128 on the eval meeting too). With less margin the greedy
/// search more often fails to find the end of the text; since a greedy search stops as soon as
/// it loops, that costs less than the shorter window saves down to 32 frames; at 16 the
/// partials' words changed more often in their finals (`docs/benchmarks.md`).
pub const PARTIAL_WINDOW: Window = Window::Cut { margin_frames: 32 };

/// A final decoded alone gets 2.56 s of silence after its audio: it is the text that stays, and
/// the fallback when the pool is behind, so it keeps the margin the finals were measured with.
pub const ALONE_WINDOW: Window = Window::Cut { margin_frames: 128 };

/// How the pool's stats name the speculative decodes whose speaker went on before they were done:
/// searched greedily, or decoded as a partial when the speaker went on before they started.
pub const WENT_ON: &str = "went on";

/// A decode for the pool: a transcriber's request, where its result goes, and when it is due.
#[derive(Debug)]
pub struct Job {
    /// The speaker in the meeting, unique in the process.
    pub stream: u64,
    pub request: DecodeRequest,
    /// `None` for offline work: never degraded or dropped.
    pub due: Option<Instant>,
    pub reply: UnboundedSender<JobDone>,
}

#[derive(Debug)]
pub struct JobDone {
    /// The transcriber's stream index, as in the request.
    pub stream: usize,
    pub utterance: u64,
    pub end: u64,
    /// What the decode was: a final the pool decoded without its context is `Alone`.
    pub purpose: Purpose,
    /// `None`: dropped without running (a partial or speculative final under load).
    pub result: Option<Result<Hypothesis, String>>,
}

impl JobDone {
    fn dropped(job: Job) -> (UnboundedSender<JobDone>, Self) {
        let r = job.request;
        let done = Self {
            stream: r.stream,
            utterance: r.utterance,
            end: r.end,
            purpose: r.purpose,
            result: None,
        };
        (job.reply, done)
    }
}

/// Tells the owners of dropped decodes.
fn tell_dropped(jobs: Vec<Job>) {
    for job in jobs {
        let (reply, done) = JobDone::dropped(job);
        // The meeting may have ended meanwhile; nobody to tell then.
        let _ = reply.send(done);
    }
}

/// Decodes of one purpose at one quality.
#[derive(Debug, Clone, Copy, Default)]
pub struct KindStats {
    pub decodes: u64,
    pub window_frames: u64,
    /// The utterances' own audio.
    pub own_ms: u64,
    pub tokens: u64,
    pub evals: u64,
    pub encode: Duration,
    pub search: Duration,
    /// CPU time of the decoding thread: unlike the wall times above, not stretched by other
    /// threads taking the core.
    pub cpu: Duration,
    pub waited: Duration,
}

impl std::ops::AddAssign for KindStats {
    fn add_assign(&mut self, o: Self) {
        self.decodes += o.decodes;
        self.window_frames += o.window_frames;
        self.own_ms += o.own_ms;
        self.tokens += o.tokens;
        self.evals += o.evals;
        self.encode += o.encode;
        self.search += o.search;
        self.cpu += o.cpu;
        self.waited += o.waited;
    }
}

impl std::ops::SubAssign for KindStats {
    fn sub_assign(&mut self, o: Self) {
        self.decodes -= o.decodes;
        self.window_frames -= o.window_frames;
        self.own_ms -= o.own_ms;
        self.tokens -= o.tokens;
        self.evals -= o.evals;
        self.encode -= o.encode;
        self.search -= o.search;
        self.cpu -= o.cpu;
        self.waited -= o.waited;
    }
}

/// What the pool has done so far.
#[derive(Debug, Clone, Default)]
pub struct PoolStats {
    pub by_kind: BTreeMap<(&'static str, &'static str), KindStats>,
    pub degraded: Degradations,
    /// Decodes waiting now.
    pub queued: usize,
    /// Decoding the waiting work needs this long (estimated): how far behind the pool is.
    pub backlog: Duration,
}

impl PoolStats {
    /// The work done since `earlier` (a snapshot of the same pool).
    pub fn since(&self, earlier: &PoolStats) -> PoolStats {
        let mut by_kind = self.by_kind.clone();
        for (key, k) in &mut by_kind {
            if let Some(&e) = earlier.by_kind.get(key) {
                *k -= e;
            }
        }
        by_kind.retain(|_, k| k.decodes > 0);
        let (d, e) = (self.degraded, earlier.degraded);
        PoolStats {
            by_kind,
            degraded: Degradations {
                partial: d.partial - e.partial,
                speculation: d.speculation - e.speculation,
                beam: d.beam - e.beam,
                context: d.context - e.context,
            },
            queued: self.queued,
            backlog: self.backlog,
        }
    }

    /// All decodes of final quality (every purpose but partials).
    pub fn finals(&self) -> KindStats {
        self.sum(|purpose| purpose != Purpose::Partial.name())
    }

    pub fn partials(&self) -> KindStats {
        self.sum(|purpose| purpose == Purpose::Partial.name())
    }

    fn sum(&self, keep: impl Fn(&str) -> bool) -> KindStats {
        let mut total = KindStats::default();
        for (&(purpose, _), &k) in &self.by_kind {
            if keep(purpose) {
                total += k;
            }
        }
        total
    }
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    config: PoolConfig,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Queue {
    schedule: Schedule<Job>,
    stats: PoolStats,
    closed: bool,
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
    /// Starts the worker threads, each with its own decoder state on the shared model.
    pub fn start(model: &WhisperModel, config: PoolConfig) -> Result<Self, EngineError> {
        let workers = config.workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                schedule: Schedule::new(workers),
                stats: PoolStats::default(),
                closed: false,
            }),
            ready: Condvar::new(),
            config,
        });
        let mut handles = Vec::new();
        for i in 0..workers {
            let decoder = model.decoder(shared.config.engine.clone())?;
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

    pub fn stats(&self) -> PoolStats {
        let q = self.lock();
        let mut stats = q.stats.clone();
        stats.degraded = q.schedule.degraded();
        stats.queued = q.schedule.len();
        stats.backlog = q.schedule.backlog();
        stats
    }

    /// How far behind the pool is: what decoding the waiting work needs (estimated).
    pub fn backlog(&self) -> Duration {
        self.lock().schedule.backlog()
    }

    pub fn submit(&self, job: Job) {
        let config = &self.shared.config;
        let r = &job.request;
        let size = JobSize {
            frames: config.final_window.frames(r.samples.len()),
            own_frames: config.own_window(r.purpose).frames(r.own_samples),
            own_ms: r.own_samples as u64 / 16,
        };
        let entry = Entry {
            stream: job.stream,
            utterance: r.utterance,
            purpose: r.purpose,
            due: job.due,
            size,
            job,
        };
        let dropped = {
            let mut q = self.lock();
            q.schedule.push(entry, Instant::now());
            q.schedule.take_dropped()
        };
        tell_dropped(dropped);
        self.shared.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.lock()
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(mut decoder: Decoder, shared: &Shared) {
    let config = &shared.config;
    loop {
        let (next, dropped, closed) = {
            let mut q = shared.lock();
            loop {
                let next = q.schedule.next(Instant::now());
                let dropped = q.schedule.take_dropped();
                if next.is_some() || q.closed || !dropped.is_empty() {
                    break (next, dropped, q.closed);
                }
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        tell_dropped(dropped);
        let Some(next) = next else {
            if closed {
                return;
            }
            continue;
        };
        let r = &next.job.request;
        let went_on = r.went_on.as_ref();
        // A speculative decode whose speaker went on before it started can only be shown as a
        // partial: it is decoded as one.
        let decoded_as = if went_on.is_some_and(WentOn::is_set) {
            Purpose::Partial
        } else {
            next.purpose
        };
        let as_partial = decoded_as == Purpose::Partial;
        let alone = next.quality == Quality::Alone || as_partial;
        let spec = DecodeSpec {
            audio: if alone { r.own_audio() } else { &r.samples },
            prefix: if alone { &[] } else { &r.prefix },
            settled: &r.settled,
            own_samples: r.own_samples,
            beam: match next.quality {
                Quality::Full if !as_partial => config.final_beam,
                _ => 1,
            },
            window: if alone {
                config.own_window(decoded_as)
            } else {
                config.final_window
            },
            threads: if as_partial {
                config.partial_threads
            } else {
                config.engine.threads
            },
            demote: went_on.map(WentOn::flag),
        };
        let cpu_before = thread_cpu();
        let decoded = decoder.decode(&spec);
        let cpu = thread_cpu().saturating_sub(cpu_before);
        {
            let mut q = shared.lock();
            if let Ok(d) = &decoded {
                let observed = Observed {
                    beam: d.cost.beam,
                    window_frames: d.cost.window_frames,
                    tokens: d.hypothesis.tokens.len(),
                    evals: d.cost.evals,
                    encode: d.cost.encode,
                    search: d.cost.search,
                };
                q.schedule.record(&observed);
                let quality = if next.purpose == Purpose::Speculative
                    && (as_partial || d.cost.beam < spec.beam)
                {
                    WENT_ON
                } else {
                    next.quality.name()
                };
                *q.stats
                    .by_kind
                    .entry((next.purpose.name(), quality))
                    .or_default() += KindStats {
                    decodes: 1,
                    window_frames: d.cost.window_frames as u64,
                    own_ms: r.own_samples as u64 / 16,
                    tokens: d.hypothesis.tokens.len() as u64,
                    evals: d.cost.evals as u64,
                    encode: d.cost.encode,
                    search: d.cost.search,
                    cpu,
                    waited: next.waited,
                };
            }
        }
        let purpose = if alone && decoded_as.is_final() {
            Purpose::Alone
        } else {
            next.purpose
        };
        // The meeting may have ended meanwhile; nobody to tell then.
        let _ = next.job.reply.send(JobDone {
            stream: r.stream,
            utterance: r.utterance,
            end: r.end,
            purpose,
            result: Some(decoded.map(|d| d.hypothesis).map_err(|e| e.to_string())),
        });
    }
}

/// CPU time this thread has used (zero where the clock cannot be read).
fn thread_cpu() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}
