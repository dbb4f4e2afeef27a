//! Admin-only routes: accounts and roles.

use super::error::ApiJson;
use super::{ApiError, AppState, AuthUser};
use crate::store::Role;
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
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such user"))?;
    if !state.store.set_role(id, role).await? {
        return Err(ApiError::NotFound("no such user"));
    }
    tracing::info!(user_id = %id, role = role.as_str(), by = %user.0.user_id, "role changed");
    Ok(Json(json!({ "user_id": id, "role": role })))
}
