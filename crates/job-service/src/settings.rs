//! The job service's configuration (see [`service_kit::settings`] for the layers).

use serde::Deserialize;
use service_kit::settings::SettingsError;

/// Settings, named after their environment variables in lower case. `Debug` hides the
/// credentials in URLs, so settings printed while debugging cannot leak them into logs.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `APP_ENV`: `development` or `production`; production refuses unsafe settings and tokens
    /// signed with the public development key.
    pub app_env: String,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `JOBS_ADDR`: listen address (port 0 picks a free port).
    pub jobs_addr: String,
    /// `AUTH_URL`: where the auth service's JWKS is fetched (`{AUTH_URL}/.well-known/jwks.json`).
    pub auth_url: String,
    /// `AUTH_JWT_PUBLIC_KEY`: an SPKI PEM; when set, tokens are verified with it and the JWKS
    /// is never fetched.
    pub auth_jwt_public_key: Option<String>,
    /// `JWT_ISSUER`: required `iss` claim.
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE`: required `aud` claim.
    pub jwt_audience: String,
    /// `ACCESS_TOKEN_TTL_SECS`: how long a revocation must be remembered.
    pub access_token_ttl_secs: u64,
    /// `CORS_ORIGINS`: comma-separated browser origins allowed with credentials.
    pub cors_origins: Option<String>,
    /// `FRONTEND_URL`: the default of `CORS_ORIGINS`.
    pub frontend_url: String,
    /// `REDIS_PREFIX`: namespace of every Redis key (shared with the auth service's revoked
    /// sessions and with the workers' queue).
    pub redis_prefix: String,
    /// `LOG_FORMAT`: `pretty` or `json`.
    pub log_format: String,
    /// `DB_POOL_SIZE`: PostgreSQL connections.
    pub db_pool_size: usize,
    /// `REDIS_POOL_SIZE`: Redis connections.
    pub redis_pool_size: usize,
    /// `HTTP_WORKERS`: HTTP worker threads. 0 (the default): one per two cores, at least one,
    /// because PostgreSQL and Redis do most of the work of a request and, on a small machine,
    /// need the other cores (measured on 2 cores: one thread serves ~10% more than two).
    pub http_workers: usize,
    /// `REDIS_COALESCE`: merge the Redis writes of concurrent requests into one round trip.
    pub redis_coalesce: bool,
    /// `SUBMIT_GROUP_MAX`: most single submits stored together with one insert and one commit
    /// (a group commit: submits that arrive while the previous group is being stored); 1
    /// stores each submit on its own.
    pub submit_group_max: usize,
    /// `METRICS_ADDR`: when set, `/metrics` is served only on this separate listener.
    pub metrics_addr: Option<String>,
    /// `COOKIE_SECURE`: the service is reached over HTTPS (as the auth service's cookies are
    /// `Secure`), so responses carry `Strict-Transport-Security`.
    pub cookie_secure: bool,
    /// `SUBMIT_RATE_PER_SEC`: submits one user may make per second, sustained (0: no limit).
    pub submit_rate_per_sec: u32,
    /// `SUBMIT_BURST`: submits one user may make at once before the rate applies.
    pub submit_burst: u32,
    /// `MAX_UNFINISHED_JOBS_PER_USER`: pending, scheduled and running jobs one user may have
    /// (0: no limit).
    pub max_unfinished_jobs_per_user: u64,
    /// `USER_MAX_PRIORITY`: the highest priority a non-admin may submit (admins: up to 1000).
    pub user_max_priority: i64,
    /// `MAX_SCHEDULES_PER_USER`: schedules one user may have (0: no limit).
    pub max_schedules_per_user: u64,
    /// `WS_PING_SECS`: the real-time gateway pings every socket this often and drops one that
    /// stays silent for two pings.
    pub ws_ping_secs: u64,
    /// `WS_MAX_ROOMS`: rooms one socket may hold (more: `error` `too_many_rooms`).
    pub ws_max_rooms: usize,
    /// `WS_MESSAGES_PER_SEC`: frames a socket may send per second, with bursts of twice that
    /// (more: `error` `rate_limited`).
    pub ws_messages_per_sec: u32,
    /// `WS_MAX_FRAME_BYTES`: the largest frame a client may send (more: `error`
    /// `frame_too_large`; past 64 KiB, or this if larger, the socket is closed with 1009).
    pub ws_max_frame_bytes: usize,
    /// `WS_SEND_QUEUE_MESSAGES`: frames queued for one socket and not yet written before it
    /// counts as too slow and is closed with 1013.
    pub ws_send_queue_messages: usize,
    /// `WS_SEND_QUEUE_BYTES`: the same bound in bytes.
    pub ws_send_queue_bytes: usize,
}

/// The smallest `WS_MAX_FRAME_BYTES`: a `sendMessage` with a 4 KiB text must fit.
const MIN_WS_FRAME_BYTES: usize = 8 * 1024;

impl Default for Settings {
    fn default() -> Self {
        let tokens = access_token::TokenSettings::default();
        Self {
            app_env: "development".to_owned(),
            database_url: "postgres://localhost/taskvault".to_owned(),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            jobs_addr: "127.0.0.1:8082".to_owned(),
            auth_url: "http://127.0.0.1:8081".to_owned(),
            auth_jwt_public_key: None,
            jwt_issuer: tokens.issuer,
            jwt_audience: tokens.audience,
            access_token_ttl_secs: 900,
            cors_origins: None,
            frontend_url: "http://localhost:5173".to_owned(),
            redis_prefix: "tv:".to_owned(),
            log_format: "pretty".to_owned(),
            db_pool_size: 32,
            redis_pool_size: 32,
            http_workers: 0,
            redis_coalesce: true,
            submit_group_max: 256,
            metrics_addr: None,
            cookie_secure: false,
            submit_rate_per_sec: 200,
            submit_burst: 400,
            max_unfinished_jobs_per_user: 10_000,
            user_max_priority: 1000,
            max_schedules_per_user: 100,
            ws_ping_secs: 25,
            ws_max_rooms: 50,
            ws_messages_per_sec: 20,
            ws_max_frame_bytes: 16 * 1024,
            ws_send_queue_messages: 1000,
            ws_send_queue_bytes: 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use service_kit::settings::redact_url;
        // Destructured without `..`, so a new setting cannot be left out by mistake.
        let Self {
            app_env,
            database_url,
            redis_url,
            jobs_addr,
            auth_url,
            auth_jwt_public_key,
            jwt_issuer,
            jwt_audience,
            access_token_ttl_secs,
            cors_origins,
            frontend_url,
            redis_prefix,
            log_format,
            db_pool_size,
            redis_pool_size,
            http_workers,
            redis_coalesce,
            submit_group_max,
            metrics_addr,
            cookie_secure,
            submit_rate_per_sec,
            submit_burst,
            max_unfinished_jobs_per_user,
            user_max_priority,
            max_schedules_per_user,
            ws_ping_secs,
            ws_max_rooms,
            ws_messages_per_sec,
            ws_max_frame_bytes,
            ws_send_queue_messages,
            ws_send_queue_bytes,
        } = self;
        f.debug_struct("Settings")
            .field("app_env", app_env)
            .field("database_url", &redact_url(database_url))
            .field("redis_url", &redact_url(redis_url))
            .field("jobs_addr", jobs_addr)
            .field("auth_url", &redact_url(auth_url))
            .field("auth_jwt_public_key", auth_jwt_public_key)
            .field("jwt_issuer", jwt_issuer)
            .field("jwt_audience", jwt_audience)
            .field("access_token_ttl_secs", access_token_ttl_secs)
            .field("cors_origins", cors_origins)
            .field("frontend_url", frontend_url)
            .field("redis_prefix", redis_prefix)
            .field("log_format", log_format)
            .field("db_pool_size", db_pool_size)
            .field("redis_pool_size", redis_pool_size)
            .field("http_workers", http_workers)
            .field("redis_coalesce", redis_coalesce)
            .field("submit_group_max", submit_group_max)
            .field("metrics_addr", metrics_addr)
            .field("cookie_secure", cookie_secure)
            .field("submit_rate_per_sec", submit_rate_per_sec)
            .field("submit_burst", submit_burst)
            .field("max_unfinished_jobs_per_user", max_unfinished_jobs_per_user)
            .field("user_max_priority", user_max_priority)
            .field("max_schedules_per_user", max_schedules_per_user)
            .field("ws_ping_secs", ws_ping_secs)
            .field("ws_max_rooms", ws_max_rooms)
            .field("ws_messages_per_sec", ws_messages_per_sec)
            .field("ws_max_frame_bytes", ws_max_frame_bytes)
            .field("ws_send_queue_messages", ws_send_queue_messages)
            .field("ws_send_queue_bytes", ws_send_queue_bytes)
            .finish()
    }
}

impl Settings {
    /// Reads and checks the settings; the error names the variable at fault.
    pub fn load() -> Result<Self, SettingsError> {
        let settings: Self = service_kit::settings::load()?;
        settings.check()?;
        Ok(settings)
    }

    /// Checks values that deserialize but make no sense.
    pub fn check(&self) -> Result<(), SettingsError> {
        service_kit::settings::socket_addr("JOBS_ADDR", &self.jobs_addr)?;
        service_kit::settings::at_least_one(&[
            ("DB_POOL_SIZE", self.db_pool_size as u64),
            ("REDIS_POOL_SIZE", self.redis_pool_size as u64),
            ("SUBMIT_GROUP_MAX", self.submit_group_max as u64),
            ("ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs),
            ("WS_PING_SECS", self.ws_ping_secs),
            ("WS_MAX_ROOMS", self.ws_max_rooms as u64),
            ("WS_MESSAGES_PER_SEC", u64::from(self.ws_messages_per_sec)),
            ("WS_MAX_FRAME_BYTES", self.ws_max_frame_bytes as u64),
            ("WS_SEND_QUEUE_MESSAGES", self.ws_send_queue_messages as u64),
            ("WS_SEND_QUEUE_BYTES", self.ws_send_queue_bytes as u64),
        ])?;
        if self.ws_max_frame_bytes < MIN_WS_FRAME_BYTES {
            return Err(SettingsError::invalid(
                "WS_MAX_FRAME_BYTES",
                format!("must be at least {MIN_WS_FRAME_BYTES}, so that a 4 KiB message fits"),
            ));
        }
        if self.submit_rate_per_sec > 0 && self.submit_burst == 0 {
            return Err(SettingsError::invalid(
                "SUBMIT_BURST",
                "must be at least 1 while SUBMIT_RATE_PER_SEC is set",
            ));
        }
        if !(-1000..=1000).contains(&self.user_max_priority) {
            return Err(SettingsError::invalid(
                "USER_MAX_PRIORITY",
                "must be from -1000 to 1000 (the range of priorities)",
            ));
        }
        if self.production()? {
            self.refuse_unsafe_in_production()?;
        }
        Ok(())
    }

    /// True with `APP_ENV=production`.
    pub fn production(&self) -> Result<bool, SettingsError> {
        service_kit::settings::is_production(&self.app_env)
    }

    /// `AUTH_JWT_PUBLIC_KEY`, when given.
    pub fn public_key(&self) -> Option<&str> {
        self.auth_jwt_public_key
            .as_deref()
            .filter(|pem| !pem.trim().is_empty())
    }

    fn refuse_unsafe_in_production(&self) -> Result<(), SettingsError> {
        use service_kit::settings::require_https;
        if let Some(pem) = self.public_key()
            && access_token::KeySet::from_public_pem(pem)
                .is_ok_and(|keys| keys.contains(access_token::SigningKey::development().kid()))
        {
            return Err(SettingsError::invalid(
                "AUTH_JWT_PUBLIC_KEY",
                "is the public development key, which anyone can sign with; give the public half of your auth service's key when APP_ENV=production",
            ));
        }
        if self.public_key().is_none() && !self.auth_url.trim().starts_with("https://") {
            return Err(SettingsError::invalid(
                "AUTH_URL",
                "must be https:// when APP_ENV=production (the verification keys must not be fetched in the clear), unless AUTH_JWT_PUBLIC_KEY is given",
            ));
        }
        if !self.cookie_secure {
            return Err(SettingsError::invalid(
                "COOKIE_SECURE",
                "must be true when APP_ENV=production (the service is reached over HTTPS)",
            ));
        }
        let (name, origins) = match &self.cors_origins {
            Some(list) if !list.trim().is_empty() => ("CORS_ORIGINS", list.as_str()),
            _ => ("FRONTEND_URL", self.frontend_url.as_str()),
        };
        for origin in service_kit::settings::comma_list(origins) {
            require_https(name, &origin)?;
        }
        Ok(())
    }

    /// The allowed CORS origins.
    pub fn origins(&self) -> Vec<String> {
        service_kit::settings::comma_list(
            self.cors_origins.as_deref().unwrap_or(&self.frontend_url),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_credentials_in_urls() {
        let settings = Settings {
            database_url: "postgres://jobs:db-secret@db/taskvault".to_owned(),
            redis_url: "redis://:redis-secret@cache:6379".to_owned(),
            ..Settings::default()
        };
        let printed = format!("{settings:?}");
        for secret in ["db-secret", "redis-secret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(
            printed.contains("postgres://jobs:***@db/taskvault"),
            "{printed}"
        );
        assert!(printed.contains("db_pool_size: 32"), "{printed}");
    }
}
