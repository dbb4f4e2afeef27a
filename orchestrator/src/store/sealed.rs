//! Secrets on their way into and out of the database: sealed under the server's key, with a
//! hash or a redacted form beside them where rows must be found or shown without opening them.

use super::{Result, Store, StoreError};
use crate::auth::ShareToken;
use sqlx::Row;

const CHECK_VALUE: &str = "parley sealing check";

impl Store {
    pub(super) fn seal(&self, plain: &str) -> Result<String> {
        self.sealer.seal(plain).map_err(StoreError::Sealed)
    }

    pub(super) fn open_sealed(&self, sealed: &str) -> Result<String> {
        self.sealer.open(sealed).map_err(StoreError::Sealed)
    }

    /// Fails unless the key opens what this database's first server sealed.
    pub(super) async fn check_key(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO sealing_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(self.seal(CHECK_VALUE)?)
        .execute(&self.pool)
        .await?;
        let sealed: String = sqlx::query("SELECT sealed FROM sealing_check WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("sealed")?;
        match self.sealer.open(&sealed) {
            Ok(v) if v == CHECK_VALUE => Ok(()),
            _ => Err(StoreError::Sealed(anyhow::anyhow!(
                "this database's secrets were sealed with another key: start every server (and \
                 `parley admin`) with the same PARLEY_SECRET_KEY"
            ))),
        }
    }

    /// Seals the share tokens and feed addresses earlier versions stored in the clear. Replicas
    /// starting together may both seal a row; either result opens to the same value.
    pub(super) async fn seal_plaintext(&self) -> Result<()> {
        let rows = sqlx::query(
            "SELECT meeting_id, share_token FROM meetings WHERE share_token IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let id: String = row.try_get("meeting_id")?;
            let raw: String = row.try_get("share_token")?;
            let (hash, sealed) = self.share_columns(ShareToken::parse(&raw).as_ref())?;
            sqlx::query(
                "UPDATE meetings SET share_hash = $1, share_sealed = $2, share_token = NULL \
                 WHERE meeting_id = $3",
            )
            .bind(hash)
            .bind(sealed)
            .bind(&id)
            .execute(&self.pool)
            .await?;
        }
        let rows = sqlx::query("SELECT calendar_id, url FROM calendars WHERE url_sealed IS NULL")
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let id: String = row.try_get("calendar_id")?;
            let url: String = row.try_get("url")?;
            sqlx::query("UPDATE calendars SET url = $1, url_sealed = $2 WHERE calendar_id = $3")
                .bind(redacted_url(&url))
                .bind(self.seal(&url)?)
                .bind(&id)
                .execute(&self.pool)
                .await?;
        }
        if !rows.is_empty() {
            tracing::info!(
                calendars = rows.len(),
                "sealed calendar feed addresses stored in the clear"
            );
        }
        Ok(())
    }
}

/// What an address may show of itself: scheme, host and port. Paths of private feeds
/// (`/private-…/basic.ics`) and credentials are the secret.
pub(super) fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", u.scheme()),
            (Some(host), None) => format!("{}://{host}/…", u.scheme()),
            (None, _) => "…".to_owned(),
        },
        Err(_) => "…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn redacted_addresses_keep_only_scheme_host_and_port() {
        assert_eq!(
            redacted_url(
                "https://user:pw@calendar.google.com/calendar/ical/x/private-abc/basic.ics"
            ),
            "https://calendar.google.com/…"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:5232/alice/work/?token=1"),
            "http://127.0.0.1:5232/…"
        );
        assert_eq!(redacted_url("not a url"), "…");
    }
}
