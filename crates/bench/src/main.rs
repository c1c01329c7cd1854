//! `bench`: Task Vault's load benchmark.
//!
//! Starts the real release binaries (auth service, job service, worker) from the directory of
//! its own executable on a fresh PostgreSQL database and a fresh Redis key prefix, signs a user
//! up over HTTP, and measures three phases:
//!
//! 1. **submit**: `--jobs` `noop` jobs submitted by `--clients` concurrent clients while the
//!    worker runs: accepted/s, end-to-end completions/s (first submit → last `completed` in
//!    PostgreSQL) and submit-to-completed latency;
//! 2. **read**: `GET /api/jobs/{id}` on random submitted jobs for `--read-secs`: req/s and
//!    latency;
//! 3. **drain**: the worker stopped, `--drain-jobs` jobs queued, then a fresh worker started and
//!    timed until PostgreSQL shows all of them `completed`.
//!
//! ```sh
//! cargo build --release -p auth-service -p job-service -p worker -p bench
//! target/release/bench --jobs 20000 --clients 64 --drain-jobs 50000 --read-secs 10
//! ```
//!
//! `--login-storm` measures instead whether a login storm starves the auth service's other
//! routes (see [`storm`]):
//!
//! ```sh
//! target/release/bench --login-storm            # BCRYPT_COST=12, 3 rounds, median reported
//! ```
//!
//! `--batch` compares one `POST /api/jobs/submit-batch` of `--batch-size` jobs with as many
//! single submits, in the same run (see [`batch`]):
//!
//! ```sh
//! target/release/bench --batch                   # 1,000 jobs, 3 rounds, median reported
//! ```
//!
//! `--submit-group` compares single submits with and without their group commit
//! (`SUBMIT_GROUP_MAX`), in the same run (see [`group`]):
//!
//! ```sh
//! target/release/bench --submit-group           # 20,000 submits each way, 64 clients, 3 rounds
//! ```
//!
//! Everything stays on 127.0.0.1; every phase is bounded by `--timeout-secs`; the services are
//! killed and the database dropped on every exit path (Ctrl-C included).

mod batch;
mod cpu;
mod db;
mod group;
mod idle;
mod limits;
mod load;
mod report;
mod services;
mod stats;
mod storm;
mod ws;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cpu::Watched;
use crate::db::Db;
use crate::load::Api;
use crate::report::{Config, DrainReport, Machine, ReadReport, Report, SubmitReport};
use crate::services::Service;
use crate::stats::Latency;

/// Load benchmark of Task Vault: drives the real HTTP API of freshly started release binaries.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Jobs to submit in phase "submit" (0 skips it, and phase "read" with it).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Concurrent HTTP clients (connections).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Jobs to queue for phase "drain" (0 skips it).
    #[arg(long, default_value_t = 50_000)]
    drain_jobs: usize,
    /// Length of phase "read" in seconds (0 skips it).
    #[arg(long, default_value_t = 10)]
    read_secs: u64,
    /// `WORKER_CONCURRENCY` for the worker process (default: the worker's own default, so the
    /// benchmark measures what ships).
    #[arg(long)]
    worker_concurrency: Option<usize>,
    /// Hard limit for the whole run; every phase stops by then.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Print the table on stderr and only the JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Directory of the service binaries (default: the directory of this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the services' logs go (default: `<bin dir>/bench-logs`).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Extra environment for the services, `KEY=VALUE`, repeatable (e.g. `DATABASE_POOL_SIZE=32`).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    extra_env: Vec<String>,
    /// Instead of the job phases: start only the auth service (at `BCRYPT_COST=12`) and measure
    /// `GET /api/auth/me` unloaded and during a login storm, against the machine's hashing
    /// bound measured in the same run.
    #[arg(long)]
    login_storm: bool,
    /// Login-storm mode: connections hammering `POST /api/auth/login`.
    #[arg(long, default_value_t = 8)]
    storm_connections: usize,
    /// Login-storm mode: length of each measurement window.
    #[arg(long, default_value_t = 10)]
    storm_secs: u64,
    /// Login-storm and batch modes: rounds (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Instead of the job phases: compare one `POST /api/jobs/submit-batch` of `--batch-size`
    /// jobs with as many single submits by `--clients` clients, `--repeat` rounds (no worker).
    #[arg(long)]
    batch: bool,
    /// `--batch`: jobs per batch (1..=1000), and single submits per round.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Instead of the job phases: `--jobs` single submits by `--clients` clients to a job
    /// service with the default `SUBMIT_GROUP_MAX` and to one with `SUBMIT_GROUP_MAX=1`,
    /// `--repeat` rounds (no worker).
    #[arg(long)]
    submit_group: bool,
    /// Benchmark the real-time gateway (`GET /api/ws`) instead of the HTTP API.
    #[arg(long)]
    ws: bool,
    /// `--ws`: sockets opened against one replica.
    #[arg(long, default_value_t = 10_000)]
    ws_sockets: usize,
    /// `--ws`: WebSocket handshakes in flight.
    #[arg(long, default_value_t = 256)]
    ws_concurrency: usize,
    /// `--ws`: connected users receiving job events.
    #[arg(long, default_value_t = 1000)]
    ws_users: usize,
    /// `--ws`: job events per second (then doubled until p99 passes 50 ms).
    #[arg(long, default_value_t = 1000)]
    ws_event_rate: u32,
    /// `--ws`: seconds of events at `--ws-event-rate`.
    #[arg(long, default_value_t = 5)]
    ws_event_secs: u64,
    /// `--ws`: members of the fan-out room.
    #[arg(long, default_value_t = 1000)]
    ws_room_members: usize,
    /// `--ws`: messages sent into the room.
    #[arg(long, default_value_t = 50)]
    ws_room_messages: usize,
    /// `--ws`: runs of every phase (the median is reported).
    #[arg(long, default_value_t = 3)]
    ws_runs: usize,
    /// `--ws`: keep the connect phase's sockets open this many seconds after measuring (to look
    /// at the server with `/proc/<pid>/smaps` or a debugger; its pid is printed).
    #[arg(long, default_value_t = 0)]
    ws_hold_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The processes of one run.
