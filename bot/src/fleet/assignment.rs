//! What travels through the assignment queue, and what workers report about themselves.

use crate::asr::schedule::Degradations;
use parley_shared::MeetingId;
use serde::{Deserialize, Serialize};

/// One meeting that needs a bot. The URL may carry a passcode: it is never logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub meeting_id: MeetingId,
    pub url: String,
    /// Whether the bot records each speaker's audio.
    pub record: bool,
    /// Posted to the meeting chat when the first bot joins (holds the captions link: a
    /// capability, never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement: Option<String>,
    /// When the scheduler queued it (wall-clock ms), for join latency.
    pub dispatched_ms: u64,
}

/// An assignment a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The queue's id of the entry.
    pub entry: String,
    pub assignment: Assignment,
    /// How many workers have had it, this one included: above one, an earlier bot died.
    pub deliveries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Model loaded, waiting for an assignment.
    Idle,
    Joining,
    InMeeting,
    /// Finishing the utterances in progress and flushing after leaving.
    Leaving,
}

impl WorkerState {
    pub const ALL: [Self; 4] = [Self::Idle, Self::Joining, Self::InMeeting, Self::Leaving];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Joining => "joining",
            Self::InMeeting => "in_meeting",
            Self::Leaving => "leaving",
        }
    }
}

/// A worker as it last reported itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotInfo {
    pub worker_id: String,
    /// `idle` without meetings; otherwise how its meetings stand.
    pub state: WorkerState,
    /// Its first meeting (older readers know only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<MeetingId>,
    /// Every meeting it is in or joining.
    #[serde(default)]
    pub meetings: Vec<MeetingId>,
    /// Meetings it serves at once at most.
    #[serde(default = "one")]
    pub max_meetings: u32,
    /// How its decoding keeps up.
    #[serde(default)]
    pub load: Load,
    pub host: String,
    pub pid: u32,
    /// When the worker started (wall-clock ms).
    pub started_ms: u64,
    /// When it entered its current state.
    pub state_since_ms: u64,
    pub heartbeat_ms: u64,
}

fn one() -> u32 {
    1
}

/// How a worker's decoding keeps up with its meetings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Decoding its queue needs this long (estimated): above a second or two its captions lag.
    pub backlog_ms: u64,
    /// Degradations since it started, by step (counters).
    pub degraded: Degradations,
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
