//! `POST /api/jobs/admin/pause` and `/resume`, and `paused` in the stats.

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, User, read};

async fn change(app: &TestApp, user: &User, action: &str, body: Value) -> (u16, Value) {
    read(
        app.client
            .post(app.url(&format!("/api/jobs/admin/{action}")))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn paused_in_stats(app: &TestApp, user: &User) -> Value {
    let (status, stats) = app.get(user, "/api/jobs/stats").await;
    assert_eq!(status, 200, "{stats}");
    stats["paused"].clone()
}

/// The Redis mirror the workers' claims read: its version and paused types.
async fn mirror(app: &TestApp) -> (Option<i64>, Vec<String>) {
    let mut conn = app.redis.connection().await;
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{}q:paused", app.redis.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let version = fields.get("_v").and_then(|v| v.parse().ok());
    let mut types: Vec<String> = fields.into_keys().filter(|k| k != "_v").collect();
    types.sort();
    (version, types)
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_pause_and_resume_types_and_everyone_sees_them_in_the_stats() {
    let app = TestApp::spawn().await;
    let admin = app.user(Role::Admin, true).await;
    let user = app.user(Role::User, true).await;
    assert_eq!(paused_in_stats(&app, &user).await, json!([]));

    let (status, body) = change(&app, &admin, "pause", json!({"type": "sleep"})).await;
    assert_eq!((status, &body), (200, &json!({"paused": ["sleep"]})));
    assert_eq!(paused_in_stats(&app, &user).await, json!(["sleep"]));
    assert_eq!(paused_in_stats(&app, &admin).await, json!(["sleep"]));
    let (first, types) = mirror(&app).await;
    assert_eq!(types, ["sleep"]);

    // No type: every type, listed one by one.
    let (status, body) = change(&app, &admin, "pause", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["paused"],
        json!(["echo", "hash", "noop", "send_email", "sleep"])
    );
    let (status, body) = change(&app, &admin, "resume", json!({"type": "echo"})).await;
    assert_eq!(
        (status, &body["paused"]),
        (200, &json!(["hash", "noop", "send_email", "sleep"]))
    );
    let (second, types) = mirror(&app).await;
    assert_eq!(types, ["hash", "noop", "send_email", "sleep"]);
    assert!(second > first, "each change gets a newer version");

    let (status, body) = change(&app, &admin, "resume", json!({"type": null})).await;
    assert_eq!((status, &body), (200, &json!({"paused": []})));
    assert_eq!(paused_in_stats(&app, &user).await, json!([]));
    assert!(mirror(&app).await.1.is_empty());
    // Resuming what is not paused is no error.
    let (status, _) = change(&app, &admin, "resume", json!({"type": "sleep"})).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_may_pause_and_only_known_types() {
    let app = TestApp::spawn().await;
    let admin = app.user(Role::Admin, true).await;
    let user = app.user(Role::User, true).await;
    for action in ["pause", "resume"] {
        let (status, body) = change(&app, &user, action, json!({"type": "sleep"})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("forbidden")),
            "{action}"
        );
        let (status, body) = change(&app, &admin, action, json!({"type": "teleport"})).await;
        assert_eq!(status, 422, "{action}: {body}");
        assert_eq!(body["code"], "validation_failed");
        assert!(
            body["errors"]["type"][0]
                .as_str()
                .unwrap()
                .contains("send_email")
        );
        let (status, body) = change(&app, &admin, action, json!({"typ": "sleep"})).await;
        assert_eq!(status, 422, "{action}: {body}");
        let (status, _) = read(
            app.client
                .post(app.url(&format!("/api/jobs/admin/{action}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }
    assert_eq!(paused_in_stats(&app, &admin).await, json!([]));
}
