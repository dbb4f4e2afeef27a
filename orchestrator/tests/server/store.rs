//! Repository behaviour, the same on both backends.

use crate::both_backends;
use crate::helpers::{Backend, fresh_database, open_store};
use parley_orchestrator::store::{NewMeeting, Role, SegmentRow, Store};
use parley_shared::{EmailAddress, MeetingId, MeetingUrl};
use uuid::Uuid;

both_backends!(
    a_final_replaces_its_partials_and_redelivery_never_duplicates,
    metacharacters_are_stored_verbatim,
    meetings_are_visible_to_owner_and_invitees_only,
);

async fn open(backend: Backend) -> (Store, tempfile::TempDir) {
    let (url, dir) = fresh_database(backend).await;
    (open_store(&url, dir.path()).await, dir)
}

async fn user(store: &Store, email: &str) -> Uuid {
    store
        .create_user(
            &EmailAddress::parse(email).expect("email"),
            "N",
            "hash",
            Role::User,
            1,
        )
        .await
        .expect("create user")
        .expect("new address")
        .user_id
}

async fn meeting(store: &Store, owner: Uuid, invitees: &[&str]) -> MeetingId {
    store
        .create_meeting(
            NewMeeting {
                owner_id: owner,
                title: "Weekly".to_owned(),
                url: MeetingUrl::parse("https://meet.google.com/abc-defg-hij").expect("url"),
                start_time_ms: None,
                invitees: invitees
                    .iter()
                    .map(|e| EmailAddress::parse(e).expect("email"))
                    .collect(),
                record: true,
                metadata: parley_orchestrator::store::metadata::Metadata::default(),
                retention_days: None,
            },
            2,
        )
        .await
        .expect("create meeting")
        .meeting_id
}

fn row(meeting: MeetingId, seg: Uuid, text: &str, is_final: bool, seq: u64) -> SegmentRow {
    SegmentRow {
        meeting_id: meeting,
        segment_id: seg,
        speaker_key: "ana".to_owned(),
        speaker_name: "Ana".to_owned(),
        start_ms: 1000,
        end_ms: 2000,
        text: text.to_owned(),
        is_final,
        seq,
        received_ms: 5,
    }
}

async fn a_final_replaces_its_partials_and_redelivery_never_duplicates(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let owner = user(&store, "owner@example.com").await;
    let m = meeting(&store, owner, &[]).await;
    let seg = Uuid::new_v4();
    let other = Uuid::new_v4();
    store
        .upsert_segments(&[
            row(m, seg, "hel", false, 1),
            row(m, seg, "hello wor", false, 2),
        ])
        .await
        .expect("partials");
    let all = store.segments(m, true).await.expect("read");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].text, "hello wor");
    assert!(
        store.segments(m, false).await.expect("read").is_empty(),
        "no finals yet"
    );

    let batch = [
        row(m, seg, "hello world", true, 3),
        row(m, other, "second", true, 4),
    ];
    store.upsert_segments(&batch).await.expect("finals");
    // Redelivered batch, a late partial, and a stale partial in the same batch as a final.
    store.upsert_segments(&batch).await.expect("redelivery");
    store
        .upsert_segments(&[row(m, seg, "hello wo", false, 9)])
        .await
        .expect("late partial");
    store
        .upsert_segments(&[
            row(m, other, "sec", false, 1),
            row(m, other, "second", true, 4),
        ])
        .await
        .expect("mixed");
    let finals = store.segments(m, false).await.expect("read");
    let texts: Vec<&str> = finals.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(finals.len(), 2, "{texts:?}");
    assert!(
        texts.contains(&"hello world") && texts.contains(&"second"),
        "{texts:?}"
    );
    assert!(finals.iter().all(|s| s.is_final));
}

async fn metacharacters_are_stored_verbatim(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let nasty = "Robert'); DROP TABLE users; -- \" \\ % _ $1 ? \u{1F600} ünïcödé";
    let email = EmailAddress::parse("o'brien+%_$1@example.com").expect("email");
    let owner = store
        .create_user(&email, nasty, "h'ash", Role::User, 1)
        .await
        .expect("create")
        .expect("new");
    assert_eq!(owner.name, nasty);
    let (found, hash) = store
        .user_credentials(&email)
        .await
        .expect("read")
        .expect("found");
    assert_eq!((found.name.as_str(), hash.as_str()), (nasty, "h'ash"));
    let m = store
        .create_meeting(
            NewMeeting {
                owner_id: owner.user_id,
                title: nasty.to_owned(),
                url: MeetingUrl::parse("https://example.com/j/1?q=';DROP%20TABLE%20meetings;--")
                    .expect("url"),
                start_time_ms: None,
                invitees: vec![email.clone()],
                record: true,
                metadata: parley_orchestrator::store::metadata::Metadata::default(),
                retention_days: None,
            },
            2,
        )
        .await
        .expect("meeting");
    assert_eq!(m.title, nasty);
    let mut r = row(m.meeting_id, Uuid::new_v4(), nasty, true, 1);
    r.speaker_key = nasty.to_owned();
    r.speaker_name = nasty.to_owned();
    store.upsert_segments(&[r]).await.expect("segment");
    let segs = store.segments(m.meeting_id, false).await.expect("read");
    assert_eq!(
        (
            segs[0].text.as_str(),
            segs[0].speaker.as_str(),
            segs[0].speaker_name.as_str()
        ),
        (nasty, nasty, nasty)
    );
    assert_eq!(
        store.users().await.expect("users").len(),
        1,
        "users table intact"
    );
}

async fn meetings_are_visible_to_owner_and_invitees_only(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let owner = user(&store, "owner@example.com").await;
    let early = user(&store, "early@example.com").await;
    store.set_email_verified(early, 2).await.expect("verify");
    let stranger = user(&store, "stranger@example.com").await;
    let unproven = user(&store, "unproven@example.com").await;
    let m = meeting(
        &store,
        owner,
        &[
            "early@example.com",
            "late@example.com",
            "unproven@example.com",
        ],
    )
    .await;
    let late = user(&store, "late@example.com").await;
    store.set_email_verified(late, 3).await.expect("verify");
    for (who, sees) in [
        (owner, true),
        (early, true),
        (late, true),
        (stranger, false),
        (unproven, false),
    ] {
        assert_eq!(
            store.visible_meeting(who, m).await.expect("read").is_some(),
            sees,
            "visibility for {who}"
        );
        let listed = store.visible_meetings(who, &[], 50, 0).await.expect("list");
        assert_eq!(listed.len(), usize::from(sees));
    }
    assert!(
        store
            .users()
            .await
            .expect("users")
            .iter()
            .all(|u| u.role == Role::User),
        "nobody becomes an admin by being first"
    );
}

#[tokio::test]
async fn one_replica_at_a_time_holds_the_scheduler_lock() {
    let (url, dir) = fresh_database(Backend::Postgres).await;
    let a = open_store(&url, dir.path()).await;
    let b = open_store(&url, dir.path()).await;
    let mut lead = a.try_lead().await.expect("try").expect("a leads");
    assert!(b.try_lead().await.expect("try").is_none(), "b must wait");
    assert!(lead.holds().await);
    drop(lead);
    // Postgres frees the lock when it sees a's session close, a moment after the drop.
    let _held = crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "b to take over once a lets go",
        || async { b.try_lead().await.expect("try") },
    )
    .await;
    assert!(a.try_lead().await.expect("try").is_none());
}
