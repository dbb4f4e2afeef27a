//! Webhooks: a meeting's events reach its owner's endpoint signed per Standard Webhooks, in
//! order, each once by `webhook-id` though the endpoint fails at first, with the meeting's
//! metadata; the delivery log shows the attempts; an endpoint that keeps failing is disabled and
//! its owner told; redelivery turns it back on.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, eventually};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as Answer};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parley_orchestrator::webhooks::delivery::Retries;
use parley_shared::MeetingId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// What the receiver answered.
    accepted: bool,
}

#[derive(Default)]
pub struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Requests answered 500 before the receiver starts accepting.
    refuse_first: Mutex<usize>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> Answer {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let accepted = {
        let mut refuse = r.refuse_first.lock().expect("lock");
        let accept = *refuse == 0;
        *refuse = refuse.saturating_sub(1);
        accept
    };
    r.got.lock().expect("lock").push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        accepted,
    });
    if accepted {
        Answer::NO_CONTENT
    } else {
        Answer::INTERNAL_SERVER_ERROR
    }
}

/// A real HTTP endpoint on loopback that refuses its first `refuse_first` requests.
pub async fn start_receiver(refuse_first: usize) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver {
        refuse_first: Mutex::new(refuse_first),
        ..Receiver::default()
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/hook?token=receiver-secret",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

/// Verifies a request as a Standard Webhooks receiver does, written here from the
/// specification rather than with the server's code.
fn verify(secret: &str, r: &Received) -> Value {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", r.id, r.timestamp, r.body);
    let ok = r.signature.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|tag| ring::hmac::verify(&key, signed.as_bytes(), &tag).is_ok())
    });
    assert!(ok, "signature of {} verifies", r.id);
    let sent_s: u64 = r.timestamp.parse().expect("timestamp");
    let now_s = parley_shared::now_ms() / 1000;
    assert!(sent_s.abs_diff(now_s) < 300, "timestamp is now");
    assert!(r.id.starts_with("msg_"), "{}", r.id);
    serde_json::from_str(&r.body).expect("json body")
}

fn fast_retries() -> Retries {
    Retries {
        first: Duration::from_millis(200),
        ..Retries::default()
    }
}

