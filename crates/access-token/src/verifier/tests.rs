//! Verifier tests: every refusal the contract requires, and the JWKS URL mode.

use std::error::Error;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{Role, SessionId, UserId};
use ed25519_dalek::Signer as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::test_support::{JwksServer, test_pool, test_prefix};
use crate::{SigningKey, unix_now};

type TestResult = Result<(), Box<dyn Error>>;

const OUR_SEED: [u8; 32] = [11u8; 32];
const OTHER_SEED: [u8; 32] = [22u8; 32];
const ATTACKER_SEED: [u8; 32] = [66u8; 32];

fn our_key() -> SigningKey {
    SigningKey::from_seed(&OUR_SEED)
}

fn settings() -> TokenSettings {
    TokenSettings::default()
}

fn verifier() -> Verifier {
    Verifier::with_keys(settings(), KeySet::from_signing_key(&our_key()))
}

fn good_claims() -> Claims {
    Claims::new_access(
        UserId::new(),
        Role::User,
        SessionId::new(),
        &settings(),
        Duration::from_secs(900),
    )
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with exactly this header and payload, EdDSA-signed with the raw `seed`, built by
/// hand so nothing normalises the header.
fn raw_token(header: &Value, payload: &Value, seed: &[u8; 32]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(payload.to_string()));
    let signature = ed25519_dalek::SigningKey::from_bytes(seed).sign(input.as_bytes());
    format!("{input}.{}", b64(signature.to_bytes()))
}

fn our_header() -> Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": our_key().kid()})
}

/// The good claims as JSON, with `edit` applied.
fn payload_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<Value, serde_json::Error> {
    let Value::Object(mut map) = serde_json::to_value(good_claims())? else {
        unreachable!("claims serialize to an object")
    };
    edit(&mut map);
    Ok(Value::Object(map))
}

async fn verify_payload(
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Result<Result<Claims, VerifyError>, Box<dyn Error>> {
    let token = raw_token(&our_header(), &payload_with(edit)?, &OUR_SEED);
    Ok(verifier().verify(&token).await)
}

#[test]
fn verifier_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Verifier>();
    check::<RevocationList>();
}

#[tokio::test]
async fn accepts_a_good_token() -> TestResult {
    let claims = good_claims();
    let token = our_key().sign(&claims)?;
    assert_eq!(verifier().verify(&token).await?, claims);

    // A hand-built token with the same claims is accepted too (so the raw builder used by the
    // refusal tests below makes tokens that would otherwise pass).
    let token = raw_token(&our_header(), &payload_with(|_| {})?, &OUR_SEED);
    assert!(verifier().verify(&token).await.is_ok());

    // The header carries the kid.
    let header = jsonwebtoken::decode_header(our_key().sign(&claims)?)?;
    assert_eq!(header.kid.as_deref(), Some(our_key().kid()));
    assert_eq!(header.alg, Algorithm::EdDSA);
    Ok(())
}

#[tokio::test]
async fn refuses_alg_none() -> TestResult {
    let payload = serde_json::to_value(good_claims())?;
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": our_key().kid()});
        let unsigned = format!("{}.{}.", b64(header.to_string()), b64(payload.to_string()));
        assert_eq!(
            verifier().verify(&unsigned).await,
            Err(VerifyError::WrongAlgorithm),
            "alg {alg}"
        );
    }
    // With the alg but no signature at all, and with no alg.
    let header = json!({"typ": "JWT", "kid": our_key().kid()});
    let token = format!("{}.{}.", b64(header.to_string()), b64(payload.to_string()));
    assert_eq!(
        verifier().verify(&token).await,
        Err(VerifyError::WrongAlgorithm)
    );
    Ok(())
}

#[tokio::test]
async fn refuses_hs256_signed_with_the_public_key() -> TestResult {
    let key = our_key();
    for secret in [key.public_pem(), key.jwks().keys[0].x.clone()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(
            &header,
            &good_claims(),
            &EncodingKey::from_secret(secret.as_bytes()),
        )?;
        assert_eq!(
            verifier().verify(&token).await,
            Err(VerifyError::WrongAlgorithm)
        );
    }
    Ok(())
}

