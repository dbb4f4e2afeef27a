//! Meeting summaries (written by the summary worker once a meeting ends).

use super::{Result, Store, from_db_ms};
use parley_shared::MeetingId;
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub generated_at_ms: u64,
    pub summary_text: String,
    /// JSON arrays as stored.
    pub highlights: serde_json::Value,
    pub action_items: serde_json::Value,
    pub model: String,
}

impl Store {
    pub async fn summary(&self, id: MeetingId) -> Result<Option<Summary>> {
        let row = sqlx::query(
            "SELECT generated_at, summary_text, highlights, action_items, model FROM summaries \
             WHERE meeting_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let json = |col: &str| -> Result<serde_json::Value> {
                let s: String = r.try_get(col)?;
                serde_json::from_str(&s).map_err(|_| super::corrupt(format!("summary {col}")))
            };
            Ok(Summary {
                generated_at_ms: from_db_ms(r.try_get("generated_at")?),
                summary_text: r.try_get("summary_text")?,
                highlights: json("highlights")?,
                action_items: json("action_items")?,
                model: r.try_get("model")?,
            })
        })
        .transpose()
    }
}
