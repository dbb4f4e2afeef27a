//! A meeting's recordings (one Ogg/Opus file per speaker and join): listed and downloaded by its
//! participants through the API, or through the meeting's share link from the meeting page.

use super::{ApiError, AppState, AuthUser};
use crate::store::Meeting;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Serialize)]
pub struct RecordingView {
    /// The file, `SPEAKER_KEY-N.ogg` (N counts the speaker's joins).
    pub name: String,
    pub speaker: String,
    pub speaker_name: String,
    pub url: String,
}

/// The meeting's recordings; `url_base` is where `NAME` is appended to download one.
pub async fn list(
    state: &AppState,
    meeting: &Meeting,
    url_base: &str,
) -> Result<Vec<RecordingView>, ApiError> {
    let Some(store) = state.recordings.as_ref().filter(|_| meeting.record) else {
        return Ok(Vec::new());
    };
    let names = store
        .list(meeting.meeting_id)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot list recordings: {e}")))?;
    let participants = state.store.participants(meeting.meeting_id).await?;
    Ok(names
        .into_iter()
        .filter_map(|full| {
            let name = full.rsplit('/').next()?.to_owned();
            let speaker = name.strip_suffix(".ogg")?.rsplit_once('-')?.0.to_owned();
            let speaker_name = participants
                .iter()
                .find(|p| p.speaker_key == speaker)
                .map_or_else(|| speaker.clone(), |p| p.display_name.clone());
            Some(RecordingView {
                url: format!("{url_base}{name}"),
                name,
                speaker,
                speaker_name,
            })
        })
        .collect())
}

/// One recording's bytes. Names are checked against what the recorder writes, so a request can
/// never reach outside the meeting's folder.
pub async fn download(
    state: &AppState,
    meeting: &Meeting,
    name: &str,
) -> Result<Response, ApiError> {
    const MISSING: ApiError = ApiError::NotFound("no such recording");
    let valid = name.ends_with(".ogg")
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    let store = state
        .recordings
        .as_ref()
        .filter(|_| meeting.record)
        .ok_or(MISSING)?;
    if !valid {
        return Err(MISSING);
    }
    let bytes = store
        .get(&format!("{}/{name}", meeting.meeting_id))
        .await
        .map_err(|_| MISSING)?;
    Ok((
        [
            (header::CONTENT_TYPE, "audio/ogg".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

pub async fn list_route(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let meeting = super::meetings::visible_by_raw_id(&state, &user, &id).await?;
    let base = format!(
        "{}/meetings/{}/recordings/",
        state.public_url.trim_end_matches('/'),
        meeting.meeting_id
    );
    Ok(Json(
        json!({ "recordings": list(&state, &meeting, &base).await? }),
    ))
}

pub async fn download_route(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let meeting = super::meetings::visible_by_raw_id(&state, &user, &id).await?;
    download(&state, &meeting, &name).await
}