struct Stack {
    bin_dir: PathBuf,
    log_dir: PathBuf,
    env: Vec<(String, String)>,
    auth: Option<Service>,
    jobs: Option<Service>,
    worker: Option<Service>,
    /// Workers already stopped, kept so their pid is never reused by us.
    stopped: Vec<Service>,
}

impl Stack {
    fn all(&mut self) -> impl Iterator<Item = &mut Service> {
        self.auth
            .iter_mut()
            .chain(self.jobs.iter_mut())
            .chain(self.worker.iter_mut())
    }

    fn watched(&self) -> Watched {
        let pids = [
            ("auth-service", &self.auth),
            ("job-service", &self.jobs),
            ("worker", &self.worker),
        ]
        .into_iter()
        .filter_map(|(label, s)| Some((label.to_owned(), s.as_ref()?.pid()?)))
        .collect();
        Watched { pids }
    }

    /// Starts `name` listening on a fresh port (its `*_ADDR` variable) and waits for `/readyz`.
    async fn start(&mut self, name: &str, client: &reqwest::Client) -> Result<(Service, Duration)> {
        let port = test_support::free_port();
        let addr_var = match name {
            "auth-service" => "AUTH_ADDR",
            "job-service" => "JOBS_ADDR",
            _ => "WORKER_ADDR",
        };
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != addr_var);
        env.push((addr_var.to_owned(), format!("127.0.0.1:{port}")));
        if name == "job-service" {
            let auth_url = self
                .auth
                .as_ref()
                .map(|a| a.base_url.clone())
                .unwrap_or_default();
            env.retain(|(k, _)| k != "AUTH_URL");
            env.push(("AUTH_URL".to_owned(), auth_url));
        }
        let mut service = Service::spawn(&self.bin_dir, name, &env, port, &self.log_dir)?;
        let ready = service.wait_ready(client, Duration::from_secs(60)).await?;
        Ok((service, ready))
    }

    /// Kills every process still running.
    async fn shutdown(&mut self) {
        for service in self.all() {
            service.kill().await;
        }
        for service in &mut self.stopped {
            service.kill().await;
        }
    }

    /// Notes about processes that died, with the end of their logs.
    fn casualties(&mut self) -> Vec<String> {
        self.all()
            .filter_map(|s| {
                let status = s.exited()?;
                Some(format!(
                    "{} exited with {status}; log tail:\n{}",
                    s.name,
                    s.log_tail(20)
                ))
            })
            .collect()
    }
}

