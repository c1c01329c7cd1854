//! Pauses and resumes are announced to the admin room, on every replica.

use domain::Role;
use serde_json::json;

use crate::helpers::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn pause_and_resume_reach_the_admin_room_on_every_replica() {
    let stack = Stack::start(2).await;
    let admin = stack.user(Role::Admin).await;
    let mut watcher = stack.connect(1, &admin).await;
    watcher.join("admin:jobs").await;
    let post = |action: &'static str, body: serde_json::Value| {
        let request = stack
            .http
            .post(format!("{}/api/jobs/admin/{action}", stack.replicas[0]))
            .bearer_auth(&admin.token)
            .json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post("pause", json!({"type": "send_email"})).await, 200);
    let data = watcher.expect("queuePaused").await;
    assert_eq!(
        data,
        json!({"types": ["send_email"], "paused": ["send_email"]})
    );
    assert_eq!(post("resume", json!({})).await, 200);
    let data = watcher.expect("queueResumed").await;
    assert_eq!(data["paused"], json!([]));
    assert_eq!(data["types"].as_array().unwrap().len(), 5);
}
