//! The summary job: summarise the meeting's final transcript (once), then queue its emails.

use super::{Context, Outcome};
use crate::clock::now_ms;
use crate::mail::policy::QUOTA_WINDOW;
use crate::store::{EventType, JobKind, Meeting, Summary};
use crate::summary::{Line, SummaryInput};
use crate::webhooks::{self, Outgoing};
use serde_json::json;
use time::OffsetDateTime;

pub(super) async fn run(ctx: &Context, job: &crate::store::Job) -> Outcome {
    match summarise(ctx, job).await {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Retry(format!("{e:#}")),
    }
}

/// The meeting's day (UTC), for deadlines such as "by Thursday".
pub(super) fn meeting_day(m: &Meeting) -> Option<time::Date> {
    let ms = m.start_time_ms.unwrap_or(m.created_at_ms);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(OffsetDateTime::date)
}

async fn summarise(ctx: &Context, job: &crate::store::Job) -> anyhow::Result<()> {
    let id = job.meeting_id;
    let Some(meeting) = ctx.store.meeting(id).await? else {
        return Ok(());
    };
    if ctx.store.summary(id).await?.is_none() {
        let segments = ctx.store.segments(id, false).await?;
        let duration_ms = segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
        let input = SummaryInput {
            title: meeting.title.clone(),
            day: meeting_day(&meeting),
            duration_ms,
            lines: segments
                .into_iter()
                .map(|s| Line {
                    segment_id: s.segment_id,
                    speaker: s.speaker_name,
                    start_ms: s.start_ms,
                    text: s.text,
                })
                .collect(),
        };
        let produced = ctx.summarizer.summarize(&input).await;
        let s = &produced.summary;
        let stored = Summary {
            generated_at_ms: now_ms(),
            summary_text: s.summary.clone(),
            highlights: serde_json::to_value(&s.highlights)?,
            action_items: serde_json::to_value(&s.action_items)?,
            open_questions: serde_json::to_value(&s.open_questions)?,
            model: produced.summarizer.clone(),
            fallback_reason: produced.fallback_reason.clone(),
        };
        if ctx.store.insert_summary(id, &stored).await? {
            tracing::info!(meeting_id = %id, summarizer = produced.summarizer, action_items = s.action_items.len(), "summary written");
        }
    }
    tell_webhooks(ctx, &meeting).await?;
    let now = now_ms();
    let policy = &ctx.mail_policy;
    let (allowed, refused): (Vec<_>, Vec<_>) = ctx
        .store
        .summary_recipients(id)
        .await?
        .into_iter()
        .partition(|(to, verified)| policy.may_mail(to, *verified));
    let sent_today = ctx
        .store
        .mails_queued_since(
            meeting.owner_id,
            now.saturating_sub(QUOTA_WINDOW.as_millis() as u64),
            id,
        )
        .await?;
    let room = u64::from(policy.quotas.mails_per_day).saturating_sub(sent_today);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if !refused.is_empty() || allowed.len() > room {
        tracing::warn!(
            meeting_id = %id,
            unverified = refused.len(),
            over_quota = allowed.len().saturating_sub(room),
            "summary not mailed to some recipients: addresses no account verified outside \
             PARLEY_ALLOWED_EMAIL_DOMAINS, or the owner's PARLEY_MAILS_PER_DAY spent"
        );
    }
    for (to, _) in allowed.iter().take(room) {
        ctx.store
            .enqueue_job(JobKind::Email, id, to.as_str(), now, now)
            .await?;
    }
    Ok(())
}

/// `meeting.ended` (a no-op when the bot's was queued: a bot that died on its way out sent
/// none), `recording.ready` when the meeting has recordings, and `summary.ready`.
async fn tell_webhooks(ctx: &Context, meeting: &Meeting) -> anyhow::Result<()> {
    let id = meeting.meeting_id;
    let Some(summary) = ctx.store.summary(id).await? else {
        return Ok(());
    };
    let mut events = vec![Outgoing::ended(None)];
    if let Some(recordings) = ctx.recordings.as_ref().filter(|_| meeting.record) {
        let names: Vec<String> = recordings
            .list(id)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list recordings: {e}"))?
            .iter()
            .filter_map(|full| full.rsplit('/').next().map(str::to_owned))
            .collect();
        if !names.is_empty() {
            events.push(Outgoing::once(
                EventType::RecordingReady,
                json!({ "recordings": names }),
            ));
        }
    }
    events.push(Outgoing::once(
        EventType::SummaryReady,
        json!({ "summary": {
            "summary": summary.summary_text,
            "highlights": summary.highlights,
            "action_items": summary.action_items,
            "open_questions": summary.open_questions,
            "model": summary.model,
        }}),
    ));
    webhooks::emit(&ctx.store, id, &events, now_ms()).await?;
    Ok(())
}
