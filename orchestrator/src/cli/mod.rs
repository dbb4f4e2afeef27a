//! Command-line interface: argument definitions and dispatch to each subcommand.

mod admin;
mod bench;
mod demo;
mod mcp;
pub mod models;
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
    /// Benchmarks that print a table (asr, fleet, ingest, captions, summary): runs the
    /// `parley-bench` program installed beside this one; `parley bench --help` lists them.
    #[command(disable_help_flag = true)]
    Bench(bench::BenchArgs),
    /// The MCP server on stdio (Model Context Protocol): tools to list meetings, read transcripts
    /// and summaries, search, send a bot and end a meeting, through a Parley server's API with an
    /// API key. Servers also serve it over HTTP at POST /mcp.
    Mcp(mcp::McpArgs),
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
        Command::Bench(args) => bench::run(args, cli.verbose).await,
        Command::Mcp(args) => mcp::run(args).await,
    }
}
