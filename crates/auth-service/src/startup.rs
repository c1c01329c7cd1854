//! Building and running the HTTP server (zero2prod style: `build` binds, `run` serves).

use std::time::Duration;

use access_token::{KeySet, RevocationList, Verifier};
use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware, web};
use service_kit::budget::Budgets;
use service_kit::health::{self, Readiness};
use service_kit::http::{
    AllowedOrigins, configure_docs, configure_errors, cors, csrf_guard, not_found, security_headers,
};
use service_kit::mail::recipient_windows;
use service_kit::metrics::{MetricsListener, observe};
use service_kit::revocation_record::PgRevocationRecord;
use service_kit::settings::SettingsError;
use utoipa::OpenApi as _;

use crate::client_ip::ClientIp;
use crate::hashing::Hasher;
use crate::openapi::ApiDoc;
use crate::rate_limit::RateLimiter;
use crate::routes;
use crate::services::email::Mailer;
use crate::settings::Settings;
use crate::state::AppState;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting was refused (the message names it).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be migrated.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] persistence::PersistenceError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A bound, migrated, ready-to-run service.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<MetricsListener>,
    database_url: String,
    retention_interval: std::time::Duration,
}

/// The advisory lock under which one auth-service replica at a time deletes expired sessions
/// and tokens.
pub const RETENTION_LOCK: i64 = 0x7476_7265_7465_6e02; // "tvreten" 2

/// What retention deletes, a day after it expired (spent refresh tokens stay until their
/// expiry: presenting one must still revoke its session). A verification code also stays while
/// its account's wrong-code counter is younger than a day.
pub fn retention_sweeps() -> Vec<persistence::retention::Sweep> {
    use persistence::retention::Sweep;
    let older_than = chrono::Duration::days(1);
    vec![
        Sweep::ExpiredRefreshTokens { older_than },
        Sweep::ExpiredSessions { older_than },
        Sweep::ExpiredEmailTokens { older_than },
        Sweep::ExpiredOtpCodes { older_than },
    ]
}

impl Application {
    /// Checks the settings, binds the listen address (port 0 picks a free one), applies pending
    /// migrations (advisory-locked, so replicas may start together) and prepares the server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let resolved = settings.resolve()?;
        let database_url = settings.database_url.clone();
        let retention_interval = std::time::Duration::from_secs(settings.retention_interval_secs);
        if resolved.development_key {
            tracing::warn!(
                "JWT_PRIVATE_KEY is not set: signing with the PUBLIC development key; anyone can forge tokens. Never do this in production."
            );
        }
        // Every setting is refused before the database is touched, so the one line naming it is
        // all that is printed.
        let mailer = Mailer::new(
            resolved.smtp_url.as_deref(),
            &settings.mail_from,
            settings.frontend_base(),
            Duration::from_secs(settings.smtp_timeout_secs),
        )
        .map_err(|e| StartupError::Settings(SettingsError(e.to_string())))?;
        let listener =
            service_kit::listener::bind(resolved.addr).map_err(|source| StartupError::Bind {
                addr: resolved.addr.to_string(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?
            .port();

        let metrics = MetricsListener::bind_setting(settings.metrics_addr.as_deref())?;

        let applied =
            persistence::migrate::prepare(&settings.database_url, resolved.production).await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let mut pool_settings = persistence::PoolSettings::new(settings.database_url.clone());
        pool_settings.max_size = settings.db_pool_size;
        let pg = persistence::pool::build_pool(&pool_settings)?;
        let redis = service_kit::redis_pool::build(&settings.redis_url, 16)?;
        let mailer = mailer.with_recipient_budget(
            Budgets::new(redis.clone(), &settings.redis_prefix),
            recipient_windows(
                settings.emails_per_recipient_per_10_min,
                settings.emails_per_recipient_per_day,
            ),
        );

        let revocations = RevocationList::new(
            redis.clone(),
            settings.redis_prefix.clone(),
            settings.access_ttl().max(Duration::from_secs(1)),
        )
        .backed_by(PgRevocationRecord(pg.clone()));
        let token_settings = settings.token_settings();
        let verifier = Verifier::with_keys(
            token_settings.clone(),
            KeySet::from_signing_key(&resolved.signing_key),
        )
        .with_revocations(revocations.clone());
        let limiter = RateLimiter::new(
            redis.clone(),
            &settings.redis_prefix,
            settings.auth_rate_limit_per_minute,
            settings.login_failure_limit,
        );
        let cost = settings.bcrypt_cost;
        let dummy_hash =
            tokio::task::spawn_blocking(move || bcrypt::hash(crate::secrets::new_token(), cost))
                .await
                .map_err(|e| StartupError::Other(e.to_string()))?
                .map_err(|e| StartupError::Other(e.to_string()))?;
        let hasher = Hasher::new(
            settings.hash_concurrency,
            settings.hash_nice,
            Duration::from_millis(settings.hash_queue_timeout_ms),
            settings.bcrypt_cost,
        )
        .map_err(|e| StartupError::Other(e.to_string()))?;

        let origins = AllowedOrigins::new(resolved.cors_origins.clone());
        let state = web::Data::new(AppState {
            pg: pg.clone(),
            signing_key: resolved.signing_key.clone(),
            token_settings,
            verifier,
            revocations,
            mailer,
            limiter,
            hasher,
            client_ip: ClientIp::new(resolved.trusted_proxies.clone()),
            dummy_hash,
            settings,
        });
        let readiness = web::Data::new(Readiness { pg, redis });
        let mut openapi = ApiDoc::openapi();
        service_kit::openapi::finish(&mut openapi);
        let health_routes = if metrics.is_some() {
            health::configure_probes
        } else {
            health::configure
        };
        let hsts = state.settings.cookie_secure;

        let server = HttpServer::new(move || {
            let csrf_origins = origins.clone();
            App::new()
                .app_data(state.clone())
                .app_data(readiness.clone())
                .configure(configure_errors)
                .configure(health_routes)
                .configure(|cfg| configure_docs(cfg, openapi.clone()))
                .configure(routes::configure)
                .default_service(web::to(not_found))
                .wrap(middleware::from_fn(move |req, next| {
                    csrf_guard(csrf_origins.clone(), req, next)
                }))
                .wrap(cors(&origins))
                .wrap(middleware::from_fn(observe))
                .wrap(middleware::from_fn(move |req, next| {
                    security_headers(hsts, req, next)
                }))
                .wrap(middleware::from_fn(service_kit::request_id::middleware))
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: format!("port {port}"),
            source,
        })?
        .shutdown_timeout(10)
        .run();
        tracing::info!(
            port,
            metrics_port = metrics.as_ref().map(MetricsListener::port),
            "auth service listening"
        );
        Ok(Self {
            port,
            server,
            metrics,
            database_url,
            retention_interval,
        })
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` listener, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(MetricsListener::port)
    }

    /// Serves until the process is told to stop (SIGINT/SIGTERM), draining in-flight requests.
    pub async fn run(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(MetricsListener::spawn);
        let retention = service_kit::retention::spawn(
            self.database_url,
            RETENTION_LOCK,
            retention_sweeps(),
            self.retention_interval,
        );
        let result = self.server.await;
        retention.abort();
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        result
    }
}
