//! Registration, login, sessions and the login rate limit over HTTP.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_backends!(
    register_login_and_use_a_token,
    errors_never_reveal_whether_an_address_exists,
    repeated_failures_are_throttled,
    logout_ends_the_session,
);

async fn register_login_and_use_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .register("Ana@Example.com", "Ana Lima", "a long passphrase")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    let user_id = created["user_id"].as_str().expect("user_id").to_owned();

    let r = app.login("ana@example.com", "a long passphrase").await;
    assert_eq!(r.status(), StatusCode::OK);
    let login: Value = r.json().await.expect("json");
    let token = login["token"].as_str().expect("token");
    let expires = login["expires_at"].as_str().expect("expires_at");
    assert!(
        expires.starts_with("20") && expires.ends_with('Z'),
        "{expires}"
    );

    let me: Value = app
        .get("/me", Some(token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(
        me["role"], "admin",
        "the first account administers the installation"
    );

    let second = app.user("ben@example.com").await;
    let me: Value = app
        .get("/me", Some(&second))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "user");

    for (body, what) in [
        (
            json!({"email": "not-an-email", "name": "X", "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": "x@example.com", "name": "", "password": "long enough"}),
            "name",
        ),
        (
            json!({"email": "x@example.com", "name": "X", "password": "short"}),
            "password",
        ),
        (json!({"email": "x@example.com", "name": "X"}), "password"),
    ] {
        let r = app.post("/register/user", None, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = r.json().await.expect("json error");
        assert!(
            err["error"].as_str().expect("message").contains(what),
            "{what}: {err}"
        );
    }
    app.stop().await;
}

async fn errors_never_reveal_whether_an_address_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .register("ana@example.com", "Ana", "first password")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.expect("json");

    // Registering a taken address looks like success and changes nothing.
    let r = app
        .register("ana@example.com", "Mallory", "second password")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let second: Value = r.json().await.expect("json");
    assert_ne!(first["user_id"], second["user_id"]);
    assert_eq!(
        app.login("ana@example.com", "second password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ana@example.com", "first password")
            .await
            .status(),
        StatusCode::OK
    );

    let wrong_password = app.login("ana@example.com", "not the password").await;
    let no_account = app.login("nobody@example.com", "not the password").await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_account.status(), StatusCode::UNAUTHORIZED);
    let a: Value = wrong_password.json().await.expect("json");
    let b: Value = no_account.json().await.expect("json");
    assert_eq!(
        a, b,
        "same answer whether or not the address has an account"
    );
    app.stop().await;
}

async fn repeated_failures_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("ana@example.com", "Ana", "right password")
        .await;
    for i in 0..5 {
        let r = app.login("ana@example.com", &format!("wrong {i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = app.login("ana@example.com", "right password").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked even with the right password"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Other accounts from the same address still work (the address limit is higher).
    app.register("ben@example.com", "Ben", "ben password").await;
    assert_eq!(
        app.login("ben@example.com", "ben password").await.status(),
        StatusCode::OK
    );
    app.stop().await;
}

async fn logout_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ana@example.com").await;
    assert_eq!(app.get("/me", Some(&token)).await.status(), StatusCode::OK);
    let r = app.post("/logout", Some(&token), &json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}
