//! Zoom meetings through Realtime Media Streams (RTMS): no bot in the call. When the host's app
//! starts RTMS, Zoom calls the orchestrator's webhook (`meeting.rtms_started`) with the stream's
//! signalling URL; the bot's link is then
//! `zoom-rtms:?server=WSS_URL&meeting_uuid=UUID&stream=STREAM_ID` (query values
//! percent-encoded). The bot signs a handshake on the signalling socket, opens the media socket
//! for audio, and receives each active speaker's 16 kHz L16 PCM labelled with their Zoom user
//! id and name: attribution by the platform, as with a per-participant track.
//! https://developers.zoom.us/docs/rtms/meetings/media/ and the event reference in `protocol`.

pub mod protocol;

use super::session::{LeaveRequest, Outgoing, SessionHandle, session};
use super::{ConnectorError, ConnectorEvent, Media};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use parley_shared::link::RtmsLink;
use parley_shared::{Speaker, SpeakerKey};
use protocol::{
    AudioContent, EVENT_UPDATE, Handshake, HandshakeResp, KEEP_ALIVE_REQ, MEDIA_DATA_AUDIO,
    SESSION_STATE_UPDATE, STREAM_STATE_UPDATE,
};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// RTMS sends at most three speakers' 20 ms packets at a time; anything near a megabyte is not
/// a media packet.
const MAX_FRAME: usize = 1 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CHANNEL: usize = 1024;
/// Without stream timestamps, a packet is placed this long before its arrival, so network
/// jitter does not push consecutive packets apart.
const ARRIVAL_JITTER_MS: u64 = 200;
/// `STREAM_STATE_UPDATE` states TERMINATING (3) and TERMINATED (4), and `SESSION_STATE_UPDATE`
/// STOPPED (5): https://developers.zoom.us/docs/rtms/data-types/
const STREAM_TERMINATING: u64 = 3;
const STREAM_TERMINATED: u64 = 4;
const SESSION_STOPPED: u64 = 5;

/// The Zoom app's client id and secret (the RTMS handshake is signed with them).
#[derive(Clone)]
pub struct ZoomCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ZoomCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

async fn connect(url: &str) -> Result<Socket, ConnectorError> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let (socket, _) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(config), false),
    )
    .await
    .map_err(|_| {
        ConnectorError::Unreachable(format!("the RTMS server at {url} did not answer in time"))
    })?
    .map_err(|e| {
        ConnectorError::Unreachable(format!("cannot connect to the RTMS server {url}: {e}"))
    })?;
    Ok(socket)
}

async fn send(socket: &mut Socket, msg: &Value) -> Result<(), ConnectorError> {
    socket
        .send(Message::text(msg.to_string()))
        .await
        .map_err(|e| ConnectorError::Lost(e.to_string()))
}

/// The next JSON message of `msg_type`, answering keep-alives on the way.
async fn expect(socket: &mut Socket, msg_type: u64, what: &str) -> Result<Value, ConnectorError> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| {
                ConnectorError::Setup(format!("no {what} from the RTMS server in time"))
            })?;
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                return Err(ConnectorError::Setup(format!(
                    "the RTMS server closed the connection before the {what}{}",
                    close_reason(c)
                )));
            }
            None => {
                return Err(ConnectorError::Setup(format!(
                    "the RTMS server closed the connection before the {what}"
                )));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnectorError::Setup(format!("RTMS {what}: {e}"))),
        };
        let Ok(msg) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!("RTMS sent a frame that is not JSON; ignored");
            continue;
        };
        match msg["msg_type"].as_u64() {
            Some(t) if t == msg_type => return Ok(msg),
            Some(KEEP_ALIVE_REQ) => {
                send(socket, &protocol::keep_alive_resp(&msg["timestamp"])).await?
            }
            other => tracing::debug!(msg_type = ?other, "RTMS message before the {what}; ignored"),
        }
    }
}

