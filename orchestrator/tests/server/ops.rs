//! Health, readiness, metrics and the OpenAPI document.

use crate::helpers::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

/// Every route the API serves.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/register/user"),
    ("post", "/register/login"),
    ("post", "/logout"),
    ("post", "/logout/all"),
    ("post", "/me/password"),
    ("post", "/password/reset"),
    ("post", "/password/reset/confirm"),
    ("get", "/me"),
    ("post", "/me/verification"),
    ("get", "/verify"),
    ("post", "/meetings"),
    ("get", "/meetings"),
    ("get", "/meetings/{id}"),
    ("delete", "/meetings/{id}"),
    ("delete", "/me"),
    ("post", "/meetings/{id}/end"),
    ("get", "/meetings/{id}/transcript"),
    ("get", "/meetings/{id}/summary"),
    ("post", "/meeting/started"),
    ("get", "/meeting/summary"),
    ("get", "/admin/users"),
    ("put", "/admin/users/{id}/role"),
    ("put", "/admin/users/{id}/disabled"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/meetings/{id}/live"),
    ("patch", "/meetings/{id}/live"),
    ("delete", "/meetings/{id}/live"),
    ("get", "/live/{token}"),
    ("get", "/live/{token}/ws"),
    ("get", "/live/{token}/summary"),
    ("get", "/live/{token}/recordings/{name}"),
    ("get", "/meetings/{id}/recordings"),
    ("get", "/meetings/{id}/recordings/{name}"),
    ("post", "/calendars"),
    ("get", "/calendars"),
    ("delete", "/calendars/{id}"),
    ("post", "/api-keys"),
    ("get", "/api-keys"),
    ("delete", "/api-keys/{id}"),
    ("get", "/meetings/{id}/events"),
    ("post", "/webhooks"),
    ("get", "/webhooks"),
    ("delete", "/webhooks/{id}"),
    ("get", "/webhooks/{id}/deliveries"),
    ("post", "/webhooks/{id}/deliveries/{delivery}/redeliver"),
    ("get", "/admin/fleet"),
    ("put", "/admin/fleet"),
    ("post", "/webhooks/zoom"),
    ("get", "/live/assets/live.js"),
    ("get", "/live/assets/live.css"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.user("owner@example.com").await;
    let id = app
        .meeting(&owner, serde_json::json!({"title": "Routes", "url": "https://zoom.us/j/9", "start_time": "2099-01-01T00:00:00Z"}))
        .await;
    let live_url = app.live_url(&owner, &id).await.expect("live_url");
    let share = live_url.rsplit('/').next().expect("token").to_owned();
    let doc: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "documented operations vs served routes"
    );
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{token}", &share);
        let r = app
            .http
            .request(
                method.to_uppercase().parse().expect("method"),
                app.url(&concrete),
            )
            .send()
            .await
            .expect("request");
        assert!(
            r.status() != StatusCode::NOT_FOUND && r.status() != StatusCode::METHOD_NOT_ALLOWED
                || r.headers()
                    .get("content-type")
                    .is_some_and(|c| c == "application/json"),
            "{method} {path}: {}",
            r.status()
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(
        app.get("/healthz", None).await.text().await.expect("text"),
        "ok"
    );
    let ready: Value = app.get("/readyz", None).await.json().await.expect("json");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["redis"], "not configured");
    app.user("ana@example.com").await;
    app.login("ana@example.com", "wrong password").await;
    let metrics = app.get("/metrics", None).await.text().await.expect("text");
    assert!(
        metrics.contains("parley_logins_failed_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE parley_ingest_lag_milliseconds histogram"));
    app.stop().await;

    let app = TestApp::spawn_production().await;
    let ready: Value = app.get("/readyz", None).await.json().await.expect("json");
    assert_eq!(
        (ready["database"].as_str(), ready["redis"].as_str()),
        (Some("ok"), Some("ok"))
    );
    app.stop().await;
}
