//! `parley-bench`: Parley's benchmarks, each printing a table (with the CPU it ran on). A binary
//! of its own so the production `parley` and `parley-bot` carry none of this code; `parley bench`
//! runs it when it is installed beside `parley`.

mod asr;
mod captions;
mod fleet;
mod ingest;
mod servers;
mod summary;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "parley-bench",
    version,
    about = "Parley's benchmarks: each prints a table with the CPU it ran on"
)]
struct Cli {
    /// More log output on stderr (-v: progress details, -vv: debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accuracy, latency and cost of transcription on a folder of per-speaker tracks with a reference.json.
    Asr(asr::BenchAsrArgs),
    /// Meetings at once through one worker: latency, accuracy, CPU and memory per meeting.
    Fleet(fleet::BenchFleetArgs),
    /// Events per second from the Redis stream into Postgres, and publication-to-commit lag.
    Ingest(ingest::BenchIngestArgs),
    /// Live captions: publication-to-viewer delay and server memory per viewer.
    Captions(captions::BenchCaptionsArgs),
    /// After the meeting: time from its end to the stored summary and to the sent emails.
    Summary(summary::BenchSummaryArgs),
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Asr(args) => asr::run(args).await,
        Command::Fleet(args) => fleet::run(args).await,
        Command::Ingest(args) => ingest::run(args).await,
        Command::Captions(args) => captions::run(args).await,
        Command::Summary(args) => summary::run(args).await,
    }
}

fn main() -> ExitCode {
    parley_bot::telemetry::tune_allocator();
    let cli = Cli::parse();
    parley_bot::telemetry::init(cli.verbose);
    parley_bot::telemetry::run_main(|| run(cli.command))
}
