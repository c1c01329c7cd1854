//! Who may open a socket: the three ways to present a token, 401 before the upgrade, and the
//! `Origin` check for cookies.

use std::time::Duration;

use access_token::RevocationList;
use domain::Role;
use serde_json::json;

use crate::helpers::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_the_header_the_query_or_the_cookie_opens_a_socket_and_nothing_else_does() {
    let stack = Stack::start(1).await;
    let user = stack.user(Role::User).await;

    let bearer = format!("Bearer {}", user.token);
    let cookie = format!("access_token={}", user.token);
    let query = format!("?access_token={}", user.token);
    for (headers, query) in [
        (vec![("authorization", bearer.as_str())], ""),
        (vec![], query.as_str()),
        (vec![("cookie", cookie.as_str())], ""),
    ] {
        let mut ws = stack.connect_with(0, &headers, query).await.unwrap();
        // The socket is live: a frame gets an answer.
        ws.join("lobby").await;
    }

    // No token, a broken one, one for another audience: 401 with a problem document.
    let forged = stack
        .key
        .sign(&access_token::Claims::new_access(
            domain::UserId(user.id),
            Role::Admin,
            user.sid,
            &access_token::TokenSettings {
                issuer: "task-vault-auth".to_owned(),
                audience: "someone-else".to_owned(),
            },
            Duration::from_secs(900),
        ))
        .unwrap();
    let forged_header = format!("Bearer {forged}");
    for (headers, query) in [
        (vec![], String::new()),
        (vec![("authorization", "Bearer not-a-token")], String::new()),
        (
            vec![("authorization", forged_header.as_str())],
            String::new(),
        ),
        (vec![], "?access_token=garbage".to_owned()),
        (vec![("cookie", "access_token=garbage")], String::new()),
    ] {
        let refused = stack.connect_with(0, &headers, &query).await.err();
        let (status, body) = refused.expect("refused");
        assert_eq!(status, 401);
        assert_eq!(body["code"], "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_session_cannot_open_a_socket() {
    let stack = Stack::start(1).await;
    let user = stack.user(Role::User).await;
    let pool = service_kit::redis_pool::build(&stack.redis_url, 2).unwrap();
    RevocationList::new(
        pool,
        stack.redis.prefix().to_owned(),
        Duration::from_secs(60),
    )
    .revoke(&[user.sid])
    .await
    .unwrap();
    let bearer = format!("Bearer {}", user.token);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match stack
            .connect_with(0, &[("authorization", &bearer)], "")
            .await
        {
            Err((status, _)) => {
                assert_eq!(status, 401);
                break;
            }
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => panic!("a revoked session still connects"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_from_a_foreign_origin_is_refused_but_an_allowed_origin_and_bearer_tokens_pass() {
    let stack = Stack::start_with(1, None, |settings| {
        settings.cors_origins = Some("https://app.example".to_owned());
    })
    .await;
    let user = stack.user(Role::User).await;
    let cookie = format!("access_token={}", user.token);

    let refused = stack
        .connect_with(
            0,
            &[("cookie", &cookie), ("origin", "https://evil.example")],
            "",
        )
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.0, 403);
    assert_eq!(refused.1["code"], "csrf_rejected");

    let mut allowed = stack
        .connect_with(
            0,
            &[("cookie", &cookie), ("origin", "https://app.example")],
            "",
        )
        .await
        .unwrap();
    allowed.join("lobby").await;

    // A bearer token cannot be ridden by another site: any origin may use one.
    let bearer = format!("Bearer {}", user.token);
    let mut ws = stack
        .connect_with(
            0,
            &[
                ("authorization", &bearer),
                ("origin", "https://evil.example"),
            ],
            "",
        )
        .await
        .unwrap();
    ws.send("joinRoom", json!({"room": "lobby"})).await;
    ws.expect("joined").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_get_without_the_handshake_is_told_to_upgrade() {
    let stack = Stack::start(1).await;
    let user = stack.user(Role::User).await;
    let response = stack
        .http
        .get(format!("{}/api/ws", stack.replicas[0]))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    let unauthenticated = stack
        .http
        .get(format!("{}/api/ws", stack.replicas[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
