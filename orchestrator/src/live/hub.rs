//! One hub per meeting with viewers on this replica: it tails the meeting's live log and
//! broadcasts each entry once, serialized once, to every viewer; and it watches the meeting's
//! title, status and share token so viewers learn of changes and revocation within a second.

use super::cursor::Cursor;
use super::log::{LiveLog, LiveSegment};
use crate::auth::ShareToken;
use crate::metrics::Metrics;
use crate::store::{Meeting, MeetingStatus, Store};
use crate::supervise::Task;
use axum::extract::ws::Utf8Bytes;
use parley_shared::MeetingId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// Entries a viewer may fall behind before it is resynchronised from a snapshot.
const VIEWER_BUFFER: usize = 512;
/// How long a tail read waits, and how often the meeting row is re-read: together they bound
/// how late a revocation closes sockets.
const TICK: Duration = Duration::from_millis(250);
/// A hub whose last viewer left lingers this long, so a reloading page finds it still running.
const LINGER: Duration = Duration::from_secs(5);

/// A log entry as viewers receive it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub cursor: Cursor,
    pub text: Utf8Bytes,
}

/// What viewers show besides captions, and whether their link still works.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingState {
    pub title: String,
    pub status: MeetingStatus,
    /// `None` when the link was revoked or the meeting deleted.
    pub token: Option<ShareToken>,
}

impl MeetingState {
    fn of(meeting: &Meeting) -> Self {
        Self {
            title: meeting.title.clone(),
            status: meeting.status,
            token: meeting.share_token.clone(),
        }
    }
}

/// A viewer's subscription.
pub struct Subscription {
    pub frames: broadcast::Receiver<Frame>,
    pub state: watch::Receiver<MeetingState>,
}

struct Hub {
    frames: broadcast::Sender<Frame>,
    state: watch::Receiver<MeetingState>,
}

