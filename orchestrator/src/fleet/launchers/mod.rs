//! Launchers: how bot workers come to exist. Each is told how many workers the fleet needs
//! (busy ones plus the warm pool) and which are idle, and makes it so:
//! - in-process: worker tasks inside this orchestrator, sharing one loaded model (embedded);
//! - process: `parley-bot worker` child processes on this machine;
//! - Kubernetes: the replica count of the bot worker Deployment, after marking idle pods as
//!   the cheapest to delete, so a scale-down never takes a bot out of a meeting.

pub mod in_process;
pub mod kubernetes;
pub mod process;

use parley_bot::fleet::{BotInfo, WorkerState};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LauncherKind {
    InProcess,
    Process,
    Kubernetes,
}

#[derive(Debug)]
pub enum AnyLauncher {
    InProcess(Box<in_process::InProcessLauncher>),
    Process(Box<process::ProcessLauncher>),
    Kubernetes(Box<kubernetes::KubernetesLauncher>),
}

impl AnyLauncher {
    pub fn name(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in-process",
            Self::Process(_) => "process",
            Self::Kubernetes(_) => "kubernetes",
        }
    }

    /// Runs `desired` workers; only idle ones are stopped to shrink.
    pub async fn scale(&self, desired: usize, bots: &[BotInfo]) -> anyhow::Result<()> {
        match self {
            Self::InProcess(l) => l.scale(desired, bots).await,
            Self::Process(l) => l.scale(desired, bots).await,
            Self::Kubernetes(l) => l.scale(desired, bots).await,
        }
    }

    /// Stops the workers this launcher started in this process (Kubernetes pods stay).
    pub async fn shutdown(&self) {
        match self {
            Self::InProcess(l) => l.shutdown().await,
            Self::Process(l) => l.shutdown().await,
            Self::Kubernetes(_) => {}
        }
    }
}

/// Which running workers to stop to shrink the pool by `excess`: idle ones, newest first.
/// `running` gives each worker's id and whether it is already stopping, oldest first.
fn to_stop<'a>(
    running: impl DoubleEndedIterator<Item = (&'a str, bool)> + ExactSizeIterator,
    excess: usize,
    bots: &[BotInfo],
) -> Vec<usize> {
    let idle: HashSet<&str> = bots
        .iter()
        .filter(|b| b.state == WorkerState::Idle)
        .map(|b| b.worker_id.as_str())
        .collect();
    running
        .enumerate()
        .rev()
        .filter(|(_, (id, stopping))| !stopping && idle.contains(id))
        .map(|(i, _)| i)
        .take(excess)
        .collect()
}
