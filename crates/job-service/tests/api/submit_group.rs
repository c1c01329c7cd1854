//! Group commit of single submits (`SUBMIT_GROUP_MAX`): concurrent submits share one insert and
//! one commit, and each still gets its own answer, row and index entry.

use std::collections::HashSet;

use diesel_async::RunQueryDsl as _;
use domain::Role;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

/// Submits `bodies` all at once (one connection each), with an optional idempotency key each.
async fn submit_all(app: &TestApp, bodies: Vec<(&User, Option<&str>)>) -> Vec<(u16, Value)> {
    join_all(bodies.into_iter().map(|(user, key)| {
        let mut request = app
            .client
            .post(app.url("/api/jobs/submit"))
            .bearer_auth(&user.token)
            .json(&json!({"type": "noop"}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move { read(request.send().await.unwrap()).await }
    }))
    .await
}

/// The transactions that stored `user`'s jobs: rows inserted by one transaction share `xmin`.
async fn commits_of(app: &TestApp, user: &User) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        commits: i64,
    }
    let mut conn = app.pool.get().await.unwrap();
    let counts: Counts = diesel::sql_query(
        "SELECT count(*) AS rows, count(DISTINCT xmin::text) AS commits FROM jobs WHERE user_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user.id)
    .get_result(&mut conn)
    .await
    .unwrap();
    (counts.rows, counts.commits)
}

fn no_limits(settings: &mut job_service::Settings) {
    settings.submit_rate_per_sec = 0;
    settings.max_unfinished_jobs_per_user = 0;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submits_share_commits_and_each_is_stored_and_enqueued_once() {
    let app = TestApp::spawn_with(no_limits).await;
    let user = app.user(Role::User, true).await;
    let client = redis::Client::open(app.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(job_queue::events_channel(app.redis.prefix(), user.id))
        .await
        .unwrap();
    let n = 128;
    let mut ids = HashSet::new();
    for _ in 0..2 {
        for (status, body) in submit_all(&app, vec![(&user, None); n / 2]).await {
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["job"]["status"], "pending");
            ids.insert(body["job"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), n, "distinct ids");
    let (rows, commits) = commits_of(&app, &user).await;
    assert_eq!(rows, n as i64, "every row stored");
    assert!(
        commits < rows,
        "{rows} submits took {commits} commits: concurrent submits were not grouped"
    );
    // Each in the index once, each announced once.
    assert_eq!(app.zcard("ready:noop").await, n as u64);
    for id in &ids {
        assert!(
            app.zscore("ready:noop", id).await.is_some(),
            "{id} enqueued"
        );
    }
    use futures_util::StreamExt as _;
    let mut stream = pubsub.on_message();
    let mut announced = HashSet::new();
    while announced.len() < n {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        assert_eq!(event["event"], "jobUpdated");
        let id = event["data"]["job"]["id"].as_str().unwrap().to_owned();
        assert!(ids.contains(&id));
        assert!(announced.insert(id), "announced twice");
    }
    // The answer is the row as stored.
    let some = ids.iter().next().unwrap();
    let (status, stored) = app.get(&user, &format!("/api/jobs/{some}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["job"]["created_at"], stored["job"]["updated_at"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn group_max_1_commits_each_submit_alone() {
    let app = TestApp::spawn_with(|s| {
        no_limits(s);
        s.submit_group_max = 1;
    })
    .await;
    let user = app.user(Role::User, true).await;
    for (status, body) in submit_all(&app, vec![(&user, None); 48]).await {
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(commits_of(&app, &user).await, (48, 48));
    assert_eq!(app.zcard("ready:noop").await, 48);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_that_fails_does_not_fail_its_group_and_keys_are_answered_per_row() {
    let app = TestApp::spawn_with(no_limits).await;
    let user = app.user(Role::User, true).await;
    // A user whose account is deleted after signing in: the row cannot be stored (its user
    // does not exist), so a statement holding it fails as a whole.
    let ghost = app.user(Role::User, true).await;
    {
        let mut conn = app.pool.get().await.unwrap();
        diesel::sql_query("DELETE FROM users WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(ghost.id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (alone, _) = app.submit(&ghost, json!({"type": "noop"})).await;
    assert!(
        alone >= 500,
        "a lone submit of a deleted user fails: {alone}"
    );

    for round in 0..3 {
        let key = format!("same-key-{round}");
        let mut bodies: Vec<(&User, Option<&str>)> = Vec::new();
        for i in 0..40 {
            bodies.push(if i % 10 == 5 {
                (&ghost, None)
            } else {
                (&user, None)
            });
        }
        bodies.push((&user, Some(key.as_str())));
        bodies.push((&user, Some(key.as_str())));
        let answers = submit_all(&app, bodies).await;
        let (good, keyed) = answers.split_at(40);
        for (i, (status, body)) in good.iter().enumerate() {
            if i % 10 == 5 {
                assert_eq!(*status, alone, "the same answer as alone: {body}");
            } else {
                assert_eq!(*status, 201, "{body}");
            }
        }
        let mut statuses = [keyed[0].0, keyed[1].0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "one creates, the other gets it");
        assert_eq!(keyed[0].1["job"]["id"], keyed[1].1["job"]["id"]);
    }
    let (rows, commits) = commits_of(&app, &user).await;
    assert_eq!(rows, 3 * 37);
    assert!(commits < rows, "grouped: {commits} commits for {rows} rows");
    assert_eq!(app.zcard("ready:noop").await, 3 * 37);
}
