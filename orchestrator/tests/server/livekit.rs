//! LiveKit rooms, against a simulator of a LiveKit server written from its public protocol
//! (https://github.com/livekit/protocol `livekit_rtc.proto` and `livekit_models.proto`, and the
//! server's documented join flow): no LiveKit server is installed on the test machines. The
//! simulator checks the bot's access token (HS256 with the API secret, a subscribe-only grant for
//! the room) before upgrading the WebSocket, as LiveKit does, refusing a bad token with 401 and an
//! unknown room with 404. It then sends `join` with the participants and their tracks, offers a
//! subscriber peer connection (tracks whose msid stream id is `PARTICIPANT_SID|TRACK_SID`, the
//! `_reliable` and `_lossy` data channels) and trickles its candidates, takes the answer, answers
//! pings, streams each participant's Opus audio with `speakers_changed` as they talk, brings a
//! late joiner in with `update` and a new offer, and closes the room with `leave`. Hostile input rides along: frames that are not protobuf, a text frame,
//! a message of a kind the bot does not know, a malformed candidate, and a track from a
//! participant nobody announced.

use crate::bots::ONE_AT_A_TIME;
use crate::helpers::{
    Backend, Options, TestApp, assert_logged, assert_sample_meeting, captured_logs, eventually,
};
use crate::sample_media::{opus_packets, opus_track, pcm_16k, talking};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{
    DisconnectReason, IceServer, JoinResponse, LeaveRequest, ParticipantInfo, ParticipantUpdate,
    Pong, Room, SessionDescription, SignalRequest, SignalResponse, SignalTarget, SpeakerInfo,
    SpeakersChanged, TrackInfo, TrackSource, TrackType, TrickleRequest, leave_request,
    participant_info, signal_request, signal_response,
};
use parley_bot::connector::peer::Peer;
use prost::Message as _;
use rtc::rtp;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::PeerConnection;

const API_KEY: &str = "APIparleytest";
const API_SECRET: &str = "livekit-secret-for-tests-0123456789";
const ROOM: &str = "design-review";

struct Publisher {
    sid: &'static str,
    identity: &'static str,
    name: &'static str,
    track_sid: &'static str,
    ssrc: u32,
    /// Opus packets in order, 20 ms apart.
    packets: Vec<Vec<u8>>,
    /// Whether they talk in each 20 ms frame.
    talking: Vec<bool>,
    /// The frame they join the room at (0: there before the bot).
    joins_at: usize,
}

#[derive(Default)]
struct Seen {
    /// WebSocket handshakes the bot began.
    attempts: AtomicU64,
    token_ok: AtomicBool,
    subscribe_only: AtomicBool,
    answered: AtomicBool,
    /// The bot answered the re-offer that brought a late joiner's track.
    renegotiated: AtomicBool,
    pings: AtomicU64,
    /// Connections whose offer the bot answered.
    sessions: AtomicU64,
    /// The first session was cut mid-meeting.
    cut: AtomicBool,
}

struct Sim {
    publishers: Vec<Publisher>,
    seen: Seen,
    /// Cut the first bot's signalling connection this long into the meeting, as a server
    /// restart or a network failure does.
    cut_first_after: Option<Duration>,
}

/// Verifies a LiveKit access token as the server does; the grant's claims when it holds.
fn verify(token: &str) -> Option<Value> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, API_SECRET.as_bytes());
    let mac = b64.decode(signature).ok()?;
    ring::hmac::verify(&key, format!("{header}.{payload}").as_bytes(), &mac).ok()?;
    let claims: Value = serde_json::from_slice(&b64.decode(payload).ok()?).ok()?;
    let now = parley_shared::now_ms() / 1000;
    let fresh = claims["exp"].as_u64()? + 60 > now && claims["nbf"].as_u64()? <= now + 60;
    (fresh && claims["iss"] == API_KEY && claims["video"]["roomJoin"] == true).then_some(claims)
}

fn refuse(status: u16, body: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(body.to_owned()));
    *r.status_mut() =
        tokio_tungstenite::tungstenite::http::StatusCode::from_u16(status).expect("status");
    r
}

fn response(message: signal_response::Message) -> Message {
    Message::binary(
        SignalResponse {
            message: Some(message),
        }
        .encode_to_vec(),
    )
}

