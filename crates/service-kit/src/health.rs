//! `/healthz` and `/readyz` (and, through [`crate::metrics`], `/metrics`).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use persistence::PgPool;
use serde_json::json;

/// What `/readyz` checks: the process's PostgreSQL and Redis pools.
#[derive(Clone)]
pub struct Readiness {
    /// The PostgreSQL pool.
    pub pg: PgPool,
    /// The Redis pool.
    pub redis: deadpool_redis::Pool,
}

/// How long a readiness check waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    /// Checks both dependencies at once; returns a status per dependency.
    pub async fn check(&self) -> (bool, serde_json::Value) {
        let pg = tokio::time::timeout(CHECK_TIMEOUT, persistence::pool::ping(&self.pg));
        let redis = tokio::time::timeout(CHECK_TIMEOUT, crate::redis_pool::ping(&self.redis));
        let (pg, redis) = tokio::join!(pg, redis);
        let pg_ok = matches!(pg, Ok(Ok(())));
        let redis_ok = matches!(redis, Ok(Ok(())));
        if !pg_ok {
            tracing::warn!(error = ?pg, "readiness: PostgreSQL does not answer");
        }
        if !redis_ok {
            tracing::warn!(error = ?redis, "readiness: Redis does not answer");
        }
        let word = |ok: bool| if ok { "ok" } else { "unavailable" };
        (
            pg_ok && redis_ok,
            json!({"postgres": word(pg_ok), "redis": word(redis_ok)}),
        )
    }
}

/// Registers `/healthz`, `/readyz` and `/metrics`: for a process without a separate
/// `METRICS_ADDR` listener. Needs `web::Data<Readiness>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_probes(cfg);
    crate::metrics::configure(cfg);
}

/// Registers `/healthz` and `/readyz` only: for a process whose `/metrics` is on its
/// [`crate::metrics::MetricsListener`]. Needs `web::Data<Readiness>`.
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/healthz",
        web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
    )
    .route(
        "/readyz",
        web::get().to(|readiness: web::Data<Readiness>| async move {
            let (ready, checks) = readiness.check().await;
            let body =
                json!({"status": if ready { "ready" } else { "unavailable" }, "checks": checks});
            if ready {
                HttpResponse::Ok().json(body)
            } else {
                HttpResponse::ServiceUnavailable().json(body)
            }
        }),
    );
}
