//! The `job-service` binary: SIGTERM closes every socket with 1001 before the process exits 0,
//! and an access token in the query string never reaches a log line, even at trace level.

use std::process::Stdio;
use std::time::Duration;

use domain::Role;
use test_support::{TestDb, TestRedis, free_port};

use crate::helpers::Ws;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_sockets_with_1001_and_query_tokens_stay_out_of_the_logs() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let port = free_port();
    let key = access_token::SigningKey::development();
    let log_path =
        std::env::temp_dir().join(format!("tv-ws-{}.log", uuid::Uuid::new_v4().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_job-service"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis.url())
        .env("REDIS_PREFIX", redis.prefix())
        .env("JOBS_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTH_JWT_PUBLIC_KEY", key.public_pem())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(tokio::time::Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pool = db.pool();
    let user = job_service::testing::mint_user(&pool, &key, Role::User, true)
        .await
        .unwrap();
    let stack = StackView { base: base.clone() };

    let query = format!("?access_token={}", user.token);
    let mut sockets: Vec<Ws> = Vec::new();
    for _ in 0..3 {
        let mut ws = stack.connect_query(&query).await;
        ws.join("lobby").await;
        sockets.push(ws);
    }
    let secret = "never-log-this-secret-token";
    let refused =
        tokio_tungstenite::connect_async(format!("{}?access_token={secret}", stack.ws_url())).await;
    assert!(refused.is_err());

    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    for ws in &mut sockets {
        assert_eq!(ws.closed_within(Duration::from_secs(5)).await, Some(1001));
    }
    // The sockets are left open on the client side: the server still exits in time.
    let Ok(status) = tokio::time::timeout(Duration::from_secs(25), child.wait()).await else {
        let logs = std::fs::read_to_string(&log_path).unwrap();
        let tail: Vec<&str> = logs
            .lines()
            .filter(|l| !l.contains("\"TRACE\"") && !l.contains("\"DEBUG\""))
            .collect();
        panic!(
            "no exit after SIGTERM; last log lines:\n{}",
            tail.join("\n")
        );
    };
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0));

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.contains("shutting down"), "{logs}");
    for needle in [user.token.as_str(), secret, "access_token="] {
        let line = logs.lines().find(|l| l.contains(needle));
        assert!(line.is_none(), "a log line holds a query token: {line:?}");
    }
}

/// The binary's address, with the helpers' client.
struct StackView {
    base: String,
}

impl StackView {
    fn ws_url(&self) -> String {
        format!("{}/api/ws", self.base.replacen("http", "ws", 1))
    }

    async fn connect_query(&self, query: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("{}{query}", self.ws_url()))
            .await
            .unwrap();
        Ws { stream }
    }
}
