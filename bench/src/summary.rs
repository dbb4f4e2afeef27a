//! `parley bench summary`: how long after a meeting ends its summary emails are out. Runs the
//! server in production mode (Postgres, Redis, built-in summarizer, emails to its outbox), plays
//! a transcript for each meeting through Redis as a bot would, publishes `meeting_ended`, and
//! times the end to the stored summary and to the last of its three emails. Also times the
//! built-in summarizer alone on a long meeting.

use crate::servers::{bench_meeting, given_or_private};
use anyhow::Context;
use clap::Args;
use parley_bot::sink::redis::EVENT_FIELD;
use parley_orchestrator::summary::{Line, Summarizer, SummaryInput};
use parley_shared::{EmailAddress, Event, EventBody, Segment, SegmentId, Speaker, SpeakerKey};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchSummaryArgs {
    /// Meetings ended one after another.
    #[arg(long, default_value_t = 10)]
    meetings: usize,
    /// Folder with the reference.json whose utterances make each meeting's transcript.
    #[arg(long, default_value = "testdata/meeting-dev")]
    transcript: PathBuf,
    /// Minutes of meeting for the summarizer-alone timing (the transcript repeated).
    #[arg(long, default_value_t = 60)]
    long_minutes: u64,
    /// Postgres for the server [default: a private one].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis for the server [default: a private one].
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
}

/// (speaker key, name, start ms, text) per utterance.
fn utterances(dir: &Path) -> anyhow::Result<Vec<(String, String, u64, String)>> {
    let path = dir.join("reference.json");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let name = |key: &str| {
        reference["speakers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["key"] == key)
            .and_then(|s| s["name"].as_str())
            .unwrap_or(key)
            .to_owned()
    };
    reference["utterances"]
        .as_array()
        .context("reference.json has no utterances")?
        .iter()
        .map(|u| {
            let key = u["speaker"].as_str().context("utterance without speaker")?;
            Ok((
                key.to_owned(),
                name(key),
                u["start_ms"].as_u64().unwrap_or(0),
                u["text"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn emails_in(outbox: &Path) -> usize {
    std::fs::read_dir(outbox)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

pub async fn run(args: BenchSummaryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.meetings > 0, "--meetings must be positive");
    let talk = utterances(&args.transcript)?;
    let servers = given_or_private(args.database_url.clone(), args.redis_url.clone()).await?;
    let (store, owner) = servers.store_with_owner().await?;
    let server = servers.serve().await?;
    let outbox = server.data_dir.path().join("outbox");
    let client = redis::Client::open(servers.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut to_summary = Vec::new();
    let mut to_email = Vec::new();
    eprintln!(
        "ending {} meetings of {} utterances each...",
        args.meetings,
        talk.len()
    );
    for i in 0..args.meetings {
        let invitees = vec![
            EmailAddress::parse("ana@example.com")?,
            EmailAddress::parse("ben@example.com")?,
        ];
        let meeting = bench_meeting(&store, &owner, format!("bench meeting {i}"), invitees).await?;
        let id = meeting.meeting_id;
        let mut events = Vec::new();
        for (n, (key, name, start_ms, text)) in talk.iter().enumerate() {
            let key = SpeakerKey::parse(key)?;
            events.push(Event::new(
                id,
                n as u64,
                EventBody::Segment(Segment {
                    segment_id: SegmentId::derive(id, &key, *start_ms),
                    speaker: Speaker {
                        key,
                        name: name.clone(),
                    },
                    start_ms: *start_ms,
                    end_ms: start_ms + 2000,
                    text: text.clone(),
                    is_final: true,
                }),
            ));
        }
        let mut pipe = redis::pipe();
        for e in &events {
            pipe.xadd(
                &server.stream,
                "*",
                &[(EVENT_FIELD, serde_json::to_string(e)?)],
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        let before = emails_in(&outbox);
        let ended = Event::new(
            id,
            events.len() as u64,
            EventBody::MeetingEnded { at_ms: 0 },
        );
        let started = Instant::now();
        let _: String = redis::cmd("XADD")
            .arg(&server.stream)
            .arg("*")
            .arg(EVENT_FIELD)
            .arg(serde_json::to_string(&ended)?)
            .query_async(&mut conn)
            .await?;
        let deadline = started + Duration::from_secs(60);
        let mut summary_at = None;
        loop {
            if summary_at.is_none() && store.summary(id).await?.is_some() {
                summary_at = Some(started.elapsed());
            }
            if emails_in(&outbox) >= before + 3 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "meeting {i}: no emails 60 s after its end"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let done = started.elapsed();
        to_summary.push(summary_at.unwrap_or(done).as_secs_f64());
        to_email.push(done.as_secs_f64());
    }
    server.stop().await?;
    store.close().await;

    // The summarizer alone on a long meeting: the transcript repeated to `long_minutes`.
    let span = talk.iter().map(|t| t.2).max().unwrap_or(0) + 5_000;
    let repeats = (args.long_minutes * 60_000).div_ceil(span.max(1));
    let lines: Vec<Line> = (0..repeats)
        .flat_map(|r| {
            talk.iter().map(move |(_, name, start, text)| Line {
                segment_id: uuid::Uuid::new_v4(),
                speaker: name.clone(),
                start_ms: r * span + start,
                text: text.clone(),
            })
        })
        .collect();
    let input = SummaryInput {
        title: "long meeting".to_owned(),
        day: None,
        duration_ms: repeats * span,
        lines,
    };
    let started = Instant::now();
    let produced = Summarizer::Builtin.summarize(&input).await;
    let long_ms = started.elapsed().as_secs_f64() * 1000.0;

    to_summary.sort_by(f64::total_cmp);
    to_email.sort_by(f64::total_cmp);
    println!();
    println!("| meetings | utterances | end -> summary p50 / max | end -> 3 emails p50 / max |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {:.2} s / {:.2} s | {:.2} s / {:.2} s |",
        args.meetings,
        talk.len(),
        pct(&to_summary, 0.5),
        pct(&to_summary, 1.0),
        pct(&to_email, 0.5),
        pct(&to_email, 1.0),
    );
    println!();
    println!(
        "built-in summarizer alone, {} min meeting ({} utterances): {long_ms:.1} ms, {} action items",
        args.long_minutes,
        input.lines.len(),
        produced.summary.action_items.len()
    );
    Ok(())
}
