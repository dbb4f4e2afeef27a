//! Deleting meetings and accounts. A meeting's row goes in one transaction with everything that
//! references it (transcript, participants, invitees, summary, jobs, webhook deliveries: `ON
//! DELETE CASCADE`), leaving a tombstone of ids and times; what lives outside the database is
//! purged after, until the tombstone says it was.

use super::{Result, Store, corrupt, from_db_ms, to_db_ms};
use parley_shared::MeetingId;
use sqlx::Row;
use std::collections::HashSet;
use uuid::Uuid;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn meeting_ids(rows: &[sqlx::any::AnyRow]) -> Result<Vec<MeetingId>> {
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("meeting_id")?;
            MeetingId::parse(&id).map_err(|_| corrupt("meeting id"))
        })
        .collect()
}

impl Store {
    /// Deletes a meeting and everything stored of it, leaving its tombstone; false if there is
    /// no such meeting.
    pub async fn delete_meeting(&self, id: MeetingId, now_ms: u64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT calendar_key FROM meetings WHERE meeting_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let calendar_key: Option<String> = row.try_get("calendar_key")?;
        sqlx::query(
            "INSERT INTO deleted_meetings (meeting_id, calendar_key, deleted_at) \
             VALUES ($1, $2, $3) ON CONFLICT (meeting_id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(calendar_key)
        .bind(to_db_ms(now_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM meetings WHERE meeting_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Which of `ids` were deleted.
    pub async fn deleted_among(&self, ids: &[MeetingId]) -> Result<HashSet<MeetingId>> {
        Ok(self
            .meeting_ids_in("deleted_meetings", ids)
            .await?
            .into_iter()
            .collect())
    }

    /// The deleted meeting a calendar key named, so a calendar does not make it again.
    pub async fn deleted_calendar_meeting(&self, key: &str) -> Result<Option<MeetingId>> {
        let rows =
            sqlx::query("SELECT meeting_id FROM deleted_meetings WHERE calendar_key = $1 LIMIT 1")
                .bind(key)
                .fetch_all(&self.pool)
                .await?;
        Ok(meeting_ids(&rows)?.into_iter().next())
    }

    /// Deleted meetings whose data outside the database may remain, oldest first, with when
    /// they were deleted.
    pub async fn unpurged_meetings(&self, limit: u32) -> Result<Vec<(MeetingId, u64)>> {
        let rows = sqlx::query(
            "SELECT meeting_id, deleted_at FROM deleted_meetings WHERE purged_at IS NULL \
             ORDER BY deleted_at LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let ids = meeting_ids(&rows)?;
        rows.iter()
            .zip(ids)
            .map(|(r, id)| Ok((id, from_db_ms(r.try_get("deleted_at")?))))
            .collect()
    }

    pub async fn mark_purged(&self, id: MeetingId, now_ms: u64) -> Result<()> {
        sqlx::query("UPDATE deleted_meetings SET purged_at = $1 WHERE meeting_id = $2")
            .bind(to_db_ms(now_ms))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Meetings over (ended or failed) longer ago than their retention: their own
    /// `retention_days`, or `default_days`; none without either.
    pub async fn expired_meetings(
        &self,
        default_days: Option<u32>,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<MeetingId>> {
        let rows = sqlx::query(
            "SELECT meeting_id FROM meetings WHERE status IN ('ended', 'failed') \
             AND COALESCE(retention_days, $1) IS NOT NULL \
             AND COALESCE(end_time, created_at) + COALESCE(retention_days, $1) * $2 < $3 \
             ORDER BY created_at LIMIT $4",
        )
        .bind(default_days.map(i64::from))
        .bind(DAY_MS)
        .bind(to_db_ms(now_ms))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        meeting_ids(&rows)
    }

    /// The meetings an account owns.
    pub async fn meetings_owned_by(&self, user_id: Uuid) -> Result<Vec<MeetingId>> {
        let rows = sqlx::query("SELECT meeting_id FROM meetings WHERE owner_id = $1")
            .bind(user_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        meeting_ids(&rows)
    }

    /// Deletes an account whose meetings were deleted first; its sessions, keys, webhooks,
    /// calendars and tokens go with it. False if there is no such account or it still owns a
    /// meeting (made since its meetings were deleted: the caller deletes again).
    pub async fn delete_user(&self, user_id: Uuid) -> Result<bool> {
        let n = sqlx::query(
            "DELETE FROM users WHERE user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM meetings WHERE owner_id = $1)",
        )
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }
}
