//! The worker's configuration (see [`service_kit::settings`] for the layers).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use service_kit::settings::SettingsError;

/// Settings, named after their environment variables in lower case. `Debug` hides the
/// credentials in URLs, so settings printed while debugging cannot leak them into logs.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `APP_ENV`: `development` or `production`; production requires `SMTP_URL`.
    pub app_env: String,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `WORKER_ADDR`: where `/healthz`, `/readyz` and `/metrics` are served.
    pub worker_addr: String,
    /// `REDIS_PREFIX`: namespace of every Redis key (the job service must use the same).
    pub redis_prefix: String,
    /// `SMTP_URL`: where `send_email` jobs send; unset, emails are logged instead.
    pub smtp_url: Option<String>,
    /// `SMTP_TIMEOUT_SECS`: how long one delivery may take before the attempt fails.
    pub smtp_timeout_secs: u64,
    /// `MAIL_FROM`: sender of `send_email` jobs.
    pub mail_from: String,
    /// `WORKER_CONCURRENCY`: jobs executed at once (256: a worker claims at most as many jobs
    /// as it has free slots, so strict priority holds, and with 16 slots short jobs could not
    /// keep pace with one job service's submits).
    pub worker_concurrency: usize,
    /// `JOB_RETRY_BASE_MS`: first retry delay; doubles per attempt, jittered, capped.
    pub job_retry_base_ms: u64,
    /// `JOB_RETRY_MAX_MS`: cap of the retry delay (1 h).
    pub job_retry_max_ms: u64,
    /// `JOB_LEASE_SECS`: how long a claimed job may go without a heartbeat.
    pub job_lease_secs: u64,
    /// `JOB_TIMEOUT_SECS`: time limit of one attempt (above the longest `sleep`, 600 s).
    pub job_timeout_secs: u64,
    /// `RECONCILE_INTERVAL_SECS`: how often PostgreSQL's queued and running jobs are checked
    /// against Redis (one worker at a time does it).
    pub reconcile_interval_secs: u64,
    /// `REAPER_INTERVAL_MS`: how often expired leases are taken back.
    pub reaper_interval_ms: u64,
    /// `PROMOTE_INTERVAL_MS`: the longest the promoter sleeps; it wakes when the next
    /// scheduled job is due or a job is scheduled, so this is a safety net, not a poll.
    pub promote_interval_ms: u64,
    /// `SCHEDULE_MAX_SLEEP_SECS`: the longest the scheduler sleeps; it wakes when the next
    /// schedule is due or one is created or resumed, so this is a safety net, not a poll.
    pub schedule_max_sleep_secs: u64,
    /// `IDLE_POLL_MS`: the longest an idle claim loop waits for a wake-up (jobs made ready
    /// publish one) before it looks again anyway: a safety net, not a poll.
    pub idle_poll_ms: u64,
    /// `SHUTDOWN_GRACE_SECS`: how long SIGTERM waits for running jobs before releasing them.
    pub shutdown_grace_secs: u64,
    /// `CLAIM_BATCH`: most jobs taken by one claim.
    pub claim_batch: usize,
    /// `CLAIM_LOOPS`: concurrent claim loops.
    pub claim_loops: usize,
    /// `FLUSH_INTERVAL_MS`: how long a batch of finished attempts stays open after its first
    /// one before it is written (0: written at once when a writer is free; outcomes that end
    /// while the writers are busy are written together anyway).
    pub flush_interval_ms: u64,
    /// `FLUSH_MAX`: most outcomes written by one statement.
    pub flush_max: usize,
    /// `DB_POOL_SIZE`: PostgreSQL connections.
    pub db_pool_size: usize,
    /// `REDIS_POOL_SIZE`: Redis connections.
    pub redis_pool_size: usize,
    /// `REDIS_TIMEOUT_MS`: how long a claim, renewal or other small Redis command may wait
    /// for its answer (reconcile scripts get 30 s). A claim that times out after Redis
    /// applied it is taken back when its lease expires.
    pub redis_timeout_ms: u64,
    /// `LOG_FORMAT`: `pretty` or `json`.
    pub log_format: String,
    /// `WORKER_EXECUTION_LOG`: test aid. When set, every handler execution appends a line
    /// `<job id> <attempt> <unix ms>` to this file, so tests can count executions.
    pub worker_execution_log: Option<String>,
    /// `METRICS_ADDR`: when set, `/metrics` is served only on this separate listener (and
    /// `WORKER_ADDR` keeps `/healthz` and `/readyz`).
    pub metrics_addr: Option<String>,
    /// `EMAILS_PER_RECIPIENT_PER_10_MIN`: emails one address may get in 10 minutes, counted
    /// together with the auth service's (0: no limit); past it a `send_email` attempt fails.
    pub emails_per_recipient_per_10_min: u32,
    /// `EMAILS_PER_RECIPIENT_PER_DAY`: emails one address may get in a day (0: no limit).
    pub emails_per_recipient_per_day: u32,
    /// `JOB_RETENTION_DAYS`: completed and cancelled jobs are deleted this long after they
    /// finished.
    pub job_retention_days: u32,
    /// `FAILED_JOB_RETENTION_DAYS`: failed jobs are deleted this long after they failed.
    pub failed_job_retention_days: u32,
    /// `RETENTION_INTERVAL_SECS`: how often old jobs are looked for (one worker at a time).
    pub retention_interval_secs: u64,
    /// `TYPE_CONCURRENCY`: per-type limits on jobs running at once across every worker, as
    /// `type=n` pairs separated by commas (`send_email=2,sleep=8`); empty: none. Every worker
    /// should have the same value (each claim applies the claiming worker's).
    pub type_concurrency: String,
    /// `TYPE_RATE_PER_SEC`: per-type limits on jobs started in any one-second window across
    /// every worker, as `type=n` pairs (`send_email=5`); empty: none.
    pub type_rate_per_sec: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            app_env: "development".to_owned(),
            database_url: "postgres://localhost/taskvault".to_owned(),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            worker_addr: "127.0.0.1:8083".to_owned(),
            redis_prefix: "tv:".to_owned(),
            smtp_url: None,
            smtp_timeout_secs: 10,
            mail_from: "Task Vault <no-reply@localhost>".to_owned(),
            worker_concurrency: 256,
            job_retry_base_ms: 1000,
            job_retry_max_ms: 3_600_000,
            job_lease_secs: 30,
            job_timeout_secs: 900,
            reconcile_interval_secs: 10,
            reaper_interval_ms: 1000,
            promote_interval_ms: 5000,
            idle_poll_ms: 5000,
            schedule_max_sleep_secs: 60,
            shutdown_grace_secs: 30,
            claim_batch: 256,
            claim_loops: 2,
            flush_interval_ms: 0,
            flush_max: 1024,
            db_pool_size: 16,
            redis_pool_size: 16,
            redis_timeout_ms: 2000,
            log_format: "pretty".to_owned(),
            worker_execution_log: None,
            metrics_addr: None,
            emails_per_recipient_per_10_min: 3,
            emails_per_recipient_per_day: 10,
            job_retention_days: 30,
            failed_job_retention_days: 90,
            retention_interval_secs: 3600,
            type_concurrency: String::new(),
            type_rate_per_sec: String::new(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use service_kit::settings::{redact_optional_url, redact_url};
        // Destructured without `..`, so a new setting cannot be left out by mistake.
        let Self {
            app_env,
            database_url,
            redis_url,
            worker_addr,
            redis_prefix,
            smtp_url,
            smtp_timeout_secs,
            mail_from,
            worker_concurrency,
            job_retry_base_ms,
            job_retry_max_ms,
            job_lease_secs,
            job_timeout_secs,
            reconcile_interval_secs,
            reaper_interval_ms,
            promote_interval_ms,
            idle_poll_ms,
            schedule_max_sleep_secs,
            shutdown_grace_secs,
            claim_batch,
            claim_loops,
            flush_interval_ms,
            flush_max,
            db_pool_size,
            redis_pool_size,
            redis_timeout_ms,
            log_format,
            worker_execution_log,
            metrics_addr,
            emails_per_recipient_per_10_min,
            emails_per_recipient_per_day,
            job_retention_days,
            failed_job_retention_days,
            retention_interval_secs,
            type_concurrency,
            type_rate_per_sec,
        } = self;
        f.debug_struct("Settings")
            .field("app_env", app_env)
            .field("database_url", &redact_url(database_url))
            .field("redis_url", &redact_url(redis_url))
            .field("worker_addr", worker_addr)
            .field("redis_prefix", redis_prefix)
            .field("smtp_url", &redact_optional_url(smtp_url.as_deref()))
            .field("smtp_timeout_secs", smtp_timeout_secs)
            .field("mail_from", mail_from)
            .field("worker_concurrency", worker_concurrency)
            .field("job_retry_base_ms", job_retry_base_ms)
            .field("job_retry_max_ms", job_retry_max_ms)
            .field("job_lease_secs", job_lease_secs)
            .field("job_timeout_secs", job_timeout_secs)
            .field("reconcile_interval_secs", reconcile_interval_secs)
            .field("reaper_interval_ms", reaper_interval_ms)
            .field("promote_interval_ms", promote_interval_ms)
            .field("idle_poll_ms", idle_poll_ms)
            .field("schedule_max_sleep_secs", schedule_max_sleep_secs)
            .field("shutdown_grace_secs", shutdown_grace_secs)
            .field("claim_batch", claim_batch)
            .field("claim_loops", claim_loops)
            .field("flush_interval_ms", flush_interval_ms)
            .field("flush_max", flush_max)
            .field("db_pool_size", db_pool_size)
            .field("redis_pool_size", redis_pool_size)
            .field("redis_timeout_ms", redis_timeout_ms)
            .field("log_format", log_format)
            .field("worker_execution_log", worker_execution_log)
            .field("metrics_addr", metrics_addr)
            .field(
                "emails_per_recipient_per_10_min",
                emails_per_recipient_per_10_min,
            )
            .field("emails_per_recipient_per_day", emails_per_recipient_per_day)
            .field("job_retention_days", job_retention_days)
            .field("failed_job_retention_days", failed_job_retention_days)
            .field("retention_interval_secs", retention_interval_secs)
            .field("type_concurrency", type_concurrency)
            .field("type_rate_per_sec", type_rate_per_sec)
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
        service_kit::settings::socket_addr("WORKER_ADDR", &self.worker_addr)?;
        service_kit::settings::at_least_one(&[
            ("WORKER_CONCURRENCY", self.worker_concurrency as u64),
            ("JOB_RETRY_BASE_MS", self.job_retry_base_ms),
            ("JOB_LEASE_SECS", self.job_lease_secs),
            ("SMTP_TIMEOUT_SECS", self.smtp_timeout_secs),
            ("JOB_TIMEOUT_SECS", self.job_timeout_secs),
            ("RECONCILE_INTERVAL_SECS", self.reconcile_interval_secs),
            ("REAPER_INTERVAL_MS", self.reaper_interval_ms),
            ("PROMOTE_INTERVAL_MS", self.promote_interval_ms),
            ("SCHEDULE_MAX_SLEEP_SECS", self.schedule_max_sleep_secs),
            ("CLAIM_BATCH", self.claim_batch as u64),
            ("CLAIM_LOOPS", self.claim_loops as u64),
            ("FLUSH_MAX", self.flush_max as u64),
            ("DB_POOL_SIZE", self.db_pool_size as u64),
            ("REDIS_POOL_SIZE", self.redis_pool_size as u64),
            ("REDIS_TIMEOUT_MS", self.redis_timeout_ms),
            ("JOB_RETENTION_DAYS", u64::from(self.job_retention_days)),
            (
                "FAILED_JOB_RETENTION_DAYS",
                u64::from(self.failed_job_retention_days),
            ),
            ("RETENTION_INTERVAL_SECS", self.retention_interval_secs),
        ])?;
        self.type_limits()?;
        if self.job_retry_max_ms < self.job_retry_base_ms {
            return Err(SettingsError::invalid(
                "JOB_RETRY_MAX_MS",
                "must be at least JOB_RETRY_BASE_MS",
            ));
        }
        if let Some(url) = &self.smtp_url
            && !url.trim().is_empty()
            && !url.starts_with("smtp")
        {
            return Err(SettingsError::invalid(
                "SMTP_URL",
                "must be an smtp:// or smtps:// URL",
            ));
        }
        let smtp = self
            .smtp_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty());
        if service_kit::settings::is_production(&self.app_env)? && !smtp {
            return Err(SettingsError::invalid(
                "SMTP_URL",
                "is required when APP_ENV=production: send_email jobs must send, not log",
            ));
        }
        Ok(())
    }

    /// What retention deletes: finished jobs past their retention.
    pub fn retention_sweeps(&self) -> Vec<persistence::retention::Sweep> {
        use domain::job::JobStatus;
        use persistence::retention::Sweep;
        let days = |n: u32| chrono::Duration::days(i64::from(n));
        vec![
            Sweep::FinishedJobs {
                status: JobStatus::Completed,
                older_than: days(self.job_retention_days),
            },
            Sweep::FinishedJobs {
                status: JobStatus::Cancelled,
                older_than: days(self.job_retention_days),
            },
            Sweep::FinishedJobs {
                status: JobStatus::Failed,
                older_than: days(self.failed_job_retention_days),
            },
        ]
    }

    /// The per-type limits of `TYPE_CONCURRENCY` and `TYPE_RATE_PER_SEC`.
    pub fn type_limits(&self) -> Result<job_queue::TypeLimits, SettingsError> {
        Ok(job_queue::TypeLimits {
            concurrency: per_type("TYPE_CONCURRENCY", &self.type_concurrency)?,
            rate_per_sec: per_type("TYPE_RATE_PER_SEC", &self.type_rate_per_sec)?,
        })
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.job_lease_secs)
    }

    /// How often leases are renewed and cancellations looked for: a third of the lease, at
    /// most one second (so a cancelled job stops within about a second).
    pub fn heartbeat(&self) -> Duration {
        (self.lease() / 3).min(Duration::from_secs(1))
    }
}

