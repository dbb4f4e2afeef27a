//! The Postgres and Redis a benchmark runs against (the ones given, else private throw-away
//! ones), and the meetings and events benchmarks generate.

use anyhow::Context;
use parley_orchestrator::clock::now_ms;
use parley_orchestrator::config::{Secret, ServerConfig};
use parley_orchestrator::store::{Meeting, NewMeeting, Role, Store, User};
use parley_shared::{
    EmailAddress, Event, EventBody, MeetingId, MeetingUrl, Segment, SegmentId, Speaker, SpeakerKey,
};
use parley_testkit::servers::{PrivatePostgres, PrivateRedis};

pub struct BenchServers {
    _pg: Option<PrivatePostgres>,
    _redis: Option<PrivateRedis>,
    pub database_url: String,
    pub redis_url: String,
    /// One key for the benchmark's servers and its own store: the database holds one.
    secret_key: String,
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
    // A given database may hold secrets already: it needs its servers' key.
    let secret_key = match std::env::var("PARLEY_SECRET_KEY") {
        Ok(key) if !key.is_empty() => key,
        _ => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            hex::encode(key)
        }
    };
    Ok(BenchServers {
        _pg: pg,
        _redis: redis,
        database_url,
        redis_url,
        secret_key,
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
        let sealer = parley_orchestrator::auth::Sealer::from_hex(&self.secret_key)?;
        let store = Store::open(&self.database_url, std::sync::Arc::new(sealer))
            .await
            .context("cannot open the database")?;
        let email = EmailAddress::parse(&format!("bench-{}@parley.invalid", now_ms()))?;
        let owner = store
            .create_user(&email, "Bench", "-", Role::User, 0)
            .await?
            .context("bench account exists")?;
        Ok((store, owner))
    }

    pub async fn serve(&self) -> anyhow::Result<BenchServer> {
        let stream = format!("parley:bench:{}", uuid::Uuid::new_v4().simple());
        let data_dir = tempfile::Builder::new().prefix("parley-bench-").tempdir()?;
        let mut config = ServerConfig::embedded(data_dir.path().to_owned());
        // Benchmarks send no bots: no warm worker loading a model beside them.
        config.fleet.defaults.min_idle = 0;
        config.database_url = Some(Secret::new(self.database_url.clone()));
        config.redis_url = Some(Secret::new(self.redis_url.clone()));
        config.secret_key = Some(Secret::new(self.secret_key.clone()));
        config.events_stream = stream.clone();
        config.fleet.assignments_stream = format!("{stream}:assignments");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(parley_orchestrator::app::run(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
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

/// A benchmark meeting far in the future, so the dispatcher never sends a bot to it.
pub async fn bench_meeting(
    store: &Store,
    owner: &User,
    title: String,
    invitees: Vec<EmailAddress>,
) -> anyhow::Result<Meeting> {
    Ok(store
        .create_meeting(
            NewMeeting {
                owner_id: owner.user_id,
                title,
                url: MeetingUrl::parse("https://example.com/bench")?,
                start_time_ms: Some(4_102_444_800_000),
                invitees,
                record: false,
                metadata: parley_orchestrator::store::metadata::Metadata::default(),
                retention_days: None,
            },
            now_ms(),
        )
        .await?)
}

/// The `n`th event of a generated meeting: for each utterance (`spacing_ms` apart, four speakers
/// in turn) a partial, then its final.
pub fn utterance_event(meeting: MeetingId, n: u64, spacing_ms: u64, text: String) -> Event {
    let utterance = n / 2;
    let key = SpeakerKey::parse(format!("speaker-{}", utterance % 4))
        .unwrap_or_else(|_| unreachable!("generated keys are short and printable"));
    let start_ms = utterance * spacing_ms;
    Event::new(
        meeting,
        n,
        EventBody::Segment(Segment {
            segment_id: SegmentId::derive(meeting, &key, start_ms),
            speaker: Speaker {
                name: format!("Speaker {}", utterance % 4),
                key,
            },
            start_ms,
            end_ms: start_ms + 2400,
            text,
            is_final: n % 2 == 1,
        }),
    )
}
