//! Task Vault's worker: runs the jobs of the Redis dispatch index and records every state
//! change in PostgreSQL, the record.
//!
//! Guarantees, with any number of workers on one Redis and one PostgreSQL:
//!
//! - **No double completion.** Each claim increments the job's fencing token; every write of
//!   an attempt is conditional on `status = 'running' AND fence = <its token>`, so a stale
//!   attempt (lease lost, job cancelled, job reclaimed) matches no row.
//! - **No lost job.** Claimed jobs are leased and the lease is renewed by a heartbeat; expired
//!   leases are reaped back to `pending`. A reconciler re-adds to Redis every job PostgreSQL
//!   has as queued or running that Redis lost.
//! - **Priority order.** Claims pop the ready set best-first and take only as many jobs as
//!   there are free execution slots, so a worker never sits on prefetched low-priority jobs.
//!
//! SIGTERM or SIGINT (Ctrl-C): stop claiming, say how many jobs are running, let them finish for
//! up to `SHUTDOWN_GRACE_SECS`, then hand the rest back (`pending`, the interrupted attempt
//! given back so that `attempts` never exceeds `max_attempts`), write everything, exit 0. A
//! second signal hands the running jobs back at once.

pub mod handlers;
pub mod logs;
pub mod maintenance;
pub mod runtime;
pub mod schedules;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use job_queue::Queue;
use service_kit::health::Readiness;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::Settings;

use crate::handlers::{Mailer, Registry};
use crate::runtime::{Shared, StopReason, ToBatcher};

