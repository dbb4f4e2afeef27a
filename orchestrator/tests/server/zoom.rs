//! Zoom meetings through RTMS, against a simulator of Zoom's RTMS servers written from the
//! public documentation (https://developers.zoom.us/docs/rtms/event-reference/universal-events/):
//! no Zoom service can be reached from the test machines. The simulator checks the handshake
//! signatures and audio parameters, sends keep-alives, streams each speaker's 16 kHz L16 audio
//! (only while they speak, as multi-stream audio does) with some malformed frames mixed in, and
//! terminates the stream at the end.

use crate::bots::ONE_AT_A_TIME;
use crate::helpers::{Backend, Options, TestApp, assert_sample_meeting, eventually};
use crate::sample_media::{pcm_16k, talking};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use parley_bot::connector::zoom_rtms::protocol::signature;
use parley_testkit::servers::free_port;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

const CLIENT_ID: &str = "parley-test-app";
const CLIENT_SECRET: &str = "client-secret-for-tests";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";
const MEETING_UUID: &str = "4444AAAiAAAAAiAiAiiAii==";
const STREAM_ID: &str = "609340fc72b348e5c3a5a6a2f1f98f72";

struct Speaker {
    user_id: u64,
    name: &'static str,
    audio: Vec<f32>,
}

/// What the simulator saw the bot do.
#[derive(Default)]
struct Seen {
    signed: AtomicBool,
    keep_alive_answered: AtomicBool,
    ready: AtomicBool,
    ready_now: Notify,
}

struct Simulator {
    port: u16,
    seen: Arc<Seen>,
}

impl Simulator {
    async fn start(speakers: Vec<Speaker>) -> Self {
        let port = free_port().expect("port");
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let seen = Arc::new(Seen::default());
        let speakers = Arc::new(speakers);
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = Arc::clone(&seen2);
                let speakers = Arc::clone(&speakers);
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        serve(ws, port, seen, speakers).await;
                    }
                });
            }
        });
        Self { port, seen }
    }

    fn signal_url(&self) -> String {
        format!("ws://127.0.0.1:{}/signal", self.port)
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn send(ws: &mut Ws, v: Value) {
    let _ = ws.send(Message::text(v.to_string())).await;
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).ok();
        }
    }
    None
}

/// One connection: the signalling socket (first message type 1) or the media socket (3).
async fn serve(mut ws: Ws, port: u16, seen: Arc<Seen>, speakers: Arc<Vec<Speaker>>) {
    let Some(hello) = next_json(&mut ws).await else {
        return;
    };
    let expected = signature(CLIENT_ID, CLIENT_SECRET, MEETING_UUID, STREAM_ID);
    let signed = hello["signature"] == expected.as_str()
        && hello["meeting_uuid"] == MEETING_UUID
        && hello["rtms_stream_id"] == STREAM_ID;
    match hello["msg_type"].as_u64() {
        Some(1) => {
            if !signed {
                // The documented shape of a refused handshake: a non-zero status code.
                send(
                    &mut ws,
                    json!({"msg_type": 2, "status_code": 3, "reason": "invalid signature"}),
                )
                .await;
                return;
            }
            seen.signed.store(true, Ordering::Relaxed);
            let media = format!("ws://127.0.0.1:{port}/media");
            send(
                &mut ws,
                json!({"msg_type": 2, "protocol_version": 1, "status_code": 0,
                "media_server": {"server_urls": {"audio": media, "all": media}}}),
            )
            .await;
            send(
                &mut ws,
                json!({"msg_type": 12, "timestamp": 1_727_000_000_000u64}),
            )
            .await;
            while let Some(msg) = next_json(&mut ws).await {
                match msg["msg_type"].as_u64() {
                    Some(13) => seen.keep_alive_answered.store(true, Ordering::Relaxed),
                    Some(7) => {
                        seen.ready.store(true, Ordering::Relaxed);
                        seen.ready_now.notify_waiters();
                        break;
                    }
                    _ => {}
                }
            }
            // Wait for the media socket to finish streaming, then end the stream here.
            seen.ready_now.notified().await;
            send(&mut ws, json!({"msg_type": 8, "state": 4, "reason": 2})).await;
            while let Some(msg) = next_json(&mut ws).await {
                if msg["msg_type"] == 13 {
                    seen.keep_alive_answered.store(true, Ordering::Relaxed);
                }
            }
        }
        Some(3) => {
            let audio = &hello["media_params"]["audio"];
            let wanted = audio["codec"] == 1 && audio["sample_rate"] == 1 && audio["data_opt"] == 2;
            let status = if signed && wanted { 0 } else { 5 };
            send(
                &mut ws,
                json!({"msg_type": 4, "protocol_version": 1, "status_code": status}),
            )
            .await;
            if status != 0 {
                return;
            }
            while !seen.ready.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stream_audio(&mut ws, &speakers).await;
            seen.ready_now.notify_waiters();
            while ws.next().await.is_some() {}
        }
        _ => {}
    }
}

