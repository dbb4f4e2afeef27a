//! Storage: repositories over sqlx's `Any` driver, so one set of SQL serves Postgres (production)
//! and SQLite (embedded default).
//!
//! Queries are written in the dialect both share: `$N` placeholders (SQLite accepts them),
//! `ON CONFLICT … DO UPDATE`, `RETURNING`. Ids are UUID text and times are milliseconds since the
//! epoch in both schemas; `migrations/postgres` and `migrations/sqlite` are kept equivalent by a
//! test.

mod api_keys;
mod calendars;
mod deletion;
mod fleet;
mod jobs;
mod meetings;
pub mod metadata;
mod migrate;
mod sealed;
mod sessions;
mod summaries;
mod transcripts;
mod users;
mod webhooks;

pub use api_keys::{ApiKey, KeyGrant};
pub use calendars::{Calendar, CalendarMeeting};
pub use fleet::{FleetSettings, Leadership};
pub use jobs::{Job, JobKind, JobState};
pub use meetings::{
    Meeting, MeetingStatus, NewMeeting, Participant, SearchHit, ShareScope, zoom_number,
};
pub use sessions::{SESSION_ID_LEN, SessionInfo};
pub use summaries::Summary;
pub use transcripts::{SegmentRow, StoredSegment};
pub use users::{Role, TokenPurpose, User};
pub use webhooks::{ClaimedDelivery, Delivery, EventType, NewDelivery, Settled, Target, Webhook};

use crate::auth::Sealer;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url (expected postgres://… or sqlite:…)")]
    UnsupportedUrl,
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("the operating system gave no randomness: {0}")]
    Random(#[from] getrandom::Error),
    #[error("a sealed value: {0:#}")]
    Sealed(anyhow::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// The database handle every repository method hangs off. Cheap to clone. Secrets (share
/// links, calendar feed addresses and passwords) are sealed with `sealer` on their way in and
/// opened on their way out, so callers see them as plain values and the database never does.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sealer: Arc<Sealer>,
}

impl Store {
    /// Connects, applies pending migrations and seals what earlier versions kept in the clear.
    pub async fn open(url: &str, sealer: Arc<Sealer>) -> Result<Self> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            // One writer at a time is all SQLite does; a small pool keeps readers concurrent
            // (WAL) without queueing writers on the busy timeout.
            Backend::Sqlite => {
                options
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        let store = Self {
            pool,
            backend,
            sealer,
        };
        migrate::run(&store).await?;
        store.check_key().await?;
        store.seal_plaintext().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Round-trips a trivial query: the readiness check.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// Milliseconds since the epoch as the schema stores them. Times before 1970 or after the year
/// 292 million do not occur.
pub fn to_db_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub fn from_db_ms(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// A UUID column; `what` names the row in the error ("api key", "webhook").
fn uuid_column(row: &sqlx::any::AnyRow, what: &str, column: &str) -> Result<uuid::Uuid> {
    use sqlx::Row;
    let text: String = row.try_get(column)?;
    uuid::Uuid::parse_str(&text).map_err(|_| corrupt(format!("{what} {column}")))
}

/// A nullable time column.
fn optional_ms(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<u64>> {
    use sqlx::Row;
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_db_ms))
}
