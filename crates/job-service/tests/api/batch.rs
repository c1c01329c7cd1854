//! `POST /api/jobs/submit-batch`: all or nothing, order kept, the limits counted per job.

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::*;

async fn batch_raw(app: &TestApp, user: &User, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/jobs/submit-batch"))
        .bearer_auth(&user.token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.unwrap()).await
}

async fn job_count(app: &TestApp, user: &User) -> usize {
    let (status, body) = app.get(user, "/api/jobs/all?limit=100").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_creates_every_job_in_order_indexes_and_announces_them() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let client = redis::Client::open(app.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(job_queue::events_channel(app.redis.prefix(), user.id))
        .await
        .unwrap();
    let jobs: Vec<Value> = (0..300)
        .map(|i| json!({"type": "echo", "data": {"n": i}}))
        .chain([json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z", "priority": 3})])
        .collect();
    let (status, body) = batch_raw(&app, &user, json!({ "jobs": jobs }), None).await;
    assert_eq!(status, 201, "{body}");
    let created = body["jobs"].as_array().unwrap();
    assert_eq!(created.len(), 301);
    for (i, job) in created.iter().take(300).enumerate() {
        assert_eq!(job["data"], json!({"n": i}), "order kept");
        assert_eq!(job["status"], "pending");
        assert!(
            app.zscore("ready:echo", job["id"].as_str().unwrap())
                .await
                .is_some()
        );
    }
    assert_eq!(created[300]["status"], "scheduled");
    assert_eq!(created[300]["priority"], 3);
    assert_eq!(app.zcard("ready:echo").await, 300);
    assert_eq!(app.zcard("scheduled").await, 1);
    // The ids grow in batch order, so the queue serves them in that order.
    let ids: Vec<&str> = created.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids grow in batch order"
    );
    let mut ready: Vec<f64> = Vec::new();
    for id in &ids[..300] {
        ready.push(app.zscore("ready:echo", id).await.unwrap());
    }
    assert!(
        ready.windows(2).all(|w| w[0] < w[1]),
        "queued in batch order"
    );
    // One jobUpdated event per job.
    use futures_util::StreamExt as _;
    let mut stream = pubsub.on_message();
    let mut seen = 0;
    while seen < 301 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        assert_eq!(event["event"], "jobUpdated");
        seen += 1;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_job_refuses_the_batch_with_errors_keyed_by_index_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let body = json!({"jobs": [
        {"type": "noop"},
        {"type": "sleep", "data": {"ms": 600001}},
        {"type": "noop"},
        {"type": "nope", "priority": 5000},
        {"type": "send_email", "data": {"to": "someone-else@example.com", "subject": "s", "body": "b"}},
    ]});
    let (status, problem) = batch_raw(&app, &user, body, None).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "validation_failed");
    let errors = problem["errors"].as_object().unwrap();
    let mut keys: Vec<&str> = errors.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "jobs[1].data.ms",
            "jobs[3].priority",
            "jobs[3].type",
            "jobs[4].data.to"
        ]
    );
    assert!(problem["detail"].as_str().unwrap().contains("3 of the 5"));
    assert_eq!(job_count(&app, &user).await, 0, "nothing created");
    for job_type in ["noop", "echo", "sleep", "send_email", "hash"] {
        assert_eq!(
            app.zcard(&format!("ready:{job_type}")).await,
            0,
            "nothing queued"
        );
    }

    // A type error deep in the batch is named by its path too.
    let (status, problem) = batch_raw(
        &app,
        &user,
        json!({"jobs": [{"type": "noop"}, {"type": "noop", "max_attempts": "x"}]}),
        None,
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["errors"]["jobs[1].max_attempts"].is_array(),
        "{problem}"
    );

    // Sizes: none, and more than 1,000.
    let (status, problem) = batch_raw(&app, &user, json!({"jobs": []}), None).await;
    assert_eq!(status, 422);
    assert!(problem["errors"]["jobs"].is_array(), "{problem}");
    let many: Vec<Value> = (0..1001).map(|_| json!({"type": "noop"})).collect();
    let (status, problem) = batch_raw(&app, &user, json!({ "jobs": many }), None).await;
    assert_eq!(status, 422);
    assert!(problem["errors"]["jobs"].is_array(), "{problem}");

    // `data` over 64 KiB in one job: 413 naming it, nothing created.
    let big = "x".repeat(70 * 1024);
    let (status, problem) = batch_raw(
        &app,
        &user,
        json!({"jobs": [{"type": "noop"}, {"type": "echo", "data": {"big": big}}]}),
        None,
    )
    .await;
    assert_eq!(status, 413, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("jobs[1]"));
    assert_eq!(job_count(&app, &user).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_counts_each_job_against_the_rate_and_the_unfinished_cap() {
    let app = TestApp::spawn_with(|s| {
        s.submit_rate_per_sec = 5;
        s.submit_burst = 10;
        s.max_unfinished_jobs_per_user = 30;
    })
    .await;
    let user = app.user(Role::User, true).await;
    // Bigger than the burst: accepted on a full bucket, which it leaves in debt.
    let twenty: Vec<Value> = (0..20).map(|_| json!({"type": "noop"})).collect();
    let (status, body) = batch_raw(&app, &user, json!({ "jobs": twenty }), None).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.submit(&user, json!({"type": "noop"})).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));

    // The cap counts the whole batch.
    let app = TestApp::spawn_with(|s| s.max_unfinished_jobs_per_user = 30).await;
    let user = app.user(Role::User, true).await;
    let twenty: Vec<Value> = (0..20).map(|_| json!({"type": "noop"})).collect();
    assert_eq!(
        batch_raw(&app, &user, json!({ "jobs": twenty.clone() }), None)
            .await
            .0,
        201
    );
    let (status, body) = batch_raw(&app, &user, json!({ "jobs": twenty }), None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_unfinished_jobs");
    let ten: Vec<Value> = (0..10).map(|_| json!({"type": "noop"})).collect();
    assert_eq!(
        batch_raw(&app, &user, json!({ "jobs": ten }), None).await.0,
        201
    );

    // Priorities above USER_MAX_PRIORITY, per job.
    let app = TestApp::spawn_with(|s| s.user_max_priority = 10).await;
    let user = app.user(Role::User, true).await;
    let (status, body) = batch_raw(
        &app,
        &user,
        json!({"jobs": [{"type": "noop", "priority": 10}, {"type": "noop", "priority": 11}]}),
        None,
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["jobs[1].priority"].is_array(), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_names_the_whole_batch() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let body = json!({"jobs": [{"type": "noop"}, {"type": "echo", "data": {"a": 1}}]});
    let (status, first) = batch_raw(&app, &user, body.clone(), Some("batch-1")).await;
    assert_eq!(status, 201, "{first}");
    // Sent again, concurrently and with the same key: the first batch's jobs, nothing new.
    let again = (0..5).map(|_| batch_raw(&app, &user, body.clone(), Some("batch-1")));
    for (status, answer) in futures_util::future::join_all(again).await {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["jobs"], first["jobs"]);
    }
    assert_eq!(job_count(&app, &user).await, 2);
    // A single submit with the same key is another request: it creates its own job.
    let response = app
        .client
        .post(app.url("/api/jobs/submit"))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", "batch-1")
        .json(&json!({"type": "noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Two different keys racing: each creates its batch once.
    let racing = (0..6).map(|i| {
        let key = format!("race-{}", i % 2);
        let body = body.clone();
        let app = &app;
        let user = &user;
        async move { batch_raw(app, user, body, Some(&key)).await }
    });
    let answers = futures_util::future::join_all(racing).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 2);
    assert_eq!(job_count(&app, &user).await, 2 + 1 + 4);
}

/// The batch's Redis writes (a thousand jobs' index entries and events) are one round trip of
/// a constant number of commands: counted on the service's own connections through a proxy,
/// so other tests sharing the Redis server do not disturb the count. Indexing or announcing
/// job by job (even pipelined) costs a command per job and fails this.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_costs_a_constant_number_of_redis_commands() {
    let proxy = crate::redis_proxy::CountingProxy::start(&test_support::redis_url()).await;
    let url = proxy.url().to_owned();
    let app = TestApp::spawn_with(move |s| s.redis_url = url).await;
    let user = app.user(Role::User, true).await;
    let jobs = |n: usize| -> Value {
        json!({ "jobs": (0..n).map(|_| json!({"type": "noop"})).collect::<Vec<_>>() })
    };
    // Warm up: connections made, scripts cached.
    let (status, body) = batch_raw(&app, &user, jobs(3), None).await;
    assert_eq!(status, 201, "{body}");
    let before = proxy.commands();
    let (status, body) = batch_raw(&app, &user, jobs(300), None).await;
    assert_eq!(status, 201, "{body}");
    let spent = proxy.commands() - before;
    assert_eq!(app.zcard("ready:noop").await, 303);
    // The rate limit's script (and the pool's PING before it), the events' script, the
    // enqueue script, and a little room for background traffic (pub/sub pings).
    assert!(
        spent <= 8,
        "a batch of 300 jobs sent {spent} Redis commands; it must not grow with the batch"
    );
}
