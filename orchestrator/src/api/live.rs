//! `GET /live/{token}` (the captions page), `GET /live/{token}/ws` (its socket) and the page's
//! assets. An unknown, revoked or expired token (`PARLEY_SHARE_LINK_DAYS` after the meeting
//! ended) is 404 for all of them. The summary and recordings are 403 unless the owner chose to
//! share them ([`ShareScope`]): the link travels to anyone a participant forwards it to.

use super::{ApiError, AppState, recordings};
use crate::auth::ShareToken;
use crate::clock::now_ms;
use crate::live::{Cursor, share_link, viewer};
use crate::store::{Meeting, ShareScope};
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;

const PAGE: &str = include_str!("../../assets/live/index.html");
const SCRIPT: &str = include_str!("../../assets/live/live.js");
const STYLE: &str = include_str!("../../assets/live/live.css");
/// The caption list, shared with the web app's meeting page.
const CAPTIONS: &str = include_str!("../../assets/live/captions.js");

/// The page loads nothing but its own assets and talks only to its own origin; the token in its
/// address must not leak through a Referer.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; media-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/live/assets/live.js", get(script))
        .route("/live/assets/live.css", get(style))
        .route("/live/assets/captions.js", get(captions))
        .route("/live/{token}", get(page))
        .route("/live/{token}/ws", get(socket))
        .route("/live/{token}/summary", get(summary))
        .route("/live/{token}/recordings/{name}", get(recording))
}

async fn open(state: &AppState, raw: &str) -> Result<(ShareToken, Meeting), ApiError> {
    const GONE: ApiError = ApiError::NotFound("this captions link is not valid");
    let token = ShareToken::parse(raw).ok_or(GONE)?;
    let meeting = state
        .store
        .meeting_by_share_token(&token)
        .await?
        .ok_or(GONE)?;
    let expired = meeting
        .end_time_ms
        .is_some_and(|end| end + state.share_link_ttl.as_millis() as u64 <= now_ms());
    if expired {
        return Err(GONE);
    }
    Ok((token, meeting))
}

fn shared(meeting: &Meeting, needs: ShareScope) -> Result<(), ApiError> {
    if meeting.share_scope >= needs {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the meeting's owner shares live captions and the transcript only on this link",
        ))
    }
}

pub(super) fn secured(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn page(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    match open(&state, &raw).await {
        Ok((_, meeting)) => {
            let html = PAGE.replace("{{TITLE}}", &escape_html(&meeting.title));
            secured(
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
                "no-store",
            )
        }
        Err(ApiError::NotFound(_)) => secured(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                NOT_FOUND_PAGE,
            )
                .into_response(),
            "no-store",
        ),
        Err(e) => e.into_response(),
    }
}

const NOT_FOUND_PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Link not valid</title>\
<main><h1>This captions link is not valid</h1><p>It may have been turned off by the meeting's owner. \
Ask them for a new link.</p></main></html>";

#[derive(Deserialize)]
struct SocketQuery {
    after: Option<String>,
}

async fn socket(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (token, meeting) = open(&state, &raw).await?;
    // A cursor the server never issued is treated as none: the viewer gets a snapshot.
    let after = query.after.as_deref().and_then(Cursor::parse);
    let hubs = Arc::clone(&state.live);
    // Viewers send nothing and receive small frames: small buffers keep a viewer's cost low.
    Ok(upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(4096)
        .on_upgrade(move |socket| viewer::serve(socket, hubs, meeting, token, after)))
}

/// The meeting's summary for the page, once the meeting ended and it was written.
async fn summary(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (token, meeting) = open(&state, &raw).await?;
    shared(&meeting, ShareScope::Summary)?;
    let summary = state
        .store
        .summary(meeting.meeting_id)
        .await?
        .ok_or(ApiError::NotFound(
            "no summary yet: it is written when the meeting ends",
        ))?;
    let mut view = crate::api::summary_view(meeting.meeting_id, summary);
    let listed = if meeting.share_scope >= ShareScope::All {
        let base = format!("{}/recordings/", share_link(&state.public_url, &token));
        recordings::list(&state, &meeting, &base).await?
    } else {
        Vec::new()
    };
    view["recordings"] = serde_json::to_value(listed).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(secured(axum::Json(view).into_response(), "no-store"))
}

async fn recording(
    State(state): State<AppState>,
    Path((raw, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, meeting) = open(&state, &raw).await?;
    shared(&meeting, ShareScope::All)?;
    recordings::download(&state, &meeting, &name).await
}

/// One of the pages' own files.
pub(super) fn asset(kind: &'static str, body: &'static str, cache: &'static str) -> Response {
    secured(
        ([(header::CONTENT_TYPE, kind)], body).into_response(),
        cache,
    )
}

pub(super) const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
pub(super) const CSS: &str = "text/css; charset=utf-8";

async fn script() -> Response {
    asset(JAVASCRIPT, SCRIPT, "public, max-age=300")
}

async fn style() -> Response {
    asset(CSS, STYLE, "public, max-age=300")
}

async fn captions() -> Response {
    asset(JAVASCRIPT, CAPTIONS, "public, max-age=300")
}

pub(super) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_escaped_into_the_page() {
        assert_eq!(
            escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert!(
            PAGE.contains("{{TITLE}}"),
            "the page has the title placeholder"
        );
    }
}