/// The advisory lock under which one worker at a time deletes old jobs.
pub const RETENTION_LOCK: i64 = 0x7476_7265_7465_6e01; // "tvreten" 1

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] service_kit::settings::SettingsError),
    /// The database could not be migrated or reached.
    #[error("database: {0}")]
    Database(#[from] persistence::PersistenceError),
    /// The health server could not listen, or another I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the worker until SIGTERM or SIGINT, then shuts down gracefully (a second signal: at
/// once, the running jobs handed back).
pub async fn run(settings: Settings) -> Result<(), StartError> {
    settings.check()?;
    // Listening from the start: a signal during start-up is a request to stop, not a kill.
    let mut signals = Signals::listen();
    let mut pool_settings = persistence::PoolSettings::new(settings.database_url.clone());
    pool_settings.max_size = settings.db_pool_size;
    let pg = persistence::pool::build_pool(&pool_settings)?;
    let redis = service_kit::redis_pool::build(&settings.redis_url, settings.redis_pool_size)?;
    let mailer = Mailer::new(
        settings.smtp_url.as_deref(),
        &settings.mail_from,
        Duration::from_secs(settings.smtp_timeout_secs),
    )
    .map_err(|e| StartError::Settings(service_kit::settings::SettingsError(e.to_string())))?
    .with_recipient_budget(
        service_kit::budget::Budgets::new(redis.clone(), &settings.redis_prefix),
        service_kit::mail::recipient_windows(
            settings.emails_per_recipient_per_10_min,
            settings.emails_per_recipient_per_day,
        ),
    );
    let exec_log = match &settings.worker_execution_log {
        Some(path) if !path.is_empty() => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        _ => None,
    };

    // The recorder is installed before any loop runs, so that the first rounds (a reconcile
    // at start) are counted; the HTTP server would install it only once its threads start.
    service_kit::metrics::handle();
    let metrics =
        service_kit::metrics::MetricsListener::bind_setting(settings.metrics_addr.as_deref())?;
    let health_routes = if metrics.is_some() {
        service_kit::health::configure_probes
    } else {
        service_kit::health::configure
    };

    // Only once every setting is known to be good: a typo must not migrate a database.
    let production = service_kit::settings::is_production(&settings.app_env)?;
    persistence::migrate::prepare(&settings.database_url, production).await?;

    let readiness = web::Data::new(Readiness {
        pg: pg.clone(),
        redis: redis.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(readiness.clone())
            .configure(health_routes)
    })
    .workers(1)
    .disable_signals()
    .bind(&settings.worker_addr)?
    .run();
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);
    let metrics = metrics.map(service_kit::metrics::MetricsListener::spawn);

    let (tx, rx) = mpsc::channel(settings.flush_max.max(1024) * 4);
    let queue = Queue::with_timeouts(
        redis,
        &settings.redis_prefix,
        job_queue::Timeouts {
            command: Duration::from_millis(settings.redis_timeout_ms),
            ..job_queue::Timeouts::default()
        },
    );
    let wake = job_queue::ReadySignal::start(&settings.redis_url, &queue).map_err(|e| {
        StartError::Settings(service_kit::settings::SettingsError::invalid(
            "REDIS_URL",
            e,
        ))
    })?;
    let limits = settings.type_limits()?;
    let schedules_wake =
        job_queue::ReadySignal::on_channel(&settings.redis_url, queue.schedules_channel())
            .map_err(|e| {
                StartError::Settings(service_kit::settings::SettingsError::invalid(
                    "REDIS_URL",
                    e,
                ))
            })?;
    let shared = Arc::new(Shared {
        limits,
        pg,
        queue,
        wake,
        registry: Registry::builtin(mailer),
        inflight: Mutex::new(BTreeMap::new()),
        permits: Arc::new(Semaphore::new(settings.worker_concurrency)),
        outcomes: tx,
        exec_log,
        stopping: CancellationToken::new(),
        abandon: CancellationToken::new(),
        tracker: TaskTracker::new(),
        logs: Arc::new(logs::LogBuffer::default()),
        settings,
    });
    let settings = &shared.settings;
    tracing::info!(concurrency = settings.worker_concurrency, addr = %settings.worker_addr, "worker started");

    let batcher = tokio::spawn(runtime::batcher(shared.clone(), rx));
    let maintenance_stop = CancellationToken::new();
    let mut maintenance = tokio::task::JoinSet::new();
    {
        let s = shared.clone();
        maintenance.spawn(maintenance::every(
            settings.heartbeat(),
            maintenance_stop.clone(),
            move || {
                let s = s.clone();
                async move { maintenance::heartbeat(&s).await }
            },
        ));
        let s = shared.clone();
        maintenance.spawn(maintenance::every(
            Duration::from_millis(settings.reaper_interval_ms),
            maintenance_stop.clone(),
            move || {
                let s = s.clone();
                async move { maintenance::reap(&s).await }
            },
        ));
        maintenance.spawn(maintenance::promote_loop(
            shared.clone(),
            maintenance_stop.clone(),
        ));
        let s = shared.clone();
        maintenance.spawn(maintenance::every(
            Duration::from_secs(settings.reconcile_interval_secs),
            maintenance_stop.clone(),
            move || {
                let s = s.clone();
                async move { maintenance::reconcile(&s).await }
            },
        ));
        maintenance.spawn(schedules::scheduler_loop(
            shared.clone(),
            schedules_wake,
            maintenance_stop.clone(),
        ));
        maintenance.spawn(logs::flush_loop(
            shared.logs.clone(),
            shared.pg.clone(),
            maintenance_stop.clone(),
        ));
        let s = shared.clone();
        maintenance.spawn(maintenance::every(
            Duration::from_secs(1),
            maintenance_stop.clone(),
            move || {
                let s = s.clone();
                async move { maintenance::depth(&s).await }
            },
        ));
    }
    let retention = service_kit::retention::spawn(
        settings.database_url.clone(),
        RETENTION_LOCK,
        settings.retention_sweeps(),
        Duration::from_secs(settings.retention_interval_secs),
    );
    let claimers: Vec<_> = (0..settings.claim_loops)
        .map(|_| tokio::spawn(runtime::claim_loop(shared.clone())))
        .collect();

    let signal = signals.recv().await;
    tracing::info!(signal, "shutting down: no more claims");
    retention.abort();
    shared.stopping.cancel();
    for claimer in claimers {
        let _ = claimer.await;
    }
    shared.tracker.close();
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let running = shared.tracker.len();
    if running > 0 {
        tracing::info!(
            running,
            grace_secs = settings.shutdown_grace_secs,
            "waiting for {running} running job{} (up to {}s); send SIGINT (Ctrl-C) or SIGTERM again to hand them back at once",
            if running == 1 { "" } else { "s" },
            settings.shutdown_grace_secs,
        );
    }
    let mut hurry = false;
    let release = |why: &str| {
        let inflight = shared.inflight();
        tracing::warn!(count = inflight.len(), "{why}: releasing running jobs");
        for attempt in inflight.values() {
            attempt.stop(StopReason::Released);
        }
    };
    tokio::select! {
        finished = tokio::time::timeout(grace, shared.tracker.wait()) => {
            if finished.is_err() {
                release("grace period over");
            }
        }
        signal = signals.recv() => {
            hurry = true;
            release(&format!("second {signal}"));
        }
    }
    shared.tracker.wait().await;
    let _ = shared.outcomes.send(ToBatcher::Stop).await;
    // Outcomes that cannot be written (PostgreSQL down) are retried for another grace period
    // (a few seconds after a second signal), their leases renewed meanwhile; then shutdown
    // gives up and their jobs run again later.
    let mut batcher = batcher;
    let write_time = if hurry {
        grace.min(HURRIED_WRITE)
    } else {
        grace
    };
    let written = tokio::select! {
        done = tokio::time::timeout(write_time, &mut batcher) => done.is_ok(),
        signal = signals.recv(), if !hurry => {
            tracing::warn!(signal, "second signal: no more waiting for outcome writes");
            tokio::time::timeout(HURRIED_WRITE, &mut batcher).await.is_ok()
        }
    };
    if !written {
        tracing::error!(
            "outcomes still unwritten; giving up (their jobs run again when their leases expire)"
        );
        shared.abandon.cancel();
        let _ = batcher.await;
    }
    maintenance_stop.cancel();
    while maintenance.join_next().await.is_some() {}
    server_handle.stop(true).await;
    let _ = server_task.await;
    if let Some(metrics) = metrics {
        metrics.stop(true).await;
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// How long outcomes may take to be written after a second signal.
const HURRIED_WRITE: Duration = Duration::from_secs(3);

/// The stop signals: SIGTERM and SIGINT, each delivery counted (the second one hurries).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let open = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for {name}");
                    None
                }
            };
            Self {
                term: open(SignalKind::terminate(), "SIGTERM"),
                int: open(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for the next stop signal and names it.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(stream: &mut Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(stream) => {
                        if stream.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut self.term) => "SIGTERM",
                () = next(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
