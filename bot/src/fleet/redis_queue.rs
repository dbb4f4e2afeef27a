//! The assignment queue on Redis: the stream `parley:assignments`, read by the consumer group
//! `bots`. A worker's claim is its entry in the group's pending list; heart-beating re-claims it
//! (resetting its idle time), and an entry idle for longer than the lease is taken over with
//! XAUTOCLAIM by the next free worker. Beside the stream: `{stream}:bots` (a hash of worker
//! reports), `{stream}:stop:{meeting}` and `{stream}:clock:{meeting}`.

use super::{Assignment, BotInfo, Claimed, LEASE, QueueDepth, QueueError, REPORT_TTL};
use parley_shared::MeetingId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamMaxlen,
    StreamPendingCountReply, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};
use std::time::Duration;

const GROUP: &str = "bots";
const FIELD: &str = "assignment";
/// Finished assignments are deleted; this only bounds a stream nobody consumes.
const MAXLEN: usize = 100_000;
/// Stop requests and meeting clocks outlive any meeting.
const KEY_TTL_SECS: u64 = 2 * 24 * 3600;

/// Renews a claim only while this worker still owns it: a worker that stalled past its lease
/// must not take the meeting back from the one that replaced it.
const RENEW: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
";

#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    /// Blocking reads get their own connection, so they hold up no other command.
    reader: ConnectionManager,
    stream: String,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Connects and creates the stream and its group if they are missing.
    pub async fn connect(url: &str, stream: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let mut conn = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        let reader = ConnectionManager::new_with_config(client, config).await?;
        let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(stream, GROUP, "0").await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(e.into()),
            _ => {}
        }
        Ok(Self {
            conn,
            reader,
            stream: stream.to_owned(),
        })
    }

    fn bots_key(&self) -> String {
        format!("{}:bots", self.stream)
    }

    fn stop_key(&self, meeting: MeetingId) -> String {
        format!("{}:stop:{meeting}", self.stream)
    }

    fn clock_key(&self, meeting: MeetingId) -> String {
        format!("{}:clock:{meeting}", self.stream)
    }

    pub async fn publish(&self, a: &Assignment) -> Result<(), QueueError> {
        let json = serde_json::to_string(a).map_err(|e| QueueError::Malformed {
            entry: "new".to_owned(),
            reason: e.to_string(),
        })?;
        let _: String = self
            .conn
            .clone()
            .xadd_maxlen(
                &self.stream,
                StreamMaxlen::Approx(MAXLEN),
                "*",
                &[(FIELD, json)],
            )
            .await?;
        Ok(())
    }

    pub async fn claim(&self, worker: &str, wait: Duration) -> Result<Option<Claimed>, QueueError> {
        let mut conn = self.conn.clone();
        let stale: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.stream,
                GROUP,
                worker,
                LEASE.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await?;
        if let Some(entry) = stale.claimed.into_iter().next() {
            let pending: StreamPendingCountReply = conn
                .xpending_count(&self.stream, GROUP, &entry.id, &entry.id, 1)
                .await?;
            let deliveries = pending.ids.first().map_or(2, |p| p.times_delivered as u64);
            return self.parse(entry, deliveries).await.map(Some);
        }
        let opts = StreamReadOptions::default()
            .group(GROUP, worker)
            .count(1)
            .block(wait.as_millis() as usize);
        let reply: Option<StreamReadReply> = self
            .reader
            .clone()
            .xread_options(&[&self.stream], &[">"], &opts)
            .await?;
        let entry = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .next();
        match entry {
            Some(entry) => self.parse(entry, 1).await.map(Some),
            None => Ok(None),
        }
    }

    /// A claimed entry's assignment; a malformed one is removed (no worker could ever serve it).
    async fn parse(&self, entry: StreamId, deliveries: u64) -> Result<Claimed, QueueError> {
        let parsed = entry
            .get::<String>(FIELD)
            .ok_or_else(|| format!("no {FIELD} field"))
            .and_then(|json| serde_json::from_str::<Assignment>(&json).map_err(|e| e.to_string()));
        match parsed {
            Ok(assignment) => Ok(Claimed {
                entry: entry.id,
                assignment,
                deliveries,
            }),
            Err(reason) => {
                self.remove(&entry.id).await?;
                Err(QueueError::Malformed {
                    entry: entry.id,
                    reason,
                })
            }
        }
    }

    pub async fn renew(&self, worker: &str, c: &Claimed) -> Result<bool, QueueError> {
        let owned: i64 = Script::new(RENEW)
            .key(&self.stream)
            .arg(GROUP)
            .arg(worker)
            .arg(&c.entry)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(owned == 1)
    }

    async fn remove(&self, entry: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.xack(&self.stream, GROUP, &[entry]).await?;
        let _: i64 = conn.xdel(&self.stream, &[entry]).await?;
        Ok(())
    }

    pub async fn complete(&self, c: &Claimed) -> Result<(), QueueError> {
        self.remove(&c.entry).await?;
        let meeting = c.assignment.meeting_id;
        let _: i64 = self
            .conn
            .clone()
            .del(&[self.stop_key(meeting), self.clock_key(meeting)])
            .await?;
        Ok(())
    }

    /// Marks the claim as idle for longer than any lease, so the next free worker takes it.
    pub async fn release(&self, c: &Claimed) -> Result<(), QueueError> {
        let idle_ms = LEASE.as_millis() as u64 * 10;
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("released")
            .arg(0)
            .arg(&c.entry)
            .arg("IDLE")
            .arg(idle_ms)
            .arg("JUSTID")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    pub async fn request_stop(&self, meeting: MeetingId) -> Result<(), QueueError> {
        let _: () = self
            .conn
            .clone()
            .set_ex(self.stop_key(meeting), 1, KEY_TTL_SECS)
            .await?;
        Ok(())
    }

    pub async fn stop_requested(&self, meeting: MeetingId) -> Result<bool, QueueError> {
        Ok(self.conn.clone().exists(self.stop_key(meeting)).await?)
    }

    pub async fn clock_origin(&self, meeting: MeetingId, now_ms: u64) -> Result<u64, QueueError> {
        let key = self.clock_key(meeting);
        let mut conn = self.conn.clone();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::EX(KEY_TTL_SECS));
        let _: Option<String> = conn.set_options(&key, now_ms, opts).await?;
        let origin: Option<u64> = conn.get(&key).await?;
        Ok(origin.unwrap_or(now_ms))
    }

    pub async fn report(&self, info: &BotInfo) -> Result<(), QueueError> {
        let json = serde_json::to_string(info).map_err(|e| QueueError::Malformed {
            entry: info.worker_id.clone(),
            reason: e.to_string(),
        })?;
        let _: i64 = self
            .conn
            .clone()
            .hset(self.bots_key(), &info.worker_id, json)
            .await?;
        Ok(())
    }

    pub async fn forget(&self, worker: &str) -> Result<(), QueueError> {
        let _: i64 = self.conn.clone().hdel(self.bots_key(), worker).await?;
        Ok(())
    }

    pub async fn bots(&self, now_ms: u64) -> Result<Vec<BotInfo>, QueueError> {
        let ttl = REPORT_TTL.as_millis() as u64;
        let all: Vec<(String, String)> = self.conn.clone().hgetall(self.bots_key()).await?;
        let mut bots = Vec::new();
        for (worker, json) in all {
            match serde_json::from_str::<BotInfo>(&json) {
                Ok(b) if b.heartbeat_ms.saturating_add(ttl) >= now_ms => bots.push(b),
                _ => self.forget(&worker).await?,
            }
        }
        bots.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(bots)
    }

    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut conn = self.conn.clone();
        let groups: StreamInfoGroupsReply = conn.xinfo_groups(&self.stream).await?;
        let Some(group) = groups.groups.into_iter().find(|g| g.name == GROUP) else {
            return Ok(QueueDepth::default());
        };
        // Entries after the group's last delivery wait for a worker. Counted by reading them
        // (the queue is short) because XINFO's lag is unknown once entries were deleted.
        let waiting: StreamRangeReply = conn
            .xrange_count(
                &self.stream,
                format!("({}", group.last_delivered_id),
                "+",
                10_000,
            )
            .await?;
        let oldest_queued_ms = waiting
            .ids
            .first()
            .and_then(|e| e.id.split('-').next())
            .and_then(|ms| ms.parse().ok());
        Ok(QueueDepth {
            queued: waiting.ids.len() as u64,
            active: group.pending as u64,
            oldest_queued_ms,
        })
    }
}
