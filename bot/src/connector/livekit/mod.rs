//! LiveKit rooms: the bot joins as a subscriber-only participant over LiveKit's signalling
//! WebSocket (binary protobuf `SignalRequest`/`SignalResponse`, the `livekit-protocol` crate) and
//! a webrtc-rs peer connection the server offers. With protocol 16 and a token that may not
//! publish, the server makes the subscriber connection primary and sends its offer right after
//! `join`, tracks included; no publisher connection is negotiated. Each received track's msid
//! stream id is `PARTICIPANT_SID|TRACK_SID`, so attribution is per track, as with Janus.
//! https://github.com/livekit/protocol (`livekit_rtc.proto`, `livekit_models.proto`).

pub mod token;

use super::capture::CaptureWatch;
use super::peer::{Peer, PeerEvent, RTCIceServer};
use super::session::{Outgoing, Present, SessionHandle, session};
use super::{ConnectorError, ConnectorEvent, Media};
use crate::audio::jitter::RtpPacket;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{
    DisconnectReason, LeaveRequest, ParticipantInfo, Ping, SessionDescription, SignalRequest,
    SignalResponse, SignalTarget, TrackSource, TrackType, leave_request, participant_info,
    signal_request, signal_response,
};
use parley_shared::link::LiveKitLink;
use parley_shared::{Speaker, SpeakerKey};
use prost::Message as _;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// No signalling message is near this large; a frame that is would only cost memory.
const MAX_FRAME: usize = 1 << 20;
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
const CHANNEL: usize = 1024;
const TOKEN_TTL_SECS: u64 = 6 * 3600;

#[derive(Clone)]
pub struct LiveKitConfig {
    pub api_key: String,
    pub api_secret: String,
    /// Hosts of the deployment's LiveKit servers: the only ones a token is minted for.
    pub servers: Vec<String>,
    /// The bot's identity in the room (unique per meeting, so a replacement bot takes over).
    pub identity: String,
    pub name: String,
    pub udp_bind: Vec<String>,
    pub alone_timeout: Duration,
    pub stall_after: Duration,
}

impl std::fmt::Debug for LiveKitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitConfig")
            .field("api_key", &self.api_key)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn request(message: signal_request::Message) -> Message {
    Message::binary(
        SignalRequest {
            message: Some(message),
        }
        .encode_to_vec(),
    )
}

/// Why the server refused the WebSocket, in words: it answers a bad join with a plain HTTP
/// status before upgrading, and its `/rtc/validate` endpoint repeats the reason.
/// The most of a LiveKit server's refusal quoted in a meeting's status reason.
const MAX_REASON_CHARS: usize = 200;

async fn refused(url: &LiveKitLink, token: &str, error: tungstenite::Error) -> ConnectorError {
    let tungstenite::Error::Http(response) = &error else {
        return ConnectorError::Unreachable(format!(
            "cannot reach the LiveKit server {}: {error}",
            url.server
        ));
    };
    let status = response.status();
    let mut body = response
        .body()
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .unwrap_or_default();
    // The reason ends up in the meeting's owner-visible status: the server's own words, but no
    // redirect followed and no more than a line of them.
    if body.is_empty()
        && let Ok(client) = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(3))
            .build()
        && let Ok(r) = client
            .get(url.validate_url())
            .bearer_auth(token)
            .send()
            .await
        && r.status().is_client_error()
    {
        body = r.text().await.unwrap_or_default();
    }
    let body: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    let advice = match status.as_u16() {
        401 => "LiveKit refused the bot's token: check LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
        404 => "the LiveKit room does not exist (has the meeting started?)",
        400 => "LiveKit refused the join request",
        _ => "the LiveKit server refused the connection",
    };
    let detail = if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    };
    let reason = format!("{advice} (HTTP {status}{detail})");
    if status.is_server_error() {
        ConnectorError::Unreachable(reason)
    } else {
        ConnectorError::Setup(reason)
    }
}

