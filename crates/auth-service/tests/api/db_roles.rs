//! `auth-service db-roles`: the job service's and the worker's database roles, with exactly
//! the grants each needs and no access to credentials.

use diesel_async::RunQueryDsl as _;
use test_support::{TestDb, TestRedis, TestRoles};

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

async fn run(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    tokio::process::Command::new(BINARY)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .unwrap()
}

fn env(db: &TestDb, redis: &TestRedis, roles: &TestRoles) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis.url()),
        ("JOBS_DATABASE_URL", roles.url(db, &roles.jobs)),
        ("WORKER_DATABASE_URL", roles.url(db, &roles.worker)),
    ]
}

/// Runs `sql` as the user of `url`: `Ok` or the server's error message.
async fn try_sql(url: &str, sql: &str) -> Result<usize, String> {
    let mut conn = persistence::pool::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

async fn allowed(url: &str, sql: &str) {
    if let Err(error) = try_sql(url, sql).await {
        panic!("{sql}: {error}");
    }
}

async fn denied(url: &str, sql: &str) {
    match try_sql(url, sql).await {
        Err(error) if error.contains("permission denied") => {}
        other => panic!("{sql}: expected permission denied, got {other:?}"),
    }
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn db_roles_grants_exactly_what_each_service_needs_and_no_credentials() {
    // Dropped after the database, which holds the grants.
    let roles = TestRoles::new();
    let db = TestDb::create().await;
    let redis = TestRedis::new();
    let env = env(&db, &redis, &roles);
    let migrate = run(&["migrate"], &env).await;
    assert!(migrate.status.success(), "{}", output_text(&migrate));
    let output = run(&["db-roles"], &env).await;
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    // Every table is classified, and the passwords are never printed.
    assert!(!text.contains("warning"), "{text}");
    assert!(!text.contains(&roles.password), "{text}");

    let jobs = roles.url(&db, &roles.jobs);
    for sql in [
        "SELECT id, email, role, email_verified FROM users",
        "SELECT id, revoked_at FROM sessions",
        "SELECT id, status FROM jobs FOR UPDATE",
        "UPDATE jobs SET progress = 0 WHERE false",
        "SELECT version FROM __diesel_schema_migrations",
    ] {
        allowed(&jobs, sql).await;
    }
    for sql in [
        "SELECT password_hash FROM users",
        "SELECT * FROM users",
        "SELECT * FROM refresh_tokens",
        "SELECT * FROM email_tokens",
        "SELECT * FROM otp_codes",
        "SELECT user_id FROM sessions",
        "DELETE FROM jobs WHERE false",
        "CREATE TABLE smuggled (a int)",
    ] {
        denied(&jobs, sql).await;
    }

    let worker = roles.url(&db, &roles.worker);
    for sql in [
        "SELECT id, status FROM jobs FOR UPDATE",
        "DELETE FROM jobs WHERE false",
        "SELECT version FROM __diesel_schema_migrations",
    ] {
        allowed(&worker, sql).await;
    }
    for sql in [
        "SELECT password_hash FROM users",
        "SELECT email FROM users",
        "SELECT * FROM refresh_tokens",
        "SELECT * FROM sessions",
        "SELECT * FROM otp_codes",
        "CREATE TABLE smuggled (a int)",
    ] {
        denied(&worker, sql).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn running_db_roles_again_withdraws_stray_grants_and_sets_the_new_password() {
    let mut roles = TestRoles::new();
    let db = TestDb::migrated().await;
    let redis = TestRedis::new();
    let first = run(&["db-roles"], &env(&db, &redis, &roles)).await;
    assert!(first.status.success(), "{}", output_text(&first));
    let old_url = roles.url(&db, &roles.jobs);
    let first_verifier = verifier(&db, &roles.jobs).await;
    assert!(!first_verifier.contains(&roles.password));
    // Someone grants more by hand.
    allowed(
        db.url(),
        &format!("GRANT SELECT ON refresh_tokens, users TO {}", roles.jobs),
    )
    .await;
    allowed(&old_url, "SELECT * FROM refresh_tokens").await;

    roles.password = "a-new-password".to_owned();
    let second = run(&["db-roles"], &env(&db, &redis, &roles)).await;
    assert!(second.status.success(), "{}", output_text(&second));
    let new_url = roles.url(&db, &roles.jobs);
    denied(&new_url, "SELECT * FROM refresh_tokens").await;
    denied(&new_url, "SELECT password_hash FROM users").await;
    allowed(&new_url, "SELECT id, role FROM users").await;
    // The test server trusts local connections, so the password is checked in the catalog:
    // replaced, and stored only as a SCRAM verifier.
    assert_ne!(verifier(&db, &roles.jobs).await, first_verifier);
}

#[derive(diesel::QueryableByName)]
struct Verifier {
    #[diesel(sql_type = diesel::sql_types::Text)]
    password: String,
}

async fn verifier(db: &TestDb, role: &str) -> String {
    let mut conn = persistence::pool::connect(db.url()).await.unwrap();
    let stored =
        diesel::sql_query("SELECT rolpassword AS password FROM pg_authid WHERE rolname = $1")
            .bind::<diesel::sql_types::Text, _>(role)
            .get_result::<Verifier>(&mut conn)
            .await
            .unwrap()
            .password;
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    stored
}

#[tokio::test(flavor = "multi_thread")]
async fn db_roles_refuses_the_owner_a_superuser_and_missing_urls() {
    let roles = TestRoles::new();
    let db = TestDb::migrated().await;
    let redis = TestRedis::new();
    let mut env = env(&db, &redis, &roles);

    // Giving the service the owner's (superuser's) account would revoke the owner's rights.
    env[2].1 = db.url().replacen("postgres@", "postgres:secret@", 1);
    let output = run(&["db-roles"], &env).await;
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("superuser"),
        "{}",
        output_text(&output)
    );
    allowed(db.url(), "SELECT password_hash FROM users").await;

    env.remove(3);
    env[2].1 = roles.url(&db, &roles.jobs);
    let output = run(&["db-roles"], &env).await;
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("WORKER_DATABASE_URL"),
        "{}",
        output_text(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_is_classified() {
    let db = TestDb::migrated().await;
    let mut conn = persistence::pool::connect(db.url()).await.unwrap();
    let unclassified = persistence::roles::unclassified(&mut conn).await.unwrap();
    assert!(
        unclassified.is_empty(),
        "tables {unclassified:?} are not in persistence::roles::TABLES: add each with the \
         privileges the job service and the worker need on it (None for neither)"
    );
}
