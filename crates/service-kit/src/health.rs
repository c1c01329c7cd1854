//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed already (never in our binaries): metrics from
            // this process go there, and this handle renders an empty page.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Registers `/healthz`, `/readyz` and `/metrics`; needs `web::Data<Readiness>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    metrics_handle();
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
    )
    .route(
        "/metrics",
        web::get().to(|| async {
            let handle = metrics_handle();
            handle.run_upkeep();
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4")
                .body(handle.render())
        }),
    );
}
