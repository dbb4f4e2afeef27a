//! The Meet Media API's data-channel messages, sans-IO. Every message is a JSON text message
//! on one of five channels the client opens; the server sends resource snapshots (each replacing
//! the last with its id) and deletions, and answers the client's requests. Field names follow
//! https://developers.google.com/workspace/meet/media-api/reference/dc/media_api
//! (generated from the samples' `web/types/datachannels.d.ts`).

use serde::Deserialize;
use serde_json::{Value, json};

/// The channels, all opened by the client before its offer (reliable and ordered). Meet refuses
/// an offer without `session-control` and `media-stats` (`INVALID_OFFER`); `video-assignment`
/// is for video, which the bot does not take.
pub const CHANNELS: [&str; 4] = [SESSION_CONTROL, MEDIA_ENTRIES, PARTICIPANTS, MEDIA_STATS];
pub const SESSION_CONTROL: &str = "session-control";
pub const MEDIA_ENTRIES: &str = "media-entries";
pub const PARTICIPANTS: &str = "participants";
pub const MEDIA_STATS: &str = "media-stats";

/// Meet marks the loudest speaker's packets with this extra CSRC; it names nobody.
pub const LOUDEST_SPEAKER_CSRC: u32 = 42;

/// What a data channel said, as far as the bot cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Session(SessionStatus),
    /// A media entry (one participant session) added or replaced.
    Entry {
        id: i64,
        entry: MediaEntry,
    },
    EntryGone {
        id: i64,
    },
    Participant {
        id: i64,
        participant: Participant,
    },
    ParticipantGone {
        id: i64,
    },
    /// The server's media-stats configuration: upload every this many seconds (0: never), only
    /// these stats types and keys.
    StatsConfig {
        upload_interval_secs: u64,
        allowlist: Vec<(String, Vec<String>)>,
    },
    /// The answer to a request of ours.
    Response {
        request_id: i64,
        code: i64,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// `STATE_WAITING`, `STATE_JOINED` or `STATE_DISCONNECTED`.
    pub state: String,
    /// With `STATE_DISCONNECTED`: `REASON_CLIENT_LEFT`, `REASON_USER_STOPPED`,
    /// `REASON_CONFERENCE_ENDED` or `REASON_SESSION_UNHEALTHY`.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaEntry {
    /// `participants/{participant}`: the participant this session belongs to.
    pub participant_key: Option<String>,
    /// The CSRC of this session's audio in the virtual streams; 0 when it sends none.
    pub audio_csrc: u32,
    pub audio_muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Participant {
    pub key: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("unexpected shape: {0}")]
    Shape(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToClient {
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    resources: Vec<Value>,
    #[serde(default)]
    deleted_resources: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireParticipant {
    participant_key: Option<String>,
    signed_in_user: Option<Named>,
    anonymous_user: Option<Named>,
    phone_user: Option<Named>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Named {
    display_name: Option<String>,
}

fn shape(what: &str) -> MessageError {
    MessageError::Shape(what.to_owned())
}

/// Parses one server message on `channel`.
pub fn parse(channel: &str, text: &str) -> Result<Vec<Update>, MessageError> {
    let msg: Value = serde_json::from_str(text).map_err(|e| MessageError::Json(e.to_string()))?;
    if !msg.is_object() {
        return Err(shape("a message that is not a JSON object"));
    }
    let msg = ToClient::deserialize(msg).map_err(|e| MessageError::Shape(e.to_string()))?;
    let mut updates = Vec::new();
    if let Some(r) = msg.response {
        let request_id = r["requestId"]
            .as_i64()
            .ok_or_else(|| shape("a response without a numeric requestId"))?;
        updates.push(Update::Response {
            request_id,
            code: r["status"]["code"].as_i64().unwrap_or(0),
            message: r["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    for r in &msg.resources {
        updates.push(resource(channel, r)?);
    }
    for d in &msg.deleted_resources {
        let id = d["id"]
            .as_i64()
            .ok_or_else(|| shape("a deleted resource without a numeric id"))?;
        match channel {
            MEDIA_ENTRIES => updates.push(Update::EntryGone { id }),
            PARTICIPANTS => updates.push(Update::ParticipantGone { id }),
            _ => {}
        }
    }
    Ok(updates)
}

fn resource(channel: &str, r: &Value) -> Result<Update, MessageError> {
    let id = || {
        r["id"]
            .as_i64()
            .ok_or_else(|| shape("a resource without a numeric id"))
    };
    match channel {
        SESSION_CONTROL => {
            let s = &r["sessionStatus"];
            let state = s["connectionState"]
                .as_str()
                .ok_or_else(|| shape("a session status without connectionState"))?;
            Ok(Update::Session(SessionStatus {
                state: state.to_owned(),
                reason: s["disconnectReason"].as_str().map(str::to_owned),
            }))
        }
        MEDIA_ENTRIES => {
            let entry = MediaEntry::deserialize(&r["mediaEntry"])
                .map_err(|e| MessageError::Shape(format!("mediaEntry: {e}")))?;
            Ok(Update::Entry { id: id()?, entry })
        }
        PARTICIPANTS => {
            let p = WireParticipant::deserialize(&r["participant"])
                .map_err(|e| MessageError::Shape(format!("participant: {e}")))?;
            let display_name = [p.signed_in_user, p.anonymous_user, p.phone_user]
                .into_iter()
                .flatten()
                .find_map(|n| n.display_name);
            Ok(Update::Participant {
                id: id()?,
                participant: Participant {
                    key: p.participant_key,
                    display_name,
                },
            })
        }
        MEDIA_STATS => {
            let c = &r["configuration"];
            let upload_interval_secs = c["uploadIntervalSeconds"]
                .as_u64()
                .ok_or_else(|| shape("a stats configuration without uploadIntervalSeconds"))?;
            let allowlist = c["allowlist"]
                .as_object()
                .map(|types| {
                    types
                        .iter()
                        .map(|(kind, v)| {
                            let keys = v["keys"]
                                .as_array()
                                .map(|k| {
                                    k.iter()
                                        .filter_map(|k| k.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default();
                            (kind.clone(), keys)
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Update::StatsConfig {
                upload_interval_secs,
                allowlist,
            })
        }
        other => Err(MessageError::Shape(format!(
            "a resource on channel {other}"
        ))),
    }
}

/// `session-control`: the client is about to leave.
pub fn leave_request(request_id: i64) -> String {
    json!({"request": {"requestId": request_id, "leave": {}}}).to_string()
}

/// `media-stats`: one upload of the allowlisted stats, `sections` being
/// `(stats id, stats type, fields)`, in the published (snake_case) form.
pub fn stats_upload(request_id: i64, sections: &[(String, String, Value)]) -> String {
    let sections: Vec<Value> = sections
        .iter()
        .map(|(id, kind, fields)| json!({"id": id, kind.replace('-', "_"): fields}))
        .collect();
    json!({"request": {"requestId": request_id, "uploadMediaStats": {"sections": sections}}})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_messages_parse() {
        let entries = r#"{"resources":[{"id":424242,"mediaEntry":{
            "participant":"conferenceRecords/cr1/participants/p1","participantKey":"participants/p1",
            "sessionName":"participants/p1/participantSessions/s1",
            "audioCsrc":111,"videoCsrcs":[123,456],"presenter":false,"audioMuted":false}}]}"#;
        assert_eq!(
            parse(MEDIA_ENTRIES, entries),
            Ok(vec![Update::Entry {
                id: 424_242,
                entry: MediaEntry {
                    participant_key: Some("participants/p1".to_owned()),
                    audio_csrc: 111,
                    audio_muted: false,
                },
            }])
        );
        let people = r#"{"resources":[
            {"id":3,"participant":{"participantKey":"participants/p1","signedInUser":{"user":"users/1","displayName":"Ada Lovelace"}}},
            {"id":6,"participant":{"participantKey":"participants/p3","phoneUser":{"displayName":"+1 ***-***-1234"}}}],
            "deletedResources":[{"id":5,"participant":true}]}"#;
        let updates = parse(PARTICIPANTS, people).expect("parse");
        assert_eq!(updates.len(), 3);
        assert_eq!(
            updates[0],
            Update::Participant {
                id: 3,
                participant: Participant {
                    key: Some("participants/p1".to_owned()),
                    display_name: Some("Ada Lovelace".to_owned()),
                },
            }
        );
        assert_eq!(updates[2], Update::ParticipantGone { id: 5 });
        let ended = r#"{"resources":[{"sessionStatus":{"connectionState":"STATE_DISCONNECTED","disconnectReason":"REASON_CONFERENCE_ENDED"}}]}"#;
        assert_eq!(
            parse(SESSION_CONTROL, ended),
            Ok(vec![Update::Session(SessionStatus {
                state: "STATE_DISCONNECTED".to_owned(),
                reason: Some("REASON_CONFERENCE_ENDED".to_owned()),
            })])
        );
        let config = r#"{"resources":[{"configuration":{"uploadIntervalSeconds":10,
            "allowlist":{"codec":{"keys":["id","mimeType"]}}}}]}"#;
        assert_eq!(
            parse(MEDIA_STATS, config),
            Ok(vec![Update::StatsConfig {
                upload_interval_secs: 10,
                allowlist: vec![(
                    "codec".to_owned(),
                    vec!["id".to_owned(), "mimeType".to_owned()]
                )],
            }])
        );
        let left = r#"{"response":{"requestId":42,"status":{"code":0,"message":""},"leave":{}}}"#;
        assert_eq!(
            parse(SESSION_CONTROL, left),
            Ok(vec![Update::Response {
                request_id: 42,
                code: 0,
                message: String::new(),
            }])
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for (channel, text) in [
            (MEDIA_ENTRIES, "{not json"),
            (
                MEDIA_ENTRIES,
                r#"{"resources":[{"mediaEntry":{"audioCsrc":1}}]}"#,
            ),
            (
                MEDIA_ENTRIES,
                r#"{"resources":[{"id":1,"mediaEntry":{"audioCsrc":"111"}}]}"#,
            ),
            (
                MEDIA_ENTRIES,
                r#"{"resources":[{"id":1,"mediaEntry":{"audioCsrc":-1}}]}"#,
            ),
            (SESSION_CONTROL, r#"{"resources":[{"sessionStatus":{}}]}"#),
            (MEDIA_STATS, r#"{"resources":[{"configuration":{}}]}"#),
            (
                PARTICIPANTS,
                r#"{"deletedResources":[{"participant":true}]}"#,
            ),
            (SESSION_CONTROL, r#"{"response":{"status":{"code":0}}}"#),
            ("video-assignment", r#"{"resources":[{"id":1}]}"#),
            (PARTICIPANTS, "[]"),
        ] {
            assert!(parse(channel, text).is_err(), "{channel}: {text}");
        }
    }

    #[test]
    fn requests_are_what_the_reference_shows() {
        let leave: Value = serde_json::from_str(&leave_request(7)).expect("json");
        assert_eq!(leave, json!({"request": {"requestId": 7, "leave": {}}}));
        let upload: Value = serde_json::from_str(&stats_upload(
            1,
            &[(
                "IT01".to_owned(),
                "inbound-rtp".to_owned(),
                json!({"packets_received": 5}),
            )],
        ))
        .expect("json");
        assert_eq!(
            upload["request"]["uploadMediaStats"]["sections"][0],
            json!({"id": "IT01", "inbound_rtp": {"packets_received": 5}})
        );
    }
}
