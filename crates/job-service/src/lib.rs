//! Task Vault's job service: section 4 of the contract.
//!
//! PostgreSQL is the record of every job ([`persistence::jobs`]); Redis is the dispatch index
//! ([`job_queue`]). A job is put in the index only after its row commits; if the process dies
//! in between, the workers' reconciler finds the row and enqueues it. Every change made here
//! (submit, cancel, retry) is published as a `jobUpdated` event on the owner's channel.
//!
//! [`Application::build`] migrates the database, binds the listener (port 0 picks a free port)
//! and returns the server, so tests run the real service in-process.

pub mod auth;
pub mod docs;
pub mod error;
pub mod queue_depth;
pub mod roles;
pub mod routes;
pub mod settings;
pub mod submit_group;
pub mod submit_limits;
#[cfg(feature = "testing")]
pub mod testing;
pub mod ws;

use std::time::Duration;

use access_token::{KeySet, RevocationList, TokenSettings, Verifier};
use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware, web};
use job_queue::Queue;
use persistence::{PersistenceError, PgPool};
use service_kit::health::Readiness;
use service_kit::http::AllowedOrigins;
use service_kit::metrics::MetricsListener;
use service_kit::settings::SettingsError;

pub use settings::Settings;

/// What every request handler shares.
pub struct AppState {
    /// PostgreSQL.
    pub pg: PgPool,
    /// The dispatch index.
    pub queue: Queue,
    /// Access-token verification, revoked sessions included.
    pub verifier: access_token::Verifier,
    /// Abuse limits on submits.
    pub submit_limits: submit_limits::SubmitLimits,
    /// Users' current roles (a token's role may be older).
    pub roles: roles::Roles,
}

