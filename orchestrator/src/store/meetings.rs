//! Meetings, who may see them, and the speakers a bot heard in them.

use super::metadata::Metadata;
use super::{Backend, Result, Store, corrupt, from_db_ms, to_db_ms};
use crate::auth::ShareToken;
use parley_shared::{EmailAddress, MeetingId, MeetingUrl, Platform};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::fmt::Write;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    /// Waiting for its start time.
    Scheduled,
    /// A bot has been dispatched and is joining.
    Joining,
    InProgress,
    Ended,
    Failed,
}

impl MeetingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Joining => "joining",
            Self::InProgress => "in_progress",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Scheduled,
            Self::Joining,
            Self::InProgress,
            Self::Ended,
            Self::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Meeting {
    pub meeting_id: MeetingId,
    pub title: String,
    pub url: MeetingUrl,
    pub platform: Platform,
    pub status: MeetingStatus,
    /// Why a meeting failed, in words for its owner.
    pub status_reason: Option<String>,
    pub owner_id: Uuid,
    pub start_time_ms: Option<u64>,
    pub end_time_ms: Option<u64>,
    pub created_at_ms: u64,
    /// Whether the bot records each speaker's audio.
    pub record: bool,
    /// The live captions link's token; `None` once revoked.
    #[serde(skip)]
    pub share_token: Option<ShareToken>,
    /// What the link shows besides captions and the transcript.
    pub share_scope: ShareScope,
    pub metadata: Metadata,
    /// Days after it is over that the meeting is deleted; `None`: the server's default.
    pub retention_days: Option<u32>,
    /// Since when its bot hears no audio from a platform that should be sending some.
    pub capture_stalled_ms: Option<u64>,
}

/// What a meeting's live captions link shows besides live captions and the transcript, as its
/// owner chose: by default nothing, since anyone holding the link sees what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareScope {
    Captions,
    /// The summary too.
    Summary,
    /// The summary and every speaker's recording.
    All,
}

impl ShareScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Captions => "captions",
            Self::Summary => "summary",
            Self::All => "all",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Captions, Self::Summary, Self::All]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct NewMeeting {
    pub owner_id: Uuid,
    pub title: String,
    pub url: MeetingUrl,
    pub start_time_ms: Option<u64>,
    pub invitees: Vec<EmailAddress>,
    pub record: bool,
    pub metadata: Metadata,
    /// Days after it is over that the meeting is deleted; `None`: the server's default.
    pub retention_days: Option<u32>,
}

/// A final segment that matched a search, with its meeting.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub meeting_id: MeetingId,
    pub title: String,
    pub segment_id: Uuid,
    pub speaker_name: String,
    pub start_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Participant {
    pub speaker_key: String,
    pub display_name: String,
    pub joined_ms: Option<u64>,
    pub left_ms: Option<u64>,
}

/// Columns `Store::meeting_from_row` reads, qualified by `m.`.
macro_rules! meeting_columns {
    () => {
        "m.meeting_id, m.title, m.url, m.platform, m.status, m.status_reason, m.owner_id, \
         m.start_time, m.end_time, m.created_at, CASE WHEN m.record THEN 1 ELSE 0 END AS record_flag, \
         m.share_sealed, m.share_scope, m.metadata, m.retention_days, m.capture_stalled_at"
    };
}

/// Rows of meetings the user `$1` may see: owned or taken part in.
macro_rules! visible_to_user {
    () => {
        "(m.owner_id = $1 OR EXISTS (SELECT 1 FROM user_meetings um \
          WHERE um.meeting_id = m.meeting_id AND um.user_id = $1))"
    };
}

