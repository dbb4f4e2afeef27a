//! The bot fleet's shared parts: assignments (which meeting a bot should join), the queue they
//! travel through, and the worker that claims one, heartbeats while it is in the meeting, and
//! leaves it to another worker when it stops heart-beating.
//!
//! **Architecture Invariant:** every way of running bots (tasks in the orchestrator, `parley-bot
//! worker` processes, Kubernetes pods) runs [`worker::Worker`] against an [`AnyQueue`]; the
//! launchers only decide how many workers exist.

pub mod assignment;
pub mod memory_queue;
pub mod redis_queue;
pub mod worker;

pub use assignment::{Assignment, BotInfo, Claimed, Load, QueueDepth, WorkerState};
use memory_queue::MemoryQueue;
use parley_shared::MeetingId;
use redis_queue::RedisQueue;
use std::sync::Arc;
use std::time::Duration;

pub use parley_shared::fleet::DEFAULT_ASSIGNMENTS_STREAM;

/// How often a worker renews its claim and reports itself.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A claim not renewed for this long is taken over by another worker: three missed heartbeats,
/// so a busy moment does not trigger it, while a dead bot's meeting gets a new bot within
/// seconds.
pub const LEASE: Duration = Duration::from_secs(6);
/// A worker's report older than this means the worker is gone.
pub const REPORT_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("malformed assignment {entry}: {reason}")]
    Malformed { entry: String, reason: String },
}

/// The assignment queue: in memory (embedded mode, workers in the same process) or the Redis
/// stream `parley:assignments` with a consumer group (any number of processes).
#[derive(Debug, Clone)]
pub enum AnyQueue {
    Memory(Arc<MemoryQueue>),
    Redis(RedisQueue),
}

impl AnyQueue {
    pub fn memory() -> Self {
        Self::Memory(Arc::new(MemoryQueue::default()))
    }

    /// Queues a bot for a meeting.
    pub async fn publish(&self, a: &Assignment) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.publish(a);
                Ok(())
            }
            Self::Redis(q) => q.publish(a).await,
        }
    }

    /// The next assignment for `worker`: one whose bot stopped heart-beating first, else a new
    /// one, waiting up to `wait` for it.
    pub async fn claim(&self, worker: &str, wait: Duration) -> Result<Option<Claimed>, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.claim(worker, wait).await),
            Self::Redis(q) => q.claim(worker, wait).await,
        }
    }

    /// Renews `worker`'s claim; `false` when another worker has taken it over.
    pub async fn renew(&self, worker: &str, c: &Claimed) -> Result<bool, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.renew(worker, c)),
            Self::Redis(q) => q.renew(worker, c).await,
        }
    }

    /// Removes a finished assignment: its meeting needs no further bot.
    pub async fn complete(&self, c: &Claimed) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.complete(c);
                Ok(())
            }
            Self::Redis(q) => q.complete(c).await,
        }
    }

    /// Hands a claim back for another worker to take at once (this worker is leaving while the
    /// meeting goes on).
    pub async fn release(&self, c: &Claimed) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.release(c);
                Ok(())
            }
            Self::Redis(q) => q.release(c).await,
        }
    }

    /// Asks the meeting's bot (now or any later one) to leave.
    pub async fn request_stop(&self, meeting: MeetingId) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.request_stop(meeting);
                Ok(())
            }
            Self::Redis(q) => q.request_stop(meeting).await,
        }
    }

    pub async fn stop_requested(&self, meeting: MeetingId) -> Result<bool, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.stop_requested(meeting)),
            Self::Redis(q) => q.stop_requested(meeting).await,
        }
    }

    /// When the meeting's first bot joined (wall-clock ms): `now_ms` if this is the first.
    pub async fn clock_origin(&self, meeting: MeetingId, now_ms: u64) -> Result<u64, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.clock_origin(meeting, now_ms)),
            Self::Redis(q) => q.clock_origin(meeting, now_ms).await,
        }
    }

    /// Publishes a worker's state (its heartbeat as the operator sees it).
    pub async fn report(&self, info: &BotInfo) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.report(info);
                Ok(())
            }
            Self::Redis(q) => q.report(info).await,
        }
    }

    /// Removes a worker's report (it exited).
    pub async fn forget(&self, worker: &str) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.forget(worker);
                Ok(())
            }
            Self::Redis(q) => q.forget(worker).await,
        }
    }

    /// Every worker that reported within [`REPORT_TTL`] of `now_ms`; older reports are removed.
    pub async fn bots(&self, now_ms: u64) -> Result<Vec<BotInfo>, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.bots(now_ms)),
            Self::Redis(q) => q.bots(now_ms).await,
        }
    }

    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.depth()),
            Self::Redis(q) => q.depth().await,
        }
    }
}