fn participant(p: &Publisher) -> ParticipantInfo {
    ParticipantInfo {
        sid: p.sid.to_owned(),
        identity: p.identity.to_owned(),
        name: p.name.to_owned(),
        state: participant_info::State::Active.into(),
        is_publisher: true,
        version: 1,
        tracks: vec![TrackInfo {
            sid: p.track_sid.to_owned(),
            r#type: TrackType::Audio.into(),
            name: "microphone".to_owned(),
            source: TrackSource::Microphone.into(),
            mime_type: "audio/opus".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// One participant's connection: the subscriber session LiveKit runs for the bot.
async fn serve(sim: Arc<Sim>, mut ws: Ws, identity: String) {
    let mut peer = match Peer::new(&["0.0.0.0:0".to_owned()], Vec::new()).await {
        Ok(p) => p,
        Err(_) => return,
    };
    let pc = peer.connection();
    let mut tracks = Vec::new();
    for p in &sim.publishers {
        tracks.push(if p.joins_at == 0 {
            Some(publish(&pc, p).await)
        } else {
            None
        });
    }
    // A track whose participant was never announced.
    let ghost = opus_track("PA_ghost|TR_ghost", "TR_ghost", 77_000);
    let _ = pc
        .add_track(Arc::clone(&ghost) as Arc<dyn TrackLocal>)
        .await;
    let _ = pc.create_data_channel("_reliable", None).await;
    let _ = pc.create_data_channel("_lossy", None).await;

    let join = JoinResponse {
        room: Some(Room {
            sid: "RM_sim".to_owned(),
            name: ROOM.to_owned(),
            ..Default::default()
        }),
        participant: Some(ParticipantInfo {
            sid: "PA_bot".to_owned(),
            identity,
            state: participant_info::State::Joining.into(),
            ..Default::default()
        }),
        other_participants: sim
            .publishers
            .iter()
            .filter(|p| p.joins_at == 0)
            .map(participant)
            .collect(),
        ice_servers: Vec::<IceServer>::new(),
        subscriber_primary: true,
        ping_interval: 1,
        ping_timeout: 15,
        ..Default::default()
    };
    let _ = ws
        .send(response(signal_response::Message::Join(join)))
        .await;
    // Hostile: not protobuf, a text frame, and a message kind from a later protocol.
    let _ = ws.send(Message::binary(vec![0xff, 0xff, 0xff, 0x01])).await;
    let _ = ws.send(Message::text("{\"join\":{}}")).await;
    let _ = ws.send(Message::binary(vec![0xa2, 0x06, 0x00])).await;

    let Ok(offer) = peer.offer().await else {
        return;
    };
    let _ = ws
        .send(response(signal_response::Message::Offer(
            SessionDescription {
                r#type: "offer".to_owned(),
                sdp: offer.clone(),
                id: 7,
                ..Default::default()
            },
        )))
        .await;
    // The server trickles its candidates (they are in the offer too); one is malformed.
    for line in offer.lines().filter(|l| l.starts_with("a=candidate:")) {
        let init = json!({"candidate": &line[2..], "sdpMid": "0", "sdpMLineIndex": 0});
        let _ = ws
            .send(response(signal_response::Message::Trickle(
                TrickleRequest {
                    candidate_init: init.to_string(),
                    target: SignalTarget::Subscriber.into(),
                    r#final: false,
                },
            )))
            .await;
    }
    let _ = ws
        .send(response(signal_response::Message::Trickle(
            TrickleRequest {
                candidate_init: "{not json".to_owned(),
                target: SignalTarget::Subscriber.into(),
                r#final: true,
            },
        )))
        .await;

    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(256);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (answers_tx, mut answers) = tokio::sync::mpsc::channel::<(u32, String)>(4);
    let reader = {
        let sim = Arc::clone(&sim);
        let out = out_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Binary(b) = frame else { continue };
                let Ok(SignalRequest { message: Some(m) }) = SignalRequest::decode(b.as_ref())
                else {
                    continue;
                };
                match m {
                    signal_request::Message::Answer(a) => {
                        let _ = answers_tx.send((a.id, a.sdp)).await;
                    }
                    signal_request::Message::PingReq(p) => {
                        sim.seen.pings.fetch_add(1, Ordering::Relaxed);
                        let pong = Pong {
                            last_ping_timestamp: p.timestamp,
                            timestamp: parley_shared::now_ms() as i64,
                        };
                        let _ = out
                            .send(response(signal_response::Message::PongResp(pong)))
                            .await;
                    }
                    signal_request::Message::Leave(_) => break,
                    _ => {}
                }
            }
        })
    };
    if !answered(&mut peer, &mut answers, 7).await {
        return;
    }
    sim.seen.answered.store(true, Ordering::Relaxed);
    sim.seen.sessions.fetch_add(1, Ordering::Relaxed);
    // The meeting's clock starts once media can flow: packets written before DTLS is up are
    // dropped, which would clip a first speaker a live server would have delivered whole.
    if tokio::time::timeout(Duration::from_secs(20), peer.connected())
        .await
        .ok()
        != Some(true)
    {
        return;
    }
    let streamed = stream_audio(&sim, &mut peer, &mut tracks, &ghost, &out_tx, &mut answers);
    match sim.cut_first_after {
        Some(after) if !sim.seen.cut.swap(true, Ordering::Relaxed) => {
            if tokio::time::timeout(after, streamed).await.is_err() {
                // No Leave: the socket just closes.
                reader.abort();
                drop(out_tx);
                let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
                peer.close().await;
                return;
            }
        }
        _ => streamed.await,
    }
    let leave = LeaveRequest {
        reason: DisconnectReason::RoomDeleted.into(),
        action: leave_request::Action::Disconnect.into(),
        ..Default::default()
    };
    let _ = out_tx
        .send(response(signal_response::Message::Leave(leave)))
        .await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    reader.abort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    peer.close().await;
}

/// Adds `p`'s microphone track to the subscriber connection, with LiveKit's stream id.
async fn publish(pc: &Arc<dyn PeerConnection>, p: &Publisher) -> Arc<TrackLocalStaticRTP> {
    let track = opus_track(&format!("{}|{}", p.sid, p.track_sid), p.track_sid, p.ssrc);
    let _ = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await;
    track
}

/// Waits for the bot's answer to offer `id` and applies it.
async fn answered(
    peer: &mut Peer,
    answers: &mut tokio::sync::mpsc::Receiver<(u32, String)>,
    id: u32,
) -> bool {
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some((got, sdp)) = answers.recv().await {
            if got == id {
                return Some(sdp);
            }
        }
        None
    })
    .await;
    match answer {
        Ok(Some(sdp)) => peer.accept(&sdp).await.is_ok(),
        _ => false,
    }
}

