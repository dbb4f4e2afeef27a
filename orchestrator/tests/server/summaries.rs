//! After the meeting: its end queues the summary, the summary is stored once, and every recipient
//! gets one email, through real SMTP; SMTP outages, LLM failures and a killed orchestrator change
//! when, never whether or how often.

use crate::both_backends;
use crate::faults::serve_with;
use crate::helpers::{
    Backend, Options, TestApp, eventually, fresh_database, open_store, redis_url, stored_meeting,
    unique_stream,
};
use crate::ingest::{segment, speaker};
use crate::mail_servers::{PrivateLlm, PrivateSmtp};
use parley_bot::sink::EventSink;
use parley_bot::sink::redis::RedisSink;
use parley_orchestrator::store::JobKind;
use parley_orchestrator::summary::LlmConfig;
use parley_shared::{Event, EventBody, MeetingId};
use parley_testkit::servers::free_port;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const OWNER: &str = "owner@example.com";
const INVITEES: [&str; 2] = ["maria@example.com", "tom@example.com"];

/// What the bot would publish for a short meeting, ending with `meeting_ended`.
async fn talk_and_end(stream: &str, meeting: MeetingId) {
    let tom = speaker("tom", "Tom Becker");
    let maria = speaker("maria", "Maria Santos");
    let bodies = vec![
        segment(
            meeting,
            &tom,
            0,
            "We decided to ship version 2.4 on Monday.",
            true,
        ),
        segment(
            meeting,
            &maria,
            3000,
            "I will fix the failed accounts by Thursday.",
            true,
        ),
        segment(meeting, &tom, 6000, "Thanks, everyone.", true),
        EventBody::MeetingEnded { at_ms: 8000 },
    ];
    let mut sink = RedisSink::connect(&redis_url(), stream)
        .await
        .expect("sink");
    for (seq, body) in bodies.into_iter().enumerate() {
        sink.publish(Event::new(meeting, seq as u64, body))
            .await
            .expect("publish");
    }
}

async fn production_app(smtp_url: String, llm: Option<LlmConfig>) -> (TestApp, String) {
    let stream = unique_stream();
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            redis_stream: Some(stream.clone()),
            smtp_url: Some(smtp_url),
            llm,
            ..Options::default()
        },
    )
    .await;
    (app, stream)
}

/// A meeting owned by `OWNER` with the two invitees; returns its id and the owner's token.
async fn meeting(app: &TestApp) -> (MeetingId, String) {
    let token = app.user(OWNER).await;
    let id = app
        .meeting(
            &token,
            json!({"title": "Release sync", "url": "https://zoom.us/j/7",
                                "start_time": "2099-01-01T00:00:00Z", "participants": INVITEES}),
        )
        .await;
    (MeetingId::parse(&id).expect("id"), token)
}

fn recipients(messages: &[String]) -> BTreeSet<String> {
    messages
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .map(str::to_owned)
        })
        .collect()
}

fn everyone() -> BTreeSet<String> {
    std::iter::once(OWNER)
        .chain(INVITEES)
        .map(str::to_owned)
        .collect()
}

/// The mails the SMTP server received, without the accounts' verification mails.
fn summary_mails(smtp: &PrivateSmtp) -> Vec<String> {
    smtp.messages()
        .into_iter()
        .filter(|m| !m.contains("Subject: Verify your address"))
        .collect()
}

