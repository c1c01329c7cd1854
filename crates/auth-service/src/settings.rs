//! The auth service's settings: built-in defaults, then `taskvault.toml`, then environment
//! variables named as in the contract (field names are the lower-cased variable names).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use access_token::{SigningKey, TokenSettings};
use ipnet::IpNet;
use serde::Deserialize;
use service_kit::settings::{
    SettingsError, at_least_one, comma_list, is_production, redact_optional_url, redact_url,
    require_https, socket_addr,
};

/// The lowest `BCRYPT_COST` production accepts.
const MIN_PRODUCTION_BCRYPT_COST: u32 = 10;

/// The longest lifetime any token, link or timeout may be given: ten years.
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// Every setting, with its default. `Debug` redacts the secrets (credentials in URLs, the
/// signing key), so that settings printed while debugging cannot leak them into logs.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `APP_ENV`: `development` or `production`; production refuses the development key.
    pub app_env: String,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DB_POOL_SIZE`: most PostgreSQL connections held open.
    pub db_pool_size: usize,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_PREFIX`: every Redis key of this service starts with it.
    pub redis_prefix: String,
    /// `AUTH_ADDR`: where to listen (port 0 picks a free port).
    pub auth_addr: String,
    /// `ACCESS_TOKEN_TTL_SECS`.
    pub access_token_ttl_secs: u64,
    /// `REFRESH_TOKEN_TTL_SECS`.
    pub refresh_token_ttl_secs: u64,
    /// `SESSION_MAX_AGE_SECS`: a session's absolute lifetime from sign-in; refreshing cannot
    /// extend it.
    pub session_max_age_secs: u64,
    /// `REFRESH_REUSE_GRACE_SECS`: how long after its rotation a spent refresh token still
    /// returns the session's current tokens (two tabs racing) instead of revoking the session.
    pub refresh_reuse_grace_secs: u64,
    /// `SMTP_URL`; unset or empty: emails are logged instead of sent.
    pub smtp_url: Option<String>,
    /// `SMTP_TIMEOUT_SECS`: how long one delivery may take.
    pub smtp_timeout_secs: u64,
    /// `MAIL_FROM`.
    pub mail_from: String,
    /// `FRONTEND_URL`: base of the links in emails.
    pub frontend_url: String,
    /// `CORS_ORIGINS`: comma-separated; unset: `FRONTEND_URL`.
    pub cors_origins: Option<String>,
    /// `COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// `REQUIRE_EMAIL_VERIFICATION`.
    pub require_email_verification: bool,
    /// `AUTH_RATE_LIMIT_PER_MINUTE`: one budget per client IP for the sign-in routes.
    pub auth_rate_limit_per_minute: u32,
    /// `LOGIN_FAILURE_LIMIT`: failed logins per account per 15 minutes before 429.
    pub login_failure_limit: u32,
    /// `LOG_FORMAT`: `pretty` or `json`.
    pub log_format: String,
    /// `JWT_PRIVATE_KEY`: Ed25519 PKCS#8 PEM; unset: the public development key.
    pub jwt_private_key: Option<String>,
    /// `JWT_ISSUER`.
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `BCRYPT_COST`.
    pub bcrypt_cost: u32,
    /// `HASH_CONCURRENCY`: passwords hashed or checked at once, each on a hashing thread of
    /// its own (0: one per core).
    pub hash_concurrency: usize,
    /// `HASH_NICE`: how far the hashing threads' CPU priority is lowered (0 to 19, Linux
    /// `nice`), so that a login storm soaks up idle CPU but every other route still gets it
    /// first.
    pub hash_nice: i32,
    /// `HASH_QUEUE_TIMEOUT_MS`: how long a request waits for a hashing slot before 503.
    pub hash_queue_timeout_ms: u64,
    /// `VERIFICATION_TTL_SECS`: lifetime of verification links.
    pub verification_ttl_secs: u64,
    /// `OTP_TTL_SECS`: lifetime of verification codes.
    pub otp_ttl_secs: u64,
    /// `RESET_TTL_SECS`: lifetime of password-reset links.
    pub reset_ttl_secs: u64,
    /// `TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose `X-Forwarded-For` is believed;
    /// `none` for none (production requires it to be set, to one or the other).
    pub trusted_proxies: String,
    /// `METRICS_ADDR`: when set, `/metrics` is served only on this separate listener.
    pub metrics_addr: Option<String>,
    /// `EMAILS_PER_RECIPIENT_PER_10_MIN`: emails one address may get in 10 minutes, from every
    /// process together (0: no limit).
    pub emails_per_recipient_per_10_min: u32,
    /// `EMAILS_PER_RECIPIENT_PER_DAY`: emails one address may get in a day (0: no limit).
    pub emails_per_recipient_per_day: u32,
    /// `RETENTION_INTERVAL_SECS`: how often expired sessions and spent tokens are deleted (one
    /// replica at a time).
    pub retention_interval_secs: u64,
    /// `JOBS_DATABASE_URL`: the URL the job service connects with; `auth-service db-roles`
    /// creates the login role it names (user and password) with the job service's grants.
    pub jobs_database_url: Option<String>,
    /// `WORKER_DATABASE_URL`: the same for the worker.
    pub worker_database_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        let tokens = TokenSettings::default();
        Self {
            app_env: "development".to_owned(),
            database_url: "postgres://localhost/taskvault".to_owned(),
            db_pool_size: 16,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_prefix: "tv:".to_owned(),
            auth_addr: "127.0.0.1:8081".to_owned(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 604_800,
            refresh_reuse_grace_secs: 10,
            session_max_age_secs: 30 * 24 * 60 * 60,
            smtp_url: None,
            smtp_timeout_secs: 10,
            mail_from: "Task Vault <no-reply@localhost>".to_owned(),
            frontend_url: "http://localhost:5173".to_owned(),
            cors_origins: None,
            cookie_secure: false,
            require_email_verification: true,
            auth_rate_limit_per_minute: 30,
            login_failure_limit: 10,
            log_format: "pretty".to_owned(),
            jwt_private_key: None,
            jwt_issuer: tokens.issuer,
            jwt_audience: tokens.audience,
            bcrypt_cost: 12,
            hash_concurrency: 0,
            hash_nice: 19,
            hash_queue_timeout_ms: 2000,
            verification_ttl_secs: 86_400,
            otp_ttl_secs: 600,
            reset_ttl_secs: 1_800,
            trusted_proxies: String::new(),
            metrics_addr: None,
            emails_per_recipient_per_10_min: 3,
            emails_per_recipient_per_day: 10,
            retention_interval_secs: 3600,
            jobs_database_url: None,
            worker_database_url: None,
        }
    }
}

