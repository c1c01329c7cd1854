//! The job service next to a real auth service: tokens checked against the auth service's
//! JWKS (fetched over HTTP, no key configured), the browser cookie accepted across the two
//! services, and a logout at the auth service refused by the job service within seconds.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::smtp::SmtpCapture;
use test_support::{TestDb, TestRedis};

/// The auth service and the job service (which fetches the JWKS) on one database and Redis
/// prefix; their base URLs.
async fn start_services(db: &TestDb, redis: &TestRedis, smtp: &SmtpCapture) -> (String, String) {
    let auth = auth_service::Application::build(auth_service::Settings {
        database_url: db.url().to_owned(),
        redis_url: redis.url(),
        redis_prefix: redis.prefix().to_owned(),
        auth_addr: "127.0.0.1:0".to_owned(),
        smtp_url: Some(smtp.url()),
        bcrypt_cost: 4,
        require_email_verification: false,
        ..auth_service::Settings::default()
    })
    .await
    .unwrap();
    let auth_url = format!("http://127.0.0.1:{}", auth.port());
    tokio::spawn(auth.run());

    let jobs = job_service::Application::build(job_service::Settings {
        database_url: db.url().to_owned(),
        redis_url: redis.url(),
        redis_prefix: redis.prefix().to_owned(),
        jobs_addr: "127.0.0.1:0".to_owned(),
        auth_url: auth_url.clone(),
        auth_jwt_public_key: None,
        db_pool_size: 4,
        redis_pool_size: 4,
        http_workers: 1,
        ..job_service::Settings::default()
    })
    .await
    .unwrap();
    let jobs_url = format!("http://127.0.0.1:{}", jobs.port());
    tokio::spawn(jobs.run());

    (auth_url, jobs_url)
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_the_auth_service_work_until_its_logout_revokes_them() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let smtp = SmtpCapture::start().await;

    let (auth_url, jobs_url) = start_services(&db, &redis, &smtp).await;

    // A browser: one cookie jar for both services (cookies are not scoped by port).
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let credentials = json!({"email": "both@example.com", "password": "correct horse battery"});
    let signup = browser
        .post(format!("{auth_url}/api/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::ACCEPTED);
    let login: Value = browser
        .post(format!("{auth_url}/api/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();

    // The cookie set by the auth service is accepted by the job service.
    let submitted = browser
        .post(format!("{jobs_url}/api/jobs/submit"))
        .json(&json!({"type": "noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::CREATED);
    let job: Value = submitted.json().await.unwrap();
    assert_eq!(job["job"]["user_id"], login["user"]["id"]);

    // So is the bearer token; anyone's else is not.
    let plain = reqwest::Client::new();
    let list = |bearer: String| {
        let plain = plain.clone();
        let url = format!("{jobs_url}/api/jobs/all");
        async move {
            plain
                .get(url)
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(list(token.clone()).await, StatusCode::OK);
    assert_eq!(list(format!("{token}x")).await, StatusCode::UNAUTHORIZED);

    let logout = plain
        .post(format!("{auth_url}/api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let revoked_at = Instant::now();
    loop {
        let status = list(token.clone()).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "the job service still accepts a logged-out session's token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_session_stays_revoked_after_redis_loses_its_data() {
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let smtp = SmtpCapture::start().await;
    let (auth_url, jobs_url) = start_services(&db, &redis, &smtp).await;
    let client = reqwest::Client::new();
    let credentials = json!({"email": "flushed@example.com", "password": "correct horse battery"});
    for route in ["signup", "login"] {
        client
            .post(format!("{auth_url}/api/auth/{route}"))
            .json(&credentials)
            .send()
            .await
            .unwrap();
    }
    let login: Value = client
        .post(format!("{auth_url}/api/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let list = || {
        client
            .get(format!("{jobs_url}/api/jobs/all"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    let logout = client
        .post(format!("{auth_url}/api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    // Redis loses everything (a flush, or a restart without persistence): the revocation is
    // gone from it, but not from PostgreSQL.
    redis.flush().await;
    assert!(redis.keys().await.is_empty());
    // Past the job service's one-second "not revoked" cache of the earlier request.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(list().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // The list was restored in Redis, for every replica.
    let keys = redis.keys().await;
    let sid_key = format!("{}revoked-session:", redis.prefix());
    assert!(keys.iter().any(|k| k.starts_with(&sid_key)), "{keys:?}");
}
