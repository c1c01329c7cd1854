//! The `worker` binary refuses bad settings with one line naming them.

#[test]
fn a_bad_setting_is_named_and_exits_non_zero() {
    for (name, value) in [
        ("WORKER_CONCURRENCY", "many"),
        ("JOB_LEASE_SECS", "0"),
        ("WORKER_ADDR", "nowhere"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
            .env_clear()
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(name) && stderr.lines().count() == 1,
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_addr_metrics_leave_the_health_port() {
    let env = crate::harness::Env::start().await;
    let metrics_port = test_support::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let worker = env.worker(&[("METRICS_ADDR", &metrics_addr)]).await;
    let health = reqwest::get(format!("{}/metrics", worker.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 404, "not on WORKER_ADDR");
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let readyz = reqwest::get(format!("http://{metrics_addr}/readyz"))
        .await
        .unwrap();
    assert_eq!(
        readyz.status(),
        404,
        "the metrics listener serves only /metrics"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn production_requires_smtp_and_the_kubernetes_settings_start() {
    let env = crate::harness::Env::start().await;
    let mut config = test_support::kubernetes_config();
    config.retain(|(key, _)| !["WORKER_ADDR", "METRICS_ADDR", "RUST_LOG"].contains(&key.as_str()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .envs(config.clone())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SMTP_URL") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let smtp = test_support::smtp::SmtpCapture::start().await;
    let mut extra: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let smtp_url = smtp.url();
    extra.push(("SMTP_URL", &smtp_url));
    let mut worker = env.worker(&extra).await;
    worker.terminate(std::time::Duration::from_secs(10)).await;
}
