//! Who gets which frame: job events to their owner only, the admin feed, `job:<id>` and
//! `admin:*` rooms, chat messages to room members.

use std::time::Duration;

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn job_events_reach_their_owner_only_with_the_full_job() {
    let stack = Stack::start(1).await;
    let alice = stack.user(Role::User).await;
    let bob = stack.user(Role::User).await;
    let mut alice_ws = stack.connect(0, &alice).await;
    let mut bob_ws = stack.connect(0, &bob).await;

    let job = stack
        .submit(0, &alice, json!({"type": "sleep", "data": {"ms": 60000}}))
        .await;
    let event = alice_ws.expect("jobUpdated").await;
    // The job exactly as GET /api/jobs/{id} returns it, updated_at included.
    assert_eq!(event["job"], job);
    assert!(event["job"]["updated_at"].is_string());

    // Cancelling publishes too.
    let id = job["id"].as_str().unwrap();
    let (status, cancelled) = stack
        .post(0, &alice, &format!("/api/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 200);
    let event = alice_ws.expect("jobUpdated").await;
    assert_eq!(event["job"], cancelled["job"]);
    assert_eq!(event["job"]["status"], "cancelled");

    // Bob saw none of it: the first frame he gets is about his own job.
    let own = stack.submit(0, &bob, json!({"type": "noop"})).await;
    let event = bob_ws.expect("jobUpdated").await;
    assert_eq!(event["job"]["id"], own["id"]);

    // What /metrics shows of it.
    bob_ws.join("lobby").await;
    let page = stack.metrics(0).await;
    for line in [
        "ws_connected_sockets 2",
        "ws_rooms 1",
        "ws_messages_in_total{event=\"joinRoom\"} 1",
        "ws_messages_out_total{event=\"jobUpdated\"} 3",
        "ws_messages_out_total{event=\"reply\"} 1",
        "ws_job_event_delay_seconds_count 3",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} missing:\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_in_admin_jobs_get_every_users_events_once() {
    let stack = Stack::start(1).await;
    let alice = stack.user(Role::User).await;
    let admin = stack.user(Role::Admin).await;
    let other_admin = stack.user(Role::Admin).await;
    let mut feed = stack.connect(0, &admin).await;
    feed.join("admin:jobs").await;
    let mut not_in_feed = stack.connect(0, &other_admin).await;

    let job = stack.submit(0, &alice, json!({"type": "noop"})).await;
    let event = feed.expect("jobUpdated").await;
    assert_eq!(event["job"]["id"], job["id"]);

    // In admin:jobs and job:<id> at once, and the owner of a job: still one frame per change.
    let own = stack
        .submit(0, &admin, json!({"type": "sleep", "data": {"ms": 60000}}))
        .await;
    let own_id = own["id"].as_str().unwrap();
    let event = feed.expect("jobUpdated").await;
    assert_eq!(event["job"]["id"], own["id"]);
    feed.join(&format!("job:{own_id}")).await;
    stack
        .post(0, &admin, &format!("/api/jobs/{own_id}/cancel"))
        .await;
    let event = feed.expect("jobUpdated").await;
    assert_eq!(event["job"]["status"], "cancelled");
    feed.quiet(Duration::from_millis(500)).await;

    // An admin who did not join the feed only gets their own jobs.
    let theirs = stack.submit(0, &other_admin, json!({"type": "noop"})).await;
    let event = not_in_feed.expect("jobUpdated").await;
    assert_eq!(event["job"]["id"], theirs["id"]);
    assert_eq!(feed.expect("jobUpdated").await["job"]["id"], theirs["id"]);

    // Leaving the feed stops it.
    feed.send("leaveRoom", json!({"room": "admin:jobs"})).await;
    assert_eq!(feed.expect("left").await["room"], "admin:jobs");
    stack.submit(0, &alice, json!({"type": "noop"})).await;
    feed.quiet(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_rooms_are_for_the_owner_and_admins_and_admin_rooms_for_admins() {
    let stack = Stack::start(1).await;
    let alice = stack.user(Role::User).await;
    let bob = stack.user(Role::User).await;
    let admin = stack.user(Role::Admin).await;
    let job = stack
        .submit(0, &alice, json!({"type": "sleep", "data": {"ms": 60000}}))
        .await;
    let id = job["id"].as_str().unwrap();
    let room = format!("job:{id}");

    let mut bob_ws = stack.connect(0, &bob).await;
    for refused in [room.as_str(), "admin:jobs", "admin:ops", "job:42"] {
        bob_ws.send("joinRoom", json!({"room": refused})).await;
        let error = bob_ws.expect("error").await;
        assert_eq!(error["code"], "forbidden", "{refused}");
        assert_eq!(error["room"], refused);
    }
    // An upper-case id names the same job, and is refused the same way.
    bob_ws
        .send(
            "joinRoom",
            json!({"room": format!("job:{}", id.to_uppercase())}),
        )
        .await;
    assert_eq!(bob_ws.expect("error").await["code"], "forbidden");

    let mut alice_ws = stack.connect(0, &alice).await;
    alice_ws.join(&room).await;
    let mut admin_ws = stack.connect(0, &admin).await;
    admin_ws.join(&room).await;
    admin_ws.join("admin:ops").await;
    admin_ws
        .send(
            "joinRoom",
            json!({"room": format!("job:{}", uuid::Uuid::now_v7())}),
        )
        .await;
    assert_eq!(admin_ws.expect("error").await["code"], "not_found");

    // The admin in job:<id> gets that job's events.
    stack
        .post(0, &alice, &format!("/api/jobs/{id}/cancel"))
        .await;
    let event = admin_ws.expect("jobUpdated").await;
    assert_eq!(event["job"]["id"], job["id"]);
    let event = alice_ws.expect("jobUpdated").await;
    assert_eq!(event["job"]["status"], "cancelled");
    bob_ws.quiet(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_reach_every_member_of_the_room_with_their_sender() {
    let stack = Stack::start(1).await;
    let alice = stack.user(Role::User).await;
    let bob = stack.user(Role::User).await;
    let carol = stack.user(Role::User).await;
    let mut alice_ws = stack.connect(0, &alice).await;
    let mut bob_ws = stack.connect(0, &bob).await;
    let mut carol_ws = stack.connect(0, &carol).await;
    alice_ws.join("lobby").await;
    bob_ws.join("lobby").await;

    alice_ws
        .send(
            "sendMessage",
            json!({"room": "lobby", "message": "hello 👋"}),
        )
        .await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let data = ws.expect("receiveMessage").await;
        assert_eq!(data["room"], "lobby");
        assert_eq!(data["message"], "hello 👋");
        assert_eq!(data["from"], json!({"id": alice.id, "email": alice.email}));
        let sent_at = data["sent_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(sent_at).is_ok(),
            "{sent_at}"
        );
    }
    carol_ws.quiet(Duration::from_millis(300)).await;

    // Sending to a room one does not hold is refused; after leaving, no more messages.
    carol_ws
        .send(
            "sendMessage",
            json!({"room": "lobby", "message": "let me in"}),
        )
        .await;
    let error = carol_ws.expect("error").await;
    assert_eq!(error["code"], "forbidden");
    bob_ws.send("leaveRoom", json!({"room": "lobby"})).await;
    bob_ws.expect("left").await;
    alice_ws
        .send("sendMessage", json!({"room": "lobby", "message": "bye"}))
        .await;
    alice_ws.expect("receiveMessage").await;
    bob_ws.quiet(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_state_and_progress_change_made_by_a_real_worker_reaches_the_owner() {
    let stack = Stack::start(1).await;
    let alice = stack.user(Role::User).await;
    let mut ws = stack.connect(0, &alice).await;
    let _worker = crate::helpers::start_worker(&stack).await;

    let job = stack
        .submit(0, &alice, json!({"type": "sleep", "data": {"ms": 1200}}))
        .await;
    let mut seen: Vec<Value> = Vec::new();
    loop {
        let event = ws.expect("jobUpdated").await;
        assert_eq!(event["job"]["id"], job["id"]);
        let done = event["job"]["status"] == "completed";
        seen.push(event["job"].clone());
        if done {
            break;
        }
    }
    let statuses: Vec<&str> = seen.iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.first(), Some(&"pending"));
    assert!(statuses.contains(&"running"), "{statuses:?}");
    let progress: Vec<i64> = seen
        .iter()
        .map(|j| j["progress"].as_i64().unwrap())
        .collect();
    assert!(
        progress.iter().any(|p| *p > 0 && *p < 100),
        "progress reported on the way: {progress:?}"
    );
    // Newer events carry newer updated_at, so a client can drop stale ones.
    let stamps: Vec<&str> = seen
        .iter()
        .map(|j| j["updated_at"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert_eq!(seen.last().unwrap()["progress"], 100);
}
