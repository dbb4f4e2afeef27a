//! The v1 event wire format is pinned by golden files: each parses, and re-serialises to the same JSON.

use parley_shared::Event;
use std::path::Path;

#[test]
fn v1_golden_events_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("dir entry").path();
        let text = std::fs::read_to_string(&path).expect("golden file");
        let event: Event =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(event.v, 1);
        let back: serde_json::Value = serde_json::to_value(&event).expect("serialise");
        let want: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(back, want, "{} does not round-trip", path.display());
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn unknown_event_types_and_bad_keys_are_errors() {
    let bad_type = r#"{"v":1,"meeting_id":"00000000-0000-0000-0000-000000000001","seq":0,"type":"nope","at_ms":0}"#;
    assert!(serde_json::from_str::<Event>(bad_type).is_err());
    let empty_key = r#"{"v":1,"meeting_id":"00000000-0000-0000-0000-000000000001","seq":1,"type":"participant_left","speaker":{"key":"","name":"x"},"at_ms":0}"#;
    assert!(serde_json::from_str::<Event>(empty_key).is_err());
}

/// The fleet's wire types (`parley_shared::fleet`) are pinned the same way, and what workers
/// wrote before the version field reads as version 1.
#[test]
fn v1_golden_fleet_messages_round_trip() {
    use parley_shared::fleet::{Assignment, BotInfo, FLEET_VERSION};
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(name: &str) -> T {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/fleet/v1")
            .join(name);
        let text = std::fs::read_to_string(&path).expect("golden file");
        let value: T =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let back = serde_json::to_value(&value).expect("serialise");
        let want: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(back, want, "{} does not round-trip", path.display());
        value
    }
    let assignment: Assignment = round_trip("assignment.json");
    assert_eq!(assignment.v, FLEET_VERSION);
    assert!(matches!(assignment.link, parley_shared::MeetingLink::Janus(ref j) if j.room == 1234));
    let info: BotInfo = round_trip("bot_info.json");
    assert_eq!((info.v, info.meetings.len()), (1, 2));

    let before = r#"{"meeting_id":"6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f","url":"replay:testdata/sample","record":false,"dispatched_ms":0}"#;
    let old: Assignment = serde_json::from_str(before).expect("an assignment from before v");
    assert_eq!(old.v, 1);
    let bad_link = before.replace("replay:testdata/sample", "https://teams.microsoft.com/l/x");
    assert!(
        serde_json::from_str::<Assignment>(&bad_link).is_err(),
        "a link no bot joins is not an assignment"
    );
}
