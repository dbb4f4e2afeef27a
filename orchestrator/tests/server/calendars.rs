//! Calendars against a real CalDAV server (Radicale): events with a meeting link become
//! scheduled meetings; editing an event moves its meeting, cancelling it cancels the meeting,
//! recurring events give one meeting per instance, and the same event on two people's calendars
//! is one meeting both can see.

use crate::both_backends;
use crate::child_servers::Radicale;
use crate::helpers::{Backend, TestApp, eventually};
use chrono::{Duration as Span, Utc};
use parley_orchestrator::clock::now_ms;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Ana's design review invites Ben: his copy of the event joins her meeting.
const BEN_INVITED: &str = "ATTENDEE:mailto:ben@example.com\r\n";

fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn event(uid: &str, title: &str, start: chrono::DateTime<Utc>, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//parley tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:{now}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{title}\r\n\
         LOCATION:janus+ws://127.0.0.1:8188/?room=4321\r\n\
         ATTENDEE:mailto:maria@example.com\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n",
        now = stamp(Utc::now()),
        start = stamp(start),
        end = stamp(start + Span::minutes(30)),
    )
}

async fn meetings(app: &TestApp, token: &str) -> Vec<Value> {
    let v: Value = app
        .get("/meetings", Some(token))
        .await
        .json()
        .await
        .expect("json");
    v["meetings"].as_array().cloned().unwrap_or_default()
}