/// Each publisher's packets on their own track, in real time, with `speakers_changed` when
/// someone starts or stops talking (LiveKit sends deltas). A late joiner is announced with
/// `update` and their track brought by a new offer, as the server does.
async fn stream_audio(
    sim: &Sim,
    peer: &mut Peer,
    tracks: &mut [Option<Arc<TrackLocalStaticRTP>>],
    ghost: &Arc<TrackLocalStaticRTP>,
    out: &tokio::sync::mpsc::Sender<Message>,
    answers: &mut tokio::sync::mpsc::Receiver<(u32, String)>,
) {
    let mut offer_id = 7;
    let frames = sim
        .publishers
        .iter()
        .map(|p| p.packets.len())
        .max()
        .unwrap_or(0);
    let mut talking = vec![false; sim.publishers.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in 0..frames {
        tick.tick().await;
        for (i, p) in sim.publishers.iter().enumerate() {
            if p.joins_at != frame || tracks[i].is_some() {
                continue;
            }
            let update = ParticipantUpdate {
                participants: vec![participant(p)],
            };
            let _ = out
                .send(response(signal_response::Message::Update(update)))
                .await;
            tracks[i] = Some(publish(&peer.connection(), p).await);
            let Ok(offer) = peer.offer().await else {
                return;
            };
            offer_id += 1;
            let _ = out
                .send(response(signal_response::Message::Offer(
                    SessionDescription {
                        r#type: "offer".to_owned(),
                        sdp: offer,
                        id: offer_id,
                        ..Default::default()
                    },
                )))
                .await;
            if answered(peer, answers, offer_id).await {
                sim.seen.renegotiated.store(true, Ordering::Relaxed);
            }
        }
        let mut changed = Vec::new();
        for (i, p) in sim.publishers.iter().enumerate() {
            let Some(track) = &tracks[i] else {
                continue;
            };
            let now = p.talking.get(frame) == Some(&true);
            if now != talking[i] {
                talking[i] = now;
                changed.push(SpeakerInfo {
                    sid: p.sid.to_owned(),
                    level: if now { 0.6 } else { 0.0 },
                    active: now,
                });
            }
            let Some(payload) = p.packets.get(frame) else {
                continue;
            };
            let packet = rtp::packet::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type: 111,
                    sequence_number: frame as u16,
                    timestamp: 5_000 + frame as u32 * 960,
                    ssrc: p.ssrc,
                    ..Default::default()
                },
                payload: Bytes::from(payload.clone()),
            };
            let _ = track.write_rtp(packet).await;
        }
        if !changed.is_empty() {
            let _ = out
                .send(response(signal_response::Message::SpeakersChanged(
                    SpeakersChanged { speakers: changed },
                )))
                .await;
        }
        if frame % 100 == 0
            && let Some(payload) = sim.publishers[0].packets.get(frame)
        {
            let packet = rtp::packet::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type: 111,
                    sequence_number: (frame / 100) as u16,
                    timestamp: frame as u32 * 960,
                    ssrc: 77_000,
                    ..Default::default()
                },
                payload: Bytes::from(payload.clone()),
            };
            let _ = ghost.write_rtp(packet).await;
        }
    }
}

