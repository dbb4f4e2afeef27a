//! The integrators' event stream, `GET /meetings/{id}/events` (Server-Sent Events, or a
//! WebSocket): a client that disconnects mid-meeting and resumes with its cursor on another
//! replica ends with exactly the stored finals, each event once.

use crate::helpers::{Backend, Options, TestApp, eventually, fresh_database, unique_stream};
use crate::ingest::{segment, speaker};
use crate::live::{opening, publish};
use futures_util::StreamExt;
use parley_shared::{EventBody, MeetingId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// One Server-Sent Event.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

struct SseClient {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseClient {
    async fn open(app: &TestApp, path: &str, key: &str, last_id: Option<&str>) -> Self {
        let mut req = app.http.get(app.url(path)).bearer_auth(key);
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.expect("events");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        assert_eq!(
            r.headers()
                .get("parley-events-version")
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        Self {
            body: r.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped).
    async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Sse { event, id, data };
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("an event in time")
                .expect("the stream stays open")
                .expect("chunk");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug, Clone, Copy)]
enum Transport {
    Sse,
    WebSocket,
}

/// A client of either form, reading events as one shape: for a WebSocket, the name is the
/// frame's `type` and the id its `cursor`.
enum Client {
    Sse(SseClient),
    Ws(Box<Socket>),
}

impl Client {
    async fn open(
        transport: Transport,
        app: &TestApp,
        path: &str,
        key: &str,
        last_id: Option<&str>,
    ) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        match transport {
            Transport::Sse => Self::Sse(SseClient::open(app, path, key, last_id).await),
            Transport::WebSocket => {
                let mut url = app.url(path).replacen("http://", "ws://", 1);
                if let Some(id) = last_id {
                    url.push_str(&format!("?after={id}"));
                }
                let mut request = url.into_client_request().expect("request");
                request.headers_mut().insert(
                    "authorization",
                    format!("Bearer {key}").parse().expect("header"),
                );
                let (socket, response) = tokio_tungstenite::connect_async(request)
                    .await
                    .expect("websocket");
                assert_eq!(
                    response
                        .headers()
                        .get("parley-events-version")
                        .map(|v| v.as_bytes()),
                    Some(&b"1"[..])
                );
                Self::Ws(Box::new(socket))
            }
        }
    }

    async fn next(&mut self) -> Sse {
        let socket = match self {
            Self::Sse(client) => return client.next().await,
            Self::Ws(socket) => socket,
        };
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .expect("an event in time")
                .expect("the socket stays open")
                .expect("frame");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
                let data: Value = serde_json::from_str(&text).expect("frame is JSON");
                return Sse {
                    event: data["type"].as_str().expect("type").to_owned(),
                    id: data["cursor"].as_str().map(str::to_owned),
                    data,
                };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_resumes_the_server_sent_events_on_another_replica_without_gap_or_duplicate()
{
    resumes_on_another_replica_without_gap_or_duplicate(Transport::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_resumes_the_websocket_on_another_replica_without_gap_or_duplicate() {
    resumes_on_another_replica_without_gap_or_duplicate(Transport::WebSocket).await;
}

async fn resumes_on_another_replica_without_gap_or_duplicate(transport: Transport) {
    let stream = unique_stream();
    let options = Options {
        redis_stream: Some(stream.clone()),
        secret_key: Some("5".repeat(64)),
        ..Options::default()
    };
    let (db, dir) = fresh_database(Backend::Postgres).await;
    let a = TestApp::spawn_on(db.clone(), dir, options.clone()).await;
    let b = TestApp::spawn_on(db, tempfile::tempdir().expect("dir"), options).await;
    let owner = a.user("owner@example.com").await;
    let stranger = a.user("stranger@example.com").await;
    let id = a
        .meeting(&owner, json!({"title": "Sync", "url": "https://zoom.us/j/3", "start_time": "2099-01-01T00:00:00Z"}))
        .await;
    let meeting = MeetingId::parse(&id).expect("id");
    let made: Value = a
        .post(
            "/api-keys",
            Some(&owner),
            &json!({"name": "crm", "scopes": ["meetings:read"]}),
        )
        .await
        .json()
        .await
        .expect("key");
    let key = made["key"].as_str().expect("key").to_owned();
    let path = format!("/meetings/{id}/events");

    // Refusals: someone else's meeting, a key without the scope, a cursor never issued.
    assert_eq!(
        a.get(&path, Some(&stranger)).await.status(),
        StatusCode::NOT_FOUND
    );
    let writer: Value = a
        .post(
            "/api-keys",
            Some(&owner),
            &json!({"name": "w", "scopes": ["bots:write"]}),
        )
        .await
        .json()
        .await
        .expect("key");
    let r = a
        .get(&path, Some(writer["key"].as_str().expect("key")))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = a.get(&format!("{path}?after=junk"), Some(&key)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let ana = speaker("ana", "Ana Lima");
    let ben = speaker("ben", "Ben Carter");
    let (mut sink, mut seq) = opening(&stream, meeting).await;
    eventually(
        Duration::from_secs(20),
        "the first batch stored",
        || async { (a.store.segments(meeting, true).await.ok()?.len() == 2).then_some(()) },
    )
    .await;

    // First connection, to replica B: the status, then the log's entries up to both finals;
    // then it drops.
    let mut seen_ids = HashSet::new();
    let mut finals: BTreeMap<String, String> = BTreeMap::new();
    let record = |e: &Sse, seen: &mut HashSet<String>, finals: &mut BTreeMap<String, String>| {
        if e.event == "segment" {
            // From the log a segment carries its cursor; from the stored transcript (a client
            // without one, the log trimmed) none, and `caught_up` carries it after them.
            if let Some(id) = &e.id {
                assert!(seen.insert(id.clone()), "segment {id} sent twice");
            }
            let s = &e.data["segment"];
            if s["final"] == true {
                finals.insert(
                    s["segment_id"].as_str().expect("segment id").to_owned(),
                    s["text"].as_str().expect("text").to_owned(),
                );
            }
        }
    };
    let mut first = Client::open(transport, &b, &path, &key, None).await;
    let hello = first.next().await;
    assert_eq!(
        (hello.event.as_str(), &hello.data["status"]),
        ("status", &json!("scheduled"))
    );
    let opened = first.next().await;
    assert_eq!(
        (opened.event.as_str(), &opened.data["participants"]),
        ("participants", &json!([]))
    );
    let mut last_id = None;
    while finals.len() < 2 || last_id.is_none() {
        let e = first.next().await;
        assert!(matches!(e.event.as_str(), "segment" | "caught_up"), "{e:?}");
        record(&e, &mut seen_ids, &mut finals);
        if e.id.is_some() {
            last_id = e.id.clone();
        }
    }
    // Someone joins while it listens.
    publish(
        &mut sink,
        meeting,
        &mut seq,
        vec![EventBody::ParticipantJoined {
            speaker: ana.clone(),
            at_ms: 2000,
        }],
    )
    .await;
    let joined = loop {
        let e = first.next().await;
        if e.event == "participant" {
            break e;
        }
        record(&e, &mut seen_ids, &mut finals);
        if e.id.is_some() {
            last_id = e.id.clone();
        }
    };
    assert_eq!(joined.data["action"], "joined");
    assert_eq!(joined.data["participant"]["display_name"], "Ana Lima");
    drop(first);

    // While it is away: more speech, then the end.
    publish(
        &mut sink,
        meeting,
        &mut seq,
        vec![
            segment(meeting, &ana, 3000, "Next point.", true),
            segment(meeting, &ben, 4500, "so", false),
            segment(meeting, &ben, 4500, "So we agree.", true),
            EventBody::MeetingEnded { at_ms: 6000 },
        ],
    )
    .await;

    // Second connection, to replica A, resuming after the last id it saw.
    let mut second = Client::open(transport, &a, &path, &key, last_id.as_deref()).await;
    let mut statuses = Vec::new();
    let mut present = Vec::new();
    let end = loop {
        let e = second.next().await;
        match e.event.as_str() {
            "segment" => record(&e, &mut seen_ids, &mut finals),
            "status" => statuses.push(e.data["status"].clone()),
            "participants" => {
                present = e.data["participants"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            }
            "caught_up" | "participant" => {}
            "end" => break e,
            other => panic!("unexpected event {other}: {e:?}"),
        }
    };
    assert_eq!(end.data["status"], "ended");
    assert_eq!(
        present.len(),
        1,
        "the participants on reconnecting: {present:?}"
    );
    assert_eq!(statuses.last(), Some(&json!("ended")), "{statuses:?}");
    assert!(
        seen_ids.len() >= 2,
        "the resumed stream came from the log: {seen_ids:?}"
    );

    let stored: BTreeMap<String, String> = a
        .store
        .segments(meeting, false)
        .await
        .expect("segments")
        .into_iter()
        .map(|s| (s.segment_id.to_string(), s.text))
        .collect();
    assert_eq!(stored.len(), 4);
    assert_eq!(finals, stored, "exactly the stored finals");
    a.stop().await;
    b.stop().await;
}
