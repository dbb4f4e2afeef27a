//! API keys: only a SHA-256 of each key is stored, like session tokens; a key is revoked by
//! deleting it.

use super::{Result, Store, corrupt, from_db_ms, optional_ms, to_db_ms, uuid_column};
use crate::auth::Scopes;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

/// How often at most a key's last use is written: every request would be a write.
const LAST_USE_RESOLUTION_MS: u64 = 60_000;

/// A key as its owner sees it: never the key itself.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub last_used_at: Option<u64>,
}

/// A live key's account and what it may do.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub scopes: Scopes,
    pub last_used_at: Option<u64>,
}

fn scopes(row: &AnyRow) -> Result<Scopes> {
    let text: String = row.try_get("scopes")?;
    Scopes::from_stored(&text).ok_or_else(|| corrupt("api key scopes"))
}

impl Store {
    pub async fn create_api_key(
        &self,
        user_id: Uuid,
        name: &str,
        key_hash: &str,
        scopes: &Scopes,
        now_ms: u64,
        expires_at_ms: Option<u64>,
    ) -> Result<ApiKey> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_keys (key_id, user_id, name, key_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(name)
        .bind(key_hash)
        .bind(scopes.to_stored())
        .bind(to_db_ms(now_ms))
        .bind(expires_at_ms.map(to_db_ms))
        .execute(&self.pool)
        .await?;
        Ok(ApiKey {
            id,
            name: name.to_owned(),
            scopes: scopes.clone(),
            created_at: now_ms,
            expires_at: expires_at_ms,
            last_used_at: None,
        })
    }

    /// The account's keys, newest first.
    pub async fn api_keys_of(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT key_id, name, scopes, created_at, expires_at, last_used_at FROM api_keys \
             WHERE user_id = $1 ORDER BY created_at DESC, key_id",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKey {
                    id: uuid_column(row, "api key", "key_id")?,
                    name: row.try_get("name")?,
                    scopes: scopes(row)?,
                    created_at: from_db_ms(row.try_get("created_at")?),
                    expires_at: optional_ms(row, "expires_at")?,
                    last_used_at: optional_ms(row, "last_used_at")?,
                })
            })
            .collect()
    }

    pub async fn count_api_keys(&self, user_id: Uuid) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Revokes one of the account's keys; whether it had it.
    pub async fn delete_api_key(&self, user_id: Uuid, key_id: Uuid) -> Result<bool> {
        let n = sqlx::query("DELETE FROM api_keys WHERE key_id = $1 AND user_id = $2")
            .bind(key_id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The grant of an unexpired key of an enabled account.
    pub async fn api_key_grant(&self, key_hash: &str, now_ms: u64) -> Result<Option<KeyGrant>> {
        let row = sqlx::query(
            "SELECT k.key_id, k.user_id, k.scopes, k.last_used_at FROM api_keys k \
             JOIN users u ON u.user_id = k.user_id \
             WHERE k.key_hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2) \
             AND u.disabled_at IS NULL",
        )
        .bind(key_hash)
        .bind(to_db_ms(now_ms))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(KeyGrant {
                key_id: uuid_column(&row, "api key", "key_id")?,
                user_id: uuid_column(&row, "api key", "user_id")?,
                scopes: scopes(&row)?,
                last_used_at: optional_ms(&row, "last_used_at")?,
            })
        })
        .transpose()
    }

    /// Records that the key was used now, at most once a minute.
    pub async fn touch_api_key(&self, grant: &KeyGrant, now_ms: u64) -> Result<()> {
        if grant
            .last_used_at
            .is_some_and(|at| now_ms.saturating_sub(at) < LAST_USE_RESOLUTION_MS)
        {
            return Ok(());
        }
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_id = $2")
            .bind(to_db_ms(now_ms))
            .bind(grant.key_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
