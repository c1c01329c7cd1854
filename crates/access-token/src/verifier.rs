//! Verifying access tokens against a static key set or the auth service's JWKS.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::{
    ACCESS_TOKEN_TYPE, Claims, KeySet, RevocationList, TokenSettings, VerifyError, unix_now,
};

/// Clock-skew allowance for `exp`, in seconds: a token is accepted until `exp + 5 s`, so a
/// verifier whose clock runs a little ahead of the auth service's does not refuse fresh tokens.
pub const LEEWAY_SECS: u64 = 5;

/// The shortest time between two JWKS fetches caused by tokens naming a `kid` we do not know
/// (so tokens with garbage `kid`s cannot make us hammer the auth service).
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How long a fetched JWKS is used before it is refreshed (on the next verification after this
/// age; a failed refresh keeps the old keys). This is how a key withdrawn from the auth
/// service's JWKS stops being trusted.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// How long after it was fetched a JWKS may still be used while it cannot be refreshed (the
/// auth service does not answer). Past this, verifications fail with
/// [`VerifyError::KeysUnavailable`] until a fetch succeeds: a withdrawn key cannot stay trusted
/// for long just because the auth service is unreachable.
pub const JWKS_MAX_STALE: Duration = Duration::from_secs(15 * 60);

/// The time limit of one JWKS request.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// While no JWKS has been fetched yet, failed fetches are retried at most this often.
const FIRST_FETCH_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The largest JWKS document we read.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The longest token we look at; real access tokens are well under 1 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How long a verified token's signature check is reused. Short, so that a signing key
/// withdrawn from the auth service's JWKS stops being trusted soon after the verifier notices.
pub const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Most tokens remembered as verified; past this the least used are evicted.
const VERIFIED_TOKENS_MAX: u64 = 50_000;

/// The claims every access token must carry.
const REQUIRED_CLAIMS: [&str; 8] = ["sub", "role", "sid", "typ", "iss", "aud", "iat", "exp"];

/// Verifies access tokens: EdDSA only, keys only from our own key set (by `kid`), every claim
/// required, `iss`/`aud`/`typ` checked, `exp` checked with [`LEEWAY_SECS`] of leeway, and
/// optionally the session checked against a [`RevocationList`].
///
/// Cheap to clone (the state is shared behind `Arc`s); `Send + Sync`.
#[derive(Clone)]
pub struct Verifier {
    validation: Arc<Validation>,
    keys: Arc<KeySource>,
    revocations: Option<RevocationList>,
    /// A `kid` refused whatever the key set says (the public development key in production).
    refused_kid: Option<Arc<str>>,
    /// Tokens whose signature passed, for [`VERIFIED_TOKEN_TTL`].
    verified: moka::sync::Cache<String, Claims>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &*self.keys {
            KeySource::Static(keys) => format!("{keys:?}"),
            KeySource::Remote(remote) => format!("JWKS at {}", remote.url),
        };
        f.debug_struct("Verifier")
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("keys", &keys)
            .field("revocations", &self.revocations.is_some())
            .finish()
    }
}

enum KeySource {
    Static(KeySet),
    Remote(RemoteKeys),
}

impl Verifier {
    /// A verifier trusting exactly `keys`.
    pub fn with_keys(settings: TokenSettings, keys: KeySet) -> Self {
        Self::new(settings, KeySource::Static(keys))
    }

    /// A verifier trusting the keys of the JWKS document at `jwks_url` (the auth service's
    /// `/.well-known/jwks.json`).
    ///
    /// The document is fetched on first use and cached. It is fetched again when a token
    /// names a `kid` that is not in it, at most once per [`JWKS_REFETCH_INTERVAL`], and when
    /// it is older than [`JWKS_MAX_AGE`]. While no document could be fetched, verifications
    /// fail with [`VerifyError::KeysUnavailable`].
    ///
    /// Redirects are not followed (a redirect is a failed fetch), and a set that cannot be
    /// refreshed is used for at most `JWKS_MAX_STALE` (15 minutes) after it was fetched.
    pub fn with_jwks_url(settings: TokenSettings, jwks_url: String) -> Self {
        Self::with_jwks_url_and_timings(
            settings,
            jwks_url,
            JwksTimings {
                refetch_interval: JWKS_REFETCH_INTERVAL,
                max_age: JWKS_MAX_AGE,
                max_stale: JWKS_MAX_STALE,
            },
        )
    }

