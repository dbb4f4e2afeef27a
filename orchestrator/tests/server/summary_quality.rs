//! The built-in summarizer on the reference transcripts of the test meetings: its action items
//! must name at least 80 % of the owners and deadlines the meeting states (annotated by hand in
//! each folder's `action_items.json`).

use parley_orchestrator::summary::{Line, Summarizer, SummaryInput};
use serde_json::Value;
use std::path::Path;

fn load(dir: &str, name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(dir)
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

fn input(dir: &str) -> SummaryInput {
    let reference = load(dir, "reference.json");
    let name_of = |key: &str| -> String {
        reference["speakers"]
            .as_array()
            .expect("speakers")
            .iter()
            .find(|s| s["key"] == key)
            .and_then(|s| s["name"].as_str())
            .expect("speaker name")
            .to_owned()
    };
    SummaryInput {
        title: reference["meeting"]
            .as_str()
            .unwrap_or("meeting")
            .to_owned(),
        day: Some(time::macros::date!(2026 - 11 - 25)),
        duration_ms: reference["duration_ms"].as_u64().unwrap_or(0),
        lines: reference["utterances"]
            .as_array()
            .expect("utterances")
            .iter()
            .map(|u| Line {
                segment_id: uuid::Uuid::new_v4(),
                speaker: name_of(u["speaker"].as_str().expect("speaker")),
                start_ms: u["start_ms"].as_u64().expect("start"),
                text: u["text"].as_str().expect("text").to_owned(),
            })
            .collect(),
    }
}

async fn check(dir: &str) {
    let produced = Summarizer::Builtin.summarize(&input(dir)).await;
    let items = &produced.summary.action_items;
    let expected = load(dir, "action_items.json");
    let expected = expected["action_items"].as_array().expect("action_items");
    let found = expected
        .iter()
        .filter(|e| {
            items.iter().any(|a| {
                a.owner.as_deref() == e["owner"].as_str()
                    && a.due
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(e["due"].as_str().expect("due")))
            })
        })
        .count();
    eprintln!(
        "{dir}: {found} of {} stated action items found; summary: {}",
        expected.len(),
        produced.summary.summary
    );
    for a in items {
        eprintln!(
            "  {:?}: {} ({:?}, {:?})",
            a.owner, a.task, a.due, a.due_date
        );
    }
    assert!(
        found * 10 >= expected.len() * 8,
        "{dir}: only {found} of {} action items with owner and deadline: {items:#?}",
        expected.len()
    );
    assert!(!produced.summary.highlights.is_empty(), "{dir}: highlights");
    assert_eq!(produced.summarizer, "builtin");
}

#[tokio::test]
async fn meeting_dev_action_items_name_owners_and_deadlines() {
    check("meeting-dev").await;
}

#[tokio::test]
async fn sample_action_items_name_owners_and_deadlines() {
    check("sample").await;
}