pub async fn key_for(app: &TestApp, token: &str, scopes: &[&str]) -> String {
    let r = app
        .post(
            "/api-keys",
            Some(token),
            &json!({"name": "integration", "scopes": scopes}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    body["key"].as_str().expect("key").to_owned()
}

both_backends!(a_replayed_meeting_reaches_a_failing_endpoint_signed_in_order_and_once_each);

async fn a_replayed_meeting_reaches_a_failing_endpoint_signed_in_order_and_once_each(
    backend: Backend,
) {
    let _turn = crate::bots::ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(
        backend,
        Options {
            webhook_retries: Some(fast_retries()),
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin("integrator@example.com").await;
    let key = key_for(
        &app,
        &admin,
        &[
            "meetings:read",
            "meetings:write",
            "bots:write",
            "webhooks:write",
        ],
    )
    .await;
    let (url, receiver) = start_receiver(2).await;
    let r = app
        .post(
            "/webhooks",
            Some(&key),
            &json!({"url": url, "events": ["bot.status", "participant.joined", "participant.left",
                "transcript.final", "meeting.ended", "summary.ready", "recording.ready"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let hook: Value = r.json().await.expect("json");
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    assert!(
        !hook["url"]
            .as_str()
            .expect("url")
            .contains("receiver-secret"),
        "the address is listed without its query"
    );

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("testdata/sample");
    let metadata = json!({"crm_id": "deal-42", "team": "sales"});
    let id = app
        .meeting(
            &key,
            json!({"title": "Sample", "url": format!("replay:{}", dir.display()),
                "metadata": metadata}),
        )
        .await;
    app.ended_meeting(&key, &id, Duration::from_secs(300)).await;

    let accepted: Vec<Received> = eventually(Duration::from_secs(60), "summary.ready", || {
        let receiver = Arc::clone(&receiver);
        async move {
            let got = receiver.got.lock().expect("lock").clone();
            got.iter()
                .any(|r| r.accepted && r.body.contains("\"summary.ready\""))
                .then(|| got.into_iter().filter(|r| r.accepted).collect())
        }
    })
    .await;
    let all = receiver.got.lock().expect("lock").clone();
    let refused: Vec<&Received> = all.iter().filter(|r| !r.accepted).collect();
    assert_eq!(refused.len(), 2);
    assert_eq!(
        refused[0].id, refused[1].id,
        "the refused delivery is retried under the same webhook-id"
    );
    assert_eq!(
        accepted[0].id, refused[0].id,
        "and delivered before any later event"
    );

    // Each event once by webhook-id, signed, with the meeting and its metadata.
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for r in &accepted {
        *by_id.entry(r.id.as_str()).or_default() += 1;
    }
    assert!(
        by_id.values().all(|n| *n == 1),
        "no event delivered twice: {by_id:?}"
    );
    let events: Vec<Value> = accepted.iter().map(|r| verify(&secret, r)).collect();
    for e in &events {
        assert_eq!(e["data"]["meeting_id"], id.as_str(), "{e}");
        assert_eq!(e["data"]["metadata"], metadata, "{e}");
        assert!(
            e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
    }
    let types: Vec<String> = events
        .iter()
        .map(|e| {
            let t = e["type"].as_str().expect("type");
            match e["data"]["state"].as_str() {
                Some(state) => format!("{t}:{state}"),
                None => t.to_owned(),
            }
        })
        .collect();
    let position = |what: &str| {
        types
            .iter()
            .position(|t| t == what)
            .unwrap_or_else(|| panic!("{what} in {types:?}"))
    };
    let finals: Vec<usize> = (0..types.len())
        .filter(|i| types[*i] == "transcript.final")
        .collect();
    assert_eq!(position("bot.status:joining"), 0, "{types:?}");
    assert!(position("bot.status:in_meeting") < finals[0], "{types:?}");
    let last_final = *finals.last().expect("finals");
    assert!(last_final < position("meeting.ended"), "{types:?}");
    assert!(position("bot.status:in_meeting") < position("bot.status:left"));
    assert!(
        position("meeting.ended") < position("summary.ready"),
        "{types:?}"
    );
    assert!(types.iter().filter(|t| *t == "participant.joined").count() >= 2);

    // Every stored final, and nothing else, as transcript.final.
    let stored = app
        .store
        .segments(MeetingId::parse(&id).expect("id"), false)
        .await
        .expect("segments");
    let stored_ids: BTreeSet<String> = stored.iter().map(|s| s.segment_id.to_string()).collect();
    let sent_ids: BTreeSet<String> = finals
        .iter()
        .map(|i| {
            events[*i]["data"]["segment"]["segment_id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(sent_ids, stored_ids);
    assert_eq!(finals.len(), stored.len());
    let summary = &events[position("summary.ready")]["data"]["summary"];
    assert!(summary["action_items"].is_array(), "{summary}");

    // The delivery log: the first delivery took three attempts, the endpoint's last answer.
    let log: Value = app
        .get(
            &format!("/webhooks/{hook_id}/deliveries?limit=500"),
            Some(&key),
        )
        .await
        .json()
        .await
        .expect("json");
    let log = log["deliveries"].as_array().expect("deliveries");
    assert_eq!(log.len(), accepted.len());
    assert!(
        log.iter()
            .all(|d| d["state"] == "delivered" && d["last_status"] == 204)
    );
    let first = log
        .iter()
        .find(|d| d["id"] == accepted[0].id.as_str())
        .expect("first delivery logged");
    assert_eq!(first["attempts"], 3, "{first}");
    assert_eq!(first["type"], "bot.status");
    app.stop().await;
}

both_backends!(webhooks_are_checked_owned_and_listed_without_their_secrets);

async fn webhooks_are_checked_owned_and_listed_without_their_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.user("ana@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (url, _receiver) = start_receiver(0).await;
    for (bad, why) in [
        (json!({"url": url, "events": []}), "no events"),
        (
            json!({"url": url, "events": ["bot.joined"]}),
            "unknown event",
        ),
        (
            json!({"url": "ftp://127.0.0.1/x", "events": ["bot.status"]}),
            "not http",
        ),
        (
            json!({"url": "http://u:p@127.0.0.1/x", "events": ["bot.status"]}),
            "credentials",
        ),
        (
            json!({"url": url, "events": ["bot.status"], "secret": "hunter2"}),
            "secret form",
        ),
        (
            json!({"url": url, "events": ["bot.status"], "metadata": {"a b": "x"}}),
            "filter key",
        ),
        (
            json!({"url": url, "events": ["bot.status"], "extra": 1}),
            "unknown field",
        ),
        // Cloud metadata: refused by the egress guard, without a packet sent to it.
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["bot.status"]}),
            "internal",
        ),
    ] {
        let r = app.post("/webhooks", Some(&ana), &bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}: {bad}");
    }
    let own_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = app
        .post(
            "/webhooks",
            Some(&ana),
            &json!({"url": url, "events": ["meeting.ended", "meeting.ended"], "secret": own_secret,
                "metadata": {"team": "sales"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.expect("json");
    assert_eq!(made["secret"], own_secret);
    assert_eq!(made["events"], json!(["meeting.ended"]));
    let id = made["id"].as_str().expect("id");

    let listed = app
        .get("/webhooks", Some(&ana))
        .await
        .text()
        .await
        .expect("text");
    assert!(listed.contains(id) && !listed.contains(own_secret) && !listed.contains("whsec_"));
    let theirs: Value = app
        .get("/webhooks", Some(&bob))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(theirs["webhooks"], json!([]));
    let r = app
        .get(&format!("/webhooks/{id}/deliveries"), Some(&bob))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.delete(&format!("/webhooks/{id}"), &bob).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A key without webhooks:write cannot touch them.
    let reader = key_for(&app, &ana, &["meetings:read"]).await;
    let r = app.get("/webhooks", Some(&reader)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = app.delete(&format!("/webhooks/{id}"), &ana).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let listed: Value = app
        .get("/webhooks", Some(&ana))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["webhooks"], json!([]));
    app.stop().await;
}

both_backends!(an_endpoint_that_keeps_failing_is_disabled_its_owner_told_and_redelivery_revives_it);

async fn an_endpoint_that_keeps_failing_is_disabled_its_owner_told_and_redelivery_revives_it(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            webhook_retries: Some(Retries {
                first: Duration::from_millis(100),
                give_up_after: Duration::from_secs(1),
                ..Retries::default()
            }),
            ..Options::default()
        },
    )
    .await;
    let ana = app.user("ana@example.com").await;
    let (url, receiver) = start_receiver(usize::MAX).await;
    let r = app
        .post(
            "/webhooks",
            Some(&ana),
            &json!({"url": url, "events": ["meeting.ended", "summary.ready"],
                "metadata": {"team": "sales"}}),
        )
        .await;
    let hook: Value = r.json().await.expect("json");
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let meeting = |title: &str, team: &str| {
        json!({"title": title, "url": "https://meet.google.com/abc-defg-hij",
            "start_time": "2099-01-01T10:00:00Z", "metadata": {"team": team}})
    };
    // Only meetings the filter matches are sent.
    let other = app.meeting(&ana, meeting("Other team", "support")).await;
    let id = app.meeting(&ana, meeting("Sales sync", "sales")).await;
    for m in [&other, &id] {
        let r = app
            .post(&format!("/meetings/{m}/end"), Some(&ana), &json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    let disabled: Value = eventually(Duration::from_secs(30), "the endpoint disabled", || async {
        let listed: Value = app.get("/webhooks", Some(&ana)).await.json().await.ok()?;
        let hook = listed["webhooks"][0].clone();
        hook["disabled_at"].is_u64().then_some(hook)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("500")),
        "{disabled}"
    );
    let mail = eventually(Duration::from_secs(10), "the owner told", || async {
        app.outbox_mail("ana@example.com", "Your Parley webhook was disabled")
    })
    .await;
    assert!(mail.contains(&hook_id), "{mail}");
    assert!(
        !mail.contains("receiver-secret"),
        "the address's token is not mailed"
    );

    let log: Value = app
        .get(&format!("/webhooks/{hook_id}/deliveries"), Some(&ana))
        .await
        .json()
        .await
        .expect("json");
    let log = log["deliveries"].as_array().expect("deliveries").clone();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|d| d["state"] == "failed" && d["meeting_id"] == id.as_str()),
        "{log:?}"
    );
    let first = log.last().expect("oldest");
    assert!(
        first["attempts"].as_u64().is_some_and(|a| a >= 2),
        "{first}"
    );
    assert_eq!(first["last_status"], 500);
    let tries = receiver.got.lock().expect("lock").len();

    // Fixed, and one delivery sent again: the endpoint is on, and that event arrives.
    *receiver.refuse_first.lock().expect("lock") = 0;
    let again = first["id"].as_str().expect("id");
    let r = app
        .post(
            &format!("/webhooks/{hook_id}/deliveries/{again}/redeliver"),
            Some(&ana),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(Duration::from_secs(10), "the redelivery", || {
        let receiver = Arc::clone(&receiver);
        let again = again.to_owned();
        async move {
            receiver
                .got
                .lock()
                .expect("lock")
                .iter()
                .any(|r| r.accepted && r.id == again)
                .then_some(())
        }
    })
    .await;
    assert!(receiver.got.lock().expect("lock").len() > tries);
    let listed: Value = app
        .get("/webhooks", Some(&ana))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["webhooks"][0]["disabled_at"], Value::Null);
    let r = app
        .post(
            &format!("/webhooks/{hook_id}/deliveries/msg_unknown/redeliver"),
            Some(&ana),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