async fn run(args: Args) -> Result<()> {
    if args.ws {
        return run_ws(args).await;
    }
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("the executable has no parent directory"))?,
    };
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| bin_dir.join("bench-logs"));
    std::fs::create_dir_all(&log_dir).with_context(|| format!("create {}", log_dir.display()))?;
    for name in ["auth-service", "job-service", "worker"] {
        let _ = std::fs::remove_file(log_dir.join(format!("{name}.log")));
    }

    let mut report = Report {
        machine: machine_facts(&bin_dir),
        config: Config {
            jobs: args.jobs,
            clients: args.clients,
            drain_jobs: args.drain_jobs,
            read_secs: args.read_secs,
            worker_concurrency: args.worker_concurrency,
            timeout_secs: args.timeout_secs,
            extra_env: args.extra_env.clone(),
        },
        ..Report::default()
    };
    if !report.machine.release_build {
        report.notes.push(format!(
            "{} is not a release directory: figures are not representative",
            bin_dir.display()
        ));
    }

    eprintln!("bench: creating a fresh database and Redis prefix");
    let db = test_support::TestDb::create().await;
    let redis = test_support::TestRedis::new();
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", test_support::redis_url()),
        ("REDIS_PREFIX", redis.prefix().to_owned()),
        ("REQUIRE_EMAIL_VERIFICATION", "false".to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
        // The abuse limits would cap the load itself: off, explicitly.
        ("SUBMIT_RATE_PER_SEC", "0".to_owned()),
        ("MAX_UNFINISHED_JOBS_PER_USER", "0".to_owned()),
        ("ACCESS_TOKEN_TTL_SECS", "3600".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(concurrency) = args.worker_concurrency {
        env.push(("WORKER_CONCURRENCY".to_owned(), concurrency.to_string()));
    }
    for pair in &args.extra_env {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {pair}: expected KEY=VALUE"))?;
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let storm_cost = 12;
    if args.login_storm && !args.extra_env.iter().any(|e| e.starts_with("BCRYPT_COST=")) {
        // The production cost: the storm is about what bcrypt really costs.
        env.retain(|(k, _)| k != "BCRYPT_COST");
        env.push(("BCRYPT_COST".to_owned(), storm_cost.to_string()));
    }
    let mut stack = Stack {
        bin_dir,
        log_dir: log_dir.clone(),
        env,
        auth: None,
        jobs: None,
        worker: None,
        stopped: Vec::new(),
    };
    if args.batch {
        let outcome = batch_mode(&args, &mut stack).await;
        return finish_mode(outcome, stack, redis, db, args.json).await;
    }
    if args.submit_group {
        let outcome = group_mode(&args, &mut stack).await;
        return finish_mode(outcome, stack, redis, db, args.json).await;
    }
    if args.login_storm {
        let outcome = login_storm(&args, &mut stack).await;
        return finish_mode(outcome, stack, redis, db, args.json).await;
    }

    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let outcome = tokio::select! {
        r = tokio::time::timeout_at(deadline, phases(&args, &mut stack, db.url(), deadline, &mut report)) => {
            r.unwrap_or_else(|_| Err(anyhow!("--timeout-secs {} reached", args.timeout_secs)))
        }
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if outcome.is_err() {
        report.notes.extend(stack.casualties());
    }
    stack.shutdown().await;
    report.machine.loadavg_at_end = read_trimmed("/proc/loadavg");
    drop(stack);
    drop(redis);
    drop(db);

    let table = report.table();
    if args.json {
        eprint!("{table}");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{table}");
    }
    eprintln!("bench: service logs in {}", log_dir.display());
    outcome
}

/// A mode's report: a human-readable table, and JSON with `--json`.
trait ModeReport: serde::Serialize {
    fn table(&self) -> String;
}

impl ModeReport for batch::BatchReport {
    fn table(&self) -> String {
        batch::BatchReport::table(self)
    }
}

impl ModeReport for group::GroupReport {
    fn table(&self) -> String {
        group::GroupReport::table(self)
    }
}

impl ModeReport for storm::StormReport {
    fn table(&self) -> String {
        storm::StormReport::table(self)
    }
}

/// Ends a measurement mode: stops the services, drops the database and the Redis prefix, then
/// prints the report (the table on stdout, or on stderr with the JSON on stdout).
async fn finish_mode<R: ModeReport>(
    outcome: Result<R>,
    mut stack: Stack,
    redis: test_support::TestRedis,
    db: test_support::TestDb,
    json: bool,
) -> Result<()> {
    stack.shutdown().await;
    drop(stack);
    drop(redis);
    drop(db);
    let report = outcome?;
    if json {
        eprint!("{}", report.table());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// `--login-storm`: the auth service alone, measured by [`storm::run`].
async fn login_storm(args: &Args, stack: &mut Stack) -> Result<storm::StormReport> {
    let client = load::http_client(args.clients)?;
    let (service, _) = stack.start("auth-service", &client).await?;
    let auth_url = service.base_url.clone();
    stack.auth = Some(service);
    let cost = stack
        .env
        .iter()
        .find(|(k, _)| k == "BCRYPT_COST")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(12);
    let run = storm::run(
        &auth_url,
        cost,
        args.clients,
        args.storm_connections,
        args.storm_secs,
        args.repeat,
    );
    tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(args.timeout_secs), run) => {
            r.unwrap_or_else(|_| Err(anyhow!("--timeout-secs {} reached", args.timeout_secs)))
        }
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    }
}

/// `--batch`: the auth and job services only, measured by [`batch::run`].
async fn batch_mode(args: &Args, stack: &mut Stack) -> Result<batch::BatchReport> {
    let client = load::http_client(args.clients)?;
    let (auth, _) = stack.start("auth-service", &client).await?;
    let auth_url = auth.base_url.clone();
    stack.auth = Some(auth);
    let (jobs, _) = stack.start("job-service", &client).await?;
    let jobs_url = jobs.base_url.clone();
    stack.jobs = Some(jobs);
    let api = Api::sign_in(client, &auth_url, &jobs_url).await?;
    let watched = stack.watched();
    let run = batch::run(&api, &watched, args.batch_size, args.clients, args.repeat);
    tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(args.timeout_secs), run) => {
            r.unwrap_or_else(|_| Err(anyhow!("--timeout-secs {} reached", args.timeout_secs)))
        }
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    }
}

/// `--submit-group`: the auth service and two job services, grouped and not, measured by
/// [`group::run`]. The ungrouped one is kept in `stack.stopped` (killed with the rest).
async fn group_mode(args: &Args, stack: &mut Stack) -> Result<group::GroupReport> {
    let client = load::http_client(args.clients)?;
    let (auth, _) = stack.start("auth-service", &client).await?;
    let auth_url = auth.base_url.clone();
    stack.auth = Some(auth);
    // The grouped service gets `SUBMIT_GROUP_MAX` from `--env`, else its default.
    let base_env = stack.env.clone();
    let (grouped, _) = stack.start("job-service", &client).await?;
    stack.env.retain(|(k, _)| k != "SUBMIT_GROUP_MAX");
    stack
        .env
        .push(("SUBMIT_GROUP_MAX".to_owned(), "1".to_owned()));
    let started = stack.start("job-service", &client).await;
    stack.env = base_env;
    let (alone, _) = started?;
    let grouped_url = grouped.base_url.clone();
    let alone_url = alone.base_url.clone();
    let pid = |s: &Service| s.pid().map(|p| vec![("job-service".to_owned(), p)]);
    let auth_pid: Vec<(String, u32)> = stack.watched().pids;
    let watched_grouped = Watched {
        pids: [auth_pid.clone(), pid(&grouped).unwrap_or_default()].concat(),
    };
    let watched_alone = Watched {
        pids: [auth_pid, pid(&alone).unwrap_or_default()].concat(),
    };
    stack.jobs = Some(grouped);
    stack.stopped.push(alone);
    let grouped_api = Api::sign_in(client, &auth_url, &grouped_url).await?;
    let alone_api = grouped_api.with_jobs_url(&alone_url);
    let services = group::Services {
        grouped: &grouped_api,
        grouped_metrics: format!("{grouped_url}/metrics"),
        alone: &alone_api,
        watched_grouped: &watched_grouped,
        watched_alone: &watched_alone,
    };
    let run = group::run(services, args.jobs, args.clients, args.repeat);
    tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(args.timeout_secs), run) => {
            r.unwrap_or_else(|_| Err(anyhow!("--timeout-secs {} reached", args.timeout_secs)))
        }
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    }
}

