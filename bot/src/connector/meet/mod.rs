//! Google Meet through the Meet Media API (developer preview): no browser, no bot tile. The bot
//! exchanges its refresh token for an access token, offers a receive-only WebRTC session (three
//! audio transceivers and the API's data channels) to `connectActiveConference`, and applies
//! the answer. Meet then sends the three loudest speakers on three virtual audio streams, each
//! packet's CSRC naming its speaker; the `media-entries` and `participants` channels map a CSRC
//! to a participant and their name, and `session-control` says when the session is joined or
//! over. https://developers.google.com/workspace/meet/media-api/guides/overview

pub mod oauth;
pub mod protocol;
pub mod streams;

use super::peer::{Peer, PeerEvent, RTCIceServer};
use super::session::{LeaveRequest, Outgoing, Present, SessionHandle, session};
use super::{ConnectorError, ConnectorEvent, Media, MeetingConnector};
use crate::audio::OPUS_RATE;
use crate::audio::jitter::{JitterConfig, RtpPacket};
use oauth::GoogleCredentials;
use parley_shared::link::MeetLink;
use parley_shared::{Speaker, SpeakerKey};
use protocol::{LOUDEST_SPEAKER_CSRC, MediaEntry, Participant, SessionStatus, Update};
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::RTCRtpTransceiverInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streams::{Demuxed, VirtualPacket, VirtualStreams};
use tokio::sync::{mpsc, oneshot};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Meet sends exactly three virtual audio streams, for which the offer must have three
/// receive-only audio transceivers (or none).
const AUDIO_STREAMS: usize = 3;
/// A data-channel message this large is not one the API sends.
const MAX_MESSAGE: usize = 1 << 20;
/// A virtual stream without packets this long carries nobody.
const STREAM_IDLE_MS: u64 = 600;
const CHANNEL: usize = 1024;

#[derive(Debug, Clone)]
pub struct MeetConfig {
    pub credentials: GoogleCredentials,
    /// The Meet REST API (Google's unless testing).
    pub api_url: String,
    pub udp_bind: Vec<String>,
    pub stun: Vec<String>,
    /// Keep trying while the meeting has not started (`NO_ACTIVE_CONFERENCE`) for this long.
    pub wait_for_start: Duration,
    /// Leave once nobody is in the conference for this long.
    pub alone_timeout: Duration,
}

/// What the Media API said instead of an answer, in words a workspace admin can act on.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> (bool, String) {
    let error: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &error["error"];
    let message = error["message"].as_str().unwrap_or_default();
    let reasons: Vec<&str> = error["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|d| d["reason"].as_str()).collect())
        .unwrap_or_default();
    // https://developers.google.com/workspace/meet/media-api/guides/troubleshoot
    let has = |code: &str| reasons.contains(&code) || message.contains(code);
    let advice = if has("NO_ACTIVE_CONFERENCE") {
        return (
            true,
            "the meeting has not started: no conference is active in it yet".to_owned(),
        );
    } else if has("ACCESS_TOKEN_SCOPE_INSUFFICIENT") {
        format!(
            "the bot's Google token lacks the Media API scope; authorize it again with {}",
            oauth::AUDIO_SCOPE
        )
    } else if has("CONSENTER_ABSENT") {
        "nobody who can consent to the recording is in the call (the organiser, or a member of \
         the owning organisation)"
            .to_owned()
    } else if has("INCOMPATIBLE_DEVICE") || has("UNSUPPORTED_PLATFORM_PRESENT") {
        "a participant's device or account cannot be captured through the Media API (for example \
         an account under age or an old mobile app)"
            .to_owned()
    } else if has("CONNECTIONS_EXHAUSTED") {
        "another Media API client is already connected to this conference".to_owned()
    } else if has("INVALID_OFFER") {
        "Meet refused the bot's WebRTC offer".to_owned()
    } else if status == reqwest::StatusCode::UNAUTHORIZED {
        "Google refused the access token".to_owned()
    } else if status == reqwest::StatusCode::FORBIDDEN {
        "permission denied: the Cloud project, the bot's Google account and every participant \
         must be enrolled in the Google Workspace Developer Preview, and the Media API must be \
         allowed for the meeting"
            .to_owned()
    } else if status == reqwest::StatusCode::NOT_FOUND {
        "no such meeting".to_owned()
    } else {
        format!("HTTP {status}")
    };
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    };
    (false, format!("{advice}{detail}"))
}

