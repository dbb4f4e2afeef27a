//! A meeting replayed through an in-process bot: real audio, the real Whisper model, events over
//! the in-process bus (embedded) or Redis (production), transcript read back over the API.
//! Needs the tiny.en-q8_0 model installed (scripts/test installs it).

use crate::helpers::{Backend, TestApp, assert_transcript, eventually};
use parley_shared::MeetingId;
use parley_testkit::eval::Reference;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// What the sample meeting must score through the server (tiny.en-q8_0 misreads 8 of its 50
/// words, offline as live).
pub const SAMPLE_MAX_WER: f64 = 0.2;

/// Tests that run bots load the model and keep both cores busy: one at a time.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn replay_the_sample(app: &TestApp) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("testdata/sample");
    let admin = app.admin("admin@example.com").await;
    let id = app
        .meeting(
            &admin,
            json!({"title": "Sample", "url": format!("replay:{}", dir.display()), "participants": []}),
        )
        .await;
    let meeting = app
        .ended_meeting(&admin, &id, Duration::from_secs(300))
        .await;
    let names: Vec<&str> = meeting["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter_map(|p| p["display_name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"Ana Lima") && names.contains(&"Ben Carter"),
        "{names:?}"
    );

    assert!(
        crate::helpers::captured_logs()
            .contains("live captions link not posted: the platform has no chat for bots"),
        "the bot tried the chat hook (replays have no chat)"
    );
    let reference = Reference::load(&dir.join("reference.json")).expect("reference");
    let stored = app
        .store
        .segments(MeetingId::parse(&id).expect("id"), false)
        .await
        .expect("segments");
    // The sample is 50 words, so each word is 2 points: this catches a broken path, not small
    // changes in accuracy, which `parley bench asr` measures on the dev and eval meetings.
    assert_transcript(
        app,
        &id,
        &reference,
        "sample through the server",
        SAMPLE_MAX_WER,
    )
    .await;

    let transcript: Value = app
        .get(
            &format!("/meetings/{id}/transcript?format=json"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        transcript["segments"].as_array().expect("segments").len(),
        stored.len()
    );
    assert_eq!(meeting["record"], true, "recording is on by default");
    recordings_are_listed_and_served(app, &admin, &id).await;
    for key in ["ana", "ben"] {
        let file = app
            .data_dir()
            .join("recordings")
            .join(&id)
            .join(format!("{key}-1.ogg"));
        let audio = parley_bot::audio::file::read_16k(&file, 600_000)
            .unwrap_or_else(|e| panic!("recording {}: {e}", file.display()));
        assert!(
            audio.len() > 16_000 * 5,
            "{}: {} samples",
            file.display(),
            audio.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bot_transcribes_a_meeting() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    replay_the_sample(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_bot_transcribes_through_redis_and_postgres() {
    let app = TestApp::spawn_production().await;
    replay_the_sample(&app).await;
    app.stop().await;
}

/// The recordings through the API and through the meeting page's share link, byte for byte the
/// files the bot wrote.
async fn recordings_are_listed_and_served(app: &TestApp, token: &str, id: &str) {
    let listed: Value = app
        .get(&format!("/meetings/{id}/recordings"), Some(token))
        .await
        .json()
        .await
        .expect("json");
    let recordings = listed["recordings"].as_array().expect("recordings");
    let names: Vec<&str> = recordings
        .iter()
        .filter_map(|r| r["speaker_name"].as_str())
        .collect();
    assert_eq!(names, ["Ana Lima", "Ben Carter"], "{listed}");
    for r in recordings {
        let name = r["name"].as_str().expect("name");
        let on_disk =
            std::fs::read(app.data_dir().join("recordings").join(id).join(name)).expect("file");
        let url = r["url"].as_str().expect("url");
        let served = app
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("download");
        assert_eq!(served.headers()["content-type"], "audio/ogg");
        assert_eq!(
            served.bytes().await.expect("bytes").as_ref(),
            on_disk.as_slice(),
            "{name}"
        );
        assert_eq!(
            app.get(&format!("/meetings/{id}/recordings/{name}"), None)
                .await
                .status(),
            401
        );
    }
    for bad in ["..%2Fparley.db", "ana-1.txt", ".ogg", "nope-9.ogg"] {
        let r = app
            .get(&format!("/meetings/{id}/recordings/{bad}"), Some(token))
            .await;
        assert_eq!(r.status(), 404, "{bad}");
    }
    // The meeting page lists them with its summary and serves them with the share link, once
    // the owner shares them there.
    let live = app.live_url(token, id).await.expect("live link");
    let r = app
        .http
        .patch(app.url(&format!("/meetings/{id}/live")))
        .bearer_auth(token)
        .json(&serde_json::json!({"scope": "all"}))
        .send()
        .await
        .expect("share");
    assert_eq!(r.status(), 200);
    let summary: Value = eventually(Duration::from_secs(30), "the summary", || async {
        let r = app.http.get(format!("{live}/summary")).send().await.ok()?;
        if r.status().is_success() {
            r.json().await.ok()
        } else {
            None
        }
    })
    .await;
    let first = &summary["recordings"][0];
    let url = first["url"].as_str().expect("url");
    assert!(url.starts_with(&format!("{live}/recordings/")), "{url}");
    let r = app.http.get(url).send().await.expect("download");
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("bytes").starts_with(b"OggS"));
}