/// Joins the LiveKit room at `link`.
pub async fn join(
    url: LiveKitLink,
    config: LiveKitConfig,
) -> Result<SessionHandle, ConnectorError> {
    let setup = ConnectorError::Setup;
    url.check_server(&config.servers).map_err(setup)?;
    if config.api_key.is_empty() || config.api_secret.is_empty() {
        return Err(setup(
            "LiveKit needs the deployment's API key and secret: set LIVEKIT_API_KEY and \
                 LIVEKIT_API_SECRET"
                .to_owned(),
        ));
    }
    let token = token::access_token(
        &config.api_key,
        &config.api_secret,
        &url.room,
        &config.identity,
        &config.name,
        parley_shared::now_ms() / 1000,
        TOKEN_TTL_SECS,
    );
    let mut req = url
        .signal_url()
        .into_client_request()
        .map_err(|e| setup(format!("bad LiveKit URL: {e}")))?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| setup("the LiveKit token is not a header value".to_owned()))?;
    req.headers_mut().insert("authorization", bearer);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connected = tokio::time::timeout(
        JOIN_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(req, Some(ws_config), false),
    )
    .await
    .map_err(|_| {
        setup(format!(
            "the LiveKit server {} did not answer in time",
            url.server
        ))
    })?;
    let mut socket = match connected {
        Ok((socket, _)) => socket,
        Err(e) => return Err(refused(&url, &token, e).await),
    };
    let join = tokio::time::timeout(JOIN_TIMEOUT, async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Binary(b)) => match SignalResponse::decode(b.as_ref()) {
                    Ok(SignalResponse {
                        message: Some(signal_response::Message::Join(join)),
                    }) => return Ok(join),
                    Ok(SignalResponse {
                        message: Some(signal_response::Message::Leave(leave)),
                    }) => {
                        return Err(setup(format!(
                            "LiveKit refused the join: {}",
                            reason(&leave)
                        )));
                    }
                    _ => continue,
                },
                Ok(_) => continue,
                Err(e) => return Err(setup(format!("LiveKit signalling: {e}"))),
            }
        }
        Err(setup(
            "the LiveKit server closed the connection before the join".to_owned(),
        ))
    })
    .await
    .map_err(|_| setup("no join response from the LiveKit server in time".to_owned()))??;
    // The server's STUN and TURN servers (TURN credentials are short-lived, minted for this
    // join), so media gets through NATs the way LiveKit's own clients' does.
    let ice_servers = join
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect();
    let peer = Peer::new(&config.udp_bind, ice_servers)
        .await
        .map_err(setup)?;
    tracing::info!(room = %url.room, "LiveKit room joined");

    let (mut connector, tx, leave_rx) = session(CHANNEL);
    let ping_every = Duration::from_secs(u64::try_from(join.ping_interval).unwrap_or(0).max(1));
    let ping_timeout = Duration::from_secs(u64::try_from(join.ping_timeout).unwrap_or(0).max(2));
    let mut session = Session {
        tx,
        started: Instant::now(),
        own_sid: join.participant.map(|p| p.sid).unwrap_or_default(),
        participants: HashMap::new(),
        present: Present::default(),
        capture: CaptureWatch::new(config.stall_after),
        pending_candidates: Vec::new(),
        answered: false,
        malformed: 0,
        unmapped: 0,
        alone_timeout: config.alone_timeout,
        alone_since: None,
    };
    for p in join.other_participants {
        session.participant(p);
    }
    connector.start(session.run(socket, peer, leave_rx, ping_every, ping_timeout));
    Ok(connector)
}

fn reason(leave: &LeaveRequest) -> &'static str {
    match leave.reason() {
        DisconnectReason::RoomDeleted | DisconnectReason::RoomClosed => "the room was closed",
        DisconnectReason::ParticipantRemoved => "the bot was removed from the room",
        DisconnectReason::DuplicateIdentity => "another bot joined under the same identity",
        DisconnectReason::ServerShutdown => "the LiveKit server shut down",
        DisconnectReason::JoinFailure => "the join failed",
        _ => "the server ended the session",
    }
}

