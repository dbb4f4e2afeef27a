//! The `parley-bot` command line: join one meeting and publish its transcript events to a
//! JSON-lines file (standalone) or the Redis stream (with an orchestrator).

pub mod flags;

use crate::connector::open::AnyConnector;
use crate::fleet::redis_queue::RedisQueue;
use crate::fleet::worker::{Worker, WorkerConfig, default_max_meetings};
use crate::fleet::{AnyQueue, DEFAULT_ASSIGNMENTS_STREAM};
use crate::pipeline::{PipelineConfig, run_meeting};
use crate::sink::any::{AnySink, Bus};
use crate::sink::jsonl::JsonlSink;
use crate::sink::redis::{DEFAULT_STREAM, RedisSink};
use anyhow::Context;
use clap::{Parser, Subcommand};
use flags::BotFlags;
use parley_shared::{MeetingId, MeetingLink};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "parley-bot",
    version,
    about = "Parley meeting bot: joins a meeting and transcribes each participant's own audio track"
)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join a meeting until it ends or SIGINT/SIGTERM, then finish every utterance in progress
    /// and flush.
    Join(JoinArgs),
    /// Serve the fleet: load the model once, then join the meetings the orchestrator assigns
    /// (Redis stream `parley:assignments`), up to --max-meetings at once, all decoded by one
    /// shared pool, heart-beating in each. It takes no further meeting while its decoding is
    /// behind. On SIGINT/SIGTERM the meetings in progress are handed to other workers.
    Worker(WorkerArgs),
}

#[derive(Debug, clap::Args)]
struct WorkerArgs {
    /// The Redis the orchestrator uses.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: String,
    /// Redis stream of assignments.
    #[arg(long, env = "PARLEY_ASSIGNMENTS_STREAM", default_value = DEFAULT_ASSIGNMENTS_STREAM)]
    assignments_stream: String,
    /// Redis stream for events.
    #[arg(long, env = "PARLEY_EVENTS_STREAM", default_value = DEFAULT_STREAM)]
    events_stream: String,
    /// This worker's name in the fleet (Kubernetes: the pod name) [default: HOST-PID].
    #[arg(long, env = "PARLEY_WORKER_ID")]
    worker_id: Option<String>,
    /// Meetings served at once (by default two per CPU core).
    #[arg(long, env = "PARLEY_MAX_MEETINGS", default_value_t = default_max_meetings())]
    max_meetings: usize,
    /// Leave as on SIGTERM (handing the meetings over) once process PID is no longer this
    /// worker's parent. `parley serve --launcher process` sets it, so its workers never outlive
    /// it, even when it is killed.
    #[arg(long, env = "PARLEY_PARENT_PID", value_name = "PID")]
    parent_pid: Option<u32>,
    #[command(flatten)]
    bot: BotFlags,
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The meeting link: janus+ws://HOST:PORT/?room=ROOM, livekit+wss://HOST?room=ROOM,
    /// https://meet.google.com/CODE (Google credentials below), zoom-rtms:?server=…&meeting_uuid=…&stream=…
    /// (as the orchestrator builds it from Zoom's webhook), or replay:FOLDER.
    url: String,
    /// Write every event as a JSON line to this file (appending).
    #[arg(long, required_unless_present = "redis_url")]
    out: Option<PathBuf>,
    /// Publish events to this Redis instead (production, with an orchestrator).
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        conflicts_with = "out"
    )]
    redis_url: Option<String>,
    /// Redis stream for events.
    #[arg(long, env = "PARLEY_EVENTS_STREAM", default_value = DEFAULT_STREAM)]
    events_stream: String,
    /// The orchestrator's id of this meeting [default: a new random id].
    #[arg(long)]
    meeting_id: Option<String>,
    #[command(flatten)]
    bot: BotFlags,
}

/// The shutdown signal (its handlers installed now), announced: leaving takes a moment while
/// utterances finish.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let signal = crate::telemetry::shutdown_signal();
    async move {
        signal.await;
        eprintln!("parley-bot: leaving (finishing the utterances in progress)");
    }
}

/// Resolves once `parent` is no longer this process's parent (it exited and this process was
/// handed to another); never without a parent to watch. The parent is asked rather than told:
/// a parent killed outright tells nobody.
fn orphaned(parent: Option<u32>) -> impl Future<Output = ()> + Send + 'static {
    /// How long a worker may outlive its parent.
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    async move {
        let Some(parent) = parent else {
            return std::future::pending().await;
        };
        loop {
            if std::os::unix::process::parent_id() != parent {
                return;
            }
            tokio::time::sleep(EVERY).await;
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Join(args) => join(args).await,
        Command::Worker(args) => worker(args).await,
    }
}

async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let signal = shutdown_signal();
    let orphaned = orphaned(args.parent_pid);
    let queue = RedisQueue::connect(&args.redis_url, &args.assignments_stream)
        .await
        .context("cannot connect to Redis")?;
    let bot = args.bot.config()?;
    let worker_id = args.worker_id.unwrap_or_else(WorkerConfig::default_id);
    // Said before the model loads, so whoever started the worker sees what it was given.
    eprintln!("parley-bot: worker {worker_id} starting with {bot:?}");
    let asr = Arc::new(bot.asr.load_pool().await?);
    let config = WorkerConfig {
        worker_id,
        max_meetings: args.max_meetings,
        pipeline: PipelineConfig {
            transcriber: bot.asr.transcriber(true),
            ..PipelineConfig::default()
        },
        connector: bot.connector,
    };
    eprintln!(
        "parley-bot: worker {} ready with model {}",
        config.worker_id,
        asr.path.display()
    );
    let bus = Bus::Redis {
        url: args.redis_url,
        stream: args.events_stream,
    };
    let (_retire_tx, retire) = watch::channel(false);
    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = signal => {}
            () = orphaned => eprintln!("parley-bot: the process that started this worker is gone; leaving"),
        }
        let _ = shutdown_tx.send(true);
    });
    Worker::new(AnyQueue::Redis(queue), asr, bus, config)
        .run(retire, shutdown)
        .await;
    Ok(())
}

async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let signal = shutdown_signal();
    let meeting = match &args.meeting_id {
        Some(id) => MeetingId::parse(id).context("--meeting-id must be a UUID")?,
        None => MeetingId::new_random(),
    };
    let sink = match (&args.out, &args.redis_url) {
        (Some(path), _) => AnySink::Jsonl(
            JsonlSink::create(path)
                .await
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        (None, Some(url)) => AnySink::Redis(Box::new(
            RedisSink::connect(url, &args.events_stream)
                .await
                .context("cannot connect to Redis")?,
        )),
        (None, None) => anyhow::bail!("give --out FILE or --redis-url URL"),
    };
    let bot = args.bot.config()?;
    let (model, path) = bot.asr.load().await?;
    let pool = bot.asr.pool(&model)?;
    let link = MeetingLink::parse(&args.url).map_err(anyhow::Error::msg)?;
    let connector = AnyConnector::open(&link, &bot.connector, meeting, 0)
        .await
        .context("cannot join the meeting")?;
    eprintln!(
        "parley-bot: in meeting {meeting} with model {}",
        path.display()
    );
    let config = PipelineConfig {
        transcriber: bot.asr.transcriber(true),
        ..PipelineConfig::default()
    };
    let report = run_meeting(meeting, connector, &pool, config, sink, signal).await?;
    eprintln!(
        "parley-bot: left; {} speakers, {} finals, {} s of audio, {} lost and {} corrupt packets",
        report.speakers,
        report.finals,
        report.audio_ms / 1000,
        report.lost_packets,
        report.corrupt_packets
    );
    Ok(())
}
