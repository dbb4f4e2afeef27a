//! Event ingest: bus entries → batched idempotent upserts → acknowledgement after commit.
//!
//! The loop is the same for both buses; a [`Source`] hides whether entries come from the Redis
//! consumer group (`parley:events`, group `ingest`) or the in-process channel of embedded mode.

mod apply;
pub mod channel;
pub mod redis_source;

pub use apply::{Applied, KnownMeetings, apply};

use crate::clock::now_ms;
use crate::live::{LiveLog, LiveSegment};
use crate::metrics::Metrics;
use crate::store::Store;
use parley_shared::{Event, EventBody};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// One bus entry: a valid event, or the reason it is not one.
#[derive(Debug)]
pub struct Entry {
    pub event: Result<Event, String>,
    /// When the bus accepted it (ms since the epoch), for the lag metric.
    pub published_ms: Option<u64>,
}

pub trait Source: Send {
    /// The next batch, waiting for entries if there are none; `Ok(None)` when the bus closed.
    fn next_batch(&mut self) -> impl Future<Output = anyhow::Result<Option<Vec<Entry>>>> + Send;
    /// Acknowledges the last batch now that it is committed. `dead` lists entries that will never
    /// apply (malformed, unknown meeting): the source keeps them aside rather than dropping them.
    /// `erase` lists entries of deleted meetings: the source keeps nothing of them.
    fn settle(
        &mut self,
        dead: &[(usize, String)],
        erase: &[usize],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Consumes `source` until it closes or `shutdown` resolves. Store and bus failures are retried
/// with backoff; a batch is acknowledged only after its transaction committed and its segments
/// reached the live log (so captions viewers, who read the log, see only stored segments).
pub async fn run<S: Source>(
    mut source: S,
    store: Store,
    live: LiveLog,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut known = KnownMeetings::default();
    let mut backoff = Backoff::default();
    loop {
        let batch = tokio::select! {
            () = &mut shutdown => return,
            batch = source.next_batch() => batch,
        };
        let entries = match batch {
            Ok(Some(entries)) => entries,
            Ok(None) => return,
            Err(e) => {
                metrics.ingest_errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot read the event bus; retrying"
                );
                if backoff.wait(&mut shutdown).await.is_err() {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        if entries.is_empty() {
            continue;
        }
        let mut dead: Vec<(usize, String)> = Vec::new();
        let mut valid = Vec::with_capacity(entries.len());
        let mut valid_index = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            match &entry.event {
                Ok(event) => {
                    valid.push(event);
                    valid_index.push(i);
                }
                Err(reason) => {
                    metrics.ingest_malformed.fetch_add(1, Relaxed);
                    dead.push((i, reason.clone()));
                }
            }
        }
        let applied = loop {
            let attempt = tokio::select! {
                () = &mut shutdown => return,
                r = apply_and_publish(&store, &live, &valid, &mut known) => r,
            };
            match attempt {
                Ok(applied) => break applied,
                Err(e) => {
                    metrics.ingest_errors.fetch_add(1, Relaxed);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        events = valid.len(),
                        "cannot store or publish events; retrying"
                    );
                    if backoff.wait(&mut shutdown).await.is_err() {
                        return;
                    }
                }
            }
        };
        backoff.reset();
        let appended = now_ms();
        for entry in &entries {
            if let (
                Some(at),
                Ok(Event {
                    body: EventBody::Segment(_),
                    ..
                }),
            ) = (entry.published_ms, &entry.event)
            {
                metrics.observe_caption_ms(appended.saturating_sub(at));
            }
        }
        metrics
            .bot_rejoins
            .fetch_add(applied.rejoins as u64, Relaxed);
        metrics
            .capture_stalled
            .fetch_add(applied.stalls as u64, Relaxed);
        for &ms in &applied.joins_ms {
            metrics.observe_join_ms(ms);
        }
        for &i in &applied.unknown {
            metrics.ingest_unknown_meeting.fetch_add(1, Relaxed);
            dead.push((valid_index[i], "unknown meeting".to_owned()));
        }
        let erase: Vec<usize> = applied.deleted.iter().map(|&i| valid_index[i]).collect();
        if !dead.is_empty() {
            tracing::warn!(
                entries = dead.len(),
                "bus entries that cannot be stored were set aside"
            );
        }
        loop {
            let settled = tokio::select! {
                () = &mut shutdown => return,
                r = source.settle(&dead, &erase) => r,
            };
            match settled {
                Ok(()) => break,
                Err(e) => {
                    metrics.ingest_errors.fetch_add(1, Relaxed);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot acknowledge events; retrying"
                    );
                    if backoff.wait(&mut shutdown).await.is_err() {
                        return;
                    }
                }
            }
        }
        backoff.reset();
        let now = now_ms();
        for entry in &entries {
            if let Some(at) = entry.published_ms {
                metrics.observe_lag_ms(now.saturating_sub(at));
            }
        }
        metrics
            .ingest_events
            .fetch_add((entries.len() - dead.len()) as u64, Relaxed);
        metrics
            .ingest_segments
            .fetch_add(applied.segments as u64, Relaxed);
        metrics
            .ingest_finals
            .fetch_add(applied.finals as u64, Relaxed);
        metrics.ingest_batches.fetch_add(1, Relaxed);
    }
}

/// Stores a batch, then appends its segments to the live log. Both steps are idempotent for
/// their readers, so a failed publish retries the whole batch.
async fn apply_and_publish(
    store: &Store,
    live: &LiveLog,
    events: &[&Event],
    known: &mut KnownMeetings,
) -> anyhow::Result<Applied> {
    let applied = apply(store, events, known, now_ms()).await?;
    let segments: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(i, _)| !applied.unknown.contains(i) && !applied.deleted.contains(i))
        .filter_map(|(_, e)| Some((e.meeting_id, LiveSegment::from_event(e)?)))
        .collect();
    live.append(&segments).await?;
    Ok(applied)
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(100))
    }
}

impl Backoff {
    fn reset(&mut self) {
        *self = Self::default();
    }

    /// Sleeps; `Err` when shutdown came first.
    async fn wait(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), ()> {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = shutdown.as_mut() => Err(()),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }
}
