//! `/api/schedules`: create, read, list, pause, resume, delete; validation; who sees what.

use chrono::{DateTime, Utc};
use domain::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, User, read};

async fn create(app: &TestApp, user: &User, body: Value) -> (u16, Value) {
    read(
        app.client
            .post(app.url("/api/schedules"))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn delete(app: &TestApp, user: &User, path: &str) -> u16 {
    app.client
        .delete(app.url(path))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_is_created_read_paused_resumed_and_deleted_and_wakes_the_schedulers() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let client = redis::Client::open(app.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(format!("{}schedules:wake", app.redis.prefix()))
        .await
        .unwrap();

    let before = Utc::now();
    let (status, body) = create(
        &app,
        &user,
        json!({"name": " nightly report ", "cron": "30   2 * * *", "timezone": "America/New_York",
               "job": {"type": "sleep", "data": {"ms": 5}, "priority": 7, "max_attempts": 4}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let schedule = &body["schedule"];
    assert_eq!(schedule["name"], "nightly report");
    assert_eq!(schedule["cron"], "30 2 * * *");
    assert_eq!(schedule["timezone"], "America/New_York");
    assert_eq!(
        schedule["job"],
        json!({"type": "sleep", "data": {"ms": 5}, "priority": 7, "max_attempts": 4})
    );
    assert_eq!(schedule["paused"], false);
    assert_eq!(schedule["user_id"], json!(user.id));
    assert!(schedule["last_run_at"].is_null());
    let next = time(&schedule["next_run_at"]);
    assert!(next > before && (next - before).num_hours() <= 24, "{next}");
    // 02:30 in New York is 06:30 or 07:30 UTC, depending on daylight saving time.
    assert_eq!(next.format("%M:%S").to_string(), "30:00");
    assert!(time(&schedule["created_at"]) >= before);
    let id = schedule["id"].as_str().unwrap().to_owned();

    let message = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use futures_util::StreamExt as _;
        pubsub.on_message().next().await
    })
    .await
    .unwrap();
    assert!(message.is_some(), "no wake-up published");

    let (status, body) = app.get(&user, &format!("/api/schedules/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["schedule"], *schedule);
    let (status, body) = app.get(&user, "/api/schedules").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"], json!([schedule]));
    assert!(body["next_cursor"].is_null());

    let (status, body) = app.post(&user, &format!("/api/schedules/{id}/pause")).await;
    assert_eq!(status, 200);
    assert_eq!(body["schedule"]["paused"], true);
    assert!(body["schedule"]["next_run_at"].is_null());
    // Pausing twice changes nothing.
    let (status, again) = app.post(&user, &format!("/api/schedules/{id}/pause")).await;
    assert_eq!((status, &again["schedule"]), (200, &body["schedule"]));

    let (status, body) = app
        .post(&user, &format!("/api/schedules/{id}/resume"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["schedule"]["paused"], false);
    assert_eq!(time(&body["schedule"]["next_run_at"]), next);
    let (status, again) = app
        .post(&user, &format!("/api/schedules/{id}/resume"))
        .await;
    assert_eq!((status, &again["schedule"]), (200, &body["schedule"]));

    assert_eq!(
        delete(&app, &user, &format!("/api/schedules/{id}")).await,
        204
    );
    assert_eq!(app.get(&user, &format!("/api/schedules/{id}")).await.0, 404);
    assert_eq!(
        delete(&app, &user, &format!("/api/schedules/{id}")).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn others_get_404_and_admins_see_and_manage_everyones() {
    let app = TestApp::spawn().await;
    let owner = app.user(Role::User, true).await;
    let other = app.user(Role::User, true).await;
    let admin = app.user(Role::Admin, true).await;
    let body = json!({"name": "n", "cron": "*/5 * * * *", "job": {"type": "noop"}});
    let (_, mine) = create(&app, &owner, body.clone()).await;
    let id = mine["schedule"]["id"].as_str().unwrap().to_owned();
    let (_, theirs) = create(&app, &other, body).await;

    for path in [
        format!("/api/schedules/{id}"),
        "/api/schedules/not-a-uuid".to_owned(),
        format!("/api/schedules/{}", uuid::Uuid::now_v7()),
    ] {
        let (status, body) = app.get(&other, &path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
        assert_eq!(body["detail"], "No such schedule.");
    }
    assert_eq!(
        app.post(&other, &format!("/api/schedules/{id}/pause"))
            .await
            .0,
        404
    );
    assert_eq!(
        app.post(&other, &format!("/api/schedules/{id}/resume"))
            .await
            .0,
        404
    );
    assert_eq!(
        delete(&app, &other, &format!("/api/schedules/{id}")).await,
        404
    );
    let (_, list) = app.get(&other, "/api/schedules").await;
    assert_eq!(list["items"], json!([theirs["schedule"]]));
    // Unauthenticated: 401.
    let response = app
        .client
        .get(app.url("/api/schedules"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Admins list everyone's, newest first, and manage any.
    let (_, list) = app.get(&admin, "/api/schedules").await;
    assert_eq!(list["items"], json!([theirs["schedule"], mine["schedule"]]));
    let (_, page) = app.get(&admin, "/api/schedules?limit=1").await;
    assert_eq!(page["items"], json!([theirs["schedule"]]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = app
        .get(&admin, &format!("/api/schedules?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(page["items"], json!([mine["schedule"]]));
    assert!(page["next_cursor"].is_null());
    let (status, body) = app
        .post(&admin, &format!("/api/schedules/{id}/pause"))
        .await;
    assert_eq!((status, &body["schedule"]["paused"]), (200, &json!(true)));
    assert_eq!(
        delete(&app, &admin, &format!("/api/schedules/{id}")).await,
        204
    );
    let (_, list) = app.get(&owner, "/api/schedules").await;
    assert_eq!(list["items"], json!([]));

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=zz", "cursor"),
    ] {
        let (status, body) = app.get(&owner, &format!("/api/schedules?{query}")).await;
        assert_eq!(status, 422, "{query}");
        assert!(body["errors"][field].is_array(), "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_expressions_zones_and_jobs_are_422_on_their_field() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let cases = [
        (
            json!({"name": "n", "cron": "* * * *", "job": {"type": "noop"}}),
            "cron",
        ),
        (
            json!({"name": "n", "cron": "61 * * * *", "job": {"type": "noop"}}),
            "cron",
        ),
        (
            json!({"name": "n", "cron": "0 0 30 2 *", "job": {"type": "noop"}}),
            "cron",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "timezone": "Mars/Base", "job": {"type": "noop"}}),
            "timezone",
        ),
        (
            json!({"name": " ", "cron": "* * * * *", "job": {"type": "noop"}}),
            "name",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "job": {"type": "nope"}}),
            "job.type",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "job": {"type": "sleep", "data": {"ms": 600001}}}),
            "job.data.ms",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "job": {"type": "noop", "priority": 1001}}),
            "job.priority",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "job": {"type": "noop", "max_attempts": 0}}),
            "job.max_attempts",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "job": {"type": "noop", "data": {"x": "\u{0}"}}}),
            "job.data",
        ),
        (
            json!({"name": "n", "cron": "* * * * *", "job": {"type": "send_email",
            "data": {"to": "someone-else@example.com", "subject": "s", "body": "b"}}}),
            "job.data.to",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = create(&app, &user, body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["code"], "validation_failed");
        assert!(problem["errors"][field].is_array(), "{body}: {problem}");
    }
    // A bad expression and a bad zone at once: both reported.
    let (_, problem) = create(
        &app,
        &user,
        json!({"name": "n", "cron": "x", "timezone": "Nowhere", "job": {"type": "noop"}}),
    )
    .await;
    assert!(problem["errors"]["cron"].is_array() && problem["errors"]["timezone"].is_array());
    // `run_at` belongs to submits, not to a schedule's job; missing fields are named.
    let (status, _) = create(
        &app,
        &user,
        json!({"name": "n", "cron": "* * * * *", "job": {"type": "noop", "run_at": "2030-01-01T00:00:00Z"}}),
    )
    .await;
    assert!(status == 400 || status == 422, "{status}");
    let (status, _) = create(&app, &user, json!({"name": "n", "job": {"type": "noop"}})).await;
    assert_eq!(status, 422);
    // Data over 64 KiB: 413, as for a submit.
    let big = "x".repeat(70 * 1024);
    let (status, problem) = create(
        &app,
        &user,
        json!({"name": "n", "cron": "* * * * *", "job": {"type": "echo", "data": {"big": big}}}),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Six fields: a leading seconds field (an extension of the contract).
    let (status, body) = create(
        &app,
        &user,
        json!({"name": "n", "cron": "*/10 * * * * *", "job": {"type": "noop"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(time(&body["schedule"]["next_run_at"]).timestamp() % 10, 0);
    // Nothing was created by the refused ones.
    let (_, list) = app.get(&user, "/api/schedules").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_has_at_most_max_schedules_even_when_creating_them_at_once() {
    let app = TestApp::spawn_with(|s| s.max_schedules_per_user = 3).await;
    let user = app.user(Role::User, true).await;
    let other = app.user(Role::User, true).await;
    let body = json!({"name": "tick", "cron": "* * * * *", "job": {"type": "noop"}});
    // Eight at once: the cap holds exactly under concurrency.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, token, body) = (
            app.client.clone(),
            app.url("/api/schedules"),
            user.token.clone(),
            body.clone(),
        );
        requests.spawn(async move {
            read(
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        });
    }
    let mut created = Vec::new();
    while let Some(outcome) = requests.join_next().await {
        let (status, body) = outcome.unwrap();
        match status {
            201 => created.push(body["schedule"]["id"].as_str().unwrap().to_owned()),
            429 => {
                assert_eq!(body["code"], "too_many_schedules", "{body}");
                assert!(body["detail"].as_str().unwrap().contains("delete one"));
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created.len(), 3);
    // Another user's count is their own; a delete frees a slot.
    assert_eq!(create(&app, &other, body.clone()).await.0, 201);
    assert_eq!(
        delete(&app, &user, &format!("/api/schedules/{}", created[0])).await,
        204
    );
    assert_eq!(create(&app, &user, body.clone()).await.0, 201);
    assert_eq!(create(&app, &user, body).await.0, 429);
}
