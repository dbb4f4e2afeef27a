//! The bot fleet: the admin's view and settings, one worker serving two meetings at once, and a
//! bot worker killed mid-meeting being replaced by another that re-joins, with the transcript
//! neither duplicated nor losing more than the gap. The fault test runs real `parley-bot worker` processes (built by `cargo test
//! --workspace`), Redis, Postgres and the tiny.en-q8_0 model.

use crate::bots::{ONE_AT_A_TIME, SAMPLE_MAX_WER};
use crate::helpers::{Backend, Options, TestApp, assert_transcript, eventually, unique_stream};
use parley_orchestrator::config::FleetConfig;
use parley_orchestrator::fleet::launchers::LauncherKind;
use parley_orchestrator::store::FleetSettings;
use parley_shared::{MeetingId, now_ms};
use parley_testkit::eval::Reference;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[tokio::test]
async fn only_admins_see_and_size_the_fleet_and_bad_settings_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin("admin@example.com").await;
    let user = app.user("user@example.com").await;
    assert_eq!(
        app.get("/admin/fleet", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/admin/fleet", Some(&user)).await.status(),
        StatusCode::FORBIDDEN
    );
    let put = |token: String, body: Value| {
        let req = app
            .http
            .put(app.url("/admin/fleet"))
            .bearer_auth(token)
            .json(&body);
        async move { req.send().await.expect("request") }
    };
    assert_eq!(
        put(user.clone(), json!({"max_bots": 9})).await.status(),
        StatusCode::FORBIDDEN
    );
    for bad in [
        json!({"max_bots": 0}),
        json!({"min_idle": 5, "max_bots": 2}),
        json!({"per_user": 0}),
        json!({"max_bots": 1_000_000}),
        json!({"max_bots": "many"}),
        json!({"replicas": 3}),
    ] {
        let r = put(admin.clone(), bad.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = put(admin.clone(), json!({"min_idle": 1, "max_bots": 3})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.store.fleet_settings().await.expect("settings"),
        Some(FleetSettings {
            min_idle: 1,
            max_bots: 3,
            per_user: 2
        }),
        "settings left out keep their values"
    );
    // The warm pool: one idle in-process worker with the model loaded.
    let fleet: Value = eventually(Duration::from_secs(60), "a warm idle bot", || async {
        let f = fleet(&app, &admin).await?;
        let bots = f["bots"].as_array()?;
        (bots.len() == 1 && bots[0]["state"] == "idle").then_some(f)
    })
    .await;
    assert_eq!(fleet["launcher"], "in-process");
    assert_eq!(fleet["settings"]["max_bots"], 3);
    assert_eq!(fleet["queue"]["queued"], 0);
    let bot = &fleet["bots"][0];
    assert!(
        bot["worker_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("in-process-"))
    );
    assert!(bot["uptime_s"].is_u64() && bot["pid"].is_u64(), "{bot}");
    assert!(bot["meeting_id"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_two_meetings_at_once_with_one_model() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            replay_speed: Some(1.0),
            fleet: Some(FleetConfig {
                defaults: FleetSettings {
                    min_idle: 0,
                    max_bots: 2,
                    per_user: 2,
                },
                meetings_per_worker: 2,
                ..FleetConfig::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin("admin@example.com").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("testdata/sample");
    let mut ids = Vec::new();
    for title in ["Sample one", "Sample two"] {
        let body =
            json!({"title": title, "url": format!("replay:{}", dir.display()), "participants": []});
        ids.push(app.meeting(&admin, body).await);
    }
    // Both meetings in one worker: the fleet started one, not two.
    let bots = eventually(
        Duration::from_secs(60),
        "one bot worker in both meetings",
        || async {
            let f = fleet(&app, &admin).await?;
            let bots = f["bots"].as_array()?.clone();
            let serving = |id: &String| {
                bots.iter().any(|b| {
                    b["meetings"]
                        .as_array()
                        .is_some_and(|m| m.contains(&json!(id)))
                })
            };
            ids.iter().all(serving).then_some(bots)
        },
    )
    .await;
    assert_eq!(bots.len(), 1, "{bots:?}");
    assert_eq!(bots[0]["max_meetings"], 2, "{bots:?}");
    let reference = Reference::load(&dir.join("reference.json")).expect("reference");
    for id in &ids {
        app.ended_meeting(&admin, id, Duration::from_secs(300))
            .await;
        assert_transcript(
            &app,
            id,
            &reference,
            "two meetings in one worker",
            SAMPLE_MAX_WER,
        )
        .await;
    }
    app.stop().await;
}

/// The `parley-bot` binary `cargo test --workspace` built beside this test.
fn bot_program() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let program = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("parley-bot"))
        .expect("target dir");
    assert!(
        program.is_file(),
        "{} is missing: build it with cargo build -p parley-bot (cargo test --workspace does)",
        program.display()
    );
    program
}

async fn fleet(app: &TestApp, admin: &str) -> Option<Value> {
    app.get("/admin/fleet", Some(admin)).await.json().await.ok()
}

/// The fleet's view of the bot in `meeting`: (worker id, pid, when it entered its state).
async fn bot_in(app: &TestApp, admin: &str, meeting: &str) -> Option<(String, i32, u64)> {
    let f = fleet(app, admin).await?;
    f["bots"].as_array()?.iter().find_map(|b| {
        (b["meeting_id"] == meeting && b["state"] == "in_meeting").then(|| {
            (
                b["worker_id"].as_str().unwrap_or_default().to_owned(),
                b["pid"]
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0),
                b["state_since_ms"].as_u64().unwrap_or(0),
            )
        })
    })
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_worker_killed_mid_meeting_is_replaced_and_the_transcript_stays_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let stream = unique_stream();
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            redis_stream: Some(stream),
            replay_speed: Some(1.0),
            fleet: Some(FleetConfig {
                launcher: LauncherKind::Process,
                defaults: FleetSettings {
                    min_idle: 1,
                    max_bots: 3,
                    per_user: 2,
                },
                bot_program: Some(bot_program()),
                ..FleetConfig::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin("admin@example.com").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/meeting-dev")
        .canonicalize()
        .expect("testdata/meeting-dev");
    // Workers load the model before they take meetings: wait for the warm pool.
    eventually(Duration::from_secs(120), "a warm bot worker", || async {
        let f = fleet(&app, &admin).await?;
        f["bots"]
            .as_array()?
            .iter()
            .any(|b| b["state"] == "idle")
            .then_some(())
    })
    .await;
    let id = app
        .meeting(
            &admin,
            json!({"title": "Stand-up", "url": format!("replay:{}", dir.display()), "participants": []}),
        )
        .await;
    let (first, pid, joined_ms) = eventually(
        Duration::from_secs(30),
        "the first bot in the meeting",
        || bot_in(&app, &admin, &id),
    )
    .await;
    // Let it transcribe for a while, then kill it as an OOM kill or a node loss would.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let meeting = MeetingId::parse(&id).expect("id");
    let before = app.store.segments(meeting, false).await.expect("segments");
    assert!(
        !before.is_empty(),
        "the first bot transcribed nothing in 25 s"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the bot worker");
    let killed = Instant::now();
    let killed_ms = now_ms();
    let (second, _, rejoined_ms) = eventually(
        Duration::from_secs(30),
        "another bot in the meeting",
        || async {
            bot_in(&app, &admin, &id)
                .await
                .filter(|(w, _, _)| *w != first)
        },
    )
    .await;
    let gap = killed.elapsed();
    eprintln!(
        "bot {first} killed; {second} in the meeting {:.1} s later",
        gap.as_secs_f64()
    );
    assert!(gap < Duration::from_secs(15), "re-joined after {gap:?}");

    let ended = app
        .ended_meeting(&admin, &id, Duration::from_secs(180))
        .await;
    assert_eq!(
        ended["participants"].as_array().map(Vec::len),
        Some(3),
        "{ended}"
    );

    let finals = app.store.segments(meeting, false).await.expect("segments");
    // No duplicates: the replacement's times continue the meeting's clock, so no two finals of
    // a speaker cover the same stretch, and none repeats another's words.
    for (i, a) in finals.iter().enumerate() {
        for b in &finals[i + 1..] {
            if a.speaker != b.speaker {
                continue;
            }
            let overlap = a
                .end_ms
                .min(b.end_ms)
                .saturating_sub(a.start_ms.max(b.start_ms));
            assert!(overlap < 500, "overlapping finals: {a:?} and {b:?}");
            assert!(
                words(&a.text).len() < 3 || a.text != b.text,
                "repeated final: {a:?} and {b:?}"
            );
        }
    }
    // Nothing lost but the gap: every reference utterance clear of [kill - 2 s, re-join + 2 s]
    // on the meeting clock is in the transcript (word recall; synthetic voices misread some).
    let gap_start = killed_ms.saturating_sub(joined_ms).saturating_sub(2_000);
    let gap_end = rejoined_ms.saturating_sub(joined_ms) + 2_000;
    let reference = Reference::load(&dir.join("reference.json")).expect("reference");
    let (mut expected, mut found) = (0, 0);
    let mut after_gap = 0;
    for u in &reference.utterances {
        if u.end_ms > gap_start && u.start_ms < gap_end {
            continue;
        }
        after_gap += usize::from(u.start_ms >= gap_end);
        let heard: HashSet<String> = finals
            .iter()
            .filter(|s| {
                s.speaker == u.speaker
                    && s.end_ms + 2_000 >= u.start_ms
                    && s.start_ms <= u.end_ms + 2_000
            })
            .flat_map(|s| words(&s.text))
            .collect();
        let said = words(&u.text);
        let got = said.iter().filter(|w| heard.contains(*w)).count();
        // Misreads cost a word here and there (a short line can lose most of its few words);
        // a lost utterance loses them all, and a long one most of them.
        assert!(
            got > 0 && (said.len() < 8 || got * 2 >= said.len()),
            "utterance lost: {u:?}, heard {heard:?}"
        );
        expected += said.len();
        found += got;
    }
    let recall = found as f64 / expected.max(1) as f64;
    eprintln!(
        "gap {gap_start}..{gap_end} ms on the meeting clock; word recall outside it {:.1} % ({found}/{expected}); {after_gap} utterances after it",
        recall * 100.0
    );
    assert!(after_gap >= 3, "the test must leave speech after the gap");
    assert!(recall >= 0.8, "recall {:.1} %", recall * 100.0);
    app.stop().await;
}

/// A `parley serve --launcher process` child with a warm pool of one worker, its stderr (and
/// its workers', which they inherit) read line by line; the channel closes when every process
/// holding that stderr has exited.
struct ServeWithWorkers {
    serve: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl ServeWithWorkers {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("dir");
        let stream = unique_stream();
        let port = parley_testkit::servers::free_port().expect("port");
        let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--launcher", "process", "--fleet-min-idle", "1"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--bot-program")
            .arg(bot_program())
            .args(["--redis-url", &crate::helpers::redis_url()])
            .args(["--events-stream", &stream])
            .args(["--assignments-stream", &format!("{stream}:assignments")])
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start parley serve");
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let stderr = serve.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if lines_tx.send(line).is_err() {
                    // Keep draining, so the server and its bots never block on a full pipe.
                    continue;
                }
            }
        });
        Self {
            serve,
            lines,
            _dir: dir,
        }
    }

    /// The first line of stderr that `wanted` accepts within `within`, else every line seen.
    fn line(&self, within: Duration, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => return Err(seen.join("\n")),
            }
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.serve.id()).expect("pid")),
            signal,
        )
        .expect("signal the server");
    }
}

