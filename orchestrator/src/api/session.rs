//! The authenticated caller: a bearer token resolved to a live session and its user.

use super::{ApiError, AppState};
use crate::auth::BearerToken;
use crate::clock::now_ms;
use crate::store::{Role, User};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// The request's well-formed bearer token.
fn bearer(parts: &Parts) -> Result<BearerToken, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(BearerToken::from_header)
        .ok_or(ApiError::Unauthorized)
}

#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl AuthUser {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role"))
        }
    }

    /// Anything that makes the server act for the account (bots, calendar fetches, mail) waits
    /// until it proved its address.
    pub fn require_verified(&self) -> Result<(), ApiError> {
        if self.0.email_verified {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "verify your address first: follow the link mailed to you (POST /me/verification sends a new one)",
            ))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let user_id = state
            .store
            .session_user(token.hash().as_str(), now_ms())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let user = state
            .store
            .user(user_id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(user))
    }
}

/// The bearer token itself, for logout.
#[derive(Debug)]
pub struct RawToken(pub BearerToken);

impl FromRequestParts<AppState> for RawToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        bearer(parts).map(Self)
    }
}