impl AppState {
    /// A pooled PostgreSQL connection.
    pub async fn conn(&self) -> Result<persistence::PooledConnection, PersistenceError> {
        Ok(self.pg.get().await?)
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The database could not be migrated.
    #[error("database: {0}")]
    Database(#[from] PersistenceError),
    /// The listener could not be bound.
    #[error("cannot listen on JOBS_ADDR: {0}")]
    Bind(#[from] std::io::Error),
}

/// How long a stopping server waits for open connections before cutting them.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A built, not yet running, job service.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<MetricsListener>,
    gateway: std::sync::Arc<ws::Gateway>,
}

impl Application {
    /// Checks settings, migrates the database, connects the pools and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        settings.check()?;
        let mut pool_settings = persistence::PoolSettings::new(settings.database_url.clone());
        pool_settings.max_size = settings.db_pool_size;
        let pg = persistence::pool::build_pool(&pool_settings)?;
        let redis = service_kit::redis_pool::build(&settings.redis_url, settings.redis_pool_size)?;

        let tokens = TokenSettings {
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
        };
        let verifier = match settings.public_key() {
            Some(pem) => Verifier::with_keys(
                tokens,
                KeySet::from_public_pem(pem)
                    .map_err(|e| SettingsError::invalid("AUTH_JWT_PUBLIC_KEY", e))?,
            ),
            None => Verifier::with_jwks_url(
                tokens,
                format!(
                    "{}/.well-known/jwks.json",
                    settings.auth_url.trim_end_matches('/')
                ),
            ),
        };
        // In production, tokens signed with the public development key are refused even if the
        // auth service publishes it.
        let verifier = if settings.production()? {
            verifier.refusing_development_key()
        } else {
            verifier
        };
        let revocations = RevocationList::new(
            redis.clone(),
            settings.redis_prefix.clone(),
            Duration::from_secs(settings.access_token_ttl_secs),
        )
        // Revocations survive a Redis flush or restart: read back from `sessions.revoked_at`.
        .backed_by(service_kit::revocation_record::PgRevocationRecord(
            pg.clone(),
        ));
        let depth = queue_depth::configure(queue_depth::QueueDepth::new(pg.clone()));
        let metrics =
            MetricsListener::bind_setting_with(settings.metrics_addr.as_deref(), depth.clone())?;
        // Without METRICS_ADDR, /metrics and /queue-depth are on the main port.
        let internal_routes = metrics.is_none().then_some(depth);
        let hsts = settings.cookie_secure;
        let gateway = ws::Gateway::start(&settings, redis.clone(), Some(revocations.clone()))?;
        let gateway_data = web::Data::from(gateway.clone());
        // Only once every setting is known to be good: a typo must not migrate a database.
        persistence::migrate::prepare(&settings.database_url, settings.production()?).await?;

        let state = web::Data::new(AppState {
            pg: pg.clone(),
            queue: Queue::new(redis.clone(), &settings.redis_prefix),
            verifier: verifier.with_revocations(revocations),
            submit_limits: submit_limits::SubmitLimits::new(redis.clone(), &settings),
            roles: roles::Roles::new(pg.clone()),
        });
        let readiness = web::Data::new(Readiness { pg, redis });
        let origins = AllowedOrigins::new(settings.origins());
        let openapi = docs::openapi();

        let coalesce = settings.redis_coalesce;
        let group_max = settings.submit_group_max;
        let listener = service_kit::listener::bind(&settings.jobs_addr)?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            let origins = origins.clone();
            let csrf_origins = origins.clone();
            // One write coalescer per HTTP worker thread, so merging never crosses threads.
            let writes = if coalesce {
                job_queue::Coalescer::start(state.queue.clone())
            } else {
                job_queue::Coalescer::direct(state.queue.clone())
            };
            // One submit group per HTTP worker thread too (SUBMIT_GROUP_MAX=1: none, each
            // submit commits alone).
            let groups = web::Data::new((group_max > 1).then(|| {
                submit_group::SubmitGroups::start(
                    state.pg.clone(),
                    state.queue.clone(),
                    writes.clone(),
                    group_max,
                )
            }));
            let writes = web::Data::new(writes);
            App::new()
                .app_data(state.clone())
                .app_data(writes)
                .app_data(groups)
                .app_data(readiness.clone())
                .app_data(gateway_data.clone())
                .configure(service_kit::http::configure_errors)
                .wrap(middleware::from_fn(move |req, next| {
                    service_kit::http::csrf_guard(csrf_origins.clone(), req, next)
                }))
                .wrap(service_kit::http::cors(&origins))
                .wrap(middleware::from_fn(service_kit::metrics::observe))
                .wrap(middleware::from_fn(move |req, next| {
                    service_kit::http::security_headers(hsts, req, next)
                }))
                .wrap(middleware::from_fn(service_kit::request_id::middleware))
                .configure(service_kit::health::configure_probes)
                .configure(|cfg| {
                    if let Some(routes) = &internal_routes {
                        routes(cfg);
                    }
                })
                .configure(routes::configure)
                .configure(routes::schedules::configure)
                .configure(ws::configure)
                .configure(|cfg| service_kit::http::configure_docs(cfg, openapi.clone()))
                .default_service(web::to(service_kit::http::not_found))
        })
        // SIGTERM is handled in `run`: the sockets are closed with 1001 before the server stops.
        .disable_signals()
        // Then connections still open (a WebSocket client that never closes its end after the
        // close handshake) are cut after this long; HTTP requests here take far less.
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
        let workers = match settings.http_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        };
        server = server.workers(workers);
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            metrics,
            gateway,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` listener, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(MetricsListener::port)
    }

    /// Serves until the process is told to stop (SIGTERM/SIGINT): then closes every
    /// WebSocket with 1001 (going away, so clients reconnect elsewhere), stops taking
    /// requests, lets the ones in flight finish, and returns.
    pub async fn run(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(MetricsListener::spawn);
        let handle = self.server.handle();
        let mut server = self.server;
        let result = tokio::select! {
            result = &mut server => result,
            () = stop_signal() => {
                tracing::info!("job service shutting down");
                self.gateway.shut_down().await;
                // The server future processes the stop command: poll both.
                let ((), result) = tokio::join!(handle.stop(true), server);
                result
            }
        };
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        result
    }
}