impl Store {
    fn meeting_from_row(&self, row: &AnyRow) -> Result<Meeting> {
        let id: String = row.try_get("meeting_id")?;
        let url: String = row.try_get("url")?;
        let platform: String = row.try_get("platform")?;
        let status: String = row.try_get("status")?;
        let owner: String = row.try_get("owner_id")?;
        Ok(Meeting {
            meeting_id: MeetingId::parse(&id).map_err(|_| corrupt("meeting id"))?,
            title: row.try_get("title")?,
            url: MeetingUrl::parse(&url).map_err(|_| corrupt("meeting url"))?,
            platform: Platform::parse(&platform).ok_or_else(|| corrupt("meeting platform"))?,
            status: MeetingStatus::parse(&status).ok_or_else(|| corrupt("meeting status"))?,
            status_reason: row.try_get("status_reason")?,
            owner_id: Uuid::parse_str(&owner).map_err(|_| corrupt("meeting owner"))?,
            start_time_ms: row.try_get::<Option<i64>, _>("start_time")?.map(from_db_ms),
            end_time_ms: row.try_get::<Option<i64>, _>("end_time")?.map(from_db_ms),
            created_at_ms: from_db_ms(row.try_get("created_at")?),
            record: row.try_get::<i64, _>("record_flag")? != 0,
            share_token: row
                .try_get::<Option<String>, _>("share_sealed")?
                .map(|sealed| {
                    ShareToken::parse(&self.open_sealed(&sealed)?)
                        .ok_or_else(|| corrupt("share token"))
                })
                .transpose()?,
            share_scope: ShareScope::parse(&row.try_get::<String, _>("share_scope")?)
                .ok_or_else(|| corrupt("share scope"))?,
            metadata: Metadata::from_stored(&row.try_get::<String, _>("metadata")?)
                .ok_or_else(|| corrupt("meeting metadata"))?,
            retention_days: row
                .try_get::<Option<i64>, _>("retention_days")?
                .and_then(|d| u32::try_from(d).ok()),
            capture_stalled_ms: super::optional_ms(row, "capture_stalled_at")?,
        })
    }

    /// The columns a share token is stored as: its hash (to find the meeting by link) and the
    /// owner's sealed copy.
    pub(super) fn share_columns(
        &self,
        token: Option<&ShareToken>,
    ) -> Result<(Option<String>, Option<String>)> {
        Ok(match token {
            Some(t) => (
                Some(t.hash().as_str().to_owned()),
                Some(self.seal(t.expose())?),
            ),
            None => (None, None),
        })
    }
}

