//! Calendars, their polling state, and the meetings their events become.

use super::sealed::redacted_url;
use super::{Backend, Result, Store, corrupt, from_db_ms, to_db_ms};
use parley_shared::{EmailAddress, MeetingId, MeetingUrl};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Calendar {
    pub calendar_id: Uuid,
    pub user_id: Uuid,
    /// The feed's address, opened from its sealed copy; never serialized.
    #[serde(skip)]
    pub url: String,
    /// What the address may show of itself (scheme, host and port), to tell calendars apart.
    #[serde(rename = "url")]
    pub shown_url: String,
    pub username: Option<String>,
    /// The password, opened from its sealed copy; never serialized.
    #[serde(skip)]
    pub password: Option<String>,
    #[serde(skip)]
    pub etag: Option<String>,
    #[serde(skip)]
    pub last_modified: Option<String>,
    pub failures: u32,
    pub last_error: Option<String>,
    /// When it was last read without error (ms since the epoch).
    pub last_read_at: Option<u64>,
}

/// One calendar instance as the meeting it becomes.
#[derive(Debug, Clone)]
pub struct CalendarMeeting {
    pub key: String,
    pub owner_id: Uuid,
    pub title: String,
    pub url: MeetingUrl,
    pub start_ms: u64,
    pub invitees: Vec<EmailAddress>,
}

const COLUMNS: &str = "calendar_id, user_id, url, url_sealed, username, password_sealed, etag, \
    last_modified, failures, last_error, last_read_at";

