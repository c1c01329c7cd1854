use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_the_tokens() {
    let app = spawn_app().await;
    let session = app.signed_in("rotate@example.com").await;
    let response = app.refresh_with_cookie(&session.refresh).await;
    assert_eq!(response.status(), 200);
    let next = Session::from_response(response.headers());
    let refresh_cookie = cookie(response.headers(), "refresh_token");
    assert_eq!(refresh_cookie.attr("path"), Some("/api/auth"));
    assert_eq!(refresh_cookie.attr("samesite"), Some("Strict"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["access_token"], next.access.as_str());
    assert_eq!(body["user"]["email"], "rotate@example.com");
    assert_ne!(next.refresh, session.refresh);
    assert_eq!(next.sid(), session.sid(), "same session");
    assert_eq!(app.me_bearer(&next.access).await.status(), 200);

    // The body form works too, and rotates again.
    let response = app
        .post_json(
            "/api/auth/refresh-token",
            &json!({"refresh_token": next.refresh}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let third = Session::from_response(response.headers());
    assert_ne!(third.refresh, next.refresh);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_refuses_missing_unknown_and_malformed_tokens() {
    let app = spawn_app().await;
    let no_token = app
        .client
        .post(app.url("/api/auth/refresh-token"))
        .send()
        .await
        .unwrap();
    assert_problem(no_token, 401, "invalid_token").await;
    assert_problem(
        app.refresh_with_cookie("made-up").await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        app.post_json("/api/auth/refresh-token", &json!({})).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        app.post_json("/api/auth/refresh-token", &json!({"refresh_token": "x"}))
            .await,
        401,
        "invalid_token",
    )
    .await;
    let not_json = app
        .client
        .post(app.url("/api/auth/refresh-token"))
        .header("content-type", "text/plain")
        .body("refresh_token=x")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 415, "unsupported_media_type").await;
    let broken = app
        .client
        .post(app.url("/api/auth/refresh-token"))
        .header("content-type", "application/json")
        .body("{\"refresh_token\": ")
        .send()
        .await
        .unwrap();
    assert_problem(broken, 400, "malformed_json").await;
    let wrong_type = app
        .post_json("/api/auth/refresh-token", &json!({"refresh_token": 5}))
        .await;
    assert_problem(wrong_type, 422, "validation_failed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tabs_racing_get_the_current_tokens() {
    let app = spawn_app().await;
    let session = app.signed_in("tabs@example.com").await;
    let first = app.refresh_with_cookie(&session.refresh).await;
    assert_eq!(first.status(), 200);
    let current = Session::from_response(first.headers());

    // The second tab presents the token the first one just spent.
    let second = app.refresh_with_cookie(&session.refresh).await;
    assert_eq!(second.status(), 200);
    let raced = Session::from_response(second.headers());
    assert_eq!(
        raced.refresh, current.refresh,
        "the session's current refresh token comes back"
    );
    assert_eq!(raced.sid(), session.sid());
    assert_eq!(app.me_bearer(&raced.access).await.status(), 200);

    // Both tabs go on: the current token rotates normally, and the chain is followed.
    let third = app.refresh_with_cookie(&current.refresh).await;
    assert_eq!(third.status(), 200);
    let latest = Session::from_response(third.headers());
    let again = app.refresh_with_cookie(&session.refresh).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        Session::from_response(again.headers()).refresh,
        latest.refresh
    );
    assert_eq!(
        app.me_bearer(&session.access).await.status(),
        200,
        "nothing was revoked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_spent_token_after_the_grace_period_revokes_the_session() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace_secs = 1).await;
    let session = app.signed_in("stolen@example.com").await;
    let other = app.new_session("stolen@example.com", PASSWORD).await;
    let rotated = app.refresh_with_cookie(&session.refresh).await;
    assert_eq!(rotated.status(), 200);
    let current = Session::from_response(rotated.headers());
    tokio::time::sleep(Duration::from_millis(2100)).await;

    assert_problem(
        app.refresh_with_cookie(&session.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    // The whole session is gone: its current refresh token and its access tokens.
    assert_problem(
        app.refresh_with_cookie(&current.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(app.me_bearer(&current.access).await, 401, "unauthorized").await;
    assert_problem(app.me_bearer(&session.access).await, 401, "unauthorized").await;
    assert!(app.revoked_in_redis(&session.sid()).await);
    // Other sessions of the user are untouched.
    assert_eq!(app.me_bearer(&other.access).await.status(), 200);
    assert_eq!(app.refresh_with_cookie(&other.refresh).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_expire() {
    let app = spawn_app_with(|s| s.refresh_token_ttl_secs = 1).await;
    let session = app.signed_in("stale@example.com").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_problem(
        app.refresh_with_cookie(&session.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_refreshes_of_one_token_agree_on_the_successor() {
    let app = spawn_app().await;
    let session = app.signed_in("race@example.com").await;
    let (a, b) = tokio::join!(
        app.refresh_with_cookie(&session.refresh),
        app.refresh_with_cookie(&session.refresh)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b) = (
        Session::from_response(a.headers()),
        Session::from_response(b.headers()),
    );
    assert_eq!(a.refresh, b.refresh, "one rotation, one successor");
    assert_eq!(app.refresh_with_cookie(&a.refresh).await.status(), 200);
    assert_eq!(app.me_bearer(&b.access).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshing_cannot_extend_a_session_past_its_absolute_lifetime() {
    let app = spawn_app_with(|s| s.session_max_age_secs = 3).await;
    let mut session = app.signed_in("forever@example.com").await;
    let started = std::time::Instant::now();
    // Refreshing keeps working within the lifetime...
    while started.elapsed() < Duration::from_millis(2000) {
        let response = app.refresh_with_cookie(&session.refresh).await;
        assert_eq!(response.status(), 200);
        session = Session::from_response(response.headers());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // ...but not past it, however recently the token was rotated.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = app.refresh_with_cookie(&session.refresh).await;
    assert_problem(expired, 401, "invalid_token").await;
}
