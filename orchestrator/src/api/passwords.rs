//! Passwords and sessions an account controls: `POST /me/password` (change it; every other
//! session ends), `POST /logout/all` (end every session), `GET /me/sessions` and
//! `DELETE /me/sessions/{id}` (list them, end one), `POST /password/reset` (mail a reset
//! link; answers the same whether the address has an account) and `POST /password/reset/confirm`
//! (set a new password with the link's token; every session ends).

use super::accounts::{hash_password, rfc3339};
use super::client_addr::ClientAddr;
use super::error::ApiJson;
use super::session::RawToken;
use super::verification::{new_token, send};
use super::{ApiError, AppState, AuthUser};
use crate::auth::{BearerToken, is_lower_hex, password};
use crate::clock::now_ms;
use crate::store::{SESSION_ID_LEN, TokenPurpose};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parley_shared::EmailAddress;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a mailed reset link works.
const RESET_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

pub async fn change(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    user: AuthUser,
    RawToken(token): RawToken,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    password::check_policy(&body.new_password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let wrong = "the current password is not right";
    confirm(&state, client, &user, body.current_password, wrong).await?;
    let hash = hash_password(&state, body.new_password).await?;
    state
        .store
        .set_password(user.0.user_id, &hash, Some(token.hash().as_str()))
        .await?;
    tracing::info!(user_id = %user.0.user_id, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that the signed-in person knows the account's password, before a change a stolen
/// session must not make alone. A stolen session must not be a way to guess the password
/// either: the same limits as logins.
pub(super) async fn confirm(
    state: &AppState,
    client: std::net::IpAddr,
    user: &AuthUser,
    given: String,
    wrong: &'static str,
) -> Result<(), ApiError> {
    let account = user.0.email.as_str().to_owned();
    if let Some(wait) = state.limiter.check(&account, client, Instant::now()) {
        return Err(ApiError::TooManyRequests(wait));
    }
    let credentials = state.store.user_credentials(&user.0.email).await?;
    let matches = state
        .hashing
        .run(move || credentials.is_some_and(|(_, hash)| password::verify(&given, &hash)))
        .await?;
    if !matches {
        state
            .limiter
            .record_failure(&account, client, Instant::now());
        return Err(ApiError::Forbidden(wrong));
    }
    Ok(())
}

pub async fn logout_all(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Value>, ApiError> {
    let ended = state.store.delete_sessions_of(user.0.user_id).await?;
    tracing::info!(user_id = %user.0.user_id, ended, "logged out everywhere");
    Ok(Json(json!({ "sessions_ended": ended })))
}

/// The account's live sessions, the caller's own marked `current`.
pub async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
    RawToken(token): RawToken,
) -> Result<Json<Value>, ApiError> {
    let own = token.hash();
    let sessions: Vec<Value> = state
        .store
        .sessions_of(user.0.user_id, now_ms())
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "created_at": rfc3339(s.created_at_ms),
                "expires_at": rfc3339(s.expires_at_ms),
                "current": own.as_str().starts_with(&s.id),
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// Ends one of the account's sessions (a browser left signed in elsewhere).
pub async fn end_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    const NONE: ApiError = ApiError::NotFound("no such session");
    if !is_lower_hex(&id, SESSION_ID_LEN)
        || !state.store.delete_session_of(user.0.user_id, &id).await?
    {
        return Err(NONE);
    }
    tracing::info!(user_id = %user.0.user_id, "session ended by its owner");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestReset {
    email: String,
}

pub async fn request_reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<RequestReset>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Mail to any address a stranger names: counted like sign-ups.
    if let Some(wait) = state.limiter.check_signup(client, Instant::now()) {
        return Err(ApiError::TooManyRequests(wait));
    }
    state.limiter.record_signup(client, Instant::now());
    let account = match EmailAddress::parse(&body.email) {
        Ok(email) => state.store.user_credentials(&email).await?.map(|(u, _)| u),
        Err(_) => None,
    };
    if let Some(user) = account.filter(|u| !u.disabled) {
        let token = new_token(&state, &user, TokenPurpose::Reset, RESET_LIFETIME).await?;
        send(
            &state,
            &user,
            "Reset your Parley password",
            format!(
                "Hello {},\n\nSomeone asked to reset the password of your Parley account. If it \
                 was you, set a new one with this token within an hour (it works once):\n\n{}\n\n\
                 Paste it at {}/#/forgot, or POST {}/password/reset/confirm \
                 {{\"token\": \"…\", \"new_password\": \"…\"}}\n\n\
                 Every session of the account ends when the password changes. If it was not you, \
                 ignore this mail: your password stays as it is.\n",
                user.name,
                token.expose(),
                state.public_url,
                state.public_url
            ),
        )?;
    }
    // The same answer for every address: this never tells which have accounts.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "if the address has an account, a reset link was mailed to it" })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmReset {
    token: String,
    new_password: String,
}

pub async fn confirm_reset(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ConfirmReset>,
) -> Result<StatusCode, ApiError> {
    let invalid = || ApiError::BadRequest("this reset token is invalid or has expired".to_owned());
    let token = BearerToken::parse(&body.token).ok_or_else(invalid)?;
    password::check_policy(&body.new_password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hash = hash_password(&state, body.new_password).await?;
    let user_id = state
        .store
        .reset_password(token.hash().as_str(), &hash, now_ms())
        .await?
        .ok_or_else(invalid)?;
    tracing::info!(%user_id, "password reset; every session ended");
    Ok(StatusCode::NO_CONTENT)
}
