//! Webhook endpoints and their deliveries. A delivery is a row per (endpoint, event): queued once
//! however often its event is applied, claimed with a lease like a job (`FOR UPDATE SKIP LOCKED`
//! on Postgres), and only when no earlier delivery of the same endpoint and meeting is still
//! waiting, so each endpoint sees a meeting's events in order.

use super::metadata::Metadata;
use super::sealed::redacted_url;
use super::{Backend, Result, Store, corrupt, from_db_ms, optional_ms, to_db_ms, uuid_column};
use parley_shared::MeetingId;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// What an endpoint can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "bot.status")]
    BotStatus,
    #[serde(rename = "participant.joined")]
    ParticipantJoined,
    #[serde(rename = "participant.left")]
    ParticipantLeft,
    #[serde(rename = "transcript.final")]
    TranscriptFinal,
    #[serde(rename = "meeting.ended")]
    MeetingEnded,
    #[serde(rename = "summary.ready")]
    SummaryReady,
    #[serde(rename = "recording.ready")]
    RecordingReady,
}

impl EventType {
    pub const ALL: [Self; 7] = [
        Self::BotStatus,
        Self::ParticipantJoined,
        Self::ParticipantLeft,
        Self::TranscriptFinal,
        Self::MeetingEnded,
        Self::SummaryReady,
        Self::RecordingReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BotStatus => "bot.status",
            Self::ParticipantJoined => "participant.joined",
            Self::ParticipantLeft => "participant.left",
            Self::TranscriptFinal => "transcript.final",
            Self::MeetingEnded => "meeting.ended",
            Self::SummaryReady => "summary.ready",
            Self::RecordingReady => "recording.ready",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// An endpoint as its owner sees it: the address redacted (it may carry a token), never the
/// secret.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    /// Only meetings whose metadata holds all of these.
    pub metadata: Metadata,
    pub created_at: u64,
    pub disabled_at: Option<u64>,
    pub disabled_reason: Option<String>,
}

/// An endpoint an event of a meeting goes to.
#[derive(Debug, Clone)]
pub struct Target {
    pub webhook_id: Uuid,
    pub events: Vec<EventType>,
    pub filter: Metadata,
}

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: Uuid,
    pub meeting_id: MeetingId,
    /// Names the event within its meeting, so applying it again queues nothing.
    pub event_key: String,
    pub event_type: EventType,
    pub payload: String,
}

/// A delivery claimed for sending, with what signing and sending it needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    pub webhook_id: Uuid,
    pub user_id: Uuid,
    pub meeting_id: MeetingId,
    pub url: String,
    pub secret: String,
    pub payload: String,
    /// Including this one.
    pub attempts: u32,
    pub queued_at: u64,
}

/// One line of an endpoint's delivery log.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The `webhook-id` the receiver saw.
    pub id: String,
    pub meeting_id: MeetingId,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `running`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    /// The HTTP status of the last attempt, if the endpoint answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub queued_at: u64,
    pub next_attempt_at: Option<u64>,
    pub delivered_at: Option<u64>,
}

/// Orders deliveries as they are queued: milliseconds since the epoch times 1000, plus a count
/// that keeps it strictly increasing within this process.
fn next_seq(now_ms: u64) -> i64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let floor = now_ms.saturating_mul(1000);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = floor.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return to_db_ms(next),
            Err(seen) => last = seen,
        }
    }
}

fn events(row: &AnyRow) -> Result<Vec<EventType>> {
    let text: String = row.try_get("events")?;
    serde_json::from_str(&text).map_err(|_| corrupt("webhook events"))
}

fn filter(row: &AnyRow) -> Result<Metadata> {
    let text: String = row.try_get("metadata")?;
    Metadata::from_stored(&text).ok_or_else(|| corrupt("webhook metadata"))
}

fn webhook(row: &AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        id: uuid_column(row, "webhook", "webhook_id")?,
        user_id: uuid_column(row, "webhook", "user_id")?,
        url: row.try_get("url")?,
        events: events(row)?,
        metadata: filter(row)?,
        created_at: from_db_ms(row.try_get("created_at")?),
        disabled_at: optional_ms(row, "disabled_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
    })
}

fn delivery(row: &AnyRow) -> Result<Delivery> {
    let meeting: String = row.try_get("meeting_id")?;
    let state: String = row.try_get("state")?;
    Ok(Delivery {
        id: row.try_get("delivery_id")?,
        meeting_id: MeetingId::parse(&meeting).map_err(|_| corrupt("delivery meeting"))?,
        event_type: row.try_get("event_type")?,
        next_attempt_at: if state == "pending" {
            Some(from_db_ms(row.try_get("next_attempt_at")?))
        } else {
            None
        },
        state,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error")?,
        queued_at: from_db_ms(row.try_get("queued_at")?),
        delivered_at: optional_ms(row, "delivered_at")?,
    })
}

