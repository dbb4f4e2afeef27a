//! Access control and hostile input over HTTP.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use parley_orchestrator::auth::BearerToken;
use parley_orchestrator::clock::now_ms;
use reqwest::StatusCode;
use serde_json::{Value, json};

both_backends!(
    another_users_meeting_is_not_found,
    expired_forged_and_malformed_tokens_are_refused,
    admin_routes_need_the_admin_role,
    oversized_and_malformed_bodies_get_clear_errors,
    metacharacters_in_every_field_are_stored_verbatim,
);

async fn another_users_meeting_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user("owner@example.com").await;
    let other = app.user("other@example.com").await;
    let id = app
        .meeting(&owner, json!({"title": "Private", "url": "https://zoom.us/j/1", "start_time": "2099-01-01T00:00:00Z"}))
        .await;
    for path in [
        format!("/meetings/{id}"),
        format!("/meetings/{id}/transcript"),
        format!("/meetings/{id}/summary"),
        format!("/meeting/summary?meeting_id={id}"),
    ] {
        let r = app.get(&path, Some(&other)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = app
        .post(&format!("/meetings/{id}/end"), Some(&other), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .post("/meeting/started", Some(&other), &json!({"meeting_id": id}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let list: Value = app
        .get("/meetings", Some(&other))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["meetings"], json!([]));
    // Not-a-uuid ids are simply not found.
    let r = app.get("/meetings/1%27%20OR%201=1", Some(&owner)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn expired_forged_and_malformed_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = app.user("ana@example.com").await;
    let me: Value = app
        .get("/me", Some(&good))
        .await
        .json()
        .await
        .expect("json");
    let user_id = uuid::Uuid::parse_str(me["user_id"].as_str().expect("id")).expect("uuid");

    let expired = BearerToken::generate().expect("random");
    let now = now_ms();
    app.store
        .create_session(
            expired.hash().as_str(),
            user_id,
            now - 7_200_000,
            now - 3_600_000,
        )
        .await
        .expect("session");
    let forged = BearerToken::generate().expect("random");
    for (token, what) in [
        (expired.expose().to_owned(), "expired"),
        (forged.expose().to_owned(), "forged"),
        (format!("{good}0"), "tampered"),
        ("prl_".to_owned(), "truncated"),
        ("' OR 1=1 --".to_owned(), "injection"),
    ] {
        let r = app.get("/me", Some(&token)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = app.get("/meetings", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    let purged = app.store.purge_sessions(now_ms()).await.expect("purge");
    assert_eq!(purged, 1, "only the expired session is removed");
    assert_eq!(app.get("/me", Some(&good)).await.status(), StatusCode::OK);
    let r = app
        .http
        .get(app.url("/me"))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "wrong scheme");
    app.stop().await;
}

async fn admin_routes_need_the_admin_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("admin@example.com").await;
    let user = app.user("user@example.com").await;
    assert_eq!(
        app.get("/admin/users", Some(&user)).await.status(),
        StatusCode::FORBIDDEN
    );
    let users: Value = app
        .get("/admin/users", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let list = users["users"].as_array().expect("users");
    assert_eq!(list.len(), 2);
    let user_id = list
        .iter()
        .find(|u| u["email"] == "user@example.com")
        .and_then(|u| u["user_id"].as_str())
        .expect("user listed")
        .to_owned();
    assert!(
        !users.to_string().contains("argon2"),
        "no password hashes in the listing"
    );

    let put = |token: &str, role: &str| {
        app.http
            .put(app.url(&format!("/admin/users/{user_id}/role")))
            .bearer_auth(token)
            .json(&json!({ "role": role }))
            .send()
    };
    assert_eq!(
        put(&user, "admin").await.expect("req").status(),
        StatusCode::FORBIDDEN
    );
    // A non-admin may not replay server files either.
    let r = app
        .post(
            "/meetings",
            Some(&user),
            &json!({"title": "x", "url": "replay:/etc"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        put(&admin, "admin").await.expect("req").status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/admin/users", Some(&user)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&admin, "root").await.expect("req").status(),
        StatusCode::BAD_REQUEST
    );
    app.stop().await;
}

async fn oversized_and_malformed_bodies_get_clear_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ana@example.com").await;
    let huge = json!({"title": "x".repeat(64 * 1024), "url": "https://zoom.us/j/1"});
    let r = app.post("/meetings", Some(&token), &huge).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = app
        .http
        .post(app.url("/register/user"))
        .header("content-type", "application/json")
        // Twice the limit: written whole before the server answers 413 and closes, which a
        // body larger than the socket buffers can race into a reset.
        .body(vec![b'['; 32 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(
        r.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "before any parsing"
    );

    for body in [
        "{\"email\": ",
        "not json",
        "{\"email\": 5, \"name\": \"x\", \"password\": \"long enough\"}",
        "[]",
        "",
    ] {
        let r = app
            .http
            .post(app.url("/register/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let err: Value = r.json().await.expect("error is json");
        assert!(
            !err["error"].as_str().expect("message").is_empty(),
            "{body:?}"
        );
    }
    let r = app
        .http
        .post(app.url("/meetings"))
        .bearer_auth(&token)
        .body("{\"title\":\"x\",\"url\":\"https://zoom.us/j/1\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "missing content type");
    app.stop().await;
}

async fn metacharacters_in_every_field_are_stored_verbatim(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let nasty = "x'); DROP TABLE meetings; -- \"%_\\ $1 ?";
    let email = "o'brien%_$1@example.com";
    let password = "pa'ss\"; DROP TABLE users; --";
    assert_eq!(
        app.register(email, nasty, password).await.status(),
        StatusCode::CREATED
    );
    let login: Value = app.login(email, password).await.json().await.expect("json");
    let token = login["token"].as_str().expect("token");
    app.verify_by_mail(email).await;
    let me: Value = app
        .get("/me", Some(token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["name"], nasty);
    assert_eq!(me["email"], email);
    let url = "https://example.com/j/1?q=');DROP%20TABLE%20users;--&x=%27";
    let id = app
        .meeting(
            token,
            json!({"title": nasty, "url": url, "start_time": "2099-01-01T00:00:00Z",
                   "participants": ["a'b@example.com"]}),
        )
        .await;
    let m: Value = app
        .get(&format!("/meetings/{id}"), Some(token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(m["title"], nasty);
    assert_eq!(m["url"], url);
    assert_eq!(m["invitees"], json!(["a'b@example.com"]));
    let list: Value = app
        .get("/meetings", Some(token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["meetings"][0]["title"], nasty);
    app.stop().await;
}
