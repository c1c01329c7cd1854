//! The load generators: C concurrent clients on one shared connection pool.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::stats::Rng;

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of every submitted job.
const NOOP_JOB: &str = r#"{"type":"noop"}"#;

/// A client for the API, with the bearer token of the benchmark's user.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    jobs_url: String,
    bearer: HeaderValue,
}

/// Errors by kind (`HTTP 500`, `timeout`, …), with the first message of each kind.
#[derive(Debug, Default)]
pub struct Errors {
    /// Kind → count.
    pub counts: BTreeMap<String, u64>,
    /// Kind → first detail seen.
    pub first: BTreeMap<String, String>,
}

impl Errors {
    fn record(&mut self, kind: String, detail: String) {
        *self.counts.entry(kind.clone()).or_default() += 1;
        self.first.entry(kind).or_insert(detail);
    }

    fn merge(&mut self, other: Errors) {
        for (kind, n) in other.counts {
            *self.counts.entry(kind).or_default() += n;
        }
        for (kind, detail) in other.first {
            self.first.entry(kind).or_insert(detail);
        }
    }

    /// Total number of errors.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// `kind: first detail` lines, for the log.
    pub fn describe(&self) -> String {
        self.counts
            .iter()
            .map(|(kind, n)| {
                let detail = self.first.get(kind).map(String::as_str).unwrap_or_default();
                format!("{n} × {kind} (first: {})", truncate(detail, 300))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One accepted submission.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// The job's id.
    pub id: Uuid,
    /// Wall-clock time just before the request was sent.
    pub sent_at: DateTime<Utc>,
}

/// What a batch of submissions produced.
#[derive(Debug, Default)]
pub struct SubmitRun {
    /// Accepted jobs, in no particular order.
    pub accepted: Vec<Accepted>,
    /// Request latencies of accepted submissions, µs.
    pub latencies_us: Vec<u64>,
    /// Failed submissions.
    pub errors: Errors,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Whether the deadline cut it short.
    pub cut_short: bool,
}

/// What the read phase produced.
#[derive(Debug, Default)]
pub struct ReadRun {
    /// Latencies of successful reads, µs.
    pub latencies_us: Vec<u64>,
    /// Failed reads.
    pub errors: Errors,
    /// How long it ran.
    pub elapsed: Duration,
}

#[derive(Deserialize)]
struct JobEnvelope {
    job: JobRef,
}

#[derive(Deserialize)]
struct JobRef {
    id: Uuid,
}

#[derive(Deserialize)]
struct LoginAnswer {
    access_token: String,
}

/// A reqwest client for `clients` concurrent users of one host over loopback.
pub fn http_client(clients: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(clients.max(1) * 2)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

impl Api {
    /// Signs up a fresh user and logs in.
    /// The same user and client against another job service (sharing the auth service).
    pub fn with_jobs_url(&self, jobs_url: &str) -> Self {
        Self {
            client: self.client.clone(),
            jobs_url: jobs_url.to_owned(),
            bearer: self.bearer.clone(),
        }
    }

    pub async fn sign_in(client: reqwest::Client, auth_url: &str, jobs_url: &str) -> Result<Self> {
        let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
        let credentials = serde_json::json!({ "email": email, "password": "bench-password-123" });
        let signup = client
            .post(format!("{auth_url}/api/auth/signup"))
            .json(&credentials)
            .send()
            .await
            .context("POST /api/auth/signup")?;
        if signup.status() != StatusCode::ACCEPTED {
            let status = signup.status();
            bail!(
                "POST /api/auth/signup: expected 202, got {status}: {}",
                signup.text().await?
            );
        }
        let login = client
            .post(format!("{auth_url}/api/auth/login"))
            .json(&credentials)
            .send()
            .await
            .context("POST /api/auth/login")?;
        if login.status() != StatusCode::OK {
            let status = login.status();
            bail!(
                "POST /api/auth/login: expected 200, got {status}: {}",
                login.text().await?
            );
        }
        let body: LoginAnswer = login
            .json()
            .await
            .context("login answer without access_token")?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", body.access_token))?;
        Ok(Self {
            client,
            jobs_url: jobs_url.to_owned(),
            bearer,
        })
    }

    /// Submits one `noop` job and checks that a single one goes through.
    pub async fn probe_submit(&self) -> Result<Uuid> {
        let response = self
            .submit_request()
            .send()
            .await
            .context("POST /api/jobs/submit")?;
        let status = response.status();
        let text = response.text().await?;
        if status != StatusCode::CREATED {
            bail!(
                "POST /api/jobs/submit: expected 201, got {status}: {}",
                truncate(&text, 500)
            );
        }
        let body: JobEnvelope = serde_json::from_str(&text)
            .with_context(|| format!("submit answer without job.id: {}", truncate(&text, 500)))?;
        let read = self
            .get_job(body.job.id)
            .send()
            .await
            .context("GET /api/jobs/{id}")?;
        if read.status() != StatusCode::OK {
            let status = read.status();
            bail!(
                "GET /api/jobs/{}: expected 200, got {status}: {}",
                body.job.id,
                read.text().await?
            );
        }
        Ok(body.job.id)
    }

    fn submit_request(&self) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/api/jobs/submit", self.jobs_url))
            .header(AUTHORIZATION, self.bearer.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(NOOP_JOB)
    }

    /// `POST /api/jobs/submit-batch` with `body` (already JSON).
    pub fn submit_batch_request(&self, body: String) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/api/jobs/submit-batch", self.jobs_url))
            .header(AUTHORIZATION, self.bearer.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
    }

    fn get_job(&self, id: Uuid) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}/api/jobs/{id}", self.jobs_url))
            .header(AUTHORIZATION, self.bearer.clone())
    }

    /// Submits `n` `noop` jobs with `clients` concurrent clients, stopping at `deadline`.
    pub async fn submit_many(
        &self,
        n: usize,
        clients: usize,
        deadline: Instant,
    ) -> Result<SubmitRun> {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..clients.max(1) {
            let api = self.clone();
            let next = Arc::clone(&next);
            tasks.spawn(async move {
                let mut run = SubmitRun::default();
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    if Instant::now() >= deadline {
                        run.cut_short = true;
                        break;
                    }
                    let sent_at = Utc::now();
                    let t0 = Instant::now();
                    match api.submit_request().send().await {
                        Ok(response) if response.status() == StatusCode::CREATED => {
                            match response.json::<JobEnvelope>().await {
                                Ok(body) => {
                                    run.latencies_us.push(micros(t0.elapsed()));
                                    run.accepted.push(Accepted {
                                        id: body.job.id,
                                        sent_at,
                                    });
                                }
                                Err(e) => run.errors.record("bad body".to_owned(), e.to_string()),
                            }
                        }
                        Ok(response) => {
                            let kind = format!("HTTP {}", response.status().as_u16());
                            run.errors
                                .record(kind, response.text().await.unwrap_or_default());
                        }
                        Err(e) => run.errors.record(error_kind(&e), format!("{e:#}")),
                    }
                }
                run
            });
        }
        let mut total = SubmitRun::default();
        while let Some(joined) = tasks.join_next().await {
            let run = joined?;
            total.accepted.extend(run.accepted);
            total.latencies_us.extend(run.latencies_us);
            total.errors.merge(run.errors);
            total.cut_short |= run.cut_short;
        }
        total.elapsed = started.elapsed();
        Ok(total)
    }

    /// Reads random jobs among `ids` with `clients` concurrent clients for `duration`.
    pub async fn read_for(
        &self,
        ids: Arc<Vec<Uuid>>,
        clients: usize,
        duration: Duration,
    ) -> Result<ReadRun> {
        if ids.is_empty() {
            bail!("no job to read");
        }
        let started = Instant::now();
        let until = started + duration;
        let mut tasks = JoinSet::new();
        for task in 0..clients.max(1) {
            let api = self.clone();
            let ids = Arc::clone(&ids);
            tasks.spawn(async move {
                let mut rng = Rng::new(0x5EED_0000 + task as u64 * 7919);
                let mut run = ReadRun::default();
                while Instant::now() < until {
                    let id = ids[rng.below(ids.len())];
                    let t0 = Instant::now();
                    match api.get_job(id).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            // Read the whole body: that is part of serving the request.
                            match response.bytes().await {
                                Ok(_) => run.latencies_us.push(micros(t0.elapsed())),
                                Err(e) => run.errors.record(error_kind(&e), format!("{e:#}")),
                            }
                        }
                        Ok(response) => {
                            let kind = format!("HTTP {}", response.status().as_u16());
                            run.errors
                                .record(kind, response.text().await.unwrap_or_default());
                        }
                        Err(e) => run.errors.record(error_kind(&e), format!("{e:#}")),
                    }
                }
                run
            });
        }
        let mut total = ReadRun::default();
        while let Some(joined) = tasks.join_next().await {
            let run = joined?;
            total.latencies_us.extend(run.latencies_us);
            total.errors.merge(run.errors);
        }
        total.elapsed = started.elapsed();
        Ok(total)
    }
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connect error".to_owned()
    } else if e.is_body() || e.is_decode() {
        "body error".to_owned()
    } else {
        "request error".to_owned()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