/// What `Debug` shows of a secret: whether it is set, never its value.
fn redacted(value: Option<&str>) -> &'static str {
    match value {
        Some(v) if !v.is_empty() => "<redacted>",
        _ => "<unset>",
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("app_env", &self.app_env)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "jobs_database_url",
                &redact_optional_url(self.jobs_database_url.as_deref()),
            )
            .field(
                "worker_database_url",
                &redact_optional_url(self.worker_database_url.as_deref()),
            )
            .field("db_pool_size", &self.db_pool_size)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("auth_addr", &self.auth_addr)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("refresh_reuse_grace_secs", &self.refresh_reuse_grace_secs)
            .field("session_max_age_secs", &self.session_max_age_secs)
            .field("smtp_url", &redact_optional_url(self.smtp_url.as_deref()))
            .field("smtp_timeout_secs", &self.smtp_timeout_secs)
            .field("mail_from", &self.mail_from)
            .field("frontend_url", &self.frontend_url)
            .field("cors_origins", &self.cors_origins)
            .field("cookie_secure", &self.cookie_secure)
            .field(
                "require_email_verification",
                &self.require_email_verification,
            )
            .field(
                "auth_rate_limit_per_minute",
                &self.auth_rate_limit_per_minute,
            )
            .field("login_failure_limit", &self.login_failure_limit)
            .field("log_format", &self.log_format)
            .field(
                "jwt_private_key",
                &redacted(self.jwt_private_key.as_deref()),
            )
            .field("retention_interval_secs", &self.retention_interval_secs)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("hash_nice", &self.hash_nice)
            .field("hash_queue_timeout_ms", &self.hash_queue_timeout_ms)
            .field("verification_ttl_secs", &self.verification_ttl_secs)
            .field("otp_ttl_secs", &self.otp_ttl_secs)
            .field("reset_ttl_secs", &self.reset_ttl_secs)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_addr", &self.metrics_addr)
            .field(
                "emails_per_recipient_per_10_min",
                &self.emails_per_recipient_per_10_min,
            )
            .field(
                "emails_per_recipient_per_day",
                &self.emails_per_recipient_per_day,
            )
            .finish()
    }
}

