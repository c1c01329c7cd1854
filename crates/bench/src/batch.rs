//! `--batch`: how much faster is `POST /api/jobs/submit-batch` than single submits?
//!
//! Starts the auth service and the job service (no worker: this measures accepting jobs), signs
//! a user up, then, `--repeat` times, in alternating order so that neither always runs on a
//! warmer service:
//!
//! 1. **singles**: `--batch-size` `noop` jobs through `POST /api/jobs/submit` by `--clients`
//!    concurrent clients (keep-alive connections), timed from the first request to the last
//!    answer;
//! 2. **batch**: the same number of jobs in one `POST /api/jobs/submit-batch`, timed from
//!    sending to the answer.
//!
//! It reports accepted jobs per second of each and their ratio per round, and the medians of
//! the rounds (target: the batch accepts at least 10× the rate of single submits), with the
//! CPU the services, PostgreSQL, Redis and everything else used during each kind of round.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::cpu::{CpuUse, Watched};
use crate::load::Api;

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Jobs accepted per second by single submits.
    pub singles_per_sec: f64,
    /// Jobs accepted per second by one batch.
    pub batch_per_sec: f64,
    /// `batch_per_sec / singles_per_sec` (target ≥ 10).
    pub ratio: f64,
    /// Wall time of the single submits, ms.
    pub singles_ms: f64,
    /// Wall time of the batch request, ms.
    pub batch_ms: f64,
}

/// The report of `--batch`.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    /// Jobs per round in each mode.
    pub jobs: usize,
    /// Concurrent clients of the single submits.
    pub clients: usize,
    /// Logical CPUs of the machine.
    pub nproc: usize,
    /// `/proc/loadavg` at the start.
    pub loadavg_at_start: String,
    /// The rounds.
    pub rounds: Vec<Round>,
    /// Median of the rounds' `singles_per_sec`.
    pub median_singles_per_sec: f64,
    /// Median of the rounds' `batch_per_sec`.
    pub median_batch_per_sec: f64,
    /// Median of the rounds' `ratio`.
    pub median_ratio: f64,
    /// CPU used during the last round's single submits.
    pub singles_cpu: Option<CpuUse>,
    /// CPU used during the last round's batch.
    pub batch_cpu: Option<CpuUse>,
}

/// The target: a batch accepts jobs at least this many times faster.
const TARGET_RATIO: f64 = 10.0;

impl BatchReport {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "batch submit: {} jobs in one POST /api/jobs/submit-batch vs {} single POST /api/jobs/submit ({} clients); {} CPUs, load at start {}\n",
            self.jobs, self.jobs, self.clients, self.nproc, self.loadavg_at_start
        );
        for (n, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  round {}: singles {:.0} jobs/s ({:.0} ms) | batch {:.0} jobs/s ({:.0} ms) | x{:.1}\n",
                n + 1,
                r.singles_per_sec,
                r.singles_ms,
                r.batch_per_sec,
                r.batch_ms,
                r.ratio
            ));
        }
        let verdict = if self.median_ratio >= TARGET_RATIO {
            "ok"
        } else {
            "MISSED"
        };
        out.push_str(&format!(
            "  median of {}: singles {:.0} jobs/s | batch {:.0} jobs/s | ratio x{:.1} (target >= x{TARGET_RATIO:.0}: {verdict})\n",
            self.rounds.len(),
            self.median_singles_per_sec,
            self.median_batch_per_sec,
            self.median_ratio
        ));
        for (label, cpu) in [("singles", &self.singles_cpu), ("batch", &self.batch_cpu)] {
            if let Some(cpu) = cpu {
                let parts: Vec<String> = cpu
                    .percent_of_one_core
                    .iter()
                    .map(|(who, percent)| format!("{who} {percent:.0}%"))
                    .collect();
                out.push_str(&format!(
                    "  CPU during {label} (last round, % of one core): {}\n",
                    parts.join(", ")
                ));
            }
        }
        out
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The batch body of `n` `noop` jobs.
fn batch_body(n: usize) -> String {
    let jobs: Vec<serde_json::Value> = (0..n).map(|_| json!({"type": "noop"})).collect();
    json!({ "jobs": jobs }).to_string()
}

