use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn verify_link(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/auth/verify/{token}")))
        .send()
        .await
        .unwrap()
}

async fn verify_otp(app: &TestApp, email: &str, otp: &str) -> reqwest::Response {
    app.post_json("/api/auth/verify-otp", &json!({"email": email, "otp": otp}))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_link_verifies_once() {
    let app = spawn_app().await;
    app.signup("link@example.com", PASSWORD).await;
    assert_problem(
        app.login("link@example.com", PASSWORD).await,
        403,
        "email_not_verified",
    )
    .await;
    let verification = app.verification_email("link@example.com", 1).await;

    let response = verify_link(&app, &verification.token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["email"], "link@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["role"], "user");
    assert!(user["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    let created = user["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'),
        "{created}"
    );

    assert_problem(
        verify_link(&app, &verification.token).await,
        400,
        "invalid_token",
    )
    .await;
    assert_eq!(app.login("link@example.com", PASSWORD).await.status(), 200);
    // The code is void once the address is verified.
    assert_problem(
        verify_otp(&app, "link@example.com", &verification.code).await,
        400,
        "invalid_otp",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_link_tokens_are_refused() {
    let app = spawn_app().await;
    assert_problem(verify_link(&app, "nope").await, 400, "invalid_token").await;
    assert_problem(
        verify_link(&app, &"A".repeat(43)).await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links_and_codes_expire() {
    let app = spawn_app_with(|s| {
        s.verification_ttl_secs = 1;
        s.otp_ttl_secs = 1;
    })
    .await;
    app.signup("late@example.com", PASSWORD).await;
    let verification = app.verification_email("late@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_problem(
        verify_link(&app, &verification.token).await,
        400,
        "invalid_token",
    )
    .await;
    assert_problem(
        verify_otp(&app, "late@example.com", &verification.code).await,
        400,
        "invalid_otp",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_code_verifies() {
    let app = spawn_app().await;
    app.signup("otp@example.com", PASSWORD).await;
    let verification = app.verification_email("otp@example.com", 1).await;
    let response = verify_otp(&app, "OTP@example.com", &verification.code).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email_verified"], true);
    assert_eq!(app.login("otp@example.com", PASSWORD).await.status(), 200);
    // Single use.
    assert_problem(
        verify_otp(&app, "otp@example.com", &verification.code).await,
        400,
        "invalid_otp",
    )
    .await;
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_codes_void_the_code() {
    let app = spawn_app().await;
    app.signup("guess@example.com", PASSWORD).await;
    let verification = app.verification_email("guess@example.com", 1).await;
    for _ in 0..5 {
        assert_problem(
            verify_otp(&app, "guess@example.com", &wrong(&verification.code)).await,
            400,
            "invalid_otp",
        )
        .await;
    }
    assert_problem(
        verify_otp(&app, "guess@example.com", &verification.code).await,
        400,
        "invalid_otp",
    )
    .await;
    assert_problem(
        app.login("guess@example.com", PASSWORD).await,
        403,
        "email_not_verified",
    )
    .await;

    // A new email brings a new code that works.
    assert_eq!(
        app.post_json(
            "/api/auth/resend-verification",
            &json!({"email": "guess@example.com"})
        )
        .await
        .status(),
        202
    );
    let fresh = app.verification_email("guess@example.com", 2).await;
    assert_eq!(
        verify_otp(&app, "guess@example.com", &fresh.code)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn four_wrong_codes_still_leave_the_right_one_usable() {
    let app = spawn_app().await;
    app.signup("careful@example.com", PASSWORD).await;
    let verification = app.verification_email("careful@example.com", 1).await;
    for _ in 0..4 {
        assert_eq!(
            verify_otp(&app, "careful@example.com", &wrong(&verification.code))
                .await
                .status(),
            400
        );
    }
    assert_eq!(
        verify_otp(&app, "careful@example.com", &verification.code)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_otp_validates_fields_and_refuses_unknown_emails() {
    let app = spawn_app().await;
    let body = assert_problem(
        verify_otp(&app, "nope", "12ab").await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        body["errors"]["email"].is_array() && body["errors"]["otp"].is_array(),
        "{body}"
    );
    assert_problem(
        verify_otp(&app, "nobody@example.com", "123456").await,
        400,
        "invalid_otp",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resend_replaces_the_link_and_the_code() {
    let app = spawn_app().await;
    app.signup("again@example.com", PASSWORD).await;
    let first = app.verification_email("again@example.com", 1).await;
    let response = app
        .post_json(
            "/api/auth/resend-verification",
            &json!({"email": "again@example.com"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let second = app.verification_email("again@example.com", 2).await;
    assert_ne!(first.token, second.token);
    // The old link no longer works (a newer one replaces it); the new one does.
    assert_problem(verify_link(&app, &first.token).await, 400, "invalid_token").await;
    if first.code != second.code {
        assert_problem(
            verify_otp(&app, "again@example.com", &first.code).await,
            400,
            "invalid_otp",
        )
        .await;
    }
    assert_eq!(verify_link(&app, &second.token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn resend_answers_the_same_for_unknown_unverified_and_verified_addresses() {
    let app = spawn_app().await;
    app.signup("pending@example.com", PASSWORD).await;
    app.verified_user("done@example.com").await;
    let resend = |email: &'static str| {
        let app = &app;
        async move {
            observable(
                app.post_json("/api/auth/resend-verification", &json!({"email": email}))
                    .await,
            )
            .await
        }
    };
    let unknown = resend("ghost@example.com").await;
    let pending = resend("pending@example.com").await;
    let verified = resend("done@example.com").await;
    assert_eq!(unknown.0, 202);
    assert_eq!(unknown, pending);
    assert_eq!(unknown, verified);
    app.smtp.wait_for("pending@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.messages_to("done@example.com").len(), 1);
    assert!(app.smtp.messages_to("ghost@example.com").is_empty());
    let body = assert_problem(
        app.post_json("/api/auth/resend-verification", &json!({"email": "bad"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["email"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_count_across_resends_and_then_only_the_link_works() {
    let app = spawn_app().await;
    let email = "patient@example.com";
    app.signup(email, PASSWORD).await;
    let body = json!({"email": email});
    let resend = || app.post_json("/api/auth/resend-verification", &body);
    // 4 wrong guesses per code (one short of voiding it), then a resend for a fresh code: ten
    // wrong guesses over three codes.
    let mut verification = app.verification_email(email, 1).await;
    for (n, guesses) in [(1, 4), (2, 4), (3, 2)] {
        if n > 1 {
            assert_eq!(resend().await.status(), 202);
            verification = app.verification_email(email, n).await;
        }
        for _ in 0..guesses {
            let guess = verify_otp(&app, email, &wrong(&verification.code)).await;
            assert_problem(guess, 400, "invalid_otp").await;
        }
    }
    // The right code of the live code is refused now, exactly as a wrong one or an unknown
    // address is...
    let right = verify_otp(&app, email, &verification.code).await;
    let (status, _, body) = observable(right).await;
    assert_eq!(status, 400);
    let unknown = verify_otp(&app, "nobody@example.com", &verification.code).await;
    assert_eq!(observable(unknown).await.2, body);
    // ...and only the link works.
    assert_eq!(verify_link(&app, &verification.token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn resends_are_capped_per_address_whether_or_not_it_has_an_account() {
    let app = spawn_app().await;
    app.signup("eager@example.com", PASSWORD).await;
    for email in ["eager@example.com", "ghost@example.com"] {
        for _ in 0..3 {
            let response = app
                .post_json("/api/auth/resend-verification", &json!({"email": email}))
                .await;
            assert_eq!(response.status(), 202, "{email}");
        }
        let capped = app
            .post_json("/api/auth/resend-verification", &json!({"email": email}))
            .await;
        let wait: u64 = capped.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait > 60 && wait <= 3600, "{email}: Retry-After {wait}");
        assert_problem(capped, 429, "rate_limited").await;
    }
    // The capped request sent nothing; of the first and three resent emails, the recipient's
    // email budget (3 in 10 minutes) let three through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.wait_for("eager@example.com", 3).await.len(), 3);
    assert_eq!(app.smtp.messages_to("eager@example.com").len(), 3);
}
