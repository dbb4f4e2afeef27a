//! `GET /meetings/{id}/events`: a meeting's live events for integrators, as Server-Sent Events or,
//! when the request asks to upgrade, as a WebSocket whose text frames are the same JSON
//! (authenticated by session or by an API key with `meetings:read`). A client without a cursor
//! first gets the stored transcript (`event: segment` without id, partials included) and then
//! `event: caught_up` whose id is the live log position it reflects. After that every segment
//! the ingest stores (partials and finals, the captions' schema) is an `event: segment` whose id
//! is its log cursor, so a client reconnecting with `Last-Event-ID` (or `?after=CURSOR`) resumes
//! from the log every replica shares: nothing missed, nothing twice. A cursor the log no longer
//! holds starts from the stored transcript again. Status changes are `event: status`; the
//! participants are `event: participants` when the stream opens, then each one who joins or
//! leaves an `event: participant`;
//! `event: end` closes the stream once the meeting is over and everything stored before it was
//! sent. Every event's JSON names its kind in `type` and, where it has one, its cursor in
//! `cursor`: WebSocket clients resume with `?after=CURSOR`.

use super::error::ApiQuery;
use super::meetings::visible_by_raw_id;
use super::{ApiError, AppState, AuthUser};
use crate::live::{Cursor, Hubs, Subscription};
use crate::store::{MeetingStatus, Participant};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use parley_shared::MeetingId;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Events buffered for a slow client; past that the feed waits, falls behind the hub and
/// catches up from the log.
const BUFFER: usize = 256;
/// A WebSocket client that takes longer than this to take a frame is dropped (it reconnects
/// with its cursor).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema of the events' JSON, named on every response: a change that breaks clients gets a
/// new version.
const VERSION_HEADER: &str = "parley-events-version";
const VERSION: &str = "1";

/// How often the participants are read again for `participant` events.
const PARTICIPANTS_EVERY: Duration = Duration::from_secs(1);

/// One event: its name (the SSE `event:`), its log cursor if it has one (the SSE `id:`), and its
/// JSON, which is also the WebSocket frame.
#[derive(Debug)]
struct Out {
    name: &'static str,
    id: Option<Cursor>,
    data: String,
}

impl Out {
    fn new(name: &'static str, id: Option<Cursor>, data: String) -> Self {
        Self { name, id, data }
    }

    fn sse(self) -> Event {
        let event = Event::default().event(self.name).data(self.data);
        match self.id {
            Some(c) => event.id(c.to_string()),
            None => event,
        }
    }
}

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
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
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
    let mut response = match upgrade {
        // Clients send nothing but close frames: small buffers keep a client's cost low.
        Ok(upgrade) => upgrade
            .read_buffer_size(4096)
            .max_message_size(4096)
            .on_upgrade(move |socket| pump(socket, rx)),
        Err(rejection) if headers.contains_key(header::UPGRADE) => {
            return Ok(rejection.into_response());
        }
        Err(_) => {
            let events = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|e| (Ok::<_, Infallible>(e.sse()), rx))
            });
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert(VERSION_HEADER, header::HeaderValue::from_static(VERSION));
    Ok(response)
}

