//! A job service started in-process on a free port, with users minted straight into its
//! database and tokens signed by a test key whose public half the service trusts.

use std::time::Duration;

use access_token::{Claims, SigningKey, TokenSettings};
use diesel_async::RunQueryDsl as _;
use domain::{Role, SessionId, UserId};
use job_service::{Application, Settings};
use serde_json::Value;
use test_support::{TestDb, TestRedis};
use uuid::Uuid;

pub struct TestApp {
    pub _db: TestDb,
    pub redis: TestRedis,
    pub base: String,
    pub client: reqwest::Client,
    pub key: SigningKey,
    pub pool: persistence::PgPool,
}

#[derive(Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub token: String,
    pub sid: SessionId,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::create().await;
        let redis = TestRedis::new();
        let key = SigningKey::development();
        let settings = Settings {
            database_url: db.url().to_owned(),
            redis_url: redis.url(),
            jobs_addr: "127.0.0.1:0".to_owned(),
            auth_jwt_public_key: Some(key.public_pem()),
            redis_prefix: redis.prefix().to_owned(),
            db_pool_size: 8,
            redis_pool_size: 8,
            http_workers: 2,
            ..Settings::default()
        };
        let app = Application::build(settings)
            .await
            .expect("job service starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run());
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
        let id = Uuid::now_v7();
        let email = format!("u{}@example.com", id.simple());
        let mut conn = self.pool.get().await.unwrap();
        diesel::sql_query("INSERT INTO users (id, email, password_hash, role, email_verified) VALUES ($1, $2, 'x', $3, $4)")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .bind::<diesel::sql_types::Text, _>(&email)
            .bind::<diesel::sql_types::Text, _>(role.as_str())
            .bind::<diesel::sql_types::Bool, _>(verified)
            .execute(&mut conn)
            .await
            .unwrap();
        let sid = SessionId::new();
        let claims = Claims::new_access(
            UserId(id),
            role,
            sid,
            &TokenSettings::default(),
            Duration::from_secs(900),
        );
        User {
            id,
            email,
            token: self.key.sign(&claims).unwrap(),
            sid,
        }
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
