//! Meetings: create, list, get, end, transcript, summary; and the seed's `POST /meeting/started`
//! and `GET /meeting/summary`. A caller sees only meetings they own or took part in; anything
//! else is 404, exactly as a meeting that does not exist.

use super::accounts::{check_name, parse_rfc3339, rfc3339};
use super::error::{ApiJson, ApiQuery};
use super::{ApiError, AppState, AuthUser};
use crate::auth::{Scope, ShareToken};
use crate::clock::now_ms;
use crate::fleet::{Assigned, reach};
use crate::live::share_link;
use crate::mail::policy::QUOTA_WINDOW;
use crate::store::metadata::Metadata;
use crate::store::{
    JobKind, Meeting, MeetingStatus, NewMeeting, Participant, Role, ShareScope, Summary, metadata,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_shared::transcript::{Transcript, TranscriptFormat};
use parley_shared::{EmailAddress, MeetingId, MeetingLink, MeetingUrl, Platform};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a bot asked to leave has to publish its last finals before the summary is written
/// without them.
const BOT_LEAVE_GRACE_MS: u64 = 60_000;

#[derive(Serialize)]
pub struct MeetingView {
    meeting_id: MeetingId,
    title: String,
    url: String,
    platform: Platform,
    status: MeetingStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    owner_id: uuid::Uuid,
    start_time: Option<String>,
    end_time: Option<String>,
    created_at: String,
    record: bool,
    /// The live captions link; `null` after its owner revoked it.
    live_url: Option<String>,
    /// What the link shows besides captions and the transcript.
    share_scope: ShareScope,
    /// Days after it is over that the meeting is deleted; `null`: the server's retention.
    retention_days: Option<u32>,
    /// While the meeting runs: since when its bot hears no audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    capture_stalled_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<Participant>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invitees: Option<Vec<EmailAddress>>,
    /// The owner's metadata; others never see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

impl MeetingView {
    fn new(state: &AppState, m: Meeting) -> Self {
        Self {
            live_url: m
                .share_token
                .as_ref()
                .map(|t| share_link(&state.public_url, t)),
            meeting_id: m.meeting_id,
            title: m.title,
            url: m.url.to_string(),
            platform: m.platform,
            status: m.status,
            status_reason: m.status_reason,
            owner_id: m.owner_id,
            start_time: m.start_time_ms.map(rfc3339),
            end_time: m.end_time_ms.map(rfc3339),
            created_at: rfc3339(m.created_at_ms),
            record: m.record,
            share_scope: m.share_scope,
            retention_days: m.retention_days,
            capture_stalled_since: m
                .capture_stalled_ms
                .filter(|_| m.status == MeetingStatus::InProgress)
                .map(rfc3339),
            participants: None,
            invitees: None,
            metadata: None,
        }
    }

    /// The view `user` gets: the owner sees the metadata too.
    fn for_viewer(state: &AppState, m: Meeting, user: &AuthUser) -> Self {
        let metadata = (m.owner_id == user.0.user_id).then(|| m.metadata.clone());
        Self {
            metadata,
            ..Self::new(state, m)
        }
    }
}

fn meeting_id(raw: &str) -> Result<MeetingId, ApiError> {
    MeetingId::parse(raw).map_err(|_| ApiError::NotFound("no such meeting"))
}

async fn visible(state: &AppState, user: &AuthUser, id: MeetingId) -> Result<Meeting, ApiError> {
    state
        .store
        .visible_meeting(user.0.user_id, id)
        .await?
        .ok_or(ApiError::NotFound("no such meeting"))
}

/// A meeting the caller may see, from the id in a path.
pub async fn visible_by_raw_id(
    state: &AppState,
    user: &AuthUser,
    raw: &str,
) -> Result<Meeting, ApiError> {
    visible(state, user, meeting_id(raw)?).await
}

/// Visible and owned by the caller (or the caller is an admin).
async fn owned(state: &AppState, user: &AuthUser, id: MeetingId) -> Result<Meeting, ApiError> {
    let meeting = visible(state, user, id).await?;
    if meeting.owner_id != user.0.user_id && user.0.role != Role::Admin {
        return Err(ApiError::Forbidden("only the meeting's owner can do this"));
    }
    Ok(meeting)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMeeting {
    title: String,
    url: String,
    start_time: Option<String>,
    participants: Option<Vec<String>>,
    /// Record each speaker's audio (default true).
    record: Option<bool>,
    /// The integrator's own strings, shown to the owner and usable as a filter.
    metadata: Option<Metadata>,
    /// Delete the meeting this many days after it is over (1 to 3650).
    retention_days: Option<u32>,
}

/// The longest retention a meeting may ask for: ten years.
const MAX_RETENTION_DAYS: u32 = 3650;

fn new_meeting(
    state: &AppState,
    user: &AuthUser,
    body: CreateMeeting,
) -> Result<NewMeeting, ApiError> {
    let title = check_name(&body.title, "title")?;
    let url = MeetingUrl::parse(&body.url).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Ok(MeetingLink::LiveKit(livekit)) = url.link() {
        livekit
            .check_server(&state.livekit_servers)
            .map_err(ApiError::BadRequest)?;
    }
    if url.platform() == Platform::Replay && user.0.role != Role::Admin {
        // A replay link makes the server read audio files from its own disk.
        return Err(ApiError::Forbidden(
            "replay: meetings read files on the server and need the admin role",
        ));
    }
    let start_time_ms = body.start_time.as_deref().map(parse_rfc3339).transpose()?;
    let raw = body.participants.unwrap_or_default();
    let quotas = &state.mail_policy.quotas;
    if raw.len() > quotas.invitees_per_meeting {
        return Err(ApiError::BadRequest(format!(
            "at most {} participants (PARLEY_MAX_INVITEES)",
            quotas.invitees_per_meeting
        )));
    }
    let invitees = raw
        .iter()
        .map(|e| {
            let address = EmailAddress::parse(e).map_err(|_| {
                ApiError::BadRequest(format!("participant {e:?} is not a valid email address"))
            })?;
            if !state.mail_policy.may_invite(&address) {
                return Err(ApiError::BadRequest(format!(
                    "participant {e:?} is outside this server's mail domains ({})",
                    state.mail_policy.domains().join(", ")
                )));
            }
            Ok(address)
        })
        .collect::<Result<_, _>>()?;
    let metadata = body.metadata.unwrap_or_default();
    metadata.check().map_err(ApiError::BadRequest)?;
    if body
        .retention_days
        .is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d))
    {
        return Err(ApiError::BadRequest(format!(
            "retention_days must be from 1 to {MAX_RETENTION_DAYS}"
        )));
    }
    Ok(NewMeeting {
        owner_id: user.0.user_id,
        title,
        url,
        start_time_ms,
        invitees,
        record: body.record.unwrap_or(true),
        metadata,
        retention_days: body.retention_days,
    })
}

/// Stores a new meeting if the account may make one: its address is verified and it is within
/// its daily quota.
async fn create_for(
    state: &AppState,
    user: &AuthUser,
    new: NewMeeting,
    now: u64,
) -> Result<Meeting, ApiError> {
    user.require_verified()?;
    if let Ok(link) = new.url.link() {
        reach::check_link(&state.egress, &link)
            .await
            .map_err(ApiError::BadRequest)?;
    }
    let day = QUOTA_WINDOW.as_millis() as u64;
    let (made, oldest) = state
        .store
        .meetings_created_since(user.0.user_id, now.saturating_sub(day))
        .await?;
    if made >= u64::from(state.mail_policy.quotas.meetings_per_day) {
        let wait = (oldest + day).saturating_sub(now).max(1000);
        return Err(ApiError::TooManyRequests(Duration::from_millis(wait)));
    }
    Ok(state.store.create_meeting(new, now).await?)
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateMeeting>,
) -> Result<(StatusCode, Json<MeetingView>), ApiError> {
    // Every meeting gets a bot: a key needs both scopes.
    user.require_scope(Scope::BotsWrite)?;
    let new = new_meeting(&state, &user, body)?;
    let meeting = create_for(&state, &user, new, now_ms()).await?;
    tracing::info!(meeting_id = %meeting.meeting_id, platform = meeting.platform.as_str(), "meeting created");
    state.fleet.wake();
    Ok((
        StatusCode::CREATED,
        Json(MeetingView::for_viewer(&state, meeting, &user)),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let number = |name: &str| {
        query
            .get(name)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| ApiError::BadRequest(format!("{name} must be a whole number")))
            })
            .transpose()
    };
    let limit = number("limit")?.unwrap_or(50).clamp(1, 200);
    let offset = number("offset")?.unwrap_or(0);
    let filters: Vec<(String, String)> = query
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("metadata.")?, value)))
        .map(|(key, value)| {
            metadata::check_key(key).map_err(ApiError::BadRequest)?;
            Ok((key.to_owned(), value.clone()))
        })
        .collect::<Result<_, ApiError>>()?;
    if filters.len() > metadata::MAX_KEYS {
        return Err(ApiError::BadRequest(format!(
            "at most {} metadata filters",
            metadata::MAX_KEYS
        )));
    }
    let meetings = state
        .store
        .visible_meetings(user.0.user_id, &filters, limit, offset)
        .await?;
    let views: Vec<MeetingView> = meetings
        .into_iter()
        .map(|m| MeetingView::for_viewer(&state, m, &user))
        .collect();
    Ok(Json(json!({ "meetings": views })))
}

pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<MeetingView>, ApiError> {
    let meeting = visible(&state, &user, meeting_id(&id)?).await?;
    let id = meeting.meeting_id;
    let is_owner = meeting.owner_id == user.0.user_id;
    let mut view = MeetingView::for_viewer(&state, meeting, &user);
    view.participants = Some(state.store.participants(id).await?);
    if is_owner {
        view.invitees = Some(state.store.invitees(id).await?);
    }
    Ok(Json(view))
}

pub async fn end(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<MeetingView>, ApiError> {
    let meeting = owned(&state, &user, meeting_id(&id)?).await?;
    let id = meeting.meeting_id;
    state
        .store
        .set_meeting_status(id, MeetingStatus::Ended, None, now_ms())
        .await?;
    // A bot that leaves publishes its last finals, then `meeting_ended`, which queues the summary
    // at once; this later one covers a bot that dies on the way out.
    let now = now_ms();
    let had_bot = matches!(
        meeting.status,
        MeetingStatus::Joining | MeetingStatus::InProgress
    );
    let summary_at = if had_bot {
        if let Err(e) = state.fleet.stop(id).await {
            // The bot leaves when the meeting ends on the platform, or when left alone.
            tracing::warn!(meeting_id = %id, error = %e, "cannot ask the bot to leave");
        } else {
            tracing::info!(meeting_id = %id, "asked the bot to leave");
        }
        now + BOT_LEAVE_GRACE_MS
    } else {
        now
    };
    state
        .store
        .enqueue_job(JobKind::Summary, id, "", summary_at, now)
        .await?;
    let meeting = state
        .store
        .meeting(id)
        .await?
        .ok_or(ApiError::NotFound("no such meeting"))?;
    Ok(Json(MeetingView::for_viewer(&state, meeting, &user)))
}

/// Replaces the live captions link: the old one stops working (open pages close within a
/// second) and the new one is returned.
pub async fn rotate_live_link(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let meeting = owned(&state, &user, meeting_id(&id)?).await?;
    let token = ShareToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    state
        .store
        .set_share_token(meeting.meeting_id, Some(&token))
        .await?;
    tracing::info!(meeting_id = %meeting.meeting_id, "live captions link replaced");
    Ok(Json(
        json!({ "live_url": share_link(&state.public_url, &token) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSettings {
    scope: ShareScope,
}

/// Sets what the live captions link shows besides captions and the transcript: the summary,
/// or the summary and recordings. The link itself stays the same.
pub async fn set_share_scope(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ShareSettings>,
) -> Result<Json<Value>, ApiError> {
    let meeting = owned(&state, &user, meeting_id(&id)?).await?;
    state
        .store
        .set_share_scope(meeting.meeting_id, body.scope)
        .await?;
    tracing::info!(meeting_id = %meeting.meeting_id, scope = body.scope.as_str(), "live captions link scope set");
    Ok(Json(json!({ "share_scope": body.scope })))
}

/// Turns the live captions link off; open pages close within a second.
pub async fn revoke_live_link(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let meeting = owned(&state, &user, meeting_id(&id)?).await?;
    state
        .store
        .set_share_token(meeting.meeting_id, None)
        .await?;
    tracing::info!(meeting_id = %meeting.meeting_id, "live captions link revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct TranscriptQuery {
    format: Option<String>,
}

pub async fn transcript(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TranscriptQuery>,
) -> Result<Response, ApiError> {
    let format: TranscriptFormat = q
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let meeting = visible(&state, &user, meeting_id(&id)?).await?;
    let segments = state.store.segments(meeting.meeting_id, false).await?;
    let transcript = Transcript::from_lines(segments.iter().map(|s| s.line()).collect());
    let content_type = match format {
        TranscriptFormat::Json => "application/json",
        TranscriptFormat::Srt => "application/x-subrip; charset=utf-8",
        TranscriptFormat::Vtt => "text/vtt; charset=utf-8",
        TranscriptFormat::Txt => "text/plain; charset=utf-8",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        transcript.render(format),
    )
        .into_response())
}

async fn summary_of(
    state: &AppState,
    user: &AuthUser,
    id: MeetingId,
) -> Result<Json<Value>, ApiError> {
    let meeting = visible(state, user, id).await?;
    let summary = state
        .store
        .summary(meeting.meeting_id)
        .await?
        .ok_or(ApiError::NotFound(
            "no summary yet: it is made when the meeting ends",
        ))?;
    Ok(Json(summary_view(meeting.meeting_id, summary)))
}

/// A summary as the API and the meeting page show it.
pub fn summary_view(id: MeetingId, summary: Summary) -> Value {
    json!({
        "meeting_id": id,
        "generated_at": rfc3339(summary.generated_at_ms),
        "summary": summary.summary_text,
        "highlights": summary.highlights,
        "action_items": summary.action_items,
        "open_questions": summary.open_questions,
        "model": summary.model,
        "fallback_reason": summary.fallback_reason,
    })
}

pub async fn summary(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    summary_of(&state, &user, meeting_id(&id)?).await
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    meeting_id: String,
}

/// The seed's `GET /meeting/summary?meeting_id=…`.
pub async fn summary_by_query(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> Result<Json<Value>, ApiError> {
    summary_of(&state, &user, meeting_id(&q.meeting_id)?).await
}

/// The seed's `POST /meeting/started`: a meeting is starting now, send the bot. Either names an
/// existing meeting (`meeting_id`) or describes a new one (`title`, `url`, `participants`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Started {
    meeting_id: Option<String>,
    title: Option<String>,
    url: Option<String>,
    participants: Option<Vec<String>>,
}

pub async fn started(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<Started>,
) -> Result<(StatusCode, Json<MeetingView>), ApiError> {
    user.require_verified()?;
    let now = now_ms();
    let (status, meeting) = match (body.meeting_id, body.url) {
        (Some(id), None) => {
            let meeting = owned(&state, &user, meeting_id(&id)?).await?;
            (StatusCode::OK, meeting)
        }
        (None, Some(url)) => {
            let new = new_meeting(
                &state,
                &user,
                CreateMeeting {
                    title: body.title.unwrap_or_else(|| "Meeting".to_owned()),
                    url,
                    start_time: Some(rfc3339(now)),
                    participants: body.participants,
                    record: None,
                    metadata: None,
                    retention_days: None,
                },
            )?;
            (
                StatusCode::CREATED,
                create_for(&state, &user, new, now).await?,
            )
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give either meeting_id, or url (with an optional title and participants)"
                    .to_owned(),
            ));
        }
    };
    // A Zoom meeting's bot goes when Zoom starts its media stream (the webhook), not before.
    if meeting.status == MeetingStatus::Scheduled && meeting.platform != Platform::Zoom {
        let assigned = state
            .fleet
            .assign_now(&meeting, None)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        match assigned {
            Assigned::Queued | Assigned::NotScheduled | Assigned::Refused => {}
            Assigned::FleetFull => {
                return Err(ApiError::Unavailable(
                    "every bot is busy; the meeting gets one when a bot is free".to_owned(),
                ));
            }
            Assigned::UserLimit => {
                return Err(ApiError::Forbidden(
                    "you have as many bots in meetings as one user may; the meeting gets one when one of them leaves",
                ));
            }
        }
    }
    let meeting = state
        .store
        .meeting(meeting.meeting_id)
        .await?
        .ok_or(ApiError::NotFound("no such meeting"))?;
    Ok((
        status,
        Json(MeetingView::for_viewer(&state, meeting, &user)),
    ))
}
