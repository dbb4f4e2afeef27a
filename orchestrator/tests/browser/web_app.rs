//! The web app in a real browser, as its users go through it: a new user signs up, verifies the
//! address through the mailed link, signs in, adds a calendar on a real CalDAV server (Radicale)
//! and sees its meeting scheduled, sends a bot to the replayed sample meeting and watches the
//! captions arrive, reads the summary and action items after it ends, downloads the SRT and
//! deletes the meeting. An admin makes her an admin; as one she changes the fleet's size and sees
//! the bot in the list, and makes an API key in her settings. A second user cannot open her
//! meeting by its address. Screenshots of each
//! page at phone and desktop widths go to `$CARGO_TARGET_TMPDIR/web-app/`.

use super::cdp;
use super::child_servers::Radicale;
use parley_orchestrator::config::ServerConfig;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "a long enough password";

/// Fills the form labelled `label` with `values` (by input name) and submits it.
async fn submit(page: &cdp::Page, label: &str, values: Value) {
    let script = format!(
        r#"((label, values) => {{
            const f = document.querySelector(`form[aria-label="${{label}}"]`);
            if (!f) throw new Error(`no form ${{label}}`);
            for (const [k, v] of Object.entries(values)) f.querySelector(`[name="${{k}}"]`).value = v;
            f.requestSubmit();
            return true;
        }})({}, {})"#,
        json!(label),
        values
    );
    page.eval(&script).await.expect("submit the form");
}

async fn goto(page: &cdp::Page, hash: &str) {
    page.eval(&format!("location.hash = {}; true", json!(hash)))
        .await
        .expect("navigate");
}

