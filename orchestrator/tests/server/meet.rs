//! Google Meet through the Meet Media API, against a simulator written from the public
//! documentation (https://developers.google.com/workspace/meet/media-api: the
//! `connectActiveConference` reference, the data-channel reference and the virtual-streams
//! guide): no Google service can be reached from the test machines. The simulator is Google's
//! token endpoint and the Meet REST API over HTTP, and a webrtc-rs peer that answers the bot's
//! offer. It checks the refresh-token grant, the bearer token and the offer (three receive-only
//! audio m-lines, the data channels), admits the session on `session-control`, sends the
//! roster and media entries, asks for stats uploads, and then sends each speaker's Opus packets
//! the way Meet does: on three virtual streams, a speaker taking the lowest free stream when they
//! start talking, each packet's CSRC naming them (with the loudest-speaker marker 42 beside it).
//! One stream thus passes from one speaker to the next. Hostile input rides along: malformed
//! and oversized data-channel messages, packets without a CSRC and packets whose CSRC no media
//! entry names.

use crate::bots::ONE_AT_A_TIME;
use crate::helpers::{
    Backend, MeetSettings, Options, TestApp, assert_logged, assert_sample_meeting,
};
use crate::sample_media::{opus_packets, opus_track, pcm_16k, talking};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use parley_bot::connector::peer::Peer;
use rtc::rtp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

const CLIENT_ID: &str = "parley-test.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-client-secret-for-tests";
const REFRESH_TOKEN: &str = "1//refresh-token-for-tests";
const ACCESS_TOKEN: &str = "ya29.access-token-for-tests";
const MEETING_CODE: &str = "abc-defg-hij";
const STREAM_SSRCS: [u32; 3] = [41_001, 41_002, 41_003];
const LOUDEST_SPEAKER_CSRC: u32 = 42;
/// A speaker holds a stream from this long before they are loud to this long after: an SFU
/// choosing its loudest speakers later than the first syllable would clip it (measured: WER
/// 12 % instead of 6 % on the sample when the choice lags speech by 20 ms).
const HANGOVER_FRAMES: usize = 10;

struct Person {
    key: &'static str,
    name: &'static str,
    csrc: u32,
    /// Opus packets by 20 ms frame index.
    packets: HashMap<usize, Vec<u8>>,
    /// Whether the person is talking in each 20 ms frame.
    active: Vec<bool>,
}

/// What the simulator saw the bot do.
#[derive(Default)]
struct Seen {
    refreshed: AtomicBool,
    offer_valid: AtomicBool,
    stats_uploads: AtomicU64,
    /// Times a virtual stream passed from one speaker to another.
    handovers: AtomicU64,
    left: AtomicBool,
}

struct Sim {
    people: Vec<Person>,
    seen: Seen,
    /// How the next session ends: the conference ends, or Meet never admits the bot.
    admit: bool,
}

async fn token(State(sim): State<Arc<Sim>>, body: String) -> (StatusCode, Json<Value>) {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("grant_type") != Some("refresh_token")
        || get("client_id") != Some(CLIENT_ID)
        || get("client_secret") != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Unauthorized"})),
        );
    }
    if get("refresh_token") != Some(REFRESH_TOKEN) {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
            ),
        );
    }
    sim.seen.refreshed.store(true, Ordering::Relaxed);
    (
        StatusCode::OK,
        Json(
            json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/meetings.conference.media.audio.readonly"}),
        ),
    )
}

fn google_error(
    status: StatusCode,
    grpc: &str,
    reason: &str,
    message: &str,
) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(
            json!({"error": {"code": status.as_u16(), "message": message, "status": grpc,
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                "domain": "meet.googleapis.com"}]}}),
        ),
    )
}

/// Whether `sdp` is an offer Meet accepts: exactly three receive-only audio m-lines, Opus, and
/// a data-channel section.
fn offer_problem(sdp: &str) -> Option<&'static str> {
    let sections: Vec<&str> = sdp.split("\r\nm=").skip(1).collect();
    let audio: Vec<&&str> = sections.iter().filter(|s| s.starts_with("audio")).collect();
    if audio.len() != 3 {
        return Some("the offer needs exactly three audio m-lines");
    }
    if !audio
        .iter()
        .all(|s| s.contains("a=recvonly") && s.contains("opus/48000"))
    {
        return Some("audio m-lines must be receive-only Opus");
    }
    if !sections
        .iter()
        .any(|s| s.starts_with("application") && s.contains("webrtc-datachannel"))
    {
        return Some("the offer has no data channels");
    }
    None
}

