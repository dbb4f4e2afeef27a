//! The MCP server, driven by a real MCP client (the official Python SDK,
//! `tests/support/mcp_client.py`, in the virtualenv scripts/test makes): `parley mcp` on stdio
//! and `POST /mcp` over streamable HTTP both list the six tools and carry out each one with the
//! API key's rights, no more.

use crate::helpers::{Backend, TestApp};
use crate::webhooks::key_for;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOOLS: [&str; 6] = [
    "end_meeting",
    "get_summary",
    "get_transcript",
    "list_meetings",
    "search_transcripts",
    "send_bot",
];

/// Runs the client with `args` on `calls` (`[tool, arguments]` pairs) and returns its report.
fn client(args: &[&str], calls: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/mcp_client.py");
    let mut child = Command::new(crate::helpers::api_venv_python("mcp"))
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the MCP client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(calls.to_string().as_bytes())
        .expect("write calls");
    let out = child.wait_with_output().expect("MCP client output");
    assert!(
        out.status.success(),
        "the MCP client failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client's report is JSON")
}

fn stdio(app: &TestApp, key: &str, calls: &Value) -> Value {
    client(
        &["stdio", env!("CARGO_BIN_EXE_parley"), &app.base, key],
        calls,
    )
}

fn http(app: &TestApp, key: &str, calls: &Value) -> Value {
    client(&["http", &app.url("/mcp"), key], calls)
}

fn result(report: &Value, i: usize) -> (&str, bool, &str) {
    let r = &report["results"][i];
    (
        r["tool"].as_str().expect("tool"),
        r["is_error"].as_bool().expect("is_error"),
        r["text"].as_str().expect("text"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_mcp_client_uses_every_tool_on_stdio_and_over_http() {
    let _turn = crate::bots::ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin("assistant-owner@example.com").await;
    let all = key_for(
        &app,
        &admin,
        &["meetings:read", "meetings:write", "bots:write"],
    )
    .await;
    let reader = key_for(&app, &admin, &["meetings:read"]).await;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("testdata/sample");

    // Over HTTP: the tools, then a bot sent to the replayed sample.
    let calls = json!([["send_bot", {"url": format!("replay:{}", sample.display()), "title": "Assistant sync"}]]);
    let report = http(&app, &all, &calls);
    assert_eq!(report["server"], "parley");
    let names: Vec<&str> = report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, TOOLS);
    for tool in report["tools"].as_array().expect("tools") {
        assert_eq!(tool["schema"]["type"], "object", "{tool}");
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 20),
            "{tool}"
        );
    }
    let (_, is_error, text) = result(&report, 0);
    assert!(!is_error, "{text}");
    let sent: Value = serde_json::from_str(text).expect("the new meeting");
    let id = sent["meeting_id"].as_str().expect("id").to_owned();
    app.ended_meeting(&admin, &id, Duration::from_secs(300))
        .await;
    crate::helpers::eventually(Duration::from_secs(60), "the summary", || async {
        let r = app
            .get(&format!("/meetings/{id}/summary"), Some(&admin))
            .await;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    let upcoming = |title: &str| {
        json!({"title": title, "url": "https://meet.google.com/abc-defg-hij",
            "start_time": "2099-01-01T10:00:00Z"})
    };
    let later = app.meeting(&admin, upcoming("Planning")).await;
    let other = app.meeting(&admin, upcoming("Retro")).await;
    let words = app
        .store
        .segments(parley_shared::MeetingId::parse(&id).expect("id"), false)
        .await
        .expect("segments")
        .into_iter()
        .map(|s| s.text)
        .find_map(|t| {
            t.split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
                .find(|w| w.len() >= 6)
        })
        .expect("a long word in the transcript");

    // On stdio and over HTTP: every reading tool, and ending a meeting.
    for (transport, end) in [("stdio", &later), ("http", &other)] {
        let calls = json!([
            ["list_meetings", {"limit": 10}],
            ["get_transcript", {"meeting_id": id}],
            ["get_summary", {"meeting_id": id}],
            ["search_transcripts", {"query": words}],
            ["end_meeting", {"meeting_id": end}],
            ["get_transcript", {"meeting_id": "../admin/users"}],
        ]);
        let report = if transport == "stdio" {
            stdio(&app, &all, &calls)
        } else {
            http(&app, &all, &calls)
        };
        assert_eq!(report["tools"].as_array().expect("tools").len(), 6);
        let (_, is_error, listed) = result(&report, 0);
        assert!(
            !is_error && listed.contains(&id) && listed.contains("Assistant sync"),
            "{transport}: {listed}"
        );
        let (_, is_error, transcript) = result(&report, 1);
        assert!(!is_error, "{transport}: {transcript}");
        assert!(
            transcript.contains("] Ana Lima: ") && transcript.contains("] Ben Carter: "),
            "{transport}: {transcript}"
        );
        let (_, is_error, summary) = result(&report, 2);
        assert!(
            !is_error && summary.contains("action_items"),
            "{transport}: {summary}"
        );
        let (_, is_error, found) = result(&report, 3);
        let found: Value = serde_json::from_str(found).expect("search json");
        assert!(!is_error);
        let hits = found["results"].as_array().expect("results");
        assert!(
            !hits.is_empty() && hits.iter().all(|h| h["meeting_id"] == id.as_str()),
            "{transport}: {found}"
        );
        let (_, is_error, ended) = result(&report, 4);
        assert!(!is_error, "{transport}: {ended}");
        let view: Value = app
            .get(&format!("/meetings/{end}"), Some(&admin))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(view["status"], "ended", "{transport}");
        let (_, is_error, refused) = result(&report, 5);
        assert!(
            is_error && refused.contains("not a meeting id"),
            "{transport}: {refused}"
        );
    }

    // A key that may only read: its tools read, and refuse to send a bot with the API's reason.
    let calls = json!([
        ["get_transcript", {"meeting_id": id}],
        ["send_bot", {"url": "https://meet.google.com/abc-defg-hij"}],
    ]);
    let report = http(&app, &reader, &calls);
    assert!(!result(&report, 0).1);
    let (_, is_error, refused) = result(&report, 1);
    assert!(is_error && refused.contains("bots:write"), "{refused}");

    // Without a key, or with a wrong one, the endpoint answers nothing.
    for auth in [None, Some("pk_0000")] {
        let mut r = app
            .http
            .post(app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        if let Some(token) = auth {
            r = r.bearer_auth(token);
        }
        let r = r.send().await.expect("post");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    app.stop().await;
}