/// Sends one batch of `n` jobs; returns its wall time.
async fn one_batch(api: &Api, body: &str, n: usize) -> Result<Duration> {
    let t0 = Instant::now();
    let response = api.submit_batch_request(body.to_owned()).send().await?;
    let status = response.status();
    let text = response.text().await?;
    let elapsed = t0.elapsed();
    if status != StatusCode::CREATED {
        bail!("POST /api/jobs/submit-batch: expected 201, got {status}: {text:.300}");
    }
    let answer: serde_json::Value = serde_json::from_str(&text)?;
    let accepted = answer["jobs"].as_array().map_or(0, Vec::len);
    if accepted != n {
        bail!("the batch answer holds {accepted} jobs, not {n}");
    }
    Ok(elapsed)
}

/// Submits `n` single jobs with `clients` clients; returns their wall time.
async fn singles(api: &Api, n: usize, clients: usize) -> Result<Duration> {
    let run = api
        .submit_many(n, clients, Instant::now() + Duration::from_secs(120))
        .await?;
    if run.accepted.len() != n {
        bail!(
            "only {} of {n} single submits were accepted: {}",
            run.accepted.len(),
            run.errors.describe()
        );
    }
    Ok(run.elapsed)
}

/// Runs the rounds against the job service of `api`; `watched` names the processes whose CPU
/// is reported.
pub async fn run(
    api: &Api,
    watched: &Watched,
    jobs: usize,
    clients: usize,
    repeat: usize,
) -> Result<BatchReport> {
    if repeat == 0 || jobs == 0 || jobs > 1000 {
        bail!("--repeat must be at least 1 and --batch-size 1..=1000");
    }
    let body = batch_body(jobs);
    // Warm both paths (connections, prepared statements, scripts) before measuring.
    singles(api, clients.max(1) * 2, clients)
        .await
        .context("warm-up single submits")?;
    one_batch(api, &batch_body(10), 10)
        .await
        .context("warm-up batch")?;

    let mut rounds = Vec::new();
    let mut singles_cpu = None;
    let mut batch_cpu = None;
    for n in 1..=repeat {
        let batch_first = n % 2 == 0;
        let mut singles_time = Duration::ZERO;
        let mut batch_time = Duration::ZERO;
        for step in 0..2 {
            let batch_now = (step == 0) == batch_first;
            let before = watched.snapshot();
            if batch_now {
                eprintln!("bench: round {n}/{repeat}: one batch of {jobs} jobs");
                batch_time = one_batch(api, &body, jobs).await?;
                batch_cpu = Some(before.until(&watched.snapshot()));
            } else {
                eprintln!("bench: round {n}/{repeat}: {jobs} single submits, {clients} clients");
                singles_time = singles(api, jobs, clients).await?;
                singles_cpu = Some(before.until(&watched.snapshot()));
            }
            // Let the service settle (event fan-out, pool) between measurements.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let singles_per_sec = jobs as f64 / singles_time.as_secs_f64().max(1e-9);
        let batch_per_sec = jobs as f64 / batch_time.as_secs_f64().max(1e-9);
        rounds.push(Round {
            singles_per_sec,
            batch_per_sec,
            ratio: batch_per_sec / singles_per_sec.max(1e-9),
            singles_ms: singles_time.as_secs_f64() * 1000.0,
            batch_ms: batch_time.as_secs_f64() * 1000.0,
        });
    }
    Ok(BatchReport {
        jobs,
        clients,
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        loadavg_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        median_singles_per_sec: median(rounds.iter().map(|r| r.singles_per_sec).collect()),
        median_batch_per_sec: median(rounds.iter().map(|r| r.batch_per_sec).collect()),
        median_ratio: median(rounds.iter().map(|r| r.ratio).collect()),
        rounds,
        singles_cpu,
        batch_cpu,
    })
}
