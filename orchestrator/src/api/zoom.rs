//! Zoom's webhook: RTMS stream notifications. Zoom signs every request
//! (`x-zm-signature: v0=hex(HMAC-SHA256(secret token, "v0:{x-zm-request-timestamp}:{body}"))`)
//! and checks the endpoint with a challenge (`endpoint.url_validation`):
//! https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events. `meeting.rtms_started`
//! (https://developers.zoom.us/docs/api/rtms/events/) names the stream of a meeting whose host
//! runs our Zoom app; the Parley meeting with that Zoom number then gets its bot, if the Zoom
//! account is one this server serves (`PARLEY_ZOOM_ACCOUNTS`) and no other Parley account
//! waits for the same number.

use super::{ApiError, AppState};
use crate::clock::now_ms;
use crate::fleet::Assigned;
use crate::store::MeetingStatus;
use crate::webhooks::{self, Outgoing};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use parley_shared::link::RtmsLink;
use parley_shared::{BotState, MeetingLink};
use serde_json::{Value, json};

/// Why a meeting was not joined when its Zoom number was claimed by several accounts.
const AMBIGUOUS: &str = "another account also scheduled this Zoom meeting, so the bot could not \
    tell whose it is; remove the duplicate and send the bot again";

/// Requests older or newer than this are refused (replays of a captured request).
const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, message).as_ref())
}

/// Checks Zoom's signature and timestamp.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now_ms: u64) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ts = header("x-zm-request-timestamp").ok_or("no x-zm-request-timestamp")?;
    let sent_ms = ts
        .parse::<u64>()
        .map_err(|_| "bad x-zm-request-timestamp")?
        * 1000;
    if sent_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err("stale x-zm-request-timestamp");
    }
    let signature = header("x-zm-signature")
        .and_then(|s| s.strip_prefix("v0="))
        .and_then(|s| hex::decode(s).ok())
        .ok_or("no or malformed x-zm-signature")?;
    let mut message = format!("v0:{ts}:").into_bytes();
    message.extend_from_slice(body);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, &message, &signature).map_err(|_| "wrong x-zm-signature")
}

/// A payload field, whether Zoom put it in `payload` or in `payload.object`.
fn field<'a>(payload: &'a Value, name: &str) -> Option<&'a Value> {
    payload
        .get(name)
        .or_else(|| payload.get("object").and_then(|o| o.get(name)))
        .filter(|v| !v.is_null())
}

fn text(payload: &Value, name: &str) -> Option<String> {
    match field(payload, name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(secret) = state.zoom_webhook_secret.as_deref() else {
        return Err(ApiError::NotFound(
            "Zoom webhooks are not configured on this server",
        ));
    };
    if let Err(why) = verify(secret, &headers, &body, now_ms()) {
        tracing::warn!(why, "Zoom webhook refused");
        return Err(ApiError::Unauthorized);
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let payload = &event["payload"];
    match event["event"].as_str().unwrap_or_default() {
        "endpoint.url_validation" => {
            let plain = text(payload, "plainToken")
                .ok_or_else(|| ApiError::BadRequest("no plainToken".to_owned()))?;
            let encrypted = hmac_hex(secret, plain.as_bytes());
            Ok(Json(
                json!({ "plainToken": plain, "encryptedToken": encrypted }),
            ))
        }
        "meeting.rtms_started" => {
            rtms_started(&state, payload).await?;
            Ok(Json(json!({})))
        }
        other => {
            tracing::info!(event = other, "Zoom webhook event ignored");
            Ok(Json(json!({})))
        }
    }
}

async fn rtms_started(state: &AppState, payload: &Value) -> Result<(), ApiError> {
    let missing = |name: &str| ApiError::BadRequest(format!("meeting.rtms_started without {name}"));
    let stream = RtmsLink {
        server: text(payload, "server_urls").ok_or_else(|| missing("server_urls"))?,
        meeting_uuid: text(payload, "meeting_uuid").ok_or_else(|| missing("meeting_uuid"))?,
        stream_id: text(payload, "rtms_stream_id").ok_or_else(|| missing("rtms_stream_id"))?,
    };
    if !state.zoom_accounts.is_empty() {
        let account = text(payload, "account_id").unwrap_or_default();
        if !state.zoom_accounts.contains(&account) {
            tracing::warn!(
                "Zoom started a media stream for a meeting of an account this server does not serve (PARLEY_ZOOM_ACCOUNTS); ignored"
            );
            return Ok(());
        }
    }
    let number = text(payload, "meeting_id")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| missing("a numeric meeting_id"))?;
    let link = MeetingLink::parse(&stream.to_link()).map_err(ApiError::BadRequest)?;
    let waiting = state.store.waiting_zoom_meetings(&number, now_ms()).await?;
    let Some(meeting) = waiting.first().cloned() else {
        tracing::warn!("Zoom started a media stream for a meeting no Parley meeting waits for");
        return Ok(());
    };
    // Anyone can create a Parley meeting with another company's Zoom number; the stream (and
    // everything said in it) must not go to whichever of them the server finds first.
    if waiting.iter().any(|m| m.owner_id != meeting.owner_id) {
        tracing::warn!(
            candidates = waiting.len(),
            "Zoom started a media stream that meetings of several accounts wait for; refused"
        );
        for m in &waiting {
            state
                .store
                .set_meeting_status(
                    m.meeting_id,
                    MeetingStatus::Failed,
                    Some(AMBIGUOUS),
                    now_ms(),
                )
                .await?;
            let failed = Outgoing::status(BotState::Failed, Some(AMBIGUOUS), "zoom");
            webhooks::emit(&state.store, m.meeting_id, &[failed], now_ms()).await?;
        }
        return Ok(());
    }
    let assigned = state
        .fleet
        .assign_now(&meeting, Some(link))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    match assigned {
        Assigned::Queued => {
            tracing::info!(meeting_id = %meeting.meeting_id, "Zoom media stream started; bot queued")
        }
        other => {
            tracing::warn!(meeting_id = %meeting.meeting_id, ?other, "Zoom media stream started but no bot could be queued")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_request_signed_with_the_secret_passes() {
        let body = br#"{"event":"x"}"#;
        let now = 1_700_000_000_000;
        let signed = |secret: &str, ts: u64| {
            let mut h = HeaderMap::new();
            h.insert(
                "x-zm-request-timestamp",
                ts.to_string().parse().expect("header"),
            );
            let mac = hmac_hex(
                secret,
                format!("v0:{ts}:{}", std::str::from_utf8(body).expect("utf-8")).as_bytes(),
            );
            h.insert(
                "x-zm-signature",
                format!("v0={mac}").parse().expect("header"),
            );
            h
        };
        assert_eq!(
            verify("s3cret", &signed("s3cret", now / 1000), body, now),
            Ok(())
        );
        assert!(verify("s3cret", &signed("other", now / 1000), body, now).is_err());
        assert!(verify("s3cret", &signed("s3cret", now / 1000 - 3600), body, now).is_err());
        assert!(verify("s3cret", &signed("s3cret", now / 1000), b"{}", now).is_err());
        assert!(verify("s3cret", &HeaderMap::new(), body, now).is_err());
    }
}
