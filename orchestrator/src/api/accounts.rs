//! `POST /register/user`, `POST /register/login`, `POST /logout`, `GET /me`.
//!
//! Registration and login never tell whether an address has an account: registering a taken
//! address answers like a success (with an id that logs nobody in), and every failed login says
//! the same thing after the same amount of work.

use super::client_addr::ClientAddr;
use super::error::ApiJson;
use super::session::RawToken;
use super::{ApiError, AppState, AuthUser};
use crate::auth::BearerToken;
use crate::auth::password::{self, SlotError};
use crate::clock::now_ms;
use crate::store::{Role, User};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use parley_shared::EmailAddress;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    email: String,
    name: String,
    password: String,
}

pub const MAX_NAME_LEN: usize = 200;

pub fn check_name(name: &str, what: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters without control characters"
        )));
    }
    Ok(name.to_owned())
}

impl From<SlotError> for ApiError {
    fn from(e: SlotError) -> Self {
        match e {
            SlotError::Busy => Self::Unavailable(e.to_string()),
            SlotError::Failed(_) => Self::Internal(e.into()),
        }
    }
}

pub(super) async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    state
        .hashing
        .run(move || password::hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.into()))
}

pub async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<Register>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Some(wait) = state.limiter.check_signup(client, Instant::now()) {
        return Err(ApiError::TooManyRequests(wait));
    }
    let email =
        EmailAddress::parse(&body.email).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let name = check_name(&body.name, "name")?;
    password::check_policy(&body.password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state.limiter.record_signup(client, Instant::now());
    let hash = hash_password(&state, body.password).await?;
    let user_id = match state
        .store
        .create_user(&email, &name, &hash, Role::User, now_ms())
        .await?
    {
        Some(user) => {
            tracing::info!(user_id = %user.user_id, role = user.role.as_str(), "account created");
            super::verification::mail_link(&state, &user).await?;
            user.user_id
        }
        None => {
            tracing::info!("registration for an address that already has an account");
            Uuid::new_v4()
        }
    };
    Ok((StatusCode::CREATED, Json(json!({ "user_id": user_id }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

#[derive(Serialize)]
pub struct LoginReply {
    token: String,
    expires_at: String,
    user_id: Uuid,
    role: &'static str,
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<LoginReply>, ApiError> {
    let session = sign_in(&state, ip, body).await?;
    Ok(Json(LoginReply {
        token: session.token.expose().to_owned(),
        expires_at: rfc3339(session.expires_ms),
        user_id: session.user.user_id,
        role: session.user.role.as_str(),
    }))
}

/// A new session, for the API's bearer token or the web app's cookie.
pub struct NewSession {
    pub token: BearerToken,
    pub expires_ms: u64,
    pub user: User,
}

/// Checks a password within the login limits and opens a session.
pub async fn sign_in(
    state: &AppState,
    ip: std::net::IpAddr,
    body: Login,
) -> Result<NewSession, ApiError> {
    let account = body.email.trim().to_lowercase();
    if let Some(wait) = state.limiter.check(&account, ip, Instant::now()) {
        state.metrics.logins_throttled.fetch_add(1, Relaxed);
        return Err(ApiError::TooManyRequests(wait));
    }
    let credentials = match EmailAddress::parse(&body.email) {
        Ok(email) => state.store.user_credentials(&email).await?,
        Err(_) => None,
    };
    let password = body.password;
    let user = state
        .hashing
        .run(move || match credentials {
            Some((user, hash)) => password::verify(&password, &hash).then_some(user),
            None => {
                password::verify_against_dummy(&password);
                None
            }
        })
        .await?;
    let Some(user) = user else {
        state.limiter.record_failure(&account, ip, Instant::now());
        state.metrics.logins_failed.fetch_add(1, Relaxed);
        return Err(ApiError::Unauthorized);
    };
    if user.disabled {
        return Err(ApiError::Forbidden("this account is disabled"));
    }
    state.limiter.record_success(&account);
    let token = BearerToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let now = now_ms();
    let expires_ms = now + state.token_ttl.as_millis() as u64;
    state
        .store
        .create_session(token.hash().as_str(), user.user_id, now, expires_ms)
        .await?;
    tracing::info!(user_id = %user.user_id, "login");
    Ok(NewSession {
        token,
        expires_ms,
        user,
    })
}

pub async fn logout(
    State(state): State<AppState>,
    _user: AuthUser,
    RawToken(token): RawToken,
) -> Result<StatusCode, ApiError> {
    state.store.delete_session(token.hash().as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(user: AuthUser) -> Json<Value> {
    Json(user_view(&user.0))
}

/// An account as its owner sees it.
pub fn user_view(u: &User) -> Value {
    json!({
        "user_id": u.user_id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "email_verified": u.email_verified,
        "disabled": u.disabled,
        "created_at": rfc3339(u.created_at_ms),
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 3339 to milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Result<u64, ApiError> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        ApiError::BadRequest(format!(
            "start_time must be an RFC 3339 time such as 2026-11-25T15:00:00Z, not {s:?}"
        ))
    })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::BadRequest("start_time is before 1970".to_owned()))
}
