//! A job service started in-process on a free port, with users minted straight into its
//! database and tokens signed by a test key whose public half the service trusts.

use access_token::SigningKey;
use diesel_async::RunQueryDsl as _;
use domain::Role;
use job_service::testing::TestBackends;
use serde_json::Value;
use test_support::{TestDb, TestRedis};

pub struct TestApp {
    pub _db: TestDb,
    pub redis: TestRedis,
    pub base: String,
    pub client: reqwest::Client,
    pub key: SigningKey,
    pub pool: persistence::PgPool,
}

pub type User = job_service::testing::TestUser;

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut job_service::Settings)) -> Self {
        let db = TestDb::create().await;
        let redis = TestRedis::new();
        let key = SigningKey::development();
        let backends = TestBackends {
            database_url: db.url().to_owned(),
            redis_url: redis.url(),
            redis_prefix: redis.prefix().to_owned(),
            public_key_pem: key.public_pem(),
        };
        let base = job_service::testing::spawn_with(backends, adjust)
            .await
            .expect("job service starts");
        let pool = db.pool();
        Self {
            _db: db,
            redis,
            base,
            client: reqwest::Client::new(),
            key,
            pool,
        }
    }

    pub async fn user(&self, role: Role, verified: bool) -> User {
        job_service::testing::mint_user(&self.pool, &self.key, role, verified)
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn submit(&self, user: &User, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/api/jobs/submit"))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn get(&self, user: &User, path: &str) -> (u16, Value) {
        read(
            self.client
                .get(self.url(path))
                .bearer_auth(&user.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, user: &User, path: &str) -> (u16, Value) {
        read(
            self.client
                .post(self.url(path))
                .bearer_auth(&user.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Forces a job into `status`, as a worker or the clock would.
    pub async fn set_status(&self, id: &str, status: &str) {
        let mut conn = self.pool.get().await.unwrap();
        diesel::sql_query("UPDATE jobs SET status = $2 WHERE id = $1::uuid")
            .bind::<diesel::sql_types::Text, _>(id)
            .bind::<diesel::sql_types::Text, _>(status)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    pub async fn zscore(&self, set: &str, member: &str) -> Option<f64> {
        let mut conn = self.redis.connection().await;
        redis::cmd("ZSCORE")
            .arg(format!("{}q:{set}", self.redis.prefix()))
            .arg(member)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn zcard(&self, set: &str) -> u64 {
        let mut conn = self.redis.connection().await;
        redis::cmd("ZCARD")
            .arg(format!("{}q:{set}", self.redis.prefix()))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}
