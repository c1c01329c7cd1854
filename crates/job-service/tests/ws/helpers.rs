//! Replicas, users and a WebSocket client for the gateway tests.

use std::time::Duration;

use access_token::{Claims, SigningKey, TokenSettings};
use domain::{Role, UserId};
use futures_util::{SinkExt as _, StreamExt as _};
use job_service::Settings;
use job_service::testing::{TestBackends, TestUser};
use serde_json::{Value, json};
use test_support::{TestDb, TestRedis};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type User = TestUser;

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// One database and key prefix, and job-service replicas on it.
pub struct Stack {
    pub _db: TestDb,
    pub redis: TestRedis,
    pub redis_url: String,
    pub key: SigningKey,
    pub pool: persistence::PgPool,
    pub replicas: Vec<String>,
    pub http: reqwest::Client,
}

impl Stack {
    /// `replicas` job services on the shared Redis with the default settings.
    pub async fn start(replicas: usize) -> Self {
        Self::start_with(replicas, None, |_| {}).await
    }

    /// `replicas` job services on `redis_url` (default: the shared test Redis), settings
    /// adjusted by `adjust`.
    pub async fn start_with(
        replicas: usize,
        redis_url: Option<String>,
        adjust: impl Fn(&mut Settings),
    ) -> Self {
        let db = TestDb::migrated().await;
        let redis = TestRedis::new();
        let redis_url = redis_url.unwrap_or_else(|| redis.url());
        let key = SigningKey::development();
        let mut bases = Vec::new();
        for _ in 0..replicas {
            let base = job_service::testing::spawn_with(
                TestBackends {
                    database_url: db.url().to_owned(),
                    redis_url: redis_url.clone(),
                    redis_prefix: redis.prefix().to_owned(),
                    public_key_pem: key.public_pem(),
                },
                |settings| adjust(settings),
            )
            .await
            .expect("job service starts");
            bases.push(base);
        }
        let pool = db.pool();
        Self {
            _db: db,
            redis,
            redis_url,
            key,
            pool,
            replicas: bases,
            http: reqwest::Client::new(),
        }
    }

    pub async fn user(&self, role: Role) -> User {
        job_service::testing::mint_user(&self.pool, &self.key, role, true)
            .await
            .unwrap()
    }

    /// A token for `user`'s session that expires in `ttl`.
    pub fn token_expiring(&self, user: &User, role: Role, ttl: Duration) -> String {
        let claims = Claims::new_access(
            UserId(user.id),
            role,
            user.sid,
            &TokenSettings::default(),
            ttl,
        );
        self.key.sign(&claims).unwrap()
    }

    pub fn ws_url(&self, replica: usize) -> String {
        format!(
            "{}/api/ws",
            self.replicas[replica].replacen("http", "ws", 1)
        )
    }

    /// Connects `user` to `replica` with a bearer header.
    pub async fn connect(&self, replica: usize, user: &User) -> Ws {
        self.connect_with(
            replica,
            &[("authorization", &format!("Bearer {}", user.token))],
            "",
        )
        .await
        .unwrap()
    }

    /// Connects with extra request `headers` and a `query` string (`?...` or empty).
    pub async fn connect_with(
        &self,
        replica: usize,
        headers: &[(&str, &str)],
        query: &str,
    ) -> Result<Ws, (u16, Value)> {
        let mut request = format!("{}{query}", self.ws_url(replica))
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, response)) => {
                assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
                Ok(Ws { stream })
            }
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((status, body))
            }
            Err(other) => panic!("cannot connect: {other}"),
        }
    }

    /// Submits a job as `user` through `replica`; returns the job object.
    pub async fn submit(&self, replica: usize, user: &User, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/jobs/submit", self.replicas[replica]))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["job"].clone()
    }

    pub async fn post(&self, replica: usize, user: &User, path: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.replicas[replica]))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self, replica: usize) -> String {
        self.http
            .get(format!("{}/metrics", self.replicas[replica]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Publishes `payload` on `channel` (under the test's prefix), as the worker would.
    pub async fn publish(&self, channel: &str, payload: &str) -> i64 {
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("PUBLISH")
            .arg(format!("{}{channel}", self.redis.prefix()))
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// A client socket.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, event: &str, data: Value) {
        self.send_text(&json!({"event": event, "data": data}).to_string())
            .await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::Binary(bytes.into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// The next frame within `wait`: `Ok(json)` for a text frame, `Err(close)` when closed.
    pub async fn next_within(
        &mut self,
        wait: Duration,
    ) -> Option<Result<Value, Option<CloseFrame>>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(Ok(serde_json::from_str(&text).unwrap()));
                }
                Some(Ok(Message::Close(frame))) => return Some(Err(frame)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Err(None)),
            }
        }
    }

    /// The next frame, which must come within [`WAIT`] and not be a close.
    pub async fn next(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(Ok(frame)) => frame,
            Some(Err(close)) => panic!("socket closed: {close:?}"),
            None => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next frame, which must be `event`; returns its data.
    pub async fn expect(&mut self, event: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["event"], event, "{frame}");
        frame["data"].clone()
    }

    /// Skips frames until one satisfies `want`.
    pub async fn until(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.next().await;
            if want(&frame) {
                return frame;
            }
        }
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        if let Some(frame) = self.next_within(wait).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    /// Joins `room` and waits for `joined`.
    pub async fn join(&mut self, room: &str) {
        self.send("joinRoom", json!({"room": room})).await;
        let data = self.expect("joined").await;
        assert_eq!(data["room"], room);
    }

    /// Waits for the close frame; returns its code.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                None => return None,
                Some(Ok(_)) => continue,
                Some(Err(frame)) => return frame.map(|f| u16::from(f.code)),
            }
        }
    }
}

/// Runs a real worker in this process against the stack's database and Redis (it stops with
/// the test's runtime).
pub async fn start_worker(stack: &Stack) -> tokio::task::JoinHandle<()> {
    let settings = worker::Settings {
        database_url: stack._db.url().to_owned(),
        redis_url: stack.redis_url.clone(),
        redis_prefix: stack.redis.prefix().to_owned(),
        worker_addr: "127.0.0.1:0".to_owned(),
        db_pool_size: 4,
        redis_pool_size: 4,
        ..worker::Settings::default()
    };
    tokio::spawn(async move {
        if let Err(error) = worker::run(settings).await {
            panic!("worker: {error}");
        }
    })
}

/// A `redis-server` of the test's own on a free port (never the shared one), killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            port: test_support::free_port(),
            child: None,
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let binary = ["/usr/bin/redis-server", "redis-server"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("redis-server");
        let child = tokio::process::Command::new(binary)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same port.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.spawn().await;
    }
}
