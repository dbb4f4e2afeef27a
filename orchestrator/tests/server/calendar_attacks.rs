//! Calendars as an attacker uses them: feed addresses inside the server's network, redirects
//! into it, credentials sent on to other hosts, and feeds built to stall or crash the poller.
//! Every feed server here is a listener of the test's own on loopback that records what
//! reaches it.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, eventually};
use chrono::{Duration as Span, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

both_backends!(
    internal_feed_addresses_are_refused_before_any_packet,
    redirects_are_checked_and_credentials_stay_with_their_host,
    a_hostile_feed_stalls_and_stops_nobody_elses_calendar,
    a_copied_event_uid_neither_edits_nor_reveals_the_meeting,
    an_endless_feed_is_cut_off_at_its_cap,
);

/// A one-response-per-connection HTTP server that records each request's head.
struct FeedServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FeedServer {
    async fn start(ip: &str, respond: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind feed server");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let respond = Arc::clone(&respond);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let response = respond(&head);
                    seen.lock().expect("requests").push(head);
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/calendar\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn redirect(to: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
}

fn feed(events: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//parley tests//EN\r\n{events}END:VCALENDAR\r\n"
    )
}

fn event(uid: &str, title: &str, lines: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:{title}\r\n{lines}\
         LOCATION:https://meet.google.com/abc-defg-hij\r\nEND:VEVENT\r\n"
    )
}

async fn add_calendar(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/calendars", Some(token), &body).await
}

async fn calendar_of(app: &TestApp, token: &str) -> Value {
    let v: Value = app
        .get("/calendars", Some(token))
        .await
        .json()
        .await
        .expect("json");
    v["calendars"][0].clone()
}

async fn internal_feed_addresses_are_refused_before_any_packet(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            egress_allow: Some(Vec::new()),
            calendar_poll: Some(Duration::from_millis(200)),
            ..Options::default()
        },
    )
    .await;
    let mallory = app.user("mallory@example.com").await;
    let inside = FeedServer::start("127.0.0.1", |_| ok(&feed(""))).await;
    let port = inside.port;
    // Literal addresses are refused from the URL alone, so the private and link-local ones
    // here are never contacted; names are refused once resolved.
    for url in [
        format!("http://127.0.0.1:{port}/cal.ics"),
        format!("http://localhost:{port}/cal.ics"),
        format!("http://[::1]:{port}/cal.ics"),
        format!("http://2130706433:{port}/cal.ics"),
        format!("http://[::ffff:127.0.0.1]:{port}/cal.ics"),
        format!("webcal://127.0.0.1:{port}/cal.ics"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/cal.ics".to_owned(),
        "http://192.168.1.1/cal.ics".to_owned(),
        "http://[fd00::1]/cal.ics".to_owned(),
    ] {
        let r = add_calendar(&app, &mallory, json!({ "url": url })).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{url}");
        let error: Value = r.json().await.expect("json");
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.contains("internal"), "{url}: {error}");
    }
    let r = add_calendar(
        &app,
        &mallory,
        json!({ "url": "https://user:secret@calendar.example/cal.ics" }),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "credentials in the url"
    );
    assert!(
        calendar_of(&app, &mallory).await.is_null(),
        "nothing stored"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        inside.requests().is_empty(),
        "the internal server was reached: {:?}",
        inside.requests()
    );
    app.stop().await;
}

