//! `parley bench captions`: how late live captions reach their viewers, and what each viewer
//! costs the server. Runs the real server in production mode (Postgres, Redis) on a private
//! port, connects `--viewers` sockets to one meeting's share link from a child process (so the
//! server's memory is its own), publishes segment events the way bots do, and reports the delay
//! from publication to arrival at each viewer's socket.

use crate::servers::{bench_meeting, given_or_private, utterance_event};
use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use parley_bot::sink::redis::EVENT_FIELD;
use parley_orchestrator::live::share_link;
use parley_shared::MeetingId;
use parley_testkit::procstat;
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Args)]
pub struct BenchCaptionsArgs {
    /// Viewers watching the meeting's captions.
    #[arg(long, default_value_t = 500)]
    viewers: usize,
    /// Segment events published per second (a lively 4-speaker meeting makes about 8).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Seconds of publication.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Postgres for the server [default: a private one].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis for the server [default: a private one].
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Internal: run as the viewers' process, connected to this socket URL.
    #[arg(long, hide = true)]
    viewers_of: Option<String>,
    /// Internal: segments each viewer waits for.
    #[arg(long, hide = true, default_value_t = 0)]
    expect: usize,
}

/// What the viewers' process reports.
#[derive(Debug, Serialize, Deserialize)]
struct ViewerReport {
    delivered: usize,
    expected: usize,
    /// Publication-to-arrival delays in microseconds, sorted.
    delays_us: Vec<u64>,
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A generated segment event with its publication time in the text.
fn event(meeting: MeetingId, n: u64) -> anyhow::Result<String> {
    let text = format!("t{} we agreed to ship the search fix on friday", epoch_us());
    Ok(serde_json::to_string(&utterance_event(
        meeting, n, 3000, text,
    ))?)
}

pub async fn run(args: BenchCaptionsArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.viewers_of {
        return watch(url, args.viewers, args.expect).await;
    }
    anyhow::ensure!(
        args.viewers > 0 && args.rate > 0 && args.seconds > 0,
        "counts must be positive"
    );
    let servers = given_or_private(args.database_url.clone(), args.redis_url.clone()).await?;
    let (store, owner) = servers.store_with_owner().await?;
    let meeting = bench_meeting(&store, &owner, "captions bench".to_owned(), vec![]).await?;
    let token = meeting
        .share_token
        .clone()
        .context("new meetings have a link")?;

    let server = servers.serve().await?;
    let (base, stream) = (server.base.clone(), server.stream.clone());
    let ws = format!(
        "{}/ws",
        share_link(&base, &token).replacen("http://", "ws://", 1)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = procstat::rss_bytes().unwrap_or(0);

    let events = args.rate * args.seconds;
    eprintln!("connecting {} viewers...", args.viewers);
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "captions", "--viewers", &args.viewers.to_string()])
        .args(["--viewers-of", &ws, "--expect", &events.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the viewers' process")?;
    let mut out = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    match out.next_line().await? {
        Some(l) if l == "ready" => {}
        other => anyhow::bail!("the viewers' process did not get ready: {other:?}"),
    }
    let rss_viewers = procstat::rss_bytes().unwrap_or(0);
    let cpu_before = procstat::cpu_seconds().unwrap_or(0.0);

    eprintln!(
        "publishing {events} segments at {}/s for {} s...",
        args.rate, args.seconds
    );
    let client = redis::Client::open(servers.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate));
    for n in 0..events {
        tick.tick().await;
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(EVENT_FIELD)
            .arg(event(meeting.meeting_id, n)?)
            .query_async(&mut conn)
            .await?;
    }
    let report: ViewerReport = match out.next_line().await? {
        Some(l) => serde_json::from_str(&l).context("the viewers' report")?,
        None => anyhow::bail!("the viewers' process ended without a report"),
    };
    let cpu = procstat::cpu_seconds().unwrap_or(0.0) - cpu_before;
    let rss_peak = procstat::peak_rss_bytes().unwrap_or(0);
    let _ = child.wait().await;
    server.stop().await?;
    store.close().await;

    let pct = |p: f64| -> f64 {
        let d = &report.delays_us;
        if d.is_empty() {
            return f64::NAN;
        }
        d[((d.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    let per_viewer_kib =
        rss_viewers.saturating_sub(rss_before) as f64 / args.viewers as f64 / 1024.0;
    println!();
    println!(
        "| viewers | events/s | delivered | p50 ms | p95 ms | p99 ms | max ms | server RSS per viewer | server CPU | server peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {}/{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} KiB | {:.0} % of a core | {:.0} MiB |",
        args.viewers,
        args.rate,
        report.delivered,
        report.expected,
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0),
        per_viewer_kib,
        cpu / args.seconds as f64 * 100.0,
        rss_peak as f64 / (1 << 20) as f64,
    );
    println!();
    println!(
        "delay: bot publishes to Redis -> ingest stores in Postgres -> live log -> hub -> viewer socket \
         (read by a separate process on the same machine)"
    );
    anyhow::ensure!(
        report.delivered == report.expected,
        "{} of {} segment messages never arrived",
        report.expected - report.delivered,
        report.expected
    );
    Ok(())
}

/// The viewers' process: connects `viewers` sockets, says `ready`, then records when each
/// segment message arrives until every viewer has `expect` of them (or a minute passes
/// without progress), and prints a [`ViewerReport`] line.
async fn watch(url: &str, viewers: usize, expect: usize) -> anyhow::Result<()> {
    let mut sockets = Vec::with_capacity(viewers);
    for _ in 0..viewers {
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("viewer cannot connect")?;
        // The meeting message and the snapshot: the subscription exists once they arrived.
        for _ in 0..2 {
            socket.next().await.context("socket closed early")??;
        }
        sockets.push(socket);
    }
    println!("ready");
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut delays = Vec::with_capacity(expect);
                while delays.len() < expect {
                    let Ok(Some(Ok(msg))) =
                        tokio::time::timeout(Duration::from_secs(60), socket.next()).await
                    else {
                        break;
                    };
                    let now = epoch_us();
                    let Ok(text) = msg.to_text() else { continue };
                    if let Some(sent) = published_at(text) {
                        delays.push(now.saturating_sub(sent));
                    }
                }
                delays
            })
        })
        .collect();
    let mut delays_us = Vec::new();
    for t in tasks {
        delays_us.extend(t.await?);
    }
    delays_us.sort_unstable();
    let report = ViewerReport {
        delivered: delays_us.len(),
        expected: expect * viewers,
        delays_us,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The publication time a bench segment carries in its text (`"text":"t<µs> …"`).
fn published_at(message: &str) -> Option<u64> {
    let start = message.find(r#""text":"t"#)? + r#""text":"t"#.len();
    let digits: String = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
