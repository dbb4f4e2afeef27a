//! The web app's cookie sessions: signing in sets an HttpOnly, SameSite=Lax cookie (Secure behind
//! https) that authenticates like a bearer token; a write with it needs the session's CSRF token,
//! and another origin's request is refused. Signing out ends the session. Bearer tokens work as
//! before, and an API key is never taken from a cookie. An account lists its sessions and ends
//! one.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

const PASSWORD: &str = "pw-ana@example.com-long";

async fn sign_in(app: &TestApp, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/session"))
        .json(&json!({"email": "ana@example.com", "password": password}))
        .send()
        .await
        .expect("POST /session")
}

/// The `name=value` part of the Set-Cookie header, and its attributes.
fn cookie_of(r: &reqwest::Response) -> (String, String) {
    let header = r
        .headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .expect("ASCII")
        .to_owned();
    let (pair, attributes) = header.split_once(';').expect("attributes");
    (pair.to_owned(), attributes.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_is_a_cookie_guarded_against_other_sites() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bearer = app.user("ana@example.com").await;

    let wrong = sign_in(&app, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let r = sign_in(&app, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (cookie, attributes) = cookie_of(&r);
    assert!(cookie.starts_with("parley_session=prl_"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(
            attributes.contains(attribute),
            "{attribute} in {attributes}"
        );
    }
    assert!(!attributes.contains("Secure"), "plain http: {attributes}");
    let body: Value = r.json().await.expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_owned();
    assert_eq!(body["user"]["email"], "ana@example.com");
    // The page learns the token again after a reload; nothing else can read it.
    let again: Value = app
        .http
        .get(app.url("/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET /session")
        .json()
        .await
        .expect("json");
    assert_eq!(again["csrf_token"], csrf.as_str());

    let with_cookie = |method: reqwest::Method, path: &str| {
        app.http
            .request(method, app.url(path))
            .header(COOKIE, &cookie)
    };
    let r = with_cookie(reqwest::Method::GET, "/me")
        .send()
        .await
        .expect("GET /me");
    assert_eq!(r.status(), StatusCode::OK, "a read needs no CSRF token");
    let meeting = json!({"title": "Cookie", "url": "https://meet.google.com/abc-defg-hij", "start_time": "2099-01-01T10:00:00Z"});
    for (headers, why) in [
        (vec![], "no CSRF token"),
        (vec![("x-csrf-token", "0".repeat(64))], "a wrong CSRF token"),
        (
            vec![
                ("x-csrf-token", csrf.clone()),
                ("origin", "https://evil.example".to_owned()),
            ],
            "another origin",
        ),
    ] {
        let mut req = with_cookie(reqwest::Method::POST, "/meetings").json(&meeting);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let r = req.send().await.expect("POST /meetings");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{why}");
    }
    let other_origin = with_cookie(reqwest::Method::GET, "/me")
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .expect("GET /me");
    assert_eq!(
        other_origin.status(),
        StatusCode::FORBIDDEN,
        "a cross-origin read (a WebSocket from another site, say)"
    );
    let own_origin = app.base.clone();
    let r = with_cookie(reqwest::Method::POST, "/meetings")
        .header("x-csrf-token", &csrf)
        .header(ORIGIN, own_origin)
        .json(&meeting)
        .send()
        .await
        .expect("POST /meetings");
    assert_eq!(r.status(), StatusCode::CREATED, "the page's own write");

    // An API key in the cookie is not a session.
    let key: Value = app
        .post(
            "/api-keys",
            Some(&bearer),
            &json!({"name": "k", "scopes": ["meetings:read"]}),
        )
        .await
        .json()
        .await
        .expect("key");
    let r = app
        .http
        .get(app.url("/meetings"))
        .header(
            COOKIE,
            format!("parley_session={}", key["key"].as_str().expect("key")),
        )
        .send()
        .await
        .expect("GET /meetings");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Signing out needs the token too, ends the session and clears the cookie.
    let r = with_cookie(reqwest::Method::DELETE, "/session")
        .send()
        .await
        .expect("DELETE /session");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = with_cookie(reqwest::Method::DELETE, "/session")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("DELETE /session");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (cleared, attributes) = cookie_of(&r);
    assert_eq!(cleared, "parley_session=");
    assert!(attributes.contains("Max-Age=0"), "{attributes}");
    let r = with_cookie(reqwest::Method::GET, "/me")
        .send()
        .await
        .expect("GET /me");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the session ended");
    let r = app.get("/me", Some(&bearer)).await;
    assert_eq!(r.status(), StatusCode::OK, "bearer tokens are unchanged");
    // A bearer token is not a browser's session: /session neither shows nor ends it.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = app
            .http
            .request(method.clone(), app.url("/session"))
            .bearer_auth(&bearer)
            .send()
            .await
            .expect("/session");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method}");
    }
    assert_eq!(app.get("/me", Some(&bearer)).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_the_cookie_is_secure_and_mail_links_open_pages() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            public_url: Some("https://parley.example.com".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let r = app.register("ana@example.com", "Ana Lima", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = sign_in(&app, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, attributes) = cookie_of(&r);
    assert!(attributes.contains("Secure"), "{attributes}");

    // The verification link opens a page in a browser, and answers JSON to programs.
    let link = app
        .mailed_verification_link("ana@example.com")
        .expect("verification mail");
    let path = link
        .strip_prefix("https://parley.example.com")
        .expect("the public address");
    let page = app
        .http
        .get(app.url(path))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("GET /verify");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get("content-security-policy")
        .expect("a policy")
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("Address verified"), "{html}");
    let used = app.get(path, None).await;
    assert_eq!(
        used.status(),
        StatusCode::BAD_REQUEST,
        "the link works once"
    );
    let page = app
        .http
        .get(app.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .expect("GET /verify");
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.text().await.expect("html").contains("Link not valid"));

    // The app itself.
    let r = app.get("/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let html = r.text().await.expect("html");
    assert!(html.contains(r#"name="email""#) && html.contains(r#"name="password""#));
    for asset in ["/app/app.js", "/app/app.css"] {
        assert_eq!(
            app.get(asset, None).await.status(),
            StatusCode::OK,
            "{asset}"
        );
    }
    app.stop().await;
}

both_backends!(an_account_lists_its_sessions_and_ends_one);

async fn an_account_lists_its_sessions_and_ends_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let laptop = app.user("ana@example.com").await;
    let phone: Value = app
        .login("ana@example.com", PASSWORD)
        .await
        .json()
        .await
        .expect("login");
    let phone = phone["token"].as_str().expect("token").to_owned();
    let ben = app.user("ben@example.com").await;

    let listed = sessions(&app, &laptop).await;
    let all = listed["sessions"].as_array().expect("list");
    assert_eq!(all.len(), 2, "{listed}");
    let current: Vec<&Value> = all.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed}");
    let other = all
        .iter()
        .find(|s| s["current"] == false)
        .expect("the phone's session");
    let id = other["id"].as_str().expect("id");
    assert_eq!(id.len(), 16, "{id}");
    assert!(
        !phone.contains(id) && !laptop.contains(id),
        "an id is not part of a token"
    );

    // Not someone else's, not by an API key, not a made-up one.
    assert_eq!(end_session(&app, &ben, id).await, StatusCode::NOT_FOUND);
    let key: Value = app
        .post(
            "/api-keys",
            Some(&laptop),
            &json!({"name": "k", "scopes": ["meetings:read", "meetings:write"]}),
        )
        .await
        .json()
        .await
        .expect("key");
    let key = key["key"].as_str().expect("key");
    assert_eq!(
        app.get("/me/sessions", Some(key)).await.status(),
        StatusCode::FORBIDDEN
    );
    for bad in ["0123", "..%2F..%2Fme", "ZZZZZZZZZZZZZZZZ"] {
        assert_eq!(
            end_session(&app, &laptop, bad).await,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
    assert_eq!(
        app.get("/me", Some(&phone)).await.status(),
        StatusCode::OK,
        "the phone is still signed in"
    );

    assert_eq!(end_session(&app, &laptop, id).await, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/me", Some(&phone)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the ended session's token is dead"
    );
    assert_eq!(app.get("/me", Some(&laptop)).await.status(), StatusCode::OK);
    let listed = sessions(&app, &laptop).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

async fn end_session(app: &TestApp, token: &str, id: &str) -> StatusCode {
    app.delete(&format!("/me/sessions/{id}"), token)
        .await
        .status()
}

async fn sessions(app: &TestApp, token: &str) -> Value {
    app.get("/me/sessions", Some(token))
        .await
        .json()
        .await
        .expect("sessions")
}
