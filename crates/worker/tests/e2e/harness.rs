//! A job service, worker processes and users for one test.

use std::collections::HashMap;
use std::time::Duration;

use access_token::SigningKey;
use domain::Role;
use persistence::jobs::Job;
use serde_json::Value;
use test_support::process::Running;
use test_support::{TestDb, TestRedis, free_port};
use uuid::Uuid;

pub struct Env {
    pub db: TestDb,
    pub redis: TestRedis,
    /// The Redis server of this test (the shared one, or one the test started).
    pub redis_url: String,
    pub base: String,
    pub client: reqwest::Client,
    pub pool: persistence::PgPool,
    pub user: User,
    pub exec_log: std::path::PathBuf,
}

pub type User = job_service::testing::TestUser;

impl Env {
    pub async fn start() -> Self {
        Self::start_on(test_support::redis_url()).await
    }

    /// As [`Env::start`], on the Redis server at `redis_url`.
    pub async fn start_on(redis_url: String) -> Self {
        let db = TestDb::migrated().await;
        let redis = TestRedis::new();
        let key = SigningKey::development();
        let backends = job_service::testing::TestBackends {
            database_url: db.url().to_owned(),
            redis_url: redis_url.clone(),
            redis_prefix: redis.prefix().to_owned(),
            public_key_pem: key.public_pem(),
        };
        // One test user submits bursts of a thousand jobs: the per-user submit limits are off,
        // as in the benchmark.
        let base = job_service::testing::spawn_with(backends, |s| {
            s.submit_rate_per_sec = 0;
            s.max_unfinished_jobs_per_user = 0;
        })
        .await
        .expect("job service starts");
        let pool = db.pool();
        let exec_log =
            std::env::temp_dir().join(format!("tv-exec-{}.log", Uuid::new_v4().simple()));
        let user = job_service::testing::mint_user(&pool, &key, Role::User, true)
            .await
            .unwrap();
        Self {
            db,
            redis,
            redis_url,
            base,
            client: reqwest::Client::new(),
            pool,
            user,
            exec_log,
        }
    }

    /// Starts a worker process with test-friendly timings; `extra` overrides.
    pub async fn worker(&self, extra: &[(&str, &str)]) -> Running {
        let port = free_port();
        let envs = self.worker_env(port, extra);
        let mut worker = Running::spawn(
            env!("CARGO_BIN_EXE_worker"),
            &[],
            &envs,
            format!("http://127.0.0.1:{port}"),
        );
        worker
            .wait_until_ok("/readyz", Duration::from_secs(30))
            .await;
        worker
    }

