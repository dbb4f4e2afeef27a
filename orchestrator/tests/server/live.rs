//! Live captions: the share link in the meeting JSON, the page and socket behind it, history then
//! live segments, resuming from a cursor, fan-out from any replica, and revocation.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, bus_meeting, fresh_database, unique_stream};
use crate::ingest::{segment, speaker};
use futures_util::StreamExt;
use parley_bot::sink::EventSink;
use parley_bot::sink::redis::RedisSink;
use parley_shared::{Event, MeetingId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Viewer {
    socket: Socket,
    /// The last cursor received, as a page would remember it.
    cursor: Option<String>,
}

enum Received {
    Json(Value),
    Closed(Option<u16>),
}

impl Viewer {
    pub async fn connect(live_url: &str, after: Option<&str>) -> Self {
        let mut url = format!("{}/ws", live_url.replacen("http://", "ws://", 1));
        if let Some(a) = after {
            url.push_str(&format!("?after={a}"));
        }
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("viewer connects");
        Self {
            socket,
            cursor: after.map(str::to_owned),
        }
    }

    async fn next(&mut self) -> Received {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), self.socket.next())
                .await
                .expect("a message within 15 s");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("json message");
                    if let Some(c) = v["cursor"].as_str() {
                        self.cursor = Some(c.to_owned());
                    }
                    return Received::Json(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Received::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Received::Closed(None),
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.next().await {
            Received::Json(v) => v,
            Received::Closed(code) => panic!("socket closed ({code:?}) while a message was due"),
        }
    }

    /// Follows the captions as the page does (snapshots replace, versions decide) until `finals`
    /// segments are final; returns segment id → text.
    pub async fn follow_until(&mut self, finals: usize) -> HashMap<String, String> {
        let mut shown: HashMap<String, (bool, u64, String)> = HashMap::new();
        let keep = |shown: &mut HashMap<String, (bool, u64, String)>, s: &Value| {
            let version = (s["final"] == true, s["version"].as_u64().expect("version"));
            let text = s["text"].as_str().expect("text").to_owned();
            let id = s["segment_id"].as_str().expect("id").to_owned();
            if shown.get(&id).is_none_or(|(f, v, _)| version >= (*f, *v)) {
                shown.insert(id, (version.0, version.1, text));
            }
        };
        while shown.values().filter(|(f, _, _)| *f).count() < finals {
            let v = self.json().await;
            match v["type"].as_str() {
                Some("snapshot") => {
                    shown.clear();
                    for s in v["segments"].as_array().expect("segments") {
                        keep(&mut shown, s);
                    }
                }
                Some("segment") => keep(&mut shown, &v["segment"]),
                _ => {}
            }
        }
        shown
            .into_iter()
            .map(|(id, (_, _, text))| (id, text))
            .collect()
    }

    /// Segment texts of the next `n` segment messages.
    async fn segments(&mut self, n: usize) -> Vec<String> {
        let mut texts = Vec::new();
        while texts.len() < n {
            let v = self.json().await;
            if v["type"] == "segment" {
                texts.push(v["segment"]["text"].as_str().expect("text").to_owned());
            }
        }
        texts
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

both_backends!(
    share_links_are_unguessable_rotatable_and_revocable,
    a_share_link_expires_after_its_meeting,
    a_share_link_shows_the_summary_and_recordings_only_by_the_owners_choice,
);

async fn a_share_link_shows_the_summary_and_recordings_only_by_the_owners_choice(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user("owner@example.com").await;
    let guest = app.user("guest@example.com").await;
    let id = app
        .meeting(
            &owner,
            json!({"title": "x", "url": "https://zoom.us/j/1", "participants": ["guest@example.com"],
                   "start_time": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let link = app.live_url(&owner, &id).await.expect("link");
    let r = app
        .post(&format!("/meetings/{id}/end"), Some(&owner), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    crate::helpers::eventually(Duration::from_secs(30), "the summary", || async {
        let r = app
            .get(&format!("/meetings/{id}/summary"), Some(&owner))
            .await;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    let status = |path: String| {
        let app = &app;
        async move { app.http.get(path).send().await.expect("get").status() }
    };
    let summary = format!("{link}/summary");
    let recording = format!("{link}/recordings/speaker.opus");
    // By default the link carries captions and the transcript only.
    assert_eq!(status(link.clone()).await, StatusCode::OK);
    assert_eq!(status(summary.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(status(recording.clone()).await, StatusCode::FORBIDDEN);
    let scope = |token: String, scope: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            app.http
                .patch(app.url(&format!("/meetings/{id}/live")))
                .bearer_auth(token)
                .json(&json!({ "scope": scope }))
                .send()
                .await
                .expect("patch")
                .status()
        }
    };
    // Only the owner chooses: a participant cannot widen it.
    assert_eq!(scope(guest.clone(), "all").await, StatusCode::FORBIDDEN);
    assert_eq!(status(summary.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(scope(owner.clone(), "summary").await, StatusCode::OK);
    assert_eq!(status(summary.clone()).await, StatusCode::OK);
    assert_eq!(status(recording.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(scope(owner.clone(), "all").await, StatusCode::OK);
    // Shared now; this meeting simply has no such file.
    assert_eq!(status(recording).await, StatusCode::NOT_FOUND);
    assert_eq!(
        scope(owner.clone(), "everything").await,
        StatusCode::BAD_REQUEST
    );
    let view: Value = app
        .get(&format!("/meetings/{id}"), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["share_scope"], "all");
    app.stop().await;
}

async fn a_share_link_expires_after_its_meeting(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user("owner@example.com").await;
    let day = 24 * 3600 * 1000;
    for (ended_days_ago, works) in [(1, true), (31, false)] {
        let id = app
            .meeting(
                &owner,
                json!({"title": "Retro", "url": "https://zoom.us/j/1"}),
            )
            .await;
        let link = app.live_url(&owner, &id).await.expect("live_url");
        assert_eq!(
            app.http.get(&link).send().await.expect("page").status(),
            StatusCode::OK
        );
        let ended = parley_orchestrator::clock::now_ms() - ended_days_ago * day;
        app.store
            .set_meeting_status(
                MeetingId::parse(&id).expect("id"),
                parley_orchestrator::store::MeetingStatus::Ended,
                None,
                ended,
            )
            .await
            .expect("end");
        let status = app.http.get(&link).send().await.expect("page").status();
        let expected = if works {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "ended {ended_days_ago} days ago");
        let summary = app
            .http
            .get(format!("{link}/summary"))
            .send()
            .await
            .expect("summary");
        if !works {
            assert_eq!(summary.status(), StatusCode::NOT_FOUND);
        }
    }
    app.stop().await;
}

async fn share_links_are_unguessable_rotatable_and_revocable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user("owner@example.com").await;
    let guest = app.user("guest@example.com").await;
    let r = app
        .post(
            "/meetings",
            Some(&owner),
            &json!({"title": "Q3 <plan> & \"budget\"", "url": "https://zoom.us/j/1",
                    "start_time": "2099-01-01T00:00:00Z", "participants": ["guest@example.com"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    let id = created["meeting_id"].as_str().expect("id").to_owned();
    let link = created["live_url"].as_str().expect("live_url").to_owned();
    let prefix = app.url("/live/");
    let token = link.strip_prefix(&prefix).expect("link on this server");
    assert_eq!(token.len(), 64, "256 random bits, hex");
    assert_eq!(
        app.live_url(&guest, &id).await.as_deref(),
        Some(link.as_str()),
        "participants see it"
    );

    let page = app.http.get(&link).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Q3 &lt;plan&gt; &amp; &quot;budget&quot;"),
        "title escaped into the page"
    );
    for asset in ["/live/assets/live.js", "/live/assets/live.css"] {
        assert_eq!(
            app.get(asset, None).await.status(),
            StatusCode::OK,
            "{asset}"
        );
    }
    for bad in ["nope", &"0".repeat(64), &token.to_uppercase()] {
        assert_eq!(
            app.get(&format!("/live/{bad}"), None).await.status(),
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }

    // Only the owner changes the link.
    let r = app
        .post(&format!("/meetings/{id}/live"), Some(&guest), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .post(&format!("/meetings/{id}/live"), Some(&owner), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rotated: Value = r.json().await.expect("json");
    let new_link = rotated["live_url"].as_str().expect("new link").to_owned();
    assert_ne!(new_link, link);
    assert_eq!(
        app.http.get(&link).send().await.expect("old").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.http.get(&new_link).send().await.expect("new").status(),
        StatusCode::OK
    );
    assert_eq!(
        app.live_url(&owner, &id).await.as_deref(),
        Some(new_link.as_str())
    );

    let r = app.delete(&format!("/meetings/{id}/live"), &owner).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.http
            .get(&new_link)
            .send()
            .await
            .expect("revoked")
            .status(),
        StatusCode::NOT_FOUND
    );
    let ws = new_link.replacen("http://", "ws://", 1) + "/ws";
    assert!(
        tokio_tungstenite::connect_async(ws).await.is_err(),
        "the socket is refused too"
    );
    assert_eq!(app.live_url(&owner, &id).await, None);
    app.stop().await;
}

/// Publishes events for `meeting` through the app's Redis stream, numbering them from `seq`.
/// A meeting's opening lines on `stream` (Ana's partial and final, Ben's final); the sink and
/// the next sequence number, for more.
pub async fn opening(stream: &str, meeting: MeetingId) -> (RedisSink, u64) {
    let ana = speaker("ana", "Ana Lima");
    let ben = speaker("ben", "Ben Carter");
    let mut sink = RedisSink::connect(&crate::helpers::redis_url(), stream)
        .await
        .expect("sink");
    let mut seq = 0;
    publish(
        &mut sink,
        meeting,
        &mut seq,
        vec![
            segment(meeting, &ana, 0, "hello every", false),
            segment(meeting, &ana, 0, "Hello everyone.", true),
            segment(meeting, &ben, 1500, "Hi Ana.", true),
        ],
    )
    .await;
    (sink, seq)
}

pub async fn publish(
    sink: &mut RedisSink,
    meeting: MeetingId,
    seq: &mut u64,
    bodies: Vec<parley_shared::EventBody>,
) {
    for body in bodies {
        sink.publish(Event::new(meeting, *seq, body))
            .await
            .expect("publish");
        *seq += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_history_then_live_and_resume_without_gap_on_any_replica() {
    let stream = unique_stream();
    let options = Options {
        redis_stream: Some(stream.clone()),
        // Replicas of one database seal with one key.
        secret_key: Some("7".repeat(64)),
        ..Options::default()
    };
    let (db, dir) = fresh_database(Backend::Postgres).await;
    let a = TestApp::spawn_on(db.clone(), dir, options.clone()).await;
    let b = TestApp::spawn_on(db, tempfile::tempdir().expect("dir"), options).await;
    let token = a.user("owner@example.com").await;
    let id = a
        .meeting(&token, json!({"title": "Standup", "url": "https://zoom.us/j/2", "start_time": "2099-01-01T00:00:00Z"}))
        .await;
    let meeting = MeetingId::parse(&id).expect("id");
    let link = a.live_url(&token, &id).await.expect("link");
    // Viewers use replica B's address: any replica serves any meeting.
    let link_b = link.replacen(&a.base, &b.base, 1);
    let ana = speaker("ana", "Ana Lima");
    let ben = speaker("ben", "Ben Carter");
    let (mut sink, mut seq) = opening(&stream, meeting).await;
    crate::helpers::eventually(Duration::from_secs(20), "history stored", || async {
        let n = a.store.segments(meeting, true).await.ok()?.len();
        (n == 2).then_some(())
    })
    .await;

    let mut late = Viewer::connect(&link_b, None).await;
    let hello = late.json().await;
    assert_eq!(hello["type"], "meeting");
    assert_eq!(hello["title"], "Standup");
    assert_eq!(hello["status"], "scheduled");
    let snapshot = late.json().await;
    assert_eq!(snapshot["type"], "snapshot");
    let history: Vec<(&str, &str, bool)> = snapshot["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            (
                s["speaker_name"].as_str().unwrap_or(""),
                s["text"].as_str().unwrap_or(""),
                s["final"] == true,
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("Ana Lima", "Hello everyone.", true),
            ("Ben Carter", "Hi Ana.", true)
        ]
    );

    publish(
        &mut sink,
        meeting,
        &mut seq,
        vec![
            segment(meeting, &ana, 3000, "Let's", false),
            segment(meeting, &ana, 3000, "Let's start.", true),
        ],
    )
    .await;
    // Two replicas ingest, so a partial and its final may reach the log in either order; the
    // versions tell the page which one stands.
    assert_eq!(
        sorted(late.segments(2).await),
        vec!["Let's", "Let's start."],
        "partial and final, live"
    );

    // The connection drops; three segments are spoken meanwhile; the page resumes from its cursor.
    let cursor = late.cursor.clone().expect("cursor");
    drop(late);
    publish(
        &mut sink,
        meeting,
        &mut seq,
        vec![
            segment(meeting, &ben, 5000, "One.", true),
            segment(meeting, &ana, 6000, "Two.", true),
            segment(meeting, &ben, 7000, "Three.", true),
        ],
    )
    .await;
    crate::helpers::eventually(Duration::from_secs(20), "gap stored", || async {
        let n = a.store.segments(meeting, true).await.ok()?.len();
        (n == 6).then_some(())
    })
    .await;
    let mut resumed = Viewer::connect(&link_b, Some(&cursor)).await;
    assert_eq!(resumed.json().await["type"], "meeting");
    assert_eq!(
        sorted(resumed.segments(3).await),
        vec!["One.", "Three.", "Two."],
        "exactly the missed ones"
    );
    publish(
        &mut sink,
        meeting,
        &mut seq,
        vec![segment(meeting, &ana, 9000, "Four.", true)],
    )
    .await;
    assert_eq!(
        resumed.segments(1).await,
        vec!["Four."],
        "then live again, no duplicate"
    );

    // A cursor from another server (or garbage) gets the full history instead.
    let mut stranger = Viewer::connect(&link, Some("1-0")).await;
    assert_eq!(stranger.json().await["type"], "meeting");
    let snap = stranger.json().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["segments"].as_array().expect("segments").len(), 7);

    // Status changes reach viewers.
    let r = a
        .post(&format!("/meetings/{id}/end"), Some(&token), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    loop {
        let v = resumed.json().await;
        if v["type"] == "meeting" {
            assert_eq!(v["status"], "ended");
            break;
        }
    }

    // Revoking closes open sockets on every replica within a second.
    let revoked_at = Instant::now();
    let r = a.delete(&format!("/meetings/{id}/live"), &token).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for viewer in [&mut resumed, &mut stranger] {
        let mut saw_revoked = false;
        loop {
            match viewer.next().await {
                Received::Json(v) => saw_revoked |= v["type"] == "revoked",
                Received::Closed(code) => {
                    assert_eq!(code, Some(4404));
                    break;
                }
            }
        }
        assert!(saw_revoked, "the page is told why");
    }
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "sockets closed {took:?} after revocation"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_is_resynchronised_and_never_slows_the_others() {
    let (app, stream, token, id, meeting) = bus_meeting("Busy").await;
    let link = app.live_url(&token, &id).await.expect("link");
    let mut fast = Viewer::connect(&link, None).await;
    let mut slow = Viewer::connect(&link, None).await;
    for v in [&mut fast, &mut slow] {
        assert_eq!(v.json().await["type"], "meeting");
        assert_eq!(v.json().await["type"], "snapshot");
    }

    // Far more than the socket buffers between the server and a viewer that does not read hold
    // (a few MB), so the slow viewer's task stalls and its subscription overflows; published at
    // a pace a reading viewer keeps up with.
    const N: u64 = 3000;
    let filler = "word ".repeat(600);
    let ana = speaker("ana", "Ana Lima");
    let mut sink = RedisSink::connect(&crate::helpers::redis_url(), &stream)
        .await
        .expect("sink");
    let publisher = {
        let filler = filler.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for i in 0..N {
                tick.tick().await;
                let body = segment(meeting, &ana, i * 1000, &format!("{i} {filler}"), true);
                sink.publish(Event::new(meeting, i, body))
                    .await
                    .expect("publish");
            }
        })
    };

    let last = format!("{} {filler}", N - 1);
    let mut got = 0u64;
    loop {
        let v = fast.json().await;
        assert_ne!(
            v["type"], "snapshot",
            "the reading viewer never fell behind"
        );
        if v["type"] == "segment" {
            got += 1;
            if v["segment"]["text"] == last.as_str() {
                break;
            }
        }
    }
    assert_eq!(
        got, N,
        "the reading viewer got every segment, in order, while the other stalled"
    );
    publisher.await.expect("publisher");

    // The slow viewer, reading at last, is brought up to date by a snapshot and misses nothing.
    let mut resynced = false;
    let mut texts = std::collections::HashMap::new();
    loop {
        let v = slow.json().await;
        match v["type"].as_str() {
            Some("snapshot") => {
                resynced = true;
                texts.clear();
                for s in v["segments"].as_array().expect("segments") {
                    texts.insert(s["segment_id"].to_string(), s["text"].to_string());
                }
            }
            Some("segment") => {
                texts.insert(
                    v["segment"]["segment_id"].to_string(),
                    v["segment"]["text"].to_string(),
                );
            }
            _ => {}
        }
        if texts.len() as u64 == N {
            break;
        }
    }
    assert!(resynced, "the slow viewer was resynchronised from history");
    app.stop().await;
}