/// A test that fails midway leaves no server behind (its workers then leave by themselves).
impl Drop for ServeWithWorkers {
    fn drop(&mut self) {
        if let Ok(None) = self.serve.try_wait() {
            let _ = self.serve.kill();
            let _ = self.serve.wait();
        }
    }
}

/// `parley serve --launcher process` hands its bots its own settings: flags given to the server,
/// over environment variables of its own that would otherwise reach the bots directly, and the
/// connector secrets, which the bot's report of its settings does not print.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_given_to_the_server_reach_the_bots_it_starts() {
    let mut server = ServeWithWorkers::start(
        &[
            "--beam",
            "3",
            "--workers",
            "1",
            "--alone-timeout-secs",
            "17",
            "--record-to",
            "off",
            "--livekit-api-key",
            "lk-key",
            "--livekit-api-secret",
            "lk-secret-value",
        ],
        // The server's own environment says otherwise; its flags win, and the bots must not
        // read these variables behind the server's back.
        &[
            ("PARLEY_ASR_WORKERS", "3"),
            ("PARLEY_ALONE_TIMEOUT_SECS", "99"),
        ],
    );
    let report = server.line(Duration::from_secs(60), |line| {
        line.contains("parley-bot: worker") && line.contains("starting with")
    });
    // SIGTERM (before any assertion, so no worker outlives the test): the server stops its
    // workers before it exits.
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let exited = eventually(Duration::from_secs(60), "the server exits", || {
        let status = server.serve.try_wait().expect("wait");
        async move { status }
    })
    .await;
    let report = report.unwrap_or_else(|said| {
        panic!("no bot worker reported its settings; the server said:\n{said}")
    });
    assert!(exited.success(), "parley serve exited with {exited}");
    for expected in [
        "beam: 3",
        "workers: 1",
        "alone_timeout_secs: 17",
        "record_to: None",
        "api_key: \"lk-key\"",
        "api_secret: <secret>",
    ] {
        assert!(report.contains(expected), "{expected:?} not in {report}");
    }
    assert!(
        !report.contains("lk-secret-value"),
        "a secret was printed: {report}"
    );
}

/// A server killed outright stops no worker itself: each notices its parent is gone and leaves
/// as on SIGTERM, instead of serving meetings nobody sizes or logging into the void.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_of_a_killed_server_leave_by_themselves() {
    let mut server = ServeWithWorkers::start(&[], &[]);
    let ready = server.line(Duration::from_secs(120), |line| {
        line.contains("parley-bot: worker") && line.contains("ready with model")
    });
    server.signal(nix::sys::signal::Signal::SIGKILL);
    server.serve.wait().expect("wait for the server");
    if let Err(said) = ready {
        panic!("no bot worker got ready; the server said:\n{said}");
    }
    // The workers hold the server's stderr: it closes when the last of them has exited.
    let left = server.line(Duration::from_secs(30), |line| {
        line.contains("the process that started this worker is gone")
    });
    assert!(left.is_ok(), "no worker noticed: {left:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match server
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("a bot worker of the killed server still runs 30 s after leaving")
            }
        }
    }
}