async fn connect_active_conference(
    State(sim): State<Arc<Sim>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {ACCESS_TOKEN}"))
    {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "ACCESS_TOKEN_EXPIRED",
            "Request had invalid authentication credentials.",
        );
    }
    let Some(space) = name.strip_suffix(":connectActiveConference") else {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "NOT_FOUND",
            "Method not found.",
        );
    };
    if space != MEETING_CODE {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "NOT_FOUND",
            "Requested entity was not found.",
        );
    }
    let Some(offer) = body["offer"].as_str() else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_OFFER",
            "offer is required",
        );
    };
    if let Some(problem) = offer_problem(offer) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "INVALID_OFFER",
            problem,
        );
    }
    sim.seen.offer_valid.store(true, Ordering::Relaxed);
    match Session::answer(Arc::clone(&sim), offer).await {
        Ok(answer) => (
            StatusCode::OK,
            Json(json!({"answer": answer, "traceId": "trace-1"})),
        ),
        Err(e) => google_error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "INVALID_OFFER",
            &e,
        ),
    }
}

/// One Media API session: the server's peer, its three virtual streams and the data channels.
struct Session;

impl Session {
    /// Answers the offer and runs the session in the background.
    async fn answer(sim: Arc<Sim>, offer: &str) -> Result<String, String> {
        let payload_type = offer
            .lines()
            .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" opus/48000/2"))
            .and_then(|pt| pt.parse::<u8>().ok())
            .ok_or("no Opus payload type")?;
        let mut peer = Peer::taking_data_channels(&["0.0.0.0:0".to_owned()], Vec::new()).await?;
        let pc = peer.connection();
        let mut tracks = Vec::new();
        for (i, ssrc) in STREAM_SSRCS.into_iter().enumerate() {
            let name = format!("virtual-audio-{i}");
            let track = opus_track(&name, &name, ssrc);
            pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await
                .map_err(|e| e.to_string())?;
            tracks.push(track);
        }
        let answer = peer.answer(offer).await?;
        tokio::spawn(run_session(sim, peer, tracks, payload_type));
        Ok(answer)
    }
}

async fn send(dc: &Arc<dyn DataChannel>, v: Value) {
    let _ = dc.send_text(&v.to_string()).await;
}

