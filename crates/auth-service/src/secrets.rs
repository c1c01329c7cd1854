//! Random tokens and how they are stored: only SHA-256 hashes reach the database, and a spent
//! refresh token's successor is sealed under a key derived from the spent token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use domain::UserId;
use sha2::{Digest as _, Sha256};

/// A new opaque token: 32 random bytes, base64url without padding (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new six-digit code, leading zeros kept.
pub fn new_otp() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// What is stored for a user's code: SHA-256 of the user id and the code, so equal codes of
/// different users differ.
pub fn otp_hash(user_id: UserId, code: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(user_id.0.as_bytes());
    hasher.update(code.as_bytes());
    hasher.finalize().to_vec()
}

fn seal_cipher(presented: &str) -> ChaCha20Poly1305 {
    let mut hasher = Sha256::new();
    hasher.update(b"task-vault refresh seal");
    hasher.update(presented.as_bytes());
    let key: [u8; 32] = hasher.finalize().into();
    ChaCha20Poly1305::new(&Key::from(key))
}

// Each key seals exactly one message (a refresh token is spent once), so a fixed nonce is safe.
const SEAL_NONCE: [u8; 12] = [0; 12];

/// Seals `successor` so that only the holder of `presented` can read it.
pub fn seal(presented: &str, successor: &str) -> Option<Vec<u8>> {
    seal_cipher(presented)
        .encrypt(&Nonce::from(SEAL_NONCE), successor.as_bytes())
        .ok()
}

/// Opens what [`seal`] produced for `presented`.
pub fn unseal(presented: &str, sealed: &[u8]) -> Option<String> {
    let plain = seal_cipher(presented)
        .decrypt(&Nonce::from(SEAL_NONCE), sealed)
        .ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(token_hash(&a).len(), 32);
    }

    #[test]
    fn otps_have_six_digits() {
        for _ in 0..100 {
            let code = new_otp();
            assert_eq!(code.len(), 6);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn sealed_successors_open_only_with_the_presented_token() {
        let sealed = seal("old", "new").unwrap();
        assert_eq!(unseal("old", &sealed).as_deref(), Some("new"));
        assert_eq!(unseal("other", &sealed), None);
    }
}
