//! `parley serve`: the orchestrator server. With nothing configured it runs embedded (SQLite in
//! the data dir, in-process bus and bots); with `DATABASE_URL` and `REDIS_URL`, production mode.

use crate::auth::rate_limit::Limits;
use crate::config::{FleetConfig, Secret, ServerConfig, default_consumer_name};
use crate::fleet::launchers::LauncherKind;
use crate::mail::policy::{MailPolicy, Quotas};
use crate::store::FleetSettings;
use anyhow::Context;
use clap::Args;
use parley_bot::cli::flags::{AsrFlags, ConnectorFlags};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "PARLEY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Where the embedded database and other local state live [default: the user's data dir,
    /// e.g. ~/.local/share/parley].
    #[arg(long, env = "PARLEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's address as users reach it (e.g. https://parley.example.com), used in the
    /// links it hands out such as live captions [default: http:// and the listen address].
    #[arg(long, env = "PARLEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Whether bots post the live captions link to the meeting chat, on platforms with a chat.
    /// Off by default: anyone in the chat (guests too) gets the link.
    #[arg(long, env = "PARLEY_CHAT_LINK", default_value_t = false, action = clap::ArgAction::Set)]
    pub chat_link: bool,
    /// Days after its meeting ends that a captions link keeps working.
    #[arg(long, env = "PARLEY_SHARE_LINK_DAYS", default_value_t = 30)]
    pub share_link_days: u64,
    /// SMTP server for summary emails: smtp://host:25, smtp://user:pass@host:587?tls=required
    /// (STARTTLS) or smtps://user:pass@host:465 (TLS). Unset: emails are written as .eml files to
    /// DATA_DIR/outbox.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of summary emails.
    #[arg(
        long,
        env = "PARLEY_MAIL_FROM",
        default_value = "Parley <parley@localhost>"
    )]
    pub mail_from: String,
    /// OpenAI-compatible endpoint for summaries (e.g. http://127.0.0.1:8088/v1); unset uses the
    /// built-in summarizer. A failed LLM summary falls back to the built-in one.
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// API key for the OpenAI-compatible endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Model name for summaries.
    #[arg(long, env = "PARLEY_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,
    /// The model's context window in tokens; longer transcripts are summarised in parts.
    #[arg(long, env = "PARLEY_LLM_CONTEXT_TOKENS", default_value_t = 4096)]
    pub llm_context_tokens: usize,
    /// Seconds an LLM call may take before it is retried.
    #[arg(long, env = "PARLEY_LLM_TIMEOUT_SECS", default_value_t = 60)]
    pub llm_timeout_secs: u64,
    /// Seconds a worker holds a summary or email job before another replica may take it over.
    #[arg(long, env = "PARLEY_JOB_LEASE_SECS", default_value_t = 300)]
    pub job_lease_secs: u64,
    /// Key sealing stored calendar passwords: 64 hex digits (`openssl rand -hex 32`), the same on
    /// every replica [default: DATA_DIR/secret.key, made on first start].
    #[arg(long, env = "PARLEY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Seconds between two reads of a calendar.
    #[arg(long, env = "PARLEY_CALENDAR_POLL_SECS", default_value_t = 60)]
    pub calendar_poll_secs: u64,
    /// Delete meetings (transcript, summary, recordings, everything derived) this many days
    /// after they are over, unless a meeting sets its own `retention_days` [default: kept until
    /// deleted].
    #[arg(long, env = "PARLEY_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub retention_days: Option<u32>,
    /// Internal networks that calendar feeds and CalDAV servers users add may be on, as
    /// comma-separated networks or addresses (`10.20.0.0/16,192.168.5.7`). Loopback, private,
    /// link-local and cluster ranges are refused otherwise, so users cannot make the server
    /// fetch from inside your network.
    #[arg(long, env = "PARLEY_EGRESS_ALLOW", default_value = "")]
    pub egress_allow: String,
    /// The proxies in front of this server (ingress, load balancer), as comma-separated
    /// networks or addresses: their `X-Forwarded-For`/`Forwarded` headers name the client that
    /// sign-up and login limits count. Unset, the connection's own address is the client.
    #[arg(long, env = "PARLEY_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Your organisation's mail domains, comma-separated (`example.com,corp.example`). Summary
    /// mails go to verified accounts and to addresses in these domains; when set, meetings may
    /// name participants only in them. Unset, only verified accounts are mailed.
    #[arg(long, env = "PARLEY_ALLOWED_EMAIL_DOMAINS", default_value = "")]
    pub allowed_email_domains: String,
    /// Serve Prometheus `/metrics` on this address (`0.0.0.0:9090`) instead of the API's, so an
    /// Ingress in front of the API never exposes it.
    #[arg(long, env = "PARLEY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Meetings one account may create through the API per day.
    #[arg(long, env = "PARLEY_MEETINGS_PER_DAY", default_value_t = 100)]
    pub meetings_per_day: u32,
    /// Participants one meeting may name.
    #[arg(long, env = "PARLEY_MAX_INVITEES", default_value_t = 100)]
    pub max_invitees: usize,
    /// Summary mails sent for one account's meetings per day.
    #[arg(long, env = "PARLEY_MAILS_PER_DAY", default_value_t = 500)]
    pub mails_per_day: u32,
    /// Postgres URL (postgres://user:pass@host/db); unset means SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL (redis://host:6379/); unset means the in-process event bus.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Redis stream bots publish to and the ingest consumes.
    #[arg(long, env = "PARLEY_EVENTS_STREAM", default_value = parley_bot::sink::redis::DEFAULT_STREAM)]
    pub events_stream: String,
    /// This replica's consumer name in the `ingest` group [default: host-pid-random].
    #[arg(long, env = "PARLEY_CONSUMER")]
    pub consumer: Option<String>,
    /// Seconds an event may stay unacknowledged by a replica before another takes it over.
    #[arg(long, env = "PARLEY_CLAIM_IDLE_SECS", default_value_t = 30)]
    pub claim_idle_secs: u64,
    /// Lifetime of login tokens, in hours.
    #[arg(long, env = "PARLEY_TOKEN_TTL_HOURS", default_value_t = 24)]
    pub token_ttl_hours: u64,
    /// Largest accepted request body, in KiB.
    #[arg(long, env = "PARLEY_BODY_LIMIT_KIB", default_value_t = 64)]
    pub body_limit_kib: usize,
    /// Accounts one client address may create per 15 minutes.
    #[arg(long, env = "PARLEY_SIGNUPS_PER_ADDRESS", default_value_t = 10)]
    pub signups_per_address: usize,
    /// Failed logins per account within 15 minutes before it is throttled.
    #[arg(long, env = "PARLEY_LOGIN_ATTEMPTS", default_value_t = 5)]
    pub login_attempts: usize,
    /// Seconds before a meeting's start time that its bot is sent.
    #[arg(long, env = "PARLEY_DISPATCH_LEAD_SECS", default_value_t = 60)]
    pub dispatch_lead_secs: u64,
    /// The Zoom app's webhook secret token: turns on POST /webhooks/zoom, where Zoom reports
    /// that a meeting's media stream (RTMS) started and its bot should join.
    #[arg(long, env = "ZOOM_WEBHOOK_SECRET_TOKEN", hide_env_values = true)]
    pub zoom_webhook_secret: Option<String>,
    /// The Zoom account IDs whose meetings this server serves, comma-separated (your company's
    /// account, where the Zoom app is installed): media streams of other accounts' meetings are
    /// ignored. Unset, any account's stream is matched by meeting number alone.
    #[arg(long, env = "PARLEY_ZOOM_ACCOUNTS", value_delimiter = ',')]
    pub zoom_accounts: Vec<String>,
    /// How bot workers run: tasks in this server (in-process), `parley-bot worker` processes
    /// (process; needs --redis-url), or the pods of a Kubernetes Deployment (kubernetes; needs
    /// --redis-url).
    #[arg(
        long,
        env = "PARLEY_LAUNCHER",
        value_enum,
        default_value = "in-process"
    )]
    pub launcher: LauncherKind,
    /// Free meeting places kept on running workers with the model loaded, so bots join at once
    /// (until an admin sets it with PUT /admin/fleet).
    #[arg(long, env = "PARLEY_FLEET_MIN_IDLE", default_value_t = 1)]
    pub fleet_min_idle: u32,
    /// Meetings bots may be in at once; more wait in the queue (until an admin sets it).
    #[arg(long, env = "PARLEY_FLEET_MAX_BOTS", default_value_t = 4)]
    pub fleet_max_bots: u32,
    /// Meetings each bot worker serves at once, all decoded by its one model and pool (by
    /// default two per CPU core of this machine; Kubernetes workers say their own).
    #[arg(long, env = "PARLEY_MAX_MEETINGS", default_value_t = parley_bot::fleet::worker::default_max_meetings())]
    pub max_meetings: usize,
    /// Meetings one user may have bots in at once (until an admin sets it).
    #[arg(long, env = "PARLEY_FLEET_PER_USER", default_value_t = 2)]
    pub fleet_per_user: u32,
    /// Redis stream of bot assignments.
    #[arg(long, env = "PARLEY_ASSIGNMENTS_STREAM", default_value = parley_bot::fleet::DEFAULT_ASSIGNMENTS_STREAM)]
    pub assignments_stream: String,
    /// The process launcher's `parley-bot` binary [default: beside this one, else on PATH].
    #[arg(long, env = "PARLEY_BOT_PROGRAM")]
    pub bot_program: Option<PathBuf>,
    /// The Kubernetes launcher's namespace [default: the service account's or kubeconfig's].
    #[arg(long, env = "PARLEY_BOT_NAMESPACE")]
    pub bot_namespace: Option<String>,
    /// The Kubernetes launcher's bot worker Deployment.
    #[arg(long, env = "PARLEY_BOT_DEPLOYMENT", default_value = "parley-bot")]
    pub bot_deployment: String,
    #[command(flatten)]
    pub asr: AsrFlags,
    #[command(flatten)]
    pub connector: ConnectorFlags,
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<ServerConfig> {
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => dirs::data_dir()
                .context("no data dir for this user: pass --data-dir")?
                .join("parley"),
        };
        if self.token_ttl_hours == 0 {
            anyhow::bail!("--token-ttl-hours must be at least 1");
        }
        let nonempty = |s: &Option<String>| s.as_ref().filter(|s| !s.is_empty()).map(Secret::new);
        let mut config = ServerConfig::embedded(data_dir);
        config.database_url = nonempty(&self.database_url);
        config.redis_url = nonempty(&self.redis_url);
        config.events_stream = self.events_stream.clone();
        config.consumer = self.consumer.clone().unwrap_or_else(default_consumer_name);
        config.claim_idle = Duration::from_secs(self.claim_idle_secs);
        config.token_ttl = Duration::from_secs(self.token_ttl_hours * 3600);
        config.body_limit = self.body_limit_kib.max(1) * 1024;
        config.login_limits = Limits {
            per_account: self.login_attempts.max(1),
            signups_per_address: self.signups_per_address.max(1),
            ..Limits::default()
        };
        config.dispatch_lead = Duration::from_secs(self.dispatch_lead_secs);
        let defaults = FleetSettings {
            min_idle: self.fleet_min_idle,
            max_bots: self.fleet_max_bots,
            per_user: self.fleet_per_user,
        };
        if let Err(e) = crate::api::admin::check_fleet(defaults) {
            anyhow::bail!("fleet flags: {e}");
        }
        if self.launcher != LauncherKind::InProcess && config.redis_url.is_none() {
            anyhow::bail!(
                "--launcher {:?} needs --redis-url: its bots are other processes",
                self.launcher
            );
        }
        if self.max_meetings == 0 {
            anyhow::bail!("--max-meetings must be at least 1");
        }
        config.fleet = FleetConfig {
            launcher: self.launcher,
            defaults,
            meetings_per_worker: self.max_meetings,
            assignments_stream: self.assignments_stream.clone(),
            bot_program: self.bot_program.clone(),
            bot_namespace: self.bot_namespace.clone().filter(|n| !n.is_empty()),
            bot_deployment: self.bot_deployment.clone(),
        };
        config.chat_link = self.chat_link;
        config.share_link_ttl = Duration::from_secs(self.share_link_days.max(1) * 24 * 3600);
        config.smtp_url = nonempty(&self.smtp_url);
        config.mail_from = self.mail_from.clone();
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            anyhow::bail!("--mail-from must be an address such as \"Parley <parley@example.com>\"");
        }
        config.llm = self
            .openai_base_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|base_url| crate::summary::LlmConfig {
                base_url: base_url.to_owned(),
                api_key: nonempty(&self.openai_api_key),
                model: self.llm_model.clone(),
                context_tokens: self.llm_context_tokens,
                max_output_tokens: 1024,
                timeout: Duration::from_secs(self.llm_timeout_secs.max(1)),
                attempts: 2,
            });
        config.job_lease = Duration::from_secs(self.job_lease_secs.max(1));
        config.secret_key = nonempty(&self.secret_key);
        config.zoom_webhook_secret = nonempty(&self.zoom_webhook_secret);
        config.zoom_accounts = self
            .zoom_accounts
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        config.calendar_poll = Duration::from_secs(self.calendar_poll_secs.max(1));
        config.retention_days = self.retention_days;
        config.egress_allow = parley_bot::egress::parse_allow_list(&self.egress_allow)
            .map_err(|e| anyhow::anyhow!("--egress-allow: {e}"))?;
        config.trusted_proxies = parley_bot::egress::parse_allow_list(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        config.metrics_listen = self
            .metrics_listen
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--metrics-listen: {e} (expected host:port)"))?;
        let domains: Vec<String> = self
            .allowed_email_domains
            .split(',')
            .map(str::to_owned)
            .collect();
        config.mail_policy = MailPolicy::new(
            &domains,
            Quotas {
                meetings_per_day: self.meetings_per_day.max(1),
                invitees_per_meeting: self.max_invitees,
                mails_per_day: self.mails_per_day,
            },
        );
        if let Some(url) = self.public_url.as_deref().filter(|u| !u.is_empty()) {
            let host = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if host.is_none_or(|h| {
                h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)
            }) {
                anyhow::bail!("--public-url must be an http:// or https:// address, got {url:?}");
            }
            config.public_url = Some(url.trim_end_matches('/').to_owned());
        }
        self.asr.clone().apply(&mut config.bot.asr);
        self.connector.clone().apply(&mut config.bot.connector);
        config
            .bot
            .validate()
            .map_err(|e| anyhow::anyhow!("bot settings: {e}"))?;
        Ok(config)
    }
}

pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything starts, so a SIGTERM during start-up stops the bots it started too.
    let shutdown = parley_bot::telemetry::shutdown_signal();
    let config = args.config()?;
    if config.fleet.launcher != LauncherKind::Kubernetes {
        // Bots on this machine only verify and load the model: it is installed here, before
        // the first meeting waits for it. Bot pods bring theirs in the image.
        super::models::install_configured(&config.bot.asr).await?;
    }
    let listener = bind(&args.listen).await?;
    eprintln!(
        "parley: {} mode, listening on http://{} (data in {})",
        config.mode(),
        listener.local_addr()?,
        config.data_dir.display()
    );
    crate::app::run(config, listener, shutdown).await
}
