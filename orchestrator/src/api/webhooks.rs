//! An account's webhooks: `POST /webhooks` (address, events, optional secret and metadata
//! filter; the secret is in the answer), `GET /webhooks`, `DELETE /webhooks/{id}`, the delivery
//! log `GET /webhooks/{id}/deliveries` and `POST /webhooks/{id}/deliveries/{delivery}/redeliver`.

use super::error::{ApiJson, ApiQuery};
use super::{ApiError, AppState, AuthUser};
use crate::clock::now_ms;
use crate::store::metadata::Metadata;
use crate::store::{EventType, Webhook};
use crate::webhooks::signing;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// Endpoints one account may hold.
pub const MAX_WEBHOOKS_PER_ACCOUNT: usize = 20;
const MAX_URL_CHARS: usize = 2000;
/// Deliveries listed at most, newest first.
const MAX_LISTED: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    url: String,
    events: Vec<EventType>,
    /// `whsec_…`; absent: one is made.
    secret: Option<String>,
    /// Only meetings whose metadata holds all of these pairs.
    #[serde(default)]
    metadata: Metadata,
}

fn endpoint_url(raw: &str) -> Result<url::Url, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "url must be an http(s):// address of at most {MAX_URL_CHARS} characters, without \
             credentials"
        ))
    };
    if raw.chars().count() > MAX_URL_CHARS || raw.contains(char::is_whitespace) {
        return Err(bad());
    }
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none();
    if plain { Ok(url) } else { Err(bad()) }
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require_verified()?;
    let url = endpoint_url(&body.url)?;
    let mut events = body.events;
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "events must name at least one of: {}",
            EventType::ALL.map(EventType::as_str).join(", ")
        )));
    }
    body.metadata.check().map_err(ApiError::BadRequest)?;
    let secret = match body.secret {
        Some(secret) => {
            signing::key_of(&secret).map_err(ApiError::BadRequest)?;
            secret
        }
        None => signing::generate_secret().map_err(|e| ApiError::Internal(e.into()))?,
    };
    if state.store.webhooks_of(user.0.user_id).await?.len() >= MAX_WEBHOOKS_PER_ACCOUNT {
        return Err(ApiError::BadRequest(format!(
            "an account holds at most {MAX_WEBHOOKS_PER_ACCOUNT} webhooks: delete one first"
        )));
    }
    // Refused now, before anything is stored; every delivery checks again.
    state
        .egress
        .check_reachable(&url)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let made = state
        .store
        .create_webhook(
            user.0.user_id,
            url.as_str(),
            &events,
            &body.metadata,
            &secret,
            now_ms(),
        )
        .await?;
    tracing::info!(user_id = %user.0.user_id, webhook_id = %made.id, "webhook added");
    let mut answer = serde_json::to_value(&made).map_err(|e| ApiError::Internal(e.into()))?;
    answer["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let webhooks = state.store.webhooks_of(user.0.user_id).await?;
    Ok(Json(json!({ "webhooks": webhooks })))
}

/// The caller's endpoint, or 404: another account's is not there for them.
async fn owned(state: &AppState, user: &AuthUser, id: &str) -> Result<Webhook, ApiError> {
    let missing = || ApiError::NotFound("no such webhook");
    let id = uuid::Uuid::parse_str(id).map_err(|_| missing())?;
    state
        .store
        .webhook(id)
        .await?
        .filter(|w| w.user_id == user.0.user_id)
        .ok_or_else(missing)
}

pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let webhook = owned(&state, &user, &id).await?;
    state
        .store
        .delete_webhook(user.0.user_id, webhook.id)
        .await?;
    tracing::info!(user_id = %user.0.user_id, webhook_id = %webhook.id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    limit: Option<u32>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let webhook = owned(&state, &user, &id).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LISTED).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LISTED}"
        )));
    }
    let deliveries = state.store.deliveries_of(webhook.id, limit).await?;
    Ok(Json(json!({ "deliveries": deliveries })))
}

pub async fn redeliver(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let webhook = owned(&state, &user, &id).await?;
    if !state
        .store
        .redeliver(webhook.id, &delivery, now_ms())
        .await?
    {
        return Err(ApiError::NotFound(
            "no such delivery, or it is being sent now",
        ));
    }
    Ok(StatusCode::ACCEPTED)
}
