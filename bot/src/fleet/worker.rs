//! One bot worker: with its model loaded, it claims assignments one at a time, joins the
//! meeting, heartbeats while there, and hands the meeting on when it must go.

use super::{AnyQueue, Assignment, BotInfo, Claimed, HEARTBEAT, WorkerState};
use crate::asr::settings::LoadedAsr;
use crate::connector::MeetingConnector;
use crate::connector::open::{AnyConnector, ConnectorArgs};
use crate::pipeline::{PipelineConfig, run_meeting};
use crate::sink::EventSink;
use crate::sink::any::Bus;
use anyhow::Context;
use parley_shared::{BotState, Event, EventBody, MeetingId, now_ms};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// A meeting whose bots keep dying is given up after this many bots.
pub const MAX_DELIVERIES: u64 = 5;
/// How long an idle worker waits on the queue before reporting itself again.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker_id: String,
    pub connector: ConnectorArgs,
    pub pipeline: PipelineConfig,
}

impl WorkerConfig {
    /// A worker id unique on this host: `{prefix}-{pid}` (`prefix` defaults to the host name).
    pub fn default_id() -> String {
        format!("{}-{}", host_name(), std::process::id())
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Why a bot left its meeting, which decides what becomes of the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    /// The orchestrator asked (the meeting ended on its side): done.
    Stopped,
    /// Another worker took the meeting over after this one missed its heartbeats.
    Lost,
    /// This worker is shutting down while the meeting goes on: hand it over.
    ShuttingDown,
}

pub struct Worker {
    queue: AnyQueue,
    asr: Arc<LoadedAsr>,
    bus: Bus,
    config: WorkerConfig,
    info: Arc<Mutex<BotInfo>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.config.worker_id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(queue: AnyQueue, asr: Arc<LoadedAsr>, bus: Bus, config: WorkerConfig) -> Self {
        let now = now_ms();
        let info = BotInfo {
            worker_id: config.worker_id.clone(),
            state: WorkerState::Idle,
            meeting_id: None,
            host: host_name(),
            pid: std::process::id(),
            started_ms: now,
            state_since_ms: now,
            heartbeat_ms: now,
        };
        Self {
            queue,
            asr,
            bus,
            config,
            info: Arc::new(Mutex::new(info)),
        }
    }

    fn set_state(&self, state: WorkerState, meeting: Option<MeetingId>) {
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        info.state = state;
        info.meeting_id = meeting;
        info.state_since_ms = now_ms();
    }

    async fn report(&self) {
        let info = {
            let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
            info.heartbeat_ms = now_ms();
            info.clone()
        };
        if let Err(e) = self.queue.report(&info).await {
            tracing::warn!(error = %e, "cannot report the worker's state");
        }
    }