async fn start_of(app: &TestApp, token: &str, title: &str) -> Option<String> {
    meetings(app, token)
        .await
        .into_iter()
        .find(|m| m["title"] == title)
        .and_then(|m| m["start_time"].as_str().map(str::to_owned))
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

both_backends!(calendar_events_become_meetings_and_follow_their_changes);

async fn calendar_events_become_meetings_and_follow_their_changes(backend: Backend) {
    let radicale = Radicale::start();
    let app = TestApp::polling_calendars(backend).await;
    let ana = app.user("ana@example.com").await;
    let ben = app.user("ben@example.com").await;
    let http = reqwest::Client::new();
    let ana_cal = radicale.calendar(&http, "/ana/work/").await;
    let ben_cal = radicale.calendar(&http, "/ben/work/").await;
    // Whole seconds: calendars carry no milliseconds.
    let soon = Utc::now().with_timezone(&Utc) + Span::hours(2);
    let soon = soon - Span::nanoseconds(i64::from(soon.timestamp_subsec_nanos()));
    radicale
        .put(
            &http,
            &ana_cal,
            "review",
            event("review@test", "Design review", soon, BEN_INVITED),
        )
        .await;
    radicale
        .put(
            &http,
            &ana_cal,
            "daily",
            event(
                "daily@test",
                "Daily",
                soon + Span::days(1),
                "RRULE:FREQ=DAILY;COUNT=3\r\n",
            ),
        )
        .await;
    radicale
        .put(
            &http,
            &ana_cal,
            "nolink",
            event("nolink@test", "Lunch", soon, "")
                .replace("LOCATION:janus+ws://127.0.0.1:8188/?room=4321\r\n", ""),
        )
        .await;

    let r = app
        .post(
            "/calendars",
            Some(&ana),
            &json!({"url": ana_cal, "username": "ana", "password": "s3cret"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cal: Value = r.json().await.expect("json");
    assert!(
        cal.get("password").is_none() && cal.get("password_sealed").is_none(),
        "{cal}"
    );
    assert!(cal["last_read_at"].is_null(), "not read yet: {cal}");
    for bad in [
        json!({"url": "ftp://x"}),
        json!({"url": "https://x", "password": "p"}),
        json!({"url": "x"}),
    ] {
        assert_eq!(
            app.post("/calendars", Some(&ana), &bad).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    eventually(
        Duration::from_secs(20),
        "the calendar's meetings",
        || async { (meetings(&app, &ana).await.len() == 4).then_some(()) },
    )
    .await;
    let listed: Value = app
        .get("/calendars", Some(&ana))
        .await
        .json()
        .await
        .expect("calendars");
    let read_at = listed["calendars"][0]["last_read_at"]
        .as_u64()
        .expect("the good read's time");
    assert!(
        read_at <= now_ms() && read_at + 60_000 > now_ms(),
        "{listed}"
    );
    let all = meetings(&app, &ana).await;
    let review = all
        .iter()
        .find(|m| m["title"] == "Design review")
        .expect("review");
    assert_eq!(review["url"], "janus+ws://127.0.0.1:8188/?room=4321");
    assert_eq!(review["start_time"].as_str(), Some(rfc3339(soon).as_str()));
    assert_eq!(
        all.iter().filter(|m| m["title"] == "Daily").count(),
        3,
        "one meeting per instance"
    );
    assert!(
        all.iter().all(|m| m["title"] != "Lunch"),
        "events without a meeting link are skipped"
    );
    let review_id = review["meeting_id"].as_str().expect("id").to_owned();

    // Moved in the calendar: the meeting moves.
    let later = soon + Span::hours(1);
    radicale
        .put(
            &http,
            &ana_cal,
            "review",
            event(
                "review@test",
                "Design review",
                later,
                &format!("SEQUENCE:1\r\n{BEN_INVITED}"),
            ),
        )
        .await;
    eventually(Duration::from_secs(20), "the meeting moved", || async {
        (start_of(&app, &ana, "Design review").await.as_deref() == Some(rfc3339(later).as_str()))
            .then_some(())
    })
    .await;

    // The same event on Ben's calendar: still one meeting (it invites Ben), which Ben sees too.
    radicale
        .put(
            &http,
            &ben_cal,
            "review",
            event("review@test", "Design review", later, "SEQUENCE:1\r\n"),
        )
        .await;
    let r = app
        .post("/calendars", Some(&ben), &json!({"url": ben_cal}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    eventually(Duration::from_secs(20), "Ben sees the meeting", || async {
        meetings(&app, &ben)
            .await
            .iter()
            .any(|m| m["meeting_id"] == review_id.as_str())
            .then_some(())
    })
    .await;
    assert_eq!(
        meetings(&app, &ana)
            .await
            .iter()
            .filter(|m| m["title"] == "Design review")
            .count(),
        1
    );

    // Cancelled on both calendars: the meeting is gone.
    for cal in [&ana_cal, &ben_cal] {
        radicale
            .put(
                &http,
                cal,
                "review",
                event(
                    "review@test",
                    "Design review",
                    later,
                    "SEQUENCE:2\r\nSTATUS:CANCELLED\r\n",
                ),
            )
            .await;
    }
    eventually(Duration::from_secs(20), "the meeting cancelled", || async {
        (app.get(&format!("/meetings/{review_id}"), Some(&ana))
            .await
            .status()
            == StatusCode::NOT_FOUND)
            .then_some(())
    })
    .await;

    // A feed that fails is retried with back-off, and says why.
    let r = app
        .post(
            "/calendars",
            Some(&ben),
            &json!({"url": format!("{}/nobody/missing/", radicale.base)}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let failing: Value = r.json().await.expect("json");
    // The path of a feed's address can be its secret: it is shown as scheme, host and port.
    assert_eq!(failing["url"], format!("{}/…", radicale.base), "{failing}");
    eventually(Duration::from_secs(20), "the failure recorded", || async {
        let v: Value = app.get("/calendars", Some(&ben)).await.json().await.ok()?;
        v["calendars"]
            .as_array()?
            .iter()
            .find(|c| c["calendar_id"] == failing["calendar_id"])
            .filter(|c| c["failures"].as_u64() >= Some(1) && c["last_error"].is_string())
            .map(|_| ())
    })
    .await;

    // Removing a calendar cancels what only it scheduled.
    let cal_id = cal["calendar_id"].as_str().expect("id");
    let r = app.delete(&format!("/calendars/{cal_id}"), &ana).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        meetings(&app, &ana)
            .await
            .iter()
            .all(|m| m["title"] != "Daily")
    );
    let r = app.delete(&format!("/calendars/{cal_id}"), &ben).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "only its owner removes a calendar"
    );
    app.stop().await;
}
