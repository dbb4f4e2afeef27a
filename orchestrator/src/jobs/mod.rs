//! After-meeting work from the `jobs` table: the summary job writes a meeting's summary and queues
//! one email job per recipient; each email job mails one recipient. Every replica runs workers;
//! a claim holds a job for the lease, failures retry with backoff, and every step is idempotent
//! (one summary per meeting, one email per recipient).

mod email_job;
mod summary_job;

use crate::clock::now_ms;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::{Job, JobKind, Store};
use crate::summary::Summarizer;
use lettre::message::Mailbox;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often an idle worker looks for due jobs.
const POLL: Duration = Duration::from_millis(250);

/// What the workers need.
#[derive(Debug)]
pub struct Context {
    pub store: Store,
    pub summarizer: Summarizer,
    pub mailer: Mailer,
    pub from: Mailbox,
    /// Base of the links in emails.
    pub public_url: Arc<str>,
    /// Where the bots' recordings are, if this server serves them (so emails may link to them,
    /// and `recording.ready` can list them).
    pub recordings: Option<parley_bot::connector::recorder::RecordingStore>,
    /// Whom summaries may be mailed to, and how many a day.
    pub mail_policy: Arc<crate::mail::policy::MailPolicy>,
    pub lease: Duration,
    pub metrics: Arc<Metrics>,
}

/// How a job went.
enum Outcome {
    Done,
    /// Try again later.
    Retry(String),
    /// Never going to work.
    Fail(String),
}

impl JobKind {
    fn max_attempts(self) -> u32 {
        match self {
            Self::Summary => 5,
            // Backoff up to ten minutes: about an hour and a half of SMTP outage.
            Self::Email => 14,
        }
    }
}

/// 5 s, doubling, at most ten minutes.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << attempts.saturating_sub(1).min(10)))
        .min(Duration::from_secs(600))
}

/// Runs jobs until `shutdown` resolves; a job in progress is finished first.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let claimed = ctx
            .store
            .claim_job(now_ms(), ctx.lease.as_millis() as u64)
            .await;
        let job = match claimed {
            Ok(Some(job)) => job,
            Ok(None) => {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(POLL) => continue,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs; retrying");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        let span =
            tracing::info_span!("job", meeting_id = %job.meeting_id, kind = job.kind.as_str());
        let outcome = with_lease(&ctx, &job).instrument(span).await;
        settle(&ctx, &job, outcome).await;
    }
}

/// Runs a job, renewing its lease while it runs (an LLM summary can outlast one lease), so only a
/// dead worker's job is taken over.
async fn with_lease(ctx: &Context, job: &Job) -> Outcome {
    let work = async {
        match job.kind {
            JobKind::Summary => summary_job::run(ctx, job).await,
            JobKind::Email => email_job::run(ctx, job).await,
        }
    };
    tokio::pin!(work);
    let mut renew = tokio::time::interval(ctx.lease / 3);
    renew.tick().await;
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = renew.tick() => {
                let until = now_ms() + ctx.lease.as_millis() as u64;
                if let Err(e) = ctx.store.extend_lease(job.job_id, until).await {
                    tracing::warn!(error = %e, "cannot renew a job's lease");
                }
            }
        }
    }
}

async fn settle(ctx: &Context, job: &Job, outcome: Outcome) {
    let store = &ctx.store;
    if !matches!(outcome, Outcome::Done) {
        ctx.metrics.jobs_failed.add(job.kind);
    }
    let now = now_ms();
    let kind = job.kind.as_str();
    let result = match outcome {
        Outcome::Done => store.finish_job(job.job_id, now).await,
        Outcome::Retry(error) if job.attempts < job.kind.max_attempts() => {
            let wait = backoff(job.attempts);
            tracing::warn!(meeting_id = %job.meeting_id, kind, attempts = job.attempts, retry_in_s = wait.as_secs(), error, "job failed; will retry");
            store
                .retry_job(job.job_id, now + wait.as_millis() as u64, &error, now)
                .await
        }
        Outcome::Retry(error) | Outcome::Fail(error) => {
            ctx.metrics.jobs_dead.add(job.kind);
            tracing::error!(meeting_id = %job.meeting_id, kind, attempts = job.attempts, error, "job failed for good");
            store.fail_job(job.job_id, &error, now).await
        }
    };
    // The lease runs out and the job runs again: idempotent, so only late.
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record a job's outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_ten_minutes() {
        let waits: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
    }
}
