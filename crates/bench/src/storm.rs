//! `--login-storm`: does a login storm starve the other routes of the auth service?
//!
//! Starts only the auth service (at the production `BCRYPT_COST` of 12 unless `--env` says
//! otherwise), then, `--repeat` times:
//!
//! 1. **bound**: how many bcrypt checks per second this machine does at that cost on every
//!    core at once, measured in this process right before the load (the machine's hashing
//!    bound, in the same run as the figures it is compared with);
//! 2. **unloaded**: `--clients` connections call `GET /api/auth/me` for `--storm-secs`;
//! 3. **storm**: the same, while `--storm-connections` connections hammer
//!    `POST /api/auth/login` with the right password.
//!
//! It reports, per round and as the median of the rounds: `/me` p99 under storm ÷ unloaded
//! (target ≤ 2) and logins/s ÷ the hashing bound (target ≥ 0.5).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::stats::Latency;

const PASSWORD: &str = "bench-password-123";

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// bcrypt checks per second on every core at once (the machine's hashing bound).
    pub hashing_bound_per_sec: f64,
    /// `/me` requests per second, unloaded.
    pub me_unloaded_per_sec: f64,
    /// `/me` latency, unloaded.
    pub me_unloaded: Latency,
    /// `/me` requests per second during the storm.
    pub me_storm_per_sec: f64,
    /// `/me` latency during the storm.
    pub me_storm: Latency,
    /// Successful logins per second during the storm.
    pub logins_per_sec: f64,
    /// Logins answered 503 (hashing saturated) during the storm.
    pub logins_refused: u64,
    /// `/me` p99 during the storm ÷ unloaded (target ≤ 2).
    pub p99_ratio: f64,
    /// Logins per second ÷ the hashing bound (target ≥ 0.5).
    pub login_share_of_bound: f64,
}

/// The report of `--login-storm`.
#[derive(Debug, Serialize)]
pub struct StormReport {
    /// BCRYPT_COST of the run.
    pub bcrypt_cost: u32,
    /// The rounds.
    pub rounds: Vec<Round>,
    /// Median `p99_ratio` of the rounds.
    pub median_p99_ratio: f64,
    /// Median `login_share_of_bound` of the rounds.
    pub median_login_share_of_bound: f64,
}

impl StormReport {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "login storm (BCRYPT_COST={}): /me p99 storm/unloaded (target <= 2), logins/s / hashing bound (target >= 0.5)\n",
            self.bcrypt_cost
        );
        for (n, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  round {}: bound {:.1}/s | /me unloaded {:.0}/s p99 {:.1} ms | storm {:.0}/s p99 {:.1} ms | logins {:.2}/s ({} refused) | p99 x{:.2} | logins {:.0}% of bound\n",
                n + 1,
                r.hashing_bound_per_sec,
                r.me_unloaded_per_sec,
                r.me_unloaded.p99_ms,
                r.me_storm_per_sec,
                r.me_storm.p99_ms,
                r.logins_per_sec,
                r.logins_refused,
                r.p99_ratio,
                r.login_share_of_bound * 100.0,
            ));
        }
        out.push_str(&format!(
            "  median: p99 x{:.2} ({}), logins {:.0}% of the hashing bound ({})\n",
            self.median_p99_ratio,
            if self.median_p99_ratio <= 2.0 {
                "met"
            } else {
                "MISSED"
            },
            self.median_login_share_of_bound * 100.0,
            if self.median_login_share_of_bound >= 0.5 {
                "met"
            } else {
                "MISSED"
            },
        ));
        out
    }
}

/// bcrypt checks per second with one thread per core for `secs`.
async fn hashing_bound(cost: u32, secs: f64) -> Result<f64> {
    let hash = bcrypt::hash(PASSWORD, cost)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hash, stop, done) = (hash.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = bcrypt::verify(PASSWORD, &hash);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// `connections` loops calling `GET /me` until `until`: requests/s and latency.
async fn me_load(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    connections: usize,
    until: Instant,
) -> (f64, Latency) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < until {
                let sent = Instant::now();
                let ok = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    samples.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(result) = tasks.join_next().await {
        samples.extend(result.unwrap_or_default());
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    (rate, Latency::from_micros(&mut samples))
}

/// `connections` loops logging in until `until`: successes/s and 503s.
async fn login_storm(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    connections: usize,
    until: Instant,
) -> (f64, u64) {
    let started = Instant::now();
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url) = (client.clone(), url.to_owned());
        let (ok, refused) = (ok.clone(), refused.clone());
        let body = json!({"email": email, "password": PASSWORD});
        tasks.spawn(async move {
            while Instant::now() < until {
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 503 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        // As a client honouring Retry-After would, but keep the pressure on.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    (
        ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        refused.load(Ordering::Relaxed),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the storm rounds against the auth service at `auth_url`.
pub async fn run(
    auth_url: &str,
    bcrypt_cost: u32,
    clients: usize,
    storm_connections: usize,
    secs: u64,
    repeat: usize,
) -> Result<StormReport> {
    if repeat == 0 || secs == 0 {
        bail!("--repeat and --storm-secs must be at least 1");
    }
    let client = crate::load::http_client(clients + storm_connections)?;
    let email = format!("storm-{}@example.com", uuid::Uuid::new_v4().simple());
    let credentials = json!({"email": email, "password": PASSWORD});
    client
        .post(format!("{auth_url}/api/auth/signup"))
        .json(&credentials)
        .send()
        .await?
        .error_for_status()
        .context("sign-up")?;
    let login: serde_json::Value = client
        .post(format!("{auth_url}/api/auth/login"))
        .json(&credentials)
        .send()
        .await?
        .error_for_status()
        .context("login (the auth service must run with REQUIRE_EMAIL_VERIFICATION=false)")?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let me_url = format!("{auth_url}/api/auth/me");
    let login_url = format!("{auth_url}/api/auth/login");
    let window = Duration::from_secs(secs);

    let mut rounds = Vec::new();
    for n in 1..=repeat {
        eprintln!("bench: login storm round {n}/{repeat}: hashing bound");
        let bound = hashing_bound(bcrypt_cost, 3.0).await?;
        eprintln!("bench: round {n}: /me unloaded for {secs} s");
        // Warm the connections first.
        me_load(
            &client,
            &me_url,
            &token,
            clients,
            Instant::now() + Duration::from_millis(300),
        )
        .await;
        let (me_unloaded_per_sec, me_unloaded) =
            me_load(&client, &me_url, &token, clients, Instant::now() + window).await;
        eprintln!("bench: round {n}: /me during a login storm for {secs} s");
        let until = Instant::now() + window;
        let (storm, me) = tokio::join!(
            login_storm(&client, &login_url, &email, storm_connections, until),
            me_load(&client, &me_url, &token, clients, until),
        );
        let (logins_per_sec, logins_refused) = storm;
        let (me_storm_per_sec, me_storm) = me;
        rounds.push(Round {
            hashing_bound_per_sec: bound,
            me_unloaded_per_sec,
            me_unloaded,
            me_storm_per_sec,
            me_storm,
            logins_per_sec,
            logins_refused,
            p99_ratio: me_storm.p99_ms / me_unloaded.p99_ms.max(0.001),
            login_share_of_bound: logins_per_sec / bound.max(0.001),
        });
        // Let the last hashes finish before the next round measures the bound.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(StormReport {
        bcrypt_cost,
        median_p99_ratio: median(rounds.iter().map(|r| r.p99_ratio).collect()),
        median_login_share_of_bound: median(
            rounds.iter().map(|r| r.login_share_of_bound).collect(),
        ),
        rounds,
    })
}
