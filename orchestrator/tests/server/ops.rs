//! Health, readiness, metrics and the OpenAPI document.

use crate::helpers::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

/// Every route the router serves, read from its source (`api/mod.rs`, `api/live.rs`,
/// `api/web.rs`): each `.route("PATH", get(…).post(…)…)` and the method functions chained in it
/// (`any_service`, the MCP endpoint, counts as POST). Read from the source rather than listed here, so a route added
/// without its document fails the test.
fn served_routes() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for file in ["src/api/mod.rs", "src/api/live.rs", "src/api/web.rs"] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let source = std::fs::read_to_string(&path).expect("router source");
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's text, to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("route call closes");
            let call = &rest[..end];
            let route = call.split('"').nth(1).expect("route path").to_owned();
            for (function, method) in [
                ("get(", "get"),
                ("post(", "post"),
                ("put(", "put"),
                ("patch(", "patch"),
                ("delete(", "delete"),
                ("any_service(", "post"),
            ] {
                let called = call.match_indices(function).any(|(i, _)| {
                    // A method function, not the tail of another name (`any_service`'s `service(`).
                    call[..i]
                        .chars()
                        .last()
                        .is_none_or(|c| !c.is_alphanumeric() && c != '_')
                });
                if called {
                    routes.push((method.to_owned(), route.clone()));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

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
    let routes = served_routes();
    assert!(
        routes.len() > 50,
        "the router's source was read: {routes:?}"
    );
    assert_eq!(
        documented,
        routes.len(),
        "documented operations vs served routes {routes:?}"
    );
    for (method, path) in &routes {
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
