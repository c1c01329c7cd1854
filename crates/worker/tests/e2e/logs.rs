//! Request ids end to end: a job stores the id of the HTTP request that submitted it, and the
//! worker's JSON log lines about the job carry both the job id and that request id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::Env;
use domain::job::JobStatus;

/// A log file in the temporary directory, removed on drop.
pub struct LogFile(pub PathBuf);

impl LogFile {
    pub fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("tv-{name}-{}.log", Uuid::new_v4().simple())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// The JSON lines of the log (other lines are skipped).
    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until a line contains `needle`, failing with the log after `timeout`.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.text().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {needle:?} within {timeout:?}; log:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn submit_with_request_id(
    env: &Env,
    request_id: Option<&str>,
    body: Value,
) -> (Uuid, String) {
    let mut request = env
        .client
        .post(format!("{}/api/jobs/submit", env.base))
        .bearer_auth(&env.user.token)
        .json(&body);
    if let Some(id) = request_id {
        request = request.header("X-Request-Id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201);
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    (body["job"]["id"].as_str().unwrap().parse().unwrap(), echoed)
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_log_lines_of_a_job_carry_the_job_id_and_the_submitting_request_id() {
    let env = Env::start().await;
    let log = LogFile::new("worker-json");
    let _worker = env
        .worker_logged(
            &[("LOG_FORMAT", "json"), ("RUST_LOG", "info,worker=debug")],
            log.path(),
        )
        .await;

    let request_id = "abc-0123456789-trace";
    // A job that fails on its first attempt and succeeds on its second: lines from the claim,
    // the failure, the retry and both recorded outcomes.
    let (id, echoed) = submit_with_request_id(
        &env,
        Some(request_id),
        json!({"type": "noop", "data": {"failTimes": 1}, "max_attempts": 2}),
    )
    .await;
    assert_eq!(echoed, request_id);
    assert_eq!(env.job(id).await.request_id.as_deref(), Some(request_id));
    env.wait_status(id, "completed", Duration::from_secs(30))
        .await;
    log.wait_for("outcome recorded", Duration::from_secs(10))
        .await;
    // The second attempt's outcome line too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<Value> = log
            .json_lines()
            .into_iter()
            .filter(|line| line["span"]["job_id"] == id.to_string())
            .collect();
        let recorded = lines
            .iter()
            .filter(|line| line["message"] == "outcome recorded")
            .count();
        if recorded >= 2 {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected two recorded outcomes; log:\n{}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    for message in [
        "job claimed",
        "attempt failed",
        "attempt ended",
        "outcome recorded",
    ] {
        assert!(
            lines.iter().any(|line| line["message"] == message),
            "no {message:?} line for the job; log:\n{}",
            log.text()
        );
    }
    for line in &lines {
        assert_eq!(line["span"]["name"], "job", "{line}");
        assert_eq!(line["span"]["request_id"], request_id, "{line}");
        assert!(line["span"]["attempt"].is_i64(), "{line}");
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let attempts: Vec<i64> = lines
        .iter()
        .filter(|line| line["message"] == "outcome recorded")
        .map(|line| line["span"]["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2], "{lines:?}");

    // Without an incoming id, the generated one (returned in the header) is stored and logged.
    let (other, generated) = submit_with_request_id(&env, None, json!({"type": "noop"})).await;
    assert_eq!(
        env.job(other).await.request_id.as_deref(),
        Some(generated.as_str())
    );
    env.wait_status(other, "completed", Duration::from_secs(30))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !log.json_lines().iter().any(|line| {
        line["span"]["job_id"] == other.to_string()
            && line["span"]["request_id"] == generated.as_str()
            && line["message"] == "outcome recorded"
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no line for {other} with request id {generated}; log:\n{}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn send(worker: &test_support::process::Running, signal: &str) {
    let pid = worker.child.id().expect("worker still running");
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_says_what_it_waits_for_and_a_second_one_stops_at_once() {
    let env = Env::start().await;
    let log = LogFile::new("worker-sigint");
    let mut worker = env
        .worker_logged(&[("SHUTDOWN_GRACE_SECS", "60")], log.path())
        .await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 60000}}))
        .await;
    env.wait_for(id, Duration::from_secs(10), |job| {
        job.status == JobStatus::Running && job.progress > 0
    })
    .await;

    send(&worker, "INT");
    log.wait_for(
        "waiting for 1 running job (up to 60s)",
        Duration::from_secs(10),
    )
    .await;
    // Still waiting: the job keeps running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(worker.child.try_wait().unwrap().is_none(), "{}", log.text());
    assert_eq!(env.job(id).await.status, JobStatus::Running);

    let second = tokio::time::Instant::now();
    send(&worker, "INT");
    let status = tokio::time::timeout(Duration::from_secs(10), worker.child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit after a second SIGINT; log:\n{}", log.text()))
        .unwrap();
    assert!(status.success(), "{status:?}; log:\n{}", log.text());
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "took {:?}",
        second.elapsed()
    );
    assert!(
        log.text().contains("second SIGINT: releasing running jobs"),
        "{}",
        log.text()
    );
    // Handed back, its interrupted attempt given back: the next worker runs it.
    let job = env.job(id).await;
    assert_eq!(
        (job.status.as_str(), job.attempts),
        ("pending", 0),
        "{job:?}"
    );
    // Its port is free again.
    let port = worker.base_url.rsplit(':').next().unwrap().to_owned();
    assert!(std::net::TcpListener::bind(format!("127.0.0.1:{port}")).is_ok());
}
