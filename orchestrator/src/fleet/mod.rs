//! The bot fleet, orchestrator side: the scheduler that queues a bot for each due meeting
//! (within the fleet's and the user's limits), and the controller that sizes the pool of
//! workers through a launcher. Both run on one replica at a time: the holder of the scheduler
//! lock (a Postgres advisory lock).

pub mod config;
pub mod launchers;
pub mod reach;

use crate::clock::now_ms;
use crate::live::share_link;
use crate::metrics::Metrics;
use crate::store::{FleetSettings, Leadership, Meeting, MeetingStatus, Store, StoreError};
use crate::webhooks::Outgoing;
use launchers::AnyLauncher;
use parley_bot::egress::EgressGuard;
use parley_bot::fleet::{AnyQueue, Assignment, BotInfo, QueueDepth, QueueError};
use parley_shared::{BotState, MeetingId, MeetingLink, Platform};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the controller looks at due meetings and the pool when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("assignment queue: {0}")]
    Queue(#[from] QueueError),
}

/// What became of a request for a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    Queued,
    /// The meeting was not waiting for a bot (another replica or request took it).
    NotScheduled,
    /// As many bots as the fleet may run are busy or queued.
    FleetFull,
    /// The meeting's owner has as many bots in meetings as one user may.
    UserLimit,
    /// The link sends the bot where users may not (`reach`); the meeting failed with the reason.
    Refused,
}

#[derive(Debug)]
pub struct Fleet {
    queue: AnyQueue,
    store: Store,
    metrics: Arc<Metrics>,
    launcher: AnyLauncher,
    /// Settings until an admin sets them.
    defaults: FleetSettings,
    /// Meetings a worker serves at once, unless the workers report otherwise.
    meetings_per_worker: usize,
    /// Base of the captions link bots post to the meeting chat; `None` posts nothing.
    chat_link_base: Option<Arc<str>>,
    /// Checks the servers user links send bots to.
    egress: EgressGuard,
    wake: Notify,
}

/// The fleet as `GET /admin/fleet` shows it.
#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub launcher: &'static str,
    pub settings: FleetSettings,
    pub queue: QueueDepth,
    pub bots: Vec<BotView>,
}

#[derive(Debug, Serialize)]
pub struct BotView {
    #[serde(flatten)]
    pub info: BotInfo,
    pub uptime_s: u64,
}

/// How the fleet sends bots, as configured.
#[derive(Debug)]
pub struct Dispatch {
    /// Settings until an admin sets them.
    pub defaults: FleetSettings,
    /// Meetings a worker serves at once, unless the workers report otherwise.
    pub meetings_per_worker: usize,
    /// Base of the captions link bots post to the meeting chat; `None` posts nothing.
    pub chat_link_base: Option<Arc<str>>,
    /// Checks the servers user links send bots to.
    pub egress: EgressGuard,
}

impl Fleet {
    pub fn new(
        queue: AnyQueue,
        store: Store,
        metrics: Arc<Metrics>,
        launcher: AnyLauncher,
        dispatch: Dispatch,
    ) -> Self {
        let Dispatch {
            defaults,
            meetings_per_worker,
            chat_link_base,
            egress,
        } = dispatch;
        Self {
            queue,
            store,
            metrics,
            launcher,
            defaults,
            meetings_per_worker: meetings_per_worker.max(1),
            chat_link_base,
            egress,
            wake: Notify::new(),
        }
    }