/// Which 20 ms frames of `audio` an active-speaker detector sends: those within 300 ms of a
/// frame with speech energy (Zoom sends a speaker's audio while they are an active speaker, not
/// only their loud frames).
/// 20 ms packets per speaker while they speak, at twice real time, with hostile frames mixed in.
async fn stream_audio(ws: &mut Ws, speakers: &[Speaker]) {
    const FRAME: usize = 320;
    let frames = speakers
        .iter()
        .map(|s| s.audio.len() / FRAME)
        .max()
        .unwrap_or(0);
    let active: Vec<Vec<bool>> = speakers.iter().map(|s| talking(&s.audio, 15)).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    for i in 0..frames {
        if i % 250 == 7 {
            let _ = ws.send(Message::text("{not json")).await;
            send(ws, json!({"msg_type": 99, "content": {}})).await;
            send(
                ws,
                json!({"msg_type": 14, "content": {"user_id": 1, "user_name": "x", "data": "%%%"}}),
            )
            .await;
            send(
                ws,
                json!({"msg_type": 14, "content": {"user_name": "no id", "data": ""}}),
            )
            .await;
        }
        for (s, active) in speakers.iter().zip(&active) {
            let (Some(chunk), Some(true)) =
                (s.audio.get(i * FRAME..(i + 1) * FRAME), active.get(i))
            else {
                continue;
            };
            let pcm: Vec<u8> = chunk
                .iter()
                .flat_map(|x| ((x.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
                .collect();
            send(
                ws,
                json!({"msg_type": 14, "content": {
                    "user_id": s.user_id, "user_name": s.name,
                    "data": b64.encode(&pcm), "timestamp": 1_727_000_000_000u64 + (i as u64) * 20,
                }}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn sample_speakers() -> Vec<Speaker> {
    vec![
        Speaker {
            user_id: 16_778_240,
            name: "Ana Lima",
            audio: pcm_16k("ana.opus"),
        },
        Speaker {
            user_id: 16_779_264,
            name: "Ben Carter",
            audio: pcm_16k("ben.opus"),
        },
    ]
}

/// Posts `event` to the webhook, signed as Zoom signs it (with `secret`).
async fn webhook(app: &TestApp, event: &Value, secret: &str) -> reqwest::Response {
    let body = event.to_string();
    let ts = parley_shared::now_ms() / 1000;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mac = hex::encode(ring::hmac::sign(&key, format!("v0:{ts}:{body}").as_bytes()).as_ref());
    app.http
        .post(app.url("/webhooks/zoom"))
        .header("content-type", "application/json")
        .header("x-zm-request-timestamp", ts.to_string())
        .header("x-zm-signature", format!("v0={mac}"))
        .body(body)
        .send()
        .await
        .expect("request")
}

fn rtms_started(server: &str, number: &str) -> Value {
    json!({"event": "meeting.rtms_started", "event_ts": 1, "payload": {
        "account_id": "acct", "meeting_id": number.parse::<u64>().expect("number"),
        "meeting_uuid": MEETING_UUID, "rtms_stream_id": STREAM_ID, "server_urls": server,
    }})
}

/// Zoom tells the app that meeting `number`'s media stream (on `sim`) started; it is accepted.
async fn stream_started(app: &TestApp, sim: &Simulator, number: &str) {
    let r = webhook(
        app,
        &rtms_started(&sim.signal_url(), number),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn zoom_app(client_secret: &str) -> TestApp {
    TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            zoom: Some((
                WEBHOOK_SECRET.to_owned(),
                CLIENT_ID.to_owned(),
                client_secret.to_owned(),
            )),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoom_meeting_is_transcribed_per_participant_once_zoom_starts_its_media_stream() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sim = Simulator::start(sample_speakers()).await;
    let app = zoom_app(CLIENT_SECRET).await;
    let admin = app.admin("admin@example.com").await;
    let number = "81234567890";
    let id = app
        .meeting(&admin, json!({"title": "Zoom review", "url": format!("https://us02web.zoom.us/j/{number}?pwd=abc"), "participants": []}))
        .await;

    // Unsigned, wrongly signed or unverifiable requests are refused; the challenge is answered.
    let started = rtms_started(&sim.signal_url(), number);
    assert_eq!(
        webhook(&app, &started, "not-the-secret").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .http
        .post(app.url("/webhooks/zoom"))
        .json(&started)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = json!({"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}});
    let answer: Value = webhook(&app, &challenge, WEBHOOK_SECRET)
        .await
        .json()
        .await
        .expect("json");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes());
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer["encryptedToken"],
        hex::encode(ring::hmac::sign(&key, b"qgg8vlvZRS6UYooatFL8Aw").as_ref())
    );

    // Before Zoom starts the stream there is nothing to join: the meeting waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m: Value = app
        .get(&format!("/meetings/{id}"), Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(m["status"], "scheduled", "{m}");

    assert_eq!(
        webhook(&app, &started, WEBHOOK_SECRET).await.status(),
        StatusCode::OK
    );
    let ended = app
        .ended_meeting(&admin, &id, Duration::from_secs(180))
        .await;
    assert!(
        sim.seen.signed.load(Ordering::Relaxed),
        "the handshake was signed with the app's secret"
    );
    assert!(
        sim.seen.keep_alive_answered.load(Ordering::Relaxed),
        "keep-alive answered"
    );
    assert_sample_meeting(&app, &id, &ended, "Zoom RTMS simulator").await;
}

#[tokio::test]
async fn a_zoom_app_with_the_wrong_secret_fails_the_meeting_with_a_reason_to_act_on() {
    let sim = Simulator::start(Vec::new()).await;
    let app = zoom_app("not-the-app-secret").await;
    let admin = app.admin("admin@example.com").await;
    let number = "81234567891";
    let id = app
        .meeting(&admin, json!({"title": "Zoom", "url": format!("https://zoom.us/j/{number}"), "participants": []}))
        .await;
    stream_started(&app, &sim, number).await;
    let reason = app
        .failure_reason(&admin, &id, Duration::from_secs(60))
        .await;
    assert!(
        reason.contains("RTMS refused the signalling handshake")
            && reason.contains("client id and secret"),
        "{reason}"
    );
    // A stream for a meeting nobody scheduled is acknowledged and ignored.
    let other = webhook(
        &app,
        &rtms_started(&sim.signal_url(), "999"),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoom_stream_several_accounts_wait_for_goes_to_none_of_them() {
    let sim = Simulator::start(Vec::new()).await;
    let app = zoom_app(CLIENT_SECRET).await;
    let number = "81234567892";
    let meeting = json!({"title": "Board", "url": format!("https://zoom.us/j/{number}"),
                         "start_time": "2099-01-01T00:00:00Z", "participants": []});
    let alice = app.user("alice@example.com").await;
    let alices = app.meeting(&alice, meeting.clone()).await;
    // Mallory schedules the same Zoom number, without a start time (which once always won).
    let mallory = app.user("mallory@example.com").await;
    let mallorys = app
        .meeting(
            &mallory,
            json!({"title": "Mine", "url": format!("https://zoom.us/j/{number}"),
                                  "participants": []}),
        )
        .await;
    stream_started(&app, &sim, number).await;
    for (token, id) in [(&alice, &alices), (&mallory, &mallorys)] {
        let reason = app.failure_reason(token, id, Duration::from_secs(10)).await;
        assert!(
            reason.contains("another account also scheduled"),
            "{reason}"
        );
    }
    assert!(
        !sim.seen.signed.load(Ordering::Relaxed),
        "no bot joined the stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoom_stream_of_an_account_the_server_does_not_serve_is_ignored() {
    let sim = Simulator::start(Vec::new()).await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            zoom: Some((
                WEBHOOK_SECRET.to_owned(),
                CLIENT_ID.to_owned(),
                CLIENT_SECRET.to_owned(),
            )),
            zoom_accounts: vec!["our-account".to_owned()],
            ..Options::default()
        },
    )
    .await;
    let owner = app.user("owner@example.com").await;
    let number = "81234567893";
    let id = app
        .meeting(
            &owner,
            json!({"title": "Board", "url": format!("https://zoom.us/j/{number}"),
                   "participants": []}),
        )
        .await;
    let status = || async {
        let m = app.meeting_json(&owner, &id).await.expect("meeting");
        m["status"].as_str().expect("status").to_owned()
    };
    // Another company's meeting with the same number: its stream is not ours.
    let mut theirs = rtms_started(&sim.signal_url(), number);
    theirs["payload"]["account_id"] = json!("their-account");
    let r = webhook(&app, &theirs, WEBHOOK_SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status().await, "scheduled");
    // Our account's stream is taken.
    let mut ours = rtms_started(&sim.signal_url(), number);
    ours["payload"]["account_id"] = json!("our-account");
    let r = webhook(&app, &ours, WEBHOOK_SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    eventually(Duration::from_secs(10), "the bot sent", || async {
        (status().await != "scheduled").then_some(())
    })
    .await;
    app.stop().await;
}
