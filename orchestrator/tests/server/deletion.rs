//! Deleting: a meeting's owner deletes it and nothing of it remains, in the database (Postgres
//! or SQLite), in Redis (event stream, dead letters, live log) or in the object store (S3, or the
//! recordings folder); a late event of its bot is dropped and erased; retention deletes the same
//! on a clock the test controls; `DELETE /me` deletes an account with its meetings.

use crate::helpers::{Backend, Options, TestApp, eventually, fresh_database, unique_stream};
use crate::s3::S3Server;
use crate::webhooks::start_receiver;
use parley_orchestrator::deletion::Deleter;
use parley_orchestrator::live::LiveLog;
use parley_shared::MeetingId;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::time::Duration;

/// Every row of every table, as text: `(table, row)`.
async fn every_row(database_url: &str) -> Vec<(String, String)> {
    let mut conn = sqlx::AnyConnection::connect(database_url)
        .await
        .expect("connect to the database");
    let postgres = database_url.starts_with("postgres");
    let tables_sql = if postgres {
        "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let tables: Vec<String> = sqlx::query(tables_sql)
        .fetch_all(&mut conn)
        .await
        .expect("tables")
        .iter()
        .map(|r| r.try_get("name").expect("name"))
        .collect();
    let mut rows = Vec::new();
    for table in tables {
        let sql = if postgres {
            format!("SELECT CAST(t AS TEXT) AS row FROM \"{table}\" t")
        } else {
            let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}')"
            )))
            .fetch_all(&mut conn)
            .await
            .expect("columns")
            .iter()
            .map(|r| r.try_get("name").expect("name"))
            .collect();
            let joined: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "COALESCE(CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") \
                         ELSE CAST(\"{c}\" AS TEXT) END, '')"
                    )
                })
                .collect();
            format!(
                "SELECT {} AS row FROM \"{table}\"",
                joined.join(" || '|' || ")
            )
        };
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .expect("rows")
        {
            rows.push((table.clone(), r.try_get::<String, _>("row").expect("row")));
        }
    }
    let _ = conn.close().await;
    rows
}

/// Every key of the Redis at `url` with everything it holds, as text: `(key, content)`.
async fn every_redis_key(url: &str) -> Vec<(String, String)> {
    let mut conn = redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let keys: Vec<String> = conn.keys("*").await.expect("keys");
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("type");
        let content = match kind.as_str() {
            "stream" => {
                let range: redis::streams::StreamRangeReply =
                    conn.xrange_all(&key).await.expect("xrange");
                range
                    .ids
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            "string" => conn.get(&key).await.unwrap_or_default(),
            "hash" => format!("{:?}", conn.hgetall::<_, Vec<(String, String)>>(&key).await),
            "list" => format!("{:?}", conn.lrange::<_, Vec<String>>(&key, 0, -1).await),
            "set" => format!("{:?}", conn.smembers::<_, Vec<String>>(&key).await),
            "zset" => format!("{:?}", conn.zrange::<_, Vec<String>>(&key, 0, -1).await),
            _ => String::new(),
        };
        out.push((key, content));
    }
    out
}

/// What a deployment keeps, to search for a meeting.
struct Places<'a> {
    database_url: &'a str,
    objects: &'a dyn Fn() -> Vec<String>,
    redis: Option<(&'a str, &'a str)>,
}

impl Places<'_> {
    /// Every place that holds `id` or one of `texts`.
    async fn holding(&self, id: &str, texts: &[String]) -> Vec<String> {
        let found =
            |content: &str| content.contains(id) || texts.iter().any(|t| content.contains(t));
        let mut places: Vec<String> = every_row(self.database_url)
            .await
            .into_iter()
            .filter(|(_, row)| found(row))
            .map(|(table, row)| format!("table {table}: {row}"))
            .collect();
        places.extend(
            (self.objects)()
                .into_iter()
                .filter(|o| o.contains(id))
                .map(|o| format!("object {o}")),
        );
        // The Redis is shared with other tests that replay the same sample: its words count
        // only in this server's own streams, the meeting's id anywhere.
        if let Some((url, stream)) = self.redis {
            places.extend(
                every_redis_key(url)
                    .await
                    .into_iter()
                    .filter(|(key, content)| {
                        key.contains(id)
                            || content.contains(id)
                            || (key.starts_with(stream) && found(content))
                    })
                    .map(|(key, _)| format!("redis key {key}")),
            );
        }
        places
    }
}

