//! `parley bench …`: the benchmarks live in their own program, `parley-bench`, so the server and
//! the bots carry none of their code; this runs it with the same arguments.

use crate::fleet::launchers::process::sibling_program;
use clap::Args;
use std::ffi::OsString;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark and its arguments, as `parley-bench` takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// Runs `parley-bench` with the arguments, `verbose` times `-v` in front (`parley -v bench …`).
pub async fn run(args: BenchArgs, verbose: u8) -> anyhow::Result<()> {
    let program = sibling_program("parley-bench");
    let status = tokio::process::Command::new(&program)
        .args((0..verbose).map(|_| "-v"))
        .args(&args.args)
        .status()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {} ({e}): the benchmarks are a program of their own; build it with \
                 `cargo build --release -p parley-bench` and keep it beside `parley`",
                program.display()
            )
        })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => anyhow::bail!("{} was killed ({status})", program.display()),
    }
}
