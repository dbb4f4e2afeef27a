//! The Janus connector against a scripted signalling server: garbage frames, a malformed SDP
//! offer, a video-only publisher and a dropped socket are counted and survived; a destroyed room
//! ends the meeting. (A real Janus runs in the orchestrator's end-to-end test.)

use futures_util::{SinkExt, StreamExt};
use parley_bot::connector::janus::{self, JanusConfig, JanusLink};
use parley_bot::connector::{ConnectorEvent, MeetingConnector};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SUB: u64 = 11;

/// The handshake answer naming Janus's subprotocol, which clients require.
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
fn speak_janus_protocol(_: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    resp.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("janus-protocol"),
    );
    Ok(resp)
}

/// Serves Janus sessions: the first connection misbehaves and then drops; the second behaves
/// and destroys the room once the test says so. Records every request it got.
async fn fake_janus(
    listener: TcpListener,
    log: Arc<Mutex<Vec<Value>>>,
    destroy: Arc<tokio::sync::Notify>,
) {
    for connection in 0.. {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let ws = tokio_tungstenite::accept_hdr_async(stream, speak_janus_protocol)
            .await
            .expect("handshake");
        let (mut tx, mut rx) = ws.split();
        let mut handles = [10u64, SUB].into_iter();
        loop {
            let frame = tokio::select! {
                f = rx.next() => f,
                () = destroy.notified(), if connection > 0 => {
                    let ev = json!({"janus": "event", "sender": 10, "plugindata": {"plugin": "janus.plugin.videoroom",
                        "data": {"videoroom": "destroyed", "room": 7}}});
                    let _ = tx.send(Message::text(ev.to_string())).await;
                    continue;
                }
            };
            let Some(Ok(Message::Text(text))) = frame else {
                break;
            };
            let req: Value = serde_json::from_str(&text).expect("the connector sends JSON");
            log.lock().expect("log").push(req.clone());
            let t = req["transaction"].clone();
            let reply = match req["janus"].as_str() {
                Some("create") => json!({"janus": "success", "transaction": t, "data": {"id": 1}}),
                Some("attach") => {
                    json!({"janus": "success", "transaction": t, "data": {"id": handles.next().unwrap_or(99)}})
                }
                Some("message") if req["body"]["request"] == "join" => {
                    for junk in [
                        "not json",
                        "[1,2]",
                        "{\"janus\":",
                        "{\"janus\":\"event\",\"plugindata\":7}",
                    ] {
                        tx.send(Message::text(junk)).await.expect("send");
                    }
                    tx.send(Message::text(
                        json!({"janus": "ack", "transaction": t}).to_string(),
                    ))
                    .await
                    .expect("send");
                    json!({"janus": "event", "sender": 10, "transaction": t, "plugindata": {"plugin": "janus.plugin.videoroom",
                        "data": {"videoroom": "joined", "room": 7, "private_id": 5,
                                 "publishers": [{"id": 3, "display": "Camera only", "streams": [{"type": "video", "mid": "0"}]}]}}})
                }
                _ => json!({"janus": "ack", "transaction": t}),
            };
            tx.send(Message::text(reply.to_string()))
                .await
                .expect("send");
            if connection == 0 && req["body"]["request"] == "join" {
                // An unsolicited renegotiation with an SDP that is not SDP, then the socket drops.
                let offer = json!({"janus": "event", "sender": SUB, "plugindata": {"plugin": "janus.plugin.videoroom",
                    "data": {"videoroom": "updated", "streams": []}}, "jsep": {"type": "offer", "sdp": "garbage"}});
                tx.send(Message::text(offer.to_string()))
                    .await
                    .expect("send");
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signalling_is_counted_and_survived() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let destroy = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(fake_janus(listener, Arc::clone(&log), Arc::clone(&destroy)));

    let url = JanusLink::parse(&format!("janus+ws://127.0.0.1:{port}/?room=7")).expect("url");
    let config = JanusConfig {
        udp_bind: vec!["127.0.0.1:0".to_owned()],
        ..JanusConfig::default()
    };
    let stats = Arc::clone(&config.stats);
    let mut bot = janus::join(url, config)
        .await
        .expect("joins despite the junk");
    // It reconnects after the malformed offer and the dropped socket, then the room goes away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stats.reconnects.load(Relaxed) == 0
        || log
            .lock()
            .expect("log")
            .iter()
            .filter(|r| r["janus"] == "create")
            .count()
            < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "no reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    destroy.notify_one();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match bot.next_event().await {
                Ok(Some(ConnectorEvent::Ended { reason, .. })) => return reason,
                Ok(Some(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("the meeting ends");
    assert!(ended.contains("destroyed"), "{ended}");
    assert!(
        stats.malformed_messages.load(Relaxed) >= 6,
        "junk counted: {}",
        stats.malformed_messages.load(Relaxed)
    );
    let subscribed = log
        .lock()
        .expect("log")
        .iter()
        .any(|r| r["body"]["ptype"] == "subscriber" || r["body"]["request"] == "subscribe");
    assert!(
        !subscribed,
        "a video-only publisher gets no audio subscription"
    );
    bot.leave().await;
}
