//! Sockets live as long as their session: expiry closes them (4001) unless `authenticate`
//! brought a fresh token; a revocation closes them on every replica (4002), and so does
//! finding that the account no longer exists.

use std::time::Duration;

use diesel_async::RunQueryDsl as _;
use domain::Role;
use serde_json::json;

use crate::helpers::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn an_expiring_token_closes_the_socket_with_4001_unless_renewed() {
    let stack = Stack::start(1).await;
    let user = stack.user(Role::User).await;
    let short = stack.token_expiring(&user, Role::User, Duration::from_secs(2));
    let header = format!("Bearer {short}");
    let mut expiring = stack
        .connect_with(0, &[("authorization", &header)], "")
        .await
        .unwrap();
    let mut renewed = stack
        .connect_with(0, &[("authorization", &header)], "")
        .await
        .unwrap();

    // A fresh token for the same user keeps the second socket open.
    let fresh = stack.token_expiring(&user, Role::User, Duration::from_secs(60));
    renewed.send("authenticate", json!({"token": fresh})).await;
    let data = renewed.expect("authenticated").await;
    assert!(data["expires_at"].is_string());
    // A token of someone else, or a broken one, is refused and changes nothing.
    let other = stack.user(Role::User).await;
    renewed
        .send("authenticate", json!({"token": other.token}))
        .await;
    assert_eq!(renewed.expect("error").await["code"], "forbidden");
    expiring
        .send("authenticate", json!({"token": "nope"}))
        .await;
    assert_eq!(expiring.expect("error").await["code"], "invalid_token");

    assert_eq!(
        expiring.closed_within(Duration::from_secs(6)).await,
        Some(4001)
    );
    renewed.join("still-here").await;
    renewed.quiet(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_at_the_auth_service_closes_the_sessions_sockets_on_every_replica_within_2s() {
    let stack = Stack::start(2).await;
    let smtp = test_support::smtp::SmtpCapture::start().await;
    let auth = auth_service::Application::build(auth_service::Settings {
        database_url: stack._db.url().to_owned(),
        redis_url: stack.redis_url.clone(),
        redis_prefix: stack.redis.prefix().to_owned(),
        auth_addr: "127.0.0.1:0".to_owned(),
        smtp_url: Some(smtp.url()),
        bcrypt_cost: 4,
        require_email_verification: false,
        ..auth_service::Settings::default()
    })
    .await
    .unwrap();
    let auth_url = format!("http://127.0.0.1:{}", auth.port());
    tokio::spawn(auth.run());

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let credentials =
        json!({"email": "ws-logout@example.com", "password": "correct horse battery"});
    browser
        .post(format!("{auth_url}/api/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    let login: serde_json::Value = browser
        .post(format!("{auth_url}/api/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let header = format!("Bearer {token}");
    let mut on_0 = stack
        .connect_with(0, &[("authorization", &header)], "")
        .await
        .unwrap();
    let mut on_1 = stack
        .connect_with(1, &[("authorization", &header)], "")
        .await
        .unwrap();
    // Another session of someone else stays open.
    let bystander = stack.user(Role::User).await;
    let mut other = stack.connect(1, &bystander).await;

    let logout = browser
        .post(format!("{auth_url}/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let started = tokio::time::Instant::now();
    assert_eq!(on_0.closed_within(Duration::from_secs(2)).await, Some(4002));
    assert_eq!(on_1.closed_within(Duration::from_secs(2)).await, Some(4002));
    assert!(started.elapsed() < Duration::from_secs(2));
    other.join("lobby").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_account_is_refused_with_forbidden_and_its_sockets_closed_with_4002() {
    let stack = Stack::start(1).await;
    let gone = stack.user(Role::User).await;
    let friend = stack.user(Role::User).await;
    let mut sender = stack.connect(0, &gone).await;
    let mut idle = stack.connect(0, &gone).await;
    let mut listener = stack.connect(0, &friend).await;
    sender.join("lobby").await;
    listener.join("lobby").await;
    sender
        .send("sendMessage", json!({"room": "lobby", "message": "before"}))
        .await;
    sender.expect("receiveMessage").await;
    listener.expect("receiveMessage").await;

    // The account is deleted (its sessions go with it, by cascade); its tokens have not expired.
    let mut conn = stack.pool.get().await.unwrap();
    let deleted = diesel::sql_query("DELETE FROM users WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(gone.id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    drop(conn);

    // The sender's address was looked up before the deletion: a socket finds out at its next
    // look-up, within SENDER_RECHECK; a new socket at its first message.
    let mut fresh = stack.connect(0, &gone).await;
    fresh.join("lobby").await;
    fresh
        .send("sendMessage", json!({"room": "lobby", "message": "after"}))
        .await;
    let error = fresh.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert_eq!(error["room"], "lobby");
    assert_eq!(
        fresh.closed_within(Duration::from_secs(2)).await,
        Some(4002)
    );
    // Every other socket of the account on the replica goes too; the friend's stays, and
    // the message never reached it.
    assert_eq!(
        sender.closed_within(Duration::from_secs(2)).await,
        Some(4002)
    );
    assert_eq!(idle.closed_within(Duration::from_secs(2)).await, Some(4002));
    listener.quiet(Duration::from_millis(300)).await;
    listener.join("still-here").await;
}
