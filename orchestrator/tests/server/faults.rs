//! Faults while a meeting is being transcribed: the orchestrator killed with SIGKILL, Redis
//! restarted, Postgres restarted. Afterwards every final published is stored exactly once and
//! nothing stays unacknowledged.

use crate::helpers::{
    Options, TestApp, create_pg_database, eventually, fresh_database, open_store, redis_url,
    stored_meeting, unique_stream,
};
use crate::ingest::{segment, speaker};
use crate::live::Viewer;
use parley_bot::sink::EventSink;
use parley_bot::sink::redis::RedisSink;
use parley_orchestrator::live::share_link;
use parley_orchestrator::store::Store;
use parley_shared::{Event, MeetingId};
use parley_testkit::servers::{PrivatePostgres, PrivateRedis, free_port};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SEGMENTS: u64 = 600;

/// Publishes a partial and a final for each of `SEGMENTS` segments, about 400 events a second,
/// retrying through outages as a bot does.
async fn publish_all(redis: String, stream: String, meeting: MeetingId) {
    let mut sink = RedisSink::connect(&redis, &stream).await.expect("sink");
    let ana = speaker("ana", "Ana");
    let mut seq = 0;
    for i in 0..SEGMENTS {
        for (text, is_final) in [("draft", false), (&*format!("final {i}"), true)] {
            let e = Event::new(
                meeting,
                seq,
                segment(meeting, &ana, i * 1000, text, is_final),
            );
            sink.publish(e).await.expect("publish");
            seq += 1;
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn finals_stored(store: &Store, meeting: MeetingId) -> usize {
    store
        .segments(meeting, true)
        .await
        .map(|s| s.iter().filter(|s| s.is_final).count())
        .unwrap_or(0)
}

/// Every final stored once, with its final text, and no entry left pending.
async fn assert_complete(store: &Store, meeting: MeetingId, redis: &str, stream: &str) {
    let all = eventually(Duration::from_secs(60), "every final stored", || async {
        let s = store.segments(meeting, true).await.ok()?;
        (s.iter().filter(|s| s.is_final).count() == SEGMENTS as usize).then_some(s)
    })
    .await;
    assert_eq!(all.len(), SEGMENTS as usize, "one row per segment");
    let mut texts: Vec<&str> = all.iter().map(|s| s.text.as_str()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), SEGMENTS as usize, "each final text once");
    let client = redis::Client::open(redis).expect("client");
    eventually(Duration::from_secs(30), "nothing pending", || {
        let client = client.clone();
        async move {
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let reply: redis::Value = redis::cmd("XPENDING")
                .arg(stream)
                .arg("ingest")
                .query_async(&mut conn)
                .await
                .ok()?;
            matches!(&reply, redis::Value::Array(items) if items.first() == Some(&redis::Value::Int(0)))
                .then_some(())
        }
    })
    .await;
}

/// `parley serve` as its own process (so it can be killed), in production mode, with `env` added.
pub fn serve_with(
    database_url: &str,
    stream: &str,
    consumer: &str,
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_parley"))
        .envs(env.iter().copied())
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port().expect("port")))
        .arg("--data-dir")
        .arg(data)
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url())
        .env("PARLEY_EVENTS_STREAM", stream)
        .env("PARLEY_CONSUMER", consumer)
        .env("PARLEY_CLAIM_IDLE_SECS", "1")
        // The tests' organisation, whose invitees are mailed.
        .env("PARLEY_ALLOWED_EMAIL_DOMAINS", "example.com")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start parley serve")
}

