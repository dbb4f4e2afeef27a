//! The live log a meeting's segments are appended to after they are stored.

use super::cursor::Cursor;
use super::memory_log::MemoryLog;
use super::redis_log::RedisLog;
use crate::store::StoredSegment;
use parley_shared::{Event, EventBody, MeetingId};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Entries kept per meeting: enough for a reconnect after a minute or two of a busy meeting;
/// a viewer further behind gets a snapshot instead.
pub const RETAINED: usize = 4096;

/// A segment as viewers receive it. `version` orders versions of one segment: the page keeps
/// the one with the greatest `(final, version)`.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSegment {
    pub segment_id: Uuid,
    pub speaker: String,
    pub speaker_name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub version: u64,
}

impl LiveSegment {
    pub fn from_event(event: &Event) -> Option<Self> {
        let EventBody::Segment(s) = &event.body else {
            return None;
        };
        Some(Self {
            segment_id: s.segment_id.as_uuid(),
            speaker: s.speaker.key.to_string(),
            speaker_name: s.speaker.name.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text.clone(),
            is_final: s.is_final,
            version: event.seq,
        })
    }

    pub fn from_stored(s: StoredSegment) -> Self {
        Self {
            segment_id: s.segment_id,
            speaker: s.speaker,
            speaker_name: s.speaker_name,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text,
            is_final: s.is_final,
            version: s.seq,
        }
    }
}

/// One log entry: a serialized [`LiveSegment`].
pub type Entry = (Cursor, Arc<str>);

#[derive(Clone)]
pub enum LiveLog {
    Memory(Arc<MemoryLog>),
    Redis(RedisLog),
}

impl std::fmt::Debug for LiveLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Memory(_) => "LiveLog::Memory",
            Self::Redis(_) => "LiveLog::Redis",
        })
    }
}

/// A connection that may block on the log (Redis needs one of its own per blocking reader).
pub enum Tail {
    Memory(Arc<MemoryLog>),
    Redis(redis::aio::ConnectionManager),
}

impl LiveLog {
    pub fn memory() -> Self {
        Self::Memory(Arc::new(MemoryLog::default()))
    }

    pub async fn redis(url: &str) -> anyhow::Result<Self> {
        Ok(Self::Redis(RedisLog::connect(url).await?))
    }

    /// Appends segments, in order, to their meetings' logs.
    pub async fn append(&self, segments: &[(MeetingId, LiveSegment)]) -> anyhow::Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        let encoded: Vec<(MeetingId, String)> = segments
            .iter()
            .map(|(m, s)| Ok((*m, serde_json::to_string(s)?)))
            .collect::<serde_json::Result<_>>()?;
        match self {
            Self::Memory(log) => {
                log.append(&encoded);
                Ok(())
            }
            Self::Redis(log) => log.append(&encoded).await,
        }
    }

    /// Drops a meeting's log (its meeting was deleted).
    pub async fn forget(&self, meeting: MeetingId) -> anyhow::Result<()> {
        match self {
            Self::Memory(log) => {
                log.forget(meeting);
                Ok(())
            }
            Self::Redis(log) => log.forget(meeting).await,
        }
    }

    /// The newest entry's cursor ([`Cursor::ZERO`] for an empty log).
    pub async fn head(&self, meeting: MeetingId) -> anyhow::Result<Cursor> {
        match self {
            Self::Memory(log) => Ok(log.head(meeting)),
            Self::Redis(log) => log.head(meeting).await,
        }
    }

    /// Every entry after `after`, or `None` when some of them were already trimmed.
    pub async fn since(
        &self,
        meeting: MeetingId,
        after: Cursor,
    ) -> anyhow::Result<Option<Vec<Entry>>> {
        match self {
            Self::Memory(log) => Ok(log.since(meeting, after)),
            Self::Redis(log) => log.since(meeting, after).await,
        }
    }

    pub async fn tail(&self) -> anyhow::Result<Tail> {
        match self {
            Self::Memory(log) => Ok(Tail::Memory(Arc::clone(log))),
            Self::Redis(log) => Ok(Tail::Redis(log.tail_connection().await?)),
        }
    }
}

impl Tail {
    /// Entries after `after`, waiting up to `wait` for the first one.
    pub async fn next(
        &mut self,
        meeting: MeetingId,
        after: Cursor,
        wait: Duration,
    ) -> anyhow::Result<Vec<Entry>> {
        match self {
            Self::Memory(log) => Ok(log.wait_after(meeting, after, wait).await),
            Self::Redis(conn) => RedisLog::read_after(conn, meeting, after, wait).await,
        }
    }
}