/// A participant as the bot knows them: who they are, and their audio tracks' speakers.
struct Participant {
    speaker: Speaker,
    /// Track sid → the speaker its audio is credited to (screen-share audio apart from the
    /// microphone, so two streams never share one timeline).
    tracks: HashMap<String, Speaker>,
}

enum Input {
    Packet {
        participant_sid: String,
        track_sid: String,
        packet: RtpPacket,
    },
}

struct Session {
    tx: mpsc::Sender<Outgoing>,
    started: Instant,
    own_sid: String,
    participants: HashMap<String, Participant>,
    /// Speakers announced with `Joined` and not since `Left`.
    present: Present,
    capture: CaptureWatch,
    /// Server candidates that came before its offer was applied.
    pending_candidates: Vec<RTCIceCandidateInit>,
    answered: bool,
    malformed: u64,
    unmapped: u64,
    alone_timeout: Duration,
    alone_since: Option<Instant>,
}

enum Step {
    Continue,
    End(Outgoing),
}

impl Session {
    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn emit(&mut self, event: ConnectorEvent) {
        let _ = self.tx.send(Ok(event)).await;
    }

    /// Takes a participant snapshot (from `join` or `update`).
    fn participant(&mut self, p: ParticipantInfo) -> Option<SpeakerKey> {
        if p.sid == self.own_sid || p.sid.is_empty() {
            return None;
        }
        if p.state() == participant_info::State::Disconnected {
            return self
                .participants
                .remove(&p.sid)
                .map(|gone| gone.speaker.key);
        }
        let identity = if p.identity.is_empty() {
            &p.sid
        } else {
            &p.identity
        };
        let name = if p.name.is_empty() { identity } else { &p.name };
        let speaker = Speaker {
            key: SpeakerKey::parse(identity.clone()).ok()?,
            name: name.clone(),
        };
        let tracks = p
            .tracks
            .iter()
            .filter(|t| t.r#type() == TrackType::Audio)
            .filter_map(|t| {
                let s = if t.source() == TrackSource::ScreenShareAudio {
                    Speaker {
                        key: SpeakerKey::parse(format!("{identity}/screen")).ok()?,
                        name: format!("{name} (screen)"),
                    }
                } else {
                    speaker.clone()
                };
                Some((t.sid.clone(), s))
            })
            .collect();
        self.participants
            .insert(p.sid, Participant { speaker, tracks });
        None
    }

    fn speaker_of(&self, participant_sid: &str, track_sid: &str) -> Option<Speaker> {
        let p = self.participants.get(participant_sid)?;
        Some(p.tracks.get(track_sid).unwrap_or(&p.speaker).clone())
    }

    async fn run(
        mut self,
        mut socket: Socket,
        mut peer: Peer,
        mut leave: super::session::LeaveRequest,
        ping_every: Duration,
        ping_timeout: Duration,
    ) {
        let (input, mut inputs) = mpsc::channel(CHANNEL);
        let mut ping = tokio::time::interval(ping_every);
        let mut health = tokio::time::interval(Duration::from_secs(1));
        let mut last_heard = Instant::now();
        let end = loop {
            let step = tokio::select! {
                done = &mut leave => {
                    let bye = signal_request::Message::Leave(LeaveRequest {
                        reason: DisconnectReason::ClientInitiated.into(),
                        action: leave_request::Action::Disconnect.into(),
                        ..Default::default()
                    });
                    let _ = socket.send(request(bye)).await;
                    let _ = socket.close(None).await;
                    peer.close().await;
                    super::session::confirm_left(done);
                    return;
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Binary(b))) => {
                        last_heard = Instant::now();
                        self.signal(&b, &mut socket, &mut peer).await
                    }
                    Some(Ok(Message::Close(_))) | None => Step::End(Err(ConnectorError::Lost(
                        "the LiveKit server closed the signalling connection".to_owned(),
                    ))),
                    Some(Ok(_)) => {
                        last_heard = Instant::now();
                        Step::Continue
                    }
                    Some(Err(e)) => Step::End(Err(ConnectorError::Lost(format!("LiveKit signalling: {e}")))),
                },
                event = peer.next() => match event {
                    PeerEvent::Track(track) => {
                        tokio::spawn(read_track(track, input.clone()));
                        Step::Continue
                    }
                    PeerEvent::Failed => Step::End(Err(ConnectorError::Lost(
                        "the media connection to LiveKit failed".to_owned(),
                    ))),
                },
                Some(Input::Packet { participant_sid, track_sid, packet }) = inputs.recv() => {
                    self.packet(&participant_sid, &track_sid, packet).await;
                    Step::Continue
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > ping_timeout {
                        Step::End(Err(ConnectorError::Lost(format!(
                            "LiveKit said nothing for {} s", ping_timeout.as_secs()
                        ))))
                    } else {
                        let ping = signal_request::Message::PingReq(Ping {
                            timestamp: parley_shared::now_ms() as i64,
                            rtt: 0,
                        });
                        match socket.send(request(ping)).await {
                            Ok(()) => Step::Continue,
                            Err(e) => Step::End(Err(ConnectorError::Lost(format!("LiveKit signalling: {e}")))),
                        }
                    }
                }
                _ = health.tick() => self.check_health().await,
            };
            if let Step::End(end) = step {
                break end;
            }
        };
        if self.malformed > 0 || self.unmapped > 0 {
            tracing::warn!(
                malformed_messages = self.malformed,
                unmapped_packets = self.unmapped,
                "LiveKit sent input that was skipped"
            );
        }
        peer.close().await;
        let _ = self.tx.send(end).await;
    }

    async fn signal(&mut self, bytes: &[u8], socket: &mut Socket, peer: &mut Peer) -> Step {
        let message = match SignalResponse::decode(bytes) {
            Ok(SignalResponse { message: Some(m) }) => m,
            Ok(SignalResponse { message: None }) => return Step::Continue,
            Err(e) => {
                self.malformed += 1;
                tracing::warn!(error = %e, "LiveKit sent a malformed signalling message; skipped");
                return Step::Continue;
            }
        };
        match message {
            signal_response::Message::Offer(offer) => {
                let answer = match peer.answer(&offer.sdp).await {
                    Ok(sdp) => sdp,
                    Err(e) => {
                        self.malformed += 1;
                        tracing::warn!(error = %e, "cannot answer LiveKit's offer; waiting for the next");
                        return Step::Continue;
                    }
                };
                self.answered = true;
                for c in std::mem::take(&mut self.pending_candidates) {
                    let _ = peer.connection().add_ice_candidate(c).await;
                }
                let answer = signal_request::Message::Answer(SessionDescription {
                    r#type: "answer".to_owned(),
                    sdp: answer,
                    id: offer.id,
                    ..Default::default()
                });
                if let Err(e) = socket.send(request(answer)).await {
                    return Step::End(Err(ConnectorError::Lost(format!(
                        "LiveKit signalling: {e}"
                    ))));
                }
            }
            signal_response::Message::Trickle(t) if t.target() == SignalTarget::Subscriber => {
                match serde_json::from_str::<RTCIceCandidateInit>(&t.candidate_init) {
                    Ok(c) if self.answered => {
                        let _ = peer.connection().add_ice_candidate(c).await;
                    }
                    Ok(c) => self.pending_candidates.push(c),
                    Err(e) => {
                        self.malformed += 1;
                        tracing::warn!(error = %e, "LiveKit sent a malformed ICE candidate; skipped");
                    }
                }
            }
            signal_response::Message::Update(update) => {
                for p in update.participants {
                    if let Some(gone) = self.participant(p) {
                        self.capture.gone(gone.as_str());
                        let at_ms = self.at_ms();
                        if let Some(left) = self.present.left(gone, at_ms, "left the room") {
                            self.emit(left).await;
                        }
                    }
                }
            }
            signal_response::Message::SpeakersChanged(changed) => {
                let now = Instant::now();
                for s in changed.speakers {
                    if let Some(p) = self.participants.get(&s.sid) {
                        let key = p.speaker.key.to_string();
                        self.capture.talking(&key, s.active, now);
                    }
                }
            }
            signal_response::Message::Leave(leave) => {
                let action = leave.action();
                let at_ms = self.at_ms();
                return Step::End(if action == leave_request::Action::Disconnect {
                    Ok(ConnectorEvent::Ended {
                        at_ms,
                        reason: reason(&leave).to_owned(),
                    })
                } else {
                    Err(ConnectorError::Lost(
                        "the LiveKit server asked the bot to reconnect".to_owned(),
                    ))
                });
            }
            signal_response::Message::RefreshToken(_) => {
                // Reconnects mint a fresh token, so the server's refreshed one is not needed.
            }
            _ => {}
        }
        Step::Continue
    }

    async fn packet(&mut self, participant_sid: &str, track_sid: &str, packet: RtpPacket) {
        let Some(speaker) = self.speaker_of(participant_sid, track_sid) else {
            self.unmapped += 1;
            if self.unmapped == 1 {
                tracing::warn!(
                    participant = participant_sid,
                    "audio from a participant LiveKit has not announced; dropped until it does"
                );
            }
            return;
        };
        let at_ms = self.at_ms();
        self.capture.audio(speaker.key.as_str(), Instant::now());
        for event in self.present.media(speaker, at_ms, Media::Rtp(packet)) {
            self.emit(event).await;
        }
    }

    async fn check_health(&mut self) -> Step {
        let at_ms = self.at_ms();
        match self.capture.poll(Instant::now()) {
            Some(Err(key)) => {
                self.emit(ConnectorEvent::Capture {
                    healthy: false,
                    at_ms,
                    reason: Some(format!(
                        "LiveKit says {key} is talking, but none of their audio arrives"
                    )),
                })
                .await;
            }
            Some(Ok(())) => {
                self.emit(ConnectorEvent::Capture {
                    healthy: true,
                    at_ms,
                    reason: None,
                })
                .await;
            }
            None => {}
        }
        if !self.participants.is_empty() {
            self.alone_since = None;
            return Step::Continue;
        }
        let since = *self.alone_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.alone_timeout {
            return Step::End(Ok(ConnectorEvent::Ended {
                at_ms,
                reason: "everyone left".to_owned(),
            }));
        }
        Step::Continue
    }
}

/// The participant and track a received track belongs to, from its msid stream id
/// (`PA_…|TR_…`, or `PA_…|NAME` with the track sid as the msid track id).
async fn ids_of(track: &Arc<dyn TrackRemote>) -> Option<(String, String)> {
    let stream = track.stream_id().await;
    let (participant, rest) = stream.split_once('|')?;
    let track_sid = if rest.starts_with("TR") {
        rest.to_owned()
    } else {
        track.track_id().await
    };
    Some((participant.to_owned(), track_sid))
}

async fn read_track(track: Arc<dyn TrackRemote>, input: mpsc::Sender<Input>) {
    if track.kind().await != RtpCodecKind::Audio {
        return;
    }
    let Some((participant_sid, track_sid)) = ids_of(&track).await else {
        tracing::debug!("a LiveKit track without a participant in its stream id; ignored");
        return;
    };
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let packet = RtpPacket {
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            payload: packet.payload.to_vec(),
        };
        let input_packet = Input::Packet {
            participant_sid: participant_sid.clone(),
            track_sid: track_sid.clone(),
            packet,
        };
        if input.send(input_packet).await.is_err() {
            break;
        }
    }
}
