//! The email job: mail the stored summary to one recipient.

use super::summary_job::meeting_day;
use super::{Context, Outcome};
use crate::live::share_link;
use crate::mail::SendError;
use crate::mail::render::SummaryEmail;
use crate::store::{Job, ShareScope};
use crate::summary::MeetingSummary;
use lettre::message::Mailbox;

pub(super) async fn run(ctx: &Context, job: &Job) -> Outcome {
    let to: Mailbox = match job.recipient.parse() {
        Ok(to) => to,
        Err(e) => return Outcome::Fail(format!("not an address: {e}")),
    };
    let message = match compose(ctx, job, to).await {
        Ok(Some(m)) => m,
        Ok(None) => return Outcome::Done,
        Err(e) => return Outcome::Retry(format!("{e:#}")),
    };
    match ctx.mailer.send(message).await {
        Ok(place) => {
            tracing::info!(meeting_id = %job.meeting_id, to = %place, "summary email sent");
            Outcome::Done
        }
        Err(SendError::Permanent(e)) => Outcome::Fail(e),
        Err(SendError::Transient(e)) => Outcome::Retry(e),
    }
}

/// The message, or `None` when the meeting is gone.
async fn compose(ctx: &Context, job: &Job, to: Mailbox) -> anyhow::Result<Option<lettre::Message>> {
    let id = job.meeting_id;
    let Some(meeting) = ctx.store.meeting(id).await? else {
        return Ok(None);
    };
    let stored = ctx
        .store
        .summary(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the meeting has no summary yet"))?;
    let summary = MeetingSummary {
        summary: stored.summary_text,
        highlights: serde_json::from_value(stored.highlights)?,
        action_items: serde_json::from_value(stored.action_items)?,
        open_questions: serde_json::from_value(stored.open_questions)?,
    };
    let segments = ctx.store.segments(id, false).await?;
    let mut participants: Vec<String> = Vec::new();
    for s in &segments {
        if !participants.contains(&s.speaker_name) {
            participants.push(s.speaker_name.clone());
        }
    }
    let duration_min = segments
        .iter()
        .map(|s| s.end_ms)
        .max()
        .unwrap_or(0)
        .div_ceil(60_000);
    let start_ms = meeting.start_time_ms.unwrap_or(meeting.created_at_ms);
    let when = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_ms) * 1_000_000)
        .ok()
        .map_or_else(
            || {
                meeting_day(&meeting)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            },
            |t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()),
        );
    let email = SummaryEmail {
        title: &meeting.title,
        when,
        duration: format!("{duration_min} min"),
        participants,
        summary: &summary,
        transcript_link: meeting
            .share_token
            .as_ref()
            .map(|t| share_link(&ctx.public_url, t)),
        // On the captions page, when the owner shares recordings there; otherwise only the
        // API (for accounts that may see the meeting) serves them.
        recording: meeting
            .share_token
            .as_ref()
            .filter(|_| {
                meeting.record && ctx.recordings.is_some() && meeting.share_scope >= ShareScope::All
            })
            .map(|t| format!("{}#recordings", share_link(&ctx.public_url, t))),
    };
    Ok(Some(email.message(&ctx.from, to)?))
}
