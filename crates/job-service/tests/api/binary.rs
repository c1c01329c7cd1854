//! The `job-service` binary: configuration from the environment, refusal of bad settings.

use std::time::Duration;

use test_support::process::Running;
use test_support::{TestDb, TestRedis, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_setting_is_named_and_exits_non_zero() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_job-service"))
        .env_clear()
        .env("JOBS_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JOBS_ADDR") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_migrates_a_fresh_database_and_serves() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let port = free_port();
    let key = access_token::SigningKey::development();
    let envs = vec![
        ("DATABASE_URL".to_owned(), db.url().to_owned()),
        ("REDIS_URL".to_owned(), redis.url()),
        ("REDIS_PREFIX".to_owned(), redis.prefix().to_owned()),
        ("JOBS_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ("AUTH_JWT_PUBLIC_KEY".to_owned(), key.public_pem()),
    ];
    let mut service = Running::spawn(
        env!("CARGO_BIN_EXE_job-service"),
        &[],
        &envs,
        format!("http://127.0.0.1:{port}"),
    );
    service
        .wait_until_ok("/readyz", Duration::from_secs(30))
        .await;
    let response = reqwest::get(format!("{}/api/jobs/all", service.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_addr_metrics_leave_the_main_port() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let (port, metrics_port) = (free_port(), free_port());
    let key = access_token::SigningKey::development();
    let envs = vec![
        ("DATABASE_URL".to_owned(), db.url().to_owned()),
        ("REDIS_URL".to_owned(), redis.url()),
        ("REDIS_PREFIX".to_owned(), redis.prefix().to_owned()),
        ("JOBS_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        (
            "METRICS_ADDR".to_owned(),
            format!("127.0.0.1:{metrics_port}"),
        ),
        ("AUTH_JWT_PUBLIC_KEY".to_owned(), key.public_pem()),
    ];
    let mut service = Running::spawn(
        env!("CARGO_BIN_EXE_job-service"),
        &[],
        &envs,
        format!("http://127.0.0.1:{port}"),
    );
    service
        .wait_until_ok("/readyz", Duration::from_secs(30))
        .await;
    let public = reqwest::get(format!("{}/metrics", service.base_url))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let private = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    assert!(
        private
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
}
