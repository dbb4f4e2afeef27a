//! Server configuration, validated once at start-up. Every setting has a flag and an environment
//! variable; with none set, `parley serve` runs the embedded default.

use crate::auth::rate_limit::Limits;
pub use crate::fleet::config::FleetConfig;
use parley_bot::config::BotConfig;
pub use parley_shared::Secret;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Postgres in production; `None` means SQLite in `data_dir`.
    pub database_url: Option<Secret>,
    /// Redis Streams bus; `None` means the in-process bus.
    pub redis_url: Option<Secret>,
    pub events_stream: String,
    /// This replica's name in the consumer group.
    pub consumer: String,
    pub claim_idle: Duration,
    pub token_ttl: Duration,
    pub body_limit: usize,
    pub login_limits: Limits,
    /// Base of the links handed out; `None` derives it from the listening address.
    pub public_url: Option<String>,
    /// Whether bots post the live captions link to the meeting chat (where there is one).
    pub chat_link: bool,
    /// How long after its meeting ends a captions link keeps working.
    pub share_link_ttl: Duration,
    /// SMTP server for summary emails; `None` writes them to `data_dir/outbox`.
    pub smtp_url: Option<Secret>,
    /// The summary emails' sender.
    pub mail_from: String,
    /// The LLM that writes summaries; `None` uses the built-in summarizer.
    pub llm: Option<crate::summary::LlmConfig>,
    /// How long a worker holds a claimed job before another may take it over.
    pub job_lease: Duration,
    /// Days after they are over that meetings without their own retention are deleted; `None`
    /// keeps them until deleted.
    pub retention_days: Option<u32>,
    /// How often expired meetings are deleted and deleted ones purged.
    pub retention_sweep: Duration,
    /// How webhook deliveries are retried.
    pub webhook_retries: crate::webhooks::delivery::Retries,
    /// Key sealing secrets at rest (calendar passwords and addresses, captions links); `None`
    /// uses (and makes) `data_dir/secret.key`.
    pub secret_key: Option<Secret>,
    /// How often each calendar is read.
    pub calendar_poll: Duration,
    /// How far ahead calendar events become meetings.
    pub calendar_horizon: Duration,
    /// Where `/metrics` is served apart from the API; `None` serves it with the API.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Whom summaries are mailed to and whose invitations count; per-account quotas.
    pub mail_policy: crate::mail::policy::MailPolicy,
    /// Internal networks user-supplied addresses (calendar feeds) may reach; everything
    /// public is reachable, everything else refused.
    pub egress_allow: Vec<ipnet::IpNet>,
    /// Proxies (ingress, load balancer) whose `X-Forwarded-For`/`Forwarded` name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bots are dispatched this long before a meeting's start time.
    pub dispatch_lead: Duration,
    /// Zoom's webhook secret token (the Zoom app's "Secret Token"); `None` turns the webhook off.
    pub zoom_webhook_secret: Option<Secret>,
    /// Zoom accounts whose meetings' streams are served; empty serves any.
    pub zoom_accounts: Vec<String>,
    /// How bot workers are run, and the fleet's size until an admin sets it.
    pub fleet: FleetConfig,
    /// The settings of every bot this server launches, whichever the launcher (Kubernetes bots
    /// read theirs from the same ConfigMap as the server).
    pub bot: BotConfig,
}

impl ServerConfig {
    /// What seals secrets at rest: the configured key, or the data dir's key file.
    pub fn sealer(&self) -> anyhow::Result<crate::auth::Sealer> {
        match &self.secret_key {
            Some(key) => crate::auth::Sealer::from_hex(key.expose()),
            None => crate::auth::Sealer::from_data_dir(&self.data_dir),
        }
    }

    /// Defaults for a data dir, as `parley serve` with no other settings.
    pub fn embedded(data_dir: PathBuf) -> Self {
        let mut bot = BotConfig::default();
        bot.connector.record_to = Some(data_dir.join("recordings").display().to_string());
        Self {
            data_dir: data_dir.clone(),
            database_url: None,
            redis_url: None,
            events_stream: parley_bot::sink::redis::DEFAULT_STREAM.to_owned(),
            consumer: default_consumer_name(),
            claim_idle: Duration::from_secs(30),
            token_ttl: Duration::from_secs(24 * 3600),
            body_limit: 64 * 1024,
            login_limits: Limits::default(),
            dispatch_lead: Duration::from_secs(60),
            public_url: None,
            chat_link: false,
            share_link_ttl: Duration::from_secs(30 * 24 * 3600),
            smtp_url: None,
            mail_from: "Parley <parley@localhost>".to_owned(),
            llm: None,
            job_lease: Duration::from_secs(300),
            webhook_retries: Default::default(),
            retention_days: None,
            retention_sweep: Duration::from_secs(60),
            secret_key: None,
            mail_policy: crate::mail::policy::MailPolicy::default(),
            metrics_listen: None,
            calendar_poll: Duration::from_secs(60),
            calendar_horizon: Duration::from_secs(14 * 24 * 3600),
            egress_allow: Vec::new(),
            trusted_proxies: Vec::new(),
            zoom_webhook_secret: None,
            zoom_accounts: Vec::new(),
            fleet: FleetConfig::default(),
            bot,
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("parley.db").display()
            ),
        }
    }

    /// The base of links for a server listening on `addr`: the configured public URL, or
    /// `http://` and the address (loopback when it listens on every interface).
    pub fn public_url(&self, addr: std::net::SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => Self::self_url(addr),
        }
    }

    /// Where a server listening on `addr` reaches its own API: `http://` and the address
    /// (loopback when it listens on every interface).
    pub fn self_url(addr: std::net::SocketAddr) -> String {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
    }

    pub fn mode(&self) -> &'static str {
        match (&self.database_url, &self.redis_url) {
            (None, None) => "embedded",
            (Some(_), Some(_)) => "production",
            _ => "mixed",
        }
    }
}

/// `host-pid-random`: unique per process, readable in `XINFO CONSUMERS`.
pub fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "parley".to_owned());
    let mut r = [0u8; 3];
    let _ = getrandom::fill(&mut r);
    format!(
        "{host}-{}-{:02x}{:02x}{:02x}",
        std::process::id(),
        r[0],
        r[1],
        r[2]
    )
}