    pub(crate) fn with_jwks_url_and_timings(
        settings: TokenSettings,
        jwks_url: String,
        timings: JwksTimings,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .connect_timeout(JWKS_FETCH_TIMEOUT)
            // A redirect could hand key selection to whoever controls the target.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"));
        Self::new(
            settings,
            KeySource::Remote(RemoteKeys {
                url: jwks_url,
                client,
                timings,
                state: Mutex::new(RemoteState::default()),
                fetch_lock: tokio::sync::Mutex::new(()),
            }),
        )
    }

    /// Also refuse tokens signed with the public development key
    /// ([`crate::SigningKey::development`]) whatever the key set holds, as
    /// [`VerifyError::UnknownKey`]: in production anyone could have signed them.
    pub fn refusing_development_key(mut self) -> Self {
        self.refused_kid = Some(Arc::from(crate::SigningKey::development().kid()));
        // Tokens the clone this came from accepted must be checked again.
        self.verified = verified_cache();
        self
    }

    /// Also refuse tokens whose session (`sid`) is in `revocations`
    /// ([`VerifyError::Revoked`]); if the list cannot be read, verification fails with
    /// [`VerifyError::RevocationUnavailable`].
    pub fn with_revocations(mut self, revocations: RevocationList) -> Self {
        self.revocations = Some(revocations);
        self
    }

    fn new(settings: TokenSettings, keys: KeySource) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        // jsonwebtoken only knows these; `iat`, `role`, `sid` and `typ` are checked below.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            validation: Arc::new(validation),
            keys: Arc::new(keys),
            revocations: None,
            refused_kid: None,
            verified: verified_cache(),
        }
    }

    /// Verifies `token` and returns its claims.
    ///
    /// The header is read first: `alg` must be `EdDSA` ([`VerifyError::WrongAlgorithm`]) and
    /// `kid` must name one of our keys ([`VerifyError::UnknownKey`]); any other header field
    /// (`jwk`, `jku`, `x5u`, …) is ignored. Then the signature, `exp`, `iss`, `aud`, the
    /// presence of every claim, `typ` and finally revocation are checked.
    ///
    /// An Ed25519 check costs more than the rest of a typical request and clients send the
    /// same token many times, so a token that passed is remembered for
    /// [`VERIFIED_TOKEN_TTL`] (never past its `exp`); revocation is checked on every call.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = match self.remembered(token) {
            Some(claims) => claims,
            None => {
                let kid = read_header(token)?;
                if self.refused_kid.as_deref() == Some(kid.as_str()) {
                    return Err(VerifyError::UnknownKey);
                }
                let key = self.key(&kid).await?;
                let data =
                    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
                        .map_err(|e| map_jwt_error(e.kind()))?;
                let claims = claims_from_map(data.claims)?;
                self.remember(token, &claims);
                claims
            }
        };
        if let Some(revocations) = &self.revocations {
            match revocations.is_revoked(claims.sid).await {
                Ok(false) => {}
                Ok(true) => return Err(VerifyError::Revoked),
                Err(e) => return Err(VerifyError::RevocationUnavailable(e.to_string())),
            }
        }
        Ok(claims)
    }

    fn remembered(&self, token: &str) -> Option<Claims> {
        let now = unix_now();
        self.verified
            .get(token)
            .filter(|claims| claims.exp.saturating_add(LEEWAY_SECS as i64) > now)
    }

    fn remember(&self, token: &str, claims: &Claims) {
        self.verified.insert(token.to_owned(), claims.clone());
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, VerifyError> {
        match &*self.keys {
            KeySource::Static(keys) => keys.get(kid).cloned().ok_or(VerifyError::UnknownKey),
            KeySource::Remote(remote) => remote.key(kid).await,
        }
    }
}

/// Checks the JWS shape and the header's `alg`, and returns its `kid`.
/// A remembered verification is reused while young and while the token has not expired.
fn verified_cache() -> moka::sync::Cache<String, Claims> {
    moka::sync::Cache::builder()
        .max_capacity(VERIFIED_TOKENS_MAX)
        .time_to_live(VERIFIED_TOKEN_TTL)
        .build()
}

fn read_header(token: &str) -> Result<String, VerifyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "EdDSA" => {}
        _ => return Err(VerifyError::WrongAlgorithm),
    }
    // RFC 7515 §4.1.11: extensions marked critical that we do not understand must be refused,
    // and we understand none.
    if header.contains_key("crit") {
        return Err(VerifyError::Malformed);
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => Ok(kid.clone()),
        _ => Err(VerifyError::UnknownKey),
    }
}