fn serve(database_url: &str, stream: &str, consumer: &str, data: &std::path::Path) -> Child {
    serve_with(database_url, stream, consumer, data, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestrator_loses_nothing() {
    let (url, dir) = fresh_database(parley_orchestrator::store::Backend::Postgres).await;
    let store = open_store(&url, dir.path()).await;
    let meeting = stored_meeting(&store, &[]).await;
    let stream = unique_stream();
    let mut first = serve(&url, &stream, "replica-a", dir.path());
    let publisher = tokio::spawn(publish_all(redis_url(), stream.clone(), meeting));
    eventually(
        Duration::from_secs(30),
        "the first replica storing",
        || async { (finals_stored(&store, meeting).await > 50).then_some(()) },
    )
    .await;
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let stored_at_kill = finals_stored(&store, meeting).await;
    assert!(stored_at_kill < SEGMENTS as usize, "killed mid-stream");
    let mut second = serve(&url, &stream, "replica-b", dir.path());
    publisher.await.expect("publisher");
    assert_complete(&store, meeting, &redis_url(), &stream).await;
    second.kill().expect("stop");
    let _ = second.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing() {
    let redis = PrivateRedis::start().expect("private redis");
    let stream = unique_stream();
    let app = TestApp::spawn_with(
        parley_orchestrator::store::Backend::Postgres,
        Options {
            redis_stream: Some(stream.clone()),
            redis_url: Some(redis.url()),
            claim_idle: Some(Duration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    let meeting = stored_meeting(&app.store, &[]).await;
    let token = app
        .store
        .meeting(meeting)
        .await
        .expect("read")
        .expect("meeting")
        .share_token;
    let link = share_link(&app.base, &token.expect("share token"));
    let mut viewer = Viewer::connect(&link, None).await;
    let publisher = tokio::spawn(publish_all(redis.url(), stream.clone(), meeting));
    eventually(Duration::from_secs(30), "events flowing", || async {
        (finals_stored(&app.store, meeting).await > 50).then_some(())
    })
    .await;
    redis.stop().expect("stop redis");
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        ready.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "not ready without redis"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart().expect("restart redis");
    publisher.await.expect("publisher");
    assert_complete(&app.store, meeting, &redis.url(), &stream).await;
    // A captions viewer connected throughout sees every final, without reconnecting.
    let shown = tokio::time::timeout(
        Duration::from_secs(60),
        viewer.follow_until(SEGMENTS as usize),
    )
    .await
    .expect("the viewer caught up after the restart");
    let mut texts: Vec<&String> = shown.values().collect();
    texts.sort();
    let mut expected: Vec<String> = (0..SEGMENTS).map(|i| format!("final {i}")).collect();
    expected.sort();
    assert_eq!(texts, expected.iter().collect::<Vec<_>>());
    assert_eq!(
        app.get("/readyz", None).await.status(),
        reqwest::StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_nothing() {
    let pg = PrivatePostgres::start().expect("private postgres");
    let url = create_pg_database(&pg.url()).await;
    let stream = unique_stream();
    let app = TestApp::spawn_on(
        url,
        tempfile::tempdir().expect("dir"),
        Options {
            redis_stream: Some(stream.clone()),
            claim_idle: Some(Duration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    let meeting = stored_meeting(&app.store, &[]).await;
    let publisher = tokio::spawn(publish_all(redis_url(), stream.clone(), meeting));
    eventually(Duration::from_secs(30), "events flowing", || async {
        (finals_stored(&app.store, meeting).await > 50).then_some(())
    })
    .await;
    pg.stop().expect("stop postgres");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.get("/readyz", None).await.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "not ready without the database"
    );
    pg.restart().expect("restart postgres");
    publisher.await.expect("publisher");
    assert_complete(&app.store, meeting, &redis_url(), &stream).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_waiting_for_redis_gives_up_when_its_worker_stops() {
    let redis = PrivateRedis::start().expect("private redis");
    let mut sink = RedisSink::connect(&redis.url(), &unique_stream())
        .await
        .expect("sink");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    sink.give_up_on(shutdown);
    redis.stop().expect("stop redis");
    let meeting = MeetingId::new_random();
    let event = Event::new(
        meeting,
        0,
        segment(meeting, &speaker("ana", "Ana"), 0, "held", true),
    );
    let publishing = tokio::spawn(async move { sink.publish(event).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !publishing.is_finished(),
        "the event is held while Redis is down"
    );
    stop.send(true).expect("worker stopping");
    // Each attempt is bounded by the connection's own timeouts (2 s to connect, 5 s to answer).
    let published = tokio::time::timeout(Duration::from_secs(10), publishing)
        .await
        .expect("the publish gives up in time instead of holding the shutdown")
        .expect("task");
    assert!(
        matches!(published, Err(parley_bot::sink::SinkError::ShuttingDown)),
        "{published:?}"
    );
}
