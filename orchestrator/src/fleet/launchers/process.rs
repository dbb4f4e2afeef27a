//! Bot workers as `parley-bot worker` child processes: a fleet on one machine with Redis,
//! where a bot that crashes takes only itself down.

use super::to_stop;
use crate::fleet::config::FleetConfig;
use anyhow::Context;
use parley_bot::cli::flags::hand_over;
use parley_bot::config::BotConfig;
use parley_bot::fleet::{AnyQueue, BotInfo};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How long a stopping worker gets to hand its meeting over before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct ProcessLauncher {
    program: PathBuf,
    /// The environment every worker gets: Redis and streams.
    env: Vec<(&'static str, String)>,
    /// Every other setting, handed over whole.
    config: BotConfig,
    queue: AnyQueue,
    workers: Mutex<Workers>,
}

#[derive(Debug, Default)]
struct Workers {
    next: u64,
    running: Vec<Running>,
    /// Set by `shutdown`: no worker is started after it took the running ones.
    stopped: bool,
}

#[derive(Debug)]
struct Running {
    id: String,
    child: Child,
    stopping: bool,
}

/// The `parley-bot` binary: `explicit`, else the one beside this executable, else the one on
/// PATH.
pub fn bot_program(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| sibling_program("parley-bot"))
}

/// The program `name` beside this executable, else `name` as found on PATH.
pub fn sibling_program(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl ProcessLauncher {
    /// Workers run `fleet.bot_program` [default: the `parley-bot` beside this executable, else
    /// the one on PATH].
    pub fn new(
        fleet: &FleetConfig,
        redis_url: &str,
        events_stream: &str,
        config: &BotConfig,
        queue: AnyQueue,
    ) -> Self {
        let program = bot_program(fleet.bot_program.clone());
        let env = vec![
            ("REDIS_URL", redis_url.to_owned()),
            (
                "PARLEY_ASSIGNMENTS_STREAM",
                fleet.assignments_stream.clone(),
            ),
            ("PARLEY_EVENTS_STREAM", events_stream.to_owned()),
            ("PARLEY_MAX_MEETINGS", fleet.meetings_per_worker.to_string()),
            // Workers leave when this process is gone, however it ended: one killed outright
            // never gets to stop them, and they must not serve meetings nobody sizes.
            ("PARLEY_PARENT_PID", std::process::id().to_string()),
        ];
        Self {
            program,
            env,
            config: config.clone(),
            queue,
            workers: Mutex::new(Workers::default()),
        }
    }

    pub async fn scale(&self, desired: usize, bots: &[BotInfo]) -> anyhow::Result<()> {
        let mut w = self.workers.lock().await;
        if w.stopped {
            return Ok(());
        }
        self.reap(&mut w).await;
        let current = w.running.iter().filter(|r| !r.stopping).count();
        if current < desired {
            for _ in current..desired {
                w.next += 1;
                let id = format!("process-{}-{}", std::process::id(), w.next);
                let mut command = Command::new(&self.program);
                hand_over(&mut command, &self.config);
                let child = command
                    .arg("worker")
                    .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
                    .env("PARLEY_WORKER_ID", &id)
                    .stdin(Stdio::null())
                    .kill_on_drop(false)
                    .spawn()
                    .with_context(|| format!("cannot start {}", self.program.display()))?;
                tracing::info!(worker = %id, pid = child.id(), "bot worker started");
                w.running.push(Running {
                    id,
                    child,
                    stopping: false,
                });
            }
        } else if current > desired {
            let ids = w.running.iter().map(|r| (r.id.as_str(), r.stopping));
            for i in to_stop(ids, current - desired, bots) {
                let r = &mut w.running[i];
                terminate(&r.child);
                r.stopping = true;
            }
        }
        Ok(())
    }

    /// Forgets workers that exited, so the fleet replaces them at once.
    async fn reap(&self, w: &mut Workers) {
        let mut gone = Vec::new();
        w.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                if !r.stopping {
                    tracing::warn!(worker = %r.id, %status, "bot worker exited");
                }
                gone.push(r.id.clone());
                false
            }
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(worker = %r.id, error = %e, "cannot check a bot worker");
                true
            }
        });
        for id in gone {
            if let Err(e) = self.queue.forget(&id).await {
                tracing::warn!(worker = %id, error = %e, "cannot remove an exited worker's report");
            }
        }
    }

    /// Asks every worker to hand its meeting over and exit; kills those that do not in time.
    pub async fn shutdown(&self) {
        let running = {
            let mut w = self.workers.lock().await;
            w.stopped = true;
            std::mem::take(&mut w.running)
        };
        for r in &running {
            terminate(&r.child);
        }
        for mut r in running {
            if tokio::time::timeout(STOP_GRACE, r.child.wait())
                .await
                .is_err()
            {
                tracing::warn!(worker = %r.id, "bot worker did not stop in time; killing it");
                let _ = r.child.kill().await;
            }
        }
    }
}

/// SIGTERM: the worker finishes the utterances in progress and hands its meeting over.
fn terminate(child: &Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}
