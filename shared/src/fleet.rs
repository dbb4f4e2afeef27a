//! The bot fleet's wire format: the assignments that travel through the queue (the Redis stream
//! `parley:assignments`) and the reports workers make of themselves. Versioned like `Event` and
//! pinned by golden files (`shared/tests/golden/fleet/v1/`), so an orchestrator and workers of
//! different releases read each other during a rolling upgrade.

use crate::{MeetingId, MeetingLink};
use serde::{Deserialize, Serialize};

/// The version of the fleet's wire types this build writes.
pub const FLEET_VERSION: u32 = 1;
/// The Redis stream of assignments, unless configured otherwise.
pub const DEFAULT_ASSIGNMENTS_STREAM: &str = "parley:assignments";
/// The Redis stream bots publish transcript events to, unless configured otherwise.
pub const DEFAULT_EVENTS_STREAM: &str = "parley:events";

fn first_version() -> u32 {
    1
}

/// One meeting that needs a bot. The link may carry a passcode: it is never logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The wire version: [`FLEET_VERSION`] (absent in what workers before it wrote).
    #[serde(default = "first_version")]
    pub v: u32,
    pub meeting_id: MeetingId,
    /// Parsed by the orchestrator; on the wire, its text under the name it always had.
    #[serde(rename = "url")]
    pub link: MeetingLink,
    /// Whether the bot records each speaker's audio.
    pub record: bool,
    /// Posted to the meeting chat when the first bot joins (holds the captions link: a
    /// capability, never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement: Option<String>,
    /// When the scheduler queued it (wall-clock ms), for join latency.
    pub dispatched_ms: u64,
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
    /// The wire version: [`FLEET_VERSION`] (absent in what workers before it wrote).
    #[serde(default = "first_version")]
    pub v: u32,
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

/// A degradation step, in the order they are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Partial,
    Speculation,
    Beam,
    Context,
}

impl Step {
    pub const ALL: [Step; 4] = [Self::Partial, Self::Speculation, Self::Beam, Self::Context];

    pub fn name(self) -> &'static str {
        match self {
            Self::Partial => "partial",
            Self::Speculation => "speculation",
            Self::Beam => "beam",
            Self::Context => "context",
        }
    }
}

/// Degradations so far, by step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degradations {
    pub partial: u64,
    pub speculation: u64,
    pub beam: u64,
    pub context: u64,
}

impl Degradations {
    pub fn get(&self, step: Step) -> u64 {
        match step {
            Step::Partial => self.partial,
            Step::Speculation => self.speculation,
            Step::Beam => self.beam,
            Step::Context => self.context,
        }
    }

    /// Counts one degradation at `step`.
    pub fn count(&mut self, step: Step) {
        match step {
            Step::Partial => self.partial += 1,
            Step::Speculation => self.speculation += 1,
            Step::Beam => self.beam += 1,
            Step::Context => self.context += 1,
        }
    }

    pub fn total(&self) -> u64 {
        Step::ALL.iter().map(|s| self.get(*s)).sum()
    }
}
