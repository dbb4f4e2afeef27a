//! `DELETE /meetings/{id}` (its owner, or an admin) and `DELETE /me` (an account and the
//! meetings it owns, confirmed with its password). Everything derived from a meeting goes with
//! it (`crate::deletion`); afterwards it is not found anywhere, its share link included.

use super::client_addr::ClientAddr;
use super::error::ApiJson;
use super::meetings::visible_by_raw_id;
use super::{ApiError, AppState, AuthUser};
use crate::store::{Meeting, MeetingStatus, Role};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parley_shared::MeetingId;
use serde::Deserialize;

/// Asks a bot still in the meeting to leave, then deletes the meeting.
async fn stop_and_delete(state: &AppState, meeting: &Meeting) -> Result<(), ApiError> {
    let id = meeting.meeting_id;
    if matches!(
        meeting.status,
        MeetingStatus::Joining | MeetingStatus::InProgress
    ) && let Err(e) = state.fleet.stop(id).await
    {
        // Its events are dropped and erased as they arrive; it leaves when left alone.
        tracing::warn!(meeting_id = %id, error = %e, "cannot ask a deleted meeting's bot to leave");
    }
    state.deleter.delete(id).await?;
    Ok(())
}

pub async fn delete_meeting(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let meeting = if user.0.role == Role::Admin {
        let id = MeetingId::parse(&raw).map_err(|_| ApiError::NotFound("no such meeting"))?;
        state
            .store
            .meeting(id)
            .await?
            .ok_or(ApiError::NotFound("no such meeting"))?
    } else {
        let meeting = visible_by_raw_id(&state, &user, &raw).await?;
        if meeting.owner_id != user.0.user_id {
            return Err(ApiError::Forbidden(
                "only the meeting's owner can delete it",
            ));
        }
        meeting
    };
    stop_and_delete(&state, &meeting).await?;
    tracing::info!(user_id = %user.0.user_id, meeting_id = %meeting.meeting_id, "meeting deleted on request");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    password: String,
}

pub async fn delete_me(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    user: AuthUser,
    ApiJson(body): ApiJson<DeleteAccount>,
) -> Result<StatusCode, ApiError> {
    let wrong = "the password is not right";
    super::passwords::confirm(&state, client, &user, body.password, wrong).await?;
    let user_id = user.0.user_id;
    // Twice at most: a meeting a calendar made meanwhile is deleted on the second pass.
    for _ in 0..2 {
        for id in state.store.meetings_owned_by(user_id).await? {
            if let Some(meeting) = state.store.meeting(id).await? {
                stop_and_delete(&state, &meeting).await?;
            }
        }
        if state.store.delete_user(user_id).await? {
            tracing::info!(%user_id, "account deleted with its meetings");
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    Err(ApiError::Unavailable(
        "the account kept getting new meetings; try again".to_owned(),
    ))
}
