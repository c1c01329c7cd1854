use std::time::Duration;

use access_token::{KeySet, TokenSettings, Verifier};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn login_returns_tokens_and_sets_cookies() {
    let app = spawn_app().await;
    app.verified_user("in@example.com").await;
    let response = app.login("In@Example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "in@example.com");
    assert!(
        body.get("refresh_token").is_none(),
        "refresh token only as a cookie"
    );

    let access = cookie(&headers, "access_token");
    assert_eq!(access.value, body["access_token"].as_str().unwrap());
    assert_eq!(access.attr("httponly"), Some(""));
    assert_eq!(access.attr("samesite"), Some("Lax"));
    assert_eq!(access.attr("path"), Some("/"));
    assert_eq!(access.attr("max-age"), Some("900"));
    assert_eq!(access.attr("secure"), None);

    let refresh = cookie(&headers, "refresh_token");
    assert_eq!(refresh.value.len(), 43);
    assert_eq!(refresh.attr("httponly"), Some(""));
    assert_eq!(refresh.attr("samesite"), Some("Strict"));
    assert_eq!(refresh.attr("path"), Some("/api/auth"));
    assert_eq!(refresh.attr("max-age"), Some("604800"));
    assert_eq!(refresh.attr("secure"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_secure_and_ttls_are_honoured() {
    let app = spawn_app_with(|s| {
        s.cookie_secure = true;
        s.access_token_ttl_secs = 60;
        s.refresh_token_ttl_secs = 3600;
    })
    .await;
    app.verified_user("secure@example.com").await;
    let response = app.login("secure@example.com", PASSWORD).await;
    let access = cookie(response.headers(), "access_token");
    let refresh = cookie(response.headers(), "refresh_token");
    assert_eq!(access.attr("secure"), Some(""));
    assert_eq!(refresh.attr("secure"), Some(""));
    assert_eq!(access.attr("max-age"), Some("60"));
    assert_eq!(refresh.attr("max-age"), Some("3600"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_and_unknown_emails_look_the_same() {
    let app = spawn_app().await;
    app.verified_user("known@example.com").await;
    let wrong = app.login("known@example.com", "wrong password").await;
    let wrong_body = assert_problem(wrong, 401, "invalid_credentials").await;
    let unknown_body = assert_problem(
        app.login("ghost@example.com", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        without_request_id(wrong_body),
        without_request_id(unknown_body)
    );
    assert!(set_cookies(app.login("ghost@example.com", "x").await.headers()).is_empty());
    let body = assert_problem(
        app.login("not-an-email", PASSWORD).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["email"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn unverified_accounts_are_refused_only_after_the_password_checks_out() {
    let app = spawn_app().await;
    app.signup("new@example.com", PASSWORD).await;
    assert_problem(
        app.login("new@example.com", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    let response = app.login("new@example.com", PASSWORD).await;
    assert!(set_cookies(response.headers()).is_empty());
    assert_problem(response, 403, "email_not_verified").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_can_be_made_optional() {
    let app = spawn_app_with(|s| s.require_email_verification = false).await;
    app.signup("relaxed@example.com", PASSWORD).await;
    let response = app.login("relaxed@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email_verified"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn me_accepts_the_cookie_or_a_bearer_token() {
    let app = spawn_app().await;
    let session = app.signed_in("me@example.com").await;
    let by_bearer = app.me_bearer(&session.access).await;
    assert_eq!(by_bearer.status(), 200);
    let body: Value = by_bearer.json().await.unwrap();
    assert_eq!(body["user"]["email"], "me@example.com");
    assert_eq!(body["user"]["email_verified"], true);

    let by_cookie = app
        .client
        .get(app.url("/api/auth/me"))
        .header("cookie", format!("access_token={}", session.access))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);

    assert_problem(
        app.client
            .get(app.url("/api/auth/me"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_problem(app.me_bearer("garbage").await, 401, "unauthorized").await;
    // A refresh token is not an access token.
    assert_problem(app.me_bearer(&session.refresh).await, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_tokens_expire() {
    let app = spawn_app_with(|s| s.access_token_ttl_secs = 1).await;
    let session = app.signed_in("brief@example.com").await;
    assert_eq!(app.me_bearer(&session.access).await.status(), 200);
    // Verifiers allow access_token::LEEWAY_SECS of clock skew.
    tokio::time::sleep(Duration::from_secs(1 + access_token::LEEWAY_SECS + 1)).await;
    assert_problem(app.me_bearer(&session.access).await, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jwks_verifies_issued_tokens() {
    let app = spawn_app().await;
    let session = app.signed_in("keys@example.com").await;
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let jwks = response.bytes().await.unwrap();
    let document: Value = serde_json::from_slice(&jwks).unwrap();
    assert_eq!(document["keys"][0]["alg"], "EdDSA");
    assert_eq!(document["keys"][0]["kty"], "OKP");
    let verifier = Verifier::with_keys(
        TokenSettings::default(),
        KeySet::from_jwks_json(&jwks).unwrap(),
    );
    let claims = verifier.verify(&session.access).await.unwrap();
    assert_eq!(claims.typ, "access");
    assert_eq!(claims.sid.to_string(), session.sid());
    let me: Value = app.me_bearer(&session.access).await.json().await.unwrap();
    assert_eq!(claims.sub.to_string(), me["user"]["id"].as_str().unwrap());
    assert_eq!(claims.exp - claims.iat, 900);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_private_key_signs_the_tokens() {
    // Another valid Ed25519 PKCS#8 key (RFC 8410 test vector).
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let app = spawn_app_with(|s| s.jwt_private_key = Some(pem.to_owned())).await;
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let development = access_token::SigningKey::development();
    assert_ne!(jwks["keys"][0]["kid"], development.kid());
    let session = app.signed_in("own-key@example.com").await;
    let dev_verifier = Verifier::with_keys(
        TokenSettings::default(),
        KeySet::from_signing_key(&development),
    );
    assert!(dev_verifier.verify(&session.access).await.is_err());
    assert_eq!(app.me_bearer(&session.access).await.status(), 200);
}

/// Rows written by other tools may keep the case the user typed; the unique index is on
/// `lower(email)`, and lookups must go through it (a plain `email = $1` both misses such rows
/// and scans the whole table: checked with EXPLAIN).
#[tokio::test(flavor = "multi_thread")]
async fn addresses_are_looked_up_through_the_lower_case_index() {
    use diesel_async::RunQueryDsl as _;

    let app = spawn_app().await;
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let mut conn = persistence::pool::connect(app.db.url()).await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO users (id, email, password_hash, email_verified) \
         VALUES (gen_random_uuid(), 'Legacy.User@Example.com', '{hash}', true)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    assert_eq!(
        app.login("legacy.user@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_json(
            "/api/auth/forgot-password",
            &serde_json::json!({"email": "legacy.user@example.com"})
        )
        .await
        .status(),
        202
    );
    let reset = app.smtp.wait_for("legacy.user@example.com", 1).await;
    assert!(reset[0].body().contains("/reset-password?token="));
}
