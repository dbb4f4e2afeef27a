//! Writing a batch of bus events into the store.

use crate::store::{JobKind, MeetingStatus, SegmentRow, Store, StoreError};
use crate::webhooks::{self, Outgoing};
use parley_shared::{BotState, Event, EventBody, MeetingId};
use std::collections::HashSet;

/// Meetings known to exist, so a steady stream of segments costs no existence queries.
#[derive(Debug, Default)]
pub struct KnownMeetings(HashSet<MeetingId>);

impl KnownMeetings {
    const MAX: usize = 100_000;

    /// Learns which of the batch's meetings exist, and forgets those deleted since (returned):
    /// a deletion on any replica shows here by its tombstone.
    async fn refresh(
        &mut self,
        store: &Store,
        events: &[&Event],
    ) -> Result<HashSet<MeetingId>, StoreError> {
        let mut ids: Vec<MeetingId> = events.iter().map(|e| e.meeting_id).collect();
        ids.sort();
        ids.dedup();
        let deleted = store.deleted_among(&ids).await?;
        self.0.retain(|id| !deleted.contains(id));
        let unknown: Vec<MeetingId> = ids
            .into_iter()
            .filter(|id| !self.0.contains(id) && !deleted.contains(id))
            .collect();
        if unknown.is_empty() {
            return Ok(deleted);
        }
        if self.0.len() + unknown.len() > Self::MAX {
            self.0.clear();
        }
        self.0.extend(store.existing_meetings(&unknown).await?);
        Ok(deleted)
    }
}

/// What a batch did; `unknown` holds the indexes of events whose meeting does not exist.
#[derive(Debug, Default)]
pub struct Applied {
    pub segments: usize,
    pub finals: usize,
    pub unknown: Vec<usize>,
    /// The indexes of events whose meeting was deleted: dropped, and erased from the bus.
    pub deleted: Vec<usize>,
    /// Bots that replaced one that stopped mid-meeting.
    pub rejoins: usize,
    /// Bots that reported no audio arriving.
    pub stalls: usize,
    /// Dispatch-to-in-meeting times (ms) of bots that got into their meetings.
    pub joins_ms: Vec<u64>,
}

/// Queues the webhook events of a batch, a meeting at a time, before its status changes are
/// applied: a batch applied again after a crash queues nothing twice, and `meeting.ended` is
/// queued after the finals before it.
async fn queue_webhooks(
    store: &Store,
    events: &[&Event],
    known: &KnownMeetings,
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut by_meeting: Vec<(MeetingId, Vec<Outgoing>)> = Vec::new();
    for event in events.iter().filter(|e| known.0.contains(&e.meeting_id)) {
        let Some(outgoing) = Outgoing::from_bus(event) else {
            continue;
        };
        match by_meeting.iter_mut().find(|(m, _)| *m == event.meeting_id) {
            Some((_, list)) => list.push(outgoing),
            None => by_meeting.push((event.meeting_id, vec![outgoing])),
        }
    }
    for (meeting, outgoing) in &by_meeting {
        webhooks::emit(store, *meeting, outgoing, now_ms).await?;
    }
    Ok(())
}

/// Stores segments first, in one transaction, then applies meeting and participant changes in
/// order, so a `meeting_ended` never lands before the finals that preceded it. Every step is
/// idempotent: a batch may be applied again after a crash before its acknowledgement.
pub async fn apply(
    store: &Store,
    events: &[&Event],
    known: &mut KnownMeetings,
    now_ms: u64,
) -> Result<Applied, StoreError> {
    let deleted = known.refresh(store, events).await?;
    let mut applied = Applied::default();
    let mut rows = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if deleted.contains(&event.meeting_id) {
            applied.deleted.push(i);
            continue;
        }
        if !known.0.contains(&event.meeting_id) {
            applied.unknown.push(i);
            continue;
        }
        if let EventBody::Segment(s) = &event.body {
            applied.finals += usize::from(s.is_final);
            rows.push(SegmentRow {
                meeting_id: event.meeting_id,
                segment_id: s.segment_id.as_uuid(),
                speaker_key: s.speaker.key.to_string(),
                speaker_name: s.speaker.name.clone(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text.clone(),
                is_final: s.is_final,
                seq: event.seq,
                received_ms: now_ms,
            });
        }
    }
    applied.segments = rows.len();
    store.upsert_segments(&rows).await?;
    queue_webhooks(store, events, known, now_ms).await?;
    for event in events.iter().filter(|e| known.0.contains(&e.meeting_id)) {
        let id = event.meeting_id;
        match &event.body {
            EventBody::Segment(_) => {}
            EventBody::ParticipantJoined { speaker, at_ms } => {
                store
                    .participant_joined(id, speaker.key.as_str(), &speaker.name, *at_ms)
                    .await?;
            }
            EventBody::ParticipantLeft { speaker, at_ms } => {
                store
                    .participant_left(id, speaker.key.as_str(), *at_ms)
                    .await?;
            }
            EventBody::BotStatus {
                state,
                reason,
                at_ms,
            } => {
                match state {
                    // A bot's clock starts at its meeting's: only a replacement joins later.
                    BotState::Joining if *at_ms > 0 => applied.rejoins += 1,
                    BotState::CaptureStalled => {
                        applied.stalls += 1;
                        store.set_capture_stalled(id, Some(now_ms)).await?;
                    }
                    BotState::InMeeting => {
                        store.set_capture_stalled(id, None).await?;
                        if let Some(at) = store.take_dispatched_at(id).await? {
                            applied.joins_ms.push(now_ms.saturating_sub(at));
                        }
                    }
                    _ => {}
                }
                let status = match state {
                    BotState::Joining => Some(MeetingStatus::Joining),
                    BotState::InMeeting => Some(MeetingStatus::InProgress),
                    BotState::Failed => Some(MeetingStatus::Failed),
                    BotState::CaptureStalled | BotState::Left => None,
                };
                if let Some(status) = status {
                    store
                        .set_meeting_status(id, status, reason.as_deref(), now_ms)
                        .await?;
                }
            }
            EventBody::MeetingEnded { .. } => {
                store
                    .set_meeting_status(id, MeetingStatus::Ended, None, now_ms)
                    .await?;
                // The bot publishes this after its last final: the transcript is complete.
                store
                    .enqueue_job(JobKind::Summary, id, "", now_ms, now_ms)
                    .await?;
            }
        }
    }
    Ok(applied)
}
