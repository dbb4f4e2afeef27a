//! The production bus: the Redis stream `parley:events`, read in the consumer group `ingest`.
//!
//! A replica first re-reads entries it was given but never acknowledged (its pending list), then
//! takes new ones; every few seconds it also takes over entries another consumer has held
//! unacknowledged for longer than `claim_idle` (a replica that died mid-batch). Unusable entries
//! are copied to `<stream>:dead` before they are acknowledged, so nothing is lost.

use super::{Entry, Source};
use anyhow::{Context, Result};
use parley_bot::sink::redis::EVENT_FIELD;
use parley_shared::{Event, MeetingId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RedisIngestConfig {
    pub url: String,
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub batch: usize,
    pub block: Duration,
    /// How long an entry may stay unacknowledged by its consumer before another takes it over.
    pub claim_idle: Duration,
    pub claim_every: Duration,
}

impl RedisIngestConfig {
    pub fn new(url: &str, consumer: &str) -> Self {
        Self {
            url: url.to_owned(),
            stream: parley_bot::sink::redis::DEFAULT_STREAM.to_owned(),
            group: "ingest".to_owned(),
            consumer: consumer.to_owned(),
            batch: 1000,
            block: Duration::from_secs(1),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(5),
        }
    }
}

pub struct RedisSource {
    config: RedisIngestConfig,
    conn: ConnectionManager,
    /// Reading our own pending list (after a restart) rather than new entries.
    own_pending: bool,
    claim_cursor: String,
    next_claim: Instant,
    /// Ids and raw payloads of the batch awaiting [`Source::settle`].
    in_flight: Vec<(String, Option<String>)>,
}

impl std::fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSource")
            .field("stream", &self.config.stream)
            .field("consumer", &self.config.consumer)
            .finish_non_exhaustive()
    }
}

impl RedisSource {
    pub async fn connect(config: RedisIngestConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str()).context("invalid REDIS_URL")?;
        // The blocking read holds the connection for up to `block`; the response timeout must
        // outlast it.
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(config.block + Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, manager)
            .await
            .context("cannot connect to redis")?;
        let mut source = Self {
            next_claim: Instant::now(),
            config,
            conn,
            own_pending: true,
            claim_cursor: "0-0".to_owned(),
            in_flight: Vec::new(),
        };
        source.ensure_group().await?;
        Ok(source)
    }

    /// Creates the group if missing, from the stream's start so events published before any
    /// orchestrator ran are not skipped.
    async fn ensure_group(&mut self) -> Result<()> {
        let created: redis::RedisResult<()> = self
            .conn
            .xgroup_create_mkstream(&self.config.stream, &self.config.group, "0")
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => {
                Err(e).context("cannot create consumer group")
            }
            _ => Ok(()),
        }
    }

    async fn read(&mut self, id: &str, block: bool) -> redis::RedisResult<Vec<StreamId>> {
        let mut options = StreamReadOptions::default()
            .group(&self.config.group, &self.config.consumer)
            .count(self.config.batch);
        if block {
            options = options.block(self.config.block.as_millis() as usize);
        }
        let reply: Option<StreamReadReply> = self
            .conn
            .xread_options(&[&self.config.stream], &[id], &options)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect())
    }

    async fn claim(&mut self) -> redis::RedisResult<Vec<StreamId>> {
        let reply: StreamAutoClaimReply = self
            .conn
            .xautoclaim_options(
                &self.config.stream,
                &self.config.group,
                &self.config.consumer,
                self.config.claim_idle.as_millis() as u64,
                &self.claim_cursor,
                StreamAutoClaimOptions::default().count(self.config.batch),
            )
            .await?;
        self.claim_cursor = reply.next_stream_id;
        if !reply.claimed.is_empty() {
            tracing::info!(
                entries = reply.claimed.len(),
                "took over events another consumer left unacknowledged"
            );
        }
        Ok(reply.claimed)
    }

    async fn fetch(&mut self) -> redis::RedisResult<Vec<StreamId>> {
        if self.own_pending {
            let ids = self.read("0", false).await?;
            if !ids.is_empty() {
                return Ok(ids);
            }
            self.own_pending = false;
        }
        if Instant::now() >= self.next_claim {
            let ids = self.claim().await?;
            if self.claim_cursor == "0-0" {
                self.next_claim = Instant::now() + self.config.claim_every;
            }
            if !ids.is_empty() {
                return Ok(ids);
            }
        }
        self.read(">", true).await
    }
}

