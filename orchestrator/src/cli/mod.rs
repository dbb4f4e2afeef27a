//! Command-line interface: argument definitions and dispatch to each subcommand.

mod admin;
mod bench_asr;
mod bench_captions;
mod bench_fleet;
mod bench_ingest;
mod bench_servers;
mod bench_summary;
mod demo;
mod models;
mod procstat;
pub mod serve;
mod transcribe;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "parley",
    version,
    about = "Self-hosted meeting assistant: live per-speaker transcripts with Whisper"
)]
pub struct Cli {
    /// More log output on stderr (-v: progress details, -vv: debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: API, event ingest, in-process bots. Embedded (SQLite, in-process bus) unless
    /// DATABASE_URL and REDIS_URL are set.
    Serve(serve::ServeArgs),
    /// Start the embedded server, replay the bundled sample meeting through a bot, print the
    /// transcript as it is stored.
    Demo(demo::DemoArgs),
    /// Operator tasks on the server's database: the first admin account.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Install or list Whisper models (ggml files in the model cache).
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Transcribe recorded meetings: one audio file per speaker (Ogg/Opus or WAV), speaker = file stem.
    Transcribe(transcribe::TranscribeArgs),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Accuracy, latency and cost of transcription on a folder of per-speaker tracks with a reference.json.
    Asr(bench_asr::BenchAsrArgs),
    /// Meetings at once through one worker: latency, accuracy, CPU and memory per meeting.
    Fleet(bench_fleet::BenchFleetArgs),
    /// Events per second from the Redis stream into Postgres, and publication-to-commit lag.
    Ingest(bench_ingest::BenchIngestArgs),
    /// Live captions: publication-to-viewer delay and server memory per viewer.
    Captions(bench_captions::BenchCaptionsArgs),
    /// After the meeting: time from its end to the stored summary and to the sent emails.
    Summary(bench_summary::BenchSummaryArgs),
}

impl Cli {
    /// Log verbosity: a server logs its requests (info) by default; commands only warnings.
    pub fn log_verbosity(&self) -> u8 {
        match self.command {
            Command::Serve(_) => self.verbose.max(1),
            _ => self.verbose,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Admin(cmd) => admin::run(cmd).await,
        Command::Models(cmd) => models::run(cmd).await,
        Command::Transcribe(args) => transcribe::run(args).await,
        Command::Bench(BenchCommand::Asr(args)) => bench_asr::run(args).await,
        Command::Bench(BenchCommand::Fleet(args)) => bench_fleet::run(args).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench_ingest::run(args).await,
        Command::Bench(BenchCommand::Captions(args)) => bench_captions::run(args).await,
        Command::Bench(BenchCommand::Summary(args)) => bench_summary::run(args).await,
    }
}
