//! The web app: `GET /` (the page) and its assets under `/app/`, and the browser's session:
//! `POST /session` signs in and sets the session cookie (HttpOnly, SameSite=Lax, Secure when the
//! server's public address is https), `GET /session` tells the page who is signed in and the
//! CSRF token its writes carry, `DELETE /session` signs out. Everything else the page does is the
//! JSON API, authenticated by the cookie (`session.rs`).

use super::accounts::{Login, sign_in, user_view};
use super::client_addr::ClientAddr;
use super::error::ApiJson;
use super::live::{CSS, JAVASCRIPT, asset, escape_html, secured};
use super::session::{CookieSession, SESSION_COOKIE};
use super::{ApiError, AppState, AuthUser};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

const PAGE: &str = include_str!("../../assets/app/index.html");
const SCRIPT: &str = include_str!("../../assets/app/app.js");
const STYLE: &str = include_str!("../../assets/app/app.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/app/app.js", get(script))
        .route("/app/app.css", get(style))
        .route("/session", get(current).post(create).delete(end))
}

async fn page() -> Response {
    secured(
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response(),
        "no-cache",
    )
}

async fn script() -> Response {
    asset(JAVASCRIPT, SCRIPT, "no-cache")
}

async fn style() -> Response {
    asset(CSS, STYLE, "no-cache")
}

/// The cookie holding `value` for `max_age` seconds (0 removes it).
fn cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn create(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let session = sign_in(&state, ip, body).await?;
    let max_age = state.token_ttl.as_secs();
    let mut response = Json(json!({
        "csrf_token": session.token.csrf_token(),
        "user": user_view(&session.user),
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, session.token.expose(), max_age),
    );
    no_store(&mut response);
    Ok(response)
}

async fn current(user: AuthUser, CookieSession(token): CookieSession) -> Response {
    let mut response = Json(json!({
        "csrf_token": token.csrf_token(),
        "user": user_view(&user.0),
    }))
    .into_response();
    no_store(&mut response);
    response
}

async fn end(
    State(state): State<AppState>,
    _user: AuthUser,
    CookieSession(token): CookieSession,
) -> Result<Response, ApiError> {
    state.store.delete_session(token.hash().as_str()).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}

/// A short page for a browser that followed a link from a mail (`GET /verify`), in the app's
/// style, with a way into the app.
pub fn notice_page(status: StatusCode, heading: &str, text: &str) -> Response {
    let (heading, text) = (escape_html(heading), escape_html(text));
    let html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/app/app.css\"><title>{heading} · Parley</title>\
         <main class=\"card narrow\"><h1>{heading}</h1><p>{text}</p>\
         <p><a href=\"/#/signin\">Continue to Parley</a></p></main></html>"
    );
    secured(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        "no-store",
    )
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
