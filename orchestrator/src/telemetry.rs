//! Logging setup: human-readable lines on stderr, filtered by `RUST_LOG` (default: warnings, plus
//! info from Parley itself with `-v`). whisper.cpp's own chatter is kept at debug.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn,whisper_rs=off",
        1 => "warn,parley_bot=info,parley_orchestrator=info,whisper_rs=off",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
