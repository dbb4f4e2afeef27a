//! Events to the Redis stream every orchestrator replica consumes (`parley:events`).
//!
//! A publish returns once Redis has the entry. While Redis is unreachable it retries with
//! backoff, holding the event, so nothing is dropped; the pipeline's own queues absorb the wait.
//! Only a worker shutting down ends the wait ([`RedisSink::give_up_on`]): its meetings are then
//! handed over (or their leases expire) instead of the pod being killed mid-wait.

use super::{EventSink, SinkError};
use parley_shared::Event;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamMaxlen;
use std::time::Duration;
use tokio::sync::watch;

/// The stream's field holding the event JSON.
pub const EVENT_FIELD: &str = "event";
pub use parley_shared::fleet::DEFAULT_EVENTS_STREAM as DEFAULT_STREAM;
/// Approximate cap on stream length. Entries are acknowledged within seconds in normal operation;
/// a million leaves hours of headroom for an ingest outage at hundreds of events per second.
pub const DEFAULT_MAXLEN: usize = 1_000_000;

#[derive(Clone)]
pub struct RedisSink {
    conn: ConnectionManager,
    stream: String,
    maxlen: usize,
    /// Set when the process is stopping: a publish that cannot reach Redis gives up.
    shutdown: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// Connects (retrying in the background if Redis is down later on).
    pub async fn connect(url: &str, stream: &str) -> Result<Self, SinkError> {
        let client = redis::Client::open(url).map_err(|e| SinkError::Redis(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| SinkError::Redis(e.to_string()))?;
        Ok(Self {
            conn,
            stream: stream.to_owned(),
            maxlen: DEFAULT_MAXLEN,
            shutdown: None,
        })
    }

    /// Makes a publish that is waiting for Redis give up (`SinkError::ShuttingDown`) once
    /// `shutdown` is true; while Redis answers, events are still published to the end.
    pub fn give_up_on(&mut self, shutdown: watch::Receiver<bool>) {
        self.shutdown = Some(shutdown);
    }

    /// Appends one serialised event; no retry.
    pub async fn try_publish_json(&mut self, json: &str) -> redis::RedisResult<String> {
        let id: Option<String> = self
            .conn
            .xadd_maxlen(
                &self.stream,
                StreamMaxlen::Approx(self.maxlen),
                "*",
                &[(EVENT_FIELD, json)],
            )
            .await?;
        Ok(id.unwrap_or_default())
    }
}

impl EventSink for RedisSink {
    async fn publish(&mut self, event: Event) -> Result<(), SinkError> {
        let json = serde_json::to_string(&event).map_err(std::io::Error::other)?;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.try_publish_json(&json).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot publish event to redis");
                    let stopping = async {
                        match self.shutdown.as_mut() {
                            Some(rx) => {
                                let _ = rx.wait_for(|s| *s).await;
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stopping => return Err(SinkError::ShuttingDown),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