impl Store {
    fn calendar_from_row(&self, r: &sqlx::any::AnyRow) -> Result<Calendar> {
        let id: String = r.try_get("calendar_id")?;
        let user: String = r.try_get("user_id")?;
        let sealed: Option<String> = r.try_get("url_sealed")?;
        Ok(Calendar {
            calendar_id: Uuid::parse_str(&id).map_err(|_| corrupt("calendar id"))?,
            user_id: Uuid::parse_str(&user).map_err(|_| corrupt("calendar user"))?,
            url: self
                .open_sealed(&sealed.ok_or_else(|| corrupt("calendar address not sealed"))?)?,
            shown_url: r.try_get("url")?,
            username: r.try_get("username")?,
            password: r
                .try_get::<Option<String>, _>("password_sealed")?
                .map(|sealed| self.open_sealed(&sealed))
                .transpose()?,
            etag: r.try_get("etag")?,
            last_modified: r.try_get("last_modified")?,
            failures: u32::try_from(r.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
            last_error: r.try_get("last_error")?,
            last_read_at: super::optional_ms(r, "last_read_at")?,
        })
    }

    pub async fn add_calendar(
        &self,
        user_id: Uuid,
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
        now_ms: u64,
    ) -> Result<Calendar> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO calendars (calendar_id, user_id, url, url_sealed, username, \
             password_sealed, next_poll_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(redacted_url(url))
        .bind(self.seal(url)?)
        .bind(username)
        .bind(password.map(|p| self.seal(p)).transpose()?)
        .bind(to_db_ms(now_ms))
        .execute(&self.pool)
        .await?;
        self.calendar(id)
            .await?
            .ok_or_else(|| corrupt("calendar vanished"))
    }

    pub async fn calendar(&self, id: Uuid) -> Result<Option<Calendar>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM calendars WHERE calendar_id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| self.calendar_from_row(r)).transpose()
    }

    pub async fn calendars_of(&self, user_id: Uuid) -> Result<Vec<Calendar>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM calendars WHERE user_id = $1 ORDER BY created_at"
        )))
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.calendar_from_row(r)).collect()
    }

    /// Removes a user's calendar; the meetings only it scheduled are cancelled by the caller.
    pub async fn delete_calendar(&self, user_id: Uuid, id: Uuid) -> Result<Vec<String>> {
        let keys = self.calendar_keys(id).await?;
        let n = sqlx::query("DELETE FROM calendars WHERE calendar_id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(if n > 0 { keys } else { Vec::new() })
    }

    /// Takes a calendar that is due for a poll, for `lease_ms`.
    pub async fn claim_calendar(&self, now_ms: u64, lease_ms: u64) -> Result<Option<Calendar>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let due = "(next_poll_at <= $2 AND (locked_until IS NULL OR locked_until < $2))";
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE calendars SET locked_until = $1 WHERE calendar_id = \
             (SELECT calendar_id FROM calendars WHERE {due} ORDER BY next_poll_at LIMIT 1{lock}) \
             AND {due} RETURNING {COLUMNS}"
        )))
        .bind(to_db_ms(now_ms + lease_ms))
        .bind(to_db_ms(now_ms))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| self.calendar_from_row(r)).transpose()
    }

    /// Records a poll's outcome at `now_ms`: the validators and the time on success, the error
    /// and one more failure otherwise; either way when to poll next.
    pub async fn calendar_polled(
        &self,
        id: Uuid,
        outcome: std::result::Result<(Option<&str>, Option<&str>), &str>,
        now_ms: u64,
        next_poll_ms: u64,
    ) -> Result<()> {
        match outcome {
            Ok((etag, last_modified)) => {
                sqlx::query(
                    "UPDATE calendars SET etag = COALESCE($1, etag), \
                     last_modified = COALESCE($2, last_modified), failures = 0, last_error = NULL, \
                     last_read_at = $5, next_poll_at = $3, locked_until = NULL \
                     WHERE calendar_id = $4",
                )
                .bind(etag)
                .bind(last_modified)
                .bind(to_db_ms(next_poll_ms))
                .bind(id.to_string())
                .bind(to_db_ms(now_ms))
                .execute(&self.pool)
                .await?;
            }
            Err(error) => {
                sqlx::query(
                    "UPDATE calendars SET last_error = $1, failures = failures + 1, \
                     next_poll_at = $2, locked_until = NULL WHERE calendar_id = $3",
                )
                .bind(error)
                .bind(to_db_ms(next_poll_ms))
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// The instance keys a calendar showed last time, with their starts.
    pub async fn calendar_instances(&self, id: Uuid) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT calendar_key, start_time FROM calendar_instances WHERE calendar_id = $1",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("calendar_key")?,
                    from_db_ms(r.try_get("start_time")?),
                ))
            })
            .collect()
    }

    async fn calendar_keys(&self, id: Uuid) -> Result<Vec<String>> {
        Ok(self
            .calendar_instances(id)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Records that a calendar shows an instance; `false` when the calendar is gone (removed
    /// while it was being read).
    pub async fn set_calendar_instance(&self, id: Uuid, key: &str, start_ms: u64) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO calendar_instances (calendar_id, calendar_key, start_time) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM calendars WHERE calendar_id = $1) \
             ON CONFLICT (calendar_id, calendar_key) DO UPDATE SET start_time = excluded.start_time",
        )
        .bind(id.to_string())
        .bind(key)
        .bind(to_db_ms(start_ms))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Forgets an instance for a calendar; cancels its meeting when no calendar shows it any more
    /// and it has not started. Returns the cancelled meeting.
    pub async fn drop_calendar_instance(
        &self,
        id: Option<Uuid>,
        key: &str,
    ) -> Result<Option<MeetingId>> {
        if let Some(id) = id {
            sqlx::query(
                "DELETE FROM calendar_instances WHERE calendar_id = $1 AND calendar_key = $2",
            )
            .bind(id.to_string())
            .bind(key)
            .execute(&self.pool)
            .await?;
        }
        let row = sqlx::query(
            "DELETE FROM meetings WHERE calendar_key = $1 AND status = 'scheduled' \
             AND NOT EXISTS (SELECT 1 FROM calendar_instances i WHERE i.calendar_key = $1) \
             RETURNING meeting_id",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let id: String = r.try_get("meeting_id")?;
            MeetingId::parse(&id).map_err(|_| corrupt("meeting id"))
        })
        .transpose()
    }

    /// Makes the instance's meeting, or moves and renames it while it has not started; its
    /// owner and the event's attendees (once verified) see it. Returns the meeting and the key
    /// it is kept under.
    ///
    /// An event on several people's calendars is one meeting, but only among the people it
    /// invites: the first calendar to show it makes the meeting; another calendar whose owner
    /// that meeting invites joins it and changes nothing of it; any other calendar makes a
    /// meeting of its own under a key scoped to its owner. So a feed that copies someone's event
    /// UID neither edits their meeting nor sees it.
    pub async fn sync_calendar_meeting(
        &self,
        m: &CalendarMeeting,
        now_ms: u64,
    ) -> Result<(MeetingId, String)> {
        // Twice at most: a calendar that lost the race to make a key's meeting rereads it.
        for _ in 0..2 {
            let key = match self.calendar_meeting_owner(&m.key).await? {
                Some((id, owner)) if owner == m.owner_id => {
                    self.update_calendar_meeting(id, m, now_ms).await?;
                    return Ok((id, m.key.clone()));
                }
                Some((id, _)) if self.invites_verified(id, m.owner_id).await? => {
                    self.show_meeting(id, m.owner_id, now_ms).await?;
                    return Ok((id, m.key.clone()));
                }
                Some(_) => format!("{}|{}", m.owner_id, m.key),
                None => m.key.clone(),
            };
            if let Some((id, _)) = self.calendar_meeting_owner(&key).await? {
                self.update_calendar_meeting(id, m, now_ms).await?;
                return Ok((id, key));
            }
            // Its owner deleted it: the calendar does not bring it back.
            if let Some(id) = self.deleted_calendar_meeting(&key).await? {
                return Ok((id, key));
            }
            if let Some(id) = self.create_calendar_meeting(&key, m, now_ms).await? {
                return Ok((id, key));
            }
        }
        Err(corrupt("a calendar meeting's key keeps changing hands"))
    }

    /// The meeting kept under a calendar key, and its owner.
    async fn calendar_meeting_owner(&self, key: &str) -> Result<Option<(MeetingId, Uuid)>> {
        let row = sqlx::query("SELECT meeting_id, owner_id FROM meetings WHERE calendar_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let id: String = r.try_get("meeting_id")?;
            let owner: String = r.try_get("owner_id")?;
            Ok((
                MeetingId::parse(&id).map_err(|_| corrupt("meeting id"))?,
                Uuid::parse_str(&owner).map_err(|_| corrupt("owner id"))?,
            ))
        })
        .transpose()
    }

    /// Whether the meeting invites the user's address, and the address is verified.
    async fn invites_verified(&self, id: MeetingId, user_id: Uuid) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS yes FROM meeting_invitees i JOIN users u ON u.email = i.email \
             WHERE i.meeting_id = $1 AND u.user_id = $2 AND u.email_verified_at IS NOT NULL",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn show_meeting(&self, id: MeetingId, user_id: Uuid, now_ms: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_meetings (id, user_id, meeting_id, joined_at) \
             VALUES ($1 || ':' || $2, $2, $1, $3) ON CONFLICT (user_id, meeting_id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(to_db_ms(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The owner's calendar changed the event: the meeting follows while it has not started,
    /// and newly listed attendees are invited.
    async fn update_calendar_meeting(
        &self,
        id: MeetingId,
        m: &CalendarMeeting,
        now_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE meetings SET title = $1, url = $2, platform = $3, start_time = $4 \
             WHERE meeting_id = $5 AND status = 'scheduled'",
        )
        .bind(&m.title)
        .bind(m.url.as_str())
        .bind(m.url.platform().as_str())
        .bind(to_db_ms(m.start_ms))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        for email in &m.invitees {
            sqlx::query(
                "INSERT INTO meeting_invitees (meeting_id, email) VALUES ($1, $2) \
                 ON CONFLICT (meeting_id, email) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(email.as_str())
            .execute(&self.pool)
            .await?;
        }
        super::meetings::link_verified_invitees(&self.pool, id, now_ms).await
    }

    /// Makes the meeting and claims `key` for it; `None` when another calendar claimed the key
    /// first (the meeting made here is removed again).
    async fn create_calendar_meeting(
        &self,
        key: &str,
        m: &CalendarMeeting,
        now_ms: u64,
    ) -> Result<Option<MeetingId>> {
        let created = self
            .create_meeting(
                super::NewMeeting {
                    owner_id: m.owner_id,
                    title: m.title.clone(),
                    url: m.url.clone(),
                    start_time_ms: Some(m.start_ms),
                    invitees: m.invitees.clone(),
                    record: true,
                    metadata: super::metadata::Metadata::default(),
                    retention_days: None,
                },
                now_ms,
            )
            .await?;
        let claimed = sqlx::query(
            "UPDATE meetings SET calendar_key = $1 WHERE meeting_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM meetings o WHERE o.calendar_key = $1)",
        )
        .bind(key)
        .bind(created.meeting_id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            sqlx::query("DELETE FROM meetings WHERE meeting_id = $1")
                .bind(created.meeting_id.to_string())
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        Ok(Some(created.meeting_id))
    }
}
