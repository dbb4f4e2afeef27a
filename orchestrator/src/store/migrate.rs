//! Embedded migrations: the SQL files of `migrations/{postgres,sqlite}` (and `migrations/shared`
//! for those both databases take as written) compiled into the binary, so a deployed `parley`
//! needs no files beside it.

use super::{Backend, Result, Store};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

struct Source {
    version: i64,
    description: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Source] = &[
    Source {
        version: 1,
        description: "init",
        postgres: include_str!("../../../migrations/postgres/0001_init.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0001_init.sql"),
    },
    Source {
        version: 2,
        description: "recording",
        postgres: include_str!("../../../migrations/postgres/0002_recording.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_recording.sql"),
    },
    Source {
        version: 3,
        description: "live captions",
        postgres: include_str!("../../../migrations/postgres/0003_live_captions.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0003_live_captions.sql"),
    },
    Source {
        version: 4,
        description: "summary jobs",
        postgres: include_str!("../../../migrations/shared/0004_summary_jobs.sql"),
        sqlite: include_str!("../../../migrations/shared/0004_summary_jobs.sql"),
    },
    Source {
        version: 5,
        description: "calendars",
        postgres: include_str!("../../../migrations/shared/0005_calendars.sql"),
        sqlite: include_str!("../../../migrations/shared/0005_calendars.sql"),
    },
    Source {
        version: 6,
        description: "fleet",
        postgres: include_str!("../../../migrations/shared/0006_fleet.sql"),
        sqlite: include_str!("../../../migrations/shared/0006_fleet.sql"),
    },
    Source {
        version: 7,
        description: "account safety",
        postgres: include_str!("../../../migrations/shared/0007_account_safety.sql"),
        sqlite: include_str!("../../../migrations/shared/0007_account_safety.sql"),
    },
    Source {
        version: 8,
        description: "sealed secrets",
        postgres: include_str!("../../../migrations/shared/0008_sealed_secrets.sql"),
        sqlite: include_str!("../../../migrations/shared/0008_sealed_secrets.sql"),
    },
    Source {
        version: 9,
        description: "api keys",
        postgres: include_str!("../../../migrations/shared/0009_api_keys.sql"),
        sqlite: include_str!("../../../migrations/shared/0009_api_keys.sql"),
    },
    Source {
        version: 10,
        description: "meeting metadata",
        postgres: include_str!("../../../migrations/shared/0010_meeting_metadata.sql"),
        sqlite: include_str!("../../../migrations/shared/0010_meeting_metadata.sql"),
    },
    Source {
        version: 11,
        description: "webhooks",
        postgres: include_str!("../../../migrations/shared/0011_webhooks.sql"),
        sqlite: include_str!("../../../migrations/shared/0011_webhooks.sql"),
    },
    Source {
        version: 12,
        description: "deletion",
        postgres: include_str!("../../../migrations/shared/0012_deletion.sql"),
        sqlite: include_str!("../../../migrations/shared/0012_deletion.sql"),
    },
    Source {
        version: 13,
        description: "calendar last read",
        postgres: include_str!("../../../migrations/shared/0013_calendar_last_read.sql"),
        sqlite: include_str!("../../../migrations/shared/0013_calendar_last_read.sql"),
    },
    Source {
        version: 14,
        description: "capture stalled",
        postgres: include_str!("../../../migrations/shared/0014_capture_stalled.sql"),
        sqlite: include_str!("../../../migrations/shared/0014_capture_stalled.sql"),
    },
];

pub(super) fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|m| {
                let sql = match backend {
                    Backend::Postgres => m.postgres,
                    Backend::Sqlite => m.sqlite,
                };
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(sql),
                    false,
                )
            })
            .collect(),
    )
}

pub(super) async fn run(store: &Store) -> Result<()> {
    migrator(store.backend).run(&store.pool).await?;
    Ok(())
}