async fn redirects_are_checked_and_credentials_stay_with_their_host(backend: Backend) {
    // Only 127.0.0.1 is allowed: it plays the public internet, 127.0.0.2 the inside.
    let app = TestApp::spawn_with(
        backend,
        Options {
            egress_allow: Some(vec!["127.0.0.1/32".parse().expect("net")]),
            calendar_poll: Some(Duration::from_millis(200)),
            ..Options::default()
        },
    )
    .await;
    let mallory = app.user("mallory@example.com").await;
    let ana = app.user("ana@example.com").await;
    let inside = FeedServer::start("127.0.0.2", |_| ok(&feed(""))).await;
    let into_network = format!("http://127.0.0.2:{}/secret.ics", inside.port);
    let bouncer = FeedServer::start("127.0.0.1", move |_| redirect(&into_network)).await;
    let r = add_calendar(
        &app,
        &mallory,
        json!({ "url": format!("http://127.0.0.1:{}/cal.ics", bouncer.port) }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let refused = eventually(Duration::from_secs(20), "the redirect refused", || async {
        let c = calendar_of(&app, &mallory).await;
        c["last_error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(refused.contains("internal network"), "{refused}");
    assert!(inside.requests().is_empty(), "{:?}", inside.requests());
    assert_eq!(bouncer.requests().len(), 1, "fetched once, then waits");

    // Ana's feed moved to another host: her password is not sent there.
    let elsewhere = FeedServer::start("127.0.0.1", |_| ok(&feed(""))).await;
    let moved = format!("http://127.0.0.1:{}/moved.ics", elsewhere.port);
    let old_host = FeedServer::start("127.0.0.1", move |_| redirect(&moved)).await;
    let r = add_calendar(
        &app,
        &ana,
        json!({
            "url": format!("http://127.0.0.1:{}/cal.ics", old_host.port),
            "username": "ana",
            "password": "calendar password",
        }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    eventually(Duration::from_secs(20), "the moved feed read", || async {
        (!elsewhere.requests().is_empty()).then_some(())
    })
    .await;
    let first = old_host.requests()[0].to_ascii_lowercase();
    assert!(first.contains("authorization: basic"), "{first}");
    for request in elsewhere.requests() {
        assert!(
            !request.to_ascii_lowercase().contains("authorization"),
            "credentials went to another host: {request}"
        );
    }
    app.stop().await;
}

async fn a_hostile_feed_stalls_and_stops_nobody_elses_calendar(backend: Backend) {
    let app = TestApp::polling_calendars(backend).await;
    let mallory = app.user("mallory@example.com").await;
    let ana = app.user("ana@example.com").await;
    let stamp = |t: chrono::DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let soon = stamp(Utc::now() + Span::hours(2));
    let hostile = feed(&format!(
        "{}{}{}",
        event(
            "every-second",
            "Ticker",
            "DTSTART:19000101T000000Z\r\nRRULE:FREQ=SECONDLY\r\n"
        ),
        event(
            "forever",
            "Forever",
            &format!("DTSTART:{soon}\r\nDURATION:P999999999999999999W\r\n")
        ),
        event(
            "counted",
            "Counted",
            "DTSTART:19000101T000000Z\r\nRRULE:FREQ=SECONDLY;COUNT=2000000000\r\n"
        ),
    ));
    let hostile_server = FeedServer::start("127.0.0.1", move |_| ok(&hostile)).await;
    let r = add_calendar(
        &app,
        &mallory,
        json!({ "url": format!("http://127.0.0.1:{}/evil.ics", hostile_server.port) }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    eventually(Duration::from_secs(20), "the hostile feed read", || async {
        (!hostile_server.requests().is_empty()).then_some(())
    })
    .await;
    let good = feed(&event(
        "review",
        "Design review",
        &format!("DTSTART:{soon}\r\nDURATION:PT30M\r\n"),
    ));
    let ana_server = FeedServer::start("127.0.0.1", move |_| ok(&good)).await;
    let r = add_calendar(
        &app,
        &ana,
        json!({ "url": format!("http://127.0.0.1:{}/ana.ics", ana_server.port) }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // The server answers throughout, and Ana's calendar syncs while Mallory's is re-read.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthz = tokio::time::timeout(Duration::from_secs(2), app.get("/healthz", None))
            .await
            .expect("/healthz answers within 2 s");
        assert_eq!(healthz.status(), StatusCode::OK);
        let v: Value = app
            .get("/meetings", Some(&ana))
            .await
            .json()
            .await
            .expect("json");
        let synced = v["meetings"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["title"] == "Design review"));
        if synced && hostile_server.requests().len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Ana's calendar did not sync beside the hostile feed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v: Value = app
        .get("/meetings", Some(&mallory))
        .await
        .json()
        .await
        .expect("json");
    let flood = v["meetings"].as_array().map_or(0, Vec::len);
    assert_eq!(
        flood, 0,
        "no event of the hostile feed became meetings: {v}"
    );
    app.stop().await;
}

async fn a_copied_event_uid_neither_edits_nor_reveals_the_meeting(backend: Backend) {
    let app = TestApp::polling_calendars(backend).await;
    let ana = app.user("ana@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let stamp = |t: chrono::DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let at = Utc::now() + Span::hours(3);
    let at = at - Span::nanoseconds(i64::from(at.timestamp_subsec_nanos()));
    let board = |start: chrono::DateTime<Utc>, link: &str, who: &str| {
        format!(
            "BEGIN:VEVENT\r\nUID:board@acme.example\r\nSUMMARY:Board\r\nDTSTART:{}\r\n\
             DURATION:PT1H\r\nLOCATION:{link}\r\nATTENDEE:mailto:{who}\r\nEND:VEVENT\r\n",
            stamp(start)
        )
    };
    let no_uid = format!(
        "BEGIN:VEVENT\r\nSUMMARY:Retro\r\nDTSTART:{}\r\n\
         LOCATION:https://meet.google.com/ret-roro-ret\r\nEND:VEVENT\r\n",
        stamp(at + Span::days(1))
    );
    let ana_feed = feed(&format!(
        "{}{no_uid}",
        board(
            at,
            "https://meet.google.com/abc-defg-hij",
            "cfo@acme.example"
        )
    ));
    let ana_server = FeedServer::start("127.0.0.1", move |_| ok(&ana_feed)).await;
    let url = |s: &FeedServer| json!({ "url": format!("http://127.0.0.1:{}/cal.ics", s.port) });
    assert_eq!(
        add_calendar(&app, &ana, url(&ana_server)).await.status(),
        StatusCode::CREATED
    );
    let list = |token: String| {
        let app = &app;
        async move {
            let v: Value = app
                .get("/meetings", Some(&token))
                .await
                .json()
                .await
                .expect("json");
            v["meetings"].as_array().cloned().unwrap_or_default()
        }
    };
    let ana_board = eventually(Duration::from_secs(20), "Ana's meetings", || async {
        let m = list(ana.clone()).await;
        (m.len() == 2).then(|| m.into_iter().find(|m| m["title"] == "Board"))?
    })
    .await;

    // Mallory's feed copies the UID, with her own link, time and address.
    let mallory_feed = feed(&format!(
        "{}{no_uid}",
        board(
            at + Span::hours(1),
            "https://meet.google.com/xyz-wxyz-xyz",
            "mallory@example.com"
        )
    ));
    let mallory_server = FeedServer::start("127.0.0.1", move |_| ok(&mallory_feed)).await;
    assert_eq!(
        add_calendar(&app, &mallory, url(&mallory_server))
            .await
            .status(),
        StatusCode::CREATED
    );
    let hers = eventually(
        Duration::from_secs(20),
        "Mallory's own meetings",
        || async {
            let m = list(mallory.clone()).await;
            (m.len() == 2 && mallory_server.requests().len() >= 2).then_some(m)
        },
    )
    .await;
    assert!(
        hers.iter()
            .all(|m| m["meeting_id"] != ana_board["meeting_id"]),
        "Mallory sees Ana's meeting: {hers:?}"
    );
    let ana_now = list(ana.clone()).await;
    assert_eq!(ana_now.len(), 2, "{ana_now:?}");
    let board_now = ana_now
        .iter()
        .find(|m| m["title"] == "Board")
        .expect("board");
    assert_eq!(
        board_now, &ana_board,
        "Ana's meeting is as her calendar says"
    );
    app.stop().await;
}

async fn an_endless_feed_is_cut_off_at_its_cap(backend: Backend) {
    let app = TestApp::polling_calendars(backend).await;
    let mallory = app.user("mallory@example.com").await;
    // No length announced, and more than the 10 MiB a feed may be: it is refused while it
    // streams, not after it is all in memory.
    let endless = FeedServer::start("127.0.0.1", |_| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/calendar\r\nconnection: close\r\n\r\n\
             BEGIN:VCALENDAR\r\n{}",
            "X-PAD:0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(250_000)
        )
    })
    .await;
    let r = add_calendar(
        &app,
        &mallory,
        json!({ "url": format!("http://127.0.0.1:{}/big.ics", endless.port) }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let error = eventually(Duration::from_secs(20), "the feed refused", || async {
        calendar_of(&app, &mallory).await["last_error"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(error.contains("larger than"), "{error}");
    app.stop().await;
}