/// `--ws`: the real-time gateway benchmark ([`ws`]).
async fn run_ws(args: Args) -> Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("the executable has no parent directory"))?,
    };
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| bin_dir.join("bench-logs"));
    std::fs::create_dir_all(&log_dir).with_context(|| format!("create {}", log_dir.display()))?;
    let _ = std::fs::remove_file(log_dir.join("job-service.log"));
    let machine = machine_facts(&bin_dir);
    if !machine.release_build {
        eprintln!(
            "bench: {} is not a release directory: figures are not representative",
            bin_dir.display()
        );
    }
    eprintln!("bench: creating a fresh database and Redis prefix");
    let db = test_support::TestDb::create().await;
    let redis = test_support::TestRedis::new();
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", test_support::redis_url()),
        ("REDIS_PREFIX", redis.prefix().to_owned()),
        (
            "AUTH_JWT_PUBLIC_KEY",
            access_token::SigningKey::development().public_pem(),
        ),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        // One member sends every message of the fan-out phase.
        ("WS_MESSAGES_PER_SEC", "100000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for pair in &args.extra_env {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {pair}: expected KEY=VALUE"))?;
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let replicas = ws::Replicas {
        bin_dir: &bin_dir,
        log_dir: &log_dir,
        env,
    };
    let config = ws::WsConfig {
        sockets: args.ws_sockets,
        concurrency: args.ws_concurrency,
        users: args.ws_users,
        event_rate: args.ws_event_rate,
        event_secs: args.ws_event_secs,
        room_members: args.ws_room_members,
        room_messages: args.ws_room_messages,
        runs: args.ws_runs,
        hold_secs: args.ws_hold_secs,
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(args.timeout_secs), ws::run(config, &replicas)) => {
            r.unwrap_or_else(|_| Err(anyhow!("--timeout-secs {} reached", args.timeout_secs)))
        }
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    drop(redis);
    drop(db);
    let report = outcome?;
    let table = report.table();
    if args.json {
        eprint!("{table}");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{table}");
    }
    eprintln!(
        "bench: machine {} ({} cores), load average at the start {}, at the end {}",
        machine.cpu_model,
        machine.nproc,
        machine.loadavg_at_start,
        read_trimmed("/proc/loadavg")
    );
    Ok(())
}

