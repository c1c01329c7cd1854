//! `jobs.status` and `jobs.type` are `text` columns read as `JobStatus` and `JobType`: known
//! names round-trip, and a name this build does not know is an error of the read, not a panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::Utc;
use diesel_async::RunQueryDsl;
use domain::job::{JobStatus, JobType};
use persistence::jobs::{self, Inserted, ListQuery, NewJob};
use test_support::TestDb;
use uuid::Uuid;

#[tokio::test]
async fn statuses_and_types_are_typed_and_unknown_names_are_errors() {
    let db = TestDb::migrated().await;
    let mut conn = persistence::pool::connect(db.url()).await.unwrap();
    let user = Uuid::now_v7();
    diesel::sql_query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .bind::<diesel::sql_types::Text, _>(format!("{user}@example.com"))
        .execute(&mut conn)
        .await
        .unwrap();

    let now = Utc::now();
    let new = NewJob {
        id: Uuid::now_v7(),
        user_id: user,
        job_type: JobType::SendEmail,
        data: serde_json::json!({}),
        priority: 0,
        status: JobStatus::Pending,
        max_attempts: 3,
        run_at: None,
        idempotency_key: None,
        created_at: now,
        updated_at: now,
        request_id: None,
    };
    let Inserted::Created(created) = jobs::insert(&mut conn, &new).await.unwrap() else {
        panic!("a fresh job is created");
    };
    assert_eq!(created.job_type, JobType::SendEmail);
    assert_eq!(created.status, JobStatus::Pending);
    let json = created.to_json_string();
    assert!(json.contains(r#""type":"send_email""#), "{json}");
    assert!(json.contains(r#""status":"pending""#), "{json}");
    let listed = jobs::list(
        &mut conn,
        &ListQuery {
            user_id: Some(user),
            status: Some(JobStatus::Pending),
            job_type: Some(JobType::SendEmail),
            before: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);

    // A type written by another build (no CHECK constraint names the types).
    diesel::sql_query("UPDATE jobs SET type = 'teleport' WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(created.id)
        .execute(&mut conn)
        .await
        .unwrap();
    let read = jobs::find(&mut conn, created.id, None).await;
    assert!(read.is_err(), "an unknown type is an error: {read:?}");

    // A status this build does not know (the CHECK constraint dropped, as a newer schema might).
    for sql in [
        "ALTER TABLE jobs DROP CONSTRAINT jobs_status_check",
        "UPDATE jobs SET type = 'noop', status = 'teleported'",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let read = jobs::find(&mut conn, created.id, None).await;
    assert!(read.is_err(), "an unknown status is an error: {read:?}");
    let stats = jobs::stats(&mut conn, Some(user)).await;
    assert!(
        stats.is_err(),
        "an unknown status is an error of the count too"
    );
}
