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

/// The auth service's signing key in the production tests (not the development key).
pub fn production_key() -> access_token::SigningKey {
    access_token::SigningKey::from_pem(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
    )
    .unwrap()
}

/// What the Kubernetes deployment gives the job service (ConfigMap, Secret), on free ports.
pub fn production_env(db: &TestDb, redis: &TestRedis) -> Vec<(String, String)> {
    let key = production_key();
    let mut env = test_support::kubernetes_config();
    env.retain(|(key, _)| !["JOBS_ADDR", "METRICS_ADDR", "RUST_LOG"].contains(&key.as_str()));
    for (key, value) in [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis.url()),
        ("REDIS_PREFIX", redis.prefix().to_owned()),
        ("JOBS_ADDR", format!("127.0.0.1:{}", free_port())),
        ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
        ("AUTH_JWT_PUBLIC_KEY", key.public_pem()),
    ] {
        env.push((key.to_owned(), value));
    }
    env
}

/// `env` with `name` set to `value`, or removed for `None`.
pub fn with(env: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut env: Vec<_> = env.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        env.push((name.to_owned(), value.to_owned()));
    }
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_each_unsafe_setting_with_one_line_naming_it() {
    // Production services never migrate: the database is migrated first, as by the k8s Job.
    let db = TestDb::migrated().await;
    let redis = TestRedis::new();
    let env = production_env(&db, &redis);
    let development = access_token::SigningKey::development().public_pem();
    let cases: [(&str, &str, Option<&str>); 5] = [
        // Tokens anyone can sign.
        (
            "AUTH_JWT_PUBLIC_KEY",
            "AUTH_JWT_PUBLIC_KEY",
            Some(&development),
        ),
        // Without a key, the JWKS would be fetched over plain HTTP.
        ("AUTH_URL", "AUTH_JWT_PUBLIC_KEY", None),
        ("COOKIE_SECURE", "COOKIE_SECURE", Some("false")),
        (
            "CORS_ORIGINS",
            "CORS_ORIGINS",
            Some("http://taskvault.example.com"),
        ),
        ("FRONTEND_URL", "FRONTEND_URL", None),
    ];
    for (named, name, value) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_job-service"))
            .env_clear()
            .env("RUST_LOG", "error")
            .envs(with(&env, name, value))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(named) && stderr.lines().count() == 1,
            "{name}={value:?}: {stderr}"
        );
    }
    // The shipped settings start.
    let addr = env
        .iter()
        .find(|(k, _)| k == "JOBS_ADDR")
        .unwrap()
        .1
        .clone();
    let mut service = Running::spawn(
        env!("CARGO_BIN_EXE_job-service"),
        &[],
        &env,
        format!("http://{addr}"),
    );
    service
        .wait_until_ok("/readyz", Duration::from_secs(30))
        .await;
}
