//! Pausing and resuming job types with real worker processes.

use std::time::Duration;

use access_token::SigningKey;
use domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Env, User};
use domain::job::JobStatus;

const T: Duration = Duration::from_secs(20);

async fn admin(env: &Env) -> User {
    job_service::testing::mint_user(&env.pool, &SigningKey::development(), Role::Admin, true)
        .await
        .unwrap()
}

async fn change(env: &Env, base: &str, admin: &User, action: &str, body: Value) -> Value {
    let response = env
        .client
        .post(format!("{base}/api/jobs/admin/{action}"))
        .bearer_auth(&admin.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Asserts that none of `ids` started (still `pending`, never executed) over `wait`.
async fn none_start(env: &Env, ids: &[Uuid], wait: Duration) {
    tokio::time::sleep(wait).await;
    for id in ids {
        assert_eq!(env.job(*id).await.status, JobStatus::Pending);
        assert!(env.executions_of(*id).is_empty(), "a paused job ran");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_type_waits_while_other_types_run_and_runs_once_resumed() {
    let env = Env::start().await;
    let admin = admin(&env).await;
    let _worker = env.worker(&[]).await;
    let running = env
        .submit(json!({"type": "sleep", "data": {"ms": 1500}}))
        .await;
    env.wait_status(running, "running", T).await;
    change(&env, &env.base, &admin, "pause", json!({"type": "sleep"})).await;
    let sleeps: Vec<Uuid> = futures_util::future::join_all(
        (0..3).map(|_| env.submit(json!({"type": "sleep", "data": {"ms": 10}}))),
    )
    .await;
    let noops: Vec<Uuid> =
        futures_util::future::join_all((0..3).map(|_| env.submit(json!({"type": "noop"})))).await;
    for id in noops {
        env.wait_status(id, "completed", T).await;
    }
    // The running one finishes; the queued ones stay queued.
    env.wait_status(running, "completed", T).await;
    none_start(&env, &sleeps, Duration::from_millis(800)).await;
    change(&env, &env.base, &admin, "resume", json!({"type": "sleep"})).await;
    for id in sleeps {
        env.wait_status(id, "completed", T).await;
        assert_eq!(env.executions_of(id).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_survives_restarting_every_process_and_a_redis_wipe() {
    let env = Env::start().await;
    let admin = admin(&env).await;
    change(&env, &env.base, &admin, "pause", json!({})).await;
    let mut first = env.worker(&[]).await;
    let sleeps: Vec<Uuid> = futures_util::future::join_all(
        (0..2).map(|_| env.submit(json!({"type": "sleep", "data": {"ms": 10}}))),
    )
    .await;
    change(&env, &env.base, &admin, "resume", json!({"type": "noop"})).await;
    let noop = env.submit(json!({"type": "noop"})).await;
    env.wait_status(noop, "completed", T).await;
    none_start(&env, &sleeps, Duration::from_millis(300)).await;

    // Every process goes, and Redis loses everything under the test's prefix.
    first.kill().await;
    env.redis.flush().await;
    let restarted = job_service::testing::spawn_with(
        job_service::testing::TestBackends {
            database_url: env.db.url().to_owned(),
            redis_url: env.redis_url.clone(),
            redis_prefix: env.redis.prefix().to_owned(),
            public_key_pem: SigningKey::development().public_pem(),
        },
        |_| {},
    )
    .await
    .unwrap();
    let stats: Value = env
        .client
        .get(format!("{restarted}/api/jobs/stats"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["paused"],
        json!(["echo", "hash", "send_email", "sleep"])
    );
    let _second = env.worker(&[]).await;
    // The reconciler puts the sleeps back in the queue, where they keep waiting.
    let mut redis = env.redis_conn().await;
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let ready: u64 = redis::cmd("ZCARD")
            .arg(env.key("ready:sleep"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if ready == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reconciler did not restore the sleeps"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = env.submit(json!({"type": "noop"})).await;
    env.wait_status(after, "completed", T).await;
    none_start(&env, &sleeps, Duration::from_millis(1500)).await;

    change(&env, &restarted, &admin, "resume", json!({})).await;
    for id in sleeps {
        env.wait_status(id, "completed", T).await;
        assert_eq!(env.executions_of(id).len(), 1);
    }
}
