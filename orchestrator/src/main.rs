//! `parley`: the Parley server and command line. Parses arguments and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    parley_bot::telemetry::tune_allocator();
    let cli = parley_orchestrator::cli::Cli::parse();
    parley_bot::telemetry::init(cli.log_verbosity());
    parley_bot::telemetry::run_main(|| parley_orchestrator::cli::run(cli))
}
