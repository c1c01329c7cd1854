//! The Grafana dashboard and the alert rules that ship in `deploy/` name only metrics that the
//! services really export: a renamed metric breaks this test, not an operator's dashboard.
//!
//! One process runs the auth service, a job service and a worker with its own metrics listener
//! (`METRICS_ADDR`, as deployed). They share the process's metrics recorder, so the job
//! service's `/metrics` page shows all three; the worker's metrics must also be on the page its
//! own listener serves, the one Prometheus scrapes for a worker pod. A short session makes
//! every metric appear: sign-in attempts, requests, a socket receiving a job's updates, jobs
//! run, retried and failed, and the reaper's rounds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::Stack;

fn deploy_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PromQL queries of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&deploy_file("grafana/taskvault.json")).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    queries
}

/// The `expr:` lines of the alert rules (each on one line, as the file's header asks).
fn alert_queries() -> Vec<String> {
    let queries: Vec<String> = deploy_file("k8s/alerts.yaml")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .map(|expr| expr.trim().to_owned())
        .collect();
    assert!(queries.len() >= 5, "{queries:?}");
    queries
}

/// Metric names in a PromQL query: identifiers that are not functions, keywords, label names
/// or durations.
fn metric_names(query: &str) -> BTreeSet<String> {
    let mut text = String::new();
    // Drop label matchers `{...}`, ranges `[...]` and strings.
    let mut depth = 0;
    let mut in_string = false;
    for c in query.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => depth -= 1,
            _ if in_string || depth > 0 => {}
            _ => text.push(c),
        }
        if depth > 0 || in_string {
            continue;
        }
        if matches!(c, '}' | ']' | '"') {
            text.push(' ');
        }
    }
    // Aggregations may be followed by `by (...)` rather than by their parenthesis.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    let mut names = BTreeSet::new();
    let mut skip_group = false;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if KEYWORDS.contains(&word.as_str()) {
                // `by (le, type)`: the parenthesised names are labels.
                skip_group = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
            } else if next != Some(&'(') && !AGGREGATIONS.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        }
        if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
        }
        if c.is_ascii_digit() || c == '.' {
            // Numbers such as 0.99 or 1e-9.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-'))
            {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Metric names on a Prometheus text page.
fn exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_read_from_queries() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{status=~"5.."}[$__rate_interval])))"#
        ),
        BTreeSet::from(["http_request_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        metric_names(
            r#"sum(rate(a_total{x="y"}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.2 and max(c) > 1000"#
        ),
        BTreeSet::from(["a_total".to_owned(), "b_total".to_owned(), "c".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_dashboards_and_alerts_name_only_exported_metrics() {
    let stack = Stack::start(1).await;
    let worker_metrics = format!("127.0.0.1:{}", test_support::free_port());
    let settings = worker::Settings {
        database_url: stack._db.url().to_owned(),
        redis_url: stack.redis_url.clone(),
        redis_prefix: stack.redis.prefix().to_owned(),
        worker_addr: "127.0.0.1:0".to_owned(),
        metrics_addr: Some(worker_metrics.clone()),
        db_pool_size: 4,
        redis_pool_size: 4,
        job_retry_base_ms: 50,
        reaper_interval_ms: 200,
        ..worker::Settings::default()
    };
    let _worker = tokio::spawn(async move {
        if let Err(error) = worker::run(settings).await {
            panic!("worker: {error}");
        }
    });

    // The auth service on the same database, for its sign-in metrics.
    let auth = auth_service::Application::build(auth_service::Settings {
        database_url: stack._db.url().to_owned(),
        redis_url: stack.redis_url.clone(),
        redis_prefix: stack.redis.prefix().to_owned(),
        auth_addr: "127.0.0.1:0".to_owned(),
        bcrypt_cost: 4,
        ..auth_service::Settings::default()
    })
    .await
    .unwrap();
    let auth_url = format!("http://127.0.0.1:{}", auth.port());
    tokio::spawn(auth.run());
    let login = stack
        .http
        .post(format!("{auth_url}/api/auth/login"))
        .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);

    // A socket that sees a job through to the end, and a job that fails.
    let user = stack.user(Role::User).await;
    let mut ws = stack.connect(0, &user).await;
    stack
        .submit(0, &user, json!({"type": "sleep", "data": {"ms": 300}}))
        .await;
    ws.until(|frame| frame["data"]["job"]["status"] == "completed")
        .await;
    stack
        .submit(
            0,
            &user,
            json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 1}),
        )
        .await;
    // Retried once, then completed.
    stack
        .submit(
            0,
            &user,
            json!({"type": "noop", "data": {"failTimes": 1}, "max_attempts": 2}),
        )
        .await;
    // A job for later keeps the queue gauges non-empty whatever the worker has done.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    stack
        .submit(0, &user, json!({"type": "noop", "run_at": later}))
        .await;

    let wanted: BTreeSet<String> = dashboard_queries()
        .iter()
        .chain(&alert_queries())
        .flat_map(|query| metric_names(query))
        // Exported by kube-state-metrics, not by Task Vault.
        .filter(|name| !name.starts_with("kube_"))
        .collect();
    // The worker's own metrics: on its listener.
    let from_worker = |name: &String| name.starts_with("worker_") || name == "queue_depth";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = exported(&stack.metrics(0).await);
        let worker_page = match stack
            .http
            .get(format!("http://{worker_metrics}/metrics"))
            .send()
            .await
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let on_worker = exported(&worker_page);
        let missing: Vec<&String> = wanted.iter().filter(|name| !have.contains(*name)).collect();
        let missing_on_worker: Vec<&String> = wanted
            .iter()
            .filter(|name| from_worker(name) && !on_worker.contains(*name))
            .collect();
        if missing.is_empty() && missing_on_worker.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deploy/ names metrics that no service exports: {missing:?}; \
             not on the worker's METRICS_ADDR page: {missing_on_worker:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for name in [
        "worker_job_start_latency_seconds_bucket",
        "worker_lease_reaps_total",
        "worker_jobs_total",
    ] {
        assert!(wanted.contains(name), "deploy/ no longer shows {name}");
    }
}
