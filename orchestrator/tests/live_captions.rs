//! Live captions in a real browser: headless Chromium opens a meeting's share link while an
//! in-process bot replays the sample meeting through Whisper. The page must show each line under
//! its speaker's name, turn partials into the finals the database stores, show the whole history
//! after a reload, resume after a dropped socket without gaps or duplicates, and stop when the
//! link is revoked. Needs chromium (scripts/janus-lab deps) and the tiny.en-q8_0 model (scripts/test).
//! Leaves a screenshot at `$CARGO_TARGET_TMPDIR/live-captions.png`. The web app's browser test
//! (`browser/web_app.rs`) shares this binary.

#[path = "browser/cdp.rs"]
mod cdp;
#[path = "support/child_servers.rs"]
mod child_servers;
#[path = "support/mail.rs"]
mod mail;
#[path = "browser/web_app.rs"]
mod web_app;

use mail::verification_link;

use parley_orchestrator::config::ServerConfig;
use parley_orchestrator::store::Store;
use parley_shared::MeetingId;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Every caption line on the page: segment id → (speaker name, text, final).
const READ_LINES: &str = r#"Array.from(document.querySelectorAll('#captions li.line')).map(li => ({
    id: li.dataset.segmentId,
    speaker: li.querySelector('.speaker').textContent,
    text: li.querySelector('.text').textContent,
    final: li.classList.contains('final'),
}))"#;

/// Records, from the first moment, every segment the page ever showed as a partial.
const WATCH_PARTIALS: &str = r#"(() => {
    window.__partials = new Set();
    const note = () => document.querySelectorAll('#captions li.partial')
        .forEach(li => window.__partials.add(li.dataset.segmentId));
    new MutationObserver(note).observe(document.getElementById('captions'),
        { subtree: true, childList: true, characterData: true, attributes: true });
    note();
    return true;
})()"#;

#[derive(Debug, Clone, PartialEq)]
struct Line {
    speaker: String,
    text: String,
    is_final: bool,
}

async fn lines(page: &cdp::Page) -> Vec<(String, Line)> {
    let v = page.eval(READ_LINES).await.expect("read lines");
    v.as_array()
        .expect("array")
        .iter()
        .map(|l| {
            (
                l["id"].as_str().expect("id").to_owned(),
                Line {
                    speaker: l["speaker"].as_str().expect("speaker").to_owned(),
                    text: l["text"].as_str().expect("text").to_owned(),
                    is_final: l["final"] == true,
                },
            )
        })
        .collect()
}

