//! The queue's depth, for autoscalers and dashboards: jobs ready to run now (`pending`),
//! scheduled for later (a future `run_at` or a retry's backoff) and running (leased), in total
//! and per priority.
//!
//! Served as JSON at `GET /queue-depth` (what KEDA's metrics-api trigger reads; scheduled jobs
//! alone must never scale workers up, so it scales on `ready`) and as the gauges
//! `queue_jobs{state, priority}` on `/metrics`. Both are on the `METRICS_ADDR` listener when it
//! is set (never on the public port), else on the main port. The job service answers them, not
//! the workers, so that they exist while workers are scaled to zero. PostgreSQL is counted at
//! most once per [`REFRESH`] per replica, however often they are read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use domain::job::JobStatus;
use persistence::PgPool;
use serde::Serialize;

/// How long one count is served before PostgreSQL is asked again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// The depth at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Depth {
    /// Jobs ready to run now (`pending`): what workers should scale on.
    pub ready: u64,
    /// Jobs waiting for their `run_at` or retry time (`scheduled`).
    pub scheduled: u64,
    /// Jobs being run (`running`).
    pub running: u64,
    /// The same per state (`ready`, `scheduled`, `running`) and priority.
    pub by_priority: BTreeMap<&'static str, BTreeMap<i16, u64>>,
}

/// Counts the queue through a short cache and keeps the gauges in step.
#[derive(Clone)]
pub struct QueueDepth {
    pg: PgPool,
    cache: moka::future::Cache<(), Arc<Depth>>,
    /// The gauge series set last time, so that a priority that emptied drops to 0.
    shown: Arc<Mutex<BTreeSet<(&'static str, i16)>>>,
}

impl QueueDepth {
    /// Counts from `pg`.
    pub fn new(pg: PgPool) -> Self {
        Self {
            pg,
            cache: moka::future::Cache::builder().time_to_live(REFRESH).build(),
            shown: Arc::default(),
        }
    }

    /// The depth, counted at most [`REFRESH`] ago.
    pub async fn current(&self) -> Result<Arc<Depth>, Arc<persistence::PersistenceError>> {
        self.cache
            .try_get_with((), async {
                let mut conn = self.pg.get().await?;
                let rows = persistence::queue_depth::unfinished(&mut conn).await?;
                let depth = Arc::new(tally(&rows));
                self.show(&depth);
                Ok::<_, persistence::PersistenceError>(depth)
            })
            .await
    }

    fn show(&self, depth: &Depth) {
        let mut now = BTreeSet::new();
        for (state, priorities) in &depth.by_priority {
            for (priority, jobs) in priorities {
                metrics::gauge!("queue_jobs", "state" => *state, "priority" => priority.to_string())
                    .set(*jobs as f64);
                now.insert((*state, *priority));
            }
        }
        if let Ok(mut shown) = self.shown.lock() {
            for (state, priority) in shown.difference(&now) {
                metrics::gauge!("queue_jobs", "state" => *state, "priority" => priority.to_string())
                    .set(0.0);
            }
            *shown = now;
        }
    }
}

fn tally(rows: &[persistence::queue_depth::DepthRow]) -> Depth {
    let mut depth = Depth::default();
    for row in rows {
        let (state, total) = match row.status {
            JobStatus::Pending => ("ready", &mut depth.ready),
            JobStatus::Scheduled => ("scheduled", &mut depth.scheduled),
            JobStatus::Running => ("running", &mut depth.running),
            _ => continue,
        };
        let jobs = u64::try_from(row.jobs).unwrap_or(0);
        *total += jobs;
        depth
            .by_priority
            .entry(state)
            .or_default()
            .insert(row.priority, jobs);
    }
    depth
}

async fn depth_json(depth: web::Data<QueueDepth>) -> HttpResponse {
    match depth.current().await {
        Ok(depth) => HttpResponse::Ok().json(&*depth),
        Err(error) => {
            tracing::warn!(%error, "counting the queue failed");
            service_kit::Problem::unavailable().to_response()
        }
    }
}

async fn metrics_page(depth: web::Data<QueueDepth>) -> HttpResponse {
    if let Err(error) = depth.current().await {
        tracing::warn!(%error, "counting the queue for /metrics failed");
    }
    service_kit::metrics::render().await
}

/// Registers `GET /queue-depth` and a `GET /metrics` that refreshes the queue gauges first.
pub fn configure(depth: QueueDepth) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg| {
        service_kit::metrics::handle();
        cfg.app_data(web::Data::new(depth.clone()))
            .route("/queue-depth", web::get().to(depth_json))
            .route("/metrics", web::get().to(metrics_page));
    }
}
