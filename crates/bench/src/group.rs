//! `--submit-group`: how much does the group commit of single submits (`SUBMIT_GROUP_MAX`)
//! raise the rate of `POST /api/jobs/submit`?
//!
//! Starts the auth service and two job services on the same database and Redis prefix (no
//! worker: this measures accepting jobs): one with the default `SUBMIT_GROUP_MAX`, one with
//! `SUBMIT_GROUP_MAX=1` (each submit commits alone). Then, `--repeat` times, in alternating
//! order so that neither always runs second, `--jobs` `noop` jobs are submitted by `--clients`
//! concurrent clients to each (the submit phase's load), timed from the first request to the
//! last answer. It reports both rates per round, their ratio, the medians (target: grouped ≥ 2×
//! ungrouped), the average group size the grouped service reported, and the CPU each kind of
//! round used.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use tokio::time::Instant;

use crate::cpu::{CpuUse, Watched};
use crate::load::Api;

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Submits accepted per second with grouping.
    pub grouped_per_sec: f64,
    /// Submits accepted per second with `SUBMIT_GROUP_MAX=1`.
    pub alone_per_sec: f64,
    /// `grouped_per_sec / alone_per_sec` (target ≥ 2).
    pub ratio: f64,
    /// Submits refused (not counted as accepted) with grouping.
    pub grouped_refused: u64,
    /// Submits refused with `SUBMIT_GROUP_MAX=1`.
    pub alone_refused: u64,
}

/// The report of `--submit-group`.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// Submits per measurement.
    pub jobs: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Logical CPUs of the machine.
    pub nproc: usize,
    /// `/proc/loadavg` at the start.
    pub loadavg_at_start: String,
    /// `/proc/loadavg` at the end.
    pub loadavg_at_end: String,
    /// The rounds.
    pub rounds: Vec<Round>,
    /// Median of the rounds' `grouped_per_sec`.
    pub median_grouped_per_sec: f64,
    /// Median of the rounds' `alone_per_sec`.
    pub median_alone_per_sec: f64,
    /// Median of the rounds' `ratio`.
    pub median_ratio: f64,
    /// Jobs per insert in the grouped service, over the whole run (its `/metrics`).
    pub mean_group_size: Option<f64>,
    /// CPU used during the last grouped measurement.
    pub grouped_cpu: Option<CpuUse>,
    /// CPU used during the last ungrouped measurement.
    pub alone_cpu: Option<CpuUse>,
}

/// The target: grouping accepts at least this many times the submits.
const TARGET_RATIO: f64 = 2.0;

