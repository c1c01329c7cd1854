//! Job logs: lines written by handlers through the context, read back through the API,
//! bounded per job and deleted with the job.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Env, User};

const T: Duration = Duration::from_secs(20);

async fn logs_as(env: &Env, user: &User, id: Uuid) -> (u16, Value) {
    let response = env
        .client
        .get(format!("{}/api/jobs/{id}/logs", env.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn messages(body: &Value) -> Vec<String> {
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sleep_logs_each_progress_step_for_its_owner_and_admins_only() {
    let env = Env::start().await;
    let _worker = env.worker(&[]).await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 1200}}))
        .await;
    env.wait_status(id, "completed", T).await;

    let (status, body) = logs_as(&env, &env.user, id).await;
    assert_eq!(status, 200, "{body}");
    let lines = body["lines"].as_array().unwrap();
    let texts = messages(&body);
    assert_eq!(texts.first().map(String::as_str), Some("sleeping 1200 ms"));
    assert_eq!(
        texts.last().map(String::as_str),
        Some("done: slept 1200 ms")
    );
    let steps: Vec<&String> = texts
        .iter()
        .filter(|m| m.starts_with("progress "))
        .collect();
    // A step every 250 ms: four before the end.
    assert!(steps.len() >= 3, "{texts:?}");
    let mut last_at: Option<DateTime<Utc>> = None;
    for line in lines {
        assert_eq!(line["attempt"], 1);
        assert_eq!(line["level"], "info");
        let at: DateTime<Utc> = line["at"].as_str().unwrap().parse().unwrap();
        assert!(
            last_at.is_none_or(|last| last <= at),
            "lines out of order: {body}"
        );
        last_at = Some(at);
    }

    // Another user gets 404 (no hint that the job exists); an admin reads it.
    let other = env.another_user().await;
    let (status, body) = logs_as(&env, &other, id).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let admin = job_service::testing::mint_user(
        &env.pool,
        &access_token::SigningKey::development(),
        Role::Admin,
        true,
    )
    .await
    .unwrap();
    let (status, body) = logs_as(&env, &admin, id).await;
    assert_eq!(status, 200);
    assert_eq!(messages(&body), texts);
    // No such job, or not an id at all: 404.
    assert_eq!(logs_as(&env, &env.user, Uuid::now_v7()).await.0, 404);
    let response = env
        .client
        .get(format!("{}/api/jobs/nope/logs", env.base))
        .bearer_auth(&env.user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_failures_log_why_each_attempt_failed() {
    let env = Env::start().await;
    let _worker = env.worker(&[("JOB_RETRY_BASE_MS", "50")]).await;
    let flaky = env
        .submit(json!({"type": "echo", "data": {"failTimes": 2}}))
        .await;
    let doomed = env
        .submit(json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 1}))
        .await;
    let queued = env.submit(json!({"type": "noop"})).await;
    env.wait_status(flaky, "completed", T).await;
    env.wait_status(doomed, "failed", T).await;
    env.wait_status(queued, "completed", T).await;

    let (status, body) = logs_as(&env, &env.user, flaky).await;
    assert_eq!(status, 200);
    let lines = body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{body}");
    for (n, line) in lines.iter().enumerate() {
        let attempt = n + 1;
        assert_eq!(line["attempt"], attempt);
        assert_eq!(line["level"], "error");
        assert_eq!(
            line["message"],
            format!(
                "attempt {attempt} failed: failed on purpose (failTimes: attempt {attempt} of 2)"
            )
        );
    }
    let (_, body) = logs_as(&env, &env.user, doomed).await;
    assert_eq!(
        messages(&body),
        vec!["attempt 1 failed: failed on purpose (shouldFail)"]
    );
    // A job whose handler writes nothing has an empty log, not a 404.
    let (status, body) = logs_as(&env, &env.user, queued).await;
    assert_eq!((status, body), (200, json!({"lines": []})));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_keeps_its_newest_thousand_lines_and_they_go_with_it() {
    use persistence::job_logs::{MAX_LINES_PER_JOB, NewLine, append};
    let env = Env::start().await;
    let id = env.submit(json!({"type": "noop"})).await;
    let other = env.submit(json!({"type": "noop"})).await;
    let line = |job_id, n: usize| NewLine {
        job_id,
        at: Utc::now(),
        attempt: 1,
        level: "info",
        message: format!("line {n}"),
    };
    let mut conn = env.pool.get().await.unwrap();
    // 1,500 lines in three batches, the last one mixed with another job's.
    for batch in 0..3 {
        let mut lines: Vec<NewLine> = (batch * 500..(batch + 1) * 500)
            .map(|n| line(id, n))
            .collect();
        if batch == 2 {
            lines.insert(10, line(other, 0));
        }
        append(&mut conn, &lines).await.unwrap();
    }
    // A batch for a job deleted meanwhile is skipped, not an error.
    append(&mut conn, &[line(Uuid::now_v7(), 0)]).await.unwrap();
    drop(conn);

    let (status, body) = logs_as(&env, &env.user, id).await;
    assert_eq!(status, 200);
    let texts = messages(&body);
    assert_eq!(texts.len(), MAX_LINES_PER_JOB);
    assert_eq!(texts.first().map(String::as_str), Some("line 500"));
    assert_eq!(texts.last().map(String::as_str), Some("line 1499"));
    assert_eq!(
        messages(&logs_as(&env, &env.user, other).await.1),
        ["line 0"]
    );

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = || async {
        use diesel_async::RunQueryDsl as _;
        let mut conn = env.pool.get().await.unwrap();
        diesel::sql_query("SELECT count(*) AS n FROM job_logs")
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n
    };
    assert_eq!(count().await, 1001);
    // Deleting the jobs (as retention does) deletes their lines.
    env.sql("DELETE FROM jobs").await;
    assert_eq!(count().await, 0);
}
