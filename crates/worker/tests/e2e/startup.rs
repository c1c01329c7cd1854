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
