//! Admin-only routes: accounts and roles, and the bot fleet's size.

use super::error::ApiJson;
use super::{ApiError, AppState, AuthUser};
use crate::clock::now_ms;
use crate::store::{FleetSettings, Role};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub async fn users(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    user.require_admin()?;
    let users = state.store.users().await?;
    Ok(Json(json!({ "users": users })))
}

/// The account a path names; a malformed id names none.
fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such user"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetRole>,
) -> Result<Json<Value>, ApiError> {
    user.require_admin()?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::BadRequest("role must be \"user\" or \"admin\"".to_owned()))?;
    let id = user_id(&id)?;
    if !state.store.set_role(id, role).await? {
        return Err(ApiError::NotFound("no such user"));
    }
    tracing::info!(user_id = %id, role = role.as_str(), by = %user.0.user_id, "role changed");
    Ok(Json(json!({ "user_id": id, "role": role })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDisabled {
    disabled: bool,
}

/// Disables an account (its sessions end, it cannot log in) or enables it again.
pub async fn set_disabled(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetDisabled>,
) -> Result<Json<Value>, ApiError> {
    user.require_admin()?;
    let id = user_id(&id)?;
    if id == user.0.user_id && body.disabled {
        return Err(ApiError::BadRequest(
            "an admin cannot disable their own account".to_owned(),
        ));
    }
    if !state
        .store
        .set_disabled(id, body.disabled, now_ms())
        .await?
    {
        return Err(ApiError::NotFound("no such user"));
    }
    tracing::info!(user_id = %id, disabled = body.disabled, by = %user.0.user_id, "account disabled or enabled");
    Ok(Json(json!({ "user_id": id, "disabled": body.disabled })))
}

/// The fleet: its settings, the assignment queue, and every bot worker with its state, meeting
/// and uptime.
pub async fn fleet(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    user.require_admin()?;
    let status = state
        .fleet
        .status()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!(status)))
}

/// Any of the settings; those left out keep their values.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetFleet {
    min_idle: Option<u32>,
    max_bots: Option<u32>,
    per_user: Option<u32>,
}

/// The largest fleet one orchestrator sizes: a guard against a typo scaling to millions.
const MAX_FLEET: u32 = 10_000;

/// Why fleet settings make no sense, if they do not.
pub fn check_fleet(s: FleetSettings) -> Result<(), String> {
    if s.max_bots == 0 || s.max_bots > MAX_FLEET {
        return Err(format!("max_bots must be 1 to {MAX_FLEET}"));
    }
    if s.min_idle > s.max_bots {
        return Err("min_idle cannot exceed max_bots".to_owned());
    }
    if s.per_user == 0 {
        return Err("per_user must be at least 1".to_owned());
    }
    Ok(())
}

pub async fn set_fleet(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<SetFleet>,
) -> Result<Json<Value>, ApiError> {
    user.require_admin()?;
    let current = state.fleet.settings().await?;
    let settings = FleetSettings {
        min_idle: body.min_idle.unwrap_or(current.min_idle),
        max_bots: body.max_bots.unwrap_or(current.max_bots),
        per_user: body.per_user.unwrap_or(current.per_user),
    };
    check_fleet(settings).map_err(ApiError::BadRequest)?;
    state.fleet.set_settings(settings).await?;
    tracing::info!(
        min_idle = settings.min_idle,
        max_bots = settings.max_bots,
        per_user = settings.per_user,
        by = %user.0.user_id,
        "fleet settings changed"
    );
    Ok(Json(json!({ "settings": settings })))
}
