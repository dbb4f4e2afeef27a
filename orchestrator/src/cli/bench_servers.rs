//! The Postgres and Redis a benchmark runs against: the ones given, else private throw-away ones.

use crate::clock::now_ms;
use crate::config::{Secret, ServerConfig};
use crate::dev_servers::{PrivatePostgres, PrivateRedis};
use crate::store::{Store, User};
use anyhow::Context;
use parley_bot::asr::settings::AsrArgs;
use parley_shared::EmailAddress;

pub struct BenchServers {
    _pg: Option<PrivatePostgres>,
    _redis: Option<PrivateRedis>,
    pub database_url: String,
    pub redis_url: String,
}

pub async fn given_or_private(
    database_url: Option<String>,
    redis_url: Option<String>,
) -> anyhow::Result<BenchServers> {
    let (pg, database_url) = match database_url.filter(|u| !u.is_empty()) {
        Some(url) => (None, url),
        None => {
            eprintln!("starting a private Postgres...");
            let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let (redis, redis_url) = match redis_url.filter(|u| !u.is_empty()) {
        Some(url) => (None, url),
        None => {
            eprintln!("starting a private Redis...");
            let r = tokio::task::spawn_blocking(PrivateRedis::start).await??;
            let url = r.url();
            (Some(r), url)
        }
    };
    Ok(BenchServers {
        _pg: pg,
        _redis: redis,
        database_url,
        redis_url,
    })
}

/// The server in production mode on a free port, consuming its own events stream.
pub struct BenchServer {
    pub base: String,
    pub stream: String,
    pub data_dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl BenchServers {
    /// The database, and a fresh account to own the benchmark's meetings.
    pub async fn store_with_owner(&self) -> anyhow::Result<(Store, User)> {
        let store = Store::open(&self.database_url)
            .await
            .context("cannot open the database")?;
        let email = EmailAddress::parse(&format!("bench-{}@parley.invalid", now_ms()))?;
        let owner = store
            .create_user(&email, "Bench", "-", 0)
            .await?
            .context("bench account exists")?;
        Ok((store, owner))
    }

    pub async fn serve(&self) -> anyhow::Result<BenchServer> {
        let stream = format!("parley:bench:{}", uuid::Uuid::new_v4().simple());
        let data_dir = tempfile::Builder::new().prefix("parley-bench-").tempdir()?;
        let mut config = ServerConfig::embedded(data_dir.path().to_owned(), AsrArgs::default());
        config.database_url = Some(Secret::new(self.database_url.clone()));
        config.redis_url = Some(Secret::new(self.redis_url.clone()));
        config.events_stream = stream.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::app::run(config, listener, async move {
            let _ = stopped.await;
        }));
        Ok(BenchServer {
            base,
            stream,
            data_dir,
            stop,
            task,
        })
    }
}

impl BenchServer {
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}