#[tokio::test]
async fn refuses_a_tampered_payload() -> TestResult {
    let token = our_key().sign(&good_claims())?;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1])?)?;
    assert_eq!(payload["role"], "user");
    payload["role"] = json!("admin");
    parts[1] = b64(payload.to_string());
    let tampered = parts.join(".");
    assert_eq!(
        verifier().verify(&tampered).await,
        Err(VerifyError::BadSignature)
    );

    // A signature cut short or from another token is refused too.
    let other = our_key().sign(&good_claims())?;
    let other_signature = other.rsplit('.').next().ok_or("no signature")?;
    let (input, _) = token.rsplit_once('.').ok_or("no signature")?;
    for signature in ["", "AAAA", other_signature] {
        assert_eq!(
            verifier().verify(&format!("{input}.{signature}")).await,
            Err(VerifyError::BadSignature),
            "signature {signature:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn refuses_an_expired_token() -> TestResult {
    let mut claims = good_claims();
    claims.iat = unix_now() - 1000;
    claims.exp = unix_now() - 60;
    let token = our_key().sign(&claims)?;
    assert_eq!(verifier().verify(&token).await, Err(VerifyError::Expired));

    // Within the leeway it still passes.
    claims.exp = unix_now() - 1;
    let token = our_key().sign(&claims)?;
    assert!(verifier().verify(&token).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn refuses_an_unknown_or_missing_kid() -> TestResult {
    // Signed by a real Ed25519 key we do not trust.
    let token = SigningKey::from_seed(&OTHER_SEED).sign(&good_claims())?;
    assert_eq!(
        verifier().verify(&token).await,
        Err(VerifyError::UnknownKey)
    );

    // Signed by our key, but naming no kid or a made-up one.
    let payload = payload_with(|_| {})?;
    for header in [
        json!({"alg": "EdDSA", "typ": "JWT"}),
        json!({"alg": "EdDSA", "kid": ""}),
        json!({"alg": "EdDSA", "kid": "no-such-key"}),
        json!({"alg": "EdDSA", "kid": 42}),
    ] {
        let token = raw_token(&header, &payload, &OUR_SEED);
        assert_eq!(
            verifier().verify(&token).await,
            Err(VerifyError::UnknownKey),
            "header {header}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn ignores_keys_named_in_the_header() -> TestResult {
    let attacker = SigningKey::from_seed(&ATTACKER_SEED);
    let attacker_jwk = serde_json::to_value(&attacker.jwks().keys[0])?;
    let payload = payload_with(|claims| {
        claims.insert("role".to_owned(), json!("admin"));
    })?;

    // The attacker's own kid, with the key embedded (`jwk`) and linked (`jku`).
    let header = json!({
        "alg": "EdDSA",
        "kid": attacker.kid(),
        "jwk": attacker_jwk,
        "jku": "http://127.0.0.1:9/jwks.json",
    });
    let token = raw_token(&header, &payload, &ATTACKER_SEED);
    assert_eq!(
        verifier().verify(&token).await,
        Err(VerifyError::UnknownKey)
    );

    // Our kid, with the attacker's key embedded: checked against our key, so the signature
    // fails.
    let header = json!({
        "alg": "EdDSA",
        "kid": our_key().kid(),
        "jwk": attacker_jwk,
        "jku": "http://127.0.0.1:9/jwks.json",
    });
    let token = raw_token(&header, &payload, &ATTACKER_SEED);
    assert_eq!(
        verifier().verify(&token).await,
        Err(VerifyError::BadSignature)
    );
    Ok(())
}

#[tokio::test]
async fn refuses_a_wrong_issuer() -> TestResult {
    let result = verify_payload(|c| {
        c.insert("iss".to_owned(), json!("someone-else"));
    })
    .await?;
    assert_eq!(result, Err(VerifyError::WrongIssuer));
    Ok(())
}

#[tokio::test]
async fn refuses_a_wrong_audience() -> TestResult {
    let result = verify_payload(|c| {
        c.insert("aud".to_owned(), json!("another-service"));
    })
    .await?;
    assert_eq!(result, Err(VerifyError::WrongAudience));

    // Settings are honoured: a verifier for another audience refuses our default tokens.
    let other = Verifier::with_keys(
        TokenSettings {
            audience: "elsewhere".to_owned(),
            ..settings()
        },
        KeySet::from_signing_key(&our_key()),
    );
    let token = our_key().sign(&good_claims())?;
    assert_eq!(other.verify(&token).await, Err(VerifyError::WrongAudience));
    Ok(())
}

#[tokio::test]
async fn refuses_a_type_other_than_access() -> TestResult {
    for typ in [json!("refresh"), json!("Access"), json!(1)] {
        let result = verify_payload(|c| {
            c.insert("typ".to_owned(), typ.clone());
        })
        .await?;
        assert_eq!(result, Err(VerifyError::WrongType), "typ {typ}");
    }
    Ok(())
}

#[tokio::test]
async fn refuses_missing_claims() -> TestResult {
    for claim in REQUIRED_CLAIMS {
        let result = verify_payload(|c| {
            c.remove(claim);
        })
        .await?;
        assert_eq!(result, Err(VerifyError::MissingClaim), "without {claim}");
    }
    let result = verify_payload(|c| {
        c.insert("sid".to_owned(), Value::Null);
    })
    .await?;
    assert_eq!(result, Err(VerifyError::MissingClaim));
    Ok(())
}

#[tokio::test]
async fn refuses_claims_of_the_wrong_type() -> TestResult {
    for (claim, value) in [
        ("sid", json!("not-a-uuid")),
        ("role", json!("superuser")),
        ("iat", json!("yesterday")),
    ] {
        let result = verify_payload(|c| {
            c.insert(claim.to_owned(), value);
        })
        .await?;
        assert_eq!(result, Err(VerifyError::Malformed), "{claim}");
    }
    Ok(())
}

#[tokio::test]
async fn refuses_malformed_tokens() -> TestResult {
    let good = our_key().sign(&good_claims())?;
    let header = json!({"alg": "EdDSA", "kid": our_key().kid(), "crit": ["exp"]});
    let critical = raw_token(&header, &payload_with(|_| {})?, &OUR_SEED);
    for token in [
        String::new(),
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{good}.extra"),
        format!("!!{good}"),
        critical,
        "A".repeat(MAX_TOKEN_BYTES + 1),
    ] {
        assert_eq!(
            verifier().verify(&token).await,
            Err(VerifyError::Malformed),
            "{token:.40}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn jwks_round_trip() -> TestResult {
    let key = our_key();
    let keys = KeySet::from_jwks_json(&serde_json::to_vec(&key.jwks())?)?;
    let claims = good_claims();
    let token = key.sign(&claims)?;
    assert_eq!(
        Verifier::with_keys(settings(), keys).verify(&token).await?,
        claims
    );
    Ok(())
}

#[tokio::test]
async fn public_pem_round_trip() -> TestResult {
    let key = SigningKey::development();
    let keys = KeySet::from_public_pem(&key.public_pem())?;
    let claims = good_claims();
    assert_eq!(
        Verifier::with_keys(settings(), keys)
            .verify(&key.sign(&claims)?)
            .await?,
        claims
    );
    Ok(())
}

#[tokio::test]
async fn a_key_set_can_hold_an_old_and_a_new_key() -> TestResult {
    let old = SigningKey::from_seed(&OTHER_SEED);
    let mut keys = KeySet::from_signing_key(&our_key());
    keys.extend(KeySet::from_signing_key(&old));
    let verifier = Verifier::with_keys(settings(), keys);
    assert!(verifier.verify(&old.sign(&good_claims())?).await.is_ok());
    assert!(
        verifier
            .verify(&our_key().sign(&good_claims())?)
            .await
            .is_ok()
    );
    Ok(())
}

// --- revocation -------------------------------------------------------------------------

#[tokio::test]
async fn refuses_a_revoked_session() -> TestResult {
    let pool = test_pool()?;
    let prefix = test_prefix();
    let ttl = Duration::from_secs(60);
    let auth_side = RevocationList::new(pool.clone(), prefix.clone(), ttl);
    let job_side = RevocationList::new(pool.clone(), prefix.clone(), ttl);
    let verifier = verifier().with_revocations(job_side);

    let claims = good_claims();
    let token = our_key().sign(&claims)?;
    let other_session = our_key().sign(&good_claims())?;
    assert_eq!(verifier.verify(&token).await?, claims);

    auth_side.revoke(&[claims.sid]).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Revoked));
    // Other sessions are unaffected.
    assert!(verifier.verify(&other_session).await.is_ok());

    let mut conn = pool.get().await?;
    deadpool_redis::redis::cmd("DEL")
        .arg(format!("{prefix}revoked-session:{}", claims.sid))
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

#[tokio::test]
async fn unreadable_revocations_are_unavailable_not_accepted() -> TestResult {
    let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    let verifier = verifier().with_revocations(RevocationList::new(
        pool,
        test_prefix(),
        Duration::from_secs(60),
    ));
    let result = verifier.verify(&our_key().sign(&good_claims())?).await;
    assert!(
        matches!(result, Err(VerifyError::RevocationUnavailable(_))),
        "{result:?}"
    );
    Ok(())
}

// --- JWKS URL mode ----------------------------------------------------------------------

fn jwks_of(keys: &[&SigningKey]) -> Result<Vec<u8>, serde_json::Error> {
    let set = crate::JwkSet {
        keys: keys.iter().flat_map(|k| k.jwks().keys).collect(),
    };
    serde_json::to_vec(&set)
}

#[tokio::test]
async fn jwks_url_is_fetched_once_and_cached() -> TestResult {
    let key = our_key();
    let server = JwksServer::start(jwks_of(&[&key])?).await?;
    let verifier = Verifier::with_jwks_url(settings(), server.url.clone());
    assert_eq!(server.hits(), 0, "fetched lazily");

    let claims = good_claims();
    let token = key.sign(&claims)?;
    assert_eq!(verifier.verify(&token).await?, claims);
    assert_eq!(server.hits(), 1);
    assert_eq!(verifier.verify(&token).await?, claims);
    assert_eq!(verifier.clone().verify(&token).await?, claims);
    assert_eq!(
        server.hits(),
        1,
        "the cached set is reused (also by clones)"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() -> TestResult {
    let key = our_key();
    let new_key = SigningKey::from_seed(&OTHER_SEED);
    let server = JwksServer::start(jwks_of(&[&key])?).await?;
    let verifier = Verifier::with_jwks_url(settings(), server.url.clone());

    assert!(verifier.verify(&key.sign(&good_claims())?).await.is_ok());
    assert_eq!(server.hits(), 1);

    // The auth service starts publishing a new key, and garbage kids arrive.
    server.set_body(jwks_of(&[&key, &new_key])?);
    let payload = payload_with(|_| {})?;
    for i in 0..20 {
        let header = json!({"alg": "EdDSA", "kid": format!("garbage-{i}")});
        let token = raw_token(&header, &payload, &ATTACKER_SEED);
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
    }
    let new_token = new_key.sign(&good_claims())?;
    let result = verifier.verify(&new_token).await;
    // Within 10 s of the last fetch no unknown kid may cause another one.
    assert!(server.hits() <= 2, "{} fetches", server.hits());
    assert_eq!(server.hits(), 1, "refetch too soon after the first fetch");
    assert_eq!(result, Err(VerifyError::UnknownKey));
    Ok(())
}

#[tokio::test]
async fn unknown_kid_refetches_after_the_interval() -> TestResult {
    let key = our_key();
    let new_key = SigningKey::from_seed(&OTHER_SEED);
    let server = JwksServer::start(jwks_of(&[&key])?).await?;
    let interval = Duration::from_millis(1000);
    let verifier = Verifier::with_jwks_url_and_timings(
        settings(),
        server.url.clone(),
        JwksTimings {
            refetch_interval: interval,
            max_age: JWKS_MAX_AGE,
            max_stale: JWKS_MAX_STALE,
        },
    );

    assert!(verifier.verify(&key.sign(&good_claims())?).await.is_ok());
    assert_eq!(server.hits(), 1);

    server.set_body(jwks_of(&[&key, &new_key])?);
    tokio::time::sleep(interval + Duration::from_millis(100)).await;

    // The new key's kid is unknown: one refetch finds it.
    let new_token = new_key.sign(&good_claims())?;
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_eq!(server.hits(), 2);

    // Right after, garbage kids do not refetch, and known keys keep working.
    let payload = payload_with(|_| {})?;
    for i in 0..10 {
        let header = json!({"alg": "EdDSA", "kid": format!("garbage-{i}")});
        let token = raw_token(&header, &payload, &ATTACKER_SEED);
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
    }
    assert!(verifier.verify(&new_token).await.is_ok());
    assert!(verifier.verify(&key.sign(&good_claims())?).await.is_ok());
    assert_eq!(server.hits(), 2);
    Ok(())
}

#[tokio::test]
async fn concurrent_first_verifications_fetch_once() -> TestResult {
    let key = our_key();
    let server = JwksServer::start(jwks_of(&[&key])?).await?;
    let verifier = Verifier::with_jwks_url(settings(), server.url.clone());
    let token = key.sign(&good_claims())?;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let verifier = verifier.clone();
        let token = token.clone();
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result?.is_ok());
    }
    assert_eq!(server.hits(), 1);
    Ok(())
}

#[tokio::test]
async fn unreachable_jwks_is_keys_unavailable() -> TestResult {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/jwks.json", listener.local_addr()?);
    drop(listener);

    let verifier = Verifier::with_jwks_url(settings(), url);
    let token = our_key().sign(&good_claims())?;
    let result = verifier.verify(&token).await;
    assert!(
        matches!(&result, Err(VerifyError::KeysUnavailable(_))),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_unavailable());
    // Retried no sooner than the back-off, still unavailable rather than "unknown key".
    let result = verifier.verify(&token).await;
    assert!(
        matches!(&result, Err(VerifyError::KeysUnavailable(_))),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_jwks_that_is_not_a_key_set_is_keys_unavailable() -> TestResult {
    let server = JwksServer::start(b"<html>oops</html>".to_vec()).await?;
    let verifier = Verifier::with_jwks_url(settings(), server.url.clone());
    let result = verifier.verify(&our_key().sign(&good_claims())?).await;
    assert!(
        matches!(&result, Err(VerifyError::KeysUnavailable(_))),
        "{result:?}"
    );
    assert_eq!(server.hits(), 1);
    Ok(())
}

#[tokio::test]
async fn redirects_are_not_followed() -> TestResult {
    let key = our_key();
    let target = JwksServer::start(jwks_of(&[&key])?).await?;
    let redirecting = JwksServer::redirecting(&target.url).await?;
    let verifier = Verifier::with_jwks_url(settings(), redirecting.url.clone());
    let result = verifier.verify(&key.sign(&good_claims())?).await;
    assert!(
        matches!(&result, Err(VerifyError::KeysUnavailable(_))),
        "{result:?}"
    );
    assert_eq!(redirecting.hits(), 1);
    assert_eq!(target.hits(), 0, "the redirect was not followed");
    Ok(())
}

#[tokio::test]
async fn a_stale_key_set_is_used_for_a_bounded_time_only() -> TestResult {
    let key = our_key();
    let server = JwksServer::start(jwks_of(&[&key])?).await?;
    let timings = JwksTimings {
        refetch_interval: Duration::from_millis(100),
        max_age: Duration::from_millis(200),
        max_stale: Duration::from_millis(800),
    };
    let verifier = Verifier::with_jwks_url_and_timings(settings(), server.url.clone(), timings);
    // Different tokens each time, so the verified-token cache does not answer.
    assert!(verifier.verify(&key.sign(&good_claims())?).await.is_ok());

    // The auth service stops answering with keys: the stale set still serves for a while...
    server.set_body(b"<html>down</html>".to_vec());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(verifier.verify(&key.sign(&good_claims())?).await.is_ok());
    assert!(server.hits() >= 2, "a refresh was tried");
    // ...but not past its bound.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let result = verifier.verify(&key.sign(&good_claims())?).await;
    assert!(
        matches!(&result, Err(VerifyError::KeysUnavailable(_))),
        "{result:?}"
    );
    // Once the keys are served again, they work again.
    server.set_body(jwks_of(&[&key])?);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(verifier.verify(&key.sign(&good_claims())?).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn the_development_key_can_be_refused_whatever_the_key_set_says() -> TestResult {
    let development = SigningKey::development();
    let token = development.sign(&good_claims())?;
    let trusting = Verifier::with_keys(settings(), KeySet::from_signing_key(&development));
    assert!(trusting.verify(&token).await.is_ok());
    let refusing = trusting.clone().refusing_development_key();
    assert_eq!(refusing.verify(&token).await, Err(VerifyError::UnknownKey));
    // Other keys are unaffected.
    let ours = verifier().refusing_development_key();
    assert!(ours.verify(&our_key().sign(&good_claims())?).await.is_ok());
    Ok(())
}
