//! `parley bench ingest`: how fast segment events go from the Redis stream into Postgres, and how
//! long each waits. Two phases on a fresh stream: draining a backlog (throughput), then a steady
//! publication rate (end-to-end lag, publication to commit). Uses `DATABASE_URL`/`REDIS_URL` when
//! set, else private throw-away servers.

use crate::servers::{bench_meeting, given_or_private, utterance_event};
use clap::Args;
use parley_bot::sink::redis::EVENT_FIELD;
use parley_orchestrator::ingest::{
    self,
    redis_source::{RedisIngestConfig, RedisSource},
};
use parley_orchestrator::live::LiveLog;
use parley_orchestrator::metrics::Metrics;
use parley_orchestrator::store::Store;
use parley_shared::MeetingId;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Events in the backlog phase (half partials, half finals).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Meetings the events are spread over (4 speakers each).
    #[arg(long, default_value_t = 20)]
    meetings: u64,
    /// Publication rate of the lag phase, events per second.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Length of the lag phase, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Postgres to write to [default: a private one].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis to read from [default: a private one].
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
}

/// Events in publication order: for each utterance a partial, then its final.
struct Generator {
    meetings: Vec<MeetingId>,
    next: u64,
}

impl Generator {
    fn event_json(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        let utterance = n / 2;
        let meeting = self.meetings[(utterance % self.meetings.len() as u64) as usize];
        let text = if n % 2 == 1 {
            "so we agreed to ship the search fix on friday and review the logo next week"
        } else {
            "so we agreed to ship the search fix"
        };
        let event = utterance_event(meeting, n, 1000, text.to_owned());
        serde_json::to_string(&event).unwrap_or_default()
    }
}

async fn publish(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    generator: &mut Generator,
    n: u64,
) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for _ in 0..n {
        pipe.xadd(stream, "*", &[(EVENT_FIELD, generator.event_json())])
            .ignore();
    }
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

async fn wait_for(metrics: &Metrics, events: u64, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics.ingest_events.load(Relaxed) < events {
        if Instant::now() > deadline {
            anyhow::bail!(
                "{what}: only {} of {events} events stored after 10 minutes",
                metrics.ingest_events.load(Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn start_ingest(
    source: RedisSource,
    store: &Store,
    live: &LiveLog,
) -> (
    Arc<Metrics>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let metrics = Arc::new(Metrics::default());
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(ingest::run(
        source,
        store.clone(),
        live.clone(),
        Arc::clone(&metrics),
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    (metrics, stop, task)
}

pub async fn run(args: BenchIngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events > 0 && args.meetings > 0 && args.rate > 0,
        "counts must be positive"
    );
    let servers = given_or_private(args.database_url.clone(), args.redis_url.clone()).await?;
    let redis_url = servers.redis_url.clone();
    let (store, owner) = servers.store_with_owner().await?;
    let mut meetings = Vec::new();
    for i in 0..args.meetings {
        let m = bench_meeting(&store, &owner, format!("bench {i}"), vec![]).await?;
        meetings.push(m.meeting_id);
    }
    let stream = format!("parley:bench:{}", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut generator = Generator { meetings, next: 0 };
    let mut config = RedisIngestConfig::new(&redis_url, "bench");
    config.stream = stream.clone();

    eprintln!("publishing a backlog of {} events...", args.events);
    let mut left = args.events;
    while left > 0 {
        let n = left.min(1000);
        publish(&mut conn, &stream, &mut generator, n).await?;
        left -= n;
    }
    eprintln!("draining it into Postgres...");
    let started = Instant::now();
    // Production ingest appends every stored segment to the live captions log as well.
    let live = LiveLog::redis(&redis_url).await?;
    let (backlog, stop, task) =
        start_ingest(RedisSource::connect(config.clone()).await?, &store, &live);
    wait_for(&backlog, args.events, "backlog").await?;
    let drain = started.elapsed();
    let _ = stop.send(true);
    task.await?;

    let total = args.rate * args.seconds;
    eprintln!(
        "publishing {} events/s for {} s and timing each to its commit...",
        args.rate, args.seconds
    );
    let (steady, stop, task) = start_ingest(RedisSource::connect(config).await?, &store, &live);
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate / 100).max(1);
    let mut published = 0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let publishing = Instant::now();
    while published < total {
        interval.tick().await;
        let n = per_tick.min(total - published);
        publish(&mut conn, &stream, &mut generator, n).await?;
        published += n;
    }
    let publish_s = publishing.elapsed().as_secs_f64();
    wait_for(&steady, total, "steady").await?;
    let _ = stop.send(true);
    task.await?;
    let _: () = redis::AsyncCommands::del(&mut conn, &stream).await?;

    let rows: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM transcriptions WHERE is_final")
            .fetch_one(store.pool())
            .await?,
        "n",
    )?;
    let batches = backlog.ingest_batches.load(Relaxed).max(1);
    let q = |m: &Metrics, p: f64| {
        m.lag_quantile_ms(p).map_or_else(
            || "-".to_owned(),
            |v| {
                if v == u64::MAX {
                    ">10000".to_owned()
                } else {
                    format!("≤{v}")
                }
            },
        )
    };
    println!("ingest: Redis stream → batched upserts → Postgres");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| backlog drained | {} events in {:.2} s |",
        args.events,
        drain.as_secs_f64()
    );
    println!(
        "| throughput | {:.0} events/s |",
        args.events as f64 / drain.as_secs_f64()
    );
    println!(
        "| mean batch | {:.0} events |",
        args.events as f64 / batches as f64
    );
    println!(
        "| steady rate | {:.0} events/s for {:.1} s |",
        total as f64 / publish_s,
        publish_s
    );
    println!("| lag p50 (publish → commit) | {} ms |", q(&steady, 0.5));
    println!("| lag p95 | {} ms |", q(&steady, 0.95));
    println!("| lag p99 | {} ms |", q(&steady, 0.99));
    println!("| final segments stored | {rows} |");
    store.close().await;
    Ok(())
}
