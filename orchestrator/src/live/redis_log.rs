//! The production live log: one Redis stream per meeting, `parley:live:{meeting}`, trimmed to
//! about [`RETAINED`] entries and expiring a day after its last write. Stream ids are the cursors.

use super::cursor::Cursor;
use super::log::{Entry, RETAINED};
use anyhow::Context;
use parley_shared::MeetingId;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use std::sync::Arc;
use std::time::Duration;

const EXPIRE_SECS: i64 = 24 * 3600;
const FIELD: &str = "s";
/// Entries per read: a tail that fell further behind catches up in several reads, each well
/// within what a viewer may fall behind (hub::VIEWER_BUFFER).
const READ_COUNT: usize = 200;

fn key(meeting: MeetingId) -> String {
    format!("parley:live:{meeting}")
}

#[derive(Clone)]
pub struct RedisLog {
    client: redis::Client,
    conn: ConnectionManager,
}

impl RedisLog {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("invalid REDIS_URL")?;
        let conn = Self::manager(&client, Duration::ZERO).await?;
        Ok(Self { client, conn })
    }

    /// A connection whose response timeout outlasts reads that block up to `block`.
    async fn manager(client: &redis::Client, block: Duration) -> anyhow::Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(block + Duration::from_secs(5)))
            .set_number_of_retries(2);
        ConnectionManager::new_with_config(client.clone(), config)
            .await
            .context("cannot connect to redis")
    }

    /// Blocking reads hold their connection, so each tail gets one of its own.
    pub async fn tail_connection(&self) -> anyhow::Result<ConnectionManager> {
        Self::manager(&self.client, Duration::from_secs(2)).await
    }

    pub async fn append(&self, encoded: &[(MeetingId, String)]) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        let mut keys: Vec<String> = Vec::new();
        for (meeting, json) in encoded {
            let k = key(*meeting);
            pipe.cmd("XADD")
                .arg(&k)
                .arg("MAXLEN")
                .arg("~")
                .arg(RETAINED)
                .arg("*")
                .arg(FIELD)
                .arg(json)
                .ignore();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for k in keys {
            pipe.expire(k, EXPIRE_SECS).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .context("cannot append to the live log")
    }

    pub async fn forget(&self, meeting: MeetingId) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(key(meeting))
            .await
            .context("cannot delete a live log")
    }

    pub async fn head(&self, meeting: MeetingId) -> anyhow::Result<Cursor> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = conn.xrevrange_count(key(meeting), "+", "-", 1).await?;
        Ok(reply
            .ids
            .first()
            .and_then(|e| Cursor::parse(&e.id))
            .unwrap_or(Cursor::ZERO))
    }

    pub async fn since(
        &self,
        meeting: MeetingId,
        after: Cursor,
    ) -> anyhow::Result<Option<Vec<Entry>>> {
        let mut conn = self.conn.clone();
        let first: StreamRangeReply = conn.xrange_count(key(meeting), "-", "+", 1).await?;
        let complete = match first.ids.first().and_then(|e| Cursor::parse(&e.id)) {
            // Trimming removes the oldest entries, so none after `after` is gone when the oldest
            // kept one is not newer than it.
            Some(oldest) => oldest <= after,
            // No stream: complete only for a reader that never saw an entry.
            None => after == Cursor::ZERO,
        };
        if !complete {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut from = after;
        loop {
            let start = format!("({from}");
            let page: StreamRangeReply = conn
                .xrange_count(key(meeting), &start, "+", READ_COUNT)
                .await?;
            let n = page.ids.len();
            out.extend(entries(page.ids));
            match out.last() {
                Some((c, _)) if n == READ_COUNT => from = *c,
                _ => return Ok(Some(out)),
            }
        }
    }

    pub async fn read_after(
        conn: &mut ConnectionManager,
        meeting: MeetingId,
        after: Cursor,
        wait: Duration,
    ) -> anyhow::Result<Vec<Entry>> {
        let options = StreamReadOptions::default()
            .count(READ_COUNT)
            .block(wait.as_millis().max(1) as usize);
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[key(meeting)], &[after.to_string()], &options)
            .await?;
        Ok(entries(
            reply
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .collect(),
        ))
    }
}

/// Well-formed entries; anything else in the stream was not written by us and is skipped.
fn entries(ids: Vec<StreamId>) -> Vec<Entry> {
    ids.into_iter()
        .filter_map(|e| {
            let cursor = Cursor::parse(&e.id)?;
            let json: String = e.get(FIELD)?;
            Some((cursor, Arc::from(json)))
        })
        .collect()
}
