//! `hash`: `result` = `{"hex": sha256(data.text)}`.

use domain::job::JobType;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Handler, HandlerError, JobContext};

/// Above this many bytes the digest runs on a blocking thread, off the async runtime.
const INLINE_LIMIT: usize = 16 * 1024;

/// Hashes text.
pub struct Hash;

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Handler for Hash {
    fn job_type(&self) -> JobType {
        JobType::Hash
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, HandlerError>> {
        Box::pin(async move {
            let text = ctx
                .data
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| HandlerError::new("data.text is missing"))?;
            let hex = if text.len() <= INLINE_LIMIT {
                digest(text)
            } else {
                let text = text.to_owned();
                tokio::task::spawn_blocking(move || digest(&text))
                    .await
                    .map_err(|e| HandlerError::new(format!("hashing failed: {e}")))?
            };
            Ok(json!({"hex": hex, "algorithm": "sha256"}))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            super::digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
