//! Abuse limits: the per-IP budget and the per-(account, client) failed-login throttle.

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

/// A login through a trusted proxy on behalf of `client`.
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_slow_the_failing_client_but_never_lock_out_the_owner() {
    let app = spawn_app_with(|s| {
        s.login_failure_limit = 2;
        s.trusted_proxies = "127.0.0.1/32".to_owned();
    })
    .await;
    app.verified_user("target@example.com").await;
    let attacker = "6.6.6.6";
    for _ in 0..2 {
        let status = login_from(&app, attacker, "target@example.com", "wrong password")
            .await
            .status();
        assert_eq!(status, 401);
    }
    // The attacker now waits after each failure, and the waits grow.
    let first = login_from(&app, attacker, "target@example.com", "wrong password").await;
    let first_wait = retry_after(&first);
    assert!((1..=2).contains(&first_wait), "Retry-After {first_wait}");
    assert_problem(first, 429, "rate_limited").await;
    // The owner, from another client, proves the password: never blocked by those failures.
    assert_eq!(
        login_from(&app, "1.1.1.1", "target@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    // Under attack, a client that mistypes once waits a moment, then gets in.
    let owner = "2.2.2.2";
    assert_eq!(
        login_from(&app, owner, "target@example.com", "typo")
            .await
            .status(),
        401
    );
    let paused = login_from(&app, owner, "target@example.com", PASSWORD).await;
    assert_eq!(retry_after(&paused), 1);
    assert_problem(paused, 429, "rate_limited").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        login_from(&app, owner, "target@example.com", PASSWORD)
            .await
            .status(),
        200
    );

    tokio::time::sleep(std::time::Duration::from_secs(first_wait)).await;
    assert_eq!(
        login_from(&app, attacker, "target@example.com", "wrong password")
            .await
            .status(),
        401
    );
    let second = login_from(&app, attacker, "target@example.com", "wrong password").await;
    let second_wait = retry_after(&second);
    assert!(second_wait > first_wait, "{second_wait} after {first_wait}");
    // Even the right password waits for the client that has been guessing.
    let right = login_from(&app, attacker, "target@example.com", PASSWORD).await;
    assert_problem(right, 429, "rate_limited").await;

    // Unknown accounts are throttled the same way, so the throttle reveals nothing.
    for expected in [401, 401, 429] {
        let status = login_from(&app, attacker, "ghost@example.com", "wrong password")
            .await
            .status();
        assert_eq!(status, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_clients_are_limited_by_their_64_network() {
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
                .header("x-forwarded-for", ip)
                .json(&json!({"email": "p@example.com"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Addresses of one /64 are one client: rotating through them buys nothing.
    assert_eq!(from("2001:db8:1:2::1").await, 202);
    assert_eq!(from("2001:db8:1:2:ffff::9").await, 202);
    assert_eq!(from("2001:db8:1:2:abcd::3").await, 429);
    assert_eq!(from("2001:db8:1:3::1").await, 202, "another /64");
    // An IPv4-mapped address is the IPv4 client.
    assert_eq!(from("5.5.5.5").await, 202);
    assert_eq!(from("::ffff:5.5.5.5").await, 202);
    assert_eq!(from("5.5.5.5").await, 429);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_login_storm_waits_for_bounded_hashing_then_gets_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.bcrypt_cost = 10;
        s.hash_concurrency = 1;
        s.hash_queue_timeout_ms = 20;
    })
    .await;
    app.verified_user("storm@example.com").await;
    let logins = (0..8).map(|i| {
        let password = if i % 2 == 0 {
            PASSWORD
        } else {
            "wrong password"
        };
        app.login("storm@example.com", password)
    });
    let responses = futures_util::future::join_all(logins).await;
    let mut busy = 0;
    for response in responses {
        match response.status().as_u16() {
            200 | 401 => {}
            503 => {
                assert_eq!(retry_after(&response), 1);
                assert_problem(response, 503, "unavailable").await;
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // One hash at a time, each far longer than the 20 ms anyone may wait for its turn.
    assert!(busy >= 1, "every login was hashed at once");
}
