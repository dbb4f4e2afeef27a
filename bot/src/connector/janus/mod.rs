//! Janus VideoRoom connector: joins a room as a hidden control participant (room events, talking
//! events) plus one multistream subscriber carrying every publisher's audio, and turns it into
//! [`ConnectorEvent`]s. Each subscriber mid maps to a publisher (feed) from the `streams` list of
//! every `attached`/`updated` event, since Janus recycles mids. WebSocket loss, a session timeout
//! or ICE failure start a new session that re-subscribes; the speaker keys (`feed-<id>`) stay the
//! same, so the pipeline keeps each speaker's state.

mod forward;
pub mod protocol;
mod signalling;

pub use parley_shared::link::JanusLink;

use super::capture::CaptureWatch;
use super::session::{LeaveRequest, Outgoing, Present, SessionHandle, confirm_left, session};
use super::{ConnectorError, ConnectorEvent, Media};
use crate::connector::peer::{Peer, PeerEvent};
use parley_shared::{Speaker, SpeakerKey};
use protocol::{FeedId, Incoming, Jsep, Publisher, RoomEvent, SubStream, out};
use signalling::Signalling;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct JanusConfig {
    /// The name the bot joins under (it never publishes, so most clients do not show it).
    pub display: String,
    /// Local UDP addresses for ICE (`0.0.0.0:0` skips loopback interfaces).
    pub udp_bind: Vec<String>,
    pub keepalive: Duration,
    /// Leave once nobody else has published for this long.
    pub alone_timeout: Duration,
    /// Give up reconnecting after this long without a session.
    pub reconnect_for: Duration,
    pub request_timeout: Duration,
    /// Report a stalled capture (and reconnect) when someone talks but no audio arrives for this
    /// long.
    pub stall_after: Duration,
    /// Counters the session keeps; hold a clone to read them.
    pub stats: Arc<JanusStats>,
}

impl Default for JanusConfig {
    fn default() -> Self {
        Self {
            display: "Parley notes".to_owned(),
            udp_bind: vec!["0.0.0.0:0".to_owned()],
            keepalive: Duration::from_secs(20),
            alone_timeout: Duration::from_secs(120),
            reconnect_for: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
            stall_after: Duration::from_secs(30),
            stats: Arc::default(),
        }
    }
}

/// What the connector counted; read by health checks and tests.
#[derive(Debug, Default)]
pub struct JanusStats {
    pub rtp_packets: AtomicU64,
    /// Packets on a mid no publisher is mapped to (between renegotiations).
    pub unmapped_packets: AtomicU64,
    pub malformed_messages: AtomicU64,
    pub reconnects: AtomicU64,
    pub talking_events: AtomicU64,
}

/// State the track forwarders share with the session loop.
#[derive(Debug)]
struct Shared {
    started: Instant,
    events: mpsc::Sender<Outgoing>,
    /// Subscriber mid → the speaker whose audio it carries.
    mids: Mutex<HashMap<String, Speaker>>,
    present: Mutex<Present>,
    capture: Mutex<CaptureWatch>,
    stats: Arc<JanusStats>,
}

impl Shared {
    fn capture(&self) -> std::sync::MutexGuard<'_, CaptureWatch> {
        self.capture.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn send(&self, event: ConnectorEvent) {
        let _ = self.events.send(Ok(event)).await;
    }

    fn present(&self) -> std::sync::MutexGuard<'_, Present> {
        self.present.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers `speaker`'s media, announcing them the first time.
    async fn media(&self, speaker: Speaker, media: Media) {
        let events = self.present().media(speaker, self.at_ms(), media);
        for event in events {
            self.send(event).await;
        }
    }

    async fn left(&self, key: &SpeakerKey, reason: &str) {
        let left = self.present().left(key.clone(), self.at_ms(), reason);
        if let Some(event) = left {
            self.send(event).await;
        }
    }
}

/// A publisher's speaker key: stable across renegotiations and reconnects.
fn feed_key(feed: &str) -> String {
    format!("feed-{feed}")
}

fn speaker_of(feed: &str, display: Option<&str>) -> Option<Speaker> {
    Some(Speaker {
        key: SpeakerKey::parse(feed_key(feed)).ok()?,
        name: display
            .filter(|d| !d.trim().is_empty())
            .map_or_else(|| format!("Participant {feed}"), str::to_owned),
    })
}

