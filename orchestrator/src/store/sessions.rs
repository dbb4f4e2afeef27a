//! Login sessions: only a SHA-256 of each bearer token is stored, so a database dump holds no
//! usable token.

use super::{Result, Store, from_db_ms, to_db_ms};
use sqlx::Row;
use uuid::Uuid;

impl Store {
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: Uuid,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(to_db_ms(now_ms))
        .bind(to_db_ms(expires_at_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user a live (unexpired) session of an enabled account belongs to.
    pub async fn session_user(&self, token_hash: &str, now_ms: u64) -> Result<Option<Uuid>> {
        let row = sqlx::query(
            "SELECT s.user_id FROM sessions s JOIN users u ON u.user_id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(to_db_ms(now_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("user_id"))
            .transpose()?
            .and_then(|id| Uuid::parse_str(&id).ok()))
    }

    /// Deletes expired sessions; returns how many.
    pub async fn purge_sessions(&self, now_ms: u64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_db_ms(now_ms))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }
}

/// A live session as its owner sees it: named by the start of its token's hash, which tells the
/// owner's sessions apart and is no use to anyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Hex digits of the token hash that name a session.
pub const SESSION_ID_LEN: usize = 16;

impl Store {
    /// The account's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: Uuid, now_ms: u64) -> Result<Vec<SessionInfo>> {
        let rows = sqlx::query(
            "SELECT token_hash, created_at, expires_at FROM sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC",
        )
        .bind(user_id.to_string())
        .bind(to_db_ms(now_ms))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let hash: String = r.try_get("token_hash")?;
                Ok(SessionInfo {
                    id: hash.chars().take(SESSION_ID_LEN).collect(),
                    created_at_ms: from_db_ms(r.try_get("created_at")?),
                    expires_at_ms: from_db_ms(r.try_get("expires_at")?),
                })
            })
            .collect()
    }

    /// Ends one of the account's sessions by its id; whether it had one.
    pub async fn delete_session_of(&self, user_id: Uuid, id: &str) -> Result<bool> {
        let n = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND substr(token_hash, 1, $2) = $3",
        )
        .bind(user_id.to_string())
        .bind(SESSION_ID_LEN as i32)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Ends every session of the account (log out everywhere); how many there were.
    pub async fn delete_sessions_of(&self, user_id: Uuid) -> Result<u64> {
        let n = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    /// Ends a session (logout); returns whether it existed.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