fn publisher(
    sid: &'static str,
    identity: &'static str,
    name: &'static str,
    n: u32,
    file: &str,
    joins_at: usize,
) -> Publisher {
    Publisher {
        sid,
        identity,
        name,
        track_sid: if n == 1 { "TR_ana_mic" } else { "TR_ben_mic" },
        ssrc: 60_000 + n,
        packets: opus_packets(file).into_iter().map(|(_, p)| p).collect(),
        talking: talking(&pcm_16k(file), 0),
        joins_at,
    }
}

/// The simulator's WebSocket URL (`ws://127.0.0.1:PORT`).
async fn simulator() -> (Arc<Sim>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    (simulator_on(listener), url)
}

/// The simulator, answering on `listener`.
fn simulator_on(listener: TcpListener) -> Arc<Sim> {
    simulator_cutting(listener, None)
}

/// The simulator, cutting the first bot's connection `cut_first_after` into the meeting.
fn simulator_cutting(listener: TcpListener, cut_first_after: Option<Duration>) -> Arc<Sim> {
    let sim = Arc::new(Sim {
        publishers: vec![
            publisher("PA_ana", "ana", "Ana Lima", 1, "ana.opus", 0),
            // Joins 3 s in, before his first words at 5 s.
            publisher("PA_ben", "ben", "Ben Carter", 2, "ben.opus", 150),
        ],
        seen: Seen::default(),
        cut_first_after,
    });
    let sim2 = Arc::clone(&sim);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let sim = Arc::clone(&sim2);
            tokio::spawn(async move {
                let identity = Arc::new(Mutex::new(String::new()));
                let id2 = Arc::clone(&identity);
                let sim3 = Arc::clone(&sim);
                #[expect(
                    clippy::result_large_err,
                    reason = "tungstenite's handshake callback returns its error response by value"
                )]
                let check = move |req: &Request, resp: Response| {
                    sim3.seen.attempts.fetch_add(1, Ordering::Relaxed);
                    if req.uri().path() != "/rtc" {
                        return Err(refuse(404, "page not found"));
                    }
                    let token = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or_default();
                    let Some(claims) = verify(token) else {
                        return Err(refuse(401, "invalid authorization token"));
                    };
                    sim3.seen.token_ok.store(true, Ordering::Relaxed);
                    if claims["video"]["room"] != ROOM {
                        return Err(refuse(404, "requested room does not exist"));
                    }
                    if claims["video"]["canPublish"] == false
                        && claims["video"]["canSubscribe"] == true
                    {
                        sim3.seen.subscribe_only.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut id) = id2.lock() {
                        *id = claims["sub"].as_str().unwrap_or_default().to_owned();
                    }
                    Ok(resp)
                };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await {
                    let identity = identity.lock().map(|i| i.clone()).unwrap_or_default();
                    serve(sim, ws, identity).await;
                }
            });
        }
    });
    sim
}

async fn livekit_app(secret: &str) -> TestApp {
    TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            livekit: Some((API_KEY.to_owned(), secret.to_owned())),
            ..Options::default()
        },
    )
    .await
}