/// The millisecond part of a stream entry id (`<ms>-<seq>`).
fn id_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn decode(entry: &StreamId) -> (Option<String>, Result<Event, String>) {
    let raw = match entry.map.get(EVENT_FIELD) {
        Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let event = match &raw {
        None => Err(format!("no {EVENT_FIELD:?} field")),
        Some(json) => {
            serde_json::from_str::<Event>(json).map_err(|e| format!("invalid event: {e}"))
        }
    };
    (raw, event)
}

impl Source for RedisSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        let ids = match self.fetch().await {
            Ok(ids) => ids,
            Err(e) if e.code() == Some("NOGROUP") => {
                // Redis lost the group (restarted without persistence): recreate and go on.
                tracing::warn!("consumer group missing; recreating it");
                self.ensure_group().await?;
                Vec::new()
            }
            Err(e) => return Err(e).context("cannot read parley events"),
        };
        self.in_flight.clear();
        let mut entries = Vec::with_capacity(ids.len());
        for entry in &ids {
            let (raw, event) = decode(entry);
            entries.push(Entry {
                event,
                published_ms: id_ms(&entry.id),
            });
            self.in_flight.push((entry.id.clone(), raw));
        }
        Ok(Some(entries))
    }

    async fn settle(&mut self, dead: &[(usize, String)], erase: &[usize]) -> Result<()> {
        if self.in_flight.is_empty() {
            return Ok(());
        }
        let dead_stream = format!("{}:dead", self.config.stream);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (i, reason) in dead {
            let (id, raw) = &self.in_flight[*i];
            pipe.xadd(
                &dead_stream,
                "*",
                &[
                    ("id", id.as_str()),
                    ("reason", reason.as_str()),
                    (EVENT_FIELD, raw.as_deref().unwrap_or("")),
                ],
            )
            .ignore();
        }
        let ids: Vec<&str> = self.in_flight.iter().map(|(id, _)| id.as_str()).collect();
        pipe.xack(&self.config.stream, &self.config.group, &ids)
            .ignore();
        let erased: Vec<&str> = erase
            .iter()
            .map(|&i| self.in_flight[i].0.as_str())
            .collect();
        if !erased.is_empty() {
            pipe.xdel(&self.config.stream, &erased).ignore();
        }
        pipe.query_async::<()>(&mut self.conn)
            .await
            .context("cannot acknowledge events")?;
        self.in_flight.clear();
        Ok(())
    }
}

/// Entries read per page when erasing.
const ERASE_PAGE: usize = 500;

/// Deletes every entry of `stream` and of its dead letters whose event names `meeting`: what a
/// deleted meeting left in Redis. Pages through the stream; the number deleted.
pub async fn erase_meeting(
    conn: &mut ConnectionManager,
    stream: &str,
    meeting: MeetingId,
) -> Result<usize> {
    let needle = meeting.to_string();
    let mut erased = 0;
    for stream in [stream.to_owned(), format!("{stream}:dead")] {
        let mut start = "-".to_owned();
        loop {
            let page: redis::streams::StreamRangeReply = conn
                .xrange_count(&stream, &start, "+", ERASE_PAGE)
                .await
                .context("cannot read the event stream")?;
            let Some(last) = page.ids.last() else { break };
            start = format!("({}", last.id);
            let doomed: Vec<&str> = page
                .ids
                .iter()
                .filter(|e| {
                    e.get::<String>(EVENT_FIELD)
                        .is_some_and(|raw| raw.contains(&needle))
                })
                .map(|e| e.id.as_str())
                .collect();
            if !doomed.is_empty() {
                let n: usize = conn
                    .xdel(&stream, &doomed)
                    .await
                    .context("cannot delete from the event stream")?;
                erased += n;
            }
            if page.ids.len() < ERASE_PAGE {
                break;
            }
        }
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_give_publication_time() {
        assert_eq!(id_ms("1732530000123-7"), Some(1_732_530_000_123));
        assert_eq!(id_ms("junk"), None);
    }
}
