//! `bench --ws`: the real-time gateway (`GET /api/ws`) of release `job-service` binaries.
//!
//! Phases, each run `--ws-runs` times (median reported), every run on freshly started replicas:
//!
//! 1. **connect**: `--ws-sockets` authenticated sockets (each its own user and session, tokens
//!    signed beforehand with the development key the replicas trust) opened against one
//!    replica, `--ws-concurrency` handshakes in flight: sockets/s, and the server's resident
//!    memory growth (`VmRSS` from `/proc`) per socket once all are open and idle.
//! 2. **events**: `--ws-users` users connected; `jobUpdated` events published to their
//!    channels the way the worker publishes them, at `--ws-event-rate` per second: latency from
//!    the event's `updated_at` (set when published) to the frame parsed by the client, p50/p99.
//!    Then rising rates until p99 passes 50 ms or events go missing: the highest rate that held.
//! 3. **fan-out**: `--ws-room-members` sockets in one room, `--ws-room-messages` messages sent
//!    into it: the replicas' CPU time (`/proc/<pid>/task/*/schedstat`) per delivered message,
//!    on one replica and with the members split over two.
//!
//! Machine limits measured in the same run, to read the figures against: Redis round trips/s
//! on one connection, and loopback TCP connects (+ accept) per second.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use access_token::{Claims, SigningKey, TokenSettings};
use anyhow::{Context as _, Result, anyhow, bail};
use domain::{Role, SessionId, UserId};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::services::Service;
use crate::stats::Latency;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct WsConfig {
    /// Sockets in phase connect.
    pub sockets: usize,
    /// Handshakes in flight.
    pub concurrency: usize,
    /// Users in phase events.
    pub users: usize,
    /// Events per second in phase events.
    pub event_rate: u32,
    /// Seconds per event rate.
    pub event_secs: u64,
    /// Members of the fan-out room.
    pub room_members: usize,
    /// Messages into the room.
    pub room_messages: usize,
    /// Repetitions of each phase.
    pub runs: usize,
    /// Seconds the connect phase's sockets stay open after measuring.
    pub hold_secs: u64,
}

/// The figures of one run of every phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WsRun {
    /// Sockets opened per second.
    pub connects_per_sec: f64,
    /// Server resident memory growth per open idle socket, bytes.
    pub rss_bytes_per_socket: f64,
    /// Server CPU during phase connect, percent of one core.
    pub connect_server_cpu_percent: f64,
    /// Latency at `event_rate`.
    pub events: Latency,
    /// Server CPU at `event_rate`, percent of one core.
    pub events_server_cpu_percent: f64,
    /// Redis PING round trips (own connection, one every 2 ms) during the same seconds as
    /// `events`: what the loaded machine does to a round trip that involves no gateway.
    pub events_redis_rtt: Latency,
    /// The highest event rate with p99 ≤ 50 ms and nothing lost.
    pub max_event_rate: u32,
    /// p99 at that rate, ms.
    pub max_event_rate_p99_ms: f64,
    /// Server CPU per delivered room message, one replica, µs.
    pub fanout_cpu_us_per_delivery: f64,
    /// The same with the members on two replicas (both replicas' CPU), µs.
    pub fanout_two_replicas_cpu_us_per_delivery: f64,
    /// Every delivery made (both fan-out runs).
    pub fanout_all_delivered: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct WsReport {
    /// What ran.
    pub config: WsConfig,
    /// Redis PING round trips per second on one connection.
    pub redis_round_trips_per_sec: f64,
    /// Loopback TCP connect + accept + close per second, one at a time.
    pub tcp_connects_per_sec: f64,
    /// Each run.
    pub runs: Vec<WsRun>,
    /// Median of the runs, field by field.
    pub median: WsRun,
}

/// The environment of the job-service replicas.
pub struct Replicas<'a> {
    /// Where the binaries are.
    pub bin_dir: &'a Path,
    /// Where their logs go.
    pub log_dir: &'a Path,
    /// Their environment (database, Redis, prefix…), without `JOBS_ADDR`.
    pub env: Vec<(String, String)>,
}

