//! Operations endpoints: liveness, readiness (database and Redis reachable), Prometheus metrics
//! and the OpenAPI document.

use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::time::Duration;

const OPENAPI: &str = include_str!("openapi.json");
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let db = tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await;
    let db_ok = matches!(db, Ok(Ok(())));
    let redis = match state.redis.clone() {
        None => None,
        Some(mut conn) => {
            let ping = tokio::time::timeout(
                CHECK_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            Some(matches!(ping, Ok(Ok(_))))
        }
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    if !db_ok || redis == Some(false) {
        return Err(ApiError::Unavailable(format!(
            "database {}, redis {}",
            word(db_ok),
            redis.map_or("not configured", word)
        )));
    }
    Ok(Json(json!({
        "database": "ok",
        "redis": redis.map_or("not configured", word),
    })))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