/// Writes the feed's events to a WebSocket until the feed ends (after `end`: a normal close;
/// otherwise "going away", so the client reconnects with its cursor) or the client leaves.
async fn pump(mut socket: WebSocket, mut rx: mpsc::Receiver<Out>) {
    let mut ended = false;
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                ended = out.name == "end";
                let frame = Message::Text(out.data.into());
                if !matches!(tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await, Ok(Ok(()))) {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let (code, reason) = if ended {
        (1000, "end")
    } else {
        (1001, "reconnect")
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
}

/// The client went away.
struct Gone;

fn segment(cursor: Option<Cursor>, json: &str) -> Out {
    let data = match cursor {
        Some(c) => crate::live::segment_message(c, json),
        None => format!(r#"{{"type":"segment","segment":{json}}}"#),
    };
    Out::new("segment", cursor, data)
}

fn status(status: MeetingStatus) -> Out {
    let data = json!({"type": "status", "status": status}).to_string();
    Out::new("status", None, data)
}

/// The meeting's participants now; `None` (logged) when they cannot be read.
async fn participants(hubs: &Hubs, id: MeetingId) -> Option<Vec<Participant>> {
    match hubs.store.participants(id).await {
        Ok(list) => Some(list),
        Err(e) => {
            tracing::warn!(error = %e, "meeting events cannot read the participants");
            None
        }
    }
}

/// The joins and leaves between two readings of the participants.
fn participant_changes(before: &[Participant], now: &[Participant]) -> Vec<Out> {
    let change = |action: &str, p: &Participant| {
        let data = json!({"type": "participant", "action": action, "participant": p});
        Out::new("participant", None, data.to_string())
    };
    let mut out = Vec::new();
    for p in now {
        let was = before.iter().find(|b| b.speaker_key == p.speaker_key);
        let was_in = was.is_some_and(|b| b.left_ms.is_none());
        let is_in = p.left_ms.is_none();
        if was.is_none() || (!was_in && is_in) {
            out.push(change("joined", p));
        }
        if !is_in && (was_in || was.is_none()) {
            out.push(change("left", p));
        }
    }
    out
}

fn over(status: MeetingStatus) -> bool {
    matches!(status, MeetingStatus::Ended | MeetingStatus::Failed)
}

async fn send(tx: &mpsc::Sender<Out>, event: Out) -> Result<(), Gone> {
    tx.send(event).await.map_err(|_| Gone)
}

/// Sends what the log holds after `after` and returns the newest cursor sent; from the stored
/// transcript when the log no longer holds it all.
async fn catch_up(
    tx: &mpsc::Sender<Out>,
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
async fn snapshot(tx: &mpsc::Sender<Out>, hubs: &Hubs, id: MeetingId) -> Result<Cursor, Gone> {
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
    let data = json!({"type": "caught_up", "cursor": head.to_string()}).to_string();
    let caught_up = Out::new("caught_up", Some(head), data);
    send(tx, caught_up).await?;
    Ok(head)
}

async fn feed(
    tx: mpsc::Sender<Out>,
    hubs: Arc<Hubs>,
    id: MeetingId,
    after: Option<Cursor>,
    mut sub: Subscription,
) -> Result<(), Gone> {
    let mut shown = sub.state.borrow_and_update().status;
    send(&tx, status(shown)).await?;
    let mut present = participants(&hubs, id).await.unwrap_or_default();
    let data = json!({"type": "participants", "participants": present});
    send(&tx, Out::new("participants", None, data.to_string())).await?;
    let mut reread = tokio::time::interval(PARTICIPANTS_EVERY);
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = catch_up(&tx, &hubs, id, after.unwrap_or(Cursor::ZERO)).await?;
    let mut stop = hubs.stop.clone();
    while !over(shown) {
        tokio::select! {
            frame = sub.frames.recv() => match frame {
                Ok(frame) if frame.cursor > last => {
                    // Hub frames are already in the form `segment` writes.
                    let event = Out::new("segment", Some(frame.cursor), frame.text.as_str().to_owned());
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
            _ = reread.tick() => {
                if let Some(now) = participants(&hubs, id).await {
                    for change in participant_changes(&present, &now) {
                        send(&tx, change).await?;
                    }
                    present = now;
                }
            }
            () = tx.closed() => return Err(Gone),
            () = async { let _ = stop.wait_for(|s| *s).await; } => return Err(Gone),
        }
    }
    // The status is re-read on a timer, the log tailed apart from it: what was stored before the
    // meeting ended may not have been broadcast yet.
    catch_up(&tx, &hubs, id, last).await?;
    let end = json!({"type": "end", "status": shown}).to_string();
    send(&tx, Out::new("end", None, end)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str, left_ms: Option<u64>) -> Participant {
        Participant {
            speaker_key: key.to_owned(),
            display_name: key.to_owned(),
            joined_ms: Some(0),
            left_ms,
        }
    }

    fn actions(events: &[Out]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(&e.data).expect("json");
                format!(
                    "{} {}",
                    v["action"].as_str().expect("action"),
                    v["participant"]["speaker_key"].as_str().expect("key")
                )
            })
            .collect()
    }

    #[test]
    fn joins_and_leaves_are_told_once_each() {
        let none: Vec<Participant> = Vec::new();
        assert_eq!(
            actions(&participant_changes(&none, &[p("ana", None)])),
            ["joined ana"]
        );
        let ana = [p("ana", None)];
        assert!(participant_changes(&ana, &ana).is_empty());
        let left = [p("ana", Some(5)), p("ben", Some(9))];
        assert_eq!(
            actions(&participant_changes(&ana, &left)),
            ["left ana", "joined ben", "left ben"]
        );
        assert!(participant_changes(&left, &left).is_empty());
        assert_eq!(
            actions(&participant_changes(&left, &[p("ana", None)])),
            ["joined ana"]
        );
    }
}
