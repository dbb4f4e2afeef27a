//! Sign-up and login as an attacker uses them: bursts of sign-ups that would each take 19 MiB
//! of argon2 memory, and failed logins behind a shared ingress that would lock everyone out.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};
use parley_orchestrator::auth::rate_limit::Limits;
use parley_testkit::servers::free_port;
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

both_backends!(an_invited_address_shows_meetings_only_once_verified);

async fn an_invited_address_shows_meetings_only_once_verified(backend: Backend) {
    // No mail domains: any verified address links its invitations.
    let app = TestApp::spawn_with(
        backend,
        Options {
            mail_policy: Some(parley_orchestrator::mail::policy::MailPolicy::default()),
            ..Options::default()
        },
    )
    .await;
    let alice = app.user("alice@example.com").await;
    let id = app
        .meeting(
            &alice,
            json!({
                "title": "Board", "url": "https://zoom.us/j/1",
                "start_time": "2099-01-01T00:00:00Z", "participants": ["cfo@partner.example"],
            }),
        )
        .await;
    // Anyone can sign up with the invited address and log in...
    let password = "squatter's password";
    let r = app
        .register("cfo@partner.example", "Squatter", password)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.login("cfo@partner.example", password).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.expect("json");
    let squatter = body["token"].as_str().expect("token").to_owned();
    // ...but sees nothing of the meeting until the address is proven.
    let r = app.get(&format!("/meetings/{id}"), Some(&squatter)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let list: serde_json::Value = app
        .get("/meetings", Some(&squatter))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["meetings"], json!([]), "{list}");
    let me: serde_json::Value = app
        .get("/me", Some(&squatter))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["email_verified"], false);
    // Whoever receives the address's mail follows the link.
    let link =
        crate::helpers::eventually(Duration::from_secs(10), "the verification mail", || async {
            app.mailed_verification_link("cfo@partner.example")
        })
        .await;
    let forged = link
        .replace("token=prl_", "token=prl_0")
        .chars()
        .take(link.len())
        .collect::<String>();
    assert_eq!(
        app.http
            .get(&forged)
            .send()
            .await
            .expect("answered")
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.http.get(&link).send().await.expect("answered").status(),
        StatusCode::OK
    );
    let r = app.get(&format!("/meetings/{id}"), Some(&squatter)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "verified, the invitation counts"
    );
    assert_eq!(
        app.http.get(&link).send().await.expect("answered").status(),
        StatusCode::BAD_REQUEST,
        "a link works once"
    );
    app.stop().await;
}

async fn sign_up(
    http: &reqwest::Client,
    base: &str,
    i: usize,
    forwarded_for: Option<&str>,
) -> StatusCode {
    let mut req = http
        .post(format!("{base}/register/user"))
        .json(&json!({ "email": format!("u{i}@example.com"), "name": "U", "password": "a long password" }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.expect("sign-up answered").status()
}

async fn sixty_at_once(base: &str) -> Vec<StatusCode> {
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (http, base) = (http.clone(), base.to_owned());
            tokio::spawn(async move { sign_up(&http, &base, i, None).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_gets_a_few_accounts_per_window() {
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        Options {
            login_limits: Some(Limits::default()),
            ..Options::default()
        },
    )
    .await;
    let statuses = sixty_at_once(&app.base).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        created,
        Limits::default().signups_per_address,
        "{statuses:?}"
    );
    assert_eq!(created + limited, 60, "{statuses:?}");
    app.stop().await;
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of a process, from the kernel's own count.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ups_is_hashed_a_few_at_a_time() {
    // Its own process, so its memory is its own: the embedded server, sign-ups unlimited so
    // every request reaches argon2, no warm bot (it would load a model).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data.path())
            .env("PARLEY_SIGNUPS_PER_ADDRESS", "1000")
            .env("PARLEY_FLEET_MIN_IDLE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parley serve"),
    );
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..400 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "parley serve did not start");
    let before = peak_rss_mb(server.0.id());
    let statuses = sixty_at_once(&base).await;
    let after = peak_rss_mb(server.0.id());
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    eprintln!(
        "60 sign-ups at once: {created} created, the rest told to retry; peak RSS {before:.0} -> {after:.0} MB"
    );
    for s in &statuses {
        assert!(
            *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE,
            "{statuses:?}"
        );
    }
    assert!(
        statuses.contains(&StatusCode::CREATED),
        "some sign-ups succeed: {statuses:?}"
    );
    // Unbounded, 60 hashes at 19 MiB each took the server from 99 to 886 MB.
    assert!(
        after < 300.0,
        "peak RSS {after:.0} MB after the burst ({before:.0} MB before)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_behind_an_ingress_lock_out_only_their_client() {
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        Options {
            trusted_proxies: vec!["127.0.0.1/32".parse().expect("net")],
            ..Options::default()
        },
    )
    .await;
    let ana = "ana@example.com";
    assert_eq!(
        app.register(ana, "Ana", "ana's long password")
            .await
            .status(),
        StatusCode::CREATED
    );
    let login = |who: &'static str, password: &'static str, client: &'static str| {
        let http = app.http.clone();
        let url = app.url("/register/login");
        async move {
            http.post(url)
                .header("x-forwarded-for", client)
                .json(&json!({ "email": who, "password": password }))
                .send()
                .await
                .expect("login answered")
                .status()
        }
    };
    let sprayed = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
        "e@example.com",
        "f@example.com",
        "g@example.com",
    ];
    let mut refused = 0;
    for i in 0..31 {
        let status = login(sprayed[i % sprayed.len()], "guess guess", "203.0.113.66").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    assert!(refused > 0, "the spraying client is throttled");
    // Behind the same ingress (the same peer address), another client logs in.
    assert_eq!(
        login(ana, "ana's long password", "198.51.100.7").await,
        StatusCode::OK
    );
    app.stop().await;
}
