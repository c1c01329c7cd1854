//! Abuse limits: the per-IP budget and the per-account failed-login limit.

use serde_json::json;

use crate::helpers::*;

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_routes_share_one_budget_per_ip() {
    let app = spawn_app_with(|s| s.auth_rate_limit_per_minute = 3).await;
    assert_eq!(app.signup("a@example.com", PASSWORD).await.status(), 202);
    assert_eq!(app.login("a@example.com", PASSWORD).await.status(), 403);
    assert_eq!(
        app.post_json(
            "/api/auth/forgot-password",
            &json!({"email": "a@example.com"})
        )
        .await
        .status(),
        202
    );
    let limited = app
        .post_json(
            "/api/auth/verify-otp",
            &json!({"email": "a@example.com", "otp": "123456"}),
        )
        .await;
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_problem(limited, 429, "rate_limited").await;
    assert_problem(
        app.signup("b@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;
    let reset = app
        .post_json("/api/auth/reset/whatever", &json!({"password": PASSWORD}))
        .await;
    assert_problem(reset, 429, "rate_limited").await;
    let verify = app
        .client
        .post(app.url("/api/auth/verify/whatever"))
        .send()
        .await
        .unwrap();
    assert_problem(verify, 429, "rate_limited").await;
    // Other routes are not counted.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.me_bearer("x").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    let app = spawn_app_with(|s| {
        s.auth_rate_limit_per_minute = 2;
        s.trusted_proxies = "127.0.0.1/32".to_owned();
    })
    .await;
    let from = |ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/auth/forgot-password"))
                .header("x-forwarded-for", format!("9.9.9.9, {ip}"))
                .json(&json!({"email": "p@example.com"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(from("1.1.1.1").await, 202);
    assert_eq!(from("1.1.1.1").await, 202);
    assert_eq!(from("1.1.1.1").await, 429);
    assert_eq!(
        from("2.2.2.2").await,
        202,
        "another client has its own budget"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trusted_proxies_forwarded_headers_are_ignored() {
    let app = spawn_app_with(|s| s.auth_rate_limit_per_minute = 2).await;
    for (ip, expected) in [("1.1.1.1", 202), ("2.2.2.2", 202), ("3.3.3.3", 429)] {
        let status = app
            .client
            .post(app.url("/api/auth/forgot-password"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "p@example.com"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected, "{ip}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_failed_logins_lock_the_account_for_a_while() {
    let app = spawn_app_with(|s| s.login_failure_limit = 3).await;
    app.verified_user("target@example.com").await;
    app.verified_user("bystander@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            app.login("target@example.com", "wrong password")
                .await
                .status(),
            401
        );
    }
    let locked = app.login("target@example.com", PASSWORD).await;
    let wait = retry_after(&locked);
    assert!(wait > 60 && wait <= 15 * 60, "Retry-After {wait}");
    assert_problem(locked, 429, "rate_limited").await;
    assert_eq!(
        app.login("bystander@example.com", PASSWORD).await.status(),
        200
    );
    // Unknown accounts are limited the same way, so the lock reveals nothing.
    for _ in 0..3 {
        assert_eq!(
            app.login("ghost@example.com", "wrong password")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        app.login("ghost@example.com", "wrong password")
            .await
            .status(),
        429
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successful_login_clears_the_failures() {
    let app = spawn_app_with(|s| s.login_failure_limit = 3).await;
    app.verified_user("typo@example.com").await;
    for _ in 0..2 {
        assert_eq!(
            app.login("typo@example.com", "wrong password")
                .await
                .status(),
            401
        );
    }
    assert_eq!(app.login("typo@example.com", PASSWORD).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(
            app.login("typo@example.com", "wrong password")
                .await
                .status(),
            401
        );
    }
    assert_eq!(app.login("typo@example.com", PASSWORD).await.status(), 200);
}
