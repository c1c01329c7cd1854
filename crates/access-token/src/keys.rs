//! Ed25519 keys: the auth service's signing key, its public JWKS, and verifiers' key sets.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Claims, KeyError, TokenError};

/// The development signing key, as a PKCS#8 PEM (the same key as [`SigningKey::development`]).
///
/// **Public and insecure**: it is committed to the source tree. Use it only for local
/// development and tests, never in a deployment.
pub const DEVELOPMENT_PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGIG3i2OvRm9We+ZSL9IDiqlzKi5N+4EMgsjlwlIF3+C
-----END PRIVATE KEY-----
";

/// The 32-byte Ed25519 seed inside [`DEVELOPMENT_PRIVATE_KEY_PEM`] (generated with
/// `openssl genpkey -algorithm ed25519`). Public and insecure.
const DEVELOPMENT_SEED: [u8; 32] = [
    0x62, 0x06, 0xde, 0x2d, 0x8e, 0xbd, 0x19, 0xbd, 0x59, 0xef, 0x99, 0x48, 0xbf, 0x48, 0x0e, 0x2a,
    0xa5, 0xcc, 0xa8, 0xb9, 0x37, 0xee, 0x04, 0x32, 0x0b, 0x23, 0x97, 0x09, 0x48, 0x17, 0x7f, 0x82,
];

/// DER prefix of a PKCS#8 v1 `PrivateKeyInfo` for Ed25519 (RFC 8410), followed by the seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// DER prefix of an SPKI `SubjectPublicKeyInfo` for Ed25519 (RFC 8410), followed by the key.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The auth service's Ed25519 private key, with its public JWK and `kid`.
///
/// Its `Debug` output shows only the `kid`.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    public: [u8; 32],
    x: String,
    kid: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 (`-----BEGIN PRIVATE KEY-----`) Ed25519 private key PEM, as written by
    /// `openssl genpkey -algorithm ed25519`.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| KeyError::InvalidPrivateKey(e.to_string()))?;
        Ok(Self::from_seed(&key.to_bytes()))
    }

    /// The fixed development key ([`DEVELOPMENT_PRIVATE_KEY_PEM`]).
    ///
    /// **Public and insecure**: anyone can sign tokens with it. Only for local development and
    /// tests; never configure it in a deployment.
    pub fn development() -> Self {
        Self::from_seed(&DEVELOPMENT_SEED)
    }

    /// Builds the key from a raw 32-byte Ed25519 seed (cannot fail).
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        let secret = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = secret.verifying_key().to_bytes();
        let mut der = Vec::with_capacity(PKCS8_ED25519_PREFIX.len() + seed.len());
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(seed);
        let x = URL_SAFE_NO_PAD.encode(public);
        let kid = thumbprint(&x);
        Self {
            encoding: EncodingKey::from_ed_der(&der),
            public,
            x,
            kid,
        }
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of the
    /// public key. Stable for a key, different across keys.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK set, to publish for verifiers
    /// (`{"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}]}`).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![Jwk {
                kty: "OKP".to_owned(),
                crv: "Ed25519".to_owned(),
                x: self.x.clone(),
                kid: self.kid.clone(),
                alg: "EdDSA".to_owned(),
                key_use: "sig".to_owned(),
            }],
        }
    }

    /// The public key as an SPKI (`-----BEGIN PUBLIC KEY-----`) PEM.
    pub fn public_pem(&self) -> String {
        let mut der = Vec::with_capacity(SPKI_ED25519_PREFIX.len() + self.public.len());
        der.extend_from_slice(&SPKI_ED25519_PREFIX);
        der.extend_from_slice(&self.public);
        let body = STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        // 44 base64 characters: one line (PEM lines hold up to 64).
        pem.push_str(&body);
        pem.push_str("\n-----END PUBLIC KEY-----\n");
        pem
    }

    /// Signs `claims` as an EdDSA JWT whose header carries `typ: JWT` and this key's `kid`.
    ///
    /// The claims are signed as given; use [`Claims::new_access`] to fill them in.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key given as its base64url `x`.
fn thumbprint(x: &str) -> String {
    // The required members of an OKP key, in lexicographic order, without whitespace.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()).as_slice())
}

/// A JSON Web Key Set as published by the auth service (`{"keys":[…]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

