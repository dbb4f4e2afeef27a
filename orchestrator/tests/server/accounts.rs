//! Registration, login, sessions and the login rate limit over HTTP.

use crate::both_backends;
use crate::helpers::{Backend, TestApp, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    register_login_and_use_a_token,
    errors_never_reveal_whether_an_address_exists,
    repeated_failures_are_throttled,
    logout_ends_the_session,
    passwords_change_and_reset_and_sessions_end_everywhere,
    a_disabled_account_is_locked_out,
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
        me["role"], "user",
        "signing up first makes nobody an admin (`parley admin create-user --admin` does)"
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

async fn status_of(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> StatusCode {
    app.post(path, token, &body).await.status()
}

async fn token_of(app: &TestApp, email: &str, password: &str) -> String {
    let r = app.login(email, password).await;
    assert_eq!(r.status(), StatusCode::OK, "login {email}");
    let body: Value = r.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.get("/me", Some(token)).await.status()
}

async fn passwords_change_and_reset_and_sessions_end_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = "ana@example.com";
    let laptop = app.user(ana).await;
    let old = format!("pw-{ana}-long");
    let phone = token_of(&app, ana, &old).await;

    // Change: the current password is asked for; the other session ends, this one stays.
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    assert_eq!(
        status_of(
            &app,
            "/me/password",
            Some(&laptop),
            change("wrong password", "new password 1")
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of(&app, "/me/password", Some(&laptop), change(&old, "short")).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(
            &app,
            "/me/password",
            Some(&laptop),
            change(&old, "new password 1")
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(me(&app, &laptop).await, StatusCode::OK);
    assert_eq!(me(&app, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login(ana, &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let tablet = token_of(&app, ana, "new password 1").await;

    // Log out everywhere.
    let r = app.post("/logout/all", Some(&tablet), &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ended: Value = r.json().await.expect("json");
    assert_eq!(ended["sessions_ended"], 2, "{ended}");
    assert_eq!(me(&app, &laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &tablet).await, StatusCode::UNAUTHORIZED);

    // Reset by mail: the answer is the same for an address with no account.
    let r = app
        .post("/password/reset", None, &json!({ "email": ana }))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let known: Value = r.json().await.expect("json");
    let r = app
        .post(
            "/password/reset",
            None,
            &json!({ "email": "nobody@example.com" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let unknown: Value = r.json().await.expect("json");
    assert_eq!(known, unknown);
    let session = token_of(&app, ana, "new password 1").await;
    let mail = eventually(Duration::from_secs(10), "the reset mail", || async {
        app.outbox_mail(ana, "Reset your Parley password")
    })
    .await;
    let at = mail.find("prl_").expect("a token in the mail");
    let token = &mail[at..at + 68];
    let confirm = |token: &str, new: &str| json!({ "token": token, "new_password": new });
    assert_eq!(
        status_of(
            &app,
            "/password/reset/confirm",
            None,
            confirm(token, "reset password 2")
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        me(&app, &session).await,
        StatusCode::UNAUTHORIZED,
        "sessions end"
    );
    assert_eq!(
        status_of(
            &app,
            "/password/reset/confirm",
            None,
            confirm(token, "reset password 3")
        )
        .await,
        StatusCode::BAD_REQUEST,
        "a token works once"
    );
    assert_eq!(
        app.login(ana, "new password 1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    token_of(&app, ana, "reset password 2").await;
    app.stop().await;
}

async fn a_disabled_account_is_locked_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("admin@example.com").await;
    let ben = app.user("ben@example.com").await;
    let me_json: Value = app.get("/me", Some(&ben)).await.json().await.expect("json");
    let ben_id = me_json["user_id"].as_str().expect("id").to_owned();
    let path = format!("/admin/users/{ben_id}/disabled");
    let set = |token: &str, disabled: bool| {
        let (http, url, token) = (app.http.clone(), app.url(&path), token.to_owned());
        async move {
            http.put(url)
                .bearer_auth(token)
                .json(&json!({ "disabled": disabled }))
                .send()
                .await
                .expect("answered")
                .status()
        }
    };
    assert_eq!(set(&ben, true).await, StatusCode::FORBIDDEN, "admins only");
    assert_eq!(set(&admin, true).await, StatusCode::OK);
    assert_eq!(me(&app, &ben).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("ben@example.com", "pw-ben@example.com-long")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(set(&admin, false).await, StatusCode::OK);
    token_of(&app, "ben@example.com", "pw-ben@example.com-long").await;
    app.stop().await;
}
