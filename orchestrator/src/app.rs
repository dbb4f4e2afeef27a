//! The server: wires the store, the event bus and its ingest, the bot fleet (scheduler, queue and
//! launcher) and the HTTP API, and shuts them down in order.

use crate::api::{self, AppState};
use crate::auth::LoginLimiter;
use crate::auth::password::HashingSlots;
use crate::calendar;
use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::deletion::{Deleter, EventStream};
use crate::fleet::launchers::{
    AnyLauncher, LauncherKind, in_process::InProcessLauncher, kubernetes::KubernetesLauncher,
    process::ProcessLauncher,
};
use crate::fleet::{Dispatch, Fleet};
use crate::ingest::{
    self,
    channel::ChannelSource,
    redis_source::{RedisIngestConfig, RedisSource},
};
use crate::jobs;
use crate::live::{Hubs, LiveLog};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::summary::{LlmSummarizer, Summarizer};
use crate::supervise::{self, Task};
use crate::webhooks;
use anyhow::Context;
use parley_bot::egress::EgressGuard;
use parley_bot::fleet::AnyQueue;
use parley_bot::fleet::redis_queue::RedisQueue;
use parley_bot::sink::any::Bus;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Runs until `shutdown` resolves, then stops accepting requests, asks bots to leave, lets the
/// ingest store what they published, and returns.
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let store = Store::open(&config.database_url(), Arc::new(config.sealer()?))
        .await
        .context("cannot open the database")?;
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (gave_up_tx, mut gave_up) = mpsc::unbounded_channel();
    // Every supervised task gets what it needs to start again.
    let supervised = |task, start: StartTask| {
        supervise::spawn(task, Arc::clone(&metrics), gave_up_tx.clone(), start)
    };

    let (bus, ingest_task, redis, live) = match &config.redis_url {
        Some(url) => {
            let url = url.expose().to_owned();
            let mut ingest_config = RedisIngestConfig::new(&url, &config.consumer);
            ingest_config.stream = config.events_stream.clone();
            ingest_config.claim_idle = config.claim_idle;
            // The first connection is made here, so a wrong URL stops the start with its error;
            // a restarted ingest connects again (its unacknowledged entries are redelivered).
            let mut first = Some(RedisSource::connect(ingest_config.clone()).await?);
            let live = LiveLog::redis(&url).await?;
            let client = redis::Client::open(url.as_str())?;
            let conn = redis::aio::ConnectionManager::new(client)
                .await
                .context("cannot connect to redis")?;
            let (store, live_log, metrics, rx) = (
                store.clone(),
                live.clone(),
                Arc::clone(&metrics),
                stop_rx.clone(),
            );
            let task = supervised(
                Task::Ingest,
                Box::new(move || {
                    let first = first.take();
                    let (config, store, live, metrics, rx) = (
                        ingest_config.clone(),
                        store.clone(),
                        live_log.clone(),
                        Arc::clone(&metrics),
                        rx.clone(),
                    );
                    Box::pin(async move {
                        let source = match first {
                            Some(source) => source,
                            None => match reconnect(config, stopped(rx.clone())).await {
                                Some(source) => source,
                                None => return,
                            },
                        };
                        ingest::run(source, store, live, metrics, stopped(rx)).await;
                    }) as Restart
                }),
            );
            let bus = Bus::Redis {
                url,
                stream: config.events_stream.clone(),
            };
            (bus, task, Some(conn), live)
        }
        None => {
            let (tx, rx) = mpsc::channel(ingest::channel::CAPACITY);
            let live = LiveLog::memory();
            // The in-process ingest ends when the last bot drops its sender, so it stores
            // everything bots published before they left.
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let (store, live_log, metrics) = (store.clone(), live.clone(), Arc::clone(&metrics));
            let task = supervised(
                Task::Ingest,
                Box::new(move || {
                    Box::pin(ingest::run(
                        ChannelSource::new(Arc::clone(&rx)),
                        store.clone(),
                        live_log.clone(),
                        Arc::clone(&metrics),
                        std::future::pending(),
                    )) as Restart
                }),
            );
            (Bus::Channel(tx), task, None, live)
        }
    };

    let addr = listener.local_addr()?;
    let public_url: Arc<str> = Arc::from(config.public_url(addr));
    let fleet = Arc::new(
        fleet(
            &config,
            bus,
            &store,
            &metrics,
            config.chat_link.then(|| Arc::clone(&public_url)),
        )
        .await?,
    );
    let recordings = match config.bot.connector.record_to.as_deref() {
        None | Some("off") => None,
        Some(location) => match parley_bot::connector::recorder::RecordingStore::open(location) {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::warn!(error = e, "recordings cannot be listed or served");
                None
            }
        },
    };
    let mailer = match &config.smtp_url {
        Some(url) => Mailer::smtp(url.expose())?,
        None => Mailer::outbox(config.data_dir.join("outbox"))?,
    };
    let deleter = Arc::new(Deleter {
        store: store.clone(),
        live: live.clone(),
        recordings: recordings.clone(),
        events: redis.clone().map(|conn| EventStream {
            conn,
            stream: config.events_stream.clone(),
        }),
        retention_days: config.retention_days,
    });
    let mail_from: lettre::message::Mailbox = config
        .mail_from
        .parse()
        .context("the mail sender is not an address")?;
    let egress = EgressGuard::new(config.egress_allow.clone());
    let mail_policy = Arc::new(config.mail_policy.clone());
    let state = AppState {
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        limiter: Arc::new(LoginLimiter::new(config.login_limits)),
        fleet: Arc::clone(&fleet),
        zoom_webhook_secret: config
            .zoom_webhook_secret
            .as_ref()
            .map(|s| Arc::from(s.expose())),
        zoom_accounts: config.zoom_accounts.clone().into(),
        redis,
        token_ttl: config.token_ttl,
        live: Arc::new(Hubs::new(
            live,
            store.clone(),
            Arc::clone(&metrics),
            stop_rx.clone(),
        )),
        public_url: Arc::clone(&public_url),
        self_url: Arc::from(ServerConfig::self_url(addr)),
        recordings: recordings.clone(),
        deleter: Arc::clone(&deleter),
        egress: egress.clone(),
        trusted_proxies: config.trusted_proxies.clone().into(),
        hashing: Arc::new(HashingSlots::per_core()),
        livekit_servers: config.bot.connector.livekit.servers.clone().into(),
        share_link_ttl: config.share_link_ttl,
        mail_policy: Arc::clone(&mail_policy),
        mailer: mailer.clone(),
        mail_from: mail_from.clone(),
    };
    let poller = Arc::new(calendar::poller::Poller {
        store: store.clone(),
        http: egress
            .client(calendar::poller::FETCH_TIMEOUT)
            .context("cannot make the calendar client")?,
        egress: egress.clone(),
        mail_policy: Arc::clone(&mail_policy),
        every: config.calendar_poll,
        horizon: config.calendar_horizon,
    });
    let rx = stop_rx.clone();
    let calendars = supervised(
        Task::Calendar,
        Box::new(move || Box::pin(Arc::clone(&poller).run(stopped(rx.clone()))) as Restart),
    );
    let (rx, controller, lead) = (stop_rx.clone(), Arc::clone(&fleet), config.dispatch_lead);
    let fleet_controller = supervised(
        Task::Fleet,
        Box::new(move || {
            Box::pin(Arc::clone(&controller).run(lead, stopped(rx.clone()))) as Restart
        }),
    );

    let summarizer = match &config.llm {
        Some(llm) => Summarizer::Llm(Box::new(LlmSummarizer::new(llm.clone()))),
        None => Summarizer::Builtin,
    };
    tracing::info!(mail = mailer.describe(), summarizer = ?summarizer_name(&summarizer), "after-meeting jobs");
    let jobs_context = Arc::new(jobs::Context {
        store: store.clone(),
        summarizer,
        mailer,
        from: mail_from,
        public_url: Arc::clone(&public_url),
        recordings,
        mail_policy,
        lease: config.job_lease,
        metrics: Arc::clone(&metrics),
    });
    let workers: Vec<_> = (0..JOB_WORKERS)
        .map(|_| {
            let (rx, context) = (stop_rx.clone(), Arc::clone(&jobs_context));
            supervised(
                Task::Jobs,
                Box::new(move || {
                    Box::pin(jobs::run(Arc::clone(&context), stopped(rx.clone()))) as Restart
                }),
            )
        })
        .collect();
    let deliveries = Arc::new(
        webhooks::delivery::Context::new(
            store.clone(),
            egress.clone(),
            config.webhook_retries,
            jobs_context.mailer.clone(),
            jobs_context.from.clone(),
        )
        .context("cannot make the webhook client")?,
    );
    let senders: Vec<_> = (0..WEBHOOK_SENDERS)
        .map(|_| {
            let (rx, context) = (stop_rx.clone(), Arc::clone(&deliveries));
            supervised(
                Task::Webhooks,
                Box::new(move || {
                    Box::pin(webhooks::delivery::run(
                        Arc::clone(&context),
                        stopped(rx.clone()),
                    )) as Restart
                }),
            )
        })
        .collect();
    let (rx, every) = (stop_rx.clone(), config.retention_sweep);
    let sweeper = supervised(
        Task::Housekeeping,
        Box::new(move || Box::pin(Arc::clone(&deleter).run(every, stopped(rx.clone()))) as Restart),
    );
    let (rx, sessions) = (stop_rx.clone(), store.clone());
    let housekeeping = supervised(
        Task::Housekeeping,
        Box::new(move || {
            Box::pin(purge_expired_sessions(
                sessions.clone(),
                stopped(rx.clone()),
            )) as Restart
        }),
    );

    let metrics_server = match config.metrics_listen {
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen for /metrics on {at}"))?;
            tracing::info!(%at, "metrics served apart from the API");
            let mut stop = stop_rx.clone();
            let server = axum::serve(listener, api::metrics_router(state.clone()))
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            Some(tokio::spawn(async move { server.await }))
        }
        None => None,
    };
    tracing::info!(%addr, mode = config.mode(), "parley serving");
    let app = api::router(state, config.body_limit, metrics_server.is_none())
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });

    let failed = tokio::select! {
        () = shutdown => None,
        Some(task) = gave_up.recv() => Some(task),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = housekeeping.await;
    let _ = sweeper.await;
    let _ = calendars.await;
    for w in workers.into_iter().chain(senders) {
        let _ = w.await;
    }
    // Stopping the fleet's workers lets them publish their last events; the in-process bus
    // closes (and its ingest ends) once the last holder of it is gone.
    let _ = fleet_controller.await;
    drop(fleet);
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => tracing::info!("http server stopped"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
        Err(_) => tracing::warn!("http server did not stop within 10 s"),
    }
    if let Some(server) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    match tokio::time::timeout(Duration::from_secs(10), ingest_task).await {
        Ok(_) => tracing::info!("ingest stopped"),
        Err(_) => tracing::warn!("ingest did not drain within 10 s"),
    }
    store.close().await;
    match failed {
        None => Ok(()),
        Some(task) => anyhow::bail!(
            "the {} task kept failing (see the log above); stopped so this server can be restarted",
            task.name()
        ),
    }
}

