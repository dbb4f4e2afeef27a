//! Meeting summaries: one per meeting, written once by the summary job, and who receives it.

use super::{Result, Store, from_db_ms, to_db_ms};
use parley_shared::{EmailAddress, MeetingId};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub generated_at_ms: u64,
    pub summary_text: String,
    /// JSON arrays as stored.
    pub highlights: serde_json::Value,
    pub action_items: serde_json::Value,
    pub open_questions: serde_json::Value,
    /// `builtin` or `llm:MODEL`.
    pub model: String,
    /// Why the configured LLM's summary was not used.
    pub fallback_reason: Option<String>,
}

impl Store {
    pub async fn summary(&self, id: MeetingId) -> Result<Option<Summary>> {
        let row = sqlx::query(
            "SELECT generated_at, summary_text, highlights, action_items, open_questions, model, \
             fallback_reason FROM summaries WHERE meeting_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let json = |col: &str| -> Result<serde_json::Value> {
                let s: String = r.try_get(col)?;
                serde_json::from_str(&s).map_err(|_| super::corrupt(format!("summary {col}")))
            };
            Ok(Summary {
                generated_at_ms: from_db_ms(r.try_get("generated_at")?),
                summary_text: r.try_get("summary_text")?,
                highlights: json("highlights")?,
                action_items: json("action_items")?,
                open_questions: json("open_questions")?,
                model: r.try_get("model")?,
                fallback_reason: r.try_get("fallback_reason")?,
            })
        })
        .transpose()
    }

    /// Stores a meeting's summary unless it has one: a job that runs twice keeps the first.
    pub async fn insert_summary(&self, id: MeetingId, summary: &Summary) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO summaries (summary_id, meeting_id, generated_at, summary_text, highlights, \
             action_items, open_questions, model, fallback_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (meeting_id) DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(id.to_string())
        .bind(to_db_ms(summary.generated_at_ms))
        .bind(&summary.summary_text)
        .bind(summary.highlights.to_string())
        .bind(summary.action_items.to_string())
        .bind(summary.open_questions.to_string())
        .bind(&summary.model)
        .bind(summary.fallback_reason.as_deref())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Who may get the meeting's summary: its owner, its invitees and the accounts that took
    /// part, each with whether the address belongs to a verified account.
    pub async fn summary_recipients(&self, id: MeetingId) -> Result<Vec<(EmailAddress, bool)>> {
        let verified = "CASE WHEN u.email_verified_at IS NULL THEN 0 ELSE 1 END AS verified";
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT u.email AS email, {verified} FROM meetings m \
             JOIN users u ON u.user_id = m.owner_id WHERE m.meeting_id = $1 \
             UNION SELECT i.email AS email, {verified} FROM meeting_invitees i \
             LEFT JOIN users u ON u.email = i.email WHERE i.meeting_id = $1 \
             UNION SELECT u.email AS email, {verified} FROM participants p \
             JOIN users u ON u.user_id = p.user_id WHERE p.meeting_id = $1"
        )))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(EmailAddress, bool)> = Vec::new();
        for r in &rows {
            let Ok(email) = EmailAddress::parse(&r.try_get::<String, _>("email")?) else {
                continue;
            };
            let verified = r.try_get::<i64, _>("verified")? != 0;
            match out.iter_mut().find(|(e, _)| *e == email) {
                Some((_, v)) => *v |= verified,
                None => out.push((email, verified)),
            }
        }
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(out)
    }

    /// Summary mails queued since `since_ms` for `owner`'s meetings other than `except` (whose
    /// own mails, when its summary job runs again, are the same mails, not more).
    pub async fn mails_queued_since(
        &self,
        owner: Uuid,
        since_ms: u64,
        except: MeetingId,
    ) -> Result<u64> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs j JOIN meetings m ON m.meeting_id = j.meeting_id \
             WHERE j.kind = 'email' AND m.owner_id = $1 AND j.created_at > $2 \
             AND j.meeting_id <> $3",
        )
        .bind(owner.to_string())
        .bind(to_db_ms(since_ms))
        .bind(except.to_string())
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok(from_db_ms(n))
    }
}
