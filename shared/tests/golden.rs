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