const WEBHOOK_COLUMNS: &str = "webhook_id, user_id, url, events, metadata, created_at, \
    disabled_at, disabled_reason";

impl Store {
    pub async fn create_webhook(
        &self,
        user_id: Uuid,
        url: &str,
        events: &[EventType],
        filter: &Metadata,
        secret: &str,
        now_ms: u64,
    ) -> Result<Webhook> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO webhooks (webhook_id, user_id, url, url_sealed, events, metadata, \
             secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(redacted_url(url))
        .bind(self.seal(url)?)
        .bind(serde_json::to_string(events).map_err(|_| corrupt("webhook events"))?)
        .bind(filter.to_stored())
        .bind(self.seal(secret)?)
        .bind(to_db_ms(now_ms))
        .execute(&self.pool)
        .await?;
        self.webhook(id)
            .await?
            .ok_or_else(|| corrupt("webhook vanished"))
    }

    pub async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = $1");
        sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(webhook)
            .transpose()
    }

    /// A user's endpoints, newest first.
    pub async fn webhooks_of(&self, user_id: Uuid) -> Result<Vec<Webhook>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE user_id = $1 \
             ORDER BY created_at DESC, webhook_id"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(user_id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(webhook)
            .collect()
    }

    /// Deletes an endpoint of `user_id` and its deliveries; false if it has no such endpoint.
    pub async fn delete_webhook(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("SELECT 1 FROM webhooks WHERE webhook_id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if found {
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM webhooks WHERE webhook_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// The enabled endpoints of a meeting's owner, and the meeting's metadata; `None` if the
    /// meeting does not exist.
    pub async fn webhook_targets(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<(Metadata, Vec<Target>)>> {
        let Some(row) =
            sqlx::query("SELECT owner_id, metadata FROM meetings WHERE meeting_id = $1")
                .bind(meeting.to_string())
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let owner: String = row.try_get("owner_id")?;
        let metadata = filter(&row)?;
        let targets = sqlx::query(
            "SELECT webhook_id, events, metadata FROM webhooks \
             WHERE user_id = $1 AND disabled_at IS NULL",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Target {
                webhook_id: uuid_column(r, "webhook", "webhook_id")?,
                events: events(r)?,
                filter: filter(r)?,
            })
        })
        .collect::<Result<_>>()?;
        Ok(Some((metadata, targets)))
    }

    /// Queues deliveries, each once: one already queued for the same endpoint and event is
    /// left as it is.
    pub async fn queue_deliveries(&self, deliveries: &[NewDelivery], now_ms: u64) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO webhook_deliveries (delivery_id, webhook_id, meeting_id, event_key, \
                 event_type, payload, seq, state, next_attempt_at, queued_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) \
                 ON CONFLICT (webhook_id, event_key) DO NOTHING",
            )
            .bind(format!("msg_{}", Uuid::new_v4().simple()))
            .bind(d.webhook_id.to_string())
            .bind(d.meeting_id.to_string())
            .bind(&d.event_key)
            .bind(d.event_type.as_str())
            .bind(&d.payload)
            .bind(next_seq(now_ms))
            .bind(to_db_ms(now_ms))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes the most overdue delivery that is first in line for its endpoint and meeting, for
    /// `lease_ms`.
    pub async fn claim_delivery(
        &self,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<ClaimedDelivery>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let due = "((d.state = 'pending' AND d.next_attempt_at <= $2) \
                   OR (d.state = 'running' AND d.locked_until < $2))";
        let first = "NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                     WHERE e.webhook_id = d.webhook_id AND e.meeting_id = d.meeting_id \
                     AND e.seq < d.seq AND e.state IN ('pending', 'running'))";
        let sql = format!(
            "UPDATE webhook_deliveries SET state = 'running', attempts = attempts + 1, \
             locked_until = $1 WHERE delivery_id = (SELECT d.delivery_id FROM \
             webhook_deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id \
             WHERE {due} AND {first} AND w.disabled_at IS NULL \
             ORDER BY d.next_attempt_at, d.seq LIMIT 1{lock}) \
             AND (state = 'pending' OR locked_until < $2) \
             RETURNING delivery_id, webhook_id, meeting_id, payload, attempts, queued_at"
        );
        let Some(row) = sqlx::query(AssertSqlSafe(sql))
            .bind(to_db_ms(now_ms + lease_ms))
            .bind(to_db_ms(now_ms))
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let webhook_id = uuid_column(&row, "webhook", "webhook_id")?;
        let meeting: String = row.try_get("meeting_id")?;
        let endpoint = sqlx::query(
            "SELECT user_id, url_sealed, secret_sealed FROM webhooks WHERE webhook_id = $1",
        )
        .bind(webhook_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(ClaimedDelivery {
            delivery_id: row.try_get("delivery_id")?,
            webhook_id,
            user_id: uuid_column(&endpoint, "webhook", "user_id")?,
            meeting_id: MeetingId::parse(&meeting).map_err(|_| corrupt("delivery meeting"))?,
            url: self.open_sealed(&endpoint.try_get::<String, _>("url_sealed")?)?,
            secret: self.open_sealed(&endpoint.try_get::<String, _>("secret_sealed")?)?,
            payload: row.try_get("payload")?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            queued_at: from_db_ms(row.try_get("queued_at")?),
        }))
    }

    /// Records an attempt: delivered, to be tried again at `retry_at_ms`, or given up. Only a
    /// delivery still running is changed: one its endpoint's disabling failed meanwhile stays
    /// failed rather than queued again behind a disabled endpoint.
    pub async fn settle_delivery(
        &self,
        id: &str,
        outcome: Settled<'_>,
        status: Option<u16>,
        now_ms: u64,
    ) -> Result<()> {
        let (state, next, error) = match outcome {
            Settled::Delivered => ("delivered", None, None),
            Settled::Retry { at_ms, error } => ("pending", Some(at_ms), Some(error)),
            Settled::Failed { error } => ("failed", None, Some(error)),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, locked_until = NULL, \
             next_attempt_at = COALESCE($2, next_attempt_at), last_status = $3, last_error = $4, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $5 ELSE delivered_at END \
             WHERE delivery_id = $6 AND state = 'running'",
        )
        .bind(state)
        .bind(next.map(to_db_ms))
        .bind(status.map(i64::from))
        .bind(error)
        .bind(to_db_ms(now_ms))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Turns an endpoint off and gives up its waiting deliveries; true if it was on (so its
    /// owner is told once).
    pub async fn disable_webhook(&self, id: Uuid, reason: &str, now_ms: u64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE webhooks SET disabled_at = $1, disabled_reason = $2 \
             WHERE webhook_id = $3 AND disabled_at IS NULL",
        )
        .bind(to_db_ms(now_ms))
        .bind(reason)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', locked_until = NULL, \
             last_error = 'the endpoint was disabled' \
             WHERE webhook_id = $1 AND state IN ('pending', 'running')",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries_of(&self, webhook: Uuid, limit: u32) -> Result<Vec<Delivery>> {
        sqlx::query(
            "SELECT delivery_id, meeting_id, event_type, state, attempts, last_status, \
             last_error, queued_at, next_attempt_at, delivered_at FROM webhook_deliveries \
             WHERE webhook_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(webhook.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    /// Sends a delivery again, under the same `webhook-id`, after every delivery queued so far
    /// for its meeting; an endpoint that was disabled is turned back on. False if the endpoint
    /// has no such delivery or one is being sent now.
    pub async fn redeliver(&self, webhook: Uuid, delivery: &str, now_ms: u64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, \
             queued_at = $1, seq = $2, attempts = 0, locked_until = NULL, delivered_at = NULL \
             WHERE delivery_id = $3 AND webhook_id = $4 AND state <> 'running'",
        )
        .bind(to_db_ms(now_ms))
        .bind(next_seq(now_ms))
        .bind(delivery)
        .bind(webhook.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if queued {
            sqlx::query(
                "UPDATE webhooks SET disabled_at = NULL, disabled_reason = NULL \
                 WHERE webhook_id = $1",
            )
            .bind(webhook.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }
}

/// How an attempt went.
#[derive(Debug, Clone, Copy)]
pub enum Settled<'a> {
    Delivered,
    Retry { at_ms: u64, error: &'a str },
    Failed { error: &'a str },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_named_as_in_their_json() {
        for t in EventType::ALL {
            let json = serde_json::to_string(&t).expect("json");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("bot.joined"), None);
    }

    #[test]
    fn delivery_order_increases_within_a_millisecond_and_follows_the_clock() {
        let a = next_seq(5);
        let b = next_seq(5);
        assert!(b > a);
        let later = next_seq(u64::from(u32::MAX) * 1000);
        assert!(later >= to_db_ms(u64::from(u32::MAX) * 1_000_000));
    }
}
