//! Dependencies with real workers: flows run in order and once, failures cascade, parents
//! finishing together on two workers promote a child once, and nothing is lost when Redis is
//! emptied or a promotion is missed.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::Env;
use domain::job::JobStatus;

async fn submit_batch(env: &Env, jobs: Value) -> Vec<Uuid> {
    let response = env
        .client
        .post(format!("{}/api/jobs/submit-batch", env.base))
        .bearer_auth(&env.user.token)
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The first execution time (unix ms) of each job.
fn started(env: &Env) -> HashMap<Uuid, i64> {
    let mut first = HashMap::new();
    for (id, _, at) in env.executions() {
        first.entry(id).or_insert(at);
    }
    first
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diamond_runs_in_order_once_and_the_last_job_sees_its_parents_results() {
    let env = Env::start().await;
    let _worker = env.worker(&[]).await;
    let a = env
        .submit(json!({"type": "sleep", "data": {"ms": 300}}))
        .await;
    let bc = submit_batch(
        &env,
        json!([
            {"type": "echo", "data": {"branch": "b"}, "depends_on": [a]},
            {"type": "hash", "data": {"text": "c"}, "depends_on": [a]},
        ]),
    )
    .await;
    let (b, c) = (bc[0], bc[1]);
    let d = env
        .submit(json!({"type": "echo", "data": {"n": 4}, "depends_on": [b, c]}))
        .await;
    assert_eq!(env.job(d).await.status, JobStatus::Waiting);
    let done = env
        .wait_status(d, "completed", Duration::from_secs(30))
        .await;
    let starts = started(&env);
    let env_ref = &env;
    let finished = |id: Uuid| async move { env_ref.job(id).await.finished_at.unwrap() };
    // Each child started after its parents finished.
    assert!(starts[&b] >= finished(a).await.timestamp_millis());
    assert!(starts[&c] >= finished(a).await.timestamp_millis());
    assert!(starts[&d] >= finished(b).await.timestamp_millis());
    assert!(starts[&d] >= finished(c).await.timestamp_millis());
    // Once each.
    for id in [a, b, c, d] {
        assert_eq!(env.executions_of(id).len(), 1, "{id} ran once");
    }
    // D's handler saw B's and C's results, in the order given.
    let result = done.result.unwrap();
    assert_eq!(result["data"], json!({"n": 4}));
    let parents = result["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0]["id"], json!(b));
    assert_eq!(parents[0]["result"]["data"], json!({"branch": "b"}));
    assert_eq!(parents[0]["result"]["parents"][0]["id"], json!(a));
    assert_eq!(parents[1]["id"], json!(c));
    assert_eq!(parents[1]["type"], "hash");
    assert!(parents[1]["result"]["hex"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_parent_cancels_its_descendants_and_spares_the_rest() {
    let env = Env::start().await;
    let _worker = env.worker(&[]).await;
    let bad = env
        .submit(json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 2}))
        .await;
    let good = env.submit(json!({"type": "noop"})).await;
    let child = env
        .submit(json!({"type": "noop", "depends_on": [bad, good]}))
        .await;
    let grandchild = env
        .submit(json!({"type": "noop", "depends_on": [child]}))
        .await;
    let sibling = env
        .submit(json!({"type": "noop", "depends_on": [good]}))
        .await;
    env.wait_status(bad, "failed", Duration::from_secs(30))
        .await;
    let child_job = env
        .wait_status(child, "cancelled", Duration::from_secs(10))
        .await;
    assert_eq!(
        child_job.last_error.as_deref(),
        Some(format!("parent job {bad} failed").as_str())
    );
    let grandchild_job = env.job(grandchild).await;
    assert_eq!(grandchild_job.status, JobStatus::Cancelled);
    assert_eq!(
        grandchild_job.last_error.as_deref(),
        Some(format!("parent job {child} was cancelled").as_str())
    );
    env.wait_status(sibling, "completed", Duration::from_secs(10))
        .await;
    assert!(env.executions_of(child).is_empty());
    assert!(env.executions_of(grandchild).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn parents_finishing_together_on_two_workers_promote_each_child_once() {
    let env = Env::start().await;
    // Parents first, then children, all before any worker runs: the parents then finish in
    // the same moments on two workers.
    let parents = submit_batch(
        &env,
        Value::Array(
            (0..200)
                .map(|n| json!({"type": "noop", "data": {"n": n}}))
                .collect(),
        ),
    )
    .await;
    // Each child waits on four parents spread over the batch (so different workers finish
    // them), and every parent has several children.
    let children_bodies: Vec<Value> = (0..100)
        .map(|i| {
            let ps: Vec<Uuid> = [i, i + 50, (i * 7) % 200, 199 - i]
                .iter()
                .map(|k| parents[*k % 200])
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            json!({"type": "noop", "data": {"child": i}, "depends_on": ps})
        })
        .collect();
    let children = submit_batch(&env, Value::Array(children_bodies)).await;
    let _a = env.worker(&[("WORKER_CONCURRENCY", "16")]).await;
    let _b = env.worker(&[("WORKER_CONCURRENCY", "16")]).await;
    env.wait_count("completed", 300, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut runs: HashMap<Uuid, usize> = HashMap::new();
    for (id, ..) in env.executions() {
        *runs.entry(id).or_default() += 1;
    }
    for child in &children {
        assert_eq!(runs.get(child), Some(&1), "child {child} ran exactly once");
        let job = env.job(*child).await;
        assert_eq!((job.status.as_str(), job.attempts), ("completed", 1));
    }
    assert_eq!(env.count("waiting").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_waiting_on_dependencies_survive_a_redis_wipe_and_run_once() {
    let env = Env::start().await;
    let a = env
        .submit(json!({"type": "sleep", "data": {"ms": 200}}))
        .await;
    let b = env.submit(json!({"type": "echo", "depends_on": [a]})).await;
    let c = env
        .submit(json!({"type": "noop", "depends_on": [a, b]}))
        .await;
    let later = env
        .submit(json!({"type": "noop", "run_at": (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339()}))
        .await;
    let d = env
        .submit(json!({"type": "noop", "depends_on": [later]}))
        .await;
    env.redis.flush().await;
    let _worker = env.worker(&[]).await;
    for id in [a, b, c, later, d] {
        env.wait_status(id, "completed", Duration::from_secs(30))
            .await;
    }
    // Wipe again once everything ran: nothing runs twice.
    env.redis.flush().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [a, b, c, later, d] {
        assert_eq!(env.executions_of(id).len(), 1, "{id} ran once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reconciler_settles_waiting_jobs_whose_promotion_was_missed() {
    let env = Env::start().await;
    let done = env.submit(json!({"type": "noop"})).await;
    let broken = env.submit(json!({"type": "noop"})).await;
    let ready = env
        .submit(json!({"type": "echo", "depends_on": [done]}))
        .await;
    let doomed = env
        .submit(json!({"type": "noop", "depends_on": [broken]}))
        .await;
    let below = env
        .submit(json!({"type": "noop", "depends_on": [doomed]}))
        .await;
    // The parents' outcomes written behind the settle's back (as a crash or a manual fix
    // could leave them), and out of Redis.
    env.sql(&format!(
        "UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = '{done}'"
    ))
    .await;
    env.sql(&format!(
        "UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = '{broken}'"
    ))
    .await;
    env.redis.flush().await;
    let _worker = env.worker(&[]).await;
    env.wait_status(ready, "completed", Duration::from_secs(30))
        .await;
    let doomed_job = env
        .wait_status(doomed, "cancelled", Duration::from_secs(10))
        .await;
    assert_eq!(
        doomed_job.last_error.as_deref(),
        Some(format!("parent job {broken} failed").as_str())
    );
    env.wait_status(below, "cancelled", Duration::from_secs(10))
        .await;
    assert!(env.executions_of(done).is_empty() && env.executions_of(broken).is_empty());
}