    /// Makes the controller look at due meetings now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn settings(&self) -> Result<FleetSettings, StoreError> {
        Ok(self.store.fleet_settings().await?.unwrap_or(self.defaults))
    }

    pub async fn set_settings(&self, s: FleetSettings) -> Result<(), StoreError> {
        self.store.set_fleet_settings(s, now_ms()).await?;
        self.wake();
        Ok(())
    }

    pub async fn status(&self) -> Result<FleetStatus, FleetError> {
        let now = now_ms();
        let bots = self
            .queue
            .bots(now)
            .await?
            .into_iter()
            .map(|info| BotView {
                uptime_s: now.saturating_sub(info.started_ms) / 1000,
                info,
            })
            .collect();
        Ok(FleetStatus {
            launcher: self.launcher.name(),
            settings: self.settings().await?,
            queue: self.queue.depth().await?,
            bots,
        })
    }

    /// Queues a bot for a meeting now, if the limits allow; `link` replaces the meeting's URL
    /// as the bot's way in (a Zoom meeting's RTMS stream).
    pub async fn assign_now(
        &self,
        meeting: &Meeting,
        link: Option<MeetingLink>,
    ) -> Result<Assigned, FleetError> {
        let settings = self.settings().await?;
        let mut depth = self.queue.depth().await?;
        let assigned = self.assign(meeting, link, settings, &mut depth).await?;
        self.wake();
        Ok(assigned)
    }

    async fn assign(
        &self,
        meeting: &Meeting,
        link: Option<MeetingLink>,
        settings: FleetSettings,
        depth: &mut QueueDepth,
    ) -> Result<Assigned, FleetError> {
        if depth.active + depth.queued >= u64::from(settings.max_bots) {
            return Ok(Assigned::FleetFull);
        }
        if self.store.meetings_with_bots(meeting.owner_id).await? >= settings.per_user {
            return Ok(Assigned::UserLimit);
        }
        let now = now_ms();
        let id = meeting.meeting_id;
        if !self.store.claim_meeting(id, now).await? {
            return Ok(Assigned::NotScheduled);
        }
        // The link is parsed here, once: the bot gets it typed.
        let link = match link.map_or_else(|| meeting.url.link(), Ok) {
            Err(reason) => Err(format!("cannot join the meeting: {reason}")),
            Ok(link) => match reach::check_link(&self.egress, &link).await {
                Ok(()) => Ok(link),
                Err(reason) => {
                    tracing::warn!(meeting_id = %id, "a meeting's link points at an internal network; no bot sent");
                    Err(reason)
                }
            },
        };
        let link = match link {
            Ok(link) => link,
            Err(reason) => {
                self.store
                    .set_meeting_status(id, MeetingStatus::Failed, Some(&reason), now)
                    .await?;
                let failed = Outgoing::status(BotState::Failed, Some(&reason), "dispatch");
                crate::webhooks::emit(&self.store, id, &[failed], now).await?;
                return Ok(Assigned::Refused);
            }
        };
        let announcement = self
            .chat_link_base
            .as_deref()
            .zip(meeting.share_token.as_ref())
            .map(|(base, token)| {
                format!("Live captions of this meeting: {}", share_link(base, token))
            });
        let assignment = Assignment {
            v: parley_shared::fleet::FLEET_VERSION,
            meeting_id: id,
            link,
            record: meeting.record,
            announcement,
            dispatched_ms: now,
        };
        if let Err(e) = self.queue.publish(&assignment).await {
            self.store.unclaim_meeting(id).await?;
            return Err(e.into());
        }
        depth.queued += 1;
        self.metrics.bots_dispatched.fetch_add(1, Relaxed);
        tracing::info!(meeting_id = %id, "bot queued for the meeting");
        Ok(Assigned::Queued)
    }

    /// Asks the meeting's bot to leave.
    pub async fn stop(&self, id: MeetingId) -> Result<(), QueueError> {
        self.queue.request_stop(id).await
    }

    /// Schedules and sizes the fleet while this replica holds the scheduler lock, until
    /// `shutdown`; then stops the workers this replica launched.
    pub async fn run(self: Arc<Self>, lead: Duration, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut leadership: Option<Leadership> = None;
        loop {
            leadership = self.keep_lead(leadership).await;
            if let Err(e) = self.tick(leadership.is_some(), lead).await {
                tracing::warn!(error = %e, "fleet controller");
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
        drop(leadership);
        self.launcher.shutdown().await;
    }

    async fn keep_lead(&self, held: Option<Leadership>) -> Option<Leadership> {
        match held {
            Some(mut l) => {
                if l.holds().await {
                    Some(l)
                } else {
                    tracing::warn!("lost the scheduler lock; another replica schedules bots");
                    None
                }
            }
            None => match self.store.try_lead().await {
                Ok(Some(l)) => {
                    tracing::info!("this replica schedules bots and sizes the fleet");
                    Some(l)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the scheduler lock");
                    None
                }
            },
        }
    }

    async fn tick(&self, leader: bool, lead: Duration) -> Result<(), FleetError> {
        let now = now_ms();
        let bots = self.queue.bots(now).await?;
        let mut depth = self.queue.depth().await?;
        if leader {
            let settings = self.settings().await?;
            let due = self
                .store
                .due_meetings(now + lead.as_millis() as u64)
                .await?;
            // A Zoom meeting's bot goes when Zoom says its media stream started (the webhook).
            for meeting in due.into_iter().filter(|m| m.platform != Platform::Zoom) {
                match self.assign(&meeting, None, settings, &mut depth).await {
                    Ok(Assigned::Queued | Assigned::NotScheduled | Assigned::Refused) => {}
                    Ok(limit) => {
                        self.metrics.dispatch_deferred.fetch_add(1, Relaxed);
                        tracing::debug!(meeting_id = %meeting.meeting_id, ?limit, "meeting waits for a bot");
                    }
                    Err(e) => {
                        tracing::warn!(meeting_id = %meeting.meeting_id, error = %e, "cannot queue a bot")
                    }
                }
            }
            let desired = workers_needed(depth, settings, self.meetings_per_worker, &bots);
            self.metrics.set_fleet_size(desired, settings);
            if let Err(e) = self.launcher.scale(desired as usize, &bots).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    launcher = self.launcher.name(),
                    "cannot size the bot fleet"
                );
            }
        }
        self.metrics.set_fleet(&bots, depth, now);
        Ok(())
    }
}

