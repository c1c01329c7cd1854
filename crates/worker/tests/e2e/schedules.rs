//! Schedules fired by real workers: one job per due time however many workers run, one
//! catch-up job after downtime, pause and resume, and Redis losing everything.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Timestamptz, Uuid as SqlUuid};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::Env;

const T: Duration = Duration::from_secs(30);

#[derive(diesel::QueryableByName, Debug)]
struct Run {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    due: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
}

/// The jobs of `schedule`, by due time.
async fn runs(env: &Env, schedule: Uuid) -> Vec<Run> {
    use diesel_async::RunQueryDsl as _;
    let mut conn = env.pool.get().await.unwrap();
    diesel::sql_query(
        "SELECT id, schedule_due_at AS due, created_at, status FROM jobs \
         WHERE schedule_id = $1 ORDER BY schedule_due_at",
    )
    .bind::<SqlUuid, _>(schedule)
    .load(&mut conn)
    .await
    .unwrap()
}

async fn create(env: &Env, body: Value) -> Value {
    let response = env
        .client
        .post(format!("{}/api/schedules", env.base))
        .bearer_auth(&env.user.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["schedule"].clone()
}

fn id_of(schedule: &Value) -> Uuid {
    schedule["id"].as_str().unwrap().parse().unwrap()
}

/// Asserts that the due times of `runs` are whole seconds one second apart: no gap, no double.
fn assert_every_second(runs: &[Run]) {
    let dues: Vec<DateTime<Utc>> = runs.iter().map(|r| r.due.unwrap()).collect();
    for due in &dues {
        assert_eq!(due.timestamp_subsec_nanos(), 0, "{dues:?}");
    }
    for pair in dues.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            1000,
            "due times not one second apart: {dues:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_and_a_schedule_every_second_make_exactly_one_job_per_second() {
    let env = Env::start().await;
    // The schedulers sleep up to a minute when nothing is due: only the wake-up published on
    // create can make them fire within the first seconds.
    let settings = [("SCHEDULE_MAX_SLEEP_SECS", "60")];
    let _a = env.worker(&settings).await;
    let _b = env.worker(&settings).await;
    let schedule = create(
        &env,
        json!({"name": "every second", "cron": "* * * * * *", "job": {"type": "noop"}}),
    )
    .await;
    let id = id_of(&schedule);
    let created: DateTime<Utc> = schedule["created_at"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let (status, _) = env.post(&format!("/api/schedules/{id}/pause")).await;
    assert_eq!(status, 200);
    let paused = Utc::now();

    let runs = runs(&env, id).await;
    assert_every_second(&runs);
    // Every whole second from creation to the pause has its job, and none after the pause.
    let first = runs.first().unwrap().due.unwrap();
    let last = runs.last().unwrap().due.unwrap();
    assert!(
        (first - created).num_milliseconds() <= 1000,
        "first run {first}, created {created}"
    );
    assert!(
        last <= paused && (paused - last).num_milliseconds() <= 1500,
        "last {last}, paused {paused}"
    );
    assert!((10..=12).contains(&runs.len()), "{} runs", runs.len());
    // Each job ran once, on one of the two workers.
    for run in &runs {
        env.wait_status(run.id, "completed", T).await;
        assert_eq!(env.executions_of(run.id).len(), 1);
        // Fired on time: created within a second of its due time.
        let late = (run.created_at - run.due.unwrap()).num_milliseconds();
        assert!((0..1000).contains(&late), "created {late} ms after due");
    }
    // The job object carries its schedule.
    let (_, job) = env.get_path(&format!("/api/jobs/{}", runs[0].id)).await;
    assert_eq!(job["job"]["schedule_id"], json!(id));
    // The schedule's record says when it last ran.
    let (_, body) = env.get_path(&format!("/api/schedules/{id}")).await;
    let last_run: DateTime<Utc> = body["schedule"]["last_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last_run, last);
    assert!(body["schedule"]["next_run_at"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_downtime_of_five_due_times_one_catch_up_job_runs() {
    let env = Env::start().await;
    let schedule = create(
        &env,
        json!({"name": "minutely", "cron": "* * * * *", "timezone": "Europe/Berlin",
               "job": {"type": "echo", "data": {"n": 1}, "priority": 3, "max_attempts": 2}}),
    )
    .await;
    let id = id_of(&schedule);
    // No worker ran during the last five due times.
    env.sql(&format!(
        "UPDATE schedules SET next_run_at = date_trunc('minute', now()) - interval '4 minutes' \
         WHERE id = '{id}'"
    ))
    .await;
    let started = Utc::now();
    let _a = env.worker(&[]).await;
    let _b = env.worker(&[]).await;
    let first = {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let found = runs(&env, id).await;
            if !found.is_empty() || tokio::time::Instant::now() > deadline {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let catch_up = env.wait_status(first[0].id, "completed", T).await;
    assert_eq!(catch_up.result, Some(json!({"n": 1})));
    assert_eq!((catch_up.priority, catch_up.max_attempts), (3, 2));
    assert_eq!(catch_up.user_id, env.user.id);
    // Give the workers time to (wrongly) fire the other missed due times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = runs(&env, id).await;
    // One job for the five due times missed before the workers started (a regular run may
    // follow if a minute boundary passed since).
    let missed: Vec<_> = runs.iter().filter(|r| r.due.unwrap() < started).collect();
    assert_eq!(missed.len(), 1, "{runs:?}");
    // The next due time is a whole minute after the workers started, not a missed one.
    let (_, body) = env.get_path(&format!("/api/schedules/{id}")).await;
    let next: DateTime<Utc> = body["schedule"]["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > started, "next {next}, started {started}");
    assert_eq!(next.timestamp() % 60, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_schedule_creates_nothing_and_resumes_from_now() {
    let env = Env::start().await;
    let _worker = env.worker(&[]).await;
    let schedule = create(
        &env,
        json!({"name": "tick", "cron": "* * * * * *", "job": {"type": "noop"}}),
    )
    .await;
    let id = id_of(&schedule);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = env.post(&format!("/api/schedules/{id}/pause")).await;
    assert_eq!(status, 200);
    assert_eq!(body["schedule"]["paused"], true);
    let paused_at = Utc::now();
    let before = runs(&env, id).await.len();
    assert!(before >= 2, "{before} runs before the pause");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        runs(&env, id).await.len(),
        before,
        "a paused schedule fired"
    );

    // Taken before the request: the service resumes from its own now, after this.
    let resumed_at = Utc::now();
    let (status, body) = env.post(&format!("/api/schedules/{id}/resume")).await;
    assert_eq!(status, 200);
    assert_eq!(body["schedule"]["paused"], false);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = runs(&env, id).await;
    assert!(
        after.len() >= before + 2,
        "{} runs after resuming",
        after.len()
    );
    // Nothing for the paused seconds: no catch-up of a pause.
    let late = paused_at + chrono::Duration::seconds(1);
    assert!(
        after
            .iter()
            .all(|r| r.due.unwrap() <= late || r.due.unwrap() > resumed_at),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_fire_once_per_due_time_after_redis_loses_its_keys() {
    let env = Env::start().await;
    let _a = env.worker(&[]).await;
    let _b = env.worker(&[]).await;
    let schedule = create(
        &env,
        json!({"name": "tick", "cron": "* * * * * *", "job": {"type": "noop"}}),
    )
    .await;
    let id = id_of(&schedule);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Wipe every key of this test's prefix (queue, leases, marks), as a flush would.
    let mut redis = env.redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", env.redis.prefix()))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut redis)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (status, _) = env.post(&format!("/api/schedules/{id}/pause")).await;
    assert_eq!(status, 200);

    let runs = runs(&env, id).await;
    assert_every_second(&runs);
    assert!(runs.len() >= 5, "{} runs", runs.len());
    for run in &runs {
        env.wait_status(run.id, "completed", T).await;
        assert_eq!(env.executions_of(run.id).len(), 1, "{run:?}");
    }
    assert!(runs.iter().all(|r| r.status != "failed"));
}
