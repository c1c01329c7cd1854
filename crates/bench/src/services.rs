//! Starting, probing and stopping the real service binaries.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// One running service process. Killed when dropped.
pub struct Service {
    /// Binary name, e.g. `job-service`.
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `bin_dir/name` with exactly `envs` (plus `PATH`), its output appended to
    /// `log_dir/<name>.log`.
    pub fn spawn(
        bin_dir: &Path,
        name: &str,
        envs: &[(String, String)],
        port: u16,
        log_dir: &Path,
    ) -> Result<Self> {
        let binary = bin_dir.join(name);
        if !binary.is_file() {
            bail!(
                "{} does not exist; build it first: cargo build --release -p auth-service -p job-service -p worker -p bench",
                binary.display()
            );
        }
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let log_err = log.try_clone()?;
        let child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Self {
            name: name.to_owned(),
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            child,
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `GET /readyz` answers 200, failing if the process exits or `timeout` passes.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during start-up with {status}; log:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            let last = match client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(started.elapsed()),
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > timeout {
                bail!(
                    "{url} not ready after {timeout:?} (last: {last}); log:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the exit; then SIGKILL.
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(pid) = self.child.id() {
            // Our own child, by pid.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
                return Ok(status?);
            }
            eprintln!(
                "bench: {} ignored SIGTERM for {grace:?}; killing it",
                self.name
            );
        }
        self.child.kill().await?;
        Ok(self.child.wait().await?)
    }

    /// SIGKILL (if still running) and reap.
    pub async fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill().await;
        }
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
