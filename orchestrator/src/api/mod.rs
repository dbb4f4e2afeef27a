//! The HTTP API (axum): accounts, meetings, transcripts, operations endpoints.

mod accounts;
pub mod admin;
pub mod api_keys;
mod calendars;
pub mod client_addr;
mod deletion;
pub mod error;
mod events;
mod live;
mod meetings;
mod ops;
mod passwords;
pub mod recordings;
mod search;
mod session;
mod verification;
mod web;
mod webhooks;
mod zoom;

pub use error::ApiError;
pub use meetings::summary_view;
pub use session::AuthUser;

use crate::auth::LoginLimiter;
use crate::metrics::Metrics;
use crate::store::Store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<LoginLimiter>,
    /// Bots: the scheduler's queue and the fleet's size.
    pub fleet: Arc<crate::fleet::Fleet>,
    /// Zoom's webhook secret token; `None` turns the Zoom webhook off.
    pub zoom_webhook_secret: Option<Arc<str>>,
    /// Zoom accounts whose meetings' streams are served; empty serves any.
    pub zoom_accounts: Arc<[String]>,
    pub redis: Option<redis::aio::ConnectionManager>,
    /// Deletes meetings and what derives from them.
    pub deleter: Arc<crate::deletion::Deleter>,
    pub token_ttl: Duration,
    /// Live captions: the viewers' hubs on this replica.
    pub live: Arc<crate::live::Hubs>,
    /// Where users reach this server (`http://host:port`), for links the API hands out.
    pub public_url: Arc<str>,
    /// Where this server's own API answers from inside it (loopback), for the MCP tools.
    pub self_url: Arc<str>,
    /// Checks the addresses users give for the server to fetch.
    pub egress: parley_bot::egress::EgressGuard,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Bounds concurrent password hashing.
    pub hashing: Arc<crate::auth::password::HashingSlots>,
    /// How long after its meeting ends a captions link keeps working.
    pub share_link_ttl: Duration,
    /// Whose invitations count, and per-account quotas.
    pub mail_policy: Arc<crate::mail::policy::MailPolicy>,
    /// Hosts of the deployment's LiveKit servers: LiveKit links to others are refused.
    pub livekit_servers: Arc<[String]>,
    /// Account mail (address verification), and its sender.
    pub mailer: crate::mail::Mailer,
    pub mail_from: lettre::message::Mailbox,
    /// Where the bots' recordings are, to list and serve them.
    pub recordings: Option<parley_bot::connector::recorder::RecordingStore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The API. `/metrics` is served here only when it has no listener of its own
/// (`PARLEY_METRICS_LISTEN`), where users on the API's address cannot read it.
pub fn router(state: AppState, body_limit: usize, with_metrics: bool) -> Router {
    let router = if with_metrics {
        Router::new().route("/metrics", get(ops::metrics))
    } else {
        Router::new()
    };
    router
        .route("/register/user", post(accounts::register))
        .route("/register/login", post(accounts::login))
        .route("/logout", post(accounts::logout))
        .route("/logout/all", post(passwords::logout_all))
        .route("/me/sessions", get(passwords::sessions))
        .route(
            "/me/sessions/{id}",
            axum::routing::delete(passwords::end_session),
        )
        .route("/me/password", post(passwords::change))
        .route("/password/reset", post(passwords::request_reset))
        .route("/password/reset/confirm", post(passwords::confirm_reset))
        .route("/me", get(accounts::me).delete(deletion::delete_me))
        .route("/me/verification", post(verification::resend))
        .route("/verify", get(verification::verify))
        .route("/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/meetings", post(meetings::create).get(meetings::list))
        .route("/meetings/search", get(search::search))
        .route("/calendars", post(calendars::add).get(calendars::list))
        .route("/calendars/{id}", axum::routing::delete(calendars::remove))
        .route(
            "/meetings/{id}",
            get(meetings::get).delete(deletion::delete_meeting),
        )
        .route("/meetings/{id}/end", post(meetings::end))
        .route("/meetings/{id}/transcript", get(meetings::transcript))
        .route("/meetings/{id}/events", get(events::stream))
        .route("/meetings/{id}/summary", get(meetings::summary))
        .route("/meetings/{id}/recordings", get(recordings::list_route))
        .route(
            "/meetings/{id}/recordings/{name}",
            get(recordings::download_route),
        )
        .route(
            "/meetings/{id}/live",
            post(meetings::rotate_live_link)
                .patch(meetings::set_share_scope)
                .delete(meetings::revoke_live_link),
        )
        .route("/meeting/started", post(meetings::started))
        .route("/meeting/summary", get(meetings::summary_by_query))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}/role", put(admin::set_role))
        .route("/admin/users/{id}/disabled", put(admin::set_disabled))
        .route("/admin/fleet", get(admin::fleet).put(admin::set_fleet))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{id}", axum::routing::delete(webhooks::remove))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/webhooks/zoom", post(zoom::webhook))
        .merge(mcp_route(&state))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .merge(live::router())
        .merge(web::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

/// `/metrics` alone, for its own listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// `/mcp`: the MCP tools over streamable HTTP, for callers with a valid session or API key (the
/// tools' own API calls then check what that credential may do).
fn mcp_route(state: &AppState) -> Router<AppState> {
    let host = url::Url::parse(&state.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    match crate::mcp::http_service(&state.self_url, host.into_iter().collect()) {
        Ok(service) => Router::new().route(
            "/mcp",
            axum::routing::any_service(service)
                .layer(middleware::from_fn_with_state(state.clone(), mcp_caller)),
        ),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the MCP endpoint is off");
            Router::new()
        }
    }
}

async fn mcp_caller(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    match AuthUser::from_request_parts(&mut parts, &state).await {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(e) => e.into_response(),
    }
}

/// Logs each request by its route template, never the raw path or query (they can hold share
/// tokens and ids), and counts responses by status class.
async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics.http_status(status);
    tracing::info!(
        %method,
        route,
        status,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}
