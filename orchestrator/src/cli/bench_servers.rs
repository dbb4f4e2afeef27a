//! The Postgres and Redis a benchmark runs against: the ones given, else private throw-away ones.

use crate::dev_servers::{PrivatePostgres, PrivateRedis};

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
