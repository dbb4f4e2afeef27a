//! The main job as a new user runs it: `parley demo` into a data dir that does not exist yet.
//! It must print the live captions link, the web app's address with a login, the transcript and
//! the summary, and leave the summary emails in the outbox. Needs the tiny.en-q8_0 model (scripts/test installs it).

use std::process::Command;

#[test]
fn the_demo_transcribes_summarises_and_mails_the_sample_meeting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("new").join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["demo", "--replay-speed", "4", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run parley demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "parley demo failed:\n{stderr}");
    let live = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Live captions: "))
        .unwrap_or_else(|| panic!("no live captions line in\n{stdout}"));
    assert!(
        live.starts_with("http://127.0.0.1:") && live.contains("/live/"),
        "{live}"
    );
    let app = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Web app: "))
        .unwrap_or_else(|| panic!("no web app line in\n{stdout}"));
    let (address, login) = app.split_once(" (sign in as ").expect("a login");
    assert!(
        address.starts_with("http://127.0.0.1:") && address.ends_with('/'),
        "{app}"
    );
    let (email, password) = login.split_once(", password ").expect("a password");
    assert!(email.ends_with("@parley.invalid"), "{app}");
    assert!(password.trim_end_matches(')').len() >= 16, "{app}");
    for part in [
        "Ana Lima:",
        "Ben Carter:",
        "Summary (builtin):",
        "Action items:",
        "Summary emailed: 3 messages",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from\n{stdout}");
    }
    let mails: Vec<String> = std::fs::read_dir(data.join("outbox"))
        .expect("outbox")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("eml"))
        .collect();
    assert_eq!(mails.len(), 3, "the owner and the two sample participants");
    for to in ["ana.lima@example.com", "ben.carter@example.com"] {
        assert!(
            mails.iter().any(|m| m.contains(&format!("To: {to}"))),
            "no mail to {to}"
        );
    }
}
