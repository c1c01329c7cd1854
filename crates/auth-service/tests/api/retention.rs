//! Retention of expired sessions and tokens: what expired over a day ago goes, the rest stays.

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl as _;

use crate::helpers::*;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(format!("SELECT count(*) AS n FROM ({sql}) AS rows"))
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_sessions_and_tokens_go_and_live_ones_stay() {
    let app = spawn_app().await;
    // Two accounts with a session each, their verification links and codes.
    app.verified_user("old@example.com").await;
    app.verified_user("new@example.com").await;
    app.new_session("old@example.com", PASSWORD).await;
    app.new_session("new@example.com", PASSWORD).await;
    app.signup("pending@example.com", PASSWORD).await;
    let mut conn = persistence::pool::connect(app.db.url()).await.unwrap();
    let age = |table: &str, key: &str| {
        format!(
            "UPDATE {table} SET expires_at = now() - interval '2 days' WHERE {key} IN \
             (SELECT id FROM users WHERE email = $1)"
        )
    };
    for sql in [
        age("sessions", "user_id"),
        age("email_tokens", "user_id"),
        "UPDATE refresh_tokens SET expires_at = now() - interval '2 days' WHERE session_id IN \
         (SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1)"
            .to_owned(),
    ] {
        diesel::sql_query(sql)
            .bind::<Text, _>("old@example.com")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // An expired code whose account failed a guess recently keeps its counter.
    diesel::sql_query(
        "UPDATE otp_codes SET expires_at = now() - interval '2 days', failures_since = now() \
         WHERE user_id = (SELECT id FROM users WHERE email = $1)",
    )
    .bind::<Text, _>("pending@example.com")
    .execute(&mut conn)
    .await
    .unwrap();
    let before = [
        count(&mut conn, "SELECT 1 FROM sessions").await,
        count(&mut conn, "SELECT 1 FROM refresh_tokens").await,
        count(&mut conn, "SELECT 1 FROM email_tokens").await,
        count(&mut conn, "SELECT 1 FROM otp_codes").await,
    ];

    let removed = persistence::retention::run(
        app.db.url(),
        auth_service::startup::RETENTION_LOCK,
        &auth_service::startup::retention_sweeps(),
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .expect("lock free");
    let of = |table: &str| {
        removed
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n) as i64
    };
    assert!(
        of("sessions") >= 1 && of("email_tokens") >= 1 && of("refresh_tokens") >= 1,
        "{removed:?}"
    );
    assert_eq!(of("otp_codes"), 0, "{removed:?}");
    let owned_by = |table: &str, email: &str| {
        format!(
            "SELECT 1 FROM {table} t JOIN users u ON u.id = t.user_id WHERE u.email = '{email}'"
        )
    };
    assert_eq!(
        count(&mut conn, &owned_by("sessions", "old@example.com")).await,
        0
    );
    assert_eq!(
        count(&mut conn, &owned_by("email_tokens", "old@example.com")).await,
        0
    );
    assert_eq!(
        count(&mut conn, &owned_by("sessions", "new@example.com")).await,
        1
    );
    assert!(count(&mut conn, &owned_by("email_tokens", "new@example.com")).await >= 1);
    assert_eq!(
        count(&mut conn, &owned_by("otp_codes", "pending@example.com")).await,
        1
    );
    let after = [
        count(&mut conn, "SELECT 1 FROM sessions").await,
        count(&mut conn, "SELECT 1 FROM refresh_tokens").await,
        count(&mut conn, "SELECT 1 FROM email_tokens").await,
        count(&mut conn, "SELECT 1 FROM otp_codes").await,
    ];
    assert_eq!(before[0] - after[0], of("sessions"));
    assert_eq!(before[3], after[3]);
    // The live session still works.
    let session = app.new_session("new@example.com", PASSWORD).await;
    assert_eq!(app.me_bearer(&session.access).await.status(), 200);
}