/// One public Ed25519 key in JWK form (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `"OKP"`.
    pub kty: String,
    /// Curve: `"Ed25519"`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key id that tokens name in their header.
    pub kid: String,
    /// Algorithm: `"EdDSA"`.
    pub alg: String,
    /// Intended use (`"use"` in JSON): `"sig"`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// The public keys a [`crate::Verifier`] trusts, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// The public half of `key`, under its `kid`.
    pub fn from_signing_key(key: &SigningKey) -> Self {
        let mut set = Self::default();
        set.insert_raw(key.kid.clone(), &key.public);
        set
    }

    /// One SPKI (`-----BEGIN PUBLIC KEY-----`) Ed25519 public key PEM, under its RFC 7638
    /// thumbprint (the `kid` [`SigningKey::kid`] gives the same key).
    pub fn from_public_pem(pem: &str) -> Result<Self, KeyError> {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
        let public = key.to_bytes();
        let mut set = Self::default();
        set.insert_raw(thumbprint(&URL_SAFE_NO_PAD.encode(public)), &public);
        Ok(set)
    }

    /// The Ed25519 keys of a JWKS document (as served by the auth service), by their `kid`.
    ///
    /// Keys of other types or curves, keys for another use or algorithm and keys without a
    /// `kid` are skipped; an Ed25519 key whose `x` is not a valid public key is an error, and
    /// so is a document with no usable key.
    pub fn from_jwks_json(json: &[u8]) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<RawKey>,
        }
        #[derive(Deserialize)]
        struct RawKey {
            kty: Option<String>,
            crv: Option<String>,
            x: Option<String>,
            kid: Option<String>,
            alg: Option<String>,
            #[serde(rename = "use")]
            key_use: Option<String>,
        }

        let raw: RawSet =
            serde_json::from_slice(json).map_err(|e| KeyError::InvalidJwks(e.to_string()))?;
        let mut set = Self::default();
        for key in raw.keys {
            let is_ed25519 =
                key.kty.as_deref() == Some("OKP") && key.crv.as_deref() == Some("Ed25519");
            let for_eddsa = key.alg.as_deref().is_none_or(|alg| alg == "EdDSA");
            let for_signing = key.key_use.as_deref().is_none_or(|u| u == "sig");
            let (Some(kid), true, true, true) = (key.kid, is_ed25519, for_eddsa, for_signing)
            else {
                continue;
            };
            let x = key
                .x
                .ok_or_else(|| KeyError::InvalidJwks(format!("key {kid:?} has no `x`")))?;
            let public = decode_public_key(&x)
                .ok_or_else(|| KeyError::InvalidJwks(format!("key {kid:?} has an invalid `x`")))?;
            set.insert_raw(kid, &public);
        }
        if set.keys.is_empty() {
            return Err(KeyError::NoUsableKey);
        }
        Ok(set)
    }

    /// Adds every key of `other` (for accepting an old and a new key during a rotation).
    pub fn extend(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
    }

    /// True if the set holds a key named `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key named `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    /// Adds a raw 32-byte Ed25519 public key, already checked to be a valid point.
    fn insert_raw(&mut self, kid: String, public: &[u8; 32]) {
        // With the `rust_crypto` backend, jsonwebtoken takes the raw 32 key bytes as "DER".
        self.keys.insert(kid, DecodingKey::from_ed_der(public));
    }
}

/// Decodes a JWK `x` into a valid Ed25519 public key (exactly 32 bytes, a curve point).
///
/// jsonwebtoken would panic at verification time on a key shorter than 32 bytes, so every key
/// goes through this check.
fn decode_public_key(x: &str) -> Option<[u8; 32]> {
    let bytes = URL_SAFE_NO_PAD.decode(x).ok()?;
    let public: [u8; 32] = bytes.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&public).ok()?;
    Some(public)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;

    use super::*;

    /// `openssl pkey -in dev.pem -pubout` for the development key.
    const DEVELOPMENT_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAPDe3hs9xRVN54l71QvRLOLdSWqz1X8UiRF8jlZWGCa8=
