//! `depends_on`: parents checked at submit, the `waiting` status, cancellation cascading down,
//! and `waiting` in stats and filters. (Running flows end to end: the worker's e2e tests.)

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::*;

async fn batch(app: &TestApp, user: &User, jobs: Value) -> (u16, Value) {
    read(
        app.client
            .post(app.url("/api/jobs/submit-batch"))
            .bearer_auth(&user.token)
            .json(&json!({ "jobs": jobs }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn submit_id(app: &TestApp, user: &User, body: Value) -> String {
    let (status, body) = app.submit(user, body).await;
    assert_eq!(status, 201, "{body}");
    body["job"]["id"].as_str().unwrap().to_owned()
}

async fn job(app: &TestApp, user: &User, id: &str) -> Value {
    let (status, body) = app.get(user, &format!("/api/jobs/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["job"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn parents_must_be_own_existing_jobs_one_to_twenty_without_repeats() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let other = app.user(Role::User, true).await;
    let mine = submit_id(&app, &user, json!({"type": "noop"})).await;
    let theirs = submit_id(&app, &other, json!({"type": "noop"})).await;
    let missing = uuid::Uuid::now_v7().to_string();
    for (depends_on, why) in [
        (json!([theirs]), "another user's job"),
        (json!([missing]), "a job that does not exist"),
        (json!([mine, missing]), "one of two missing"),
        (json!([]), "an empty list"),
        (json!([mine, mine]), "a repeat"),
        (json!(["not-a-uuid"]), "not a UUID"),
    ] {
        let (status, body) = app
            .submit(&user, json!({"type": "noop", "depends_on": depends_on}))
            .await;
        assert_eq!(status, 422, "{why}: {body}");
        let field = body["errors"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        assert!(field.starts_with("depends_on"), "{why}: {body}");
    }
    let too_many: Vec<String> = (0..21).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let (status, body) = app
        .submit(&user, json!({"type": "noop", "depends_on": too_many}))
        .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["depends_on"].is_array(), "{body}");
    // The same answer for another user's job and a missing one: nothing to learn from it.
    let (_, foreign) = app
        .submit(&user, json!({"type": "noop", "depends_on": [theirs]}))
        .await;
    assert!(
        foreign["errors"]["depends_on"][0]
            .as_str()
            .unwrap()
            .contains("do not exist (or are not yours)")
    );
    // In a batch: keyed by the job's index, and nothing is created.
    let (status, body) = batch(
        &app,
        &user,
        json!([
            {"type": "noop", "depends_on": [mine]},
            {"type": "noop", "depends_on": [theirs]},
        ]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["jobs[1].depends_on"].is_array(), "{body}");
    let (_, list) = app.get(&user, "/api/jobs/all").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only the first job exists"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_waits_out_of_the_queue_and_starts_as_its_parents_say() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let parent = submit_id(&app, &user, json!({"type": "noop"})).await;
    let (status, body) = app
        .submit(&user, json!({"type": "echo", "depends_on": [parent]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let child = &body["job"];
    assert_eq!(child["status"], "waiting");
    assert_eq!(child["depends_on"], json!([parent]));
    let child_id = child["id"].as_str().unwrap();
    assert!(
        app.zscore("ready:echo", child_id).await.is_none(),
        "not queued"
    );
    assert_eq!(
        app.zcard("ready:noop").await,
        1,
        "only the parent is queued"
    );

    // Parents already completed: the child starts pending (scheduled with a future run_at).
    app.set_status(&parent, "completed").await;
    let (_, body) = app
        .submit(&user, json!({"type": "noop", "depends_on": [parent]}))
        .await;
    assert_eq!(body["job"]["status"], "pending");
    assert!(
        app.zscore("ready:noop", body["job"]["id"].as_str().unwrap())
            .await
            .is_some()
    );
    let (_, body) = app
        .submit(
            &user,
            json!({"type": "noop", "depends_on": [parent], "run_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(body["job"]["status"], "scheduled");

    // A failed parent: the child is cancelled at once, naming it.
    let failed = submit_id(&app, &user, json!({"type": "noop"})).await;
    app.set_status(&failed, "failed").await;
    let (status, body) = app
        .submit(
            &user,
            json!({"type": "noop", "depends_on": [parent, failed]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["job"]["status"], "cancelled");
    assert_eq!(
        body["job"]["last_error"],
        format!("parent job {failed} failed")
    );

    // Stats and filters know `waiting`.
    let (_, stats) = app.get(&user, "/api/jobs/stats").await;
    assert_eq!(stats["counts"]["waiting"], 1, "{stats}");
    let (status, list) = app.get(&user, "/api/jobs/all?status=waiting").await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], child_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_parent_cancels_every_waiting_descendant_and_a_waiting_job_can_be_cancelled() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let client = redis::Client::open(app.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(job_queue::events_channel(app.redis.prefix(), user.id))
        .await
        .unwrap();
    // a → b → c, and a → d; e waits on nothing of a's.
    let a = submit_id(&app, &user, json!({"type": "noop"})).await;
    let b = submit_id(&app, &user, json!({"type": "noop", "depends_on": [a]})).await;
    let (_, body) = batch(
        &app,
        &user,
        json!([
            {"type": "noop", "depends_on": [b]},
            {"type": "noop", "depends_on": [a]},
        ]),
    )
    .await;
    let c = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    let d = body["jobs"][1]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["jobs"][0]["status"], "waiting");
    let lone = submit_id(&app, &user, json!({"type": "noop"})).await;
    let e = submit_id(&app, &user, json!({"type": "noop", "depends_on": [lone]})).await;

    let (status, body) = app.post(&user, &format!("/api/jobs/{a}/cancel")).await;
    assert_eq!(status, 200, "{body}");
    for (id, parent) in [(&b, &a), (&c, &b), (&d, &a)] {
        let job = job(&app, &user, id).await;
        assert_eq!(job["status"], "cancelled", "{job}");
        assert_eq!(
            job["last_error"],
            format!("parent job {parent} was cancelled")
        );
        assert!(job["finished_at"].is_string());
    }
    assert_eq!(job(&app, &user, &e).await["status"], "waiting");
    // Every cancelled job was announced.
    use futures_util::StreamExt as _;
    let mut stream = pubsub.on_message();
    let mut cancelled = std::collections::HashSet::new();
    while cancelled.len() < 4 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        if event["data"]["job"]["status"] == "cancelled" {
            cancelled.insert(event["data"]["job"]["id"].as_str().unwrap().to_owned());
        }
    }
    // A waiting job is cancelled like a pending one.
    let (status, body) = app.post(&user, &format!("/api/jobs/{e}/cancel")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], "cancelled");

    // Retrying a child whose parent is cancelled cancels it again, naming the parent; once the
    // parent completed, the retry makes it pending.
    let (status, body) = app.post(&user, &format!("/api/jobs/{b}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], "cancelled");
    assert_eq!(
        body["job"]["last_error"],
        format!("parent job {a} was cancelled")
    );
    app.set_status(&a, "completed").await;
    let (_, body) = app.post(&user, &format!("/api/jobs/{b}/retry")).await;
    assert_eq!(body["job"]["status"], "pending", "{body}");
    assert!(app.zscore("ready:noop", &b).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_cancels_and_retries_of_a_dependency_graph_never_fail() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    // A graph where every job waits on up to three earlier ones: cascades overlap.
    let mut ids: Vec<String> = Vec::new();
    for n in 0..40_usize {
        let parents: Vec<&String> = [n / 2, n / 3, n.saturating_sub(1)]
            .into_iter()
            .filter(|&p| p < n)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|p| &ids[p])
            .collect();
        let body = if parents.is_empty() {
            json!({"type": "noop", "run_at": "2999-01-01T00:00:00Z"})
        } else {
            json!({"type": "noop", "depends_on": parents})
        };
        ids.push(submit_id(&app, &user, body).await);
    }
    for round in 0..8 {
        // Cancels and retries of the whole graph at once, from the leaves and the roots alike.
        let mut requests = tokio::task::JoinSet::new();
        for (n, id) in ids.iter().enumerate().rev() {
            let action = if round > 0 && (n + round) % 3 == 0 {
                "retry"
            } else {
                "cancel"
            };
            let (client, url, token) = (
                app.client.clone(),
                app.url(&format!("/api/jobs/{id}/{action}")),
                user.token.clone(),
            );
            requests.spawn(async move {
                let response = client.post(url).bearer_auth(token).send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            });
        }
        while let Some(outcome) = requests.join_next().await {
            let (status, body) = outcome.unwrap();
            assert!(
                status == 200 || status == 409,
                "round {round}: {status} {body}"
            );
        }
    }
}
