//! Logging setup and the process entry shared by Parley's binaries: human-readable lines on
//! stderr, filtered by `RUST_LOG` (default: warnings, plus info from Parley itself with `-v`).
//! whisper.cpp's own chatter is kept at debug.

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

/// Runs a command's async body on a multi-threaded runtime and turns its outcome into an exit
/// code, printing the error chain. Installs ring as the one TLS crypto provider first (HTTP
/// clients are built without a default one, so aws-lc never enters the tree).
pub fn run_main<F: Future<Output = anyhow::Result<()>>>(
    body: impl FnOnce() -> F,
) -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc settings that keep a bot's memory near what it uses: Whisper allocates and frees
/// buffers of tens of MB per decode, which with glibc's defaults stay mapped (measured with the
/// 16-bit tiny.en and a 30 s window: about 390 MB peak RSS, 290 MB with these).
const MALLOC_TUNING: [(&str, &str); 3] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
];

/// Re-executes the program with [`MALLOC_TUNING`] when the environment does not set it (glibc
/// reads it only at start-up). Call first thing in `main`, before any thread exists. Returns
/// normally if the settings are present or the re-exec fails.
pub fn tune_allocator() {
    if std::env::var_os(MALLOC_TUNING[0].0).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    for (k, v) in MALLOC_TUNING {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        tracing::debug!(error = %err, "cannot re-execute with allocator settings");
    }
}

/// Resolves on Ctrl-C or SIGTERM (how Kubernetes stops a pod): the shutdown signal of every
/// Parley binary. The handlers are installed when this is called, not when the future is first
/// polled: a signal that comes while the caller is still starting (its bots already running)
/// then stops it in order instead of killing the process outright. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn received(s: std::io::Result<Signal>) {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        }
        let interrupt = received(signal(SignalKind::interrupt()));
        let terminate = received(signal(SignalKind::terminate()));
        async move {
            tokio::select! {
                () = interrupt => {}
                () = terminate => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
