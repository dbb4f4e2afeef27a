//! `parley-bot`: one bot for one meeting. Parses arguments and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    parley_bot::telemetry::tune_allocator();
    let cli = parley_bot::cli::Cli::parse();
    parley_bot::telemetry::init(cli.verbose);
    parley_bot::telemetry::run_main(|| parley_bot::cli::run(cli))
}
