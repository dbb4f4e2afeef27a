//! Supervision of the background tasks that serve every user (event ingest, calendar polling,
//! after-meeting jobs, the fleet's controller, housekeeping): a task that panics is logged, counted
//! (`parley_task_restarts_total{task}`) and started again; one that keeps dying is given up on,
//! and the server stops with an error so its orchestrator (systemd, Kubernetes) restarts it
//! whole rather than leaving it up without, say, calendar syncing.

use crate::metrics::Metrics;
pub use crate::metrics::Task;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// More restarts than this within [`WINDOW`] and the task is given up on.
const MAX_RESTARTS: usize = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Pause before a restart: a task that dies at once does not spin.
const BACKOFF: Duration = Duration::from_millis(500);

/// Runs the task `start` makes until it returns (the server is stopping), restarting it after
/// each panic; tells `gave_up` if it dies too often.
pub fn spawn<F, Fut>(
    task: Task,
    metrics: Arc<Metrics>,
    gave_up: mpsc::UnboundedSender<Task>,
    mut start: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut recent: VecDeque<Instant> = VecDeque::new();
        loop {
            let error = match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(e) if e.is_cancelled() => return,
                Err(e) => e,
            };
            let now = Instant::now();
            recent.retain(|t| now.duration_since(*t) < WINDOW);
            recent.push_back(now);
            metrics.task_restarted(task);
            if recent.len() > MAX_RESTARTS {
                tracing::error!(task = task.name(), error = %error, "background task keeps failing; stopping the server");
                let _ = gave_up.send(task);
                return;
            }
            tracing::error!(task = task.name(), error = %error, "background task failed; restarting it");
            tokio::time::sleep(BACKOFF).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_panicking_task_is_restarted_counted_and_given_up_on() {
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        // Fails twice, then runs to its end.
        let handle = spawn(
            Task::Calendar,
            Arc::clone(&metrics),
            tx.clone(),
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n >= 2, "failure {n}");
                }
            },
        );
        handle.await.expect("supervisor");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(
            metrics
                .render()
                .contains("parley_task_restarts_total{task=\"calendar\"} 2")
        );
        assert!(rx.try_recv().is_err(), "not given up");
        // Always fails: given up after MAX_RESTARTS + 1 deaths.
        let handle = spawn(Task::Jobs, Arc::clone(&metrics), tx, || async {
            panic!("always");
        });
        handle.await.expect("supervisor");
        assert_eq!(rx.recv().await, Some(Task::Jobs));
        assert!(metrics.render().contains(&format!(
            "parley_task_restarts_total{{task=\"jobs\"}} {}",
            MAX_RESTARTS + 1
        )));
    }
}