fn map_jwt_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => VerifyError::MissingClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => VerifyError::WrongAlgorithm,
        ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => VerifyError::UnknownKey,
        _ => VerifyError::Malformed,
    }
}

/// Checks that every claim is present and `typ` is `access`, then reads the claims.
fn claims_from_map(map: Map<String, Value>) -> Result<Claims, VerifyError> {
    if REQUIRED_CLAIMS
        .iter()
        .any(|name| map.get(*name).is_none_or(Value::is_null))
    {
        return Err(VerifyError::MissingClaim);
    }
    if map.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYPE) {
        return Err(VerifyError::WrongType);
    }
    serde_json::from_value(Value::Object(map)).map_err(|_| VerifyError::Malformed)
}

/// How often a JWKS is fetched and how long it is used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksTimings {
    /// The shortest time between two fetches caused by unknown `kid`s.
    pub(crate) refetch_interval: Duration,
    /// Age after which the set is refreshed.
    pub(crate) max_age: Duration,
    /// Age after which the set is no longer used, refreshed or not.
    pub(crate) max_stale: Duration,
}

/// The auth service's JWKS, fetched lazily and cached.
struct RemoteKeys {
    url: String,
    client: Result<reqwest::Client, String>,
    timings: JwksTimings,
    state: Mutex<RemoteState>,
    /// Held while fetching, so concurrent verifications needing a fetch make only one.
    fetch_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct RemoteState {
    keys: Option<Arc<KeySet>>,
    /// When the current `keys` were fetched.
    fetched_at: Option<Instant>,
    /// When the last fetch (successful or not) started.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

/// What the cache says about one `kid`.
struct Lookup {
    key: Option<DecodingKey>,
    /// The cached set is older than [`JWKS_MAX_AGE`].
    stale: bool,
    /// A fetch is allowed now.
    may_fetch: bool,
    last_error: Option<String>,
}

impl RemoteKeys {
    fn state(&self) -> MutexGuard<'_, RemoteState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, kid: &str) -> Lookup {
        let state = self.state();
        let age = state.fetched_at.map(|fetched| fetched.elapsed());
        // A set too old to trust is as good as none.
        let usable = age.is_some_and(|age| age < self.timings.max_stale);
        let key = state
            .keys
            .as_ref()
            .filter(|_| usable)
            .and_then(|keys| keys.get(kid).cloned());
        let stale = age.is_none_or(|age| age >= self.timings.max_age);
        let min_interval = if state.keys.is_some() {
            self.timings.refetch_interval
        } else {
            FIRST_FETCH_RETRY_INTERVAL
        };
        let may_fetch = state
            .last_attempt
            .is_none_or(|attempt| attempt.elapsed() >= min_interval);
        Lookup {
            key,
            stale,
            may_fetch,
            last_error: state.last_error.clone(),
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, VerifyError> {
        let first = self.lookup(kid);
        let _fetching = match (first.key, first.stale) {
            (Some(key), false) => return Ok(key),
            // Refresh a stale set, unless another verification is already doing so.
            (Some(key), true) => match self.fetch_lock.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(key),
            },
            (None, _) => self.fetch_lock.lock().await,
        };
        // Another verification may have fetched while we waited.
        let lookup = self.lookup(kid);
        match lookup {
            Lookup {
                key: Some(key),
                stale: false,
                ..
            } => return Ok(key),
            Lookup {
                key: Some(key),
                may_fetch: false,
                ..
            } => return Ok(key),
            Lookup {
                key: None,
                may_fetch: false,
                last_error,
                ..
            } => {
                return Err(match last_error {
                    Some(error) => VerifyError::KeysUnavailable(error),
                    None => VerifyError::UnknownKey,
                });
            }
            _ => {}
        }

        self.state().last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let key = keys.get(kid).cloned();
                let mut state = self.state();
                state.keys = Some(Arc::new(keys));
                state.fetched_at = Some(Instant::now());
                state.last_error = None;
                key.ok_or(VerifyError::UnknownKey)
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "could not fetch the JWKS");
                self.state().last_error = Some(error.clone());
                // A stale set is better than none while the auth service is unreachable.
                lookup.key.ok_or(VerifyError::KeysUnavailable(error))
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let mut response = client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {}", self.url, error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {}: HTTP {}", self.url, response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {}: {}", self.url, error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "GET {}: JWKS larger than {MAX_JWKS_BYTES} bytes",
                    self.url
                ));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks_json(&body).map_err(|e| format!("GET {}: {e}", self.url))
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