    /// Serves assignments until `retire` (only between meetings: the launcher shrinks the pool)
    /// or `shutdown` (at once: a meeting in progress is handed to another worker).
    pub async fn run(self, mut retire: watch::Receiver<bool>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.config.worker_id, "bot worker ready");
        let mut backoff = Duration::from_millis(250);
        while !*retire.borrow() && !*shutdown.borrow() {
            self.report().await;
            let claimed = tokio::select! {
                c = self.queue.claim(&self.config.worker_id, CLAIM_WAIT) => c,
                r = retire.changed() => if r.is_ok() { continue } else { break },
                r = shutdown.changed() => if r.is_ok() { continue } else { break },
            };
            match claimed {
                Ok(None) => backoff = Duration::from_millis(250),
                Ok(Some(c)) => {
                    backoff = Duration::from_millis(250);
                    let meeting = c.assignment.meeting_id;
                    let span = tracing::info_span!("bot", meeting_id = %meeting, worker = %self.config.worker_id);
                    self.serve(c, &mut shutdown).instrument(span).await;
                    self.set_state(WorkerState::Idle, None);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot read assignments");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        r = shutdown.changed() => if r.is_err() { break },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Err(e) = self.queue.forget(&self.config.worker_id).await {
            tracing::warn!(error = %e, "cannot remove the worker's report");
        }
        tracing::info!(worker = %self.config.worker_id, "bot worker stopped");
    }

    async fn serve(&self, c: Claimed, shutdown: &mut watch::Receiver<bool>) {
        let meeting = c.assignment.meeting_id;
        if c.deliveries > MAX_DELIVERIES {
            let reason =
                format!("{MAX_DELIVERIES} bots in a row stopped in this meeting; giving up");
            self.fail(meeting, &reason).await;
            self.finish(&c).await;
            return;
        }
        match self.queue.stop_requested(meeting).await {
            Ok(true) => {
                tracing::info!("meeting over before its bot joined");
                self.finish(&c).await;
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check for a stop request"),
        }
        let now = now_ms();
        let offset_ms = match self.queue.clock_origin(meeting, now).await {
            Ok(origin) => now.saturating_sub(origin),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the meeting clock; times restart at zero");
                0
            }
        };
        if c.deliveries > 1 {
            tracing::info!(
                deliveries = c.deliveries,
                offset_ms,
                "re-joining: the meeting's earlier bot stopped heart-beating"
            );
        }
        self.set_state(WorkerState::Joining, Some(meeting));
        self.report().await;
        let (leave_tx, leave_rx) = watch::channel(None);
        let attend = self.attend(&c, offset_ms, leave_rx);
        let heartbeat = self.heartbeat(&c, &leave_tx, shutdown);
        let outcome = tokio::select! {
            outcome = attend => outcome,
            never = heartbeat => match never {},
        };
        let leave = *leave_tx.borrow();
        match (outcome, leave) {
            (Err(Attend::Join(e)), _) => {
                tracing::warn!(error = format!("{e:#}"), "cannot join the meeting");
                self.fail(meeting, &format!("cannot join the meeting: {e:#}"))
                    .await;
                self.finish(&c).await;
            }
            (_, Some(Leave::Lost)) => {
                tracing::warn!("another bot took this meeting over; left it");
            }
            (_, Some(Leave::ShuttingDown)) => {
                tracing::info!("worker shutting down; meeting handed to another bot");
                if let Err(e) = self.queue.release(&c).await {
                    tracing::warn!(error = %e, "cannot hand the meeting over; another bot takes it when the lease expires");
                }
            }
            (Err(Attend::Meeting(e)), _) => {
                // The meeting may well go on: another bot tries (up to MAX_DELIVERIES).
                tracing::warn!(
                    error = format!("{e:#}"),
                    "bot failed in the meeting; handing it over"
                );
                if let Err(e) = self.queue.release(&c).await {
                    tracing::warn!(error = %e, "cannot hand the meeting over; another bot takes it when the lease expires");
                }
            }
            (Ok(finals), _) => {
                tracing::info!(finals, "bot left");
                self.finish(&c).await;
            }
        }
    }

    /// Joins and stays until the meeting ends or `leave` says otherwise.
    async fn attend(
        &self,
        c: &Claimed,
        offset_ms: u64,
        mut leave: watch::Receiver<Option<Leave>>,
    ) -> Result<u64, Attend> {
        let Assignment {
            meeting_id,
            url,
            record,
            announcement,
            ..
        } = &c.assignment;
        let mut connector_args = self.config.connector.clone();
        if !record {
            connector_args.record_to = None;
        }
        let mut connector = AnyConnector::open(url, &connector_args, *meeting_id, offset_ms)
            .await
            .map_err(|e| Attend::Join(e.into()))?;
        // A replacement bot does not post the link again.
        if let Some(text) = announcement.as_deref().filter(|_| c.deliveries == 1) {
            // The link is a capability: it is posted, never logged.
            match connector.post_chat(text).await {
                Ok(true) => tracing::info!("live captions link posted to the meeting chat"),
                Ok(false) => {
                    tracing::info!(
                        "live captions link not posted: the platform has no chat for bots"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot post the live captions link to the meeting chat")
                }
            }
        }
        self.set_state(WorkerState::InMeeting, Some(*meeting_id));
        self.report().await;
        let sink = self
            .bus
            .sink()
            .await
            .context("cannot reach the event bus")
            .map_err(Attend::Meeting)?;
        let config = PipelineConfig {
            clock_offset_ms: offset_ms,
            ..self.config.pipeline
        };
        let until_told = async move {
            let _ = leave.wait_for(Option::is_some).await;
        };
        let report = run_meeting(
            *meeting_id,
            connector,
            &self.asr.pool,
            config,
            sink,
            until_told,
        )
        .await
        .map_err(|e| Attend::Meeting(e.into()))?;
        Ok(report.finals)
    }

    /// Renews the claim and the report every [`HEARTBEAT`], and says when to leave. Never
    /// returns: it ends when the meeting does.
    async fn heartbeat(
        &self,
        c: &Claimed,
        leave: &watch::Sender<Option<Leave>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let meeting = c.assignment.meeting_id;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed(), if leave.borrow().is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.set_state(WorkerState::Leaving, Some(meeting));
                        let _ = leave.send(Some(Leave::ShuttingDown));
                    }
                    continue;
                }
            }
            if *leave.borrow() == Some(Leave::Lost) {
                continue;
            }
            match self.queue.renew(&self.config.worker_id, c).await {
                Ok(true) => {}
                Ok(false) => {
                    self.set_state(WorkerState::Leaving, Some(meeting));
                    let _ = leave.send(Some(Leave::Lost));
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the claim on this meeting"),
            }
            if leave.borrow().is_none()
                && matches!(self.queue.stop_requested(meeting).await, Ok(true))
            {
                tracing::info!("asked to leave the meeting");
                self.set_state(WorkerState::Leaving, Some(meeting));
                let _ = leave.send(Some(Leave::Stopped));
            }
            self.report().await;
        }
    }

    async fn finish(&self, c: &Claimed) {
        if let Err(e) = self.queue.complete(c).await {
            tracing::warn!(error = %e, "cannot remove the finished assignment");
        }
    }

    /// Reports the meeting as failed, as any bot's status.
    async fn fail(&self, meeting: MeetingId, reason: &str) {
        let event = Event::new(
            meeting,
            u64::MAX,
            EventBody::BotStatus {
                state: BotState::Failed,
                reason: Some(reason.to_owned()),
                at_ms: 0,
            },
        );
        let published = match self.bus.sink().await {
            Ok(mut sink) => match sink.publish(event).await {
                Ok(()) => sink.flush().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = published {
            tracing::error!(error = %e, "cannot report the bot's failure");
        }
    }
}

enum Attend {
    /// Never got into the meeting: the assignment fails.
    Join(anyhow::Error),
    /// Failed once inside: another bot may do better.
    Meeting(anyhow::Error),
}