async fn stored_finals(store: &Store, id: MeetingId) -> HashMap<String, Line> {
    store
        .segments(id, false)
        .await
        .expect("segments")
        .into_iter()
        .map(|s| {
            (
                s.segment_id.to_string(),
                Line {
                    speaker: s.speaker_name,
                    text: s.text,
                    is_final: true,
                },
            )
        })
        .collect()
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut req = http.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// One browser test at a time: each replays a meeting in real time on a machine of two cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server on a free loopback port: its address, what stops it, and its task.
type Running = (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

async fn start(config: ServerConfig) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(parley_orchestrator::app::run(
        config,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    wait_healthy(&reqwest::Client::new(), &base).await;
    (base, stop, server)
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} is not healthy after 10 s");
}

/// Replay meetings need an admin, and admins are made by the operator, not by signing up.
fn create_admin(data_dir: &Path, email: &str, password: &str) {
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["admin", "create-user", "--email", email, "--admin"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("PARLEY_NEW_PASSWORD", password)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run parley admin create-user");
    assert!(
        made.status.success(),
        "parley admin create-user: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_page_follows_a_replayed_meeting() {
    let _one_browser = BROWSER.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::embedded(dir.path().join("data"));
    // Real time, so the page sees partials and the reload lands mid-meeting.
    config.bot.connector.replay_speed = 1.0;
    let database_url = config.database_url();
    let (base, stop, server) = start(config).await;
    let http = reqwest::Client::new();
    let browser = cdp::Browser::launch().await.expect("chromium starts");
    let post = reqwest::Method::POST;
    create_admin(
        &dir.path().join("data"),
        "admin@example.com",
        "a long enough password",
    );
    let login = api(
        &http,
        post.clone(),
        format!("{base}/register/login"),
        None,
        json!({"email": "admin@example.com", "password": "a long enough password"}),
    )
    .await;
    let token = login["token"].as_str().expect("token").to_owned();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("sample");
    let meeting = api(
        &http,
        post,
        format!("{base}/meetings"),
        Some(&token),
        json!({"title": "Design review", "url": format!("replay:{}", sample.display())}),
    )
    .await;
    let id = MeetingId::parse(meeting["meeting_id"].as_str().expect("id")).expect("meeting id");
    let link = meeting["live_url"].as_str().expect("live_url").to_owned();
    assert!(link.starts_with(&format!("{base}/live/")), "{link}");
    let sealer = parley_orchestrator::auth::Sealer::from_data_dir(&dir.path().join("data"))
        .expect("the server's key");
    let store = Store::open(&database_url, std::sync::Arc::new(sealer))
        .await
        .expect("store");
    // The owner shares the summary on the link too (by default it carries captions only).
    let scope = api(
        &http,
        reqwest::Method::PATCH,
        format!("{base}/meetings/{id}/live"),
        Some(&token),
        json!({"scope": "summary"}),
    )
    .await;
    assert_eq!(scope["share_scope"], "summary");

    let page = browser.open(&link).await.expect("page loads");
    page.eval(WATCH_PARTIALS).await.expect("observer");
    let title = page
        .eval("document.getElementById('title').textContent")
        .await
        .expect("title");
    assert_eq!(title, "Design review");
    page.wait_for(
        "document.getElementById('status').dataset.status === 'live'",
        Duration::from_secs(60),
    )
    .await
    .expect("the page shows the meeting live");

    // Mid-meeting: reload once two finals are on screen; the history must all come back.
    page.wait_for(
        "document.querySelectorAll('#captions li.final').length >= 2",
        Duration::from_secs(60),
    )
    .await
    .expect("finals appear");
    let before_reload = stored_finals(&store, id).await;
    page.reload().await.expect("reload");
    page.eval(WATCH_PARTIALS)
        .await
        .expect("observer after reload");
    page.wait_for(
        &format!(
            "document.querySelectorAll('#captions li.final').length >= {}",
            before_reload.len()
        ),
        Duration::from_secs(10),
    )
    .await
    .expect("the history comes back after the reload");
    let shown = lines(&page).await;
    for (seg, line) in &before_reload {
        let on_page = shown.iter().find(|(s, _)| s == seg).map(|(_, l)| l);
        assert_eq!(
            on_page,
            Some(line),
            "after the reload, segment {seg} is back as stored"
        );
    }
    assert_eq!(
        page.eval("document.getElementById('status').dataset.status")
            .await
            .expect("status"),
        "live"
    );

    // A dropped connection: the page reconnects from its cursor.
    let cursor = page.eval("window.parleyLive.cursor").await.expect("cursor");
    assert!(
        cursor.as_str().is_some_and(|c| !c.is_empty()),
        "the page tracks a cursor: {cursor}"
    );
    page.eval("window.parleyLive.ws.close(), true")
        .await
        .expect("drop socket");
    page.wait_for(
        "window.parleyLive.status === 'reconnecting' || window.parleyLive.ws.readyState === 1",
        Duration::from_secs(10),
    )
    .await
    .expect("the page notices");
    page.wait_for(
        "window.parleyLive.status !== 'reconnecting' && window.parleyLive.ws.readyState === 1",
        Duration::from_secs(20),
    )
    .await
    .expect("the page reconnects");

    page.wait_for(
        "document.getElementById('status').dataset.status === 'ended'",
        Duration::from_secs(120),
    )
    .await
    .expect("the page shows the meeting ended");
    let finals = stored_finals(&store, id).await;
    assert!(
        finals.len() >= 4,
        "the sample has five utterances: {finals:?}"
    );
    // The last final may still be in flight to the page when the status changes.
    let on_page = {
        let mut shown = Vec::new();
        for _ in 0..50 {
            shown = lines(&page).await;
            if shown.iter().filter(|(_, l)| l.is_final).count() >= finals.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shown
    };
    let ids: Vec<&String> = on_page.iter().map(|(s, _)| s).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "no line shown twice");
    for (seg, line) in &finals {
        let shown = on_page.iter().find(|(s, _)| s == seg).map(|(_, l)| l);
        assert_eq!(
            shown,
            Some(line),
            "segment {seg}: the page shows the stored final under its speaker"
        );
    }
    let names: Vec<&str> = on_page.iter().map(|(_, l)| l.speaker.as_str()).collect();
    assert!(
        names.iter().all(|n| *n == "Ana Lima" || *n == "Ben Carter"),
        "{names:?}"
    );
    assert!(
        names.contains(&"Ana Lima") && names.contains(&"Ben Carter"),
        "{names:?}"
    );
    let partials: Vec<String> = serde_json::from_value(
        page.eval("Array.from(window.__partials)")
            .await
            .expect("partials"),
    )
    .expect("ids");
    assert!(
        !partials.is_empty(),
        "the page showed partial captions while people spoke"
    );
    let turned_final = partials.iter().filter(|p| finals.contains_key(*p)).count();
    assert!(
        turned_final > 0,
        "partials {partials:?} were replaced in place by their finals"
    );

    // After the end, the page becomes the meeting page: the summary appears above the captions.
    page.wait_for(
        "window.parleyLive.summaryShown === true",
        Duration::from_secs(60),
    )
    .await
    .expect("the summary is shown once written");
    let owner = page
        .eval("document.querySelector('#summary-actions li strong')?.textContent ?? null")
        .await
        .expect("action item owner");
    assert_eq!(
        owner, "Ben Carter",
        "the sample's action item (profile by Friday) is Ben's"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-captions.png");
    page.screenshot(&shot).await.expect("screenshot");
    eprintln!("screenshot of the captions page: {}", shot.display());

    // Revoking the link ends the page's stream within a second or so.
    api(
        &http,
        reqwest::Method::DELETE,
        format!("{base}/meetings/{id}/live"),
        Some(&token),
        Value::Null,
    )
    .await;
    page.wait_for(
        "document.getElementById('status').dataset.status === 'revoked' && window.parleyLive.ws.readyState === 3",
        Duration::from_secs(3),
    )
    .await
    .expect("the page stops after revocation");
    assert_eq!(
        http.get(&link).send().await.expect("page").status(),
        reqwest::StatusCode::NOT_FOUND
    );

    drop(browser);
    store.close().await;
    let _ = stop.send(());
    server.await.expect("server task").expect("server run");
}
