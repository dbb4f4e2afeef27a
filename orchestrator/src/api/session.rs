//! The authenticated caller: a bearer token resolved to a live session, or to an API key and the
//! scopes it was given, and its user. A browser of the web app holds its session token in an
//! HttpOnly cookie instead; its writes must carry the session's CSRF token and its requests may
//! not come from another origin.

use super::{ApiError, AppState};
use crate::auth::{BearerToken, Scope, Scopes, TokenKind};
use crate::clock::now_ms;
use crate::store::{Role, User};
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

/// The cookie the web app's session token travels in.
pub const SESSION_COOKIE: &str = "parley_session";
/// The header carrying a cookie session's CSRF token on writes.
const CSRF_HEADER: &str = "x-csrf-token";

/// The request's well-formed bearer token: from `Authorization`, else from the session cookie
/// (then checked as a browser's request: [`browser_checks`]).
fn bearer(parts: &Parts) -> Result<BearerToken, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        return header
            .to_str()
            .ok()
            .and_then(BearerToken::from_header)
            .ok_or(ApiError::Unauthorized);
    }
    cookie_session(parts)
}

/// The session token of the request's cookie, once the request passes as its browser's own
/// ([`browser_checks`]).
fn cookie_session(parts: &Parts) -> Result<BearerToken, ApiError> {
    let token = session_cookie(&parts.headers).ok_or(ApiError::Unauthorized)?;
    browser_checks(parts, &token)?;
    Ok(token)
}

/// The session token in the request's cookies, if it holds a well-formed one.
fn session_cookie(headers: &HeaderMap) -> Option<BearerToken> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| BearerToken::parse(value))
}

/// A cookie goes with every request the browser makes to this server, whichever page asked for
/// it: a request from another origin is refused, and a write must show the CSRF token that only
/// this origin's pages can read (`GET /session`).
fn browser_checks(parts: &Parts, token: &BearerToken) -> Result<(), ApiError> {
    if let Some(origin) = parts.headers.get(ORIGIN) {
        let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok());
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .zip(host)
            .is_some_and(|(o, host)| {
                let authority = match o.port() {
                    Some(port) => format!("{}:{port}", o.host_str().unwrap_or_default()),
                    None => o.host_str().unwrap_or_default().to_owned(),
                };
                authority.eq_ignore_ascii_case(host)
            });
        if !same {
            return Err(ApiError::Forbidden(
                "a signed-in browser's requests must come from this server's own pages",
            ));
        }
    }
    let reads = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let shown = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !reads && !crate::auth::constant_time_eq(shown, &token.csrf_token()) {
        return Err(ApiError::Forbidden(
            "a write with the session cookie needs the session's X-CSRF-Token header",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuthUser(pub User, Access);

/// How the caller signed in.
#[derive(Debug, Clone)]
enum Access {
    /// A person: everything the account may do.
    Session,
    /// A program: the key's scopes.
    Key(Scopes),
}

/// The scope an API key needs for a route, by method; `None`: the route is for people signed in
/// (accounts, sessions, keys themselves, calendars, administration).
fn scope_for(method: &Method, route: &str) -> Option<Scope> {
    let reads = *method == Method::GET || *method == Method::HEAD;
    match route {
        "/meeting/started" | "/meetings/{id}/end" => Some(Scope::BotsWrite),
        "/meeting/summary" => Some(Scope::MeetingsRead),
        // Each tool's own API call needs that call's scope.
        "/mcp" => Some(Scope::MeetingsRead),
        "/webhooks" => Some(Scope::WebhooksWrite),
        r if r.starts_with("/webhooks/") && r != "/webhooks/zoom" => Some(Scope::WebhooksWrite),
        r if r == "/meetings" || r.starts_with("/meetings/") => Some(if reads {
            Scope::MeetingsRead
        } else {
            Scope::MeetingsWrite
        }),
        _ => None,
    }
}

fn missing(scope: Scope) -> ApiError {
    ApiError::Forbidden(match scope {
        Scope::MeetingsRead => "this API key lacks the meetings:read scope",
        Scope::MeetingsWrite => "this API key lacks the meetings:write scope",
        Scope::BotsWrite => "this API key lacks the bots:write scope",
        Scope::WebhooksWrite => "this API key lacks the webhooks:write scope",
    })
}

impl AuthUser {
    /// For a need the route alone does not tell (a meeting made with a link also sends a bot).
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.1 {
            Access::Key(scopes) if !scopes.contains(scope) => Err(missing(scope)),
            _ => Ok(()),
        }
    }

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
        let now = now_ms();
        let (user_id, access) = match token.kind() {
            TokenKind::Session => {
                let user_id = state
                    .store
                    .session_user(token.hash().as_str(), now)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                (user_id, Access::Session)
            }
            TokenKind::ApiKey => {
                let grant = state
                    .store
                    .api_key_grant(token.hash().as_str(), now)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                let route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map_or("", MatchedPath::as_str);
                let needed = scope_for(&parts.method, route).ok_or(ApiError::Forbidden(
                    "this route is for people signed in, not for API keys",
                ))?;
                if !grant.scopes.contains(needed) {
                    return Err(missing(needed));
                }
                if let Err(e) = state.store.touch_api_key(&grant, now).await {
                    tracing::warn!(error = %e, "cannot record an API key's last use");
                }
                (grant.user_id, Access::Key(grant.scopes))
            }
        };
        let user = state
            .store
            .user(user_id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(user, access))
    }
}

/// The browser's cookie session alone (`/session`): a bearer token in `Authorization` is not a
/// browser's session, and ends only through `/logout`.
#[derive(Debug)]
pub struct CookieSession(pub BearerToken);

impl FromRequestParts<AppState> for CookieSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        cookie_session(parts).map(Self)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reach_meetings_bots_and_webhooks_only() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(scope_for(&get, "/meetings"), Some(Scope::MeetingsRead));
        assert_eq!(
            scope_for(&get, "/meetings/{id}/transcript"),
            Some(Scope::MeetingsRead)
        );
        assert_eq!(scope_for(&post, "/meetings"), Some(Scope::MeetingsWrite));
        assert_eq!(
            scope_for(&Method::DELETE, "/meetings/{id}"),
            Some(Scope::MeetingsWrite)
        );
        assert_eq!(
            scope_for(&post, "/meetings/{id}/end"),
            Some(Scope::BotsWrite)
        );
        assert_eq!(scope_for(&post, "/meeting/started"), Some(Scope::BotsWrite));
        assert_eq!(scope_for(&post, "/webhooks"), Some(Scope::WebhooksWrite));
        for people_only in [
            "/api-keys",
            "/api-keys/{id}",
            "/me",
            "/me/password",
            "/logout",
            "/calendars",
            "/admin/users",
            "/admin/fleet",
            "/webhooks/zoom",
            "",
        ] {
            assert_eq!(scope_for(&get, people_only), None, "{people_only}");
            assert_eq!(scope_for(&post, people_only), None, "{people_only}");
        }
    }
}
