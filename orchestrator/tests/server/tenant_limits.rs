//! What one account can make the server do for it, as an attacker with an open sign-up would
//! try: act before proving its address, mail strangers, create without bound, read the
//! server's metrics through the API's address, and find secrets in a copy of the database.

use crate::helpers::{Backend, Options, TestApp, eventually};
use parley_orchestrator::mail::policy::{MailPolicy, Quotas};
use parley_testkit::servers::free_port;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use std::time::Duration;

/// Signs up without following the mailed link; returns the bearer token.
async fn unverified(app: &TestApp, email: &str) -> String {
    let password = "an unverified password";
    assert_eq!(
        app.register(email, "Unverified", password).await.status(),
        StatusCode::CREATED
    );
    let body: Value = app.login(email, password).await.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn an_unverified_account_sends_no_bot_and_adds_no_calendar() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = unverified(&app, "new@example.com").await;
    let meeting = json!({"title": "x", "url": "https://zoom.us/j/1", "participants": []});
    for (path, body) in [
        ("/meetings", meeting.clone()),
        ("/meeting/started", json!({"url": "https://zoom.us/j/1"})),
        ("/calendars", json!({"url": "http://127.0.0.1:1/cal.ics"})),
    ] {
        let r = app.post(path, Some(&token), &body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let text = r.text().await.expect("body");
        assert!(text.contains("verify your address"), "{path}: {text}");
    }
    app.stop().await;
}

/// The addresses the outbox holds summary mails for.
fn summary_recipients(app: &TestApp) -> Vec<String> {
    let mut to: Vec<String> = std::fs::read_dir(app.data_dir().join("outbox"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter(|m| m.contains("Subject: Meeting summary"))
                .filter_map(|m| {
                    m.lines()
                        .find_map(|l| l.strip_prefix("To: ").map(str::to_owned))
                })
                .collect()
        })
        .unwrap_or_default();
    to.sort();
    to
}

/// Ends a meeting with no bot in it; its summary job then mails the recipients.
async fn end_and_wait_for_mail(app: &TestApp, token: &str, id: &str, expected: usize) {
    let r = app
        .post(&format!("/meetings/{id}/end"), Some(token), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    eventually(Duration::from_secs(30), "the summary mails", || async {
        (summary_recipients(app).len() >= expected).then_some(())
    })
    .await;
    // Nothing more follows: every email job is queued with the summary, at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn summaries_go_to_verified_accounts_and_the_organisations_domains_only() {
    // No domains: only accounts that proved their address are mailed.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            mail_policy: Some(MailPolicy::default()),
            ..Options::default()
        },
    )
    .await;
    let owner = app.user("owner@corp.example").await;
    app.user("colleague@partner.example").await;
    unverified(&app, "squatter@partner.example").await;
    let id = app
        .meeting(
            &owner,
            json!({"title": "Weekly", "url": "https://zoom.us/j/1",
                   "start_time": "2099-01-01T00:00:00Z",
                   "participants": ["colleague@partner.example", "stranger@victim.example",
                                    "squatter@partner.example"]}),
        )
        .await;
    end_and_wait_for_mail(&app, &owner, &id, 2).await;
    assert_eq!(
        summary_recipients(&app),
        ["colleague@partner.example", "owner@corp.example"]
    );
    app.stop().await;

    // With the organisation's domains: its addresses are mailed without accounts, and a
    // meeting cannot name anyone outside them.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            mail_policy: Some(MailPolicy::new(
                &["corp.example".to_owned()],
                Quotas::default(),
            )),
            ..Options::default()
        },
    )
    .await;
    let owner = app.user("owner@corp.example").await;
    let r = app
        .post(
            "/meetings",
            Some(&owner),
            &json!({"title": "x", "url": "https://zoom.us/j/1",
                    "participants": ["ana@corp.example", "eve@corp.example.evil"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("outside this server's mail domains")
    );
    let id = app
        .meeting(
            &owner,
            json!({"title": "Weekly", "url": "https://zoom.us/j/1",
                   "start_time": "2099-01-01T00:00:00Z", "participants": ["ana@corp.example"]}),
        )
        .await;
    end_and_wait_for_mail(&app, &owner, &id, 2).await;
    assert_eq!(
        summary_recipients(&app),
        ["ana@corp.example", "owner@corp.example"]
    );
    app.stop().await;
}

#[tokio::test]
async fn an_account_meets_its_quotas_for_meetings_invitees_and_mail() {
    let quotas = Quotas {
        meetings_per_day: 3,
        invitees_per_meeting: 4,
        mails_per_day: 3,
    };
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            mail_policy: Some(MailPolicy::new(&["example.com".to_owned()], quotas)),
            ..Options::default()
        },
    )
    .await;
    let owner = app.user("owner@example.com").await;
    let people =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("p{i}@example.com")).collect() };
    let r = app
        .post(
            "/meetings",
            Some(&owner),
            &json!({"title": "x", "url": "https://zoom.us/j/1", "participants": people(5)}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "five invitees of four");
    let meeting = |title: &str| {
        json!({"title": title, "url": "https://zoom.us/j/1",
               "start_time": "2099-01-01T00:00:00Z", "participants": people(4)})
    };
    let first = app.meeting(&owner, meeting("First")).await;
    let second = app.meeting(&owner, meeting("Second")).await;
    app.meeting(&owner, meeting("Third")).await;
    let r = app
        .post("/meetings", Some(&owner), &meeting("Fourth"))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(wait > 3600, "the day's quota frees up in a day: {wait} s");
    // Five recipients (owner and four invitees), three mails a day: three are sent...
    end_and_wait_for_mail(&app, &owner, &first, 3).await;
    assert_eq!(summary_recipients(&app).len(), 3);
    // ...and the next meeting's summary is mailed to nobody.
    let r = app
        .post(&format!("/meetings/{second}/end"), Some(&owner), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    eventually(Duration::from_secs(30), "the second summary", || async {
        let r = app
            .get(&format!("/meetings/{second}/summary"), Some(&owner))
            .await;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(summary_recipients(&app).len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn metrics_on_their_own_port_are_not_served_on_the_api() {
    let port = free_port().expect("port");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            metrics_listen: Some(format!("127.0.0.1:{port}").parse().expect("address")),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(text.contains("parley_"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn a_copy_of_the_database_holds_no_captions_link_or_feed_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.user("owner@example.com").await;
    let id = app
        .meeting(
            &owner,
            json!({"title": "x", "url": "https://zoom.us/j/1",
                   "start_time": "2099-01-01T00:00:00Z", "participants": []}),
        )
        .await;
    let link = app.live_url(&owner, &id).await.expect("link");
    let token = link.rsplit('/').next().expect("token").to_owned();
    let feed = "http://127.0.0.1:1/private-5ecret/basic.ics";
    let r = app
        .post("/calendars", Some(&owner), &json!({ "url": feed }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let listed: Value = app
        .get("/calendars", Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["calendars"][0]["url"], "http://127.0.0.1:1/…",
        "{listed}"
    );

    // Every text column of the two tables (the Any driver cannot read SQLite's booleans, so
    // they are named rather than `*`).
    let mut cells = Vec::new();
    for query in [
        "SELECT meeting_id, title, url, platform, status, status_reason, owner_id, share_token, \
         share_hash, share_sealed, share_scope, calendar_key FROM meetings",
        "SELECT calendar_id, user_id, url, url_sealed, username, password_sealed, etag, \
         last_modified, last_error FROM calendars",
    ] {
        let rows = sqlx::query(query)
            .fetch_all(app.store.pool())
            .await
            .expect("rows");
        for row in &rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    cells.push(text);
                }
            }
        }
    }
    assert!(!cells.is_empty());
    for secret in [token.as_str(), "private-5ecret"] {
        assert!(
            !cells.iter().any(|c| c.contains(secret)),
            "{secret} is stored in the clear"
        );
    }
    // The link still opens, found by its hash.
    assert_eq!(
        app.http.get(&link).send().await.expect("page").status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn a_server_with_another_key_does_not_open_the_database() {
    let (url, dir) = crate::helpers::fresh_database(Backend::Sqlite).await;
    crate::helpers::open_store(&url, dir.path()).await;
    let other = parley_orchestrator::auth::Sealer::from_hex(&"1".repeat(64)).expect("key");
    let refused = parley_orchestrator::store::Store::open(&url, std::sync::Arc::new(other))
        .await
        .expect_err("another key");
    assert!(
        refused.to_string().contains("PARLEY_SECRET_KEY"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_janus_link_into_the_internal_network_sends_no_bot() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.user("owner@example.com").await;
    // Through the API: refused when the meeting is made, before any packet leaves.
    let internal = "janus+ws://10.20.30.40:8188/?room=7";
    for (path, body) in [
        (
            "/meetings",
            json!({"title": "Probe", "url": internal, "participants": []}),
        ),
        ("/meeting/started", json!({ "url": internal })),
    ] {
        let r = app.post(path, Some(&owner), &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let text = r.text().await.expect("body");
        assert!(text.contains("internal network"), "{path}: {text}");
    }
    // Made another way (as a calendar event makes it): refused when its bot would be sent.
    let me: Value = app
        .get("/me", Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    let meeting = app
        .store
        .create_meeting(
            parley_orchestrator::store::NewMeeting {
                owner_id: me["user_id"].as_str().expect("id").parse().expect("uuid"),
                title: "Probe".to_owned(),
                url: parley_shared::MeetingUrl::parse(internal).expect("link"),
                start_time_ms: Some(parley_shared::now_ms()),
                invitees: Vec::new(),
                record: false,
                metadata: parley_orchestrator::store::metadata::Metadata::default(),
                retention_days: None,
            },
            parley_shared::now_ms(),
        )
        .await
        .expect("meeting");
    let reason = app
        .failure_reason(
            &owner,
            &meeting.meeting_id.to_string(),
            Duration::from_secs(30),
        )
        .await;
    assert!(reason.contains("PARLEY_EGRESS_ALLOW"), "{reason}");
    app.stop().await;
}