fn link(server: &str, room: &str) -> String {
    format!("livekit+{server}?room={room}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_room_is_transcribed_per_participant() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (sim, server) = simulator().await;
    let app = livekit_app(API_SECRET).await;
    let admin = app.admin("admin@example.com").await;
    let id = app
        .meeting(
            &admin,
            json!({"title": "LiveKit review", "url": link(&server, ROOM), "participants": []}),
        )
        .await;
    let ended = app
        .ended_meeting(&admin, &id, Duration::from_secs(180))
        .await;
    assert!(
        sim.seen.token_ok.load(Ordering::Relaxed),
        "the token was signed with the secret"
    );
    assert!(
        sim.seen.subscribe_only.load(Ordering::Relaxed),
        "the grant is subscribe-only"
    );
    assert!(
        sim.seen.answered.load(Ordering::Relaxed),
        "the offer was answered"
    );
    assert!(
        sim.seen.renegotiated.load(Ordering::Relaxed),
        "the re-offer bringing a late joiner was answered"
    );
    assert!(
        sim.seen.pings.load(Ordering::Relaxed) >= 2,
        "the bot pinged at the interval"
    );
    assert_sample_meeting(&app, &id, &ended, "LiveKit simulator").await;
    assert_logged(&[
        "LiveKit sent a malformed signalling message; skipped",
        "LiveKit sent a malformed ICE candidate; skipped",
        "audio from a participant LiveKit has not announced; dropped until it does",
    ]);
}

#[tokio::test]
async fn a_livekit_bot_refused_by_the_server_fails_with_a_reason_to_act_on() {
    let (sim, server) = simulator().await;
    for (secret, room, expected) in [
        ("not-the-secret", ROOM, "LIVEKIT_API_SECRET"),
        (API_SECRET, "no-such-room", "does not exist"),
    ] {
        let app = livekit_app(secret).await;
        let admin = app.admin("admin@example.com").await;
        let id = app
            .meeting(
                &admin,
                json!({"title": "LiveKit", "url": link(&server, room), "participants": []}),
            )
            .await;
        let before = sim.seen.attempts.load(Ordering::Relaxed);
        let reason = app
            .failure_reason(&admin, &id, Duration::from_secs(60))
            .await;
        assert!(reason.contains(expected), "{reason}");
        // A refusal is final: the bot does not knock again.
        assert_eq!(
            sim.seen.attempts.load(Ordering::Relaxed) - before,
            1,
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_server_that_cannot_be_reached_yet_is_tried_again() {
    // A port nothing answers on until the test opens it, as a server restarting.
    let port = parley_testkit::servers::free_port().expect("port");
    let server = format!("ws://127.0.0.1:{port}");
    let app = livekit_app(API_SECRET).await;
    let admin = app.admin("admin@example.com").await;
    let id = app
        .meeting(
            &admin,
            json!({"title": "LiveKit later", "url": link(&server, ROOM), "participants": []}),
        )
        .await;
    eventually(Duration::from_secs(30), "a failed first try", || async {
        captured_logs()
            .lines()
            .any(|l| l.contains("cannot join the meeting yet") && l.contains(&format!(":{port}")))
            .then_some(())
    })
    .await;
    let sim = simulator_on(TcpListener::bind(("127.0.0.1", port)).await.expect("bind"));
    eventually(Duration::from_secs(60), "the bot in the room", || async {
        sim.seen.answered.load(Ordering::Relaxed).then_some(())
    })
    .await;
    let meeting = app.meeting_json(&admin, &id).await.expect("meeting");
    assert_ne!(meeting["status"], "failed", "{meeting}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_cut_off_mid_meeting_is_replaced_and_the_meeting_ends_normally() {
    // A session that ends in an error (here the server cutting the connection; a connector task
    // that panics ends the same way, `connector::session`'s test) is the meeting lost, not over:
    // the worker hands it over and a new bot joins.
    let _turn = ONE_AT_A_TIME.lock().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = format!("ws://{}", listener.local_addr().expect("addr"));
    let sim = simulator_cutting(listener, Some(Duration::from_secs(8)));
    let app = livekit_app(API_SECRET).await;
    let admin = app.admin("admin@example.com").await;
    let id = app
        .meeting(
            &admin,
            json!({"title": "LiveKit cut", "url": link(&server, ROOM), "participants": []}),
        )
        .await;
    let ended = app
        .ended_meeting(&admin, &id, Duration::from_secs(240))
        .await;
    assert!(
        sim.seen.cut.load(Ordering::Relaxed),
        "the first session was cut"
    );
    assert!(
        sim.seen.sessions.load(Ordering::Relaxed) >= 2,
        "a new bot joined after the cut: {ended}"
    );
    assert_logged(&["bot failed in the meeting; handing it over"]);
    let stored = app
        .store
        .segments(parley_shared::MeetingId::parse(&id).expect("id"), false)
        .await
        .expect("segments");
    assert!(
        stored
            .iter()
            .any(|s| s.speaker_name == "Ben Carter" && !s.text.is_empty()),
        "the replacement transcribed the rest of the meeting: {stored:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_link_to_another_server_is_refused_at_creation() {
    // The bot would sign a token for any room with the deployment's secret and hand it to
    // whatever host the link names.
    let app = livekit_app(API_SECRET).await;
    let owner = app.user("owner@example.com").await;
    let r = app
        .post(
            "/meetings",
            Some(&owner),
            &json!({"title": "Exfiltrate", "url": "livekit+wss://collector.attacker.test?room=board"}),
        )
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("PARLEY_LIVEKIT_SERVERS")),
        "{body}"
    );
    app.stop().await;
}
