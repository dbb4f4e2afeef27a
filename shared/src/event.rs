//! The versioned event schema bots publish and the orchestrator ingests (`parley:events`).
//!
//! Wire form (v1): `{"v":1,"type":"segment","meeting_id":…,"seq":…,"segment_id":…,
//! "speaker":{"key":…,"name":…},"start_ms":…,"end_ms":…,"text":…,"final":true}`. Golden files in
//! `tests/golden/v1/` pin it; a change that breaks them needs a new version.

use crate::ids::{MeetingId, SegmentId, SpeakerKey};
use serde::{Deserialize, Serialize};

/// The schema version this build writes.
pub const EVENT_VERSION: u32 = 1;

/// One event on the bus. `seq` increases by one per event a bot emits for a meeting, so a viewer can
/// resume after a gap and the ingest can tell re-sent events apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub v: u32,
    pub meeting_id: MeetingId,
    pub seq: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn new(meeting_id: MeetingId, seq: u64, body: EventBody) -> Self {
        Self {
            v: EVENT_VERSION,
            meeting_id,
            seq,
            body,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    Segment(Segment),
    ParticipantJoined {
        speaker: Speaker,
        at_ms: u64,
    },
    ParticipantLeft {
        speaker: Speaker,
        at_ms: u64,
    },
    BotStatus {
        state: BotState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        at_ms: u64,
    },
    MeetingEnded {
        at_ms: u64,
    },
}

/// Who spoke: the platform's stable key and the display name shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Speaker {
    pub key: SpeakerKey,
    pub name: String,
}

/// A piece of transcript. Partials (`final: false`) for the same `segment_id` are replaced by later
/// partials and finally by the final. Times are milliseconds since the bot's meeting clock started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub segment_id: SegmentId,
    pub speaker: Speaker,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    #[serde(rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotState {
    Joining,
    InMeeting,
    CaptureStalled,
    Left,
    Failed,
}