async fn mails(smtp: &PrivateSmtp, n: usize, within: Duration) -> Vec<String> {
    eventually(within, "summary emails", || async {
        let m = summary_mails(smtp);
        (m.len() >= n).then_some(m)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meeting_end_mails_the_summary_once_to_the_owner_and_every_participant() {
    let smtp = PrivateSmtp::start();
    let (app, stream) = production_app(smtp.url(), None).await;
    let (id, token) = meeting(&app).await;
    talk_and_end(&stream, id).await;

    let messages = mails(&smtp, 3, Duration::from_secs(30)).await;
    assert_eq!(recipients(&messages), everyone());
    let live = app
        .live_url(&token, &id.to_string())
        .await
        .expect("live link");
    for m in &messages {
        for part in [
            "Subject: Meeting summary: Release sync",
            "multipart/alternative",
            "Tom Becker, Maria Santos",
            "Maria Santos: Fix the failed accounts (due by thursday",
            "We decided to ship version 2.4 on Monday.",
            &live,
        ] {
            assert!(m.contains(part), "{part:?} missing from\n{m}");
        }
    }
    let summary: Value = app
        .get(&format!("/meetings/{id}/summary"), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(summary["model"], "builtin");
    assert_eq!(summary["action_items"][0]["owner"], "Maria Santos");
    assert_eq!(summary["action_items"][0]["due"], "by thursday");
    let seed: Value = app
        .get(&format!("/meeting/summary?meeting_id={id}"), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(seed["summary"], summary["summary"]);

    // Ending it again (the API after the bot) changes nothing: one summary, one email each.
    let r = app
        .post(&format!("/meetings/{id}/end"), Some(&token), &json!({}))
        .await;
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        summary_mails(&smtp).len(),
        3,
        "exactly one email per recipient"
    );
    let jobs = app.store.jobs_of(id).await.expect("jobs");
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.state == "done"), "{jobs:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_delays_the_emails_and_delivers_each_once() {
    let port = free_port().expect("port");
    let (app, stream) = production_app(format!("smtp://127.0.0.1:{port}"), None).await;
    let (id, _) = meeting(&app).await;
    talk_and_end(&stream, id).await;
    eventually(
        Duration::from_secs(30),
        "email attempts failing",
        || async {
            let jobs = app.store.jobs_of(id).await.ok()?;
            let failing = jobs
                .iter()
                .filter(|j| {
                    j.kind == "email"
                        && j.state == "queued"
                        && j.attempts >= 1
                        && j.last_error.is_some()
                })
                .count();
            (failing == 3).then_some(())
        },
    )
    .await;
    let smtp = PrivateSmtp::start_on(port);
    let messages = mails(&smtp, 3, Duration::from_secs(60)).await;
    assert_eq!(recipients(&messages), everyone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(summary_mails(&smtp).len(), 3, "delivered exactly once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_summaries_and_their_failures_are_recorded() {
    let smtp = PrivateSmtp::start();
    let llm = PrivateLlm::start();
    let config = |base_url: String, max_output_tokens: u32| LlmConfig {
        base_url,
        api_key: None,
        model: "smollm2".to_owned(),
        context_tokens: 4096,
        max_output_tokens,
        timeout: Duration::from_secs(120),
        attempts: 2,
    };
    let cases = [
        // A working model: its summary is used.
        (config(llm.url(), 1024), None),
        // Cut off after a few tokens: never valid JSON.
        (config(llm.url(), 8), Some("not valid JSON")),
        // Nothing listening.
        (
            config(
                format!("http://127.0.0.1:{}/v1", free_port().expect("port")),
                768,
            ),
            Some("request failed"),
        ),
    ];
    for (llm_config, failure) in cases {
        let (app, stream) = production_app(smtp.url(), Some(llm_config)).await;
        let (id, token) = meeting(&app).await;
        talk_and_end(&stream, id).await;
        let summary: Value = eventually(Duration::from_secs(300), "the summary", || async {
            let r = app
                .get(&format!("/meetings/{id}/summary"), Some(&token))
                .await;
            if r.status().is_success() {
                r.json().await.ok()
            } else {
                None
            }
        })
        .await;
        match failure {
            None => {
                assert_eq!(summary["model"], "llm:smollm2", "{summary}");
                assert!(summary["fallback_reason"].is_null(), "{summary}");
                assert!(!summary["summary"].as_str().unwrap_or("").is_empty());
            }
            Some(why) => {
                assert_eq!(summary["model"], "builtin", "{summary}");
                let reason = summary["fallback_reason"].as_str().unwrap_or("");
                assert!(
                    reason.contains(why),
                    "fallback reason {reason:?} should say {why:?}"
                );
                assert_eq!(
                    summary["action_items"][0]["owner"], "Maria Santos",
                    "the built-in summary is used"
                );
            }
        }
        app.stop().await;
    }
    assert_eq!(
        summary_mails(&smtp).len(),
        9,
        "every case mailed its three recipients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestrator_resumes_its_job_and_mails_each_recipient_once() {
    let (url, dir) = fresh_database(Backend::Postgres).await;
    let store = open_store(&url, dir.path()).await;
    let id = stored_meeting(&store, &INVITEES).await;
    // The first replica's LLM accepts the request and never answers, so the summary job is
    // running when the replica is killed.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let hung_url = format!("http://{}/v1", hung.local_addr().expect("addr"));
    let smtp_port = free_port().expect("port");
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let stream = unique_stream();
    let env = |llm: &str| {
        vec![
            ("SMTP_URL", smtp_url.clone()),
            ("OPENAI_BASE_URL", llm.to_owned()),
            ("PARLEY_LLM_TIMEOUT_SECS", "600".to_owned()),
            ("PARLEY_JOB_LEASE_SECS", "2".to_owned()),
        ]
    };
    let first_env = env(&hung_url);
    let first_env: Vec<(&str, &str)> = first_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = serve_with(&url, &stream, "replica-a", dir.path(), &first_env);
    talk_and_end(&stream, id).await;
    eventually(
        Duration::from_secs(30),
        "the summary job running",
        || async {
            let jobs = store.jobs_of(id).await.ok()?;
            jobs.iter()
                .any(|j| j.kind == JobKind::Summary.as_str() && j.state == "running")
                .then_some(())
        },
    )
    .await;
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    drop(hung);

    let smtp = PrivateSmtp::start_on(smtp_port);
    let second_env = vec![("SMTP_URL", smtp_url.as_str())];
    let mut second = serve_with(&url, &stream, "replica-b", dir.path(), &second_env);
    let messages = mails(&smtp, 3, Duration::from_secs(60)).await;
    assert_eq!(recipients(&messages), everyone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(summary_mails(&smtp).len(), 3, "no email twice");
    let jobs = store.jobs_of(id).await.expect("jobs");
    assert!(jobs.iter().all(|j| j.state == "done"), "{jobs:?}");
    let summary_job = jobs
        .iter()
        .find(|j| j.kind == "summary")
        .expect("summary job");
    assert_eq!(
        summary_job.attempts, 2,
        "taken over after the lease: {jobs:?}"
    );
    second.kill().expect("stop");
    let _ = second.wait();
    store.close().await;
}

both_backends!(jobs_are_claimed_once_and_retaken_after_their_lease);

async fn jobs_are_claimed_once_and_retaken_after_their_lease(backend: Backend) {
    let (url, dir) = fresh_database(backend).await;
    let store = open_store(&url, dir.path()).await;
    let id = stored_meeting(&store, &[]).await;
    store
        .enqueue_job(JobKind::Summary, id, "", 5_000, 0)
        .await
        .expect("queue");
    store
        .enqueue_job(JobKind::Summary, id, "", 1_000, 0)
        .await
        .expect("queue again");
    assert_eq!(
        store.jobs_of(id).await.expect("jobs").len(),
        1,
        "one job per kind and meeting"
    );
    assert!(
        store.claim_job(999, 100).await.expect("claim").is_none(),
        "not due yet"
    );
    let job = store
        .claim_job(1_000, 100)
        .await
        .expect("claim")
        .expect("due at the earlier time");
    assert_eq!(job.attempts, 1);
    assert!(
        store.claim_job(1_050, 100).await.expect("claim").is_none(),
        "leased"
    );
    let again = store
        .claim_job(1_101, 100)
        .await
        .expect("claim")
        .expect("lease over");
    assert_eq!((again.job_id, again.attempts), (job.job_id, 2));
    store
        .retry_job(job.job_id, 2_000, "SMTP down", 1_150)
        .await
        .expect("retry");
    assert!(
        store.claim_job(1_999, 100).await.expect("claim").is_none(),
        "backing off"
    );
    let third = store
        .claim_job(2_000, 100)
        .await
        .expect("claim")
        .expect("retried");
    store.finish_job(third.job_id, 2_010).await.expect("finish");
    store
        .enqueue_job(JobKind::Summary, id, "", 0, 3_000)
        .await
        .expect("queue after done");
    assert!(
        store.claim_job(10_000, 100).await.expect("claim").is_none(),
        "a done job stays done"
    );
    let jobs = store.jobs_of(id).await.expect("jobs");
    assert_eq!(
        (
            jobs[0].state.as_str(),
            jobs[0].attempts,
            jobs[0].last_error.as_deref()
        ),
        ("done", 3, Some("SMTP down"))
    );
    store.close().await;
}
