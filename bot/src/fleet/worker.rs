//! One bot worker: with its model loaded, it serves up to `max_meetings` meetings at once, all
//! decoded by the process's one pool. It claims another assignment only while it has room and
//! its decoding keeps up, joins, renews each meeting's claim while there, and hands a meeting on
//! when it must go.

use super::{AnyQueue, Assignment, BotInfo, Claimed, HEARTBEAT, Load, WorkerState};
use crate::asr::settings::LoadedAsr;
use crate::connector::MeetingConnector;
use crate::connector::config::ConnectorConfig;
use crate::connector::open::AnyConnector;
use crate::pipeline::{PipelineConfig, run_meeting};
use crate::sink::EventSink;
use crate::sink::any::Bus;
use anyhow::Context;
use parley_shared::{BotState, Event, EventBody, MeetingId, MeetingLink, now_ms};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// A meeting whose bots keep dying is given up after this many bots.
pub const MAX_DELIVERIES: u64 = 5;
/// Tries at joining while the platform cannot be reached, before the meeting goes to another
/// bot; the first retry waits `JOIN_RETRY`, each next twice as long.
const JOIN_ATTEMPTS: u32 = 3;
const JOIN_RETRY: Duration = Duration::from_secs(1);
/// How long a worker with room waits on the queue before looking at its meetings again.
const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// A worker whose decoding is this far behind takes no further meeting.
const FULL_BACKLOG: Duration = Duration::from_secs(2);

/// Meetings a worker serves at once by default: two per core. One meeting of three speakers
/// took about 0.4 of a core at full quality on an AVX-512 machine (issue 18), so this leaves
/// room for busier meetings; past it, or when the decoding falls behind, the worker takes no
/// more.
pub fn default_max_meetings() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker_id: String,
    pub connector: ConnectorConfig,
    pub pipeline: PipelineConfig,
    pub max_meetings: usize,
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

#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    queue: AnyQueue,
    asr: Arc<LoadedAsr>,
    bus: Bus,
    config: WorkerConfig,
    info: Mutex<Info>,
}

/// What the worker reports, kept current by its meetings.
struct Info {
    report: BotInfo,
    meetings: BTreeMap<MeetingId, WorkerState>,
    shutting_down: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.inner.config.worker_id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(queue: AnyQueue, asr: Arc<LoadedAsr>, bus: Bus, config: WorkerConfig) -> Self {
        let now = now_ms();
        let report = BotInfo {
            v: parley_shared::fleet::FLEET_VERSION,
            worker_id: config.worker_id.clone(),
            state: WorkerState::Idle,
            meeting_id: None,
            meetings: Vec::new(),
            max_meetings: config.max_meetings as u32,
            load: Load::default(),
            host: host_name(),
            pid: std::process::id(),
            started_ms: now,
            state_since_ms: now,
            heartbeat_ms: now,
        };
        Self {
            inner: Arc::new(Inner {
                queue,
                asr,
                bus,
                config,
                info: Mutex::new(Info {
                    report,
                    meetings: BTreeMap::new(),
                    shutting_down: false,
                }),
            }),
        }
    }

    fn id(&self) -> &str {
        &self.inner.config.worker_id
    }

    fn info(&self) -> std::sync::MutexGuard<'_, Info> {
        self.inner.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a meeting's state (`None`: gone) and derives the worker's.
    fn set_meeting(&self, meeting: MeetingId, state: Option<WorkerState>) {
        let mut info = self.info();
        match state {
            Some(state) => info.meetings.insert(meeting, state),
            None => info.meetings.remove(&meeting),
        };
        let states: Vec<WorkerState> = info.meetings.values().copied().collect();
        let state = if states.is_empty() {
            WorkerState::Idle
        } else if info.shutting_down || states.iter().all(|s| *s == WorkerState::Leaving) {
            WorkerState::Leaving
        } else if states.contains(&WorkerState::InMeeting) {
            WorkerState::InMeeting
        } else {
            WorkerState::Joining
        };
        let meetings: Vec<MeetingId> = info.meetings.keys().copied().collect();
        let report = &mut info.report;
        if report.state != state {
            report.state = state;
            report.state_since_ms = now_ms();
        }
        report.meeting_id = meetings.first().copied();
        report.meetings = meetings;
    }

    async fn report(&self) {
        let stats = self.inner.asr.pool.stats();
        let info = {
            let mut info = self.info();
            let report = &mut info.report;
            report.heartbeat_ms = now_ms();
            report.load = Load {
                backlog_ms: stats.backlog.as_millis() as u64,
                degraded: stats.degraded,
            };
            report.clone()
        };
        if let Err(e) = self.inner.queue.report(&info).await {
            tracing::warn!(error = %e, "cannot report the worker's state");
        }
    }

