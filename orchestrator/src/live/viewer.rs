//! One viewer's socket: the meeting's state, then a snapshot or the log since the viewer's last
//! cursor, then live frames; resynchronised from a snapshot when it falls too far behind, and
//! closed when the link is revoked or the server stops.

use super::cursor::Cursor;
use super::hub::{Frame, Hubs, MeetingState};
use crate::auth::ShareToken;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use parley_shared::MeetingId;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A viewer that cannot take a message for this long is disconnected (its page reconnects and
/// resumes from its cursor).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code for a link that no longer works; the page does not reconnect after it.
const CLOSE_REVOKED: u16 = 4404;
const CLOSE_GOING_AWAY: u16 = 1001;

struct Ended;

pub async fn serve(
    mut socket: WebSocket,
    hubs: Arc<Hubs>,
    meeting: crate::store::Meeting,
    token: ShareToken,
    after: Option<Cursor>,
) {
    let id = meeting.meeting_id;
    let mut sub = match hubs.subscribe(&meeting).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "live captions cannot subscribe a viewer"
            );
            let _ = close(&mut socket, 1011, "try again").await;
            return;
        }
    };
    let _ = run(&mut socket, &hubs, id, &token, after, &mut sub).await;
}

async fn run(
    socket: &mut WebSocket,
    hubs: &Hubs,
    id: MeetingId,
    token: &ShareToken,
    after: Option<Cursor>,
    sub: &mut super::hub::Subscription,
) -> Result<(), Ended> {
    let state = sub.state.borrow_and_update().clone();
    if !announce(socket, &state, token).await? {
        return Ok(());
    }
    let mut last = match after {
        Some(after) => match hubs.log.since(id, after).await {
            Ok(Some(entries)) => {
                let mut last = after;
                for (cursor, json) in entries {
                    let text = super::segment_message(cursor, &json);
                    send(socket, text).await?;
                    last = cursor;
                }
                last
            }
            Ok(None) => snapshot(socket, hubs, id).await?,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "live captions cannot read the log"
                );
                snapshot(socket, hubs, id).await?
            }
        },
        None => snapshot(socket, hubs, id).await?,
    };
    let mut stop = hubs.stop.clone();
    loop {
        tokio::select! {
            frame = sub.frames.recv() => match frame {
                Ok(Frame { cursor, text }) => {
                    // Frames come in log order; older ones were in the snapshot or the catch-up.
                    if cursor > last {
                        send_frame(socket, text).await?;
                        last = cursor;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "slow live captions viewer resynchronised");
                    last = snapshot(socket, hubs, id).await?;
                }
                Err(RecvError::Closed) => {
                    close(socket, CLOSE_GOING_AWAY, "reconnect").await?;
                    return Ok(());
                }
            },
            changed = sub.state.changed() => {
                if changed.is_err() {
                    close(socket, CLOSE_GOING_AWAY, "reconnect").await?;
                    return Ok(());
                }
                let state = sub.state.borrow_and_update().clone();
                if !announce(socket, &state, token).await? {
                    return Ok(());
                }
            }
            incoming = socket.recv() => match incoming {
                // Viewers only listen; pings are answered by the socket itself.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                Some(Ok(_)) => {}
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                close(socket, CLOSE_GOING_AWAY, "server restarting").await?;
                return Ok(());
            }
        }
    }
}

/// Sends the meeting's title and status; `false` (after closing) when the link was revoked.
async fn announce(
    socket: &mut WebSocket,
    state: &MeetingState,
    token: &ShareToken,
) -> Result<bool, Ended> {
    if state.token.as_ref() != Some(token) {
        send(socket, json!({"type": "revoked"}).to_string()).await?;
        close(socket, CLOSE_REVOKED, "link revoked").await?;
        return Ok(false);
    }
    let msg = json!({"type": "meeting", "title": state.title, "status": state.status});
    send(socket, msg.to_string()).await?;
    Ok(true)
}

/// Sends every stored segment (partials included) and returns the log position it reflects.
async fn snapshot(socket: &mut WebSocket, hubs: &Hubs, id: MeetingId) -> Result<Cursor, Ended> {
    let (head, segments) = match hubs.history(id).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "live captions cannot load the history"
            );
            close(socket, 1011, "try again").await?;
            return Err(Ended);
        }
    };
    let msg = json!({"type": "snapshot", "cursor": head.to_string(), "segments": segments});
    send(socket, msg.to_string()).await?;
    Ok(head)
}

async fn send(socket: &mut WebSocket, text: String) -> Result<(), Ended> {
    send_frame(socket, text.into()).await
}

async fn send_frame(
    socket: &mut WebSocket,
    text: axum::extract::ws::Utf8Bytes,
) -> Result<(), Ended> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Ended),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), Ended> {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Ended),
    }
}