impl GroupReport {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "submit group commit: {} single POST /api/jobs/submit by {} clients, default SUBMIT_GROUP_MAX vs SUBMIT_GROUP_MAX=1; {} CPUs, load at start {}, at end {}\n",
            self.jobs, self.clients, self.nproc, self.loadavg_at_start, self.loadavg_at_end
        );
        for (n, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  round {}: grouped {:.0} submits/s ({} refused) | alone {:.0} submits/s ({} refused) | x{:.2}\n",
                n + 1,
                r.grouped_per_sec,
                r.grouped_refused,
                r.alone_per_sec,
                r.alone_refused,
                r.ratio
            ));
        }
        let verdict = if self.median_ratio >= TARGET_RATIO {
            "ok"
        } else {
            "MISSED"
        };
        out.push_str(&format!(
            "  median of {}: grouped {:.0} submits/s | alone {:.0} submits/s | ratio x{:.2} (target >= x{TARGET_RATIO:.0}: {verdict})\n",
            self.rounds.len(),
            self.median_grouped_per_sec,
            self.median_alone_per_sec,
            self.median_ratio
        ));
        if let Some(size) = self.mean_group_size {
            out.push_str(&format!(
                "  mean group size (grouped service): {size:.1} jobs per insert\n"
            ));
        }
        for (label, cpu) in [("grouped", &self.grouped_cpu), ("alone", &self.alone_cpu)] {
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

/// Submits `n` jobs with `clients` clients; returns the accepted rate and the refused
/// submits (each counted as not accepted: a loaded machine can make the ungrouped service
/// time out on its pool, which is part of what grouping fixes).
async fn rate(api: &Api, n: usize, clients: usize) -> Result<(f64, u64)> {
    let run = api
        .submit_many(n, clients, Instant::now() + Duration::from_secs(300))
        .await?;
    if run.accepted.is_empty() {
        bail!("no submit was accepted: {}", run.errors.describe());
    }
    let refused = (n - run.accepted.len()) as u64;
    if refused > 0 {
        eprintln!(
            "bench: {refused} of {n} submits refused: {}",
            run.errors.describe()
        );
    }
    Ok((
        run.accepted.len() as f64 / run.elapsed.as_secs_f64().max(1e-9),
        refused,
    ))
}

/// The mean of `jobs_submit_group_jobs_total / jobs_submit_groups_total` at `metrics_url`.
async fn mean_group_size(client: &reqwest::Client, metrics_url: &str) -> Option<f64> {
    let text = client
        .get(metrics_url)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(value("jobs_submit_group_jobs_total")? / value("jobs_submit_groups_total")?)
}

/// The two services under test: `grouped` and `alone` are the same user's API on each, and
/// `watched_*` their processes (with the auth service's).
pub struct Services<'a> {
    /// The service with grouping.
    pub grouped: &'a Api,
    /// Its `/metrics` URL.
    pub grouped_metrics: String,
    /// The service with `SUBMIT_GROUP_MAX=1`.
    pub alone: &'a Api,
    /// Processes watched during grouped rounds.
    pub watched_grouped: &'a Watched,
    /// Processes watched during ungrouped rounds.
    pub watched_alone: &'a Watched,
}

/// Runs the rounds.
pub async fn run(
    services: Services<'_>,
    jobs: usize,
    clients: usize,
    repeat: usize,
) -> Result<GroupReport> {
    if repeat == 0 || jobs == 0 {
        bail!("--repeat and --jobs must be at least 1");
    }
    let loadavg_at_start = loadavg();
    // Warm both (connections, prepared statements, scripts) before measuring.
    for api in [services.grouped, services.alone] {
        rate(api, clients * 4, clients).await?;
    }
    let mut rounds = Vec::new();
    let (mut grouped_cpu, mut alone_cpu) = (None, None);
    for n in 1..=repeat {
        let alone_first = n % 2 == 0;
        let (mut grouped, mut alone) = ((0.0, 0), (0.0, 0));
        for step in 0..2 {
            let alone_now = (step == 0) == alone_first;
            if alone_now {
                eprintln!("bench: round {n}/{repeat}: {jobs} submits, SUBMIT_GROUP_MAX=1");
                let before = services.watched_alone.snapshot();
                alone = rate(services.alone, jobs, clients).await?;
                alone_cpu = Some(before.until(&services.watched_alone.snapshot()));
            } else {
                eprintln!("bench: round {n}/{repeat}: {jobs} submits, grouped");
                let before = services.watched_grouped.snapshot();
                grouped = rate(services.grouped, jobs, clients).await?;
                grouped_cpu = Some(before.until(&services.watched_grouped.snapshot()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        rounds.push(Round {
            grouped_per_sec: grouped.0,
            alone_per_sec: alone.0,
            ratio: grouped.0 / alone.0.max(1e-9),
            grouped_refused: grouped.1,
            alone_refused: alone.1,
        });
    }
    Ok(GroupReport {
        jobs,
        clients,
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        loadavg_at_start,
        loadavg_at_end: loadavg(),
        median_grouped_per_sec: median(rounds.iter().map(|r| r.grouped_per_sec).collect()),
        median_alone_per_sec: median(rounds.iter().map(|r| r.alone_per_sec).collect()),
        median_ratio: median(rounds.iter().map(|r| r.ratio).collect()),
        mean_group_size: mean_group_size(&services.grouped.client, &services.grouped_metrics).await,
        rounds,
        grouped_cpu,
        alone_cpu,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