    /// Room for another meeting: fewer than the most it serves, and decoding keeping up.
    fn has_room(&self) -> bool {
        let meetings = self.info().meetings.len();
        meetings < self.inner.config.max_meetings.max(1)
            && self.inner.asr.pool.backlog() < FULL_BACKLOG
    }

    /// Serves assignments until `retire` (the launcher shrinks the pool: no new meetings, and
    /// it ends once its meetings have) or `shutdown` (at once: meetings in progress are handed
    /// to other workers).
    pub async fn run(self, mut retire: watch::Receiver<bool>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id(), max_meetings = self.inner.config.max_meetings, "bot worker ready");
        let reporter = {
            let worker = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    worker.report().await;
                }
            })
        };
        let mut meetings = JoinSet::new();
        let mut backoff = Duration::from_millis(250);
        loop {
            while meetings.try_join_next().is_some() {}
            let stopping = *retire.borrow() || *shutdown.borrow();
            if stopping && meetings.is_empty() {
                break;
            }
            if stopping || !self.has_room() {
                tokio::select! {
                    Some(_) = meetings.join_next() => {}
                    () = tokio::time::sleep(CLAIM_WAIT) => {}
                    r = shutdown.changed(), if !*shutdown.borrow() => {
                        if r.is_err() { break }
                        self.info().shutting_down = true;
                    }
                }
                continue;
            }
            let claimed = tokio::select! {
                c = self.inner.queue.claim(self.id(), CLAIM_WAIT) => c,
                r = retire.changed() => if r.is_ok() { continue } else { break },
                r = shutdown.changed() => if r.is_ok() { continue } else { break },
            };
            match claimed {
                Ok(None) => backoff = Duration::from_millis(250),
                Ok(Some(c)) => {
                    backoff = Duration::from_millis(250);
                    let meeting = c.assignment.meeting_id;
                    self.set_meeting(meeting, Some(WorkerState::Joining));
                    self.report().await;
                    let span =
                        tracing::info_span!("bot", meeting_id = %meeting, worker = %self.id());
                    let (worker, shutdown) = (self.clone(), shutdown.clone());
                    meetings.spawn(
                        async move {
                            worker.serve(c, shutdown).await;
                            worker.set_meeting(meeting, None);
                            worker.report().await;
                        }
                        .instrument(span),
                    );
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
        // Meetings still running hand themselves over when told to shut down.
        while meetings.join_next().await.is_some() {}
        reporter.abort();
        if let Err(e) = self.inner.queue.forget(self.id()).await {
            tracing::warn!(error = %e, "cannot remove the worker's report");
        }
        tracing::info!(worker = %self.id(), "bot worker stopped");
    }

    async fn serve(&self, c: Claimed, mut shutdown: watch::Receiver<bool>) {
        let meeting = c.assignment.meeting_id;
        if c.deliveries > MAX_DELIVERIES {
            let reason =
                format!("{MAX_DELIVERIES} bots in a row stopped in this meeting; giving up");
            self.fail(meeting, &reason).await;
            self.finish(&c).await;
            return;
        }
        match self.inner.queue.stop_requested(meeting).await {
            Ok(true) => {
                tracing::info!("meeting over before its bot joined");
                self.finish(&c).await;
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check for a stop request"),
        }
        let now = now_ms();
        let offset_ms = match self.inner.queue.clock_origin(meeting, now).await {
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
        let (leave_tx, leave_rx) = watch::channel(None);
        let attend = self.attend(&c, offset_ms, leave_rx, shutdown.clone());
        let heartbeat = self.heartbeat(&c, &leave_tx, &mut shutdown);
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
                self.hand_over(&c).await;
            }
            (Err(Attend::Unreachable(e)), _) if c.deliveries >= MAX_DELIVERIES => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot reach the meeting; giving up"
                );
                let reason =
                    format!("cannot reach the meeting ({MAX_DELIVERIES} bots tried): {e:#}");
                self.fail(meeting, &reason).await;
                self.finish(&c).await;
            }
            (Err(Attend::Unreachable(e)), _) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot reach the meeting; handing it to another bot"
                );
                self.hand_over(&c).await;
            }
            (Err(Attend::Meeting(e)), _) => {
                // The meeting may well go on: another bot tries (up to MAX_DELIVERIES).
                tracing::warn!(
                    error = format!("{e:#}"),
                    "bot failed in the meeting; handing it over"
                );
                self.hand_over(&c).await;
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
        shutdown: watch::Receiver<bool>,
    ) -> Result<u64, Attend> {
        let Assignment {
            meeting_id,
            link,
            record,
            announcement,
            ..
        } = &c.assignment;
        let config = &self.inner.config;
        let mut connector_config = config.connector.clone();
        if !record {
            connector_config.record_to = None;
        }
        let Some((mut connector, offset_ms)) = self
            .join(
                link,
                &connector_config,
                *meeting_id,
                offset_ms,
                leave.clone(),
            )
            .await?
        else {
            return Ok(0);
        };
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
        self.set_meeting(*meeting_id, Some(WorkerState::InMeeting));
        self.report().await;
        let mut sink = self
            .inner
            .bus
            .sink()
            .await
            .context("cannot reach the event bus")
            .map_err(Attend::Meeting)?;
        sink.give_up_on(shutdown);
        let pipeline = PipelineConfig {
            clock_offset_ms: offset_ms,
            ..config.pipeline
        };
        let until_told = async move {
            let _ = leave.wait_for(Option::is_some).await;
        };
        let report = run_meeting(
            *meeting_id,
            connector,
            &self.inner.asr.pool,
            pipeline,
            sink,
            until_told,
        )
        .await
        .map_err(|e| Attend::Meeting(e.into()))?;
        Ok(report.finals)
    }

    /// Joins, trying again while the failure is transient; the connector and the clock offset it
    /// joined at (retries took time the meeting's clock went on through), or `None` when told to
    /// leave first.
    async fn join(
        &self,
        link: &MeetingLink,
        config: &ConnectorConfig,
        meeting: MeetingId,
        offset_ms: u64,
        mut leave: watch::Receiver<Option<Leave>>,
    ) -> Result<Option<(AnyConnector, u64)>, Attend> {
        let started = tokio::time::Instant::now();
        let mut wait = JOIN_RETRY;
        for attempt in 1.. {
            let offset_ms = offset_ms + u64::try_from(started.elapsed().as_millis()).unwrap_or(0);
            let e = match AnyConnector::open(link, config, meeting, offset_ms).await {
                Ok(connector) => return Ok(Some((connector, offset_ms))),
                Err(e) if !e.is_transient() => return Err(Attend::Join(e.into())),
                Err(e) if attempt >= JOIN_ATTEMPTS => return Err(Attend::Unreachable(e.into())),
                Err(e) => e,
            };
            tracing::warn!(error = %e, attempt, "cannot join the meeting yet; trying again in {wait:?}");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = leave.wait_for(Option::is_some) => return Ok(None),
            }
            wait *= 2;
        }
        unreachable!("the attempts end by returning")
    }

    /// Renews the claim every [`HEARTBEAT`] and says when to leave. Never returns: it ends when
    /// the meeting does.
    async fn heartbeat(
        &self,
        c: &Claimed,
        leave: &watch::Sender<Option<Leave>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let meeting = c.assignment.meeting_id;
        let queue = &self.inner.queue;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed(), if leave.borrow().is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.set_meeting(meeting, Some(WorkerState::Leaving));
                        let _ = leave.send(Some(Leave::ShuttingDown));
                    }
                    continue;
                }
            }
            if *leave.borrow() == Some(Leave::Lost) {
                continue;
            }
            match queue.renew(self.id(), c).await {
                Ok(true) => {}
                Ok(false) => {
                    self.set_meeting(meeting, Some(WorkerState::Leaving));
                    let _ = leave.send(Some(Leave::Lost));
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the claim on this meeting"),
            }
            if leave.borrow().is_none() && matches!(queue.stop_requested(meeting).await, Ok(true)) {
                tracing::info!("asked to leave the meeting");
                self.set_meeting(meeting, Some(WorkerState::Leaving));
                let _ = leave.send(Some(Leave::Stopped));
            }
        }
    }

    /// Releases the meeting at once for another bot.
    async fn hand_over(&self, c: &Claimed) {
        if let Err(e) = self.inner.queue.release(c).await {
            tracing::warn!(error = %e, "cannot hand the meeting over; another bot takes it when the lease expires");
        }
    }

    async fn finish(&self, c: &Claimed) {
        if let Err(e) = self.inner.queue.complete(c).await {
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
        let published = match self.inner.bus.sink().await {
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
    /// Refused at the door: the assignment fails with the reason.
    Join(anyhow::Error),
    /// Could not reach the meeting, try after try: another bot may (up to MAX_DELIVERIES).
    Unreachable(anyhow::Error),
    /// Failed once inside: another bot may do better.
    Meeting(anyhow::Error),
}