async fn run_session(
    sim: Arc<Sim>,
    mut peer: Peer,
    tracks: Vec<Arc<TrackLocalStaticRTP>>,
    payload_type: u8,
) {
    let mut by_label: HashMap<String, Arc<dyn DataChannel>> = HashMap::new();
    let wanted = [
        "session-control",
        "media-entries",
        "participants",
        "media-stats",
    ];
    let all_open = tokio::time::timeout(Duration::from_secs(20), async {
        while by_label.len() < wanted.len() {
            let Some(dc) = peer.next_data_channel().await else {
                return;
            };
            // The channel is usable once it reports open.
            let dc2 = Arc::clone(&dc);
            let label = dc.label().await.unwrap_or_default();
            let (open_tx, open_rx) = tokio::sync::oneshot::channel();
            let sim = Arc::clone(&sim);
            let label2 = label.clone();
            tokio::spawn(async move {
                let mut open_tx = Some(open_tx);
                while let Some(event) = dc2.poll().await {
                    match event {
                        DataChannelEvent::OnOpen => {
                            if let Some(tx) = open_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        DataChannelEvent::OnMessage(m) => {
                            let text = String::from_utf8_lossy(&m.data).into_owned();
                            client_message(&sim, &label2, &dc2, &text).await;
                        }
                        DataChannelEvent::OnClose => break,
                        _ => {}
                    }
                }
            });
            let _ = tokio::time::timeout(Duration::from_secs(10), open_rx).await;
            by_label.insert(label, dc);
        }
    })
    .await;
    if all_open.is_err() || wanted.iter().any(|l| !by_label.contains_key(*l)) {
        peer.close().await;
        return;
    }
    let session = &by_label["session-control"];
    send(
        &by_label["media-stats"],
        json!({"resources": [{"configuration": {
        "uploadIntervalSeconds": 1,
        "allowlist": {"inbound-rtp": {"keys": ["ssrc", "packetsReceived", "packetsLost"]},
                      "codec": {"keys": ["mimeType"]}}}}]}),
    )
    .await;
    send(
        session,
        json!({"resources": [{"sessionStatus": {"connectionState": "STATE_WAITING"}}]}),
    )
    .await;
    if !sim.admit {
        send(
            session,
            json!({"resources": [{"sessionStatus": {"connectionState": "STATE_DISCONNECTED"}}]}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        peer.close().await;
        return;
    }
    send(
        session,
        json!({"resources": [{"sessionStatus": {"connectionState": "STATE_JOINED"}}]}),
    )
    .await;

    let participants: Vec<Value> = sim
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let who = if i == 0 {
                json!({"signedInUser": {"user": format!("users/{}", 1000 + i), "displayName": p.name}})
            } else {
                json!({"anonymousUser": {"displayName": p.name}})
            };
            let mut participant = json!({"name": format!("conferenceRecords/cr1/{}", p.key),
                "participantKey": p.key});
            if let (Some(o), Some(w)) = (participant.as_object_mut(), who.as_object()) {
                o.extend(w.clone());
            }
            json!({"id": 10 + i, "participant": participant})
        })
        .collect();
    send(
        &by_label["participants"],
        json!({"resources": participants}),
    )
    .await;
    let entries: Vec<Value> = sim
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"id": 500 + i, "mediaEntry": {
            "participant": format!("conferenceRecords/cr1/{}", p.key), "participantKey": p.key,
            "sessionName": format!("{}/participantSessions/s{i}", p.key),
            "audioCsrc": p.csrc, "videoCsrcs": [], "audioMuted": false, "videoMuted": true}})
        })
        .collect();
    send(&by_label["media-entries"], json!({"resources": entries})).await;
    // Hostile: not JSON, the wrong shapes, a large message, and an entry removed that never was.
    let entries_dc = &by_label["media-entries"];
    let _ = entries_dc.send_text("{not json").await;
    send(
        entries_dc,
        json!({"resources": [{"id": "x", "mediaEntry": {"audioCsrc": "loud"}}]}),
    )
    .await;
    send(entries_dc, json!([1, 2, 3])).await;
    send(
        entries_dc,
        json!({"deletedResources": [{"id": 99_999, "mediaEntry": true}]}),
    )
    .await;
    let _ = entries_dc
        .send_text(&format!("{{\"junk\":\"{}\"}}", "x".repeat(12_000)))
        .await;

    stream_audio(&sim, &tracks, payload_type).await;

    send(
        session,
        json!({"resources": [{"sessionStatus": {
        "connectionState": "STATE_DISCONNECTED", "disconnectReason": "REASON_CONFERENCE_ENDED"}}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    peer.close().await;
}

/// What the bot sends on a channel: stats uploads and a leave request.
async fn client_message(sim: &Sim, label: &str, dc: &Arc<dyn DataChannel>, text: &str) {
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let request = &msg["request"];
    let Some(id) = request["requestId"].as_i64() else {
        return;
    };
    match label {
        "media-stats" if request["uploadMediaStats"]["sections"].is_array() => {
            sim.seen.stats_uploads.fetch_add(1, Ordering::Relaxed);
            send(
                dc,
                json!({"response": {"requestId": id, "status": {"code": 0, "message": ""},
                "uploadMediaStats": {}}}),
            )
            .await;
        }
        "session-control" if request["leave"].is_object() => {
            sim.seen.left.store(true, Ordering::Relaxed);
            send(dc, json!({"response": {"requestId": id, "status": {"code": 0, "message": ""}, "leave": {}}})).await;
            send(
                dc,
                json!({"resources": [{"sessionStatus": {"connectionState": "STATE_DISCONNECTED",
                "disconnectReason": "REASON_CLIENT_LEFT"}}]}),
            )
            .await;
        }
        _ => {}
    }
}

/// Sends every 20 ms frame of the meeting on the virtual streams, as Meet would.
async fn stream_audio(sim: &Sim, tracks: &[Arc<TrackLocalStaticRTP>], payload_type: u8) {
    let frames = sim.people.iter().map(|p| p.active.len()).max().unwrap_or(0);
    let mut assigned: [Option<usize>; 3] = [None; 3];
    let mut last_on: [Option<usize>; 3] = [None; 3];
    let mut seq = [0u16; 3];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in 0..frames {
        tick.tick().await;
        let talking: Vec<usize> = (0..sim.people.len())
            .filter(|&i| sim.people[i].active.get(frame) == Some(&true))
            .collect();
        for slot in &mut assigned {
            if slot.is_some_and(|p| !talking.contains(&p)) {
                *slot = None;
            }
        }
        for &p in &talking {
            if !assigned.contains(&Some(p))
                && let Some(free) = assigned.iter().position(Option::is_none)
            {
                assigned[free] = Some(p);
                if last_on[free].is_some_and(|q| q != p) {
                    sim.seen.handovers.fetch_add(1, Ordering::Relaxed);
                }
                last_on[free] = Some(p);
            }
        }
        for (s, slot) in assigned.iter().enumerate() {
            let packet = |seq, csrc, payload: Bytes| rtp::packet::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type,
                    sequence_number: seq,
                    // The stream's clock runs on while it carries nobody.
                    timestamp: 90_000 + frame as u32 * 960,
                    ssrc: STREAM_SSRCS[s],
                    csrc,
                    ..Default::default()
                },
                payload,
            };
            let Some(p) = *slot else {
                if frame % 200 == 50 {
                    // Hostile, on a stream carrying nobody: a packet naming nobody, or one
                    // whose CSRC no media entry names.
                    seq[s] = seq[s].wrapping_add(1);
                    let csrc = if s % 2 == 0 { vec![] } else { vec![777_777] };
                    let silence = Bytes::from_static(&[0xf8, 0xff, 0xfe]);
                    let _ = tracks[s].write_rtp(packet(seq[s], csrc, silence)).await;
                }
                continue;
            };
            let person = &sim.people[p];
            let Some(payload) = person.packets.get(&frame) else {
                continue;
            };
            seq[s] = seq[s].wrapping_add(1);
            let mut csrc = vec![person.csrc];
            if s == 0 {
                csrc.push(LOUDEST_SPEAKER_CSRC);
            }
            let _ = tracks[s]
                .write_rtp(packet(seq[s], csrc, Bytes::from(payload.clone())))
                .await;
        }
    }
}

fn person(key: &'static str, name: &'static str, csrc: u32, file: &str) -> Person {
    Person {
        key,
        name,
        csrc,
        packets: opus_packets(file).into_iter().collect(),
        active: talking(&pcm_16k(file), HANGOVER_FRAMES),
    }
}

async fn simulator(admit: bool) -> (Arc<Sim>, String) {
    let sim = Arc::new(Sim {
        people: vec![
            person("participants/ana-1", "Ana Lima", 1_000_101, "ana.opus"),
            person("participants/ben-2", "Ben Carter", 1_000_202, "ben.opus"),
        ],
        seen: Seen::default(),
        admit,
    });
    let app = Router::new()
        .route("/token", post(token))
        .route("/v2beta/spaces/{name}", post(connect_active_conference))
        .with_state(Arc::clone(&sim));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (sim, base)
}

async fn meet_app(base: &str, refresh_token: &str) -> TestApp {
    TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            meet: Some(MeetSettings {
                api_url: base.to_owned(),
                token_url: format!("{base}/token"),
                client_id: CLIENT_ID.to_owned(),
                client_secret: CLIENT_SECRET.to_owned(),
                refresh_token: refresh_token.to_owned(),
            }),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meet_call_is_transcribed_per_participant_through_the_media_api() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (sim, base) = simulator(true).await;
    let app = meet_app(&base, REFRESH_TOKEN).await;
    let admin = app.admin("admin@example.com").await;
    let id = app
        .meeting(
            &admin,
            json!({"title": "Meet review",
            "url": format!("https://meet.google.com/{MEETING_CODE}"), "participants": []}),
        )
        .await;
    let ended = app
        .ended_meeting(&admin, &id, Duration::from_secs(180))
        .await;
    assert!(
        sim.seen.refreshed.load(Ordering::Relaxed),
        "the refresh token was used"
    );
    assert!(
        sim.seen.offer_valid.load(Ordering::Relaxed),
        "the offer was what Meet asks for"
    );
    assert!(
        sim.seen.handovers.load(Ordering::Relaxed) >= 1,
        "a virtual stream passed from one speaker to the other"
    );
    assert!(
        sim.seen.stats_uploads.load(Ordering::Relaxed) >= 1,
        "stats were uploaded as the configuration asked"
    );
    assert_sample_meeting(&app, &id, &ended, "Meet Media API simulator").await;
    assert_logged(&[
        "Meet sent a malformed data-channel message; skipped",
        "Meet sent audio whose CSRC no media entry names",
        "unattributed_packets",
    ]);
}

#[tokio::test]
async fn a_meet_bot_with_a_revoked_token_or_not_admitted_fails_with_a_reason_to_act_on() {
    for (admit, refresh, expected) in [
        (true, "1//revoked", "invalid_grant"),
        (false, REFRESH_TOKEN, "did not admit"),
    ] {
        let (_sim, base) = simulator(admit).await;
        let app = meet_app(&base, refresh).await;
        let admin = app.admin("admin@example.com").await;
        let id = app
            .meeting(&admin, json!({"title": "Meet", "url": format!("https://meet.google.com/{MEETING_CODE}"), "participants": []}))
            .await;
        let reason = app
            .failure_reason(&admin, &id, Duration::from_secs(60))
            .await;
        assert!(reason.contains(expected), "{reason}");
    }
}
