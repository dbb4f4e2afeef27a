//! Deleting meetings, whether their owner (or an admin) asks, their retention ran out, or their
//! owner's account is deleted. The database forgets a meeting in one transaction (leaving a
//! tombstone); then what lives elsewhere is purged: its recordings in the object store, its
//! live log, and its entries in the Redis event stream and dead letters. A purge that fails, and
//! the late leftovers of a bot that was still leaving (its last recording upload), are caught by
//! the sweep, which purges each deleted meeting again until a grace period after its deletion.

use crate::clock::now_ms;
use crate::ingest::redis_source::erase_meeting;
use crate::live::LiveLog;
use crate::store::{Store, StoreError};
use parley_bot::connector::recorder::RecordingStore;
use parley_shared::MeetingId;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// How long after a deletion its purge is repeated: longer than a leaving bot takes to upload
/// its last recording.
const GRACE: Duration = Duration::from_secs(120);
/// Meetings handled per sweep step, so one sweep never holds the loop long.
const PER_SWEEP: u32 = 100;

/// The event bus's stream, where bots' events (with their text) stay until trimmed.
#[derive(Clone)]
pub struct EventStream {
    pub conn: ConnectionManager,
    pub stream: String,
}

pub struct Deleter {
    pub store: Store,
    pub live: LiveLog,
    pub recordings: Option<RecordingStore>,
    pub events: Option<EventStream>,
    /// Days after they are over that meetings without their own retention are deleted.
    pub retention_days: Option<u32>,
}

impl std::fmt::Debug for Deleter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deleter")
            .field("recordings", &self.recordings)
            .field("redis", &self.events.is_some())
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

impl Deleter {
    /// Deletes a meeting and everything derived from it; false if there was no such meeting.
    /// A bot in it is the caller's to stop first.
    pub async fn delete(&self, id: MeetingId) -> Result<bool, StoreError> {
        if !self.store.delete_meeting(id, now_ms()).await? {
            return Ok(false);
        }
        tracing::info!(meeting_id = %id, "meeting deleted");
        if let Err(e) = self.purge(id).await {
            tracing::warn!(meeting_id = %id, error = format!("{e:#}"), "a deleted meeting's data outside the database is not purged yet; the sweep retries");
        }
        Ok(true)
    }

    /// Removes what a deleted meeting left outside the database.
    async fn purge(&self, id: MeetingId) -> anyhow::Result<()> {
        if let Some(recordings) = &self.recordings {
            recordings
                .delete_meeting(id)
                .await
                .map_err(|e| anyhow::anyhow!("cannot delete recordings: {e}"))?;
        }
        self.live.forget(id).await?;
        if let Some(events) = &self.events {
            erase_meeting(&mut events.conn.clone(), &events.stream, id).await?;
        }
        Ok(())
    }

    /// Deletes the meetings whose retention ran out by `now_ms`, and purges deleted meetings
    /// again until their grace period is over. The meetings deleted.
    pub async fn sweep(&self, now_ms: u64) -> Result<usize, StoreError> {
        let expired = self
            .store
            .expired_meetings(self.retention_days, now_ms, PER_SWEEP)
            .await?;
        for &id in &expired {
            self.delete(id).await?;
        }
        if !expired.is_empty() {
            tracing::info!(
                meetings = expired.len(),
                "meetings past their retention deleted"
            );
        }
        let grace_ms = GRACE.as_millis() as u64;
        for (id, deleted_at) in self.store.unpurged_meetings(PER_SWEEP).await? {
            match self.purge(id).await {
                Ok(()) if deleted_at + grace_ms <= now_ms => {
                    self.store.mark_purged(id, now_ms).await?;
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(meeting_id = %id, error = format!("{e:#}"), "cannot purge a deleted meeting's data; retrying")
                }
            }
        }
        Ok(expired.len())
    }

    /// Sweeps every `every` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if let Err(e) = self.sweep(now_ms()).await {
                tracing::warn!(error = %e, "cannot sweep deleted and expired meetings");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
