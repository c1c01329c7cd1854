//! The figures of one run, as a table (for people) and as JSON (for the README).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cpu::CpuUse;
use crate::stats::Latency;

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How it was asked to run.
    pub config: Config,
    /// Seconds from spawn to `/readyz` = 200, per service.
    pub startup_secs: BTreeMap<String, f64>,
    /// `created_at` → `started_at` of single `noop` jobs submitted to the idle system, right
    /// before phase "submit".
    pub idle_start: Option<Latency>,
    /// The machine's limits, measured right before phase "submit".
    pub limits: Option<crate::limits::Limits>,
    /// Phase "submit": N jobs with the worker running.
    pub submit: Option<SubmitReport>,
    /// Phase "read": `GET /api/jobs/{id}` under load.
    pub read: Option<ReadReport>,
    /// Phase "drain": a fresh worker empties a full queue.
    pub drain: Option<DrainReport>,
    /// Anything that went wrong or looked odd.
    pub notes: Vec<String>,
}

/// Facts about the machine.
#[derive(Debug, Default, Serialize)]
pub struct Machine {
    /// Logical CPUs available to the benchmark.
    pub nproc: usize,
    /// `/proc/cpuinfo` model name.
    pub cpu_model: String,
    /// `/proc/meminfo` MemTotal, MiB.
    pub mem_total_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` when the run started (other work on the machine skews the figures).
    pub loadavg_at_start: String,
    /// `/proc/loadavg` when it ended.
    pub loadavg_at_end: String,
    /// PostgreSQL server version.
    pub postgres_version: String,
    /// Directory of the service binaries.
    pub binaries: String,
    /// Whether those are release builds (the directory is `…/release`).
    pub release_build: bool,
}

/// The run's parameters.
#[derive(Debug, Default, Serialize)]
pub struct Config {
    /// Jobs in phase "submit".
    pub jobs: usize,
    /// Concurrent HTTP clients.
    pub clients: usize,
    /// Jobs in phase "drain".
    pub drain_jobs: usize,
    /// Length of phase "read".
    pub read_secs: u64,
    /// `WORKER_CONCURRENCY` given to the worker (`None`: the worker's default).
    pub worker_concurrency: Option<usize>,
    /// Global time limit.
    pub timeout_secs: u64,
    /// Extra environment given to the services (`--env`).
    pub extra_env: Vec<String>,
}

/// Phase "submit".
#[derive(Debug, Default, Serialize)]
pub struct SubmitReport {
    /// Jobs asked for.
    pub requested: usize,
    /// 201 answers.
    pub accepted: usize,
    /// Failed submissions by kind.
    pub errors: BTreeMap<String, u64>,
    /// First request to last answer.
    pub submit_secs: f64,
    /// Accepted submissions per second.
    pub accepted_per_sec: f64,
    /// Latency of `POST /api/jobs/submit`.
    pub submit_latency: Latency,
    /// Jobs not yet final in PostgreSQL when the last submission was answered.
    pub backlog_at_submit_end: u64,
    /// Largest backlog seen while submitting (sampled every 200 ms).
    pub max_backlog: u64,
    /// Accepted jobs found `completed` in PostgreSQL.
    pub completed: usize,
    /// Whether every accepted job completed within the time limit.
    pub all_completed: bool,
    /// Accepted jobs `completed` by the time the last submission was answered (within the
    /// load window).
    pub completed_in_window: usize,
    /// The same, in percent of the accepted jobs.
    pub completed_in_window_pct: f64,
    /// First submission sent → last `finished_at`.
    pub end_to_end_secs: f64,
    /// Completed jobs per second over that span.
    pub completed_per_sec: f64,
    /// Last `finished_at` minus the time the last submission was answered.
    pub completion_lag_secs: f64,
    /// `finished_at` − time the submission was sent, per job.
    pub submit_to_completed: Latency,
    /// The stages of submit → completed, per job.
    pub stages: Stages,
    /// Jobs per status at the end of the phase.
    pub status_counts: BTreeMap<String, u64>,
    /// CPU per process while submitting.
    pub cpu: Option<CpuUse>,
    /// PostgreSQL work per job.
    pub pg: Option<PgWork>,
}

/// Where a job's submit → completed time goes: request sent → submit handled (`created_at`:
/// connection, HTTP, token) → claim recorded (`started_at`: the commit, the index write, the
/// wait in the ready set, the claim) → outcome recorded (`finished_at`: the run, the wait for
/// the outcome batch).
#[derive(Debug, Default, Serialize)]
pub struct Stages {
    /// Sent → `created_at`.
    pub sent_to_created: Latency,
    /// `created_at` → `started_at`.
    pub created_to_started: Latency,
    /// `started_at` → `finished_at`.
    pub started_to_finished: Latency,
}

impl Stages {
    /// The stages of the `accepted` jobs found in `lives`.
    pub fn of(
        accepted: &[crate::load::Accepted],
        lives: &std::collections::HashMap<uuid::Uuid, crate::db::LifeTimes>,
    ) -> Self {
        let us = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
            u64::try_from((to - from).num_microseconds().unwrap_or(0)).unwrap_or(0)
        };
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for job in accepted {
            if let Some(life) = lives.get(&job.id) {
                a.push(us(job.sent_at, life.created));
                b.push(us(life.created, life.started));
                c.push(us(life.started, life.finished));
            }
        }
        Self {
            sent_to_created: Latency::from_micros(&mut a),
            created_to_started: Latency::from_micros(&mut b),
            started_to_finished: Latency::from_micros(&mut c),
        }
    }

    /// One line: p50 / p99 of each stage.
    pub fn describe(&self) -> String {
        format!(
            "stages p50 / p99: sent→created {:.1} / {:.1} ms, created→started {:.1} / {:.1} ms, started→finished {:.1} / {:.1} ms",
            self.sent_to_created.p50_ms,
            self.sent_to_created.p99_ms,
            self.created_to_started.p50_ms,
            self.created_to_started.p99_ms,
            self.started_to_finished.p50_ms,
            self.started_to_finished.p99_ms
        )
    }
}

/// Phase "read".
#[derive(Debug, Default, Serialize)]
pub struct ReadReport {
    /// How long it ran.
    pub secs: f64,
    /// Successful reads.
    pub ok: usize,
    /// Failed reads by kind.
    pub errors: BTreeMap<String, u64>,
    /// Successful reads per second.
    pub req_per_sec: f64,
    /// Latency of successful reads.
    pub latency: Latency,
    /// CPU per process.
    pub cpu: Option<CpuUse>,
    /// PostgreSQL work per request.
    pub pg: Option<PgWork>,
}

/// Phase "drain".
#[derive(Debug, Default, Serialize)]
pub struct DrainReport {
    /// Jobs queued (accepted) while no worker ran.
    pub jobs: usize,
    /// Failed submissions by kind.
    pub enqueue_errors: BTreeMap<String, u64>,
    /// Accepted submissions per second with no worker running.
    pub enqueue_per_sec: f64,
    /// Latency of those submissions.
    pub enqueue_latency: Latency,
    /// Exit status of the stopped worker (SIGTERM).
    pub stopped_worker_exit: String,
    /// Of those jobs, how many ended `completed`.
    pub completed: u64,
    /// Whether all of them did within the time limit.
    pub all_completed: bool,
    /// Worker spawned → the poll (every 50 ms) saw no unfinished job.
    pub wall_secs: f64,
    /// `jobs / wall_secs`: the headline figure, start-up included.
    pub jobs_per_sec: f64,
    /// Worker spawned → first `finished_at` (start-up and first claim).
    pub first_completion_after_secs: f64,
    /// First → last `finished_at` in PostgreSQL.
    pub pg_span_secs: f64,
    /// `completed / pg_span_secs`: steady-state rate.
    pub pg_jobs_per_sec: f64,
    /// CPU per process while draining.
    pub cpu: Option<CpuUse>,
    /// PostgreSQL work per job.
    pub pg: Option<PgWork>,
}

/// Work done by PostgreSQL during a phase, from server-wide counters (other databases on the
/// same server add to them; the benchmark's own polling does not write).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PgWork {
    /// Transactions that wrote, per job (or per request in phase read).
    pub write_transactions_per_unit: f64,
    /// WAL bytes written per unit.
    pub wal_bytes_per_unit: f64,
    /// Connections open to the benchmark's database at the end of the phase.
    pub connections_at_end: i64,
}

/// One line of the summary.
struct Row {
    figure: &'static str,
    value: String,
    target: String,
    verdict: String,
}

fn at_least(figure: &'static str, value: f64, target: f64, unit: &str) -> Row {
    let ratio = if target > 0.0 { value / target } else { 0.0 };
    Row {
        figure,
        value: format!("{value:.0} {unit}"),
        target: format!("≥ {target:.0} {unit}"),
        verdict: format!("{ratio:.2}× {}", if ratio >= 1.0 { "ok" } else { "BELOW" }),
    }
}

fn at_most_ms(figure: &'static str, value: f64, target: f64) -> Row {
    let ratio = if value > 0.0 {
        target / value
    } else {
        f64::INFINITY
    };
    Row {
        figure,
        value: format!("{value:.2} ms"),
        target: format!("≤ {target:.0} ms"),
        verdict: format!(
            "{ratio:.2}× {}",
            if value <= target { "ok" } else { "ABOVE" }
        ),
    }
}

fn info_ms(figure: &'static str, value: f64) -> Row {
    Row {
        figure,
        value: format!("{value:.2} ms"),
        target: "—".to_owned(),
        verdict: String::new(),
    }
}

fn info(figure: &'static str, value: String) -> Row {
    Row {
        figure,
        value,
        target: "—".to_owned(),
        verdict: String::new(),
    }
}

/// Targets from the issue (2-core machine).
pub const TARGET_SUBMIT_PER_SEC: f64 = 4500.0;
/// Reads per second with 64 connections.
pub const TARGET_READ_PER_SEC: f64 = 12000.0;
/// p99 of reads, ms.
pub const TARGET_READ_P99_MS: f64 = 10.0;
/// Worker drain, jobs per second.
pub const TARGET_DRAIN_PER_SEC: f64 = 15000.0;
/// Submit → completed p99 under the submit load, ms (issue 9 point 7).
pub const TARGET_SUBMIT_TO_COMPLETED_P99_MS: f64 = 100.0;
/// A noop job submitted to an idle system starts within this, ms (issue 9 point 7).
pub const TARGET_IDLE_START_MS: f64 = 5.0;
/// Accepted jobs completed within the load window, percent (issue 9 point 7).
pub const TARGET_COMPLETED_IN_WINDOW_PCT: f64 = 95.0;

impl Report {
    /// The human-readable summary.
    pub fn table(&self) -> String {
        let mut rows = Vec::new();
        if let Some(idle) = &self.idle_start {
            rows.push(at_most_ms(
                "idle: noop created→started p50",
                idle.p50_ms,
                TARGET_IDLE_START_MS,
            ));
        }
        if let Some(s) = &self.submit {
            rows.push(at_least(
                "submit: accepted/s",
                s.accepted_per_sec,
                TARGET_SUBMIT_PER_SEC,
                "/s",
            ));
            rows.push(at_least(
                "submit: completed/s end to end",
                s.completed_per_sec,
                TARGET_SUBMIT_PER_SEC,
                "/s",
            ));
            rows.push(info_ms("submit: POST p50", s.submit_latency.p50_ms));
            rows.push(info_ms("submit: POST p99", s.submit_latency.p99_ms));
            rows.push(info_ms(
                "submit→completed p50",
                s.submit_to_completed.p50_ms,
            ));
            rows.push(at_most_ms(
                "submit→completed p99",
                s.submit_to_completed.p99_ms,
                TARGET_SUBMIT_TO_COMPLETED_P99_MS,
            ));
            rows.push(Row {
                figure: "submit: completed within the load window",
                value: format!("{:.1} %", s.completed_in_window_pct),
                target: format!("≥ {TARGET_COMPLETED_IN_WINDOW_PCT:.0} %"),
                verdict: format!(
                    "{:.2}× {}",
                    s.completed_in_window_pct / TARGET_COMPLETED_IN_WINDOW_PCT,
                    if s.completed_in_window_pct >= TARGET_COMPLETED_IN_WINDOW_PCT {
                        "ok"
                    } else {
                        "BELOW"
                    }
                ),
            });
            if let Some(limits) = &self.limits {
                rows.push(info(
                    "submit: accepted/s ÷ PG commits/s",
                    format!(
                        "{:.2}",
                        s.accepted_per_sec / limits.pg_commits_per_sec.max(1e-9)
                    ),
                ));
            }
            rows.push(info(
                "submit: backlog at end / max",
                format!("{} / {}", s.backlog_at_submit_end, s.max_backlog),
            ));
            rows.push(info(
                "submit: completed / accepted / errors",
                format!(
                    "{} / {} / {}",
                    s.completed,
                    s.accepted,
                    s.errors.values().sum::<u64>()
                ),
            ));
        }
        if let Some(r) = &self.read {
            rows.push(at_least(
                "read: GET /api/jobs/{id} req/s",
                r.req_per_sec,
                TARGET_READ_PER_SEC,
                "/s",
            ));
            rows.push(info_ms("read: p50", r.latency.p50_ms));
            rows.push(at_most_ms(
                "read: p99",
                r.latency.p99_ms,
                TARGET_READ_P99_MS,
            ));
            rows.push(info_ms("read: max", r.latency.max_ms));
            rows.push(info(
                "read: ok / errors",
                format!("{} / {}", r.ok, r.errors.values().sum::<u64>()),
            ));
        }
        if let Some(d) = &self.drain {
            rows.push(info(
                "drain: enqueue (no worker) /s",
                format!("{:.0} /s", d.enqueue_per_sec),
            ));
            rows.push(at_least(
                "drain: jobs/s (spawn → all done)",
                d.jobs_per_sec,
                TARGET_DRAIN_PER_SEC,
                "/s",
            ));
            rows.push(info(
                "drain: jobs/s (first → last finish)",
                format!("{:.0} /s", d.pg_jobs_per_sec),
            ));
            rows.push(info(
                "drain: completed / queued",
                format!("{} / {} in {:.2} s", d.completed, d.jobs, d.wall_secs),
            ));
        }
        let w0 = rows
            .iter()
            .map(|r| r.figure.chars().count())
            .max()
            .unwrap_or(0);
        let w1 = rows
            .iter()
            .map(|r| r.value.chars().count())
            .max()
            .unwrap_or(0);
        let w2 = rows
            .iter()
            .map(|r| r.target.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        let m = &self.machine;
        let c = &self.config;
        let _ = writeln!(
            out,
            "Task Vault bench — {} CPU ({}), {} MiB, Linux {}, PostgreSQL {}, load {} → {}",
            m.nproc,
            m.cpu_model,
            m.mem_total_mib,
            m.kernel,
            m.postgres_version,
            m.loadavg_at_start,
            m.loadavg_at_end
        );
        let _ = writeln!(
            out,
            "jobs={} clients={} drain_jobs={} read_secs={} WORKER_CONCURRENCY={} binaries={}{}",
            c.jobs,
            c.clients,
            c.drain_jobs,
            c.read_secs,
            c.worker_concurrency
                .map_or_else(|| "default".to_owned(), |n| n.to_string()),
            m.binaries,
            if m.release_build {
                ""
            } else {
                " (NOT a release build)"
            }
        );
        let _ = writeln!(
            out,
            "{:w0$}  {:>w1$}  {:w2$}  ratio",
            "figure", "measured", "target"
        );
        for r in &rows {
            let _ = writeln!(
                out,
                "{:w0$}  {:>w1$}  {:w2$}  {}",
                r.figure, r.value, r.target, r.verdict
            );
        }
        if let Some(s) = &self.submit {
            let _ = writeln!(out, "submit: {}", s.stages.describe());
        }
        if let Some(l) = &self.limits {
            let _ = writeln!(
                out,
                "Machine limits (same run, before phase submit): PostgreSQL {:.0} single-row commits/s from {} connections; Redis {:.0} round trips/s on one connection (p50 {:.3} ms, p99 {:.3} ms)",
                l.pg_commits_per_sec,
                crate::limits::PG_CLIENTS,
                l.redis_round_trips_per_sec,
                l.redis_round_trip.p50_ms,
                l.redis_round_trip.p99_ms
            );
        }
        let phases = [
            ("submit", self.submit.as_ref().and_then(|s| s.cpu.as_ref())),
            ("read", self.read.as_ref().and_then(|r| r.cpu.as_ref())),
            ("drain", self.drain.as_ref().and_then(|d| d.cpu.as_ref())),
        ];
        for (phase, cpu) in phases {
            if let Some(cpu) = cpu {
                let tracked: f64 = cpu
                    .percent_of_one_core
                    .iter()
                    .filter(|(k, _)| k.as_str() != crate::cpu::MACHINE)
                    .map(|(_, p)| p)
                    .sum();
                let machine = cpu
                    .percent_of_one_core
                    .get(crate::cpu::MACHINE)
                    .copied()
                    .unwrap_or(0.0);
                let mut parts: Vec<String> = cpu
                    .percent_of_one_core
                    .iter()
                    .filter(|(_, p)| **p >= 0.5)
                    .filter(|(k, _)| k.as_str() != crate::cpu::MACHINE)
                    .map(|(k, p)| format!("{k} {p:.0}%"))
                    .collect();
                let other = (machine - tracked).max(0.0);
                parts.push(format!(
                    "other processes {other:.0}% (machine {machine:.0}% of {}00%){}",
                    self.machine.nproc,
                    if other > 25.0 {
                        " — busy machine: figures understate"
                    } else {
                        ""
                    }
                ));
                let _ = writeln!(
                    out,
                    "CPU during {phase} (% of one core): {}",
                    parts.join(", ")
                );
            }
        }
        let pg = [
            ("submit", "job", self.submit.as_ref().and_then(|s| s.pg)),
            ("read", "request", self.read.as_ref().and_then(|r| r.pg)),
            ("drain", "job", self.drain.as_ref().and_then(|d| d.pg)),
        ];
        for (phase, unit, work) in pg {
            if let Some(w) = work {
                let _ = writeln!(
                    out,
                    "PostgreSQL during {phase} (server-wide, per {unit}): {:.2} writing transactions, {:.0} WAL bytes; {} connections to the bench database",
                    w.write_transactions_per_unit, w.wal_bytes_per_unit, w.connections_at_end
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}
