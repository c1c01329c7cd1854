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

#[tokio::test(flavor = "multi_thread")]
async fn production_requires_a_private_key() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let mut env = base_env(&db, &redis);
    env.push(("APP_ENV".to_owned(), "production".to_owned()));
    let output = run(&[], &env).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("JWT_PRIVATE_KEY"), "{stderr}");

    env.push(("JWT_PRIVATE_KEY".to_owned(), "not a key".to_owned()));
    let output = run(&[], &env).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_PRIVATE_KEY"));
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