/// Starts the services and runs the phases, filling `report` as it goes.
async fn phases(
    args: &Args,
    stack: &mut Stack,
    db_url: &str,
    deadline: Instant,
    report: &mut Report,
) -> Result<()> {
    let client = load::http_client(args.clients)?;
    let mut db = Db::connect(db_url).await?;
    report.machine.postgres_version = db.server_version().await.unwrap_or_default();

    for name in ["auth-service", "job-service", "worker"] {
        eprintln!("bench: starting {name}");
        let (service, ready) = stack.start(name, &client).await?;
        eprintln!(
            "bench: {name} ready at {} after {:.2} s",
            service.base_url,
            ready.as_secs_f64()
        );
        report
            .startup_secs
            .insert(name.to_owned(), round3(ready.as_secs_f64()));
        match name {
            "auth-service" => stack.auth = Some(service),
            "job-service" => stack.jobs = Some(service),
            _ => stack.worker = Some(service),
        }
    }
    let auth_url = stack
        .auth
        .as_ref()
        .map(|s| s.base_url.clone())
        .unwrap_or_default();
    let jobs_url = stack
        .jobs
        .as_ref()
        .map(|s| s.base_url.clone())
        .unwrap_or_default();

    eprintln!("bench: signing up and logging in");
    let api = Api::sign_in(client.clone(), &auth_url, &jobs_url).await?;
    api.probe_submit().await.context("one probe job")?;
    // Let the probe job finish so phase "submit" starts from an empty queue.
    let probe_deadline = deadline.min(Instant::now() + Duration::from_secs(30));
    if !wait_until_drained(&mut db, probe_deadline, None).await? {
        bail!("the worker did not complete the probe job within 30 s");
    }

    // Leave 10 s to tear down and print.
    let phase_deadline =
        deadline - Duration::from_secs(10).min(Duration::from_secs(args.timeout_secs / 4));

    let mut submitted_ids = Vec::new();
    if args.jobs > 0 {
        let idle = idle::start_latency(&api, &mut db).await?;
        eprintln!(
            "bench: idle system, noop created→started p50 {:.2} ms, p99 {:.2} ms ({} submits)",
            idle.p50_ms,
            idle.p99_ms,
            idle::SUBMITS
        );
        report.idle_start = Some(idle);
        eprintln!("bench: measuring the machine's limits (PostgreSQL commits, Redis round trips)");
        let limits =
            limits::measure(db_url, &test_support::redis_url(), Duration::from_secs(2)).await?;
        eprintln!(
            "bench: PostgreSQL {:.0} commits/s ({} connections), Redis {:.0} round trips/s",
            limits.pg_commits_per_sec,
            limits::PG_CLIENTS,
            limits.redis_round_trips_per_sec
        );
        report.limits = Some(limits);
        let (submit, ids) =
            submit_phase(args, stack, &api, &mut db, db_url, phase_deadline).await?;
        report.submit = Some(submit);
        submitted_ids = ids;
    }
    if args.read_secs > 0 && !submitted_ids.is_empty() {
        report.read =
            Some(read_phase(args, stack, &api, &mut db, submitted_ids, phase_deadline).await?);
    }
    if args.drain_jobs > 0 {
        report.drain =
            Some(drain_phase(args, stack, &api, &mut db, &client, phase_deadline).await?);
    }
    for service in stack.all() {
        if let Some(status) = service.exited() {
            report.notes.push(format!(
                "{} exited during the run with {status}",
                service.name
            ));
        }
    }
    Ok(())
}

