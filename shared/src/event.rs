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

impl EventBody {
    /// The same body on a meeting clock that started `offset_ms` earlier: what a bot that
    /// re-joins a meeting publishes, so its times (and the segment ids derived from them)
    /// continue the meeting's timeline instead of restarting at zero over the first bot's.
    pub fn shifted(self, meeting: MeetingId, offset_ms: u64) -> Self {
        if offset_ms == 0 {
            return self;
        }
        match self {
            Self::Segment(s) => Self::Segment(Segment {
                segment_id: SegmentId::derive(meeting, &s.speaker.key, s.start_ms + offset_ms),
                start_ms: s.start_ms + offset_ms,
                end_ms: s.end_ms + offset_ms,
                ..s
            }),
            Self::ParticipantJoined { speaker, at_ms } => Self::ParticipantJoined {
                speaker,
                at_ms: at_ms + offset_ms,
            },
            Self::ParticipantLeft { speaker, at_ms } => Self::ParticipantLeft {
                speaker,
                at_ms: at_ms + offset_ms,
            },
            Self::BotStatus {
                state,
                reason,
                at_ms,
            } => Self::BotStatus {
                state,
                reason,
                at_ms: at_ms + offset_ms,
            },
            Self::MeetingEnded { at_ms } => Self::MeetingEnded {
                at_ms: at_ms + offset_ms,
            },
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn segment(meeting: MeetingId, start_ms: u64) -> EventBody {
        let key = SpeakerKey::parse("alice").expect("valid key");
        EventBody::Segment(Segment {
            segment_id: SegmentId::derive(meeting, &key, start_ms),
            speaker: Speaker {
                key,
                name: "Alice".to_owned(),
            },
            start_ms,
            end_ms: start_ms + 900,
            text: "hello".to_owned(),
            is_final: true,
        })
    }

    #[test]
    fn a_shifted_segment_is_the_segment_a_bot_that_started_earlier_would_publish() {
        let m = MeetingId::from_uuid(Uuid::nil());
        assert_eq!(segment(m, 400).shifted(m, 60_000), segment(m, 60_400));
        assert_eq!(segment(m, 400).shifted(m, 0), segment(m, 400));
        let ended = EventBody::MeetingEnded { at_ms: 5 }.shifted(m, 10);
        assert_eq!(ended, EventBody::MeetingEnded { at_ms: 15 });
    }
}
