//! Redis Streams ingest: events published by bots land in Postgres exactly once; entries that
//! can never apply are set aside in the dead-letter stream; everything is acknowledged. A bot's
//! status shows on its meeting, a stalled capture included.

use crate::helpers::{TestApp, bus_meeting, eventually, redis_url};
use parley_bot::sink::EventSink;
use parley_bot::sink::redis::RedisSink;
use parley_shared::{
    BotState, Event, EventBody, MeetingId, Segment, SegmentId, Speaker, SpeakerKey,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::time::Duration;

pub fn speaker(key: &str, name: &str) -> Speaker {
    Speaker {
        key: SpeakerKey::parse(key).expect("key"),
        name: name.to_owned(),
    }
}

pub fn segment(
    meeting: MeetingId,
    who: &Speaker,
    start_ms: u64,
    text: &str,
    is_final: bool,
) -> EventBody {
    EventBody::Segment(Segment {
        segment_id: SegmentId::derive(meeting, &who.key, start_ms),
        speaker: who.clone(),
        start_ms,
        end_ms: start_ms + 900,
        text: text.to_owned(),
        is_final,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_events_are_stored_once_and_acknowledged() {
    let (app, stream, token, id, meeting) = bus_meeting("Bus").await;
    let ana = speaker("ana", "Ana Lima");
    let ben = speaker("ben", "Ben Carter");
    let mut events = vec![
        EventBody::ParticipantJoined {
            speaker: ana.clone(),
            at_ms: 0,
        },
        EventBody::ParticipantJoined {
            speaker: ben.clone(),
            at_ms: 0,
        },
    ];
    for i in 0..50u64 {
        let who = if i % 2 == 0 { &ana } else { &ben };
        events.push(segment(meeting, who, i * 1000, "partial words", false));
        events.push(segment(
            meeting,
            who,
            i * 1000,
            &format!("final sentence {i}"),
            true,
        ));
    }
    events.push(EventBody::MeetingEnded { at_ms: 60_000 });
    let events: Vec<Event> = events
        .into_iter()
        .enumerate()
        .map(|(seq, body)| Event::new(meeting, seq as u64, body))
        .collect();

    let mut sink = RedisSink::connect(&redis_url(), &stream)
        .await
        .expect("sink");
    for e in &events {
        sink.publish(e.clone()).await.expect("publish");
    }
    // A bot that restarts re-sends; a broken publisher writes garbage; a stale bot writes for a
    // meeting this database never had.
    for e in &events[10..30] {
        sink.publish(e.clone()).await.expect("republish");
    }
    sink.try_publish_json("{not json").await.expect("garbage");
    let stranger = MeetingId::new_random();
    sink.publish(Event::new(
        stranger,
        0,
        segment(stranger, &ana, 0, "lost?", true),
    ))
    .await
    .expect("unknown meeting");

    let finals = eventually(Duration::from_secs(30), "50 finals stored", || async {
        let s = app.store.segments(meeting, true).await.ok()?;
        (s.iter().filter(|s| s.is_final).count() == 50).then_some(s)
    })
    .await;
    assert_eq!(finals.len(), 50, "no partial left over, no duplicate");
    assert!(finals.iter().all(|s| s.text.starts_with("final sentence")));

    let m: Value = app
        .get(&format!("/meetings/{id}"), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(m["status"], "ended");
    assert_eq!(m["participants"].as_array().expect("participants").len(), 2);

    let client = redis::Client::open(redis_url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let dead: usize = eventually(Duration::from_secs(10), "dead letters", || {
        let mut conn = conn.clone();
        let key = format!("{stream}:dead");
        async move {
            let n: usize = conn.xlen(&key).await.ok()?;
            (n == 2).then_some(n)
        }
    })
    .await;
    assert_eq!(
        dead, 2,
        "garbage and the unknown meeting's event are kept aside"
    );
    let pending: Value = eventually(Duration::from_secs(10), "all acknowledged", || {
        let mut conn = conn.clone();
        let stream = stream.clone();
        async move {
            let reply: redis::Value = redis::cmd("XPENDING")
                .arg(&stream)
                .arg("ingest")
                .query_async(&mut conn)
                .await
                .ok()?;
            let count = match reply {
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => *n,
                    _ => -1,
                },
                _ => -1,
            };
            (count == 0).then_some(json!(count))
        }
    })
    .await;
    assert_eq!(pending, json!(0));
    let _: () = conn.del(&stream).await.expect("cleanup");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_capture_shows_on_the_meeting_until_audio_returns() {
    let (app, stream, token, id, meeting) = bus_meeting("Quiet").await;
    let mut sink = RedisSink::connect(&redis_url(), &stream)
        .await
        .expect("sink");
    let status = |seq: u64, state: BotState, reason: Option<&str>| {
        Event::new(
            meeting,
            seq,
            EventBody::BotStatus {
                state,
                reason: reason.map(str::to_owned),
                at_ms: seq * 1000,
            },
        )
    };
    let steps = [
        (
            status(1, BotState::InMeeting, None),
            "in_progress",
            false,
            "in the meeting",
        ),
        (
            status(2, BotState::CaptureStalled, Some("no audio for 30 s")),
            "in_progress",
            true,
            "the stall shown",
        ),
        (
            status(3, BotState::InMeeting, None),
            "in_progress",
            false,
            "the stall cleared",
        ),
        (
            status(4, BotState::CaptureStalled, None),
            "in_progress",
            true,
            "stalled again",
        ),
        // A meeting that ends while stalled is not shown as stalled.
        (
            Event::new(meeting, 5, EventBody::MeetingEnded { at_ms: 5_000 }),
            "ended",
            false,
            "ended, no stall shown",
        ),
    ];
    for (event, want_status, want_stalled, what) in steps {
        sink.publish(event).await.expect("publish");
        eventually(Duration::from_secs(20), what, || async {
            let (status, stalled) = stall_state(&app, &token, &id).await?;
            (status == want_status && stalled.is_some_and(|s| s.is_string()) == want_stalled)
                .then_some(())
        })
        .await;
    }
    app.stop().await;
}

/// The meeting's status and its `capture_stalled_since`, as its owner reads them.
async fn stall_state(app: &TestApp, token: &str, id: &str) -> Option<(String, Option<Value>)> {
    let m = app.meeting_json(token, id).await?;
    Some((
        m["status"].as_str()?.to_owned(),
        m.get("capture_stalled_since").cloned(),
    ))
}
