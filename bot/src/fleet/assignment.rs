//! An assignment as a worker holds it, and how the queue stands. The wire types (what travels
//! through the queue and what workers report) are `parley_shared::fleet`.

use serde::Serialize;

pub use parley_shared::fleet::{Assignment, BotInfo, Load, WorkerState};

/// An assignment a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The queue's id of the entry.
    pub entry: String,
    pub assignment: Assignment,
    /// How many workers have had it, this one included: above one, an earlier bot died.
    pub deliveries: u64,
}

/// How the queue stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Waiting for a worker.
    pub queued: u64,
    /// Held by workers.
    pub active: u64,
    /// When the oldest waiting assignment was queued (wall-clock ms).
    pub oldest_queued_ms: Option<u64>,
}