impl Replicas<'_> {
    async fn start(&self, client: &reqwest::Client) -> Result<Service> {
        let port = test_support::free_port();
        let mut env = self.env.clone();
        env.push(("JOBS_ADDR".to_owned(), format!("127.0.0.1:{port}")));
        let mut service = Service::spawn(self.bin_dir, "job-service", &env, port, self.log_dir)?;
        service.wait_ready(client, Duration::from_secs(60)).await?;
        Ok(service)
    }
}

/// Runs every phase `config.runs` times.
pub async fn run(config: WsConfig, replicas: &Replicas<'_>) -> Result<WsReport> {
    if config.runs == 0 || config.sockets == 0 || config.users == 0 || config.room_members < 2 {
        bail!("--ws-runs, --ws-sockets and --ws-users must be at least 1, --ws-room-members 2");
    }
    let client = reqwest::Client::new();
    let redis_url = replicas
        .env
        .iter()
        .find(|(k, _)| k == "REDIS_URL")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow!("REDIS_URL missing"))?;
    let database_url = replicas
        .env
        .iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow!("DATABASE_URL missing"))?;
    let prefix = replicas
        .env
        .iter()
        .find(|(k, _)| k == "REDIS_PREFIX")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let redis = redis::Client::open(redis_url.as_str())?;
    let mut publisher = redis.get_multiplexed_async_connection().await?;

    eprintln!("bench ws: machine limits");
    let redis_round_trips_per_sec = redis_round_trips(&mut publisher).await?;
    let tcp_connects_per_sec = tcp_connects().await?;
    eprintln!(
        "bench ws: Redis {redis_round_trips_per_sec:.0} round trips/s, loopback TCP {tcp_connects_per_sec:.0} connects/s"
    );

    let key = SigningKey::development();
    let needed = config.sockets.max(config.users).max(config.room_members);
    eprintln!("bench ws: signing {needed} tokens");
    let tokens: Vec<(uuid::Uuid, String)> = (0..needed)
        .map(|_| {
            let user = UserId::new();
            let claims = Claims::new_access(
                user,
                Role::User,
                SessionId::new(),
                &TokenSettings::default(),
                Duration::from_secs(3600),
            );
            key.sign(&claims).map(|t| (user.0, t))
        })
        .collect::<Result<_, _>>()?;

    let mut runs = Vec::new();
    for run in 1..=config.runs {
        eprintln!("bench ws: run {run} of {}", config.runs);
        let mut figures = WsRun::default();

        // 1. connect
        let server = replicas.start(&client).await?;
        let pid = server.pid().ok_or_else(|| anyhow!("job-service exited"))?;
        let ws_url = ws_url(&server);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = rss_bytes(pid)?;
        let cpu_before = cpu_ns(pid);
        let started = Instant::now();
        let sockets = open_many(&ws_url, &tokens[..config.sockets], config.concurrency).await?;
        let elapsed = started.elapsed();
        let cpu = cpu_ns(pid).saturating_sub(cpu_before);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_after = rss_bytes(pid)?;
        figures.connects_per_sec = config.sockets as f64 / elapsed.as_secs_f64();
        figures.rss_bytes_per_socket =
            rss_after.saturating_sub(rss_before) as f64 / config.sockets as f64;
        figures.connect_server_cpu_percent = cpu as f64 / elapsed.as_nanos() as f64 * 100.0;
        eprintln!(
            "bench ws: {} sockets in {:.2} s ({:.0}/s), server RSS +{:.0} B/socket, server CPU {:.0} %",
            config.sockets,
            elapsed.as_secs_f64(),
            figures.connects_per_sec,
            figures.rss_bytes_per_socket,
            figures.connect_server_cpu_percent
        );
        if config.hold_secs > 0 {
            eprintln!(
                "bench ws: holding the sockets open {} s (job-service pid {pid})",
                config.hold_secs
            );
            tokio::time::sleep(Duration::from_secs(config.hold_secs)).await;
        }
        drop(sockets);

        // 2. events, on the same replica (the connect phase's sockets closed).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let users = &tokens[..config.users];
        let probe = tokio::spawn(redis_probe(redis.clone(), config.event_secs));
        let (latency, cpu_percent, _) = events_at(
            &ws_url,
            users,
            &mut publisher,
            &prefix,
            config.event_rate,
            config.event_secs,
            pid,
        )
        .await?;
        let rtt = probe.await??;
        figures.events = latency;
        figures.events_server_cpu_percent = cpu_percent;
        figures.events_redis_rtt = rtt;
        eprintln!(
            "bench ws: {} events/s to {} users: p50 {:.2} ms, p99 {:.2} ms, server CPU {:.0} %; Redis PING meanwhile p50 {:.2} ms, p99 {:.2} ms",
            config.event_rate,
            config.users,
            latency.p50_ms,
            latency.p99_ms,
            cpu_percent,
            rtt.p50_ms,
            rtt.p99_ms
        );
        let mut rate = config.event_rate;
        loop {
            rate = rate.saturating_mul(2);
            let (latency, cpu_percent, complete) =
                events_at(&ws_url, users, &mut publisher, &prefix, rate, 3, pid).await?;
            eprintln!(
                "bench ws:   {rate} events/s: p99 {:.2} ms, {} delivered{}, server CPU {:.0} %",
                latency.p99_ms,
                latency.samples,
                if complete { "" } else { " (some missing)" },
                cpu_percent
            );
            if !complete || latency.p99_ms > 50.0 || rate > 1_000_000 {
                break;
            }
            figures.max_event_rate = rate;
            figures.max_event_rate_p99_ms = latency.p99_ms;
        }
        drop(server);

        // 3. fan-out: one replica, then two.
        let one = replicas.start(&client).await?;
        let (cpu_us, all_one) = fanout(
            &database_url,
            &[&one],
            &tokens[..config.room_members],
            config.room_messages,
            &format!("room-{run}-a"),
        )
        .await?;
        figures.fanout_cpu_us_per_delivery = cpu_us;
        drop(one);
        let a = replicas.start(&client).await?;
        let b = replicas.start(&client).await?;
        let (cpu_us, all_two) = fanout(
            &database_url,
            &[&a, &b],
            &tokens[..config.room_members],
            config.room_messages,
            &format!("room-{run}-b"),
        )
        .await?;
        figures.fanout_two_replicas_cpu_us_per_delivery = cpu_us;
        figures.fanout_all_delivered = all_one && all_two;
        eprintln!(
            "bench ws: fan-out to {} members × {} messages: {:.2} µs CPU per delivery (one replica), {:.2} µs (two){}",
            config.room_members,
            config.room_messages,
            figures.fanout_cpu_us_per_delivery,
            figures.fanout_two_replicas_cpu_us_per_delivery,
            if figures.fanout_all_delivered {
                ""
            } else {
                "; SOME DELIVERIES MISSING"
            }
        );
        runs.push(figures);
    }
    let median = median_run(&runs);
    Ok(WsReport {
        config,
        redis_round_trips_per_sec,
        tcp_connects_per_sec,
        runs,
        median,
    })
}

