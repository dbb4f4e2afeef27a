//! Webhooks: what happens to a meeting, posted to its owner's endpoints. Events are queued where
//! they are stored (the ingest, the summary job, the fleet), as rows of the delivery queue in
//! the database, and `delivery` posts them, signed (`signing`), retried with backoff for a day.
//!
//! Body: `{"type": "transcript.final", "timestamp": "…Z", "data": {"meeting_id": …,
//! "metadata": {…}, …}}`; the meeting's metadata is in every event.

pub mod delivery;
pub mod signing;

use crate::store::{EventType, NewDelivery, Store, StoreError};
use parley_shared::{BotState, Event, EventBody, MeetingId};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An event to tell a meeting's endpoints.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub event_type: EventType,
    /// Names the event within its meeting: the same event applied again has the same key.
    pub key: String,
    /// The event's own fields (the meeting's id and metadata are added to them).
    pub data: Value,
}

impl Outgoing {
    /// The webhook event of a bus event, if it makes one (partials do not).
    pub fn from_bus(event: &Event) -> Option<Self> {
        let (event_type, key, data) = match &event.body {
            EventBody::Segment(s) if s.is_final => (
                EventType::TranscriptFinal,
                format!("final:{}", s.segment_id),
                json!({ "segment": {
                    "segment_id": s.segment_id,
                    "speaker": s.speaker,
                    "start_ms": s.start_ms,
                    "end_ms": s.end_ms,
                    "text": s.text,
                }}),
            ),
            EventBody::Segment(_) => return None,
            EventBody::ParticipantJoined { speaker, at_ms } => (
                EventType::ParticipantJoined,
                format!("joined:{}:{at_ms}", speaker.key),
                json!({ "speaker": speaker, "at_ms": at_ms }),
            ),
            EventBody::ParticipantLeft { speaker, at_ms } => (
                EventType::ParticipantLeft,
                format!("left:{}:{at_ms}", speaker.key),
                json!({ "speaker": speaker, "at_ms": at_ms }),
            ),
            EventBody::BotStatus {
                state,
                reason,
                at_ms,
            } => return Some(Self::status(*state, reason.as_deref(), &at_ms.to_string())),
            EventBody::MeetingEnded { at_ms } => return Some(Self::ended(Some(*at_ms))),
        };
        Some(Self {
            event_type,
            key,
            data,
        })
    }

    /// `bot.status`; `when` tells this change apart from the bot's others (its meeting clock,
    /// or the server's step that set it).
    pub fn status(state: BotState, reason: Option<&str>, when: &str) -> Self {
        let mut data = json!({ "state": state });
        if let Some(reason) = reason {
            data["reason"] = json!(reason);
        }
        let state = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            event_type: EventType::BotStatus,
            key: format!("status:{state}:{when}"),
            data,
        }
    }

    /// `meeting.ended`: once per meeting, whether the bot or its owner ended it.
    pub fn ended(at_ms: Option<u64>) -> Self {
        Self {
            event_type: EventType::MeetingEnded,
            key: "meeting.ended".to_owned(),
            data: json!({ "at_ms": at_ms }),
        }
    }

    /// A once-per-meeting event (`summary.ready`, `recording.ready`).
    pub fn once(event_type: EventType, data: Value) -> Self {
        Self {
            event_type,
            key: event_type.as_str().to_owned(),
            data,
        }
    }
}

fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Queues a meeting's events for every endpoint of its owner that wants them and whose metadata
/// filter the meeting matches. Applying the same events again queues nothing more.
pub async fn emit(
    store: &Store,
    meeting: MeetingId,
    events: &[Outgoing],
    now_ms: u64,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let Some((metadata, targets)) = store.webhook_targets(meeting).await? else {
        return Ok(());
    };
    let mut deliveries = Vec::new();
    for target in targets.iter().filter(|t| metadata.contains(&t.filter)) {
        for event in events
            .iter()
            .filter(|e| target.events.contains(&e.event_type))
        {
            let mut data = json!({ "meeting_id": meeting, "metadata": metadata });
            if let (Some(all), Some(own)) = (data.as_object_mut(), event.data.as_object()) {
                all.extend(own.clone());
            }
            let body = json!({
                "type": event.event_type.as_str(),
                "timestamp": rfc3339(now_ms),
                "data": data,
            });
            deliveries.push(NewDelivery {
                webhook_id: target.webhook_id,
                meeting_id: meeting,
                event_key: event.key.clone(),
                event_type: event.event_type,
                payload: body.to_string(),
            });
        }
    }
    store.queue_deliveries(&deliveries, now_ms).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_shared::{Segment, SegmentId, Speaker, SpeakerKey};

    fn bus(body: EventBody) -> Event {
        Event::new(MeetingId::from_uuid(uuid::Uuid::nil()), 1, body)
    }

    #[test]
    fn finals_statuses_and_participants_make_events_with_stable_keys_and_partials_none() {
        let m = MeetingId::from_uuid(uuid::Uuid::nil());
        let key = SpeakerKey::parse("ana").expect("key");
        let speaker = Speaker {
            key: key.clone(),
            name: "Ana".to_owned(),
        };
        let segment = |is_final| {
            bus(EventBody::Segment(Segment {
                segment_id: SegmentId::derive(m, &key, 400),
                speaker: speaker.clone(),
                start_ms: 400,
                end_ms: 900,
                text: "hello".to_owned(),
                is_final,
            }))
        };
        assert!(Outgoing::from_bus(&segment(false)).is_none());
        let final_ = Outgoing::from_bus(&segment(true)).expect("final");
        assert_eq!(final_.event_type, EventType::TranscriptFinal);
        assert_eq!(final_.data["segment"]["text"], "hello");
        assert_eq!(final_.data["segment"]["speaker"]["name"], "Ana");
        let status = Outgoing::from_bus(&bus(EventBody::BotStatus {
            state: BotState::Failed,
            reason: Some("no room".to_owned()),
            at_ms: 7,
        }))
        .expect("status");
        assert_eq!(status.key, "status:failed:7");
        assert_eq!(status.data, json!({"state": "failed", "reason": "no room"}));
        let joined = Outgoing::from_bus(&bus(EventBody::ParticipantJoined { speaker, at_ms: 3 }))
            .expect("joined");
        assert_eq!(joined.key, "joined:ana:3");
        assert_eq!(
            Outgoing::from_bus(&bus(EventBody::MeetingEnded { at_ms: 9 }))
                .expect("ended")
                .key,
            Outgoing::ended(None).key
        );
    }
}