/// Shows a meeting to the invitees whose accounts have verified addresses.
pub(super) async fn link_verified_invitees<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: MeetingId,
    now_ms: u64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_meetings (id, user_id, meeting_id, joined_at) \
         SELECT $1 || ':' || u.user_id, u.user_id, $1, $2 FROM users u \
         JOIN meeting_invitees i ON i.email = u.email AND i.meeting_id = $1 \
         WHERE u.email_verified_at IS NOT NULL \
         ON CONFLICT (user_id, meeting_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(to_db_ms(now_ms))
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a meeting, its invitees, and makes it visible to invitees who already have
    /// accounts with verified addresses.
    pub async fn create_meeting(&self, new: NewMeeting, now_ms: u64) -> Result<Meeting> {
        let id = MeetingId::new_random();
        let (share_hash, share_sealed) = self.share_columns(Some(&ShareToken::generate()?))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO meetings (meeting_id, title, url, platform, status, owner_id, start_time, \
             created_at, record, share_hash, share_sealed, metadata, retention_days) \
             VALUES ($1, $2, $3, $4, 'scheduled', $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id.to_string())
        .bind(&new.title)
        .bind(new.url.as_str())
        .bind(new.url.platform().as_str())
        .bind(new.owner_id.to_string())
        .bind(new.start_time_ms.map(to_db_ms))
        .bind(to_db_ms(now_ms))
        .bind(new.record)
        .bind(share_hash)
        .bind(share_sealed)
        .bind(new.metadata.to_stored())
        .bind(new.retention_days.map(i64::from))
        .execute(&mut *tx)
        .await?;
        for email in &new.invitees {
            sqlx::query(
                "INSERT INTO meeting_invitees (meeting_id, email) VALUES ($1, $2) \
                 ON CONFLICT (meeting_id, email) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(email.as_str())
            .execute(&mut *tx)
            .await?;
        }
        link_verified_invitees(&mut *tx, id, now_ms).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE m.meeting_id = $1"
        ))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.meeting_from_row(&row)
    }

    /// A meeting whatever its visibility (for the system's own work, not for API callers).
    pub async fn meeting(&self, id: MeetingId) -> Result<Option<Meeting>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE m.meeting_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| self.meeting_from_row(r)).transpose()
    }

    /// The meeting a live captions link opens, if the link is still valid.
    pub async fn meeting_by_share_token(&self, token: &ShareToken) -> Result<Option<Meeting>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE m.share_hash = $1"
        ))
        .bind(token.hash().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| self.meeting_from_row(r)).transpose()
    }

    /// Replaces a meeting's share token (`None` revokes the link); returns whether it exists.
    pub async fn set_share_token(&self, id: MeetingId, token: Option<&ShareToken>) -> Result<bool> {
        let (hash, sealed) = self.share_columns(token)?;
        let n = sqlx::query(
            "UPDATE meetings SET share_hash = $1, share_sealed = $2 WHERE meeting_id = $3",
        )
        .bind(hash)
        .bind(sealed)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// How many meetings `owner` made through the API since `since_ms` (calendar meetings are
    /// bounded by their feeds), and when the oldest of them was made.
    pub async fn meetings_created_since(&self, owner: Uuid, since_ms: u64) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM meetings \
             WHERE owner_id = $1 AND created_at > $2 AND calendar_key IS NULL",
        )
        .bind(owner.to_string())
        .bind(to_db_ms(since_ms))
        .fetch_one(&self.pool)
        .await?;
        Ok((
            from_db_ms(row.try_get("n")?),
            row.try_get::<Option<i64>, _>("oldest")?
                .map_or(0, from_db_ms),
        ))
    }

    /// Sets what a meeting's live captions link shows; returns whether the meeting exists.
    pub async fn set_share_scope(&self, id: MeetingId, scope: ShareScope) -> Result<bool> {
        let n = sqlx::query("UPDATE meetings SET share_scope = $1 WHERE meeting_id = $2")
            .bind(scope.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// A meeting if `user_id` owns it or took part in it.
    pub async fn visible_meeting(&self, user_id: Uuid, id: MeetingId) -> Result<Option<Meeting>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE m.meeting_id = $2 AND ",
            visible_to_user!()
        ))
        .bind(user_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| self.meeting_from_row(r)).transpose()
    }

    /// Final segments of the meetings `user_id` may see that hold every one of `words`
    /// (case-insensitive substrings), newest meeting first, in spoken order within it.
    pub async fn search_finals(
        &self,
        user_id: Uuid,
        words: &[String],
        limit: u32,
    ) -> Result<Vec<SearchHit>> {
        let mut sql = concat!(
            "SELECT m.meeting_id, m.title, t.segment_id, t.speaker_name, t.start_ms, \
             t.transcribed_text FROM transcriptions t JOIN meetings m \
             ON m.meeting_id = t.meeting_id WHERE t.is_final AND ",
            visible_to_user!()
        )
        .to_owned();
        for i in 0..words.len() {
            let _ = write!(
                sql,
                " AND LOWER(t.transcribed_text) LIKE ${} ESCAPE '\\'",
                i + 3
            );
        }
        sql.push_str(" ORDER BY m.created_at DESC, m.meeting_id, t.start_ms LIMIT $2");
        // Only placeholders are added to the text; the words are bound, their LIKE wildcards
        // escaped.
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(user_id.to_string())
            .bind(i64::from(limit));
        for word in words {
            let escaped = word
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            query = query.bind(format!("%{escaped}%"));
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let id: String = r.try_get("meeting_id")?;
                let segment: String = r.try_get("segment_id")?;
                Ok(SearchHit {
                    meeting_id: MeetingId::parse(&id).map_err(|_| corrupt("meeting id"))?,
                    title: r.try_get("title")?,
                    segment_id: Uuid::parse_str(&segment).map_err(|_| corrupt("segment id"))?,
                    speaker_name: r.try_get("speaker_name")?,
                    start_ms: from_db_ms(r.try_get("start_ms")?),
                    text: r.try_get("transcribed_text")?,
                })
            })
            .collect()
    }

    /// The meetings the user sees, newest first; with `metadata` filters, only those they own
    /// whose metadata has each key with that value (an invitee cannot probe the owner's).
    pub async fn visible_meetings(
        &self,
        user_id: Uuid,
        metadata: &[(String, String)],
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Meeting>> {
        let mut sql = concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE ",
            visible_to_user!()
        )
        .to_owned();
        for i in 0..metadata.len() {
            let (key, value) = (4 + 2 * i, 5 + 2 * i);
            // Keys are plain names (metadata::check_key), bound as parameters all the same.
            sql.push_str(&match self.backend {
                Backend::Postgres => {
                    format!(" AND m.owner_id = $1 AND (m.metadata::jsonb ->> ${key}) = ${value}")
                }
                Backend::Sqlite => format!(
                    " AND m.owner_id = $1 AND json_extract(m.metadata, '$.\"' || ${key} || '\"') = ${value}"
                ),
            });
        }
        sql.push_str(" ORDER BY m.created_at DESC, m.meeting_id LIMIT $2 OFFSET $3");
        // Only placeholders are added to the text; keys and values are bound.
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(user_id.to_string())
            .bind(i64::from(limit))
            .bind(i64::from(offset));
        for (key, value) in metadata {
            query = query.bind(key.as_str()).bind(value.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.meeting_from_row(r)).collect()
    }

    /// Moves a meeting to `status` unless it already ended or failed; returns whether it moved.
    /// Ending records the end time once.
    pub async fn set_meeting_status(
        &self,
        id: MeetingId,
        status: MeetingStatus,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE meetings SET status = $1, status_reason = $2, \
             end_time = CASE WHEN $1 IN ('ended', 'failed') THEN COALESCE(end_time, $3) \
                        ELSE end_time END \
             WHERE meeting_id = $4 AND status NOT IN ('ended', 'failed')",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(to_db_ms(now_ms))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Records that the meeting's bot stopped hearing audio at `since_ms`, or (`None`) that it
    /// hears it again.
    pub async fn set_capture_stalled(&self, id: MeetingId, since_ms: Option<u64>) -> Result<()> {
        sqlx::query("UPDATE meetings SET capture_stalled_at = $1 WHERE meeting_id = $2")
            .bind(since_ms.map(to_db_ms))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Scheduled meetings that start at or before `until_ms` (or have no start time).
    pub async fn due_meetings(&self, until_ms: u64) -> Result<Vec<Meeting>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE m.status = 'scheduled' \
              AND (m.start_time IS NULL OR m.start_time <= $1) ORDER BY m.start_time"
        ))
        .bind(to_db_ms(until_ms))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.meeting_from_row(r)).collect()
    }

    /// The Parley meetings waiting for a bot in Zoom meeting `number` (the digits of its `/j/`
    /// link), the one starting nearest `now_ms` first (a meeting without a start time counts
    /// from when it was made).
    pub async fn waiting_zoom_meetings(&self, number: &str, now_ms: u64) -> Result<Vec<Meeting>> {
        debug_assert!(number.bytes().all(|b| b.is_ascii_digit()));
        let rows = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings m WHERE m.platform = 'zoom' AND m.status = 'scheduled' \
              AND m.url LIKE $1"
        ))
        .bind(format!("%/j/{number}%"))
        .fetch_all(&self.pool)
        .await?;
        let mut meetings: Vec<Meeting> = rows
            .iter()
            .map(|r| self.meeting_from_row(r))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|m| zoom_number(m.url.as_str()).as_deref() == Some(number))
            .collect();
        meetings.sort_by_key(|m| m.start_time_ms.unwrap_or(m.created_at_ms).abs_diff(now_ms));
        Ok(meetings)
    }

    /// Takes a scheduled meeting for dispatch; only one caller wins.
    pub async fn claim_meeting(&self, id: MeetingId, now_ms: u64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE meetings SET status = 'joining', dispatched_at = $1 \
             WHERE meeting_id = $2 AND status = 'scheduled'",
        )
        .bind(to_db_ms(now_ms))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Puts a claimed meeting back for the next dispatch (its bot could not be queued).
    pub async fn unclaim_meeting(&self, id: MeetingId) -> Result<()> {
        sqlx::query(
            "UPDATE meetings SET status = 'scheduled', dispatched_at = NULL \
             WHERE meeting_id = $1 AND status = 'joining'",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the meeting's bot was queued, once: the first caller after a dispatch gets it (the
    /// ingest, when the bot is in the meeting, for join latency).
    pub async fn take_dispatched_at(&self, id: MeetingId) -> Result<Option<u64>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT dispatched_at FROM meetings WHERE meeting_id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(at) = at.flatten() else {
            return Ok(None);
        };
        let n = sqlx::query(
            "UPDATE meetings SET dispatched_at = NULL WHERE meeting_id = $1 AND dispatched_at = $2",
        )
        .bind(id.to_string())
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((n > 0).then(|| from_db_ms(at)))
    }

    /// How many of the user's meetings have a bot on its way or in them.
    pub async fn meetings_with_bots(&self, owner: Uuid) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM meetings WHERE owner_id = $1 \
             AND status IN ('joining', 'in_progress')",
        )
        .bind(owner.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub async fn invitees(&self, id: MeetingId) -> Result<Vec<EmailAddress>> {
        let rows =
            sqlx::query("SELECT email FROM meeting_invitees WHERE meeting_id = $1 ORDER BY email")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let e: String = r.try_get("email")?;
                EmailAddress::parse(&e).map_err(|_| corrupt("invitee email"))
            })
            .collect()
    }

    /// Records a speaker joining (or re-joining, with a possibly new display name).
    pub async fn participant_joined(
        &self,
        id: MeetingId,
        speaker_key: &str,
        display_name: &str,
        at_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO participants (meeting_id, speaker_key, display_name, joined_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id, speaker_key) DO UPDATE \
             SET display_name = excluded.display_name, left_ms = NULL, \
                 joined_ms = COALESCE(participants.joined_ms, excluded.joined_ms)",
        )
        .bind(id.to_string())
        .bind(speaker_key)
        .bind(display_name)
        .bind(to_db_ms(at_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn participant_left(
        &self,
        id: MeetingId,
        speaker_key: &str,
        at_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE participants SET left_ms = $1 WHERE meeting_id = $2 AND speaker_key = $3",
        )
        .bind(to_db_ms(at_ms))
        .bind(id.to_string())
        .bind(speaker_key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn participants(&self, id: MeetingId) -> Result<Vec<Participant>> {
        let rows = sqlx::query(
            "SELECT speaker_key, display_name, joined_ms, left_ms FROM participants \
             WHERE meeting_id = $1 ORDER BY joined_ms, speaker_key",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Participant {
                    speaker_key: r.try_get("speaker_key")?,
                    display_name: r.try_get("display_name")?,
                    joined_ms: r.try_get::<Option<i64>, _>("joined_ms")?.map(from_db_ms),
                    left_ms: r.try_get::<Option<i64>, _>("left_ms")?.map(from_db_ms),
                })
            })
            .collect()
    }
}

/// The meeting number of a Zoom link (`https://zoom.us/j/123456789?pwd=…`).
pub fn zoom_number(url: &str) -> Option<String> {
    let rest = url.split("/j/").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}