-----END PUBLIC KEY-----
";

    #[test]
    fn development_key_matches_its_pem() -> Result<(), KeyError> {
        let from_pem = SigningKey::from_pem(DEVELOPMENT_PRIVATE_KEY_PEM)?;
        let dev = SigningKey::development();
        assert_eq!(from_pem.kid(), dev.kid());
        assert_eq!(dev.public_pem(), DEVELOPMENT_PUBLIC_PEM);
        Ok(())
    }

    #[test]
    fn hand_built_der_matches_the_pkcs8_and_spki_encoders() {
        let seed = [7u8; 32];
        let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
        let ours = SigningKey::from_seed(&seed);
        // The PKCS#8 v1 DER we hand to jsonwebtoken holds the same key...
        let parsed = ed25519_dalek::SigningKey::from_pkcs8_der(ours.encoding.as_bytes()).unwrap();
        assert_eq!(parsed.to_bytes(), seed);
        // ...and is byte for byte what openssl writes.
        let dev_der = STANDARD
            .decode(DEVELOPMENT_PRIVATE_KEY_PEM.lines().nth(1).unwrap())
            .unwrap();
        assert_eq!(SigningKey::development().encoding.as_bytes(), dev_der);
        let spki = dalek
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        assert_eq!(ours.public_pem(), spki);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.1 (key) and A.3 (thumbprint).
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let seed: [u8; 32] = d.try_into().unwrap();
        let key = SigningKey::from_seed(&seed);
        assert_eq!(key.x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn kid_is_stable_and_differs_across_keys() -> Result<(), KeyError> {
        let a = SigningKey::from_seed(&[1u8; 32]);
        let a_again = SigningKey::from_seed(&[1u8; 32]);
        let b = SigningKey::from_seed(&[2u8; 32]);
        assert_eq!(a.kid(), a_again.kid());
        assert_ne!(a.kid(), b.kid());
        assert_eq!(
            SigningKey::from_pem(DEVELOPMENT_PRIVATE_KEY_PEM)?.kid(),
            SigningKey::from_pem(DEVELOPMENT_PRIVATE_KEY_PEM)?.kid()
        );
        // The public PEM names the key under the same kid.
        let set = KeySet::from_public_pem(&a.public_pem())?;
        assert!(set.get(a.kid()).is_some());
        Ok(())
    }

    #[test]
    fn jwks_has_the_documented_shape() -> Result<(), serde_json::Error> {
        let key = SigningKey::development();
        let json = serde_json::to_value(key.jwks())?;
        assert_eq!(
            json,
            serde_json::json!({"keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "PDe3hs9xRVN54l71QvRLOLdSWqz1X8UiRF8jlZWGCa8",
                "kid": key.kid(),
                "alg": "EdDSA",
                "use": "sig",
            }]})
        );
        Ok(())
    }

    #[test]
    fn bad_pems_are_refused() {
        assert!(matches!(
            SigningKey::from_pem("not a key"),
            Err(KeyError::InvalidPrivateKey(_))
        ));
        assert!(matches!(
            SigningKey::from_pem(DEVELOPMENT_PUBLIC_PEM),
            Err(KeyError::InvalidPrivateKey(_))
        ));
        assert!(matches!(
            KeySet::from_public_pem(DEVELOPMENT_PRIVATE_KEY_PEM),
            Err(KeyError::InvalidPublicKey(_))
        ));
    }

    #[test]
    fn jwks_with_broken_or_no_ed25519_keys_is_refused() {
        // A short `x` would make jsonwebtoken panic when verifying; it must be refused here.
        let short = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k"}]}"#;
        assert!(matches!(
            KeySet::from_jwks_json(short),
            Err(KeyError::InvalidJwks(_))
        ));
        let rsa_only = br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"}]}"#;
        assert_eq!(
            KeySet::from_jwks_json(rsa_only).unwrap_err(),
            KeyError::NoUsableKey
        );
        assert!(matches!(
            KeySet::from_jwks_json(b"[]"),
            Err(KeyError::InvalidJwks(_))
        ));
    }

    #[test]
    fn jwks_skips_foreign_keys_and_keeps_ours() -> Result<(), KeyError> {
        let key = SigningKey::from_seed(&[3u8; 32]);
        let ours = &key.jwks().keys[0];
        let json = serde_json::json!({"keys": [
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
            {"kty": "OKP", "crv": "Ed25519", "x": ours.x, "kid": "for-encryption", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": ours.x, "kid": ours.kid, "alg": "EdDSA", "use": "sig"},
        ]});
        let set = KeySet::from_jwks_json(json.to_string().as_bytes())?;
        assert_eq!(set.len(), 1);
        assert!(set.get(key.kid()).is_some());
        Ok(())
    }
}