pub struct Hubs {
    pub log: LiveLog,
    pub store: Store,
    metrics: Arc<Metrics>,
    hubs: Mutex<HashMap<MeetingId, Hub>>,
    /// Closes every viewer's socket when the server shuts down.
    pub stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for Hubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hubs")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Hubs {
    pub fn new(
        log: LiveLog,
        store: Store,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            log,
            store,
            metrics,
            hubs: Mutex::new(HashMap::new()),
            stop,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<MeetingId, Hub>> {
        self.hubs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every stored segment of the meeting (partials included) and the log position they
    /// reflect: the head is read first, so anything appended later is newer than it.
    pub async fn history(&self, id: MeetingId) -> anyhow::Result<(Cursor, Vec<LiveSegment>)> {
        let head = self.log.head(id).await?;
        let segments = self.store.segments(id, true).await?;
        Ok((
            head,
            segments.into_iter().map(LiveSegment::from_stored).collect(),
        ))
    }

    /// Viewers connected to this replica, over all meetings.
    pub fn viewers(&self) -> usize {
        self.lock()
            .values()
            .map(|h| h.frames.receiver_count())
            .sum()
    }

    /// Subscribes to a meeting's hub, starting one if needed. A new hub starts tailing at the
    /// log's head as read here, before the caller reads its own starting point, so every entry
    /// after the caller's start reaches it.
    pub async fn subscribe(self: &Arc<Self>, meeting: &Meeting) -> anyhow::Result<Subscription> {
        let id = meeting.meeting_id;
        if let Some(sub) = self.existing(id) {
            return Ok(sub);
        }
        let head = self.log.head(id).await?;
        let mut hubs = self.lock();
        if let Some(hub) = hubs.get(&id) {
            return Ok(Subscription {
                frames: hub.frames.subscribe(),
                state: hub.state.clone(),
            });
        }
        let (frames, rx) = broadcast::channel(VIEWER_BUFFER);
        let (state_tx, state) = watch::channel(MeetingState::of(meeting));
        hubs.insert(
            id,
            Hub {
                frames: frames.clone(),
                state: state.clone(),
            },
        );
        tokio::spawn(run(Arc::clone(self), id, head, frames, state_tx));
        Ok(Subscription { frames: rx, state })
    }

    fn existing(&self, id: MeetingId) -> Option<Subscription> {
        self.lock().get(&id).map(|hub| Subscription {
            frames: hub.frames.subscribe(),
            state: hub.state.clone(),
        })
    }

    /// Removes the hub if nobody subscribed since it found itself idle.
    fn retire(&self, id: MeetingId, frames: &broadcast::Sender<Frame>) -> bool {
        let mut hubs = self.lock();
        if frames.receiver_count() > 0 {
            return false;
        }
        hubs.remove(&id);
        true
    }
}

/// Takes a hub out of the map when its task ends, however it ends: after a panic its viewers'
/// streams close (the pages reconnect) and the next subscriber starts a new hub, instead of
/// everyone waiting on one that is gone.
struct Retire {
    hubs: Arc<Hubs>,
    id: MeetingId,
    frames: broadcast::Sender<Frame>,
}

impl Drop for Retire {
    fn drop(&mut self) {
        let mut hubs = self.hubs.lock();
        if hubs
            .get(&self.id)
            .is_some_and(|h| h.frames.same_channel(&self.frames))
        {
            hubs.remove(&self.id);
        }
        drop(hubs);
        if std::thread::panicking() {
            tracing::error!(meeting_id = %self.id, "a live captions hub failed; its viewers reconnect to a new one");
            self.hubs.metrics.task_restarted(Task::LiveHub);
        }
    }
}

async fn run(
    hubs: Arc<Hubs>,
    id: MeetingId,
    mut pos: Cursor,
    frames: broadcast::Sender<Frame>,
    state: watch::Sender<MeetingState>,
) {
    let _retire = Retire {
        hubs: Arc::clone(&hubs),
        id,
        frames: frames.clone(),
    };
    let mut tail = None;
    let mut last_poll = Instant::now();
    let mut idle_since: Option<Instant> = None;
    let mut failing = false;
    while !*hubs.stop.borrow() {
        if tail.is_none() {
            match hubs.log.tail().await {
                Ok(t) => tail = Some(t),
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "live captions cannot tail the log"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if let Some(t) = tail.as_mut() {
            match t.next(id, pos, TICK).await {
                Ok(entries) => {
                    failing = false;
                    for (cursor, json) in entries {
                        pos = cursor;
                        let text = super::segment_message(cursor, &json);
                        // No receivers is fine: the hub retires below.
                        let _ = frames.send(Frame {
                            cursor,
                            text: text.into(),
                        });
                    }
                }
                Err(_) if *hubs.stop.borrow() => return,
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "live captions lost the log; retrying"
                        );
                    }
                    failing = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if last_poll.elapsed() >= TICK {
            last_poll = Instant::now();
            match hubs.store.meeting(id).await {
                Ok(Some(m)) => {
                    state.send_if_modified(|s| replace(s, MeetingState::of(&m)));
                }
                Ok(None) => {
                    state.send_if_modified(|s| {
                        replace(
                            s,
                            MeetingState {
                                token: None,
                                ..s.clone()
                            },
                        )
                    });
                }
                Err(_) if *hubs.stop.borrow() => return,
                Err(e) => tracing::warn!(error = %e, "live captions cannot read the meeting"),
            }
        }
        if frames.receiver_count() == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= LINGER && hubs.retire(id, &frames) {
                return;
            }
        } else {
            idle_since = None;
        }
    }
}

fn replace(current: &mut MeetingState, new: MeetingState) -> bool {
    if *current == new {
        return false;
    }
    *current = new;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hub_that_fails_leaves_the_map_and_closes_its_viewers() {
        let dir = tempfile::tempdir().expect("dir");
        let sealer = crate::auth::Sealer::from_data_dir(dir.path()).expect("key");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::open(&url, Arc::new(sealer)).await.expect("store");
        let metrics = Arc::new(Metrics::default());
        let (_stop, stop) = watch::channel(false);
        let hubs = Arc::new(Hubs::new(
            LiveLog::memory(),
            store,
            Arc::clone(&metrics),
            stop,
        ));
        let id = MeetingId::new_random();
        let (frames, mut viewer) = broadcast::channel(4);
        let (_, state) = watch::channel(MeetingState {
            title: String::new(),
            status: MeetingStatus::InProgress,
            token: None,
        });
        hubs.lock().insert(
            id,
            Hub {
                frames: frames.clone(),
                state,
            },
        );
        let retire = Retire {
            hubs: Arc::clone(&hubs),
            id,
            frames,
        };
        let failed = tokio::spawn(async move {
            let _retire = retire;
            panic!("a hub fails");
        })
        .await;
        assert!(failed.is_err_and(|e| e.is_panic()));
        assert!(hubs.lock().is_empty(), "the next viewer starts a new hub");
        assert!(matches!(
            viewer.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert!(
            metrics
                .render()
                .contains("parley_task_restarts_total{task=\"live_hub\"} 1"),
            "{}",
            metrics.render()
        );
    }
}