async fn wait_text(page: &cdp::Page, selector: &str, text: &str) {
    let expression = format!(
        "Array.from(document.querySelectorAll({})).some(e => e.textContent.includes({}))",
        json!(selector),
        json!(text)
    );
    page.wait_for(&expression, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{selector} shows {text:?}: {e:#}"));
}

async fn announced(page: &cdp::Page, text: &str) {
    wait_text(page, "#announce", text).await;
}

/// Both widths of the page on screen, for people to look at.
async fn screenshots(page: &cdp::Page, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-app");
    for (width, height, mobile, size) in [(390, 844, true, "phone"), (1280, 900, false, "desktop")]
    {
        page.set_viewport(width, height, mobile)
            .await
            .expect("viewport");
        tokio::time::sleep(Duration::from_millis(200)).await;
        page.screenshot(&dir.join(format!("{name}-{size}.png")))
            .await
            .expect("screenshot");
    }
}

/// The newest mail in the outbox to `to` with `subject`, as written.
async fn outbox_mail(data: &Path, to: &str, subject: &str) -> String {
    for _ in 0..100 {
        let mut found: Vec<(std::time::SystemTime, String)> =
            std::fs::read_dir(data.join("outbox"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let text = std::fs::read_to_string(e.path()).ok()?;
                    let modified = e.metadata().ok()?.modified().ok()?;
                    (text.contains(&format!("To: {to}")) && text.contains(subject))
                        .then_some((modified, text))
                })
                .collect();
        found.sort();
        if let Some((_, text)) = found.pop() {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail to {to} about {subject:?} in the outbox");
}

async fn sign_in(page: &cdp::Page, email: &str) {
    goto(page, "#/signin").await;
    submit(
        page,
        "Sign in",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    page.wait_for("location.hash === '#/meetings' && !!document.querySelector('main h1') && document.querySelector('main h1').textContent === 'Meetings'", WAIT)
        .await
        .expect("signed in, on the meetings page");
}

async fn sign_out(page: &cdp::Page) {
    page.eval("document.getElementById('sign-out').click(), true")
        .await
        .expect("sign out");
    page.wait_for("location.hash === '#/signin'", WAIT)
        .await
        .expect("signed out");
}

fn ics(start: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = |t: time::OffsetDateTime| t.format(&f).expect("format");
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//parley tests//EN\r\nBEGIN:VEVENT\r\n\
         UID:planning@test\r\nDTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:Quarterly planning\r\n\
         LOCATION:janus+ws://127.0.0.1:8188/?room=4321\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        at(time::OffsetDateTime::now_utc()),
        at(start),
        at(start + time::Duration::hours(1)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_goes_through_the_web_app() {
    let _one_browser = super::BROWSER.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut config = ServerConfig::embedded(data.clone());
    config.bot.connector.replay_speed = 1.0;
    config.calendar_poll = Duration::from_secs(1);
    config.egress_allow = vec!["127.0.0.0/8".parse().expect("loopback")];
    let (base, stop, server) = super::start(config).await;
    let http = reqwest::Client::new();
    super::create_admin(&data, "admin@example.com", PASSWORD);
    let radicale = Radicale::start();
    let calendar = radicale.calendar(&http, "/ana/work/").await;
    let start = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
    radicale.put(&http, &calendar, "planning", ics(start)).await;
    let browser = cdp::Browser::launch().await.expect("chromium starts");

    // The app's first page is the sign-in form, even before its script runs.
    let page = browser.open(&format!("{base}/")).await.expect("app loads");
    let fields = page
        .eval("['email', 'password'].every(n => !!document.querySelector(`form input[name=\"${n}\"]`))")
        .await
        .expect("fields");
    assert_eq!(fields, true, "the sign-in form has email and password");
    screenshots(&page, "sign-in").await;

    // Sign up, then verify through the mailed link.
    goto(&page, "#/signup").await;
    submit(
        &page,
        "Create an account",
        json!({"name": "Ana Lima", "email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    wait_text(&page, "main [role=status]", "Account created").await;
    screenshots(&page, "sign-up").await;
    let mail = outbox_mail(&data, "ana@example.com", "Verify your address").await;
    let link = super::verification_link(&mail).expect("a verification link in the mail");
    assert!(link.starts_with(&base), "{link}");
    let verified = browser.open(&link).await.expect("verification page");
    wait_text(&verified, "h1", "Address verified").await;

    // The admin makes Ana an admin too (replaying a recording is for admins).
    sign_in(&page, "admin@example.com").await;
    goto(&page, "#/admin").await;
    page.wait_for(
        "!!document.querySelector('select[aria-label=\"Role of ana@example.com\"]')",
        WAIT,
    )
    .await
    .expect("Ana in the users table");
    page.eval(
        "(() => { const s = document.querySelector('select[aria-label=\"Role of ana@example.com\"]'); \
         s.value = 'admin'; s.dispatchEvent(new Event('change')); return true; })()",
    )
    .await
    .expect("change the role");
    announced(&page, "Role changed").await;
    sign_out(&page).await;

    // Ana: her calendar's meeting is scheduled, in her time zone.
    sign_in(&page, "ana@example.com").await;
    goto(&page, "#/calendars").await;
    submit(&page, "Add a calendar", json!({"url": calendar})).await;
    announced(&page, "Calendar added").await;
    // The list refreshes itself: the first read shows up without a reload.
    wait_text(&page, ".calendars li", "Read ").await;
    screenshots(&page, "calendars").await;
    goto(&page, "#/meetings").await;
    wait_text(&page, ".meetings li", "Quarterly planning").await;
    wait_text(&page, ".meetings li", "the bot joins as it starts").await;
    screenshots(&page, "meetings").await;

    // Send a bot to the replayed sample and watch its captions arrive.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .canonicalize()
        .expect("sample");
    submit(
        &page,
        "Send a bot now",
        json!({"title": "Design review", "url": format!("replay:{}", sample.display())}),
    )
    .await;
    page.wait_for("location.hash.startsWith('#/meetings/')", WAIT)
        .await
        .expect("on the meeting page");
    let id = page
        .eval("location.hash.split('/')[2]")
        .await
        .expect("meeting id")
        .as_str()
        .expect("id")
        .to_owned();
    page.wait_for(
        "document.querySelectorAll('#captions li.final').length >= 2",
        Duration::from_secs(90),
    )
    .await
    .expect("final captions arrive on the meeting page");
    screenshots(&page, "meeting-live").await;

    // As an admin now, in another tab: the bot is in the list, and the fleet is resized.
    let admin = browser
        .open(&format!("{base}/#/admin"))
        .await
        .expect("admin page");
    wait_text(&admin, "table.bots tbody", &id[..8]).await;
    submit(
        &admin,
        "Fleet settings",
        json!({"min_idle": "1", "max_bots": "7", "per_user": "3"}),
    )
    .await;
    announced(&admin, "Fleet settings saved").await;
    screenshots(&admin, "admin").await;

    // After the meeting: the summary with its action items, and the SRT.
    page.wait_for(
        "!!document.querySelector('#summary') && document.querySelector('#summary').textContent.includes('Action items')",
        Duration::from_secs(120),
    )
    .await
    .expect("the summary and action items appear after the meeting");
    screenshots(&page, "meeting-after").await;
    let srt = page
        .eval("fetch(document.getElementById('download-srt').href).then(r => r.ok ? r.text() : `HTTP ${r.status}`)")
        .await
        .expect("download the SRT");
    let srt = srt.as_str().expect("text");
    assert!(srt.contains(" --> "), "an SRT file: {srt}");

    // Settings: an API key, shown once.
    goto(&page, "#/settings").await;
    submit(&page, "Make an API key", json!({"name": "reports"})).await;
    wait_text(&page, ".secret", "pk_").await;
    wait_text(&page, ".keys li", "reports").await;
    wait_text(&page, ".sessions li", "this browser").await;
    screenshots(&page, "settings").await;

    // Another user cannot open Ana's meeting by its address.
    sign_out(&page).await;
    goto(&page, "#/signup").await;
    submit(
        &page,
        "Create an account",
        json!({"name": "Ben Carter", "email": "ben@example.com", "password": PASSWORD}),
    )
    .await;
    wait_text(&page, "main [role=status]", "Account created").await;
    sign_in(&page, "ben@example.com").await;
    goto(&page, &format!("#/meetings/{id}")).await;
    wait_text(&page, "main h1", "Meeting not found").await;
    let ben_sees = page
        .eval("fetch('/meetings').then(r => r.json()).then(d => d.meetings.length)")
        .await
        .expect("Ben's meetings");
    assert_eq!(ben_sees, 0, "Ben's list has none of Ana's meetings");
    sign_out(&page).await;

    // Ana deletes the meeting.
    sign_in(&page, "ana@example.com").await;
    goto(&page, &format!("#/meetings/{id}")).await;
    wait_text(&page, "main h1", "Design review").await;
    page.eval(
        "window.confirm = () => true; Array.from(document.querySelectorAll('button')).find(b => b.textContent === 'Delete meeting').click(); true",
    )
    .await
    .expect("delete");
    announced(&page, "Meeting deleted").await;
    let gone = page
        .eval(&format!("fetch('/meetings/{id}').then(r => r.status)"))
        .await
        .expect("after deletion");
    assert_eq!(gone, 404);

    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
}
