//! `send_email` spends the recipient's email budget, shared with the auth service's emails.

use std::time::Duration;

use serde_json::json;

use crate::harness::Env;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn send_email_stops_at_the_recipient_budget() {
    let env = Env::start().await;
    let smtp = test_support::smtp::SmtpCapture::start().await;
    let _worker = env
        .worker(&[
            ("SMTP_URL", &smtp.url()),
            ("EMAILS_PER_RECIPIENT_PER_10_MIN", "2"),
        ])
        .await;
    let mut jobs = Vec::new();
    for n in 0..3 {
        let id = env
            .submit(json!({"type": "send_email", "max_attempts": 1,
                "data": {"to": env.user.email, "subject": format!("n{n}"), "body": "Hello"}}))
            .await;
        jobs.push(id);
    }
    let mut completed = 0;
    let mut failed = Vec::new();
    for id in jobs {
        let job = env
            .wait_for(id, T, |j| {
                matches!(j.status.as_str(), "completed" | "failed")
            })
            .await;
        match job.status.as_str() {
            "completed" => completed += 1,
            _ => failed.push(job.last_error.unwrap_or_default()),
        }
    }
    assert_eq!(completed, 2);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("budget"), "{failed:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages_to(&env.user.email).len(), 2);
}
