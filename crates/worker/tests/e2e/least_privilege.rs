//! Least privilege in production: the job service and the worker run as the database roles
//! `auth-service db-roles` creates, which cannot read credentials, and still do their work.

use std::time::Duration;

use diesel_async::RunQueryDsl as _;
use domain::Role;
use serde_json::{Value, json};
use test_support::process::{Running, sibling_binary};
use test_support::{TestDb, TestRedis, TestRoles, free_port};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// A production key (not the built-in development key, which production refuses).
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";

async fn auth_service(args: &[&str], env: &[(&str, String)]) {
    let output = tokio::process::Command::new(sibling_binary(WORKER, "auth-service"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "auth-service {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The shipped ConfigMap's settings (production), with `extra` on top and free ports.
fn production(extra: Vec<(&str, String)>) -> Vec<(String, String)> {
    let mut env = test_support::kubernetes_config();
    let names: Vec<&str> = extra.iter().map(|(k, _)| *k).collect();
    env.retain(|(key, _)| !names.contains(&key.as_str()) && key != "RUST_LOG");
    env.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env
}

async fn denied(url: &str, sql: &str) {
    let mut conn = persistence::pool::connect(url).await.unwrap();
    match diesel::sql_query(sql).execute(&mut conn).await {
        Err(error) if error.to_string().contains("permission denied") => {}
        other => panic!("{sql}: expected permission denied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_services_run_as_roles_that_cannot_read_credentials() {
    // Dropped after the database, which holds the grants.
    let roles = TestRoles::new();
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let smtp = test_support::smtp::SmtpCapture::start().await;
    let (jobs_url, worker_url) = (roles.url(&db, &roles.jobs), roles.url(&db, &roles.worker));

    // What the Kubernetes Job does, as the schema owner.
    let owner = vec![
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis.url()),
        ("JOBS_DATABASE_URL", jobs_url.clone()),
        ("WORKER_DATABASE_URL", worker_url.clone()),
    ];
    auth_service(&["migrate"], &owner).await;
    auth_service(&["db-roles"], &owner).await;

    let key = access_token::SigningKey::from_pem(KEY_PEM).unwrap();
    let user = job_service::testing::mint_user(&db.pool(), &key, Role::User, true)
        .await
        .unwrap();

    let port = free_port();
    let mut jobs = Running::spawn(
        &sibling_binary(WORKER, "job-service"),
        &[],
        &production(vec![
            ("DATABASE_URL", jobs_url.clone()),
            ("REDIS_URL", redis.url()),
            ("REDIS_PREFIX", redis.prefix().to_owned()),
            ("JOBS_ADDR", format!("127.0.0.1:{port}")),
            ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
            ("AUTH_JWT_PUBLIC_KEY", key.public_pem()),
        ]),
        format!("http://127.0.0.1:{port}"),
    );
    jobs.wait_until_ok("/readyz", Duration::from_secs(30)).await;
    let worker_port = free_port();
    let mut worker = Running::spawn(
        WORKER,
        &[],
        &production(vec![
            ("DATABASE_URL", worker_url.clone()),
            ("REDIS_URL", redis.url()),
            ("REDIS_PREFIX", redis.prefix().to_owned()),
            ("WORKER_ADDR", format!("127.0.0.1:{worker_port}")),
            ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
            ("SMTP_URL", smtp.url()),
        ]),
        format!("http://127.0.0.1:{worker_port}"),
    );
    worker
        .wait_until_ok("/readyz", Duration::from_secs(30))
        .await;

    // A job that reads the user's address (job service) and sends mail (worker).
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/jobs/submit", jobs.base_url))
        .bearer_auth(&user.token)
        .json(&json!({"type": "send_email",
            "data": {"to": user.email, "subject": "least privilege", "body": "Hello"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job: Value = client
            .get(format!("{}/api/jobs/{id}", jobs.base_url))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["job"]["status"] == "completed" {
            break;
        }
        assert!(
            job["job"]["status"] != "failed" && tokio::time::Instant::now() < deadline,
            "{job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(smtp.wait_for(&user.email, 1).await.len(), 1);
    let listed: Value = client
        .get(format!("{}/api/jobs/all", jobs.base_url))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    // A handler's log lines: written by the worker, read through the job service.
    let response = client
        .post(format!("{}/api/jobs/submit", jobs.base_url))
        .bearer_auth(&user.token)
        .json(&json!({"type": "sleep", "data": {"ms": 10}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logs: Value = client
            .get(format!("{}/api/jobs/{id}/logs", jobs.base_url))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if logs.to_string().contains("done: slept 10 ms") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // And neither role can read a credential.
    for url in [&jobs_url, &worker_url] {
        denied(url, "SELECT password_hash FROM users").await;
        denied(url, "SELECT token_hash FROM refresh_tokens").await;
        denied(url, "SELECT code_hash FROM otp_codes").await;
        denied(url, "SELECT token_hash FROM email_tokens").await;
    }
    worker.terminate(Duration::from_secs(10)).await;
    jobs.kill().await;
}
