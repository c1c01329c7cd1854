//! Two replicas on one Redis: messages and job events cross, subscriptions follow the rooms
//! local sockets hold, and a Redis restart is survived without reconnecting.

use std::time::Duration;

use domain::Role;
use serde_json::json;

use crate::helpers::{RedisServer, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn messages_and_job_events_cross_replicas() {
    let stack = Stack::start(2).await;
    let alice = stack.user(Role::User).await;
    let bob = stack.user(Role::User).await;
    let admin = stack.user(Role::Admin).await;
    let mut alice_ws = stack.connect(0, &alice).await;
    let mut bob_ws = stack.connect(1, &bob).await;
    let mut alice_on_1 = stack.connect(1, &alice).await;
    let mut feed = stack.connect(1, &admin).await;
    feed.join("admin:jobs").await;
    alice_ws.join("lobby").await;
    bob_ws.join("lobby").await;

    // A message sent on replica 0 reaches the member on replica 1 (and the sender).
    alice_ws
        .send("sendMessage", json!({"room": "lobby", "message": "across"}))
        .await;
    assert_eq!(bob_ws.expect("receiveMessage").await["message"], "across");
    assert_eq!(alice_ws.expect("receiveMessage").await["message"], "across");

    // A job submitted through replica 0 reaches Alice's socket on replica 1 and the admin
    // feed there; a cancel made on replica 1 reaches her socket on replica 0.
    let job = stack
        .submit(0, &alice, json!({"type": "sleep", "data": {"ms": 60000}}))
        .await;
    assert_eq!(alice_on_1.expect("jobUpdated").await["job"], job);
    assert_eq!(alice_ws.expect("jobUpdated").await["job"], job);
    assert_eq!(feed.expect("jobUpdated").await["job"], job);
    let id = job["id"].as_str().unwrap();
    let mut watcher = stack.connect(0, &admin).await;
    watcher.join(&format!("job:{id}")).await;
    stack
        .post(1, &alice, &format!("/api/jobs/{id}/cancel"))
        .await;
    assert_eq!(
        alice_ws.expect("jobUpdated").await["job"]["status"],
        "cancelled"
    );
    assert_eq!(
        watcher.expect("jobUpdated").await["job"]["status"],
        "cancelled"
    );
    bob_ws.quiet(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_subscribes_only_to_what_its_sockets_hold() {
    let stack = Stack::start(1).await;
    let alice = stack.user(Role::User).await;
    let admin = stack.user(Role::Admin).await;
    let prefix = stack.redis.prefix().to_owned();
    let channels = |pattern: String| {
        let url = stack.redis_url.clone();
        async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let names: Vec<String> = redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            names
        }
    };
    let user_channel = format!("{prefix}events:user:{}", alice.id);
    // The bridge starts with the HTTP worker (a socket's upgrade waits for it): give it a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let held = channels(format!("{prefix}*")).await;
        if !held.is_empty() || tokio::time::Instant::now() > deadline {
            assert_eq!(held, vec![format!("{prefix}sessions-revoked")]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut ws = stack.connect(0, &alice).await;
    ws.join("lobby").await;
    let mut held = channels(format!("{prefix}*")).await;
    held.sort();
    let mut expected = vec![
        user_channel.clone(),
        format!("{prefix}sessions-revoked"),
        format!("{prefix}ws:room:lobby"),
    ];
    expected.sort();
    assert_eq!(held, expected);

    let mut feed = stack.connect(0, &admin).await;
    feed.join("admin:jobs").await;
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let patterns: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(patterns >= 1);

    drop(ws);
    drop(feed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = channels(format!("{prefix}*")).await;
        if left == vec![format!("{prefix}sessions-revoked")] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still subscribed: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_redis_restart_events_flow_again_without_reconnecting() {
    let mut server = RedisServer::start().await;
    let stack = Stack::start_with(2, Some(server.url()), |_| {}).await;
    let alice = stack.user(Role::User).await;
    let bob = stack.user(Role::User).await;
    let mut alice_ws = stack.connect(0, &alice).await;
    let mut bob_ws = stack.connect(1, &bob).await;
    alice_ws.join("lobby").await;
    bob_ws.join("lobby").await;

    server.restart().await;

    // Once the replicas have resubscribed, a message crosses again on the same sockets.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        alice_ws
            .send("sendMessage", json!({"room": "lobby", "message": "back?"}))
            .await;
        let frame = bob_ws.next_within(Duration::from_millis(500)).await;
        match frame {
            Some(Ok(frame)) if frame["event"] == "receiveMessage" => break,
            Some(Err(close)) => panic!("socket closed: {close:?}"),
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "no message after restart"
            ),
        }
    }
    // Job events too: published the way the worker does.
    let job = json!({"id": uuid::Uuid::now_v7(), "user_id": bob.id, "status": "running",
        "updated_at": chrono::Utc::now().to_rfc3339()});
    stack
        .publish(
            &format!("events:user:{}", bob.id),
            &job_queue::job_updated_event(&job),
        )
        .await;
    let event = bob_ws.until(|f| f["event"] == "jobUpdated").await;
    assert_eq!(event["data"]["job"]["id"], job["id"]);
    assert!(stack.metrics(1).await.contains("ws_redis_reconnects_total"));
}
