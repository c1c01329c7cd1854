//! Settings refused at start-up, and what of them may be printed.

use auth_service::Settings;

type Setter = fn(&mut Settings, u64);

#[test]
fn lifetimes_too_long_to_compute_an_expiry_are_refused() {
    let huge = 1 << 50;
    let cases: [(&str, Setter); 3] = [
        ("REFRESH_TOKEN_TTL_SECS", |s, v| {
            s.refresh_token_ttl_secs = v
        }),
        ("ACCESS_TOKEN_TTL_SECS", |s, v| s.access_token_ttl_secs = v),
        ("RESET_TTL_SECS", |s, v| s.reset_ttl_secs = v),
    ];
    for (name, set) in cases {
        let mut settings = Settings::default();
        set(&mut settings, huge);
        let error = settings.resolve().err().expect(name).to_string();
        assert!(error.contains(name), "{error}");
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let settings = Settings {
        database_url: "postgres://app:db-secret@db/taskvault".to_owned(),
        redis_url: "redis://:redis-secret@cache:6379".to_owned(),
        smtp_url: Some("smtps://mailer:smtp-secret@mail.example.com".to_owned()),
        jwt_private_key: Some("-----BEGIN PRIVATE KEY-----key-secret".to_owned()),
        ..Settings::default()
    };
    let printed = format!("{settings:?}");
    for secret in ["db-secret", "redis-secret", "smtp-secret", "key-secret"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("bcrypt_cost: 12"), "{printed}");
}
