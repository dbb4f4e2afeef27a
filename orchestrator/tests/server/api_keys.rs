//! API keys: programs act for an account within the scopes it gave them, on the routes programs
//! use; a key is shown once, stored as a hash, listed without itself, and dead once revoked or
//! expired.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use parley_orchestrator::auth::BearerToken;
use reqwest::StatusCode;
use serde_json::{Value, json};

const LATER: &str = "2099-01-01T10:00:00Z";

async fn make_key(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post("/api-keys", Some(token), &body).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{body}");
    r.json().await.expect("key json")
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn meeting_body(title: &str) -> Value {
    json!({"title": title, "url": "https://meet.google.com/abc-defg-hij", "start_time": LATER})
}

both_backends!(an_api_key_acts_for_its_account_within_its_scopes);

async fn an_api_key_acts_for_its_account_within_its_scopes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.user("ana@example.com").await;
    let bob = app.user("bob@example.com").await;

    for bad in [
        json!({"name": "x", "scopes": []}),
        json!({"name": " ", "scopes": ["meetings:read"]}),
        json!({"name": "x", "scopes": ["admin"]}),
        json!({"name": "x", "scopes": ["meetings:read"], "role": "admin"}),
        json!({"name": "x", "scopes": ["meetings:read"], "expires_in_days": 0}),
        json!({"name": "x".repeat(101), "scopes": ["meetings:read"]}),
    ] {
        let r = app.post("/api-keys", Some(&ana), &bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    let reader = make_key(
        &app,
        &ana,
        json!({"name": "reporting", "scopes": ["meetings:read"]}),
    )
    .await;
    let reader_key = reader["key"].as_str().expect("key").to_owned();
    assert!(
        reader_key.starts_with("pk_") && reader_key.len() == 67,
        "{reader_key}"
    );
    assert_eq!(reader["scopes"], json!(["meetings:read"]));
    assert_eq!(reader["expires_at"], Value::Null);
    let writer = make_key(
        &app,
        &ana,
        json!({"name": "scheduler", "scopes": ["bots:write", "meetings:write", "meetings:read"], "expires_in_days": 30}),
    )
    .await;
    let writer_key = writer["key"].as_str().expect("key").to_owned();
    assert!(writer["expires_at"].as_u64().is_some());
    let no_bots = make_key(
        &app,
        &ana,
        json!({"name": "half", "scopes": ["meetings:write"]}),
    )
    .await;
    let no_bots_key = no_bots["key"].as_str().expect("key").to_owned();

    // The writer sends a bot; the meeting is Ana's.
    let r = app
        .post("/meetings", Some(&writer_key), &meeting_body("Planning"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let meeting: Value = r.json().await.expect("meeting");
    let id = meeting["meeting_id"].as_str().expect("id").to_owned();
    let mine: Value = app
        .get(&format!("/meetings/{id}"), Some(&ana))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["title"], "Planning");

    // The reader reads it and nothing more.
    let r = app.get(&format!("/meetings/{id}"), Some(&reader_key)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = app
        .get("/meetings", Some(&reader_key))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        listed["meetings"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["meeting_id"] == id.as_str())
    );
    let end = format!("/meetings/{id}/end");
    for (key, path, body, scope) in [
        (
            &reader_key,
            "/meetings",
            meeting_body("No"),
            "meetings:write",
        ),
        (&no_bots_key, "/meetings", meeting_body("No"), "bots:write"),
        (&reader_key, end.as_str(), json!({}), "bots:write"),
    ] {
        let (status, why) = error_of(app.post(path, Some(key), &body).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} {scope}");
        assert_eq!(why, format!("this API key lacks the {scope} scope"));
    }

    // People's routes take no key, not even one with every scope: no account changes, no keys
    // made by keys.
    for (path, body) in [
        (
            "/api-keys",
            Some(json!({"name": "more", "scopes": ["meetings:read"]})),
        ),
        (
            "/me/password",
            Some(json!({"current_password": "x", "new_password": "y"})),
        ),
        (
            "/calendars",
            Some(json!({"url": "https://example.com/cal.ics"})),
        ),
        ("/me", None),
        ("/api-keys", None),
        ("/admin/users", None),
    ] {
        let r = match &body {
            Some(body) => app.post(path, Some(&writer_key), body).await,
            None => app.get(path, Some(&writer_key)).await,
        };
        let (status, why) = error_of(r).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(why.contains("not for API keys"), "{path}: {why}");
    }

    // Ana's list shows her keys without them; Bob sees none of hers and cannot revoke them.
    let keys: Value = app
        .get("/api-keys", Some(&ana))
        .await
        .json()
        .await
        .expect("json");
    let keys = keys["api_keys"].as_array().expect("list").clone();
    assert_eq!(keys.len(), 3);
    let text = serde_json::to_string(&keys).expect("json");
    assert!(
        !text.contains(&reader_key) && !text.contains("\"key\""),
        "{text}"
    );
    let reader_row = keys
        .iter()
        .find(|k| k["name"] == "reporting")
        .expect("reader listed");
    assert!(
        reader_row["last_used_at"].as_u64().is_some(),
        "use recorded: {reader_row}"
    );
    let theirs: Value = app
        .get("/api-keys", Some(&bob))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(theirs["api_keys"], json!([]));
    let reader_id = reader["id"].as_str().expect("id");
    let r = app.delete(&format!("/api-keys/{reader_id}"), &bob).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.get(&format!("/meetings/{id}"), Some(&reader_key)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "Bob's attempt left the key alive"
    );

    // Stored as a hash only; dead once expired (a clock a month on) or revoked.
    let parsed = BearerToken::from_header(&format!("Bearer {writer_key}")).expect("key parses");
    let now = parley_shared::now_ms();
    assert!(
        app.store
            .api_key_grant(parsed.hash().as_str(), now)
            .await
            .expect("grant")
            .is_some()
    );
    assert!(
        app.store
            .api_key_grant(parsed.hash().as_str(), now + 31 * 86_400_000)
            .await
            .expect("grant")
            .is_none(),
        "an expired key grants nothing"
    );
    let r = app.delete(&format!("/api-keys/{reader_id}"), &ana).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.get(&format!("/meetings/{id}"), Some(&reader_key)).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked key is dead at once"
    );
    let forged = format!("pk_{}", "0".repeat(64));
    assert_eq!(
        app.get("/meetings", Some(&forged)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}
