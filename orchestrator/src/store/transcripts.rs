//! Transcript segments: batched, idempotent upserts keyed by `(meeting_id, segment_id)`.

use super::{Result, Store, corrupt, from_db_ms, to_db_ms};
use parley_shared::{MeetingId, transcript::TranscriptLine};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;
use std::fmt::Write as _;
use uuid::Uuid;

/// A segment as the ingest writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    pub meeting_id: MeetingId,
    pub segment_id: Uuid,
    pub speaker_key: String,
    pub speaker_name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub is_final: bool,
    pub seq: u64,
    pub received_ms: u64,
}

impl SegmentRow {
    /// Whether this version of a segment should replace `other`: a final beats a partial, and
    /// within the same kind the later one (by the bot's sequence number) wins.
    fn supersedes(&self, other: &SegmentRow) -> bool {
        (self.is_final, self.seq) >= (other.is_final, other.seq)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredSegment {
    pub segment_id: Uuid,
    pub speaker: String,
    pub speaker_name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The bot's sequence number of this version, which orders a segment's versions.
    #[serde(skip)]
    pub seq: u64,
}

impl StoredSegment {
    pub fn line(&self) -> TranscriptLine {
        TranscriptLine {
            speaker: self.speaker_name.clone(),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            text: self.text.clone(),
        }
    }
}

const COLUMNS: usize = 11;
/// Rows per INSERT: 11 binds each stays far below both backends' parameter limits (SQLite 32766,
/// Postgres 65535) while amortising the round trip.
const ROWS_PER_STATEMENT: usize = 500;

/// The upsert's rule, applied by the database for rows already stored: a stored final is only
/// replaced by another final, and a stored partial by a final or a newer partial.
const ON_CONFLICT: &str = " ON CONFLICT (meeting_id, segment_id) DO UPDATE SET \
    speaker = excluded.speaker, speaker_name = excluded.speaker_name, \
    start_ms = excluded.start_ms, end_ms = excluded.end_ms, \
    transcribed_text = excluded.transcribed_text, is_final = excluded.is_final, \
    seq = excluded.seq, \"timestamp\" = excluded.\"timestamp\" \
    WHERE excluded.is_final OR (NOT transcriptions.is_final AND excluded.seq >= transcriptions.seq)";

impl Store {
    /// Writes segments in one transaction. Versions of one segment within the batch are reduced to
    /// the winner first (a statement may not touch a row twice).
    pub async fn upsert_segments(&self, rows: &[SegmentRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut winners: HashMap<(MeetingId, Uuid), &SegmentRow> = HashMap::new();
        for row in rows {
            winners
                .entry((row.meeting_id, row.segment_id))
                .and_modify(|w| {
                    if row.supersedes(w) {
                        *w = row;
                    }
                })
                .or_insert(row);
        }
        let mut batch: Vec<&SegmentRow> = winners.into_values().collect();
        // A stable order makes concurrent writers lock rows in the same order (no deadlocks).
        batch.sort_by_key(|r| (r.meeting_id, r.segment_id));
        let mut tx = self.pool.begin().await?;
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO transcriptions (transcription_id, meeting_id, segment_id, speaker, \
                 speaker_name, start_ms, end_ms, transcribed_text, is_final, seq, \"timestamp\") \
                 VALUES ",
            );
            for i in 0..chunk.len() {
                let base = i * COLUMNS;
                sql.push_str(if i == 0 { "(" } else { ", (" });
                for c in 1..=COLUMNS {
                    let sep = if c == COLUMNS { ")" } else { ", " };
                    // Writing to a String cannot fail.
                    let _ = write!(sql, "${}{sep}", base + c);
                }
            }
            sql.push_str(ON_CONFLICT);
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(Uuid::new_v4().to_string())
                    .bind(r.meeting_id.to_string())
                    .bind(r.segment_id.to_string())
                    .bind(r.speaker_key.clone())
                    .bind(r.speaker_name.clone())
                    .bind(to_db_ms(r.start_ms))
                    .bind(to_db_ms(r.end_ms))
                    .bind(r.text.clone())
                    .bind(r.is_final)
                    .bind(to_db_ms(r.seq))
                    .bind(to_db_ms(r.received_ms));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A meeting's segments in time order; partials only when asked for.
    pub async fn segments(&self, id: MeetingId, with_partials: bool) -> Result<Vec<StoredSegment>> {
        let rows = sqlx::query(
            // The flag is read as an integer: sqlx's Any driver cannot decode SQLite's BOOLEAN.
            "SELECT segment_id, speaker, speaker_name, start_ms, end_ms, transcribed_text, seq, \
             CASE WHEN is_final THEN 1 ELSE 0 END AS final_flag FROM transcriptions WHERE meeting_id = $1 AND (is_final OR $2) \
             ORDER BY start_ms, speaker, end_ms",
        )
        .bind(id.to_string())
        .bind(with_partials)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let seg: String = r.try_get("segment_id")?;
                Ok(StoredSegment {
                    segment_id: Uuid::parse_str(&seg).map_err(|_| corrupt("segment id"))?,
                    speaker: r.try_get("speaker")?,
                    speaker_name: r.try_get("speaker_name")?,
                    start_ms: from_db_ms(r.try_get("start_ms")?),
                    end_ms: from_db_ms(r.try_get("end_ms")?),
                    text: r.try_get("transcribed_text")?,
                    is_final: r.try_get::<i64, _>("final_flag")? != 0,
                    seq: from_db_ms(r.try_get("seq")?),
                })
            })
            .collect()
    }

    /// Which of `ids` are meetings this database knows.
    pub async fn existing_meetings(&self, ids: &[MeetingId]) -> Result<Vec<MeetingId>> {
        self.meeting_ids_in("meetings", ids).await
    }

    /// Those of `ids` that have a row in `table` (a table keyed by `meeting_id`).
    pub(super) async fn meeting_ids_in(
        &self,
        table: &'static str,
        ids: &[MeetingId],
    ) -> Result<Vec<MeetingId>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!("SELECT meeting_id FROM {table} WHERE meeting_id IN (");
            for i in 1..=chunk.len() {
                let sep = if i == chunk.len() { ")" } else { ", " };
                let _ = write!(sql, "${i}{sep}");
            }
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                let id: String = row.try_get("meeting_id")?;
                found.push(MeetingId::parse(&id).map_err(|_| corrupt("meeting id"))?);
            }
        }
        Ok(found)
    }
}
