//! A user's calendars: `POST /calendars` (an ICS feed URL or a CalDAV collection, with optional
//! credentials, the password sealed at rest), `GET /calendars`, `DELETE /calendars/{id}`.

use super::error::ApiJson;
use super::{ApiError, AppState, AuthUser};
use crate::clock::now_ms;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCalendar {
    url: String,
    username: Option<String>,
    password: Option<String>,
}

/// `webcal://` is how calendar apps hand out ICS feeds; it means HTTPS.
fn feed_url(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let url = if let Some(rest) = raw.strip_prefix("webcal://") {
        format!("https://{rest}")
    } else {
        raw.to_owned()
    };
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2000
        && !url.contains(char::is_whitespace)
        && url
            .split("://")
            .nth(1)
            .is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !ok {
        return Err(ApiError::BadRequest(
            "url must be an http(s):// or webcal:// address of an ICS feed or CalDAV calendar"
                .to_owned(),
        ));
    }
    Ok(url)
}

pub async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<AddCalendar>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require_verified()?;
    let url = feed_url(&body.url)?;
    let parsed = url::Url::parse(&url)
        .map_err(|_| ApiError::BadRequest("url is not a valid address".to_owned()))?;
    if parsed.password().is_some() || !parsed.username().is_empty() {
        return Err(ApiError::BadRequest(
            "put credentials in username and password, not in the url".to_owned(),
        ));
    }
    // Refused now, before anything is stored; every fetch checks again.
    state
        .egress
        .check_reachable(&parsed)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if body.password.is_some() && body.username.is_none() {
        return Err(ApiError::BadRequest(
            "a password needs a username".to_owned(),
        ));
    }
    let calendar = state
        .store
        .add_calendar(
            user.0.user_id,
            &url,
            body.username.as_deref(),
            body.password.as_deref(),
            now_ms(),
        )
        .await?;
    tracing::info!(calendar_id = %calendar.calendar_id, "calendar added");
    Ok((StatusCode::CREATED, Json(json!(calendar))))
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let calendars = state.store.calendars_of(user.0.user_id).await?;
    Ok(Json(json!({ "calendars": calendars })))
}

pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such calendar"))?;
    if state
        .store
        .calendar(id)
        .await?
        .is_none_or(|c| c.user_id != user.0.user_id)
    {
        return Err(ApiError::NotFound("no such calendar"));
    }
    // The meetings only this calendar scheduled go with it.
    for key in state.store.delete_calendar(user.0.user_id, id).await? {
        state.store.drop_calendar_instance(None, &key).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
