//! Passwords, tokens and share links never reach the logs.

use crate::helpers::{Backend, TestApp, captured_logs};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_are_never_logged() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let password = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let email = "logcheck@example.com";
    assert_eq!(
        app.register(email, "Log Check", &password).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login(email, "wrong-password-xyz").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let login: Value = app
        .login(email, &password)
        .await
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token").to_owned();
    app.verify_by_mail(email).await;
    let id = app
        .meeting(&token, json!({"title": "Logged?", "url": "https://zoom.us/j/5", "start_time": "2099-01-01T00:00:00Z"}))
        .await;
    app.get(&format!("/meetings/{id}/transcript"), Some(&token))
        .await;
    let live_url = app.live_url(&token, &id).await.expect("live_url");
    let share_token = live_url.rsplit('/').next().expect("token").to_owned();
    app.http.get(&live_url).send().await.expect("page");
    app.get(&format!("/live/{share_token}x"), None).await;
    app.get(&format!("/meetings/{id}?token={token}"), Some(&token))
        .await;
    app.get("/me", Some(&format!("{token}x"))).await;
    app.post("/logout", Some(&token), &json!({})).await;
    app.stop().await;

    let logs = captured_logs();
    assert!(
        logs.contains("login"),
        "the capture works: {} bytes",
        logs.len()
    );
    assert!(
        logs.contains("/meetings/{id}/transcript"),
        "requests are logged by route"
    );
    for secret in [
        password.as_str(),
        token.as_str(),
        &token[4..],
        share_token.as_str(),
        "wrong-password-xyz",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}
