//! The job queue of after-meeting work. Workers on any replica claim due jobs with a lease
//! (`FOR UPDATE SKIP LOCKED` on Postgres; SQLite has one writer at a time); a job whose lease ran
//! out (its worker died) is claimed again.

use super::{Backend, Result, Store, corrupt, to_db_ms};
use parley_shared::MeetingId;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Write the meeting's summary, then queue its emails.
    Summary,
    /// Mail the summary to one recipient.
    Email,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Summary => "summary",
            Self::Email => "email",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub meeting_id: MeetingId,
    /// The address of an email job; empty otherwise.
    pub recipient: String,
    /// Including this one.
    pub attempts: u32,
}

/// A job's state, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub kind: String,
    pub recipient: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl Store {
    /// Queues a job to run at `run_at_ms`, once: a job already queued runs at the earlier of the
    /// two times; one already running or finished is left alone.
    pub async fn enqueue_job(
        &self,
        kind: JobKind,
        meeting: MeetingId,
        recipient: &str,
        run_at_ms: u64,
        now_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (job_id, kind, meeting_id, recipient, state, run_at, created_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5, $6) \
             ON CONFLICT (kind, meeting_id, recipient) DO UPDATE SET \
             run_at = CASE WHEN excluded.run_at < jobs.run_at THEN excluded.run_at ELSE jobs.run_at END \
             WHERE jobs.state = 'queued'",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(kind.as_str())
        .bind(meeting.to_string())
        .bind(recipient)
        .bind(to_db_ms(run_at_ms))
        .bind(to_db_ms(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the most overdue job, if any, for `lease_ms`.
    pub async fn claim_job(&self, now_ms: u64, lease_ms: u64) -> Result<Option<Job>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let due =
            "((state = 'queued' AND run_at <= $2) OR (state = 'running' AND locked_until < $2))";
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $1 \
             WHERE job_id = (SELECT job_id FROM jobs WHERE {due} ORDER BY run_at LIMIT 1{lock}) \
             AND {due} RETURNING job_id, kind, meeting_id, recipient, attempts"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(to_db_ms(now_ms + lease_ms))
            .bind(to_db_ms(now_ms))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let id: String = r.try_get("job_id")?;
            let kind: String = r.try_get("kind")?;
            let meeting: String = r.try_get("meeting_id")?;
            Ok(Job {
                job_id: Uuid::parse_str(&id).map_err(|_| corrupt("job id"))?,
                kind: match kind.as_str() {
                    "summary" => JobKind::Summary,
                    "email" => JobKind::Email,
                    _ => return Err(corrupt("job kind")),
                },
                meeting_id: MeetingId::parse(&meeting).map_err(|_| corrupt("job meeting"))?,
                recipient: r.try_get("recipient")?,
                attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            })
        })
        .transpose()
    }

    /// Keeps a running job's claim while its worker is alive.
    pub async fn extend_lease(&self, id: Uuid, until_ms: u64) -> Result<()> {
        sqlx::query("UPDATE jobs SET locked_until = $1 WHERE job_id = $2 AND state = 'running'")
            .bind(to_db_ms(until_ms))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn finish_job(&self, id: Uuid, now_ms: u64) -> Result<()> {
        self.settle_job(id, "done", None, None, now_ms).await
    }

    /// Puts a job back in the queue for another attempt at `run_at_ms`.
    pub async fn retry_job(
        &self,
        id: Uuid,
        run_at_ms: u64,
        error: &str,
        now_ms: u64,
    ) -> Result<()> {
        self.settle_job(id, "queued", Some(run_at_ms), Some(error), now_ms)
            .await
    }

    /// Gives up on a job.
    pub async fn fail_job(&self, id: Uuid, error: &str, now_ms: u64) -> Result<()> {
        self.settle_job(id, "failed", None, Some(error), now_ms)
            .await
    }

    async fn settle_job(
        &self,
        id: Uuid,
        state: &str,
        run_at_ms: Option<u64>,
        error: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = $1, locked_until = NULL, run_at = COALESCE($2, run_at), \
             last_error = COALESCE($3, last_error), \
             finished_at = CASE WHEN $1 IN ('done', 'failed') THEN $4 ELSE NULL END \
             WHERE job_id = $5",
        )
        .bind(state)
        .bind(run_at_ms.map(to_db_ms))
        .bind(error)
        .bind(to_db_ms(now_ms))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A meeting's jobs, oldest first.
    pub async fn jobs_of(&self, meeting: MeetingId) -> Result<Vec<JobState>> {
        let rows = sqlx::query(
            "SELECT kind, recipient, state, attempts, last_error FROM jobs WHERE meeting_id = $1 \
             ORDER BY created_at, kind, recipient",
        )
        .bind(meeting.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobState {
                    kind: r.try_get("kind")?,
                    recipient: r.try_get("recipient")?,
                    state: r.try_get("state")?,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }
}
