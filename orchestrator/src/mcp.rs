//! The MCP server: Parley's meetings as tools for AI assistants (the Model Context Protocol,
//! through its official Rust SDK, rmcp). Each tool is one call of Parley's own REST API made with
//! the caller's credential, so a tool may do exactly what that API key allows, checked by the
//! same code as any request. `parley mcp` serves the tools on stdio against a server's URL with
//! the key it is given; `POST /mcp` serves them over streamable HTTP from the server itself, with
//! the key each request carries.

use parley_shared::{MeetingId, Secret};
use reqwest::Method;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long one API call of a tool may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Whose credential the tools use.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The API key `parley mcp` was given.
    Key(Secret),
    /// The bearer token of each HTTP request (`POST /mcp`).
    PerRequest,
}

#[derive(Debug)]
struct Api {
    http: reqwest::Client,
    /// Where the REST API answers, without a trailing slash.
    base: String,
    credential: Credential,
}

#[derive(Debug, Clone)]
pub struct ParleyMcp {
    api: Arc<Api>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListMeetings {
    /// At most this many, newest first (1 to 200; default 20).
    pub limit: Option<u32>,
    /// Only meetings whose metadata holds all these pairs.
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MeetingRef {
    /// The meeting's id (a UUID, as `list_meetings` gives it).
    pub meeting_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchTranscripts {
    /// Words every returned line holds (case-insensitive), at most 8.
    pub query: String,
    /// At most this many lines (1 to 200; default 20).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendBot {
    /// The meeting's link (Zoom, Google Meet, Janus or LiveKit).
    pub url: String,
    /// The meeting's title (default "Meeting").
    pub title: Option<String>,
}

/// A tool's failure the assistant should read (the API refused, with its reason), as opposed to
/// a protocol error.
fn refusal(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn meeting_path(raw: &str, rest: &str) -> Result<String, CallToolResult> {
    let id = MeetingId::parse(raw.trim())
        .map_err(|_| refusal(format!("{raw:?} is not a meeting id (a UUID)")))?;
    Ok(format!("/meetings/{id}{rest}"))
}

#[tool_router]
impl ParleyMcp {
    pub fn new(base: &str, credential: Credential) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            // Only its own server's API: never anywhere a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            api: Arc::new(Api {
                http,
                base: base.trim_end_matches('/').to_owned(),
                credential,
            }),
            tool_router: Self::tool_router(),
        })
    }

    /// Calls the REST API as the caller: the answer's JSON, or the API's refusal as the tool's
    /// error result.
    async fn call(
        &self,
        ctx: &RequestContext<RoleServer>,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<Result<Value, CallToolResult>, ErrorData> {
        let token = match &self.api.credential {
            Credential::Key(key) => Some(key.expose().to_owned()),
            Credential::PerRequest => ctx
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.headers.get(axum::http::header::AUTHORIZATION))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned),
        };
        let Some(token) = token else {
            return Ok(Err(refusal(
                "no API key: send Authorization: Bearer pk_…".to_owned(),
            )));
        };
        let mut request = self
            .api
            .http
            .request(method, format!("{}{path}", self.api.base))
            .bearer_auth(token)
            .query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            ErrorData::internal_error(
                format!("Parley's API cannot be reached: {}", e.without_url()),
                None,
            )
        })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(Ok(answer))
        } else {
            let reason = answer["error"].as_str().unwrap_or("no reason given");
            Ok(Err(refusal(format!("Parley answered {status}: {reason}"))))
        }
    }

    /// The call's JSON as the tool's result.
    async fn json_result(
        &self,
        ctx: &RequestContext<RoleServer>,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(match self.call(ctx, method, path, query, body).await? {
            Ok(answer) => CallToolResult::success(vec![ContentBlock::json(answer)?]),
            Err(refused) => refused,
        })
    }

    /// A call on one meeting's route (`/meetings/{id}{rest}`), its JSON as the result.
    async fn on_meeting(
        &self,
        ctx: &RequestContext<RoleServer>,
        meeting_id: &str,
        rest: &str,
        method: Method,
        body: Option<Value>,
    ) -> Result<CallToolResult, ErrorData> {
        match meeting_path(meeting_id, rest) {
            Ok(path) => self.json_result(ctx, method, &path, &[], body).await,
            Err(refused) => Ok(refused),
        }
    }

    #[tool(
        description = "List the meetings you own or took part in, newest first: id, title, status, times, platform and metadata."
    )]
    async fn list_meetings(
        &self,
        Parameters(args): Parameters<ListMeetings>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut query = vec![("limit".to_owned(), args.limit.unwrap_or(20).to_string())];
        for (key, value) in args.metadata.unwrap_or_default() {
            query.push((format!("metadata.{key}"), value));
        }
        self.json_result(&ctx, Method::GET, "/meetings", &query, None)
            .await
    }

    #[tool(
        description = "A meeting's transcript: one line per final segment, `[mm:ss] Speaker: text`, every word under the name of the person who said it."
    )]
    async fn get_transcript(
        &self,
        Parameters(args): Parameters<MeetingRef>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = match meeting_path(&args.meeting_id, "/transcript") {
            Ok(path) => path,
            Err(refused) => return Ok(refused),
        };
        let query = [("format".to_owned(), "json".to_owned())];
        let answer = match self.call(&ctx, Method::GET, &path, &query, None).await? {
            Ok(answer) => answer,
            Err(refused) => return Ok(refused),
        };
        let lines: Vec<String> = answer["segments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let seconds = s["start_ms"].as_u64().unwrap_or(0) / 1000;
                format!(
                    "[{:02}:{:02}] {}: {}",
                    seconds / 60,
                    seconds % 60,
                    s["speaker"].as_str().unwrap_or("?"),
                    s["text"].as_str().unwrap_or("").trim()
                )
            })
            .collect();
        let text = if lines.is_empty() {
            "The transcript is empty.".to_owned()
        } else {
            lines.join("\n")
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(
        description = "A meeting's summary once it is written (after the meeting): the summary text, highlights, action items with owners and deadlines, and open questions."
    )]
    async fn get_summary(
        &self,
        Parameters(args): Parameters<MeetingRef>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.on_meeting(&ctx, &args.meeting_id, "/summary", Method::GET, None)
            .await
    }

    #[tool(
        description = "Search the transcripts of your meetings for lines holding all the given words (case-insensitive): meeting, speaker, time and text of each."
    )]
    async fn search_transcripts(
        &self,
        Parameters(args): Parameters<SearchTranscripts>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = [
            ("q".to_owned(), args.query),
            ("limit".to_owned(), args.limit.unwrap_or(20).to_string()),
        ];
        self.json_result(&ctx, Method::GET, "/meetings/search", &query, None)
            .await
    }

    #[tool(
        description = "Send a bot to a meeting link now: it joins, transcribes each participant live and summarises the meeting afterwards. Returns the new meeting."
    )]
    async fn send_bot(
        &self,
        Parameters(args): Parameters<SendBot>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut body = json!({ "url": args.url });
        if let Some(title) = args.title {
            body["title"] = json!(title);
        }
        self.json_result(&ctx, Method::POST, "/meeting/started", &[], Some(body))
            .await
    }

    #[tool(description = "End a meeting: its bot leaves, and the summary is written and mailed.")]
    async fn end_meeting(
        &self,
        Parameters(args): Parameters<MeetingRef>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = Some(json!({}));
        self.on_meeting(&ctx, &args.meeting_id, "/end", Method::POST, body)
            .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ParleyMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("parley", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Parley's meetings: list them, read transcripts (each word under its speaker's \
                 name) and summaries with action items, search transcripts, send a bot to a \
                 meeting link, end a meeting.",
            )
    }
}

/// The streamable HTTP service `POST /mcp` is, calling the API at `base` with each request's
/// bearer token. Stateless (no MCP sessions to keep across replicas), JSON answers; `hosts` are
/// the `Host` values it answers to besides loopback.
pub fn http_service(
    base: &str,
    hosts: Vec<String>,
) -> anyhow::Result<
    rmcp::transport::streamable_http_server::StreamableHttpService<
        ParleyMcp,
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    >,
> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let server = ParleyMcp::new(base, Credential::PerRequest)?;
    let mut allowed = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    allowed.extend(hosts);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(allowed);
    Ok(StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::default(),
        config,
    ))
}
