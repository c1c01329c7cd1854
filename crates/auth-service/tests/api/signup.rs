use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::smtp::Behaviour;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn signup_accepts_and_emails_a_code_and_a_link() {
    let app = spawn_app().await;
    let response = app.signup("Ada@Example.com", PASSWORD).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string());

    let messages = app.smtp.wait_for("ada@example.com", 1).await;
    let text = messages[0].body();
    let code = code_in(text);
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    assert!(
        text.contains(&format!("{FRONTEND}/verify-email?token=")),
        "{text}"
    );
    assert_eq!(token_after(text, "verify-email?token=").len(), 43);
    assert!(
        messages[0]
            .header("From")
            .unwrap()
            .contains("no-reply@localhost")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_answers_the_same_for_a_taken_email() {
    let app = spawn_app().await;
    let first = observable(app.signup("taken@example.com", PASSWORD).await).await;
    app.smtp.wait_for("taken@example.com", 1).await;
    // The same address (differently cased) and a new one.
    let taken = observable(app.signup("TAKEN@example.com", "another password").await).await;
    let fresh = observable(app.signup("fresh@example.com", PASSWORD).await).await;
    assert_eq!(taken, fresh);
    assert_eq!(first, fresh);
    assert_eq!(taken.0, 202);
    app.smtp.wait_for("fresh@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.smtp.messages_to("taken@example.com").len(),
        1,
        "no second email for a taken address"
    );
    // The original password still works: the second sign-up changed nothing.
    let verification = app.verification_email("taken@example.com", 1).await;
    app.client
        .post(app.url(&format!("/api/auth/verify/{}", verification.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(app.login("taken@example.com", PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("taken@example.com", "another password")
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_validates_fields() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.signup("not-an-email", "short").await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["email"].is_array(), "{body}");
    assert!(body["errors"]["password"].is_array(), "{body}");

    let too_long = "a".repeat(73);
    let body = assert_problem(
        app.signup("ok@example.com", &too_long).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["password"].is_array());
    assert!(body["errors"].get("email").is_none());
    // 72 bytes is fine; 7 is not.
    assert_eq!(
        app.signup("ok@example.com", &"a".repeat(72)).await.status(),
        202
    );
    assert_problem(
        app.signup("ok2@example.com", "1234567").await,
        422,
        "validation_failed",
    )
    .await;

    // Missing fields are reported by name.
    let body = assert_problem(
        app.post_json("/api/auth/signup", &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        body["errors"]["email"].is_array() && body["errors"]["password"].is_array(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_mail_server_does_not_delay_signup() {
    let app = spawn_app_with_smtp(Behaviour::Slow(Duration::from_secs(5)), |_| {}).await;
    let started = Instant::now();
    let response = app.signup("slow@example.com", PASSWORD).await;
    assert_eq!(response.status(), 202);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    // The email still arrives once the server wakes up.
    app.smtp.wait_for("slow@example.com", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_mail_server_does_not_fail_signup() {
    let app = spawn_app_with_smtp(Behaviour::Refuse, |_| {}).await;
    let response = app.signup("refused@example.com", PASSWORD).await;
    assert_eq!(response.status(), 202);
    // The service keeps working.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.signup("refused2@example.com", PASSWORD).await.status(),
        202
    );
    assert!(app.smtp.messages().is_empty());
}
