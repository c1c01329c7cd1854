//! Prometheus metrics: the process-wide recorder, the HTTP request observer, and where
//! `/metrics` is served.
//!
//! Every label value comes from a closed set, so that no request can create series: methods
//! outside the standard ones are `other`, and routes are the matched route patterns (anything
//! unmatched is `unmatched`). Series that stop changing are dropped after [`IDLE_TIMEOUT`].
//!
//! With `METRICS_ADDR` set, `/metrics` is served only on that separate listener
//! ([`MetricsListener`]), which an ingress routing the main port never exposes; unset, it is on
//! the main address for local use.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Counters and histograms not updated for this long are dropped from `/metrics` (gauges, which
/// describe current state, are kept).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Buckets of the worker's job histograms (`worker_job_*`: start latency, run time), in seconds.
pub const JOB_BUCKETS: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    1800.0, 3600.0,
];

/// How often histogram samples are folded into their buckets, scraped or not.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use (with a thread that runs the
/// exporter's upkeep every [`UPKEEP_INTERVAL`], so memory stays bounded without scrapes).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .idle_timeout(
                MetricKindMask::COUNTER | MetricKindMask::HISTOGRAM,
                Some(IDLE_TIMEOUT),
            )
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ])
            // Jobs wait and run for minutes to hours, not milliseconds.
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Prefix("worker_job_".to_owned()),
                    &JOB_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => {
                // The exporter keeps every histogram sample until upkeep folds it into the
                // buckets; without a scrape that would grow without bound.
                let upkeep = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-upkeep".to_owned())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_INTERVAL);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(error) = spawned {
                    tracing::warn!(%error, "metrics upkeep thread not started: histograms are folded only when scraped");
                }
                handle
            }
            // Another recorder is installed already (never in our binaries): metrics from
            // this process go there, and this handle renders an empty page.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// `GET /metrics`: the Prometheus text format.
pub async fn render() -> HttpResponse {
    let handle = handle();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

/// Registers `GET /metrics` (and installs the recorder).
pub fn configure(cfg: &mut web::ServiceConfig) {
    handle();
    cfg.route("/metrics", web::get().to(render));
}

/// The label of a request method: one of the standard methods, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by method, route pattern and status (`http_requests_total`,
/// `http_request_duration_seconds`), and logs server errors. Labels come from closed sets (see
/// the module docs), so requests cannot grow the number of series.
pub async fn observe<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.call(req).await?;
    let status = response.status();
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::warn!(%method, %route, status = status.as_u16(), elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    Ok(response)
}

/// The separate `/metrics` listener of `METRICS_ADDR`: one small server that answers only
/// `GET /metrics` (anything else: 404).
pub struct MetricsListener {
    port: u16,
    server: Server,
}

impl MetricsListener {
    /// Binds `addr` (port 0 picks a free port). Call [`MetricsListener::spawn`] to serve.
    pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        Self::bind_with(addr, configure)
    }

    /// As [`MetricsListener::bind`], with the routes `routes` registers instead of the plain
    /// `/metrics` (a process with internal endpoints of its own, such as the job service's
    /// queue depth for autoscalers).
    pub fn bind_with(
        addr: std::net::SocketAddr,
        routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    ) -> std::io::Result<Self> {
        handle();
        let listener = crate::listener::bind(addr)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .configure(routes.clone())
                .default_service(web::to(crate::http::not_found))
        })
        .workers(1)
        // The main server handles the signals; this one is stopped with it.
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    /// Binds `METRICS_ADDR` when it is set; `None` when it is not (then the caller serves
    /// `/metrics` on its main address).
    pub fn bind_setting(
        addr: Option<&str>,
    ) -> Result<Option<Self>, crate::settings::SettingsError> {
        Self::bind_setting_with(addr, configure)
    }

    /// As [`MetricsListener::bind_setting`], with the routes `routes` registers.
    pub fn bind_setting_with(
        addr: Option<&str>,
        routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    ) -> Result<Option<Self>, crate::settings::SettingsError> {
        let Some(raw) = addr.map(str::trim).filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let addr = crate::settings::socket_addr("METRICS_ADDR", raw)?;
        Self::bind_with(addr, routes).map(Some).map_err(|e| {
            crate::settings::SettingsError::invalid(
                "METRICS_ADDR",
                format!("cannot listen on {addr}: {e}"),
            )
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves in the background until the returned guard is stopped or dropped with the
    /// runtime.
    pub fn spawn(self) -> actix_web::dev::ServerHandle {
        let handle = self.server.handle();
        tokio::spawn(self.server);
        handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_folds_histogram_samples_without_scrapes() {
        handle();
        // Linux names threads in /proc: the upkeep thread runs in this process (it names
        // itself once it runs, so look a few times).
        let mut names: Vec<String> = Vec::new();
        for _ in 0..50 {
            names = std::fs::read_dir("/proc/self/task")
                .map(|tasks| {
                    tasks
                        .filter_map(Result::ok)
                        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                        .map(|name| name.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            if names.iter().any(|n| n == "metrics-upkeep") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(names.iter().any(|n| n == "metrics-upkeep"), "{names:?}");
    }

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        let made_up = Method::from_bytes(b"PROPFIND").unwrap_or(Method::TRACE);
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }
}