    /// As [`Env::worker`], with the worker's standard output and error written to `log`
    /// (`RUST_LOG` is `info` unless `extra` says otherwise).
    pub async fn worker_logged(&self, extra: &[(&str, &str)], log: &std::path::Path) -> Running {
        let port = free_port();
        let mut envs = vec![("RUST_LOG".to_owned(), "info".to_owned())];
        envs.extend(self.worker_env(port, extra));
        let file = std::fs::File::create(log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut worker = Running {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        worker
            .wait_until_ok("/readyz", Duration::from_secs(30))
            .await;
        worker
    }

    /// The environment of a worker listening on `port`: test-friendly timings, then `extra`.
    fn worker_env(&self, port: u16, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", self.db.url().to_owned()),
            ("REDIS_URL", self.redis_url.clone()),
            ("REDIS_PREFIX", self.redis.prefix().to_owned()),
            ("WORKER_ADDR", format!("127.0.0.1:{port}")),
            ("WORKER_CONCURRENCY", "8".to_owned()),
            ("JOB_LEASE_SECS", "2".to_owned()),
            ("JOB_RETRY_BASE_MS", "300".to_owned()),
            ("RECONCILE_INTERVAL_SECS", "1".to_owned()),
            ("REAPER_INTERVAL_MS", "200".to_owned()),
            ("PROMOTE_INTERVAL_MS", "20".to_owned()),
            ("SHUTDOWN_GRACE_SECS", "5".to_owned()),
            ("DB_POOL_SIZE", "6".to_owned()),
            ("WORKER_EXECUTION_LOG", self.exec_log.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        env.into_iter().collect()
    }

    /// Another user with a token the job service accepts.
    pub async fn another_user(&self) -> User {
        job_service::testing::mint_user(&self.pool, &SigningKey::development(), Role::User, true)
            .await
            .unwrap()
    }

    pub async fn submit(&self, body: Value) -> Uuid {
        self.submit_as(&self.user, body).await
    }

    pub async fn submit_as(&self, user: &User, body: Value) -> Uuid {
        let response = self
            .client
            .post(format!("{}/api/jobs/submit", self.base))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["job"]["id"].as_str().unwrap().parse().unwrap()
    }

    /// A connection to this test's Redis server.
    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The full name of the queue key `name` (`ready:<type>`, `scheduled`, `lease`).
    pub fn key(&self, name: &str) -> String {
        format!("{}q:{name}", self.redis.prefix())
    }

    /// Runs SQL on the test's database.
    pub async fn sql(&self, sql: &str) {
        use diesel_async::RunQueryDsl as _;
        let mut conn = self.pool.get().await.unwrap();
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }

    /// The worker's `/metrics` value of `series` (e.g. `name{label="x"}`), 0 when absent.
    pub async fn metric(worker: &Running, series: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", worker.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn get_path(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.user.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.user.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn job(&self, id: Uuid) -> Job {
        let mut conn = self.pool.get().await.unwrap();
        persistence::jobs::find(&mut conn, id, None)
            .await
            .unwrap()
            .unwrap()
    }

    /// Waits until `check` holds for the job, failing after `timeout`.
    pub async fn wait_for(&self, id: Uuid, timeout: Duration, check: impl Fn(&Job) -> bool) -> Job {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.job(id).await;
            if check(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting; job is {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_status(&self, id: Uuid, status: &str, timeout: Duration) -> Job {
        self.wait_for(id, timeout, |job| job.status.as_str() == status)
            .await
    }

    pub async fn count(&self, status: &str) -> i64 {
        let mut conn = self.pool.get().await.unwrap();
        persistence::jobs::count_by_status(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| s.as_str() == status)
            .map_or(0, |(_, n)| n)
    }

    pub async fn wait_count(&self, status: &str, n: i64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let count = self.count(status).await;
            if count >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {count} of {n} jobs are {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Executions recorded by the workers: (job, attempt, unix ms).
    pub fn executions(&self) -> Vec<(Uuid, i32, i64)> {
        std::fs::read_to_string(&self.exec_log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.split(' ');
                (
                    parts.next().unwrap().parse().unwrap(),
                    parts.next().unwrap().parse().unwrap(),
                    parts.next().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    pub fn executions_of(&self, id: Uuid) -> Vec<(i32, i64)> {
        self.executions()
            .into_iter()
            .filter(|(job, ..)| *job == id)
            .map(|(_, a, t)| (a, t))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.exec_log);
    }
}

/// A TCP proxy in front of the test's Redis that can lose one answer: the first answer that
/// contains a given text (and everything after it on that connection) never reaches the
/// client, although Redis applied the request, as when an answer is late or lost.
pub struct LoseAnswer {
    pub url: String,
    pattern: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl LoseAnswer {
    pub async fn start() -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let info = redis::Client::open(test_support::redis_url())
            .unwrap()
            .get_connection_info()
            .clone();
        let redis::ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            panic!("TEST_REDIS_URL must be a redis:// URL");
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let pattern: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>> = Default::default();
        let patterns = pattern.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let pattern = patterns.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0_u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let lose = {
                            let mut pattern = pattern.lock().unwrap();
                            let hit = pattern.as_ref().is_some_and(|p| {
                                buf[..n].windows(p.len()).any(|w| w == p.as_slice())
                            });
                            if hit {
                                *pattern = None;
                            }
                            hit
                        };
                        if lose {
                            // Swallow everything from here on; the client gives up on it.
                            while let Ok(n) = server_read.read(&mut buf).await {
                                if n == 0 {
                                    return;
                                }
                            }
                            return;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { url, pattern }
    }

    /// Loses the first answer that contains `text` from now on.
    pub fn lose_answer_with(&self, text: &str) {
        *self.pattern.lock().unwrap() = Some(text.as_bytes().to_vec());
    }
}
