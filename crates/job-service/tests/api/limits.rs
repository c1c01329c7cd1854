//! Abuse limits on submits: the per-user rate, the unfinished-jobs cap, priorities reserved
//! for admins, and `data` PostgreSQL cannot store.

use std::time::Duration;

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::*;

async fn submit_raw(app: &TestApp, user: &User, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/jobs/submit"))
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn submits_are_rate_limited_per_user_with_bursts() {
    let app = TestApp::spawn_with(|s| {
        s.submit_rate_per_sec = 2;
        s.submit_burst = 3;
    })
    .await;
    let user = app.user(Role::User, true).await;
    for _ in 0..3 {
        let (status, body) = app.submit(&user, json!({"type": "noop"})).await;
        assert_eq!(status, 201, "{body}");
    }
    let limited = submit_raw(&app, &user, json!({"type": "noop"})).await;
    assert_eq!(retry_after(&limited), 1);
    let (status, body) = read(limited).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    // Each user has their own budget.
    let other = app.user(Role::User, true).await;
    assert_eq!(app.submit(&other, json!({"type": "noop"})).await.0, 201);
    // The bucket refills at the rate.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.submit(&user, json!({"type": "noop"})).await.0, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn unfinished_jobs_are_capped_per_user() {
    let app = TestApp::spawn_with(|s| s.max_unfinished_jobs_per_user = 2).await;
    let user = app.user(Role::User, true).await;
    let (_, first) = app.submit(&user, json!({"type": "noop"})).await;
    let scheduled = json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z"});
    assert_eq!(app.submit(&user, scheduled.clone()).await.0, 201);
    let capped = submit_raw(&app, &user, scheduled).await;
    assert!(retry_after(&capped) >= 1);
    let (status, body) = read(capped).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_unfinished_jobs");
    assert!(body["detail"].as_str().unwrap().contains('2'), "{body}");
    // Others are not affected; finishing one frees a place.
    let other = app.user(Role::User, true).await;
    assert_eq!(app.submit(&other, json!({"type": "noop"})).await.0, 201);
    let id = first["job"]["id"].as_str().unwrap();
    assert_eq!(
        app.post(&user, &format!("/api/jobs/{id}/cancel")).await.0,
        200
    );
    assert_eq!(app.submit(&user, json!({"type": "noop"})).await.0, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn priorities_above_user_max_priority_are_for_admins() {
    let app = TestApp::spawn_with(|s| s.user_max_priority = 10).await;
    let user = app.user(Role::User, true).await;
    let (status, body) = app
        .submit(&user, json!({"type": "noop", "priority": 11}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["priority"].is_array(), "{body}");
    let (status, _) = app
        .submit(&user, json!({"type": "noop", "priority": 10}))
        .await;
    assert_eq!(status, 201);
    let admin = app.user(Role::Admin, true).await;
    let (status, body) = app
        .submit(&admin, json!({"type": "noop", "priority": 1000}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nul_character_in_data_is_a_422_naming_data() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    for data in [
        json!({"note": "a\u{0}b"}),
        json!({"deep": [{"x": "\u{0}"}]}),
        json!({"key\u{0}": 1}),
    ] {
        let (status, body) = app
            .submit(&user, json!({"type": "noop", "data": data}))
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "validation_failed");
        assert!(body["errors"]["data"].is_array(), "{body}");
    }
    // The same text without the character is fine.
    let (status, _) = app
        .submit(&user, json!({"type": "noop", "data": {"note": "ab"}}))
        .await;
    assert_eq!(status, 201);
}