/// Connects the Redis ingest again after it failed, until it can or the server stops.
async fn reconnect(
    config: RedisIngestConfig,
    shutdown: impl Future<Output = ()>,
) -> Option<RedisSource> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match RedisSource::connect(config.clone()).await {
            Ok(source) => return Some(source),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "the ingest cannot reach Redis; retrying"
            ),
        }
        tokio::select! {
            () = &mut shutdown => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A supervised task's start: boxed, so the tasks of different types share one spawner.
type Restart = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
type StartTask = Box<dyn FnMut() -> Restart + Send>;

/// Summary and email jobs run this many at a time per replica, so a slow LLM call does not hold
/// up the emails of other meetings.
const JOB_WORKERS: usize = 2;

/// Webhook deliveries sent at a time per replica, so one slow endpoint holds up only its own.
const WEBHOOK_SENDERS: usize = 4;

fn summarizer_name(s: &Summarizer) -> String {
    match s {
        Summarizer::Builtin => "built-in".to_owned(),
        Summarizer::Llm(llm) => format!("LLM {}", llm.model()),
    }
}

/// The assignment queue beside the bus (Redis with Redis, else in memory) and the launcher.
async fn fleet(
    config: &ServerConfig,
    bus: Bus,
    store: &Store,
    metrics: &Arc<Metrics>,
    chat_link_base: Option<Arc<str>>,
) -> anyhow::Result<Fleet> {
    let f = &config.fleet;
    let queue = match &config.redis_url {
        Some(url) => AnyQueue::Redis(
            RedisQueue::connect(url.expose(), &f.assignments_stream)
                .await
                .context("cannot open the assignment queue")?,
        ),
        None => AnyQueue::memory(),
    };
    let launcher = match f.launcher {
        LauncherKind::InProcess => AnyLauncher::InProcess(Box::new(InProcessLauncher::new(
            queue.clone(),
            bus,
            config.bot.clone(),
            f.meetings_per_worker,
        ))),
        LauncherKind::Process => {
            let redis = config
                .redis_url
                .as_ref()
                .context("the process launcher needs Redis")?;
            AnyLauncher::Process(Box::new(ProcessLauncher::new(
                f,
                redis.expose(),
                &config.events_stream,
                &config.bot,
                queue.clone(),
            )))
        }
        LauncherKind::Kubernetes => AnyLauncher::Kubernetes(Box::new(
            KubernetesLauncher::connect(f.bot_namespace.as_deref(), &f.bot_deployment).await?,
        )),
    };
    tracing::info!(launcher = launcher.name(), "bot fleet");
    Ok(Fleet::new(
        queue,
        store.clone(),
        Arc::clone(metrics),
        launcher,
        Dispatch {
            defaults: f.defaults,
            meetings_per_worker: f.meetings_per_worker,
            chat_link_base,
            egress: EgressGuard::new(config.egress_allow.clone()),
        },
    ))
}

/// Deletes expired sessions every ten minutes (they no longer authenticate anyway; this keeps the
/// table small).
async fn purge_expired_sessions(store: Store, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match store.purge_sessions(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