/// Workers the fleet needs: enough places for the meetings in progress, those waiting and the
/// free places to keep, within the fleet's limit. A worker has as many places as it reports
/// (Kubernetes pods carry their own setting), else as many as this server gives its workers.
fn workers_needed(
    depth: QueueDepth,
    settings: FleetSettings,
    meetings_per_worker: usize,
    bots: &[BotInfo],
) -> u64 {
    let per_worker = bots
        .iter()
        .map(|b| u64::from(b.max_meetings))
        .max()
        .unwrap_or(meetings_per_worker as u64)
        .max(1);
    let places = (depth.active + depth.queued + u64::from(settings.min_idle))
        .min(u64::from(settings.max_bots));
    places.div_ceil(per_worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_counted_in_meeting_places() {
        let settings = FleetSettings {
            min_idle: 1,
            max_bots: 10,
            per_user: 2,
        };
        let depth = |active, queued| QueueDepth {
            active,
            queued,
            oldest_queued_ms: None,
        };
        assert_eq!(workers_needed(depth(0, 0), settings, 4, &[]), 1);
        assert_eq!(workers_needed(depth(3, 0), settings, 4, &[]), 1);
        assert_eq!(workers_needed(depth(4, 0), settings, 4, &[]), 2);
        assert_eq!(
            workers_needed(depth(9, 5), settings, 4, &[]),
            3,
            "within max_bots"
        );
        assert_eq!(
            workers_needed(depth(3, 0), settings, 1, &[]),
            4,
            "one meeting each"
        );
        let idle = |slots| BotInfo {
            v: parley_shared::fleet::FLEET_VERSION,
            worker_id: "w".into(),
            state: parley_bot::fleet::WorkerState::Idle,
            meeting_id: None,
            meetings: Vec::new(),
            max_meetings: slots,
            load: Default::default(),
            host: "h".into(),
            pid: 1,
            started_ms: 0,
            state_since_ms: 0,
            heartbeat_ms: 0,
        };
        assert_eq!(
            workers_needed(depth(7, 0), settings, 1, &[idle(8)]),
            1,
            "workers say how many"
        );
    }
}
