//! The Janus JSON protocol as the bot uses it (core messages plus the VideoRoom plugin), parsed
//! defensively: anything unexpected becomes [`Incoming::Other`] or an error value, never a panic.

use serde_json::{Value, json};

/// A publisher's (or subscriber stream's) feed id. Janus uses numbers, or strings with
/// `string_ids`; both are kept as text.
pub type FeedId = String;

fn feed_id(v: &Value) -> Option<FeedId> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jsep {
    pub kind: String,
    pub sdp: String,
}

/// A publisher in the room and the mids of its audio streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    pub id: FeedId,
    pub display: Option<String>,
    pub audio_mids: Vec<String>,
}

/// One stream of the subscriber connection: our mid, and whose feed it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubStream {
    pub mid: String,
    pub feed: Option<FeedId>,
    pub display: Option<String>,
    pub audio: bool,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    Joined {
        private_id: Option<u64>,
        publishers: Vec<Publisher>,
    },
    Publishers(Vec<Publisher>),
    /// The feed stopped publishing or left.
    Gone(FeedId),
    Attached(Vec<SubStream>),
    Updated(Vec<SubStream>),
    Started,
    Talking {
        feed: FeedId,
        talking: bool,
    },
    Destroyed,
    Error {
        code: i64,
        reason: String,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `success` of a core request; `id` is `data.id` (session or handle).
    Success {
        transaction: String,
        id: Option<u64>,
    },
    Ack {
        transaction: String,
    },
    Error {
        transaction: Option<String>,
        code: i64,
        reason: String,
    },
    Event {
        transaction: Option<String>,
        sender: Option<u64>,
        event: RoomEvent,
        jsep: Option<Jsep>,
    },
    WebrtcUp {
        sender: Option<u64>,
    },
    Hangup {
        sender: Option<u64>,
        reason: String,
    },
    /// The session timed out on the server.
    Timeout,
    Other,
}

impl Incoming {
    pub fn transaction(&self) -> Option<&str> {
        match self {
            Self::Success { transaction, .. } | Self::Ack { transaction } => Some(transaction),
            Self::Error { transaction, .. } | Self::Event { transaction, .. } => {
                transaction.as_deref()
            }
            _ => None,
        }
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn publishers(v: Option<&Value>) -> Vec<Publisher> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let id = feed_id(p.get("id")?)?;
            // Janus 1.x lists each stream; older rooms only say audio_codec.
            let audio_mids = match p.get("streams").and_then(Value::as_array) {
                Some(streams) => streams
                    .iter()
                    .filter(|s| s.get("type").and_then(Value::as_str) == Some("audio"))
                    .filter(|s| s.get("disabled").and_then(Value::as_bool) != Some(true))
                    .filter_map(|s| text(s, "mid"))
                    .collect(),
                None => Vec::new(),
            };
            Some(Publisher {
                id,
                display: text(p, "display"),
                audio_mids,
            })
        })
        .collect()
}

fn streams(v: Option<&Value>) -> Vec<SubStream> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(SubStream {
                mid: text(s, "mid")?,
                feed: s.get("feed_id").and_then(feed_id),
                display: text(s, "feed_display"),
                audio: s.get("type").and_then(Value::as_str) == Some("audio"),
                active: s.get("active").and_then(Value::as_bool) != Some(false),
            })
        })
        .collect()
}

fn room_event(data: &Value) -> RoomEvent {
    if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
        return RoomEvent::Error {
            code,
            reason: text(data, "error").unwrap_or_default(),
        };
    }
    match data.get("videoroom").and_then(Value::as_str) {
        Some("joined") => RoomEvent::Joined {
            private_id: data.get("private_id").and_then(Value::as_u64),
            publishers: publishers(data.get("publishers")),
        },
        Some("attached") => RoomEvent::Attached(streams(data.get("streams"))),
        Some("updated") => RoomEvent::Updated(streams(data.get("streams"))),
        Some("talking") | Some("stopped-talking") => match data.get("id").and_then(feed_id) {
            Some(feed) => RoomEvent::Talking {
                feed,
                talking: data.get("videoroom").and_then(Value::as_str) == Some("talking"),
            },
            None => RoomEvent::Other,
        },
        Some("destroyed") => RoomEvent::Destroyed,
        Some("event") => {
            if data.get("publishers").is_some() {
                RoomEvent::Publishers(publishers(data.get("publishers")))
            } else if let Some(feed) = data.get("unpublished").and_then(feed_id) {
                RoomEvent::Gone(feed)
            } else if let Some(feed) = data.get("leaving").and_then(feed_id) {
                RoomEvent::Gone(feed)
            } else if data.get("started").and_then(Value::as_str) == Some("ok") {
                RoomEvent::Started
            } else {
                RoomEvent::Other
            }
        }
        _ => RoomEvent::Other,
    }
}