/// Phase "submit": N jobs with the worker running.
async fn submit_phase(
    args: &Args,
    stack: &mut Stack,
    api: &Api,
    db: &mut Db,
    db_url: &str,
    deadline: Instant,
) -> Result<(SubmitReport, Vec<uuid::Uuid>)> {
    eprintln!(
        "bench: phase submit: {} noop jobs, {} clients",
        args.jobs, args.clients
    );
    // The backlog (jobs not yet final) sampled on a connection of its own.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sampler_db = Db::connect(db_url).await?;
    let sampler = tokio::spawn(async move {
        let mut max = 0;
        let mut stop_rx = stop_rx;
        loop {
            if let Ok(n) = sampler_db.unfinished().await {
                max = max.max(n);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop_rx.changed() => break,
            }
        }
        max
    });

    let pg_start = db.counters().await?;
    let cpu_start = stack.watched().snapshot();
    let run = api.submit_many(args.jobs, args.clients, deadline).await?;
    let submit_end: DateTime<Utc> = Utc::now();
    let backlog_at_end = db.unfinished().await?;
    let _ = stop_tx.send(true);
    let max_backlog = sampler.await?.max(backlog_at_end);
    eprintln!(
        "bench: {} accepted in {:.2} s ({:.0}/s), {} errors{}; backlog {backlog_at_end}",
        run.accepted.len(),
        run.elapsed.as_secs_f64(),
        run.accepted.len() as f64 / run.elapsed.as_secs_f64().max(1e-9),
        run.errors.total(),
        if run.errors.total() > 0 {
            format!(": {}", run.errors.describe())
        } else {
            String::new()
        },
    );

    let all_completed = wait_until_drained(db, deadline, Some("submit")).await?;
    let cpu = cpu_start.until(&stack.watched().snapshot());
    let pg = pg_start.until(&db.counters().await?, run.accepted.len());

    let lives = db.life_times().await?;
    let finished: std::collections::HashMap<uuid::Uuid, DateTime<Utc>> = lives
        .iter()
        .map(|(id, life)| (*id, life.finished))
        .collect();
    let stages = report::Stages::of(&run.accepted, &lives);
    let mut e2e_us = Vec::with_capacity(run.accepted.len());
    let mut last_finished: Option<DateTime<Utc>> = None;
    for job in &run.accepted {
        if let Some(&at) = finished.get(&job.id) {
            e2e_us.push(
                u64::try_from((at - job.sent_at).num_microseconds().unwrap_or(0)).unwrap_or(0),
            );
            last_finished = Some(last_finished.map_or(at, |l| l.max(at)));
        }
    }
    let first_sent = run.accepted.iter().map(|a| a.sent_at).min();
    let end_to_end_secs = match (first_sent, last_finished) {
        (Some(a), Some(b)) => secs_between(a, b),
        _ => 0.0,
    };
    let completed = e2e_us.len();
    let completed_in_window = run
        .accepted
        .iter()
        .filter(|job| finished.get(&job.id).is_some_and(|at| *at <= submit_end))
        .count();
    let mut latencies = run.latencies_us;
    let report = SubmitReport {
        requested: args.jobs,
        accepted: run.accepted.len(),
        errors: run.errors.counts,
        submit_secs: round3(run.elapsed.as_secs_f64()),
        accepted_per_sec: round1(run.accepted.len() as f64 / run.elapsed.as_secs_f64().max(1e-9)),
        submit_latency: Latency::from_micros(&mut latencies),
        backlog_at_submit_end: backlog_at_end,
        max_backlog,
        completed,
        all_completed: all_completed && completed == run.accepted.len(),
        completed_in_window,
        completed_in_window_pct: round1(
            completed_in_window as f64 * 100.0 / run.accepted.len().max(1) as f64,
        ),
        end_to_end_secs: round3(end_to_end_secs),
        completed_per_sec: round1(completed as f64 / end_to_end_secs.max(1e-9)),
        completion_lag_secs: round3(last_finished.map_or(0.0, |l| secs_between(submit_end, l))),
        submit_to_completed: Latency::from_micros(&mut e2e_us),
        stages,
        status_counts: db
            .status_counts()
            .await?
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        cpu: Some(cpu),
        pg: Some(pg),
    };
    eprintln!(
        "bench: {completed} completed ({:.1} % within the load window), {:.0}/s end to end, submit→completed p50 {:.1} ms p99 {:.1} ms",
        report.completed_in_window_pct,
        report.completed_per_sec,
        report.submit_to_completed.p50_ms,
        report.submit_to_completed.p99_ms
    );
    eprintln!("bench: {}", report.stages.describe());
    let ids = run.accepted.iter().map(|a| a.id).collect();
    Ok((report, ids))
}

