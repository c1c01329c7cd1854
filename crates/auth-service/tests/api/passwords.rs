//! Logout, change-password, forgot-password and reset: everything that ends sessions.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new secret";

#[tokio::test(flavor = "multi_thread")]
async fn logout_revokes_the_session_and_clears_the_cookies() {
    let app = spawn_app().await;
    let session = app.signed_in("bye@example.com").await;
    let other = app.new_session("bye@example.com", PASSWORD).await;
    let response = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let access = cookie(response.headers(), "access_token");
    let refresh = cookie(response.headers(), "refresh_token");
    assert_eq!(
        (
            access.value.as_str(),
            access.attr("max-age"),
            access.attr("path")
        ),
        ("", Some("0"), Some("/"))
    );
    assert_eq!(
        (
            refresh.value.as_str(),
            refresh.attr("max-age"),
            refresh.attr("path")
        ),
        ("", Some("0"), Some("/api/auth"))
    );

    assert_problem(app.me_bearer(&session.access).await, 401, "unauthorized").await;
    assert_problem(
        app.refresh_with_cookie(&session.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    assert!(app.revoked_in_redis(&session.sid()).await);
    assert_eq!(
        app.me_bearer(&other.access).await.status(),
        200,
        "other sessions stay"
    );
    assert!(!app.revoked_in_redis(&other.sid()).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_with_only_the_refresh_cookie_revokes_its_session() {
    let app = spawn_app().await;
    let session = app.signed_in("cookie-bye@example.com").await;
    let response = app
        .client
        .post(app.url("/api/auth/logout"))
        .header("cookie", format!("refresh_token={}", session.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_problem(app.me_bearer(&session.access).await, 401, "unauthorized").await;
    assert!(app.revoked_in_redis(&session.sid()).await);
    // Logging out with nothing is harmless.
    assert_eq!(
        app.client
            .post(app.url("/api/auth/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
}

async fn change_password(app: &TestApp, access: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/auth/change-password"))
        .json(&body);
    if let Some(access) = access {
        request = request.bearer_auth(access);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn change_password_checks_the_current_one_and_revokes_other_sessions() {
    let app = spawn_app().await;
    let session = app.signed_in("change@example.com").await;
    let other = app.new_session("change@example.com", PASSWORD).await;
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});

    assert_problem(
        change_password(&app, None, body.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let wrong = json!({"current_password": "not it at all", "new_password": NEW_PASSWORD});
    assert_problem(
        change_password(&app, Some(&session.access), wrong).await,
        403,
        "invalid_credentials",
    )
    .await;
    let short = json!({"current_password": PASSWORD, "new_password": "short"});
    let problem = assert_problem(
        change_password(&app, Some(&session.access), short).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(problem["errors"]["new_password"].is_array(), "{problem}");

    assert_eq!(
        change_password(&app, Some(&session.access), body)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.me_bearer(&session.access).await.status(),
        200,
        "this session stays"
    );
    assert_problem(app.me_bearer(&other.access).await, 401, "unauthorized").await;
    assert_problem(
        app.refresh_with_cookie(&other.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    assert!(app.revoked_in_redis(&other.sid()).await);
    assert!(!app.revoked_in_redis(&session.sid()).await);
    assert_eq!(
        app.login("change@example.com", PASSWORD).await.status(),
        401
    );
    assert_eq!(
        app.login("change@example.com", NEW_PASSWORD).await.status(),
        200
    );
}

async fn reset_link(app: &TestApp, email: &str, n: usize) -> String {
    let messages = app.smtp.wait_for(email, n).await;
    token_after(
        messages[n - 1].body(),
        &format!("{FRONTEND}/reset-password?token="),
    )
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/auth/reset/{token}"),
        &json!({"password": password}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn forgot_password_answers_the_same_for_unknown_emails() {
    let app = spawn_app().await;
    app.verified_user("forgetful@example.com").await;
    let known = observable(
        app.post_json(
            "/api/auth/forgot-password",
            &json!({"email": "forgetful@example.com"}),
        )
        .await,
    )
    .await;
    let unknown = observable(
        app.post_json(
            "/api/auth/forgot-password",
            &json!({"email": "nobody@example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(known.0, 202);
    assert_eq!(known, unknown);
    // Fresh connections land on different server workers: still the same bytes.
    for email in ["forgetful@example.com", "nobody@example.com"].repeat(3) {
        let response = reqwest::Client::new()
            .post(app.url("/api/auth/forgot-password"))
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(observable(response).await, known, "{email}");
    }
    assert_eq!(reset_link(&app, "forgetful@example.com", 2).await.len(), 43);
    // The verification email and two reset emails: the address's email budget.
    app.smtp.wait_for("forgetful@example.com", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp.messages_to("nobody@example.com").is_empty());
    let body = assert_problem(
        app.post_json("/api/auth/forgot-password", &json!({"email": "x"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["email"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_sets_the_password_once_and_revokes_every_session() {
    let app = spawn_app().await;
    let first = app.signed_in("reset@example.com").await;
    let second = app.new_session("reset@example.com", PASSWORD).await;
    app.post_json(
        "/api/auth/forgot-password",
        &json!({"email": "reset@example.com"}),
    )
    .await;
    let token = reset_link(&app, "reset@example.com", 2).await;

    // A bad password is refused without spending the token.
    let body = assert_problem(reset(&app, &token, "short").await, 422, "validation_failed").await;
    assert!(body["errors"]["password"].is_array());
    let response = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.unwrap()["message"].is_string());

    for session in [&first, &second] {
        assert_problem(app.me_bearer(&session.access).await, 401, "unauthorized").await;
        assert_problem(
            app.refresh_with_cookie(&session.refresh).await,
            401,
            "invalid_token",
        )
        .await;
        assert!(app.revoked_in_redis(&session.sid()).await);
    }
    assert_eq!(app.login("reset@example.com", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("reset@example.com", NEW_PASSWORD).await.status(),
        200
    );
    assert_problem(
        reset(&app, &token, "yet another one").await,
        400,
        "invalid_token",
    )
    .await;
    assert_problem(
        reset(&app, "made-up", NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_reset_link_replaces_the_older_one() {
    let app = spawn_app().await;
    app.verified_user("twice@example.com").await;
    app.post_json(
        "/api/auth/forgot-password",
        &json!({"email": "twice@example.com"}),
    )
    .await;
    let old = reset_link(&app, "twice@example.com", 2).await;
    app.post_json(
        "/api/auth/forgot-password",
        &json!({"email": "twice@example.com"}),
    )
    .await;
    let new = reset_link(&app, "twice@example.com", 3).await;
    assert_problem(reset(&app, &old, NEW_PASSWORD).await, 400, "invalid_token").await;
    assert_eq!(reset(&app, &new, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_links_expire() {
    let app = spawn_app_with(|s| s.reset_ttl_secs = 1).await;
    app.verified_user("slowpoke@example.com").await;
    app.post_json(
        "/api/auth/forgot-password",
        &json!({"email": "slowpoke@example.com"}),
    )
    .await;
    let token = reset_link(&app, "slowpoke@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_problem(
        reset(&app, &token, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.login("slowpoke@example.com", PASSWORD).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_current_passwords_count_against_the_failed_login_limit() {
    let app = spawn_app_with(|s| s.login_failure_limit = 3).await;
    let session = app.signed_in("guess@example.com").await;
    let guess = |current: &'static str| {
        change_password(
            &app,
            Some(&session.access),
            json!({"current_password": current, "new_password": NEW_PASSWORD}),
        )
    };
    for _ in 0..3 {
        assert_problem(guess("wrong guess").await, 403, "invalid_credentials").await;
    }
    let limited = guess(PASSWORD).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429, "rate_limited").await;
    // The same budget as logins: the account's password cannot be guessed there either.
    assert_problem(
        app.login("guess@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_right_current_password_clears_earlier_wrong_ones() {
    let app = spawn_app_with(|s| s.login_failure_limit = 3).await;
    let session = app.signed_in("typo2@example.com").await;
    for _ in 0..2 {
        let wrong = change_password(
            &app,
            Some(&session.access),
            json!({"current_password": "wrong guess", "new_password": NEW_PASSWORD}),
        )
        .await;
        assert_eq!(wrong.status(), 403);
    }
    let right = change_password(
        &app,
        Some(&session.access),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(right.status(), 200);
    for _ in 0..2 {
        assert_eq!(
            app.login("typo2@example.com", "wrong guess").await.status(),
            401
        );
    }
    assert_eq!(
        app.login("typo2@example.com", NEW_PASSWORD).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_lifts_the_failed_login_lock() {
    let app = spawn_app_with(|s| s.login_failure_limit = 3).await;
    app.verified_user("locked@example.com").await;
    for _ in 0..3 {
        app.login("locked@example.com", "someone guessing").await;
    }
    assert_eq!(
        app.login("locked@example.com", PASSWORD).await.status(),
        429
    );
    app.post_json(
        "/api/auth/forgot-password",
        &json!({"email": "locked@example.com"}),
    )
    .await;
    let token = reset_link(&app, "locked@example.com", 2).await;
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("locked@example.com", NEW_PASSWORD).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_gets_a_bounded_number_of_emails() {
    let app = spawn_app().await;
    app.verified_user("inbox@example.com").await;
    // The verification email and two reset emails: three in ten minutes, the budget.
    for _ in 0..4 {
        let forgot = app
            .post_json(
                "/api/auth/forgot-password",
                &json!({"email": "inbox@example.com"}),
            )
            .await;
        // The answer never tells: the same 202 when the email is dropped.
        assert_eq!(forgot.status(), 202);
    }
    app.smtp.wait_for("inbox@example.com", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.smtp.messages_to("inbox@example.com").len(), 3);

    // Turned off, every email goes out.
    let unlimited = spawn_app_with(|s| {
        s.emails_per_recipient_per_10_min = 0;
        s.emails_per_recipient_per_day = 0;
    })
    .await;
    unlimited.verified_user("inbox@example.com").await;
    for _ in 0..4 {
        unlimited
            .post_json(
                "/api/auth/forgot-password",
                &json!({"email": "inbox@example.com"}),
            )
            .await;
    }
    assert_eq!(
        unlimited.smtp.wait_for("inbox@example.com", 5).await.len(),
        5
    );
}
