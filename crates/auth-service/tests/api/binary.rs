//! The real binary: subcommands, refused settings, and replicas starting together.

use std::time::Duration;

use diesel_async::RunQueryDsl as _;
use serde_json::Value;
use test_support::process::Running;
use test_support::{TestDb, TestRedis, free_port};

use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

fn base_env(db: &TestDb, redis: &TestRedis) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis.url()),
        ("REDIS_PREFIX", redis.prefix().to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn run(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    tokio::process::Command::new(BINARY)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_applies_the_migrations_and_exits() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let output = run(&["migrate"], &base_env(&db, &redis)).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut conn = persistence::pool::connect(db.url()).await.unwrap();
    let rows = diesel::sql_query("SELECT id FROM users")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // Running it again is a no-op.
    assert!(
        run(&["migrate"], &base_env(&db, &redis))
            .await
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_admin_promotes_an_existing_user() {
    let app = spawn_app().await;
    app.verified_user("boss@example.com").await;
    let env = base_env(&app.db, &app.redis);
    let output = run(&["grant-admin", "Boss@Example.com"], &env).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let session = app.new_session("boss@example.com", PASSWORD).await;
    let me: Value = app.me_bearer(&session.access).await.json().await.unwrap();
    assert_eq!(me["user"]["role"], "admin");

    let output = run(&["grant-admin", "nobody@example.com"], &env).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nobody@example.com"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_setting_stops_the_process_with_one_line_naming_it() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let mut env = base_env(&db, &redis);
    env.push(("ACCESS_TOKEN_TTL_SECS".to_owned(), "abc".to_owned()));
    let output = run(&[], &env).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("ACCESS_TOKEN_TTL_SECS"), "{stderr}");
}

/// An Ed25519 key that is not the development key (RFC 8410 test vector).
const PRODUCTION_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";

/// What the Kubernetes deployment gives the auth service (its ConfigMap, and the Secret's
/// keys), with this test's database, Redis prefix and mail server, on free ports.
fn production_env(db: &TestDb, redis: &TestRedis, smtp_url: &str) -> Vec<(String, String)> {
    let mut env = test_support::kubernetes_config();
    env.retain(|(key, _)| !["AUTH_ADDR", "METRICS_ADDR", "RUST_LOG"].contains(&key.as_str()));
    env.extend(
        base_env(db, redis)
            .into_iter()
            .filter(|(k, _)| k != "BCRYPT_COST"),
    );
    for (key, value) in [
        ("JWT_PRIVATE_KEY", PRODUCTION_KEY.to_owned()),
        ("SMTP_URL", smtp_url.to_owned()),
        ("AUTH_ADDR", format!("127.0.0.1:{}", free_port())),
        ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
    ] {
        env.push((key.to_owned(), value));
    }
    env
}

/// `env` with `name` set to `value`, or removed.
fn with(env: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut env: Vec<_> = env.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        env.push((name.to_owned(), value.to_owned()));
    }
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_each_unsafe_setting_with_one_line_naming_it() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let env = production_env(&db, &redis, "smtp://127.0.0.1:2525");
    let cases: [(&str, Option<&str>); 10] = [
        ("JWT_PRIVATE_KEY", None),
        // The development key, even when passed explicitly.
        (
            "JWT_PRIVATE_KEY",
            Some(access_token::DEVELOPMENT_PRIVATE_KEY_PEM),
        ),
        ("COOKIE_SECURE", Some("false")),
        ("FRONTEND_URL", Some("http://taskvault.example.com")),
        ("FRONTEND_URL", Some("http://localhost:5173")),
        ("FRONTEND_URL", None),
        (
            "CORS_ORIGINS",
            Some("https://taskvault.example.com, http://admin.example.com"),
        ),
        ("BCRYPT_COST", Some("9")),
        ("SMTP_URL", None),
        ("TRUSTED_PROXIES", None),
    ];
    for (name, value) in cases {
        let output = run(&[], &with(&env, name, value)).await;
        assert_eq!(output.status.code(), Some(2), "{name}={value:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}={value:?}: {stderr}");
        // FRONTEND_URL also feeds CORS_ORIGINS; naming either is right.
        assert!(lines[0].contains(name), "{name}={value:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_settings_start_in_production() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let smtp = test_support::smtp::SmtpCapture::start().await;
    let env = production_env(&db, &redis, &smtp.url());
    // In production a service never runs DDL: on a fresh database it refuses to start, naming
    // the command (the Kubernetes Job) that migrates.
    let refused = run(&[], &env).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("auth-service migrate"), "{stderr}");
    let migrated = run(&["migrate"], &env).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    for env in [env.clone(), with(&env, "TRUSTED_PROXIES", Some("none"))] {
        let addr = &env.iter().find(|(k, _)| k == "AUTH_ADDR").unwrap().1;
        let mut service = Running::spawn(BINARY, &[], &env, format!("http://{addr}"));
        service
            .wait_until_ok("/readyz", Duration::from_secs(60))
            .await;
        let health = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap();
        assert!(health.headers().contains_key("strict-transport-security"));
        service.terminate(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_start_together_on_a_fresh_database() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let mut replicas: Vec<Running> = (0..3)
        .map(|_| {
            let port = free_port();
            let mut env = base_env(&db, &redis);
            env.push(("AUTH_ADDR".to_owned(), format!("127.0.0.1:{port}")));
            Running::spawn(BINARY, &[], &env, format!("http://127.0.0.1:{port}"))
        })
        .collect();
    for replica in &mut replicas {
        replica
            .wait_until_ok("/readyz", Duration::from_secs(60))
            .await;
    }
    // They share one database: an account made through one is known to another.
    let client = reqwest::Client::new();
    let signup = client
        .post(format!("{}/api/auth/signup", replicas[0].base_url))
        .json(&serde_json::json!({"email": "shared@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 202);
    let login = client
        .post(format!("{}/api/auth/login", replicas[2].base_url))
        .json(&serde_json::json!({"email": "shared@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403, "known but unverified");
    for replica in &mut replicas {
        replica.terminate(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_job_needs_only_the_database_in_production() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let mut env = base_env(&db, &redis);
    // Settings that only serving uses are neither given nor checked.
    env.push(("APP_ENV".to_owned(), "production".to_owned()));
    env.push(("FRONTEND_URL".to_owned(), "not a url".to_owned()));
    let output = run(&["migrate"], &env).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_smtp_url_is_named_before_the_database_is_touched() {
    let env: Vec<(String, String)> = [
        // Nothing listens here: reaching the database would fail with another message.
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
        ("SMTP_URL", "smtp://mail.example.com?tls=sometimes"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let output = run(&[], &env).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("SMTP_URL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_of_a_request_carry_its_id() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let port = free_port();
    let mut env = base_env(&db, &redis);
    env.extend(
        [
            ("AUTH_ADDR", format!("127.0.0.1:{port}")),
            ("LOG_FORMAT", "json".to_owned()),
            // The access log line is at debug; no SMTP_URL: the email goes to the log.
            ("RUST_LOG", "info,service_kit=debug".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let child = tokio::process::Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signup = client
        .post(format!("{base}/api/auth/signup"))
        .header("x-request-id", "trace-me-42")
        .json(&serde_json::json!({"email": "traced@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 202);
    // The email is written by a background task: give it a moment, then stop the process.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let traced: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == "trace-me-42")
        .collect();
    let messages: Vec<&str> = traced
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    // The access log line and the logged email, written by a background task, both have it.
    assert!(messages.contains(&"request"), "{stdout}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("email not sent, logged instead")),
        "{stdout}"
    );
    for line in &traced {
        for field in ["timestamp", "level", "message"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
}