/// Phase "read": random `GET /api/jobs/{id}` for `--read-secs`.
async fn read_phase(
    args: &Args,
    stack: &mut Stack,
    api: &Api,
    db: &mut Db,
    ids: Vec<uuid::Uuid>,
    deadline: Instant,
) -> Result<ReadReport> {
    let room = deadline.saturating_duration_since(Instant::now());
    let duration = Duration::from_secs(args.read_secs).min(room);
    eprintln!(
        "bench: phase read: GET /api/jobs/{{id}}, {} clients, {:.0} s",
        args.clients,
        duration.as_secs_f64()
    );
    let pg_start = db.counters().await?;
    let cpu_start = stack.watched().snapshot();
    let run = api.read_for(Arc::new(ids), args.clients, duration).await?;
    let cpu = cpu_start.until(&stack.watched().snapshot());
    let mut latencies = run.latencies_us;
    let ok = latencies.len();
    let pg = pg_start.until(&db.counters().await?, ok + run.errors.total() as usize);
    let report = ReadReport {
        secs: round3(run.elapsed.as_secs_f64()),
        ok,
        req_per_sec: round1(ok as f64 / run.elapsed.as_secs_f64().max(1e-9)),
        latency: Latency::from_micros(&mut latencies),
        errors: run.errors.counts.clone(),
        cpu: Some(cpu),
        pg: Some(pg),
    };
    eprintln!(
        "bench: {ok} reads ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, {} errors{}",
        report.req_per_sec,
        report.latency.p50_ms,
        report.latency.p99_ms,
        run.errors.total(),
        if run.errors.total() > 0 {
            format!(": {}", run.errors.describe())
        } else {
            String::new()
        },
    );
    Ok(report)
}

