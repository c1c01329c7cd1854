//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables named as in the contract (`DATABASE_URL`, `REDIS_URL`, …).
//!
//! Each process declares a `serde` struct whose field names are the lower-cased variable
//! names (`database_url`), with `#[serde(default)]` for the built-in defaults. The file is
//! `taskvault.toml` in the working directory, or the path in `TASKVAULT_CONFIG`; its keys
//! are the same lower-case names.

use serde::de::DeserializeOwned;

/// A setting that is missing, malformed or refused. Its message is one line that names the
/// setting, printed before the process exits.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(pub String);

impl SettingsError {
    /// A refused value of the setting `name` (its environment variable name).
    pub fn invalid(name: &str, why: impl std::fmt::Display) -> Self {
        Self(format!("{name}: {why}"))
    }
}

/// Reads the settings of type `T` from the layers above.
pub fn load<T: DeserializeOwned>() -> Result<T, SettingsError> {
    let file = std::env::var("TASKVAULT_CONFIG").ok();
    let required = file.is_some();
    let file = file.unwrap_or_else(|| "taskvault.toml".to_owned());
    config::Config::builder()
        .add_source(config::File::new(&file, config::FileFormat::Toml).required(required))
        .add_source(config::Environment::default().try_parsing(true))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| SettingsError(upper_case_key(e.to_string())))
}

/// `config` names keys in lower case; the user set the upper-case environment variable.
fn upper_case_key(message: String) -> String {
    match message.split_once("for key `") {
        Some((head, tail)) => match tail.split_once('`') {
            Some((key, rest)) => format!("{}: {head}{rest}", key.to_uppercase()).replace("  ", " "),
            None => message,
        },
        None => message,
    }
}

/// Splits a comma-separated list, dropping blanks.
pub fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Refuses the first of `(name, value)` that is zero: counts, sizes, intervals and lifetimes
/// must be at least 1.
pub fn at_least_one(settings: &[(&str, u64)]) -> Result<(), SettingsError> {
    match settings.iter().find(|(_, value)| *value == 0) {
        Some((name, _)) => Err(SettingsError::invalid(name, "must be at least 1")),
        None => Ok(()),
    }
}

/// `APP_ENV`: true for `production` (or `prod`), false for `development` (`dev`, empty).
pub fn is_production(app_env: &str) -> Result<bool, SettingsError> {
    match app_env.trim().to_ascii_lowercase().as_str() {
        "development" | "dev" | "" => Ok(false),
        "production" | "prod" => Ok(true),
        other => Err(SettingsError::invalid(
            "APP_ENV",
            format!("`{other}` is neither development nor production"),
        )),
    }
}

/// The browser origin every process defaults to (`FRONTEND_URL`'s default), refused in
/// production.
pub const DEVELOPMENT_FRONTEND: &str = "http://localhost:5173";

/// In production, browser-facing URLs (`FRONTEND_URL`, each of `CORS_ORIGINS`) must be
/// `https://` and not the development default.
pub fn require_https(name: &str, url: &str) -> Result<(), SettingsError> {
    let url = url.trim().trim_end_matches('/');
    if url == DEVELOPMENT_FRONTEND {
        return Err(SettingsError::invalid(
            name,
            format!(
                "is the development default {DEVELOPMENT_FRONTEND}; set your site's https:// URL when APP_ENV=production"
            ),
        ));
    }
    if !url.starts_with("https://") {
        return Err(SettingsError::invalid(
            name,
            format!("`{url}` must be an https:// URL when APP_ENV=production"),
        ));
    }
    Ok(())
}

/// Parses a listen address, naming the setting on failure.
pub fn socket_addr(name: &str, raw: &str) -> Result<std::net::SocketAddr, SettingsError> {
    raw.parse().map_err(|_| {
        SettingsError::invalid(
            name,
            format!("`{raw}` is not an address like 127.0.0.1:8080"),
        )
    })
}

/// A URL as `Debug` and logs may show it: the password of its user part and the values of
/// query parameters that carry secrets (`password`, `pass`, `token`, ...) become `***`. Text
/// that is not a URL is hidden entirely, since it could be anything.
pub fn redact_url(raw: &str) -> String {
    const SECRET_PARAMS: [&str; 5] = ["password", "pass", "passwd", "token", "secret"];
    let Ok(mut url) = url::Url::parse(raw) else {
        return if raw.is_empty() {
            String::new()
        } else {
            "<redacted>".to_owned()
        };
    };
    if url.password().is_some() && url.set_password(Some("***")).is_err() {
        return "<redacted>".to_owned();
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s));
                (
                    k.into_owned(),
                    if secret {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// [`redact_url`] for an optional URL.
pub fn redact_optional_url(raw: Option<&str>) -> Option<String> {
    raw.map(redact_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_variable() {
        let msg = upper_case_key(
            "invalid type: string \"x\", expected u64 for key `access_token_ttl_secs`".into(),
        );
        assert!(
            msg.starts_with("ACCESS_TOKEN_TTL_SECS: invalid type"),
            "{msg}"
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/tv?sslmode=require&password=p2"),
            "postgres://app:***@db:5432/tv?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("smtps://u:pw@mail.example.com"),
            "smtps://u:***@mail.example.com"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url with s3cret"), "<redacted>");
        assert_eq!(redact_optional_url(None), None);
    }

    #[test]
    fn lists_and_addresses() {
        assert_eq!(comma_list(" a, ,b "), vec!["a", "b"]);
        assert!(socket_addr("AUTH_ADDR", "127.0.0.1:1").is_ok());
        assert!(at_least_one(&[("A", 1), ("B", 2)]).is_ok());
        let err = at_least_one(&[("A", 1), ("B", 0)])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("B: must be at least 1")));
        let err = socket_addr("AUTH_ADDR", "nope")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("AUTH_ADDR")));
    }
}
