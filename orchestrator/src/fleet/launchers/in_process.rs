//! Bot workers as tasks in the orchestrator: the embedded default. They share one model and
//! decode pool, loaded when the first worker starts (so the warm pool is warm), and each serves
//! several meetings.

use super::to_stop;
use parley_bot::asr::settings::LoadedAsr;
use parley_bot::config::BotConfig;
use parley_bot::fleet::worker::{Worker, WorkerConfig};
use parley_bot::fleet::{AnyQueue, BotInfo};
use parley_bot::pipeline::PipelineConfig;
use parley_bot::sink::any::Bus;
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell, watch};
use tokio::task::JoinHandle;

pub struct InProcessLauncher {
    queue: AnyQueue,
    bus: Bus,
    config: BotConfig,
    max_meetings: usize,
    asr: OnceCell<Arc<LoadedAsr>>,
    workers: Mutex<Workers>,
    shutdown: watch::Sender<bool>,
}

#[derive(Default)]
struct Workers {
    next: u64,
    running: Vec<Running>,
}

struct Running {
    id: String,
    retire: watch::Sender<bool>,
    retired: bool,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for InProcessLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessLauncher").finish_non_exhaustive()
    }
}

impl InProcessLauncher {
    pub fn new(queue: AnyQueue, bus: Bus, config: BotConfig, max_meetings: usize) -> Self {
        Self {
            queue,
            bus,
            config,
            max_meetings,
            asr: OnceCell::new(),
            workers: Mutex::new(Workers::default()),
            shutdown: watch::channel(false).0,
        }
    }

    async fn asr(&self) -> anyhow::Result<Arc<LoadedAsr>> {
        self.asr
            .get_or_try_init(|| async {
                let asr = self.config.asr.load_pool().await?;
                tracing::info!(model = %asr.path.display(), "whisper model loaded for in-process bots");
                Ok(Arc::new(asr))
            })
            .await
            .cloned()
    }

    pub async fn scale(&self, desired: usize, bots: &[BotInfo]) -> anyhow::Result<()> {
        let mut w = self.workers.lock().await;
        w.running.retain(|r| !r.task.is_finished());
        let current = w.running.iter().filter(|r| !r.retired).count();
        if current < desired {
            let asr = self.asr().await?;
            for _ in current..desired {
                w.next += 1;
                let id = format!("in-process-{}", w.next);
                let config = WorkerConfig {
                    worker_id: id.clone(),
                    max_meetings: self.max_meetings,
                    connector: self.config.connector.clone(),
                    pipeline: PipelineConfig {
                        transcriber: self.config.asr.transcriber(true),
                        ..PipelineConfig::default()
                    },
                };
                let worker = Worker::new(
                    self.queue.clone(),
                    Arc::clone(&asr),
                    self.bus.clone(),
                    config,
                );
                let (retire, retired) = watch::channel(false);
                let task = tokio::spawn(worker.run(retired, self.shutdown.subscribe()));
                w.running.push(Running {
                    id,
                    retire,
                    retired: false,
                    task,
                });
            }
        } else if current > desired {
            let ids = w.running.iter().map(|r| (r.id.as_str(), r.retired));
            for i in to_stop(ids, current - desired, bots) {
                let r = &mut w.running[i];
                let _ = r.retire.send(true);
                r.retired = true;
            }
        }
        Ok(())
    }

    /// Asks every worker to leave its meeting and waits for them to publish their last events.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let running = std::mem::take(&mut self.workers.lock().await.running);
        for r in running {
            let _ = r.task.await;
        }
    }
}