/// A close frame's reason, as " (reason)" to follow a sentence, or nothing.
fn close_reason(c: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    c.map(|c| c.reason.to_string())
        .filter(|r| !r.is_empty())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// A handshake response's verdict: the status codes the user can act on, in words.
fn accepted(resp: &Value, what: &str) -> Result<HandshakeResp, ConnectorError> {
    let resp: HandshakeResp = serde_json::from_value(resp.clone())
        .map_err(|e| ConnectorError::Setup(format!("malformed RTMS {what}: {e}")))?;
    if resp.status_code != 0 {
        return Err(ConnectorError::Setup(format!(
            "RTMS refused the {what} (status {}{}); check the Zoom app's client id and secret, \
             that RTMS is enabled on the host's account, and that the stream is still live",
            resp.status_code,
            resp.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )));
    }
    Ok(resp)
}

/// Signs in on the signalling socket, opens the media socket for audio, and starts receiving.
pub async fn join(url: RtmsLink, creds: ZoomCredentials) -> Result<SessionHandle, ConnectorError> {
    if creds.client_id.is_empty() || creds.client_secret.is_empty() {
        return Err(ConnectorError::Setup(
            "Zoom RTMS needs the Zoom app's credentials: set ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET"
                .to_owned(),
        ));
    }
    let hs = Handshake {
        signature: protocol::signature(
            &creds.client_id,
            &creds.client_secret,
            &url.meeting_uuid,
            &url.stream_id,
        ),
        meeting_uuid: url.meeting_uuid,
        stream_id: url.stream_id,
    };
    let mut signaling = connect(&url.server).await?;
    send(&mut signaling, &hs.signaling(1)).await?;
    let resp = expect(
        &mut signaling,
        protocol::SIGNALING_HAND_SHAKE_RESP,
        "signalling handshake",
    )
    .await?;
    let resp = accepted(&resp, "signalling handshake")?;
    let media_url = resp
        .media_server
        .and_then(|m| m.server_urls.audio.or(m.server_urls.all))
        .ok_or_else(|| {
            ConnectorError::Setup("the RTMS handshake named no media server".to_owned())
        })?;
    send(&mut signaling, &protocol::subscribe_participants()).await?;
    let mut media = connect(&media_url).await?;
    send(&mut media, &hs.media(2)).await?;
    let resp = expect(
        &mut media,
        protocol::DATA_HAND_SHAKE_RESP,
        "media handshake",
    )
    .await?;
    accepted(&resp, "media handshake")?;
    send(&mut signaling, &hs.ready()).await?;
    tracing::info!("RTMS stream joined");
    let (mut connector, tx, leave) = session(CHANNEL);
    connector.start(Session::new(tx).run(signaling, media, leave));
    Ok(connector)
}

/// The receiving side: both sockets until the stream ends, the bot leaves, or a socket drops.
struct Session {
    tx: mpsc::Sender<Outgoing>,
    started: Instant,
    /// Per speaker: the 16 kHz position where their next packet starts.
    speakers: HashMap<SpeakerKey, u64>,
    /// The first packet's stream timestamp and meeting-clock time.
    origin: Option<(u64, u64)>,
    malformed: u64,
}

impl Session {
    fn new(tx: mpsc::Sender<Outgoing>) -> Self {
        Self {
            tx,
            started: Instant::now(),
            speakers: HashMap::new(),
            origin: None,
            malformed: 0,
        }
    }

    async fn emit(&self, event: ConnectorEvent) {
        let _ = self.tx.send(Ok(event)).await;
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut signaling: Socket, mut media: Socket, mut leave: LeaveRequest) {
        let end = loop {
            tokio::select! {
                done = &mut leave => {
                    let _ = signaling.close(None).await;
                    let _ = media.close(None).await;
                    super::session::confirm_left(done);
                    return;
                }
                frame = signaling.next() => match self.frame(frame, &mut signaling).await {
                    Ok(None) => {}
                    Ok(Some(end)) => break Ok(end),
                    Err(lost) => break Err(lost),
                },
                frame = media.next() => match self.frame(frame, &mut media).await {
                    Ok(None) => {}
                    Ok(Some(end)) => break Ok(end),
                    Err(lost) => break Err(lost),
                },
            }
        };
        if self.malformed > 0 {
            tracing::warn!(
                frames = self.malformed,
                "RTMS frames that were malformed were skipped"
            );
        }
        match end {
            // The stream is over: so is the meeting, for the bot.
            Ok(reason) => {
                for key in self.speakers.keys() {
                    self.emit(ConnectorEvent::Left {
                        key: key.clone(),
                        at_ms: self.at_ms(),
                        reason: None,
                    })
                    .await;
                }
                self.emit(ConnectorEvent::Ended {
                    at_ms: self.at_ms(),
                    reason,
                })
                .await;
            }
            // A dropped connection is not the meeting's end: the bot fails over, and the next
            // bot signs in to the same stream again.
            Err(lost) => {
                let _ = self.tx.send(Err(ConnectorError::Lost(lost))).await;
            }
        }
    }

    /// Handles one frame: `Ok(Some(reason))` when the stream ended, `Err(reason)` when the
    /// connection failed.
    async fn frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        socket: &mut Socket,
    ) -> Result<Option<String>, String> {
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                return Err(format!(
                    "the RTMS server closed the stream{}",
                    close_reason(c)
                ));
            }
            None => return Err("the RTMS server closed the stream".to_owned()),
            Some(Ok(_)) => return Ok(None),
            Some(Err(e)) => {
                // Oversized frames land here too: a hostile or broken peer, not a meeting.
                return Err(format!("the RTMS connection failed: {e}"));
            }
        };
        let Ok(msg) = serde_json::from_str::<Value>(&text) else {
            self.malformed += 1;
            return Ok(None);
        };
        match msg["msg_type"].as_u64() {
            Some(KEEP_ALIVE_REQ) => {
                socket
                    .send(Message::text(
                        protocol::keep_alive_resp(&msg["timestamp"]).to_string(),
                    ))
                    .await
                    .map_err(|e| format!("the RTMS connection failed: {e}"))?;
            }
            Some(MEDIA_DATA_AUDIO) => self.audio(&msg["content"]).await,
            Some(STREAM_STATE_UPDATE) => {
                if let Some(STREAM_TERMINATING | STREAM_TERMINATED) = msg["state"].as_u64() {
                    return Ok(Some(ended_reason(&msg, "the RTMS stream ended")));
                }
            }
            Some(SESSION_STATE_UPDATE) => {
                if msg["state"].as_u64() == Some(SESSION_STOPPED) {
                    return Ok(Some(ended_reason(&msg, "the RTMS session stopped")));
                }
            }
            Some(EVENT_UPDATE) => self.participants(&msg).await,
            other => tracing::debug!(msg_type = ?other, "RTMS message ignored"),
        }
        Ok(None)
    }

    async fn audio(&mut self, content: &Value) {
        let Ok(packet) = serde_json::from_value::<AudioContent>(content.clone()) else {
            self.malformed += 1;
            return;
        };
        let (Some(key), Ok(bytes)) = (
            protocol::user_key(&packet.user_id).and_then(|k| SpeakerKey::parse(k).ok()),
            base64::engine::general_purpose::STANDARD.decode(packet.data.as_bytes()),
        ) else {
            self.malformed += 1;
            return;
        };
        let samples = protocol::l16(&bytes);
        let at_ms = self.at_ms();
        if !self.speakers.contains_key(&key) {
            let name = if packet.user_name.trim().is_empty() {
                key.to_string()
            } else {
                packet.user_name.clone()
            };
            let speaker = Speaker {
                key: key.clone(),
                name,
            };
            self.emit(ConnectorEvent::Joined { speaker, at_ms }).await;
        }
        // Multi-stream audio comes only while someone speaks: a speaker's position follows the
        // stream's timestamps (their gaps become silence), or, without them, the arrival time.
        let from_clock = match packet.timestamp {
            Some(ts) => {
                let (ts0, at0) = *self.origin.get_or_insert((ts, at_ms));
                (ts.saturating_sub(ts0) + at0) * 16
            }
            None => at_ms.saturating_sub(ARRIVAL_JITTER_MS) * 16,
        };
        let next = self.speakers.entry(key.clone()).or_insert(from_clock);
        let pos = (*next).max(from_clock);
        *next = pos + samples.len() as u64;
        let media = Media::Pcm {
            rate: 16_000,
            pos,
            samples,
        };
        self.emit(ConnectorEvent::Media { key, at_ms, media }).await;
    }

    /// Participants leaving (EVENT_UPDATE with a leave event) end their tracks.
    async fn participants(&mut self, msg: &Value) {
        let content = &msg["content"];
        if content["event_type"].as_u64() != Some(protocol::EVENT_PARTICIPANT_LEAVE) {
            return;
        }
        for p in content["participants"].as_array().into_iter().flatten() {
            let Some(key) =
                protocol::user_key(&p["user_id"]).and_then(|k| SpeakerKey::parse(k).ok())
            else {
                continue;
            };
            if self.speakers.remove(&key).is_some() {
                self.emit(ConnectorEvent::Left {
                    key,
                    at_ms: self.at_ms(),
                    reason: Some("left the meeting".to_owned()),
                })
                .await;
            }
        }
    }
}

fn ended_reason(msg: &Value, default: &str) -> String {
    match msg["reason"].as_u64() {
        Some(r) => format!("{default} (reason {r})"),
        None => default.to_owned(),
    }
}
