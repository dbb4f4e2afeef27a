//! Sending mail: SMTP through lettre (`SMTP_URL`: `smtp://host:25`, `smtp://user:pass@host:587?tls=required`
//! for STARTTLS, `smtps://…:465` for TLS), or, in the embedded default, `.eml` files in an outbox
//! folder.

pub mod policy;
pub mod render;

use anyhow::Context;
use lettre::message::Message;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused it for good (5xx): retrying will not help.
    #[error("refused: {0}")]
    Permanent(String),
    /// Worth another try later: the server is down, busy or timed out.
    #[error("not delivered yet: {0}")]
    Transient(String),
}

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// `host:port`, for logs (never the credentials).
        server: String,
    },
    Outbox {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Mailer {
    pub fn smtp(url: &str) -> anyhow::Result<Self> {
        let server = url
            .split_once("://")
            .map(|(_, rest)| rest.rsplit('@').next().unwrap_or(rest))
            .map(|r| r.split(['/', '?']).next().unwrap_or(r).to_owned())
            .unwrap_or_default();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("SMTP_URL is not a valid smtp:// or smtps:// URL")?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(Self::Smtp { transport, server })
    }

    pub fn outbox(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the outbox {}", dir.display()))?;
        Ok(Self::Outbox {
            transport: AsyncFileTransport::new(&dir),
            dir,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { server, .. } => format!("SMTP server {server}"),
            Self::Outbox { dir, .. } => format!("outbox {}", dir.display()),
        }
    }

    /// Sends one message; returns where it went, for the log.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match self {
            Self::Smtp { transport, server } => match transport.send(message).await {
                Ok(_) => Ok(format!("SMTP server {server}")),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                Err(e) => Err(SendError::Transient(e.to_string())),
            },
            Self::Outbox { transport, dir } => match transport.send(message).await {
                Ok(id) => Ok(dir.join(format!("{id}.eml")).display().to_string()),
                Err(e) => Err(SendError::Transient(e.to_string())),
            },
        }
    }
}
