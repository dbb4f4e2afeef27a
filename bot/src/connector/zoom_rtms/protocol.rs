//! Zoom Realtime Media Streams (RTMS) messages, as the event reference documents them:
//! https://developers.zoom.us/docs/rtms/event-reference/universal-events/ (message types and
//! fields) and https://developers.zoom.us/docs/rtms/media-parameter-definition/ (audio
//! parameters). JSON text frames, each with a numeric `msg_type`.

use serde::Deserialize;
use serde_json::{Value, json};

pub const SIGNALING_HAND_SHAKE_REQ: u64 = 1;
pub const SIGNALING_HAND_SHAKE_RESP: u64 = 2;
pub const DATA_HAND_SHAKE_REQ: u64 = 3;
pub const DATA_HAND_SHAKE_RESP: u64 = 4;
pub const EVENT_SUBSCRIPTION: u64 = 5;
pub const EVENT_UPDATE: u64 = 6;
pub const CLIENT_READY_ACK: u64 = 7;
pub const STREAM_STATE_UPDATE: u64 = 8;
pub const SESSION_STATE_UPDATE: u64 = 9;
pub const KEEP_ALIVE_REQ: u64 = 12;
pub const KEEP_ALIVE_RESP: u64 = 13;
pub const MEDIA_DATA_AUDIO: u64 = 14;

/// `EVENT_SUBSCRIPTION` event types: participants joining and leaving.
pub const EVENT_PARTICIPANT_JOIN: u64 = 3;
pub const EVENT_PARTICIPANT_LEAVE: u64 = 4;

/// `media_type` of the data handshake: audio only.
const MEDIA_TYPE_AUDIO: u64 = 1;

/// What the bot asks for: raw (content_type 2) L16 (codec 1) at 16 kHz (sample_rate 1), mono
/// (channel 1), one stream per active speaker (data_opt 2, AUDIO_MULTI_STREAMS), in 20 ms
/// packets. 16 kHz mono PCM is what Whisper takes: nothing to decode or resample.
pub fn audio_params() -> Value {
    json!({
        "content_type": 2,
        "sample_rate": 1,
        "channel": 1,
        "codec": 1,
        "data_opt": 2,
        "send_rate": 20,
    })
}

/// `hex(HMAC-SHA256(client_secret, "{client_id},{meeting_uuid},{rtms_stream_id}"))`.
pub fn signature(
    client_id: &str,
    client_secret: &str,
    meeting_uuid: &str,
    stream_id: &str,
) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, client_secret.as_bytes());
    let tag = ring::hmac::sign(
        &key,
        format!("{client_id},{meeting_uuid},{stream_id}").as_bytes(),
    );
    hex::encode(tag.as_ref())
}

/// The stream a `meeting.rtms_started` webhook announced, and the app's credentials.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub meeting_uuid: String,
    pub stream_id: String,
    pub signature: String,
}

impl Handshake {
    pub fn signaling(&self, sequence: u64) -> Value {
        json!({
            "msg_type": SIGNALING_HAND_SHAKE_REQ,
            "protocol_version": 1,
            "meeting_uuid": self.meeting_uuid,
            "rtms_stream_id": self.stream_id,
            "sequence": sequence,
            "signature": self.signature,
        })
    }

    pub fn media(&self, sequence: u64) -> Value {
        json!({
            "msg_type": DATA_HAND_SHAKE_REQ,
            "protocol_version": 1,
            "meeting_uuid": self.meeting_uuid,
            "rtms_stream_id": self.stream_id,
            "sequence": sequence,
            "signature": self.signature,
            "media_type": MEDIA_TYPE_AUDIO,
            "payload_encryption": false,
            "media_params": { "audio": audio_params() },
        })
    }

    pub fn ready(&self) -> Value {
        json!({ "msg_type": CLIENT_READY_ACK, "rtms_stream_id": self.stream_id })
    }
}

pub fn subscribe_participants() -> Value {
    json!({
        "msg_type": EVENT_SUBSCRIPTION,
        "events": [
            { "event_type": EVENT_PARTICIPANT_JOIN, "subscribe": true },
            { "event_type": EVENT_PARTICIPANT_LEAVE, "subscribe": true },
        ],
    })
}

pub fn keep_alive_resp(timestamp: &Value) -> Value {
    json!({ "msg_type": KEEP_ALIVE_RESP, "timestamp": timestamp })
}

/// A handshake response (`SIGNALING_HAND_SHAKE_RESP`, `DATA_HAND_SHAKE_RESP`).
#[derive(Debug, Deserialize)]
pub struct HandshakeResp {
    #[serde(default)]
    pub status_code: i64,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub media_server: Option<MediaServer>,
}

#[derive(Debug, Deserialize)]
pub struct MediaServer {
    pub server_urls: MediaUrls,
}

#[derive(Debug, Deserialize)]
pub struct MediaUrls {
    #[serde(default)]
    pub audio: Option<String>,
    #[serde(default)]
    pub all: Option<String>,
}

/// `MEDIA_DATA_AUDIO`'s content: one speaker's packet.
#[derive(Debug, Deserialize)]
pub struct AudioContent {
    pub user_id: Value,
    #[serde(default)]
    pub user_name: String,
    /// Base64 of little-endian 16-bit PCM.
    pub data: String,
    /// Milliseconds, on the stream's clock.
    #[serde(default)]
    pub timestamp: Option<u64>,
}

/// A user id as text, whether Zoom sent a number or a string.
pub fn user_key(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Little-endian 16-bit PCM to samples in [-1, 1].
pub fn l16(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // HMAC-SHA256("secret", "id,uuid,stream"), computed independently.
        let expected = {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
            hex::encode(ring::hmac::sign(&key, b"id,uuid,stream").as_ref())
        };
        assert_eq!(signature("id", "secret", "uuid", "stream"), expected);
        assert_ne!(signature("id", "other", "uuid", "stream"), expected);
    }

    #[test]
    fn user_ids_and_pcm_are_read_as_sent() {
        assert_eq!(user_key(&json!(16778240)).as_deref(), Some("16778240"));
        assert_eq!(user_key(&json!("abc")).as_deref(), Some("abc"));
        assert_eq!(user_key(&json!(null)), None);
        assert_eq!(
            l16(&[0x00, 0x80, 0xff, 0x7f, 0x01]),
            vec![-1.0, 32767.0 / 32768.0]
        );
    }
}