/// Settings checked and turned into the values the service works with.
#[derive(Clone)]
pub struct Resolved {
    /// The listen address.
    pub addr: SocketAddr,
    /// The signing key.
    pub signing_key: SigningKey,
    /// True when the key is the public development key.
    pub development_key: bool,
    /// The origins allowed by CORS and the CSRF guard.
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The SMTP URL, if mail is sent.
    pub smtp_url: Option<String>,
    /// `APP_ENV=production`.
    pub production: bool,
}

impl Settings {
    /// Reads the settings from the layers described in [`service_kit::settings`].
    pub fn load() -> Result<Self, SettingsError> {
        service_kit::settings::load()
    }

    /// `FRONTEND_URL` without a trailing slash.
    pub fn frontend_base(&self) -> &str {
        self.frontend_url.trim_end_matches('/')
    }

    /// The issuer and audience of the tokens.
    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    /// Refresh-token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    /// Checks every setting; the error names the first refused one.
    pub fn resolve(&self) -> Result<Resolved, SettingsError> {
        let production = is_production(&self.app_env)?;
        let addr = socket_addr("AUTH_ADDR", &self.auth_addr)?;
        let lifetimes = [
            ("ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs),
            ("REFRESH_TOKEN_TTL_SECS", self.refresh_token_ttl_secs),
            ("SESSION_MAX_AGE_SECS", self.session_max_age_secs),
            ("VERIFICATION_TTL_SECS", self.verification_ttl_secs),
            ("OTP_TTL_SECS", self.otp_ttl_secs),
            ("RESET_TTL_SECS", self.reset_ttl_secs),
            ("SMTP_TIMEOUT_SECS", self.smtp_timeout_secs),
        ];
        at_least_one(&lifetimes)?;
        at_least_one(&[
            (
                "AUTH_RATE_LIMIT_PER_MINUTE",
                u64::from(self.auth_rate_limit_per_minute),
            ),
            ("LOGIN_FAILURE_LIMIT", u64::from(self.login_failure_limit)),
            ("HASH_QUEUE_TIMEOUT_MS", self.hash_queue_timeout_ms),
            ("DB_POOL_SIZE", self.db_pool_size as u64),
            ("RETENTION_INTERVAL_SECS", self.retention_interval_secs),
        ])?;
        if !(0..=19).contains(&self.hash_nice) {
            return Err(SettingsError::invalid(
                "HASH_NICE",
                "must be from 0 (normal priority) to 19 (the lowest)",
            ));
        }
        for (name, value) in lifetimes {
            // Expiry times are computed as now + lifetime; beyond this they cannot be
            // represented, and every login would fail.
            if value > MAX_LIFETIME_SECS {
                return Err(SettingsError::invalid(
                    name,
                    format!("must be at most {MAX_LIFETIME_SECS} (ten years)"),
                ));
            }
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(SettingsError::invalid(
                "BCRYPT_COST",
                "must be from 4 to 31",
            ));
        }
        if !matches!(
            self.log_format.to_ascii_lowercase().as_str(),
            "pretty" | "json"
        ) {
            return Err(SettingsError::invalid(
                "LOG_FORMAT",
                "must be `pretty` or `json`",
            ));
        }
        if !(self.frontend_url.starts_with("http://") || self.frontend_url.starts_with("https://"))
        {
            return Err(SettingsError::invalid(
                "FRONTEND_URL",
                "must start with http:// or https://",
            ));
        }
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(SettingsError::invalid(
                "MAIL_FROM",
                "is not an address like `Name <user@host>`",
            ));
        }
        let key = self
            .jwt_private_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let (signing_key, development_key) = match key {
            // A PEM passed through an environment file often has its newlines escaped.
            Some(pem) => {
                let key = SigningKey::from_pem(&pem.replace("\\n", "\n"))
                    .map_err(|e| SettingsError::invalid("JWT_PRIVATE_KEY", e))?;
                let development = key.kid() == SigningKey::development().kid();
                (key, development)
            }
            None if production => {
                return Err(SettingsError::invalid(
                    "JWT_PRIVATE_KEY",
                    "is required when APP_ENV=production (an Ed25519 PKCS#8 PEM, e.g. from `openssl genpkey -algorithm ed25519`)",
                ));
            }
            None => (SigningKey::development(), true),
        };
        let cors_origins = match self.cors_origins.as_deref().map(comma_list) {
            Some(list) if !list.is_empty() => list,
            _ => vec![self.frontend_base().to_owned()],
        };
        let no_proxies = self.trusted_proxies.trim().eq_ignore_ascii_case("none");
        let trusted_proxies = comma_list(if no_proxies {
            ""
        } else {
            &self.trusted_proxies
        })
        .iter()
        .map(|raw| {
            raw.parse::<IpNet>()
                .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    SettingsError::invalid(
                        "TRUSTED_PROXIES",
                        format!("`{raw}` is not an IP address or CIDR"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
        let smtp_url = self
            .smtp_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(SettingsError::invalid(
                "SMTP_URL",
                "must start with smtp:// or smtps://",
            ));
        }
        if production {
            self.refuse_unsafe_in_production(development_key, &cors_origins, smtp_url.is_some())?;
        }
        Ok(Resolved {
            addr,
            signing_key,
            development_key,
            cors_origins,
            trusted_proxies,
            smtp_url,
            production,
        })
    }
}

impl Settings {
    /// With `APP_ENV=production`, refuses every setting that is only safe on a laptop; the
    /// error names the setting and says what to do.
    fn refuse_unsafe_in_production(
        &self,
        development_key: bool,
        cors_origins: &[String],
        smtp: bool,
    ) -> Result<(), SettingsError> {
        if development_key {
            return Err(SettingsError::invalid(
                "JWT_PRIVATE_KEY",
                "is the public development key, which anyone can sign with; generate your own (`openssl genpkey -algorithm ed25519`) when APP_ENV=production",
            ));
        }
        if !self.cookie_secure {
            return Err(SettingsError::invalid(
                "COOKIE_SECURE",
                "must be true when APP_ENV=production, so that session cookies only travel over HTTPS",
            ));
        }
        require_https("FRONTEND_URL", &self.frontend_url)?;
        for origin in cors_origins {
            require_https("CORS_ORIGINS", origin)?;
        }
        if self.bcrypt_cost < MIN_PRODUCTION_BCRYPT_COST {
            return Err(SettingsError::invalid(
                "BCRYPT_COST",
                format!("must be at least {MIN_PRODUCTION_BCRYPT_COST} when APP_ENV=production"),
            ));
        }
        if !smtp {
            return Err(SettingsError::invalid(
                "SMTP_URL",
                "is required when APP_ENV=production: verification and reset emails must be sent, not logged",
            ));
        }
        if self.trusted_proxies.trim().is_empty() {
            return Err(SettingsError::invalid(
                "TRUSTED_PROXIES",
                "must be set when APP_ENV=production: the addresses of the proxies in front of the service (behind an ingress, every client would otherwise share its address and one per-IP budget), or `none` when clients connect directly",
            ));
        }
        Ok(())
    }
}