/// Parses one WebSocket text frame; `Err` for text that is not a JSON object.
pub fn parse(frame: &str) -> Result<Incoming, String> {
    let v: Value = serde_json::from_str(frame).map_err(|e| format!("invalid JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object".to_owned());
    }
    let transaction = text(&v, "transaction");
    let sender = v.get("sender").and_then(Value::as_u64);
    Ok(match v.get("janus").and_then(Value::as_str) {
        Some("success") => match transaction {
            Some(transaction) => Incoming::Success {
                transaction,
                id: v.pointer("/data/id").and_then(Value::as_u64),
            },
            None => Incoming::Other,
        },
        Some("ack") => match transaction {
            Some(transaction) => Incoming::Ack { transaction },
            None => Incoming::Other,
        },
        Some("error") => Incoming::Error {
            transaction,
            code: v
                .pointer("/error/code")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            reason: v
                .pointer("/error/reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_owned(),
        },
        Some("event") => Incoming::Event {
            transaction,
            sender,
            event: v
                .pointer("/plugindata/data")
                .map_or(RoomEvent::Other, room_event),
            jsep: v.get("jsep").and_then(|j| {
                Some(Jsep {
                    kind: text(j, "type")?,
                    sdp: text(j, "sdp")?,
                })
            }),
        },
        Some("webrtcup") => Incoming::WebrtcUp { sender },
        Some("hangup") => Incoming::Hangup {
            sender,
            reason: text(&v, "reason").unwrap_or_default(),
        },
        Some("timeout") => Incoming::Timeout,
        _ => Incoming::Other,
    })
}

/// Builds the outgoing messages. Transactions are the caller's.
pub mod out {
    use super::*;

    pub fn create(tx: &str) -> Value {
        json!({"janus": "create", "transaction": tx})
    }

    pub fn attach(tx: &str, session: u64) -> Value {
        json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "session_id": session, "transaction": tx})
    }

    pub fn message(tx: &str, session: u64, handle: u64, body: Value, jsep: Option<&Jsep>) -> Value {
        let mut m = json!({"janus": "message", "session_id": session, "handle_id": handle,
                           "transaction": tx, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = json!({"type": j.kind, "sdp": j.sdp});
        }
        m
    }

    pub fn keepalive(tx: &str, session: u64) -> Value {
        json!({"janus": "keepalive", "session_id": session, "transaction": tx})
    }

    pub fn destroy(tx: &str, session: u64) -> Value {
        json!({"janus": "destroy", "session_id": session, "transaction": tx})
    }

    pub fn join_publisher(room: u64, display: &str, pin: Option<&str>) -> Value {
        let mut b =
            json!({"request": "join", "ptype": "publisher", "room": room, "display": display});
        if let Some(pin) = pin {
            b["pin"] = json!(pin);
        }
        b
    }

    /// `streams` as Janus wants them: one `{feed, mid}` per audio stream.
    pub fn stream_list(publishers: &[&Publisher]) -> Value {
        let list: Vec<Value> = publishers
            .iter()
            .flat_map(|p| {
                p.audio_mids
                    .iter()
                    .map(move |mid| json!({"feed": feed_value(&p.id), "mid": mid}))
            })
            .collect();
        Value::Array(list)
    }

    fn feed_value(id: &str) -> Value {
        id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
    }

    pub fn join_subscriber(
        room: u64,
        private_id: Option<u64>,
        pin: Option<&str>,
        streams: Value,
    ) -> Value {
        let mut b =
            json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams});
        if let Some(p) = private_id {
            b["private_id"] = json!(p);
        }
        if let Some(pin) = pin {
            b["pin"] = json!(pin);
        }
        b
    }

    pub fn subscribe(streams: Value) -> Value {
        json!({"request": "subscribe", "streams": streams})
    }

    pub fn start() -> Value {
        json!({"request": "start"})
    }

    pub fn leave() -> Value {
        json!({"request": "leave"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_lists_publishers_with_their_audio_mids() {
        let frame = r#"{"janus":"event","session_id":1,"sender":2,"transaction":"t1",
          "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"joined","room":1234,
          "id":99,"private_id":555,"publishers":[
            {"id":11,"display":"Tom Becker","streams":[{"type":"audio","mid":"0","codec":"opus"}]},
            {"id":"12","display":"Video only","streams":[{"type":"video","mid":"0"}]},
            {"display":"no id"}]}}}"#;
        let Incoming::Event {
            transaction, event, ..
        } = parse(frame).expect("parses")
        else {
            panic!("not an event");
        };
        assert_eq!(transaction.as_deref(), Some("t1"));
        let RoomEvent::Joined {
            private_id,
            publishers,
        } = event
        else {
            panic!("not joined");
        };
        assert_eq!(private_id, Some(555));
        assert_eq!(publishers.len(), 2);
        assert_eq!(publishers[0].id, "11");
        assert_eq!(publishers[0].audio_mids, vec!["0"]);
        assert!(
            publishers[1].audio_mids.is_empty(),
            "video-only publishers carry no audio"
        );
        let list = out::stream_list(&[&publishers[0]]);
        assert_eq!(list, json!([{"feed": 11, "mid": "0"}]));
    }

    #[test]
    fn subscriber_updates_map_mids_to_feeds_and_carry_offers() {
        let frame = r#"{"janus":"event","sender":3,"plugindata":{"data":{"videoroom":"updated","room":1,
          "streams":[{"type":"audio","mid":"0","feed_id":11,"feed_display":"Tom","active":true},
                     {"type":"audio","mid":"1","active":false}]}},
          "jsep":{"type":"offer","sdp":"v=0"}}"#;
        let Incoming::Event {
            event,
            jsep,
            transaction,
            ..
        } = parse(frame).expect("parses")
        else {
            panic!("not an event");
        };
        assert_eq!(transaction, None, "unsolicited");
        assert_eq!(
            jsep,
            Some(Jsep {
                kind: "offer".into(),
                sdp: "v=0".into()
            })
        );
        let RoomEvent::Updated(streams) = event else {
            panic!("not updated");
        };
        assert_eq!(streams[0].feed.as_deref(), Some("11"));
        assert!(streams[0].audio && streams[0].active);
        assert!(!streams[1].active);
    }

    #[test]
    fn room_changes_and_errors_are_recognised() {
        let ev = |data: &str| match parse(&format!(
            r#"{{"janus":"event","plugindata":{{"data":{data}}}}}"#
        )) {
            Ok(Incoming::Event { event, .. }) => event,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ev(r#"{"videoroom":"event","unpublished":11}"#),
            RoomEvent::Gone("11".into())
        );
        assert_eq!(
            ev(r#"{"videoroom":"event","leaving":11}"#),
            RoomEvent::Gone("11".into())
        );
        assert_eq!(
            ev(r#"{"videoroom":"talking","id":11,"audio-level-dBov-avg":30}"#),
            RoomEvent::Talking {
                feed: "11".into(),
                talking: true
            }
        );
        assert_eq!(
            ev(r#"{"videoroom":"destroyed","room":1}"#),
            RoomEvent::Destroyed
        );
        assert_eq!(
            ev(r#"{"videoroom":"event","error_code":426,"error":"No such room"}"#),
            RoomEvent::Error {
                code: 426,
                reason: "No such room".into()
            }
        );
        assert!(
            matches!(ev(r#"{"videoroom":"event","publishers":[]}"#), RoomEvent::Publishers(p) if p.is_empty())
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "{", "[1,2]", "null", "\"x\"", "{\"janus\":5}"] {
            match parse(bad) {
                Err(_) | Ok(Incoming::Other) => {}
                Ok(other) => panic!("{bad:?} parsed as {other:?}"),
            }
        }
        assert!(matches!(
            parse(r#"{"janus":"success","transaction":"a","data":{"id":42}}"#),
            Ok(Incoming::Success { id: Some(42), .. })
        ));
    }
}