/// Joins the room. Errors that retrying cannot fix (no such room, wrong pin) come back here;
/// later losses are retried by the session task.
pub async fn join(url: JanusLink, config: JanusConfig) -> Result<SessionHandle, ConnectorError> {
    let (mut handle, tx, leave) = session(1024);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        events: tx,
        mids: Mutex::new(HashMap::new()),
        present: Mutex::new(Present::default()),
        capture: Mutex::new(CaptureWatch::new(config.stall_after)),
        stats: Arc::clone(&config.stats),
    });
    let session = Session::open(&url, &config, Arc::clone(&shared)).await?;
    handle.start(run(session, url, config, shared, leave));
    Ok(handle)
}

/// Why a session ended.
enum End {
    /// Asked to leave; answered on the sender once gone.
    Left(Result<oneshot::Sender<()>, oneshot::error::RecvError>),
    /// The meeting is over: the room was destroyed or everyone left.
    Ended(String),
    /// The connection broke; try a new session.
    Lost(String),
}

async fn run(
    mut session: Session,
    url: JanusLink,
    config: JanusConfig,
    shared: Arc<Shared>,
    mut leave: LeaveRequest,
) {
    loop {
        match session.serve(&config, &mut leave).await {
            End::Left(done) => {
                session.close().await;
                return confirm_left(done);
            }
            End::Ended(reason) => {
                session.close().await;
                shared
                    .send(ConnectorEvent::Ended {
                        at_ms: shared.at_ms(),
                        reason,
                    })
                    .await;
                return;
            }
            End::Lost(why) => {
                tracing::warn!(reason = why, "lost the Janus session; reconnecting");
                session.close().await;
                let deadline = Instant::now() + config.reconnect_for;
                let mut backoff = Duration::from_millis(500);
                session = loop {
                    shared.stats.reconnects.fetch_add(1, Relaxed);
                    match Session::open(&url, &config, Arc::clone(&shared)).await {
                        Ok(s) => break s,
                        Err(e) if Instant::now() < deadline => {
                            tracing::warn!(error = %e, "cannot reconnect to Janus yet");
                            tokio::select! {
                                done = &mut leave => return confirm_left(done),
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                        Err(e) => {
                            let _ = shared
                                .events
                                .send(Err(ConnectorError::Lost(format!(
                                    "no Janus session for {} s: {e}",
                                    config.reconnect_for.as_secs()
                                ))))
                                .await;
                            return;
                        }
                    }
                };
            }
        }
    }
}

/// One Janus session: the signalling socket, the control and subscriber handles and the
/// subscriber's peer connection.
struct Session {
    sig: Signalling,
    room: u64,
    pin: Option<String>,
    ctl: u64,
    sub: u64,
    private_id: Option<u64>,
    /// Publishers with audio, by feed.
    publishers: HashMap<FeedId, Publisher>,
    subscribed: bool,
    peer: Peer,
    shared: Arc<Shared>,
    alone_since: Option<Instant>,
}

impl Session {
    async fn open(
        url: &JanusLink,
        config: &JanusConfig,
        shared: Arc<Shared>,
    ) -> Result<Self, ConnectorError> {
        let setup = |e: String| ConnectorError::Setup(e);
        // Not reaching the server may pass (a restart, a network blip); what it answers once
        // reached does not.
        let mut sig =
            Signalling::connect(&url.ws, config.request_timeout, Arc::clone(&shared.stats))
                .await
                .map_err(ConnectorError::Unreachable)?;
        let session_id = sig.create().await.map_err(setup)?;
        let ctl = sig.attach().await.map_err(setup)?;
        let sub = sig.attach().await.map_err(setup)?;
        let display = url.display.as_deref().unwrap_or(&config.display);
        let reply = sig
            .message(
                ctl,
                out::join_publisher(url.room, display, url.pin.as_deref()),
                None,
            )
            .await
            .map_err(setup)?;
        let (private_id, publishers) = match reply {
            Incoming::Event {
                event:
                    RoomEvent::Joined {
                        private_id,
                        publishers,
                    },
                ..
            } => (private_id, publishers),
            Incoming::Event {
                event: RoomEvent::Error { code, reason },
                ..
            }
            | Incoming::Error { code, reason, .. } => {
                return Err(setup(format!(
                    "Janus refused to join room {}: {reason} ({code})",
                    url.room
                )));
            }
            other => return Err(setup(format!("unexpected reply to join: {other:?}"))),
        };
        tracing::info!(
            session_id,
            room = url.room,
            publishers = publishers.len(),
            "joined the Janus room"
        );
        let peer = Peer::new(&config.udp_bind, Vec::new())
            .await
            .map_err(setup)?;
        let mut session = Self {
            sig,
            room: url.room,
            pin: url.pin.clone(),
            ctl,
            sub,
            private_id,
            publishers: HashMap::new(),
            subscribed: false,
            peer,
            shared,
            alone_since: None,
        };
        session.reconcile_present(&publishers).await;
        session.add_publishers(publishers).await.map_err(setup)?;
        Ok(session)
    }

    /// After a reconnect: whoever we had announced but who is no longer publishing has left.
    async fn reconcile_present(&self, publishers: &[Publisher]) {
        let live: HashSet<SpeakerKey> = publishers
            .iter()
            .filter_map(|p| speaker_of(&p.id, p.display.as_deref()).map(|s| s.key))
            .collect();
        let gone = self.shared.present().missing_from(&live);
        for key in gone {
            self.shared
                .left(&key, "left while the bot reconnected")
                .await;
        }
    }

    /// Subscribes to the audio of publishers we do not have yet.
    async fn add_publishers(&mut self, publishers: Vec<Publisher>) -> Result<(), String> {
        let mut fresh = Vec::new();
        for p in publishers {
            if p.audio_mids.is_empty() {
                tracing::info!(feed = p.id, "publisher without audio ignored");
                continue;
            }
            if !self.publishers.contains_key(&p.id) {
                fresh.push(p.clone());
            }
            self.publishers.insert(p.id.clone(), p);
        }
        if fresh.is_empty() {
            return Ok(());
        }
        self.alone_since = None;
        let streams = out::stream_list(&fresh.iter().collect::<Vec<_>>());
        let body = if self.subscribed {
            out::subscribe(streams)
        } else {
            out::join_subscriber(self.room, self.private_id, self.pin.as_deref(), streams)
        };
        let reply = self.sig.message(self.sub, body, None).await?;
        self.subscribed = true;
        self.on_sub_event(reply).await
    }

    /// Handles an event on the subscriber handle: remap mids, answer an offer.
    async fn on_sub_event(&mut self, reply: Incoming) -> Result<(), String> {
        match reply {
            Incoming::Event { event, jsep, .. } => {
                if let RoomEvent::Attached(streams) | RoomEvent::Updated(streams) = &event {
                    self.remap(streams);
                }
                if let RoomEvent::Error { code, reason } = &event {
                    return Err(format!("Janus refused the subscription: {reason} ({code})"));
                }
                if let Some(offer) = jsep.filter(|j| j.kind == "offer") {
                    let answer = self.peer.answer(&offer.sdp).await?;
                    let started = self
                        .sig
                        .message(
                            self.sub,
                            out::start(),
                            Some(&Jsep {
                                kind: "answer".to_owned(),
                                sdp: answer,
                            }),
                        )
                        .await?;
                    if let Incoming::Event {
                        event: RoomEvent::Error { code, reason },
                        ..
                    } = started
                    {
                        return Err(format!("Janus refused our answer: {reason} ({code})"));
                    }
                }
                Ok(())
            }
            Incoming::Error { code, reason, .. } => Err(format!("{reason} ({code})")),
            _ => Ok(()),
        }
    }

    fn remap(&self, streams: &[SubStream]) {
        let map: HashMap<String, Speaker> = streams
            .iter()
            .filter(|s| s.audio && s.active)
            .filter_map(|s| {
                let feed = s.feed.as_deref()?;
                let display = s
                    .display
                    .as_deref()
                    .or_else(|| self.publishers.get(feed).and_then(|p| p.display.as_deref()));
                Some((s.mid.clone(), speaker_of(feed, display)?))
            })
            .collect();
        *self.shared.mids.lock().unwrap_or_else(|p| p.into_inner()) = map;
    }

    async fn serve(&mut self, config: &JanusConfig, leave: &mut LeaveRequest) -> End {
        let mut keepalive = tokio::time::interval(config.keepalive);
        keepalive.tick().await;
        let mut alone_check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                done = &mut *leave => return End::Left(done),
                msg = self.sig.next_unsolicited() => {
                    let Some(msg) = msg else {
                        return End::Lost("the signalling socket closed".to_owned());
                    };
                    if let Some(end) = self.on_unsolicited(msg).await {
                        return end;
                    }
                }
                event = self.peer.next() => match event {
                    PeerEvent::Track(track) => {
                        forward::forward(track, self.peer.connection(), Arc::clone(&self.shared));
                    }
                    PeerEvent::Failed => return End::Lost("the media connection failed".to_owned()),
                },
                _ = keepalive.tick() => {
                    if let Err(e) = self.sig.keepalive().await {
                        return End::Lost(e);
                    }
                }
                _ = alone_check.tick() => {
                    let health = self.shared.capture().poll(Instant::now());
                    match health {
                        Some(Err(key)) => {
                            let who = self
                                .publishers
                                .values()
                                .find(|p| feed_key(&p.id) == key)
                                .and_then(|p| p.display.clone())
                                .unwrap_or(key);
                            let reason = format!(
                                "{who} is talking but none of their audio has arrived for {} s",
                                config.stall_after.as_secs()
                            );
                            self.shared
                                .send(ConnectorEvent::Capture {
                                    healthy: false,
                                    at_ms: self.shared.at_ms(),
                                    reason: Some(reason.clone()),
                                })
                                .await;
                            return End::Lost(reason);
                        }
                        Some(Ok(())) => {
                            self.shared
                                .send(ConnectorEvent::Capture {
                                    healthy: true,
                                    at_ms: self.shared.at_ms(),
                                    reason: None,
                                })
                                .await;
                        }
                        None => {}
                    }
                    if self.publishers.is_empty() {
                        let since = *self.alone_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= config.alone_timeout {
                            return End::Ended(format!(
                                "nobody else in the room for {} s",
                                config.alone_timeout.as_secs()
                            ));
                        }
                    }
                }
            }
        }
    }

    async fn on_unsolicited(&mut self, msg: Incoming) -> Option<End> {
        match msg {
            Incoming::Event {
                sender,
                event,
                jsep,
                ..
            } => {
                if sender == Some(self.sub) {
                    if let Err(e) = self
                        .on_sub_event(Incoming::Event {
                            transaction: None,
                            sender,
                            event,
                            jsep,
                        })
                        .await
                    {
                        return Some(End::Lost(e));
                    }
                    return None;
                }
                match event {
                    RoomEvent::Publishers(list) => {
                        if let Err(e) = self.add_publishers(list).await {
                            return Some(End::Lost(e));
                        }
                    }
                    RoomEvent::Gone(feed) => {
                        self.shared.capture().gone(&feed_key(&feed));
                        if let Some(p) = self.publishers.remove(&feed)
                            && let Some(speaker) = speaker_of(&p.id, p.display.as_deref())
                        {
                            self.shared.left(&speaker.key, "left the room").await;
                        }
                    }
                    RoomEvent::Talking { feed, talking } => {
                        self.shared.stats.talking_events.fetch_add(1, Relaxed);
                        self.shared
                            .capture()
                            .talking(&feed_key(&feed), talking, Instant::now());
                    }
                    RoomEvent::Destroyed => {
                        return Some(End::Ended("the room was destroyed".to_owned()));
                    }
                    _ => {}
                }
                None
            }
            Incoming::Hangup { sender, reason } if sender == Some(self.sub) => {
                Some(End::Lost(format!("Janus hung up the media: {reason}")))
            }
            Incoming::Timeout => Some(End::Lost("the Janus session timed out".to_owned())),
            _ => None,
        }
    }

    async fn close(&mut self) {
        for handle in [self.sub, self.ctl] {
            let _ = self.sig.message_nowait(handle, out::leave()).await;
        }
        let _ = self.sig.destroy().await;
        self.peer.close().await;
    }
}