/// Replays the sample meeting (recorded, with a webhook), deletes it, and finds nothing of it.
async fn a_deleted_meeting_leaves_nothing(app: &TestApp, places: &Places<'_>) {
    let _turn = crate::bots::ONE_AT_A_TIME.lock().await;
    let owner = app.admin("owner@example.com").await;
    let (hook_url, _receiver) = start_receiver(0).await;
    let r = app
        .post(
            "/webhooks",
            Some(&owner),
            &json!({"url": hook_url, "events": ["transcript.final", "summary.ready"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("testdata/sample");
    let id = app
        .meeting(
            &owner,
            json!({"title": "To forget", "url": format!("replay:{}", dir.display()),
                "metadata": {"crm_id": "deal-7"}}),
        )
        .await;
    app.ended_meeting(&owner, &id, Duration::from_secs(300))
        .await;
    eventually(
        Duration::from_secs(60),
        "the summary and recordings",
        || async {
            let summary = app
                .get(&format!("/meetings/{id}/summary"), Some(&owner))
                .await;
            let recorded = (places.objects)()
                .iter()
                .filter(|o| o.contains(&id))
                .count()
                == 2;
            (summary.status() == StatusCode::OK && recorded).then_some(())
        },
    )
    .await;
    let texts: Vec<String> = app
        .store
        .segments(MeetingId::parse(&id).expect("id"), true)
        .await
        .expect("segments")
        .into_iter()
        .map(|s| s.text.trim().to_owned())
        .filter(|t| t.len() >= 12)
        .collect();
    assert!(!texts.is_empty(), "the meeting was transcribed");
    let before = places.holding(&id, &texts).await;
    for expected in [
        "table transcriptions",
        "table summaries",
        "object ",
        "table webhook_deliveries",
    ] {
        assert!(
            before.iter().any(|p| p.starts_with(expected)),
            "{expected} holds the meeting before it is deleted: {before:#?}"
        );
    }
    if places.redis.is_some() {
        assert!(
            before.iter().any(|p| p.starts_with("redis key")),
            "{before:#?}"
        );
    }
    let live_url = app.live_url(&owner, &id).await.expect("share link");
    let share = live_url.rsplit('/').next().expect("token").to_owned();
    assert_eq!(
        app.get(&format!("/live/{share}"), None).await.status(),
        StatusCode::OK
    );

    let r = app.delete(&format!("/meetings/{id}"), &owner).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for path in [
        format!("/meetings/{id}"),
        format!("/meetings/{id}/transcript"),
        format!("/meetings/{id}/summary"),
        format!("/meetings/{id}/recordings"),
        format!("/meetings/{id}/events"),
    ] {
        let r = app.get(&path, Some(&owner)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in [format!("/live/{share}"), format!("/live/{share}/summary")] {
        assert_eq!(
            app.get(&path, None).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        app.delete(&format!("/meetings/{id}"), &owner)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let listed: Value = app
        .get("/meetings", Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["meetings"], json!([]), "{listed}");

    let after = places.holding(&id, &texts).await;
    assert!(
        after
            .iter()
            .all(|p| p.starts_with("table deleted_meetings"))
            && after.len() == 1,
        "only the tombstone (ids and times) remains: {after:#?}"
    );

    // A bot still leaving publishes after the deletion: dropped, and erased from the stream.
    if let Some((url, stream)) = places.redis {
        let mut conn = redis::Client::open(url)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let meeting = MeetingId::parse(&id).expect("id");
        let late = parley_shared::Event::new(
            meeting,
            9_999,
            crate::ingest::segment(
                meeting,
                &crate::ingest::speaker("ana", "Ana Lima"),
                600_000,
                "one more thing before we go",
                true,
            ),
        );
        let entry: String = conn
            .xadd(
                stream,
                "*",
                &[(
                    parley_bot::sink::redis::EVENT_FIELD,
                    serde_json::to_string(&late).expect("json"),
                )],
            )
            .await
            .expect("xadd");
        eventually(Duration::from_secs(20), "the late event erased", || {
            let (mut conn, entry) = (conn.clone(), entry.clone());
            async move {
                let left: redis::streams::StreamRangeReply =
                    conn.xrange(stream, &entry, &entry).await.ok()?;
                left.ids.is_empty().then_some(())
            }
        })
        .await;
        let after = places.holding(&id, &["one more thing".to_owned()]).await;
        assert_eq!(after.len(), 1, "{after:#?}");
    }
}

/// Kills a child server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_meeting_leaves_nothing_in_postgres_redis_or_s3() {
    let s3 = S3Server::start("recordings");
    let (database_url, dir) = fresh_database(Backend::Postgres).await;
    let stream = unique_stream();
    let redis_url = crate::helpers::redis_url();
    let port = parley_testkit::servers::free_port().expect("port");
    let _serve = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--database-url", &database_url])
            .args(["--redis-url", &redis_url])
            .args(["--events-stream", &stream])
            .args(["--assignments-stream", &format!("{stream}:assignments")])
            .args(["--record-to", "s3://recordings/meetings"])
            .args(["--replay-speed", "0", "--egress-allow", "127.0.0.0/8"])
            .envs(s3.env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start parley serve"),
    );
    let app = TestApp::attach(format!("http://127.0.0.1:{port}"), &database_url, dir).await;
    let objects = || s3.objects();
    let places = Places {
        database_url: &database_url,
        objects: &objects,
        redis: Some((&redis_url, &stream)),
    };
    a_deleted_meeting_leaves_nothing(&app, &places).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_meeting_leaves_nothing_in_sqlite_or_the_recordings_folder() {
    let (database_url, dir) = fresh_database(Backend::Sqlite).await;
    let app = TestApp::spawn_on(database_url.clone(), dir, Options::default()).await;
    let recordings = app.data_dir().join("recordings");
    let objects = || {
        walkdir(&recordings)
            .into_iter()
            .map(|p| p.display().to_string())
            .collect()
    };
    let places = Places {
        database_url: &database_url,
        objects: &objects,
        redis: None,
    };
    a_deleted_meeting_leaves_nothing(&app, &places).await;
    app.stop().await;
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

crate::both_backends!(only_the_owner_or_an_admin_deletes_and_an_account_goes_with_its_meetings);

async fn only_the_owner_or_an_admin_deletes_and_an_account_goes_with_its_meetings(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let ana = app.user("ana@example.com").await;
    let ben = app.user("ben@example.com").await;
    let stranger = app.user("eve@example.com").await;
    let admin = app.admin("admin@example.com").await;
    let meeting = |title: &str| {
        json!({"title": title, "url": "https://meet.google.com/abc-defg-hij",
            "start_time": "2099-01-01T10:00:00Z", "participants": ["ben@example.com"]})
    };
    let first = app.meeting(&ana, meeting("First")).await;
    let second = app.meeting(&ana, meeting("Second")).await;
    let third = app.meeting(&ana, meeting("Third")).await;
    let reader = {
        let r = app
            .post(
                "/api-keys",
                Some(&ana),
                &json!({"name": "r", "scopes": ["meetings:read"]}),
            )
            .await;
        let key: Value = r.json().await.expect("json");
        key["key"].as_str().expect("key").to_owned()
    };
    let path = format!("/meetings/{first}");
    assert_eq!(
        app.delete(&path, &stranger).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &ben).await.status(),
        StatusCode::FORBIDDEN,
        "an invitee"
    );
    assert_eq!(
        app.delete(&path, &reader).await.status(),
        StatusCode::FORBIDDEN,
        "read scope"
    );
    assert_eq!(
        app.delete(&path, &admin).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, Some(&ana)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&path, Some(&ben)).await.status(),
        StatusCode::NOT_FOUND
    );

    // The account: its password confirms it; a key cannot.
    let delete_me = |token: String, body: Value| {
        let app = &app;
        async move {
            app.http
                .delete(app.url("/me"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("DELETE /me")
                .status()
        }
    };
    let wrong = json!({"password": "not the password"});
    let right = json!({"password": "pw-ana@example.com-long"});
    assert_eq!(delete_me(ana.clone(), wrong).await, StatusCode::FORBIDDEN);
    assert_eq!(
        delete_me(reader.clone(), right.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(delete_me(ana.clone(), right).await, StatusCode::NO_CONTENT);
    for id in [&second, &third] {
        assert_eq!(
            app.get(&format!("/meetings/{id}"), Some(&ben))
                .await
                .status(),
            StatusCode::NOT_FOUND,
            "the account's meetings went with it"
        );
    }
    assert_eq!(
        app.get("/me", Some(&ana)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/meetings", Some(&reader)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ana@example.com", "pw-ana@example.com-long")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/me", Some(&ben)).await.status(), StatusCode::OK);
    app.stop().await;
}

crate::both_backends!(retention_deletes_meetings_once_they_are_over_for_long_enough);

async fn retention_deletes_meetings_once_they_are_over_for_long_enough(backend: Backend) {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    let app = TestApp::spawn(backend).await;
    let ana = app.user("ana@example.com").await;
    let meeting = |title: &str, retention: Option<u32>| {
        let mut body = json!({"title": title, "url": "https://meet.google.com/abc-defg-hij",
            "start_time": "2099-01-01T10:00:00Z"});
        if let Some(days) = retention {
            body["retention_days"] = json!(days);
        }
        body
    };
    for bad in [0, 3651] {
        let r = app
            .post("/meetings", Some(&ana), &meeting("Bad", Some(bad)))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let short = app.meeting(&ana, meeting("Kept a day", Some(1))).await;
    let default = app.meeting(&ana, meeting("Kept by default", None)).await;
    let upcoming = app.meeting(&ana, meeting("Not over yet", Some(1))).await;
    for id in [&short, &default] {
        let r = app
            .post(&format!("/meetings/{id}/end"), Some(&ana), &json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let view: Value = app
        .get(&format!("/meetings/{short}"), Some(&ana))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["retention_days"], 1);

    // The server's sweep, on a clock the test sets.
    let deleter = |retention_days| Deleter {
        store: app.store.clone(),
        live: LiveLog::memory(),
        recordings: None,
        events: None,
        retention_days,
    };
    let now = parley_shared::now_ms();
    let status = |id: String| {
        let app = &app;
        let ana = ana.clone();
        async move {
            app.get(&format!("/meetings/{id}"), Some(&ana))
                .await
                .status()
        }
    };
    assert_eq!(
        deleter(None).sweep(now + DAY_MS / 2).await.expect("sweep"),
        0
    );
    assert_eq!(
        deleter(None).sweep(now + 2 * DAY_MS).await.expect("sweep"),
        1
    );
    assert_eq!(status(short.clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(default.clone()).await,
        StatusCode::OK,
        "no default retention"
    );
    assert_eq!(
        deleter(Some(30))
            .sweep(now + 29 * DAY_MS)
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(
        deleter(Some(30))
            .sweep(now + 31 * DAY_MS)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(status(default).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(upcoming).await,
        StatusCode::OK,
        "a meeting not over is not deleted"
    );
    app.stop().await;
}
