//! The meetings API: create, list, get, end, transcripts, summaries, the seed's routes.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use parley_orchestrator::store::SegmentRow;
use parley_shared::MeetingId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    create_list_get_and_end,
    transcripts_in_every_format,
    a_meeting_no_bot_can_join_fails_with_a_reason,
    seed_routes_start_and_summarise,
);

const LATER: &str = "2099-01-01T09:00:00Z";

async fn create_list_get_and_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user("owner@example.com").await;
    let guest = app.user("guest@example.com").await;
    let r = app
        .post(
            "/meetings",
            Some(&owner),
            &json!({
                "title": "Design review",
                "url": "https://meet.google.com/abc-defg-hij",
                "start_time": LATER,
                "participants": ["guest@example.com", "Someone.Else@Example.com"],
                "record": false,
            }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let m: Value = r.json().await.expect("json");
    let id = m["meeting_id"].as_str().expect("id").to_owned();
    assert_eq!(m["status"], "scheduled");
    assert_eq!(m["platform"], "google_meet");
    assert_eq!(m["start_time"], LATER);
    assert_eq!(m["record"], false);

    let list: Value = app
        .get("/meetings", Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["meetings"].as_array().expect("array").len(), 1);
    let got: Value = app
        .get(&format!("/meetings/{id}"), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(got["title"], "Design review");
    assert_eq!(
        got["invitees"],
        json!(["guest@example.com", "someone.else@example.com"])
    );

    // The invited participant sees it but may not end it.
    let got: Value = app
        .get(&format!("/meetings/{id}"), Some(&guest))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(got["meeting_id"], id.as_str());
    assert!(
        got.get("invitees").is_none(),
        "only the owner sees the invitee list"
    );
    let r = app
        .post(&format!("/meetings/{id}/end"), Some(&guest), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = app
        .post(&format!("/meetings/{id}/end"), Some(&owner), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let ended: Value = r.json().await.expect("json");
    assert_eq!(ended["status"], "ended");
    assert!(ended["end_time"].is_string());

    for (body, what) in [
        (json!({"title": "x", "url": "ftp://nope"}), "url"),
        (json!({"title": "", "url": "https://zoom.us/j/1"}), "title"),
        (
            json!({"title": "x", "url": "https://zoom.us/j/1", "start_time": "tomorrow"}),
            "start_time",
        ),
        (
            json!({"title": "x", "url": "https://zoom.us/j/1", "participants": ["nope"]}),
            "participant",
        ),
    ] {
        let r = app.post("/meetings", Some(&owner), &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = r.json().await.expect("json");
        assert!(
            err["error"].as_str().expect("message").contains(what),
            "{err}"
        );
    }
    app.stop().await;
}

async fn transcripts_in_every_format(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("owner@example.com").await;
    let id = app
        .meeting(
            &token,
            json!({"title": "T", "url": "https://zoom.us/j/1", "start_time": LATER}),
        )
        .await;
    let meeting = MeetingId::parse(&id).expect("id");
    let seg = |speaker: &str, name: &str, start: u64, text: &str| SegmentRow {
        meeting_id: meeting,
        segment_id: uuid::Uuid::new_v4(),
        speaker_key: speaker.to_owned(),
        speaker_name: name.to_owned(),
        start_ms: start,
        end_ms: start + 1500,
        text: text.to_owned(),
        is_final: true,
        seq: start,
        received_ms: 0,
    };
    let mut partial = seg("ben", "Ben Carter", 4000, "not yet final");
    partial.is_final = false;
    app.store
        .upsert_segments(&[
            seg("ben", "Ben Carter", 2500, "Second."),
            seg("ana", "Ana Lima", 0, "First."),
            partial,
        ])
        .await
        .expect("segments");

    let r = app
        .get(
            &format!("/meetings/{id}/transcript?format=json"),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let json: Value = r.json().await.expect("json");
    assert_eq!(
        json,
        json!({"segments": [
            {"speaker": "Ana Lima", "start_ms": 0, "end_ms": 1500, "text": "First."},
            {"speaker": "Ben Carter", "start_ms": 2500, "end_ms": 4000, "text": "Second."},
        ]})
    );
    let r = app
        .get(&format!("/meetings/{id}/transcript"), Some(&token))
        .await;
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json,
        "json is the default"
    );

    for (format, content_type, expect) in [
        (
            "srt",
            "application/x-subrip",
            "00:00:02,500 --> 00:00:04,000",
        ),
        ("vtt", "text/vtt", "WEBVTT"),
        ("txt", "text/plain", "Ben Carter: Second."),
    ] {
        let r = app
            .get(
                &format!("/meetings/{id}/transcript?format={format}"),
                Some(&token),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(ct.starts_with(content_type), "{format}: {ct}");
        let text = r.text().await.expect("text");
        assert!(text.contains(expect), "{format}: {text}");
        assert!(
            !text.contains("not yet final"),
            "{format} shows finals only"
        );
    }
    let r = app
        .get(
            &format!("/meetings/{id}/transcript?format=doc"),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn a_meeting_no_bot_can_join_fails_with_a_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("owner@example.com").await;
    let id = app
        .meeting(
            &token,
            json!({"title": "Now", "url": "https://teams.microsoft.com/l/meetup-join/x"}),
        )
        .await;
    let reason = app
        .failure_reason(&token, &id, Duration::from_secs(20))
        .await;
    assert!(reason.contains("teams"), "{reason}");
    app.stop().await;
}

async fn seed_routes_start_and_summarise(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("owner@example.com").await;
    let id = app
        .meeting(
            &token,
            json!({"title": "Later", "url": "https://teams.microsoft.com/l/meetup-join/later", "start_time": LATER}),
        )
        .await;
    // Starting a scheduled meeting dispatches its bot now (which fails: no Teams connector).
    let r = app
        .post("/meeting/started", Some(&token), &json!({"meeting_id": id}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let started: Value = r.json().await.expect("json");
    assert_ne!(started["status"], "scheduled");

    let r = app
        .post(
            "/meeting/started",
            Some(&token),
            &json!({"url": "https://zoom.us/j/10", "title": "Ad hoc"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let adhoc: Value = r.json().await.expect("json");
    assert_eq!(
        adhoc["status"], "scheduled",
        "a Zoom meeting's bot waits for Zoom to start its media stream"
    );
    let r = app.post("/meeting/started", Some(&token), &json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = app
        .get(&format!("/meeting/summary?meeting_id={id}"), Some(&token))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "no summary before one is made"
    );
    sqlx::query(
        "INSERT INTO summaries (summary_id, meeting_id, generated_at, summary_text, highlights, \
         action_items, model) VALUES ($1, $2, 0, 'We agreed.', '[\"a\"]', '[{\"owner\":\"Ben\"}]', 'extractive')",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&id)
    .execute(app.store.pool())
    .await
    .expect("insert summary");
    for path in [
        format!("/meeting/summary?meeting_id={id}"),
        format!("/meetings/{id}/summary"),
    ] {
        let s: Value = app
            .get(&path, Some(&token))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(s["summary"], "We agreed.", "{path}");
        assert_eq!(s["highlights"], json!(["a"]));
        assert_eq!(s["action_items"], json!([{"owner": "Ben"}]));
    }
    app.stop().await;
}

both_backends!(metadata_is_kept_shown_to_its_owner_and_finds_meetings);

async fn metadata_is_kept_shown_to_its_owner_and_finds_meetings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.user("ana@example.com").await;
    let bob = app.user("bob@example.com").await;
    let make = |title: &str, metadata: Value| {
        json!({"title": title, "url": "https://zoom.us/j/1", "start_time": LATER,
               "participants": ["bob@example.com"], "metadata": metadata})
    };
    let quote = "x' OR '1'='1";
    let first = app
        .meeting(
            &ana,
            make("First", json!({"crm_id": "42", "team": "sales"})),
        )
        .await;
    let second = app
        .meeting(
            &ana,
            make("Second", json!({"crm_id": "43", "team": "sales"})),
        )
        .await;
    let third = app
        .meeting(&ana, make("Third", json!({"note": quote})))
        .await;

    let mine = app.meeting_json(&ana, &first).await.expect("visible");
    assert_eq!(mine["metadata"], json!({"crm_id": "42", "team": "sales"}));
    let theirs = app.meeting_json(&bob, &first).await.expect("invited");
    assert!(
        theirs.get("metadata").is_none(),
        "an invitee sees no metadata: {theirs}"
    );

    let titles = |token: String, query: &'static str| {
        let app = &app;
        async move {
            let r = app.get(&format!("/meetings?{query}"), Some(&token)).await;
            assert_eq!(r.status(), StatusCode::OK, "{query}");
            let body: Value = r.json().await.expect("json");
            let mut ids: Vec<String> = body["meetings"]
                .as_array()
                .expect("list")
                .iter()
                .map(|m| m["meeting_id"].as_str().expect("id").to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let mut sales = vec![first.clone(), second.clone()];
    sales.sort();
    assert_eq!(titles(ana.clone(), "metadata.team=sales").await, sales);
    assert_eq!(
        titles(ana.clone(), "metadata.team=sales&metadata.crm_id=43").await,
        vec![second.clone()]
    );
    assert_eq!(
        titles(ana.clone(), "metadata.crm_id=44").await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(ana.clone(), "metadata.note=x%27%20OR%20%271%27%3D%271").await,
        vec![third.clone()],
        "values match literally"
    );
    assert_eq!(
        titles(bob.clone(), "metadata.crm_id=42").await,
        Vec::<String>::new(),
        "an invitee cannot probe the owner's metadata"
    );
    assert_eq!(
        titles(bob.clone(), "").await.len(),
        3,
        "unfiltered, bob sees all three"
    );

    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    for bad in [
        json!({"n": 1}),
        json!({"a.b": "x"}),
        Value::Object(many),
        json!("text"),
    ] {
        let r = app
            .post("/meetings", Some(&ana), &make("Bad", bad.clone()))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    for query in ["metadata.a.b=x", "limit=ten"] {
        let r = app.get(&format!("/meetings?{query}"), Some(&ana)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    app.stop().await;
}