/// Phase "drain": stop the worker, queue jobs, time a fresh worker emptying the queue.
async fn drain_phase(
    args: &Args,
    stack: &mut Stack,
    api: &Api,
    db: &mut Db,
    client: &reqwest::Client,
    deadline: Instant,
) -> Result<DrainReport> {
    eprintln!("bench: phase drain: stopping the worker");
    let mut report = DrainReport::default();
    if let Some(mut worker) = stack.worker.take() {
        let status = worker.terminate(Duration::from_secs(30)).await?;
        report.stopped_worker_exit = status.to_string();
        stack.stopped.push(worker);
    }
    let leftover = db.unfinished().await?;

    eprintln!(
        "bench: queueing {} noop jobs with no worker running",
        args.drain_jobs
    );
    let run = api
        .submit_many(args.drain_jobs, args.clients, deadline)
        .await?;
    let ids: Vec<uuid::Uuid> = run.accepted.iter().map(|a| a.id).collect();
    report.jobs = ids.len();
    report.enqueue_errors = run.errors.counts.clone();
    report.enqueue_per_sec = round1(ids.len() as f64 / run.elapsed.as_secs_f64().max(1e-9));
    let mut latencies = run.latencies_us;
    report.enqueue_latency = Latency::from_micros(&mut latencies);
    let queued = db.unfinished().await?;
    eprintln!(
        "bench: {} queued ({:.0}/s), {} errors{}; {queued} unfinished in PostgreSQL",
        ids.len(),
        report.enqueue_per_sec,
        run.errors.total(),
        if run.errors.total() > 0 {
            format!(": {}", run.errors.describe())
        } else {
            String::new()
        },
    );
    if queued < leftover + ids.len() as u64 {
        bail!(
            "only {queued} jobs unfinished after queueing {} with no worker running",
            ids.len()
        );
    }

    eprintln!("bench: starting a fresh worker");
    let port = test_support::free_port();
    let mut env = stack.env.clone();
    env.retain(|(k, _)| k != "WORKER_ADDR");
    env.push(("WORKER_ADDR".to_owned(), format!("127.0.0.1:{port}")));
    let pg_start = db.counters().await?;
    let cpu_start = stack.watched().snapshot();
    let spawned_at = Utc::now();
    let started = Instant::now();
    stack.worker = Some(Service::spawn(
        &stack.bin_dir,
        "worker",
        &env,
        port,
        &stack.log_dir,
    )?);
    let cpu_watch = stack.watched();
    let mut all_completed = false;
    let mut last_report = Instant::now();
    let wall = loop {
        if !db.any_unfinished().await? {
            all_completed = true;
            break started.elapsed();
        }
        if let Some(status) = stack.worker.as_mut().and_then(Service::exited) {
            let remaining = db.unfinished().await?;
            bail!("the drain worker exited with {status} ({remaining} jobs left)");
        }
        if Instant::now() >= deadline {
            break started.elapsed();
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            let remaining = db.unfinished().await?;
            eprintln!(
                "bench: {remaining} jobs left after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    report.cpu = Some(cpu_start.until(&cpu_watch.snapshot()));
    report.pg = Some(pg_start.until(&db.counters().await?, ids.len()));
    let span = db.completion_span(&ids).await?;
    report.completed = span.completed;
    report.all_completed = all_completed && span.completed == ids.len() as u64;
    report.wall_secs = round3(wall.as_secs_f64());
    report.jobs_per_sec = round1(span.completed as f64 / wall.as_secs_f64().max(1e-9));
    if let (Some(first), Some(last)) = (span.first_finished, span.last_finished) {
        report.first_completion_after_secs = round3(secs_between(spawned_at, first));
        report.pg_span_secs = round3(secs_between(first, last));
        report.pg_jobs_per_sec = round1(span.completed as f64 / report.pg_span_secs.max(1e-3));
    }
    if let Some(worker) = stack.worker.as_mut() {
        // The fresh worker must also report ready (it was already draining).
        worker.wait_ready(client, Duration::from_secs(10)).await?;
    }
    eprintln!(
        "bench: drained {} of {} in {:.2} s ({:.0}/s; first→last finish {:.0}/s)",
        report.completed,
        report.jobs,
        report.wall_secs,
        report.jobs_per_sec,
        report.pg_jobs_per_sec
    );
    Ok(report)
}

/// Polls every 50 ms until no job is pending, scheduled or running, or `deadline`. Returns
/// whether the queue emptied.
async fn wait_until_drained(db: &mut Db, deadline: Instant, phase: Option<&str>) -> Result<bool> {
    let mut last_report = Instant::now();
    loop {
        if !db.any_unfinished().await? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            let remaining = db.unfinished().await?;
            eprintln!("bench: deadline reached with {remaining} jobs unfinished");
            return Ok(false);
        }
        if let Some(phase) = phase
            && last_report.elapsed() >= Duration::from_secs(2)
        {
            let remaining = db.unfinished().await?;
            eprintln!("bench: {phase}: waiting for {remaining} jobs to finish");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn machine_facts(bin_dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model,
        mem_total_mib,
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        loadavg_at_start: read_trimmed("/proc/loadavg"),
        loadavg_at_end: String::new(),
        postgres_version: String::new(),
        binaries: bin_dir.display().to_string(),
        release_build: bin_dir.file_name().is_some_and(|n| n == "release"),
    }
}