/// Offers `offer` to the meeting's active conference; the answer, or why not.
async fn connect(
    http: &reqwest::Client,
    config: &MeetConfig,
    code: &str,
    token: &str,
    offer: &str,
) -> Result<String, ConnectorError> {
    let url = format!(
        "{}/v2beta/spaces/{code}:connectActiveConference",
        config.api_url.trim_end_matches('/')
    );
    let deadline = Instant::now() + config.wait_for_start;
    loop {
        let response = http
            .post(&url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .json(&json!({ "offer": offer }))
            .send()
            .await
            .map_err(|e| ConnectorError::Unreachable(format!("cannot reach the Meet API: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::Unreachable(format!("the Meet API broke off: {e}")))?;
        if status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return v["answer"].as_str().map(str::to_owned).ok_or_else(|| {
                ConnectorError::Setup("the Meet API answered without an SDP answer".to_owned())
            });
        }
        let (retry, why) = refusal(status, &body);
        if !retry || Instant::now() >= deadline {
            return Err(ConnectorError::Setup(format!(
                "Google Meet refused the bot: {why}"
            )));
        }
        tracing::info!("{why}; trying again in 5 s");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Joins the Meet call at `link`: once someone in it admitted the session.
pub async fn join(link: MeetLink, config: MeetConfig) -> Result<SessionHandle, ConnectorError> {
    let setup = ConnectorError::Setup;
    let code = link.code;
    let http = reqwest::Client::new();
    let token = oauth::access_token(&http, &config.credentials)
        .await
        .map_err(setup)?;
    let stun = RTCIceServer {
        urls: config.stun.clone(),
        ..Default::default()
    };
    let ice_servers = if config.stun.is_empty() {
        Vec::new()
    } else {
        vec![stun]
    };
    let mut peer = Peer::new(&config.udp_bind, ice_servers)
        .await
        .map_err(setup)?;
    let pc = peer.connection();
    for _ in 0..AUDIO_STREAMS {
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| setup(format!("cannot add an audio transceiver: {e}")))?;
    }
    let mut channels = HashMap::new();
    for label in protocol::CHANNELS {
        let dc = pc
            .create_data_channel(label, None)
            .await
            .map_err(|e| setup(format!("cannot create the {label} data channel: {e}")))?;
        channels.insert(label, dc);
    }
    let offer = peer.offer().await.map_err(setup)?;
    let answer = connect(&http, &config, &code, &token, &offer).await?;
    peer.accept(&answer).await.map_err(setup)?;
    tracing::info!("Meet Media API session offered; waiting to be admitted");

    let (mut connector, tx, leave_rx) = session(CHANNEL);
    let (admitted_tx, admitted) = oneshot::channel();
    let session = Session::new(tx, channels, config.alone_timeout, admitted_tx);
    connector.start(session.run(peer, leave_rx));
    // Joined means admitted: someone in the call may have to allow the session first.
    match tokio::time::timeout(config.wait_for_start, admitted).await {
        Ok(Ok(Ok(()))) => Ok(connector),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(setup(
            "the Media API session ended before it was admitted".to_owned(),
        )),
        Err(_) => {
            connector.leave().await;
            Err(setup(format!(
                "nobody admitted the Media API session within {} s",
                config.wait_for_start.as_secs()
            )))
        }
    }
}

/// What the session loop hears from its helpers.
enum Input {
    Packet(VirtualPacket),
    Message { channel: &'static str, text: String },
    ChannelOpen(&'static str),
    PeerFailed,
}

/// The session, owned by one task: the virtual streams, who is who, and the requests in flight.
struct Session {
    tx: mpsc::Sender<Outgoing>,
    started: Instant,
    channels: HashMap<&'static str, Arc<dyn DataChannel>>,
    demux: VirtualStreams,
    entries: HashMap<i64, MediaEntry>,
    participants: HashMap<i64, Participant>,
    /// Speakers announced with `Joined` and not since `Left`.
    present: Present,
    /// CSRCs already reported as naming no media entry.
    unknown_csrcs: HashSet<u32>,
    malformed: u64,
    joined: bool,
    next_request: i64,
    stats_every: Option<Duration>,
    stats_allowlist: Vec<(String, Vec<String>)>,
    packets: HashMap<u32, u64>,
    alone_timeout: Duration,
    alone_since: Option<Instant>,
    /// Told once whether Meet admitted the session.
    admitted: Option<oneshot::Sender<Result<(), ConnectorError>>>,
}

enum Step {
    Continue,
    End(Outgoing),
}

impl Session {
    fn new(
        tx: mpsc::Sender<Outgoing>,
        channels: HashMap<&'static str, Arc<dyn DataChannel>>,
        alone_timeout: Duration,
        admitted: oneshot::Sender<Result<(), ConnectorError>>,
    ) -> Self {
        Self {
            tx,
            started: Instant::now(),
            channels,
            demux: VirtualStreams::new(JitterConfig::default(), STREAM_IDLE_MS),
            entries: HashMap::new(),
            participants: HashMap::new(),
            present: Present::default(),
            unknown_csrcs: HashSet::new(),
            malformed: 0,
            joined: false,
            next_request: 1,
            stats_every: None,
            stats_allowlist: Vec::new(),
            packets: HashMap::new(),
            alone_timeout,
            alone_since: None,
            admitted: Some(admitted),
        }
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn emit(&mut self, event: ConnectorEvent) {
        let _ = self.tx.send(Ok(event)).await;
    }

    async fn run(mut self, mut peer: Peer, mut leave: LeaveRequest) {
        let (input, mut inputs) = mpsc::channel(CHANNEL);
        for (label, dc) in &self.channels {
            tokio::spawn(read_channel(label, Arc::clone(dc), input.clone()));
        }
        let tracks = input.clone();
        // Owns the peer (and with it the media) until the session ends, whatever ends it.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = peer.next() => match event {
                        PeerEvent::Track(track) => {
                            tokio::spawn(read_track(track, tracks.clone()));
                        }
                        PeerEvent::Failed => {
                            let _ = tracks.send(Input::PeerFailed).await;
                            tracks.closed().await;
                            break;
                        }
                    },
                    () = tracks.closed() => break,
                }
            }
            peer.close().await;
        });
        drop(input);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stats_due = Instant::now();
        let end = loop {
            let step = tokio::select! {
                done = &mut leave => {
                    self.leave().await;
                    super::session::confirm_left(done);
                    return;
                }
                input = inputs.recv() => match input {
                    Some(input) => self.input(input).await,
                    None => Step::End(Err(ConnectorError::Lost("the media session closed".to_owned()))),
                },
                _ = tick.tick() => {
                    let mut out = Vec::new();
                    self.demux.poll(self.at_ms(), &mut out);
                    self.deliver(out).await;
                    if let Some(every) = self.stats_every.filter(|_| Instant::now() >= stats_due) {
                        stats_due = Instant::now() + every;
                        self.upload_stats().await;
                    }
                    self.check_alone()
                }
            };
            if let Step::End(end) = step {
                break end;
            }
        };
        let mut out = Vec::new();
        self.demux.finish(&mut out);
        self.deliver(out).await;
        let stats = self.demux.stats();
        if self.malformed > 0 || stats.unattributed > 0 || stats.excess_streams > 0 {
            tracing::warn!(
                malformed_messages = self.malformed,
                unattributed_packets = stats.unattributed,
                excess_stream_packets = stats.excess_streams,
                "Meet sent input that was skipped"
            );
        }
        match self.admitted.take() {
            Some(admitted) => {
                let _ = admitted.send(end.and_then(|_| {
                    Err(ConnectorError::Setup(
                        "the Media API session ended before it was admitted".to_owned(),
                    ))
                }));
            }
            None => {
                let _ = self.tx.send(end).await;
            }
        }
    }

    async fn input(&mut self, input: Input) -> Step {
        match input {
            Input::Packet(p) => {
                *self.packets.entry(p.ssrc).or_default() += 1;
                let mut out = Vec::new();
                if let Err(e) = self.demux.push(p, self.at_ms(), &mut out) {
                    return Step::End(Err(ConnectorError::Lost(format!("audio decoder: {e}"))));
                }
                self.deliver(out).await;
                Step::Continue
            }
            Input::Message { channel, text } => {
                let updates = match protocol::parse(channel, &text) {
                    Ok(u) => u,
                    Err(e) => {
                        self.malformed += 1;
                        tracing::warn!(channel, error = %e, "Meet sent a malformed data-channel message; skipped");
                        return Step::Continue;
                    }
                };
                for update in updates {
                    if let Step::End(end) = self.update(update).await {
                        return Step::End(end);
                    }
                }
                Step::Continue
            }
            Input::ChannelOpen(channel) => {
                tracing::debug!(channel, "data channel open");
                Step::Continue
            }
            Input::PeerFailed => Step::End(Err(ConnectorError::Lost(
                "the media connection to Meet failed".to_owned(),
            ))),
        }
    }

    async fn update(&mut self, update: Update) -> Step {
        match update {
            Update::Session(status) => return self.session_status(status).await,
            Update::Entry { id, entry } => {
                self.entries.insert(id, entry);
            }
            Update::EntryGone { id } => {
                self.entries.remove(&id);
            }
            Update::Participant { id, participant } => {
                self.participants.insert(id, participant);
            }
            Update::ParticipantGone { id } => {
                let at_ms = self.at_ms();
                if let Some(gone) = self.participants.remove(&id)
                    && let Some(key) = gone.key.and_then(|k| SpeakerKey::parse(k).ok())
                    && let Some(left) = self.present.left(key, at_ms, "left the meeting")
                {
                    self.emit(left).await;
                }
            }
            Update::StatsConfig {
                upload_interval_secs,
                allowlist,
            } => {
                self.stats_every =
                    (upload_interval_secs > 0).then(|| Duration::from_secs(upload_interval_secs));
                self.stats_allowlist = allowlist;
            }
            Update::Response {
                request_id,
                code,
                message,
            } if code != 0 => {
                tracing::warn!(request_id, code, message, "Meet refused a request");
            }
            Update::Response { .. } => {}
        }
        Step::Continue
    }

    async fn session_status(&mut self, status: SessionStatus) -> Step {
        match status.state.as_str() {
            "STATE_WAITING" => {
                tracing::info!("waiting for someone in the meeting to allow the Media API session");
                Step::Continue
            }
            "STATE_JOINED" => {
                if !self.joined {
                    self.joined = true;
                    if let Some(admitted) = self.admitted.take() {
                        let _ = admitted.send(Ok(()));
                    }
                    tracing::info!("Meet Media API session joined");
                    let at_ms = self.at_ms();
                    self.emit(ConnectorEvent::Capture {
                        healthy: true,
                        at_ms,
                        reason: None,
                    })
                    .await;
                }
                Step::Continue
            }
            "STATE_DISCONNECTED" => {
                let at_ms = self.at_ms();
                let reason = match status.reason.as_deref() {
                    Some("REASON_CONFERENCE_ENDED") => "the conference ended",
                    Some("REASON_USER_STOPPED") => "a participant stopped the Media API session",
                    Some("REASON_CLIENT_LEFT") => "the bot left",
                    _ if !self.joined => {
                        return Step::End(Err(ConnectorError::Setup(
                            "Meet did not admit the Media API session (nobody allowed it, or the \
                             meeting does not permit it)"
                                .to_owned(),
                        )));
                    }
                    _ => {
                        return Step::End(Err(ConnectorError::Lost(
                            "Meet ended the Media API session as unhealthy".to_owned(),
                        )));
                    }
                };
                Step::End(Ok(ConnectorEvent::Ended {
                    at_ms,
                    reason: reason.to_owned(),
                }))
            }
            other => {
                tracing::debug!(state = other, "unknown Meet session state; ignored");
                Step::Continue
            }
        }
    }

    fn check_alone(&mut self) -> Step {
        if !self.joined || !self.participants.is_empty() {
            self.alone_since = None;
            return Step::Continue;
        }
        let since = *self.alone_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.alone_timeout {
            return Step::End(Ok(ConnectorEvent::Ended {
                at_ms: self.at_ms(),
                reason: "everyone left".to_owned(),
            }));
        }
        Step::Continue
    }

    /// The speaker a CSRC names: its media entry's participant, with their display name.
    fn speaker_of(&mut self, csrc: u32) -> Option<Speaker> {
        let entry = self.entries.values().find(|e| e.audio_csrc == csrc);
        let Some(entry) = entry else {
            if self.unknown_csrcs.insert(csrc) {
                tracing::warn!(
                    csrc,
                    "Meet sent audio whose CSRC no media entry names; dropped until one does"
                );
            }
            return None;
        };
        let key = entry
            .participant_key
            .clone()
            .unwrap_or_else(|| format!("csrc-{csrc}"));
        let name = self
            .participants
            .values()
            .find(|p| p.key.as_deref() == Some(key.as_str()))
            .and_then(|p| p.display_name.clone())
            .unwrap_or_else(|| "Participant".to_owned());
        Some(Speaker {
            key: SpeakerKey::parse(key).ok()?,
            name,
        })
    }

    async fn deliver(&mut self, out: Vec<Demuxed>) {
        for d in out {
            let at_ms = self.at_ms();
            match d {
                Demuxed::Audio { csrc, pos, samples } => {
                    let Some(speaker) = self.speaker_of(csrc) else {
                        continue;
                    };
                    let media = Media::Pcm {
                        rate: OPUS_RATE,
                        pos,
                        samples,
                    };
                    for event in self.present.media(speaker, at_ms, media) {
                        self.emit(event).await;
                    }
                }
                Demuxed::Cut { csrc } => {
                    if let Some(speaker) = self.speaker_of(csrc)
                        && self.present.contains(&speaker.key)
                    {
                        self.emit(ConnectorEvent::Quiet {
                            key: speaker.key,
                            at_ms,
                        })
                        .await;
                    }
                }
            }
        }
    }

    async fn send(&mut self, channel: &str, text: String) {
        if let Some(dc) = self.channels.get(channel)
            && let Err(e) = dc.send_text(&text).await
        {
            tracing::debug!(channel, error = %e, "cannot send on a Meet data channel");
        }
    }

    fn request_id(&mut self) -> i64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// The API asks clients to upload the allowlisted stats at its interval: here, what the bot
    /// counts itself (packets per virtual stream, losses).
    async fn upload_stats(&mut self) {
        let stats = self.demux.stats();
        let mut sections = Vec::new();
        for (kind, keys) in &self.stats_allowlist {
            if kind != "inbound-rtp" {
                continue;
            }
            for (ssrc, received) in &self.packets {
                let all = json!({
                    "ssrc": ssrc, "kind": "audio", "packetsReceived": received,
                    "packetsLost": stats.lost, "codecId": "opus",
                });
                let fields: serde_json::Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| all.get(k).map(|v| (snake_case(k), v.clone())))
                    .collect();
                sections.push((format!("IT{ssrc}"), kind.clone(), Value::Object(fields)));
            }
        }
        if sections.is_empty() {
            return;
        }
        let id = self.request_id();
        self.send(protocol::MEDIA_STATS, protocol::stats_upload(id, &sections))
            .await;
    }

    /// Tells Meet the bot is leaving and waits briefly for its word.
    async fn leave(&mut self) {
        let id = self.request_id();
        self.send(protocol::SESSION_CONTROL, protocol::leave_request(id))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for dc in self.channels.values() {
            let _ = dc.close().await;
        }
    }
}

fn snake_case(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

async fn read_channel(label: &'static str, dc: Arc<dyn DataChannel>, input: mpsc::Sender<Input>) {
    while let Some(event) = dc.poll().await {
        let msg = match event {
            DataChannelEvent::OnOpen => Input::ChannelOpen(label),
            DataChannelEvent::OnMessage(m) if m.data.len() > MAX_MESSAGE => {
                tracing::warn!(
                    channel = label,
                    bytes = m.data.len(),
                    "oversized Meet data-channel message; skipped"
                );
                continue;
            }
            DataChannelEvent::OnMessage(m) => Input::Message {
                channel: label,
                text: String::from_utf8_lossy(&m.data).into_owned(),
            },
            DataChannelEvent::OnClose => break,
            _ => continue,
        };
        if input.send(msg).await.is_err() {
            break;
        }
    }
}

async fn read_track(track: Arc<dyn TrackRemote>, input: mpsc::Sender<Input>) {
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let h = &packet.header;
        let csrc = h.csrc.iter().copied().find(|&c| c != LOUDEST_SPEAKER_CSRC);
        let p = VirtualPacket {
            ssrc: h.ssrc,
            csrc,
            packet: RtpPacket {
                seq: h.sequence_number,
                timestamp: h.timestamp,
                payload: packet.payload.to_vec(),
            },
        };
        if input.send(Input::Packet(p)).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_to_do() {
        let body = |reason: &str| {
            json!({"error": {"code": 400, "message": "x", "status": "FAILED_PRECONDITION",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]}})
            .to_string()
        };
        let bad = reqwest::StatusCode::BAD_REQUEST;
        assert!(
            refusal(bad, body("NO_ACTIVE_CONFERENCE").as_bytes()).0,
            "retried"
        );
        let (retry, why) = refusal(bad, body("CONSENTER_ABSENT").as_bytes());
        assert!(!retry && why.contains("consent"), "{why}");
        let (_, why) = refusal(reqwest::StatusCode::FORBIDDEN, b"{}");
        assert!(why.contains("Developer Preview"), "{why}");
        let (_, why) = refusal(reqwest::StatusCode::BAD_GATEWAY, b"<html>");
        assert!(why.contains("502"), "{why}");
    }
}
