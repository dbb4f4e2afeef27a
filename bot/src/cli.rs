//! The `parley-bot` command line: join one meeting and publish its transcript events to a
//! JSON-lines file (standalone) or the Redis stream (with an orchestrator).

use crate::asr::settings::AsrArgs;
use crate::connector::open::{AnyConnector, ConnectorArgs};
use crate::pipeline::{PipelineConfig, run_meeting};
use crate::sink::any::AnySink;
use crate::sink::jsonl::JsonlSink;
use crate::sink::redis::{DEFAULT_STREAM, RedisSink};
use anyhow::Context;
use clap::{Parser, Subcommand};
use parley_shared::MeetingId;
use std::path::PathBuf;

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
    /// Join a meeting (janus+ws://HOST:PORT/?room=ROOM, or replay:FOLDER) until it ends or
    /// SIGINT/SIGTERM, then finish every utterance in progress and flush.
    Join(JoinArgs),
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The meeting link.
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
    asr: AsrArgs,
    #[command(flatten)]
    connector: ConnectorArgs,
}

/// A flag group's values as a command line without any of those flags gives them (defaults
/// and environment variables): the `Default` of every settings struct.
pub fn flag_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let matches = T::augment_args(clap::Command::new("parley")).get_matches_from(["parley"]);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The shutdown signal, announced: leaving takes a moment while utterances finish.
async fn shutdown_signal() {
    crate::telemetry::shutdown_signal().await;
    eprintln!("parley-bot: leaving (finishing the utterances in progress)");
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Join(args) = cli.command;
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
    let (model, path) = args.asr.load().await?;
    let pool = args.asr.pool(&model)?;
    let connector = AnyConnector::open(&args.url, &args.connector, meeting)
        .await
        .context("cannot join the meeting")?;
    eprintln!(
        "parley-bot: in meeting {meeting} with model {}",
        path.display()
    );
    let config = PipelineConfig {
        transcriber: args.asr.transcriber(true),
        ..PipelineConfig::default()
    };
    let report = run_meeting(meeting, connector, &pool, config, sink, shutdown_signal()).await?;
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
