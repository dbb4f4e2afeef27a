//! `parley mcp`: the MCP tools on stdio, for an assistant that starts Parley's MCP server as a
//! program (Claude Desktop, an IDE); every tool calls a Parley server's API with an API key.

use crate::mcp::{Credential, ParleyMcp};
use clap::Args;
use parley_shared::Secret;
use rmcp::ServiceExt;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The Parley server whose API the tools call.
    #[arg(long, env = "PARLEY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key (`pk_…`, from POST /api-keys): the tools may do what its scopes allow
    /// (meetings:read to list, read and search; bots:write and meetings:write to send a bot or
    /// end a meeting).
    #[arg(long, env = "PARLEY_API_KEY", hide_env_values = true)]
    pub api_key: String,
}

pub async fn run(args: McpArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(&args.url)
        .map_err(|e| anyhow::anyhow!("--url {:?} is not a URL: {e}", args.url))?;
    if !args.api_key.starts_with("pk_") {
        anyhow::bail!("--api-key must be an API key (pk_…): make one with POST /api-keys");
    }
    let server = ParleyMcp::new(url.as_str(), Credential::Key(Secret::new(args.api_key)))?;
    // stdout carries the protocol; logs go to stderr.
    tracing::info!(url = %url, "MCP server on stdio");
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("the MCP client did not start a session: {e}"))?;
    running.waiting().await?;
    Ok(())
}