/// Parses `type=n,type=n` (spaces allowed, empty: nothing) into positive limits per known
/// job type; `name` is the variable, for the error.
fn per_type(name: &str, value: &str) -> Result<HashMap<job_queue::JobType, u32>, SettingsError> {
    let mut limits = HashMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((job_type, n)) = pair.split_once('=') else {
            return Err(SettingsError::invalid(
                name,
                format!("`{pair}` is not `type=n` (e.g. `send_email=2`)"),
            ));
        };
        let job_type: job_queue::JobType = job_type.trim().parse().map_err(|_| {
            SettingsError::invalid(
                name,
                format!(
                    "unknown job type `{}`; known types: {}",
                    job_type.trim(),
                    job_queue::JobType::ALL
                        .map(job_queue::JobType::as_str)
                        .join(", ")
                ),
            )
        })?;
        let n: u32 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            SettingsError::invalid(
                name,
                format!("the limit of `{}` must be a whole number of at least 1 (to stop a type, pause it)", job_type.as_str()),
            )
        })?;
        if limits.insert(job_type, n).is_some() {
            return Err(SettingsError::invalid(
                name,
                format!("`{}` is named twice", job_type.as_str()),
            ));
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::unwrap_used, reason = "a test: a panic is the failure")]
    fn per_type_limits_parse_and_refuse_nonsense() {
        let settings = Settings {
            type_concurrency: " send_email=2, sleep = 8 ".to_owned(),
            type_rate_per_sec: "send_email=5".to_owned(),
            ..Settings::default()
        };
        let limits = settings.type_limits().unwrap();
        assert_eq!(limits.concurrency[&job_queue::JobType::SendEmail], 2);
        assert_eq!(limits.concurrency[&job_queue::JobType::Sleep], 8);
        assert_eq!(limits.rate_per_sec[&job_queue::JobType::SendEmail], 5);
        assert!(Settings::default().type_limits().unwrap().is_empty());
        for bad in [
            "sleep",
            "nope=1",
            "sleep=0",
            "sleep=-1",
            "sleep=x",
            "sleep=1,sleep=2",
        ] {
            let settings = Settings {
                type_concurrency: bad.to_owned(),
                ..Settings::default()
            };
            let error = settings.check().unwrap_err().to_string();
            assert!(error.contains("TYPE_CONCURRENCY"), "{bad}: {error}");
        }
    }

    #[test]
    fn debug_output_hides_credentials_in_urls() {
        let settings = Settings {
            database_url: "postgres://worker:db-secret@db/taskvault".to_owned(),
            redis_url: "redis://:redis-secret@cache:6379".to_owned(),
            smtp_url: Some("smtps://mailer:smtp-secret@mail.example.com".to_owned()),
            ..Settings::default()
        };
        let printed = format!("{settings:?}");
        for secret in ["db-secret", "redis-secret", "smtp-secret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("worker_concurrency: 256"), "{printed}");
    }
}
