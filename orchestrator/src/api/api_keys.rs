//! An account's API keys: `POST /api-keys` (name, scopes, optional expiry; the key is in the
//! answer and nowhere else), `GET /api-keys` (without the keys), `DELETE /api-keys/{id}`.
//! Made and managed by people signed in: a key cannot make keys.

use super::error::ApiJson;
use super::{ApiError, AppState, AuthUser};
use crate::auth::{BearerToken, Scope, Scopes};
use crate::clock::now_ms;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// Keys one account may hold; each is a standing credential to revoke when it leaks.
pub const MAX_KEYS_PER_ACCOUNT: u64 = 50;
const MAX_NAME_CHARS: usize = 100;
const MAX_EXPIRY_DAYS: u64 = 3650;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    scopes: Vec<Scope>,
    /// Days until the key stops working; absent: until revoked.
    expires_in_days: Option<u64>,
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require_verified()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters, without control characters"
        )));
    }
    let scopes = Scopes::new(body.scopes);
    if scopes.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "scopes must name at least one of: {}",
            Scope::ALL.map(Scope::as_str).join(", ")
        )));
    }
    let now = now_ms();
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Some(now + days * DAY_MS),
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "expires_in_days must be from 1 to {MAX_EXPIRY_DAYS}"
            )));
        }
    };
    if state.store.count_api_keys(user.0.user_id).await? >= MAX_KEYS_PER_ACCOUNT {
        return Err(ApiError::BadRequest(format!(
            "an account holds at most {MAX_KEYS_PER_ACCOUNT} API keys: revoke one first"
        )));
    }
    let key = BearerToken::generate_api_key().map_err(|e| ApiError::Internal(e.into()))?;
    let made = state
        .store
        .create_api_key(
            user.0.user_id,
            name,
            key.hash().as_str(),
            &scopes,
            now,
            expires_at,
        )
        .await?;
    tracing::info!(user_id = %user.0.user_id, key_id = %made.id, scopes = %scopes.to_stored(), "API key made");
    let mut answer = serde_json::to_value(&made).map_err(|e| ApiError::Internal(e.into()))?;
    answer["key"] = json!(key.expose());
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let keys = state.store.api_keys_of(user.0.user_id).await?;
    Ok(Json(json!({ "api_keys": keys })))
}

pub async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such API key"))?;
    if !state.store.delete_api_key(user.0.user_id, id).await? {
        return Err(ApiError::NotFound("no such API key"));
    }
    tracing::info!(user_id = %user.0.user_id, key_id = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
