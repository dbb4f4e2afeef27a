//! Accounts: users with an argon2 hash, a role, and whether their address is verified.

use super::{Result, Store, corrupt, from_db_ms, to_db_ms};
use parley_shared::EmailAddress;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub user_id: Uuid,
    pub email: EmailAddress,
    pub name: String,
    pub role: Role,
    pub created_at_ms: u64,
    /// Proven to receive mail at `email`: only then do invitations to it show meetings.
    pub email_verified: bool,
    /// Disabled by an admin: cannot log in.
    pub disabled: bool,
}

/// The columns [`user_from_row`] reads, as a literal so queries stay `&'static str`.
macro_rules! user_columns {
    () => {
        "user_id, email, name, role, created_at, email_verified_at, disabled_at"
    };
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    let id: String = row.try_get("user_id")?;
    let email: String = row.try_get("email")?;
    let role: String = row.try_get("role")?;
    Ok(User {
        user_id: Uuid::parse_str(&id).map_err(|_| corrupt("user id"))?,
        email: EmailAddress::parse(&email).map_err(|_| corrupt("user email"))?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("user role"))?,
        created_at_ms: from_db_ms(row.try_get("created_at")?),
        email_verified: row
            .try_get::<Option<i64>, _>("email_verified_at")?
            .is_some(),
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

impl Store {
    /// Creates an account, or returns `None` when the address is taken. Meetings the address
    /// was invited to become visible once the address is verified ([`Store::verify_email`]).
    pub async fn create_user(
        &self,
        email: &EmailAddress,
        name: &str,
        password_hash: &str,
        role: Role,
        now_ms: u64,
    ) -> Result<Option<User>> {
        let mut tx = self.pool.begin().await?;
        let user_id = Uuid::new_v4();
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, email, name, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        )
        .bind(user_id.to_string())
        .bind(email.as_str())
        .bind(name)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(to_db_ms(now_ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE user_id = $1"
        ))
        .bind(user_id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        user_from_row(&row).map(Some)
    }

    /// Keeps a mailed token (its hash) for the account until `expires_ms`.
    pub async fn add_account_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        purpose: TokenPurpose,
        expires_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(purpose.as_str())
        .bind(to_db_ms(expires_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Verifies the address a live token was mailed to; the account it belongs to, or `None`
    /// for an unknown, spent or expired token.
    pub async fn verify_email(&self, token_hash: &str, now_ms: u64) -> Result<Option<Uuid>> {
        let mut tx = self.pool.begin().await?;
        let Some(user_id) = take_token(&mut tx, token_hash, TokenPurpose::Verify, now_ms).await?
        else {
            return Ok(None);
        };
        mark_verified(&mut tx, user_id, now_ms).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    /// Sets a new password with a mailed reset token: every session ends, and the address is
    /// verified (the mail reached its owner). The account, or `None` for a bad token.
    pub async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Option<Uuid>> {
        let mut tx = self.pool.begin().await?;
        let Some(user_id) = take_token(&mut tx, token_hash, TokenPurpose::Reset, now_ms).await?
        else {
            return Ok(None);
        };
        set_password_in(&mut tx, user_id, password_hash, None).await?;
        mark_verified(&mut tx, user_id, now_ms).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    /// Replaces the password and ends every session but `keep` (the one that changed it).
    pub async fn set_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        set_password_in(&mut tx, user_id, password_hash, keep).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables or re-enables an account; disabling ends its sessions. Whether it exists.
    pub async fn set_disabled(&self, user_id: Uuid, disabled: bool, now_ms: u64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET disabled_at = $1 WHERE user_id = $2")
            .bind(disabled.then(|| to_db_ms(now_ms)))
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if disabled {
            end_sessions(&mut tx, user_id, None).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Marks an address verified without a mailed token: accounts an operator makes.
    pub async fn set_email_verified(&self, user_id: Uuid, now_ms: u64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        mark_verified(&mut tx, user_id, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account and its password hash, for login.
    pub async fn user_credentials(&self, email: &EmailAddress) -> Result<Option<(User, String)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn user(&self, user_id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE user_id = $1"
        ))
        .bind(user_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at, email"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Returns whether the user exists.
    pub async fn set_role(&self, user_id: Uuid, role: Role) -> Result<bool> {
        let n = sqlx::query("UPDATE users SET role = $1 WHERE user_id = $2")
            .bind(role.as_str())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Verify,
    Reset,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Spends a live token: the account it was for.
async fn take_token(
    tx: &mut Tx<'_>,
    token_hash: &str,
    purpose: TokenPurpose,
    now_ms: u64,
) -> Result<Option<Uuid>> {
    let row = sqlx::query(
        "DELETE FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
         RETURNING user_id",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(to_db_ms(now_ms))
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        let id: String = r.try_get("user_id")?;
        Uuid::parse_str(&id).map_err(|_| corrupt("user id"))
    })
    .transpose()
}

async fn set_password_in(
    tx: &mut Tx<'_>,
    user_id: Uuid,
    password_hash: &str,
    keep: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE user_id = $2")
        .bind(password_hash)
        .bind(user_id.to_string())
        .execute(&mut **tx)
        .await?;
    end_sessions(tx, user_id, keep).await
}

/// Ends the account's sessions, all or all but `keep`.
async fn end_sessions(tx: &mut Tx<'_>, user_id: Uuid, keep: Option<&str>) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id.to_string())
        .bind(keep.unwrap_or(""))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks the address verified, spends its tokens, and shows the account the meetings its
/// address was invited to.
async fn mark_verified(tx: &mut Tx<'_>, user_id: Uuid, now_ms: u64) -> Result<()> {
    let id = user_id.to_string();
    sqlx::query(
        "UPDATE users SET email_verified_at = $1 WHERE user_id = $2 AND email_verified_at IS NULL",
    )
    .bind(to_db_ms(now_ms))
    .bind(&id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = 'verify'")
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO user_meetings (id, user_id, meeting_id, joined_at) \
         SELECT i.meeting_id || ':' || u.user_id, u.user_id, i.meeting_id, $2 \
         FROM meeting_invitees i JOIN users u ON u.email = i.email WHERE u.user_id = $1 \
         ON CONFLICT (user_id, meeting_id) DO NOTHING",
    )
    .bind(&id)
    .bind(to_db_ms(now_ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
