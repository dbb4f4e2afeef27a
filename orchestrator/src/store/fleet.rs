//! The fleet's settings, and the lock that makes one replica the scheduler.

use super::{Backend, Result, Store, to_db_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::pool::PoolConnection;

/// How big the bot fleet may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSettings {
    /// Free meeting places kept on running workers with the model loaded, so a bot joins
    /// without loading it.
    pub min_idle: u32,
    /// Meetings bots may be in at once; meetings beyond it wait for a free bot.
    pub max_bots: u32,
    /// Meetings one user may have bots in at once.
    pub per_user: u32,
}

/// The advisory lock key of the scheduler ("parley" in ASCII).
const SCHEDULER_LOCK: i64 = 0x7061_726c_6579;

/// Held while this replica is the scheduler. On Postgres it owns the session holding the
/// advisory lock: if the connection dies, the lock is released and another replica takes over.
#[derive(Debug)]
pub struct Leadership {
    conn: Option<PoolConnection<sqlx::Any>>,
}

impl Leadership {
    /// Whether the lock is still held (its connection still answers).
    pub async fn holds(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok(),
        }
    }
}

impl Drop for Leadership {
    /// Closes the session rather than returning it to the pool, where it would keep the lock.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

impl Store {
    /// The admin's settings, if any were set.
    pub async fn fleet_settings(&self) -> Result<Option<FleetSettings>> {
        let row =
            sqlx::query("SELECT min_idle, max_bots, per_user FROM fleet_settings WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let get = |c: &str| -> Result<u32> {
                let v: i64 = r
                    .try_get::<i64, _>(c)
                    .or_else(|_| r.try_get::<i32, _>(c).map(i64::from))?;
                Ok(u32::try_from(v).unwrap_or(0))
            };
            Ok(FleetSettings {
                min_idle: get("min_idle")?,
                max_bots: get("max_bots")?,
                per_user: get("per_user")?,
            })
        })
        .transpose()
    }

    pub async fn set_fleet_settings(&self, s: FleetSettings, now_ms: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO fleet_settings (id, min_idle, max_bots, per_user, updated_at) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
             min_idle = excluded.min_idle, max_bots = excluded.max_bots, \
             per_user = excluded.per_user, updated_at = excluded.updated_at",
        )
        .bind(i64::from(s.min_idle))
        .bind(i64::from(s.max_bots))
        .bind(i64::from(s.per_user))
        .bind(to_db_ms(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Becomes the scheduler if no other replica is. SQLite serves one process: always.
    pub async fn try_lead(&self) -> Result<Option<Leadership>> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(Leadership { conn: None }));
        }
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SCHEDULER_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then_some(Leadership { conn: Some(conn) }))
    }
}
