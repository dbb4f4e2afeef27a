//! Accounts: users with an argon2 hash and a role.

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
}

/// The columns [`user_from_row`] reads, as a literal so queries stay `&'static str`.
macro_rules! user_columns {
    () => {
        "user_id, email, name, role, created_at"
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
    })
}

impl Store {
    /// Creates an account, or returns `None` when the address is taken. The first account of a
    /// fresh installation is the admin. Meetings the address was invited to become visible.
    pub async fn create_user(
        &self,
        email: &EmailAddress,
        name: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Option<User>> {
        let mut tx = self.pool.begin().await?;
        let user_id = Uuid::new_v4();
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, email, name, password_hash, role, created_at) \
             SELECT $1, $2, $3, $4, \
                    CASE WHEN EXISTS (SELECT 1 FROM users) THEN 'user' ELSE 'admin' END, $5 \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(user_id.to_string())
        .bind(email.as_str())
        .bind(name)
        .bind(password_hash)
        .bind(to_db_ms(now_ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO user_meetings (id, user_id, meeting_id, joined_at) \
             SELECT meeting_id || ':' || $1, $1, meeting_id, $2 FROM meeting_invitees \
             WHERE email = $3 ON CONFLICT (user_id, meeting_id) DO NOTHING",
        )
        .bind(user_id.to_string())
        .bind(to_db_ms(now_ms))
        .bind(email.as_str())
        .execute(&mut *tx)
        .await?;
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
