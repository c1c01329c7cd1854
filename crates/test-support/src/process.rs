//! Running the real service binaries on free ports.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The path of another binary of the workspace, built next to `own` (a `CARGO_BIN_EXE_*` path
/// of the calling crate): `cargo nextest run --workspace` builds every binary into one
/// directory.
pub fn sibling_binary(own: &str, name: &str) -> String {
    let path = std::path::Path::new(own).with_file_name(name);
    assert!(
        path.exists(),
        "{} not built: run the workspace's tests (scripts/test), which build every binary",
        path.display()
    );
    path.display().to_string()
}

/// A running child process, killed when dropped.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
}

impl Running {
    /// Starts `binary` with `envs` (on top of a cleaned environment that keeps `PATH`).
    /// `base_url` is where it will listen.
    pub fn spawn(binary: &str, args: &[&str], envs: &[(String, String)], base_url: String) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("TEST_CHILD_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        Self { child, base_url }
    }

    /// Waits (up to `timeout`) until `GET {base_url}{path}` answers 200.
    pub async fn wait_until_ok(&mut self, path: &str, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited early with {status}", self.base_url);
            }
            if let Ok(response) = client.get(format!("{}{path}", self.base_url)).send().await
                && response.status().is_success()
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{}{path} not ready after {timeout:?}", self.base_url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGKILL and waits for the process to go.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id()?;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()
    }
}