fn ws_url(service: &Service) -> String {
    format!("{}/api/ws", service.base_url.replacen("http", "ws", 1))
}

async fn connect(url: &str, token: &str) -> Result<Socket> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("{url}?access_token={token}"))
        .await
        .context("WebSocket handshake")?;
    Ok(socket)
}

/// Opens one socket per token, `concurrency` handshakes at a time; the sockets come back in
/// the order of `tokens` (callers pair them with their users), whichever handshake ends first.
async fn open_many(
    url: &str,
    tokens: &[(uuid::Uuid, String)],
    concurrency: usize,
) -> Result<Vec<Socket>> {
    let opened = futures_util::stream::iter(tokens.iter().map(|(_, token)| connect(url, token)))
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    opened.into_iter().collect()
}

/// Publishes `rate` events per second for `secs` to `users` (round robin) and measures, at the
/// clients, published → frame parsed. Returns the latency, the server's CPU and whether every
/// event arrived.
async fn events_at(
    url: &str,
    users: &[(uuid::Uuid, String)],
    publisher: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    rate: u32,
    secs: u64,
    pid: u32,
) -> Result<(Latency, f64, bool)> {
    let sockets = open_many(url, users, 128).await?;
    let samples = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for mut socket in sockets {
        let samples = samples.clone();
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message {
                    let now = chrono::Utc::now();
                    let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if let Some(at) = frame["data"]["job"]["updated_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    {
                        let us = (now - at.with_timezone(&chrono::Utc))
                            .num_microseconds()
                            .unwrap_or(0);
                        if let Ok(mut samples) = samples.lock() {
                            samples.push(us.max(0) as u64);
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Publish in 5 ms ticks, as one pipeline per tick.
    let total = u64::from(rate) * secs;
    let tick = Duration::from_millis(5);
    let per_tick = (f64::from(rate) * tick.as_secs_f64()).max(1.0);
    let cpu_before = cpu_ns(pid);
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut next = started;
    let mut user = 0usize;
    let mut job = json!({
        "id": "", "user_id": "", "type": "sleep", "data": {"ms": 1000}, "priority": 0,
        "status": "running", "attempts": 1, "max_attempts": 3, "progress": 40, "result": null,
        "last_error": null, "run_at": null, "created_at": "2026-12-01T12:00:00.000000Z",
        "updated_at": "", "started_at": "2026-12-01T12:00:00.000000Z", "finished_at": null
    });
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() / tick.as_secs_f64()).floor() + 1.0) * per_tick;
        let due = (due as u64).min(total);
        let mut pipe = redis::pipe();
        let sent_before = sent;
        while sent < due {
            let (id, _) = &users[user % users.len()];
            user += 1;
            job["id"] = json!(uuid::Uuid::now_v7());
            job["user_id"] = json!(id);
            job["updated_at"] =
                json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            pipe.publish(
                format!("{prefix}events:user:{id}"),
                json!({"event": "jobUpdated", "data": {"job": job}}).to_string(),
            )
            .ignore();
            sent += 1;
        }
        if sent_before < sent {
            pipe.query_async::<()>(publisher).await?;
        }
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    // Let the last frames arrive.
    let wait_until = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < total && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_ns(pid).saturating_sub(cpu_before);
    for reader in &readers {
        reader.abort();
    }
    for reader in readers {
        let _ = reader.await;
    }
    let mut samples = samples
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    let complete = received.load(Ordering::Relaxed) >= total;
    if samples.is_empty() {
        bail!("no event arrived");
    }
    Ok((
        Latency::from_micros(&mut samples),
        cpu as f64 / elapsed.as_nanos() as f64 * 100.0,
        complete,
    ))
}

/// Puts `members` sockets in `room` (spread over `servers`), sends `messages` messages from the
/// first member, and returns the servers' CPU µs per delivery and whether all arrived.
async fn fanout(
    database_url: &str,
    servers: &[&Service],
    members: &[(uuid::Uuid, String)],
    messages: usize,
    room: &str,
) -> Result<(f64, bool)> {
    let mut sockets = Vec::new();
    for (i, chunk) in members
        .chunks(members.len().div_ceil(servers.len()))
        .enumerate()
    {
        let url = ws_url(servers[i]);
        sockets.extend(open_many(&url, chunk, 128).await?);
    }
    // Join, and wait for each `joined`; the sockets keep their user's id.
    let join = json!({"event": "joinRoom", "data": {"room": room}}).to_string();
    let joined = futures_util::stream::iter(sockets.into_iter().zip(members).map(
        |(mut socket, (user, _))| {
            let join = join.clone();
            async move {
                socket.send(Message::Text(join.into())).await?;
                while let Some(message) = socket.next().await {
                    if let Message::Text(text) = message?
                        && text.contains("\"joined\"")
                    {
                        return Ok::<_, anyhow::Error>((*user, socket));
                    }
                }
                bail!("closed before joining")
            }
        },
    ))
    .buffer_unordered(128)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let expected = (members.len() * messages) as u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut iter = joined.into_iter();
    let (sender_id, mut sender) = iter.next().ok_or_else(|| anyhow!("no member"))?;
    // The sender must exist in the database: messages carry its email.
    let mut conn = persistence::pool::connect(database_url).await?;
    persistence::users::insert_if_absent(
        &mut conn,
        UserId(sender_id),
        &domain::Email::from_trusted(format!("bench-{}@example.com", sender_id.simple())),
        "x",
    )
    .await?;
    drop(conn);
    let mut readers = Vec::new();
    for (_, mut socket) in iter {
        let delivered = delivered.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, Message::Text(_)) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let pids: Vec<u32> = servers.iter().filter_map(|s| s.pid()).collect();
    let cpu_before: u64 = pids.iter().map(|p| cpu_ns(*p)).sum();
    let started = Instant::now();
    for i in 0..messages {
        let text = json!({"event": "sendMessage", "data": {"room": room, "message": format!("message {i} of the fan-out benchmark")}});
        sender.send(Message::Text(text.to_string().into())).await?;
    }
    let mut own = 0u64;
    let deadline = started + Duration::from_secs(60);
    while own < messages as u64 || delivered.load(Ordering::Relaxed) + own < expected {
        tokio::select! {
            message = sender.next() => match message {
                Some(Ok(Message::Text(text))) if text.contains("receiveMessage") => own += 1,
                Some(Ok(Message::Text(text))) => eprintln!("bench ws: the sender got {text}"),
                Some(Ok(_)) => {}
                _ => break,
            },
            () = tokio::time::sleep_until(deadline) => break,
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    let cpu: u64 = pids
        .iter()
        .map(|p| cpu_ns(*p))
        .sum::<u64>()
        .saturating_sub(cpu_before);
    let total = delivered.load(Ordering::Relaxed) + own;
    if total < expected {
        eprintln!("bench ws: {total} of {expected} deliveries ({own} of {messages} to the sender)");
    }
    for reader in readers {
        reader.abort();
    }
    Ok((cpu as f64 / 1000.0 / total.max(1) as f64, total >= expected))
}

/// PING round trips on a connection of their own, one every 2 ms for `secs` (plus the second
/// the event phase takes to connect its users): the machine's Redis round trip while the
/// gateway is measured.
async fn redis_probe(redis: redis::Client, secs: u64) -> Result<Latency> {
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(2));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = Instant::now() + Duration::from_secs(secs + 1);
    while Instant::now() < until {
        every.tick().await;
        let sent = Instant::now();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        samples.push(sent.elapsed().as_micros() as u64);
    }
    Ok(Latency::from_micros(&mut samples))
}

/// PING round trips per second on one connection, for one second.
async fn redis_round_trips(conn: &mut redis::aio::MultiplexedConnection) -> Result<f64> {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        redis::cmd("PING").query_async::<String>(conn).await?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Loopback TCP connect + accept + close per second, one at a time, for one second.
async fn tcp_connects() -> Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        drop((client?, accepted?));
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Resident memory of `pid`, bytes.
fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

/// CPU time of every thread of `pid`, nanoseconds (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn median_run(runs: &[WsRun]) -> WsRun {
    let pick = |f: &dyn Fn(&WsRun) -> f64| median_of(runs.iter().map(f).collect());
    let mut events: Vec<Latency> = runs.iter().map(|r| r.events).collect();
    events.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
    WsRun {
        connects_per_sec: pick(&|r| r.connects_per_sec),
        rss_bytes_per_socket: pick(&|r| r.rss_bytes_per_socket),
        connect_server_cpu_percent: pick(&|r| r.connect_server_cpu_percent),
        events: events.get(events.len() / 2).copied().unwrap_or_default(),
        events_server_cpu_percent: pick(&|r| r.events_server_cpu_percent),
        events_redis_rtt: {
            let mut rtts: Vec<Latency> = runs.iter().map(|r| r.events_redis_rtt).collect();
            rtts.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
            rtts.get(rtts.len() / 2).copied().unwrap_or_default()
        },
        max_event_rate: pick(&|r| f64::from(r.max_event_rate)) as u32,
        max_event_rate_p99_ms: pick(&|r| r.max_event_rate_p99_ms),
        fanout_cpu_us_per_delivery: pick(&|r| r.fanout_cpu_us_per_delivery),
        fanout_two_replicas_cpu_us_per_delivery: pick(&|r| {
            r.fanout_two_replicas_cpu_us_per_delivery
        }),
        fanout_all_delivered: runs.iter().all(|r| r.fanout_all_delivered),
    }
}

impl WsReport {
    /// The table printed at the end.
    pub fn table(&self) -> String {
        let m = &self.median;
        let mut out = String::new();
        out.push_str(&format!(
            "\nreal-time gateway, median of {} runs (machine: Redis {:.0} round trips/s, loopback TCP {:.0} connects/s)\n\n",
            self.runs.len(),
            self.redis_round_trips_per_sec,
            self.tcp_connects_per_sec
        ));
        out.push_str("| figure | measured | target | ratio |\n|---|---|---|---|\n");
        let row = |out: &mut String, name: &str, value: String, target: &str, ratio: f64| {
            out.push_str(&format!("| {name} | {value} | {target} | {ratio:.2}× |\n"));
        };
        row(
            &mut out,
            &format!(
                "{} idle sockets: server RSS per socket",
                self.config.sockets
            ),
            format!("{:.0} B", m.rss_bytes_per_socket),
            "≤ 5,000 B",
            5000.0 / m.rss_bytes_per_socket.max(1.0),
        );
        row(
            &mut out,
            "authenticated sockets opened per second",
            format!(
                "{:.0}/s ({:.0} % of loopback TCP connects/s; server CPU {:.0} %)",
                m.connects_per_sec,
                m.connects_per_sec / self.tcp_connects_per_sec.max(1.0) * 100.0,
                m.connect_server_cpu_percent
            ),
            "≥ 3,000/s",
            m.connects_per_sec / 3000.0,
        );
        row(
            &mut out,
            &format!(
                "job event → client, {}/s over {} users",
                self.config.event_rate, self.config.users
            ),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms (server CPU {:.0} %)",
                m.events.p50_ms, m.events.p99_ms, m.events_server_cpu_percent
            ),
            "p99 ≤ 2 ms",
            2.0 / m.events.p99_ms.max(1e-6),
        );
        out.push_str(&format!(
            "| the machine meanwhile: Redis PING round trip | p50 {:.2} ms, p99 {:.2} ms (event p99 = {:.1}× the PING p99) | | |\n",
            m.events_redis_rtt.p50_ms,
            m.events_redis_rtt.p99_ms,
            m.events.p99_ms / m.events_redis_rtt.p99_ms.max(1e-6)
        ));
        out.push_str(&format!(
            "| highest event rate with p99 ≤ 50 ms | {}/s (p99 {:.2} ms; {:.2} publishes per Redis round trip) | | |\n",
            m.max_event_rate,
            m.max_event_rate_p99_ms,
            f64::from(m.max_event_rate) / self.redis_round_trips_per_sec.max(1.0)
        ));
        row(
            &mut out,
            &format!(
                "room fan-out, {} members × {} messages, one replica: server CPU per delivery",
                self.config.room_members, self.config.room_messages
            ),
            format!("{:.2} µs", m.fanout_cpu_us_per_delivery),
            "≤ 5 µs",
            5.0 / m.fanout_cpu_us_per_delivery.max(1e-6),
        );
        row(
            &mut out,
            "the same, members on two replicas (both replicas' CPU)",
            format!("{:.2} µs", m.fanout_two_replicas_cpu_us_per_delivery),
            "≤ 5 µs",
            5.0 / m.fanout_two_replicas_cpu_us_per_delivery.max(1e-6),
        );
        out.push_str(&format!(
            "\nevery fan-out delivery made: {}\n",
            if m.fanout_all_delivered { "yes" } else { "NO" }
        ));
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    /// A WebSocket server that answers the first handshake last and then says, in a text
    /// frame, which `access_token` the socket was opened with.
    async fn echo_token_server(expected: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/api/ws", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for n in 0..expected {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    // Earlier connections answer later, so handshakes end in reverse order.
                    let delay = (expected - n) as u64 * 30;
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let mut token = String::new();
                    let mut ws = tokio_tungstenite::accept_hdr_async(
                        tcp,
                        |request: &Request, response: Response| {
                            token = request
                                .uri()
                                .query()
                                .and_then(|q| q.strip_prefix("access_token="))
                                .unwrap_or_default()
                                .to_owned();
                            Ok(response)
                        },
                    )
                    .await
                    .unwrap();
                    ws.send(Message::Text(token.into())).await.unwrap();
                    let _ = ws.next().await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn open_many_returns_the_sockets_in_the_order_of_the_tokens() {
        let tokens: Vec<(uuid::Uuid, String)> = (0..4)
            .map(|i| (uuid::Uuid::now_v7(), format!("token-{i}")))
            .collect();
        let url = echo_token_server(tokens.len()).await;
        let sockets = open_many(&url, &tokens, tokens.len()).await.unwrap();
        let mut opened_with = Vec::new();
        for mut socket in sockets {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => opened_with.push(text.to_string()),
                other => panic!("expected the token, got {other:?}"),
            }
        }
        let wanted: Vec<String> = tokens.into_iter().map(|(_, t)| t).collect();
        assert_eq!(opened_with, wanted);
    }
}
