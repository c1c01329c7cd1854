//! Test harness: a running service and helpers to talk to it.

use std::collections::BTreeMap;

use auth_service::{Application, Settings};
use base64::Engine as _;
use reqwest::Response;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use test_support::smtp::{Behaviour, SmtpCapture};
use test_support::{TestDb, TestRedis};

pub const PASSWORD: &str = "correct horse battery";
pub const FRONTEND: &str = "http://app.test:5173";

/// A service under test, with its own database, Redis prefix and mail server.
pub struct TestApp {
    pub base: String,
    /// The separate `/metrics` listener, when the test set `metrics_addr`.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    pub smtp: SmtpCapture,
    pub redis: TestRedis,
    pub db: TestDb,
}

/// Settings for a test: fast bcrypt, generous IP budget, links to [`FRONTEND`].
pub fn test_settings(db: &TestDb, redis: &TestRedis, smtp: &SmtpCapture) -> Settings {
    Settings {
        database_url: db.url().to_owned(),
        redis_url: redis.url(),
        redis_prefix: redis.prefix().to_owned(),
        auth_addr: "127.0.0.1:0".to_owned(),
        smtp_url: Some(smtp.url()),
        frontend_url: FRONTEND.to_owned(),
        bcrypt_cost: 4,
        auth_rate_limit_per_minute: 10_000,
        db_pool_size: 4,
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_smtp(Behaviour::Accept, configure).await
}

pub async fn spawn_app_with_smtp(
    behaviour: Behaviour,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        service_kit::telemetry::init("pretty");
    }
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let smtp = SmtpCapture::start_with(behaviour).await;
    let mut settings = test_settings(&db, &redis, &smtp);
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("build the application");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics_base = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        base,
        metrics_base,
        client,
        smtp,
        redis,
        db,
    }
}

/// One `Set-Cookie`, split into its parts.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lower-cased; flag attributes map to "".
    pub attrs: BTreeMap<String, String>,
}

impl SetCookie {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

pub fn set_cookies(headers: &HeaderMap) -> Vec<SetCookie> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|raw| {
            let mut parts = raw.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let attrs = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                    None => (p.to_ascii_lowercase(), String::new()),
                })
                .collect();
            SetCookie {
                name: name.to_owned(),
                value: value.to_owned(),
                attrs,
            }
        })
        .collect()
}

pub fn cookie(headers: &HeaderMap, name: &str) -> SetCookie {
    set_cookies(headers)
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"))
}

/// Tokens of one signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
}

impl Session {
    pub fn from_response(headers: &HeaderMap) -> Self {
        Self {
            access: cookie(headers, "access_token").value,
            refresh: cookie(headers, "refresh_token").value,
        }
    }

    /// The `sid` claim of the access token.
    pub fn sid(&self) -> String {
        let payload = self.access.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["sid"].as_str().unwrap().to_owned()
    }
}

/// The link token and the code of a verification email.
pub struct Verification {
    pub token: String,
    pub code: String,
}

pub fn token_after(body: &str, marker: &str) -> String {
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {body}"))
        + marker.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub fn code_in(body: &str) -> String {
    let line = body
        .lines()
        .find(|l| l.starts_with("Verification code: "))
        .unwrap_or_else(|| panic!("no code line in {body}"));
    line.trim_start_matches("Verification code: ")
        .trim()
        .to_owned()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/signup",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// The `n`-th (1-based) verification email to `email`.
    pub async fn verification_email(&self, email: &str, n: usize) -> Verification {
        let messages = self.smtp.wait_for(email, n).await;
        let body = messages[n - 1].body().to_owned();
        Verification {
            token: token_after(&body, &format!("{FRONTEND}/verify-email?token=")),
            code: code_in(&body),
        }
    }

    /// Signs up and verifies through the link; returns the address.
    pub async fn verified_user(&self, email: &str) -> String {
        assert_eq!(self.signup(email, PASSWORD).await.status(), 202);
        let verification = self.verification_email(email, 1).await;
        let response = self
            .client
            .post(self.url(&format!("/api/auth/verify/{}", verification.token)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        email.to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs up, verifies and logs in.
    pub async fn signed_in(&self, email: &str) -> Session {
        self.verified_user(email).await;
        self.new_session(email, PASSWORD).await
    }

    pub async fn new_session(&self, email: &str, password: &str) -> Session {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200);
        Session::from_response(response.headers())
    }

    pub async fn me_bearer(&self, access: &str) -> Response {
        self.client
            .get(self.url("/api/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh_with_cookie(&self, refresh: &str) -> Response {
        self.client
            .post(self.url("/api/auth/refresh-token"))
            .header("cookie", format!("refresh_token={refresh}"))
            .send()
            .await
            .unwrap()
    }

    /// True when Redis holds the revocation of `sid` under this test's prefix.
    pub async fn revoked_in_redis(&self, sid: &str) -> bool {
        let key = format!("{}revoked-session:{sid}", self.redis.prefix());
        self.redis.keys().await.contains(&key)
    }
}

/// Status, body and every header but `date` and the request id (random for every request,
/// so it tells nothing apart): two answers that must not be told apart.
pub async fn observable(response: Response) -> (u16, Vec<(String, String)>, String) {
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("every answer carries x-request-id");
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(name, value)| {
            (
                name.to_string(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    headers.sort();
    let mut body = response.text().await.unwrap();
    // A problem document repeats the request id: the same id as the header, then dropped.
    if let Ok(Value::Object(mut problem)) = serde_json::from_str::<Value>(&body)
        && let Some(id) = problem.remove("request_id")
    {
        assert_eq!(id, request_id.as_str(), "problem request_id = header");
        body = Value::Object(problem).to_string();
    }
    (status, headers, body)
}

/// Asserts a problem document with `status` and `code`; returns it.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    body
}

/// A problem document without its `request_id` (which differs for every request).
pub fn without_request_id(mut problem: Value) -> Value {
    if let Some(fields) = problem.as_object_mut() {
        fields.remove("request_id");
    }
    problem
}
