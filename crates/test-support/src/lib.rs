//! Test harness shared by the integration tests of every crate.
//!
//! Each test gets its own PostgreSQL database ([`TestDb`]) and its own Redis key prefix
//! ([`TestRedis`]), so tests run in parallel without seeing each other's data. Servers are
//! real: the services listen on free ports, and email goes to an in-process SMTP server
//! ([`smtp::SmtpCapture`]) that speaks the protocol.
//!
//! Where the servers are comes from `TEST_DATABASE_URL` (a superuser URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`); `scripts/test` sets both.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a failure should stop the test loudly"
)]

pub mod deploy;
pub mod process;
pub mod smtp;

use diesel_async::RunQueryDsl as _;

/// The superuser URL tests use to create their databases.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A database of its own for one test, dropped (with its connections) when the value is.
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Creates an empty database; the service under test migrates it, as in production.
    pub async fn create() -> Self {
        let name = format!("tv_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_database_url();
        let mut conn = persistence::pool::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at TEST_DATABASE_URL ({admin}): {e}; run scripts/test"
                )
            });
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = replace_database(&admin, &name);
        Self { name, url }
    }

    /// Creates a database and applies the migrations.
    pub async fn migrated() -> Self {
        let db = Self::create().await;
        persistence::migrate::run_pending(&db.url)
            .await
            .expect("migrate test database");
        db
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool over this database.
    pub fn pool(&self) -> persistence::PgPool {
        persistence::pool::build_pool(&persistence::PoolSettings::new(self.url.clone()))
            .expect("pool")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can rely on: use a private runtime.
        let handle = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = persistence::pool::connect(&admin_database_url()).await {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        });
        let _ = handle.join();
    }
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A Redis key prefix of its own for one test; its keys are deleted when the value drops.
pub struct TestRedis {
    prefix: String,
}

impl TestRedis {
    /// A fresh prefix such as `test:5f0c…:`.
    pub fn new() -> Self {
        Self {
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The key prefix to configure the service with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis URL.
    pub fn url(&self) -> String {
        redis_url()
    }

    /// A direct connection, for assertions and for simulating failures.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("cannot reach Redis at TEST_REDIS_URL; run scripts/test")
    }

    /// Every key under this prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.connection().await;
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }

    /// Deletes every key under this prefix (a "Redis flush" scoped to this test).
    pub async fn flush(&self) {
        let keys = self.keys().await;
        if !keys.is_empty() {
            let mut conn = self.connection().await;
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let handle = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(redis_url()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        });
        let _ = handle.join();
    }
}

/// The login roles of the job service and the worker for one test (`auth-service db-roles`
/// creates them), dropped when the value is. Roles belong to the whole server, not to one
/// database, so each test names its own. Declare it before the [`TestDb`] it is used with: the
/// database (and the grants in it) must go first.
pub struct TestRoles {
    /// The job service's role.
    pub jobs: String,
    /// The worker's role.
    pub worker: String,
    /// The password of both.
    pub password: String,
}

impl TestRoles {
    /// Two fresh role names (nothing is created yet).
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            jobs: format!("tv_jobs_{}", &id[..12]),
            worker: format!("tv_worker_{}", &id[..12]),
            password: format!("pw-{}:@/x", &id[12..]),
        }
    }

    /// The URL of `db` that logs in as `role` (password percent-encoded).
    pub fn url(&self, db: &TestDb, role: &str) -> String {
        let url = db.url();
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let host = rest.split_once('@').map_or(rest, |(_, host)| host);
        let password: String = self
            .password
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        format!("{scheme}://{role}:{password}@{host}")
    }
}

impl Default for TestRoles {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRoles {
    fn drop(&mut self) {
        let names = [self.jobs.clone(), self.worker.clone()];
        let handle = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = persistence::pool::connect(&admin_database_url()).await {
                    for name in names {
                        let _ = diesel::sql_query(format!("DROP ROLE IF EXISTS {name}"))
                            .execute(&mut conn)
                            .await;
                    }
                }
            });
        });
        let _ = handle.join();
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The settings of the shipped Kubernetes ConfigMap (`deploy/k8s/configmap.yaml`), as the
/// environment a pod gets, so tests can start the real binaries with exactly what the
/// deployment gives them (plus the Secret's values and free ports).
pub fn kubernetes_config() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/k8s/configmap.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let data = text.split_once("\ndata:\n").unwrap().1;
    data.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.split_once(':').unwrap();
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.split_once('"').unwrap().0,
                None => value.split(" #").next().unwrap().trim(),
            };
            (key.trim().to_owned(), value.to_owned())
        })
        .collect()
}

/// Checks a service's OpenAPI document as `scripts/check-openapi` expects it: every answer of
/// every operation has a description, and every error answer (4xx, 5xx) is
/// `application/problem+json`. Then writes it to `target/openapi/<name>.json`, where
/// `scripts/check-openapi` validates it strictly against the OpenAPI specification.
pub fn check_openapi(doc: &serde_json::Value, name: &str) {
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let at = format!("{method} {path} {status}");
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.trim().is_empty()),
                    "{at}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().expect("error content");
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{at}"
                    );
                }
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    let dir = target.join("openapi");
    std::fs::create_dir_all(&dir).expect("target/openapi");
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(doc).expect("json"),
    )
    .expect("write the OpenAPI document");
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn the_kubernetes_config_is_read() {
        let config = super::kubernetes_config();
        let get = |k: &str| {
            config
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("APP_ENV").as_deref(), Some("production"));
        assert_eq!(get("METRICS_ADDR").as_deref(), Some("0.0.0.0:9090"));
    }

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
