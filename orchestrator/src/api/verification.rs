//! Address verification: a new account is mailed a link with a token that expires; following
//! it proves the address, and only then do invitations to that address show meetings.
//! `GET /verify?token=…` (the link), `POST /me/verification` (mail a new link). The mail
//! helpers here serve password reset too.

use super::client_addr::ClientAddr;
use super::error::ApiQuery;
use super::{ApiError, AppState, AuthUser};
use crate::auth::BearerToken;
use crate::clock::now_ms;
use crate::store::{TokenPurpose, User};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lettre::message::Message;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a mailed link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Keeps a new token for the account and mails its link. The mail is sent in the background:
/// a slow or failing mail server does not hold the request, and a lost mail is replaced by
/// asking for a new link.
pub async fn mail_link(state: &AppState, user: &User) -> Result<(), ApiError> {
    let token = new_token(state, user, TokenPurpose::Verify, LINK_LIFETIME).await?;
    let link = format!("{}/verify?token={}", state.public_url, token.expose());
    send(
        state,
        user,
        "Verify your address for Parley",
        format!(
            "Hello {},\n\nOpen this link to verify your address; until then, meetings you are \
             invited to stay hidden from your account:\n\n{link}\n\nThe link works once, for {} \
             hours. If you did not sign up for Parley, ignore this mail.\n",
            user.name,
            LINK_LIFETIME.as_secs() / 3600
        ),
    )
}

/// A new single-use token for the account, kept (as a hash) until it expires.
pub async fn new_token(
    state: &AppState,
    user: &User,
    purpose: TokenPurpose,
    lifetime: Duration,
) -> Result<BearerToken, ApiError> {
    let token = BearerToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let expires = now_ms() + lifetime.as_millis() as u64;
    state
        .store
        .add_account_token(user.user_id, token.hash().as_str(), purpose, expires)
        .await?;
    Ok(token)
}

/// Mails the account in the background (the body holds a token: it is never logged).
pub fn send(state: &AppState, user: &User, subject: &str, body: String) -> Result<(), ApiError> {
    let to = user
        .email
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| ApiError::Internal(e.into()))?;
    let message = Message::builder()
        .from(state.mail_from.clone())
        .to(to)
        .subject(subject)
        .body(body)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mailer = state.mailer.clone();
    let user_id = user.user_id;
    let what = subject.to_owned();
    tokio::spawn(async move {
        match mailer.send(message).await {
            Ok(via) => tracing::info!(%user_id, via, what, "account mail sent"),
            Err(e) => tracing::warn!(%user_id, error = %e, what, "account mail not sent"),
        }
    });
    Ok(())
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    token: String,
}

pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> Response {
    // The link is opened in a browser more often than by a program: a page for the one, JSON for
    // the other.
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    match verified(&state, &q).await {
        Ok(()) if browser => super::web::notice_page(
            StatusCode::OK,
            "Address verified",
            "Thank you: your address is verified. Your bots, calendars and invitations work now.",
        ),
        Ok(()) => Json(json!({ "verified": true })).into_response(),
        Err(ApiError::BadRequest(reason)) if browser => super::web::notice_page(
            StatusCode::BAD_REQUEST,
            "Link not valid",
            &format!("{reason}. Sign in and ask for a new link on your meetings page."),
        ),
        Err(e) => e.into_response(),
    }
}

async fn verified(state: &AppState, q: &VerifyQuery) -> Result<(), ApiError> {
    let invalid = || ApiError::BadRequest("this link is invalid or has expired".to_owned());
    let token = BearerToken::parse(&q.token).ok_or_else(invalid)?;
    let user_id = state
        .store
        .verify_email(token.hash().as_str(), now_ms())
        .await?
        .ok_or_else(invalid)?;
    tracing::info!(%user_id, "address verified");
    Ok(())
}

pub async fn resend(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    user: AuthUser,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if user.0.email_verified {
        return Ok((StatusCode::OK, Json(json!({ "verified": true }))));
    }
    // Mail to an address nobody has proven is theirs: counted like sign-ups, so an account
    // cannot be made into a mail cannon.
    if let Some(wait) = state.limiter.check_signup(client, Instant::now()) {
        return Err(ApiError::TooManyRequests(wait));
    }
    state.limiter.record_signup(client, Instant::now());
    mail_link(&state, &user.0).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "verified": false }))))
}
