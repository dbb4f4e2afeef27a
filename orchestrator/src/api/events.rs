//! `GET /meetings/{id}/events`: a meeting's live events for integrators, as Server-Sent Events
//! (authenticated by session or by an API key with `meetings:read`). A client without a cursor
//! first gets the stored transcript (`event: segment` without id, partials included) and then
//! `event: caught_up` whose id is the live log position it reflects. After that every segment
//! the ingest stores (partials and finals, the captions' schema) is an `event: segment` whose id
//! is its log cursor, so a client reconnecting with `Last-Event-ID` (or `?after=CURSOR`) resumes
//! from the log every replica shares: nothing missed, nothing twice. A cursor the log no longer
//! holds starts from the stored transcript again. Status changes are `event: status`;
//! `event: end` closes the stream once the meeting is over and everything stored before it was
//! sent.

use super::error::ApiQuery;
use super::meetings::visible_by_raw_id;
use super::{ApiError, AppState, AuthUser};
use crate::live::{Cursor, Hubs, Subscription};
use crate::store::MeetingStatus;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use parley_shared::MeetingId;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Events buffered for a slow client; past that the feed waits, falls behind the hub and
/// catches up from the log.
const BUFFER: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    after: Option<String>,
}

pub async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<After>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let meeting = visible_by_raw_id(&state, &user, &raw).await?;
    let given = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.after);
    let after = match given.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(Cursor::parse(raw).ok_or_else(|| {
            ApiError::BadRequest("the cursor is not one this server issued".to_owned())
        })?),
    };
    let hubs = Arc::clone(&state.live);
    let sub = hubs.subscribe(&meeting).await.map_err(ApiError::Internal)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(feed(tx, hubs, meeting.meeting_id, after, sub));
    let events =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The client went away.
struct Gone;

fn segment(cursor: Option<Cursor>, json: &str) -> Event {
    let data = match cursor {
        Some(c) => crate::live::segment_message(c, json),
        None => format!(r#"{{"type":"segment","segment":{json}}}"#),
    };
    let event = Event::default().event("segment").data(data);
    match cursor {
        Some(c) => event.id(c.to_string()),
        None => event,
    }
}

fn status(status: MeetingStatus) -> Event {
    Event::default()
        .event("status")
        .data(json!({"type": "status", "status": status}).to_string())
}

fn over(status: MeetingStatus) -> bool {
    matches!(status, MeetingStatus::Ended | MeetingStatus::Failed)
}

async fn send(tx: &mpsc::Sender<Event>, event: Event) -> Result<(), Gone> {
    tx.send(event).await.map_err(|_| Gone)
}

/// Sends what the log holds after `after` and returns the newest cursor sent; from the stored
/// transcript when the log no longer holds it all.
async fn catch_up(
    tx: &mpsc::Sender<Event>,
    hubs: &Hubs,
    id: MeetingId,
    after: Cursor,
) -> Result<Cursor, Gone> {
    match hubs.log.since(id, after).await {
        Ok(Some(entries)) => {
            let mut last = after;
            for (cursor, json) in entries {
                send(tx, segment(Some(cursor), &json)).await?;
                last = cursor;
            }
            Ok(last)
        }
        Ok(None) => snapshot(tx, hubs, id).await,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "meeting events cannot read the log"
            );
            snapshot(tx, hubs, id).await
        }
    }
}

/// Every stored segment, then `caught_up` with the log position they reflect (read first, so
/// anything appended meanwhile comes after it).
async fn snapshot(tx: &mpsc::Sender<Event>, hubs: &Hubs, id: MeetingId) -> Result<Cursor, Gone> {
    let (head, segments) = match hubs.history(id).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "meeting events cannot load the history"
            );
            return Err(Gone);
        }
    };
    for s in segments {
        let json = serde_json::to_string(&s).map_err(|_| Gone)?;
        send(tx, segment(None, &json)).await?;
    }
    let caught_up = Event::default()
        .event("caught_up")
        .id(head.to_string())
        .data(json!({"type": "caught_up", "cursor": head.to_string()}).to_string());
    send(tx, caught_up).await?;
    Ok(head)
}

async fn feed(
    tx: mpsc::Sender<Event>,
    hubs: Arc<Hubs>,
    id: MeetingId,
    after: Option<Cursor>,
    mut sub: Subscription,
) -> Result<(), Gone> {
    let mut shown = sub.state.borrow_and_update().status;
    send(&tx, status(shown)).await?;
    let mut last = catch_up(&tx, &hubs, id, after.unwrap_or(Cursor::ZERO)).await?;
    let mut stop = hubs.stop.clone();
    while !over(shown) {
        tokio::select! {
            frame = sub.frames.recv() => match frame {
                Ok(frame) if frame.cursor > last => {
                    // Hub frames are already in the form `segment` writes.
                    let event = Event::default()
                        .event("segment")
                        .id(frame.cursor.to_string())
                        .data(frame.text.as_str());
                    send(&tx, event).await?;
                    last = frame.cursor;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => last = catch_up(&tx, &hubs, id, last).await?,
                Err(RecvError::Closed) => return Err(Gone),
            },
            changed = sub.state.changed() => {
                if changed.is_err() {
                    return Err(Gone);
                }
                let now = sub.state.borrow_and_update().status;
                if now != shown {
                    shown = now;
                    send(&tx, status(shown)).await?;
                }
            }
            () = tx.closed() => return Err(Gone),
            () = async { let _ = stop.wait_for(|s| *s).await; } => return Err(Gone),
        }
    }
    // The status is re-read on a timer, the log tailed apart from it: what was stored before the
    // meeting ended may not have been broadcast yet.
    catch_up(&tx, &hubs, id, last).await?;
    let end = Event::default()
        .event("end")
        .data(json!({"type": "end", "status": shown}).to_string());
    send(&tx, end).await
}
