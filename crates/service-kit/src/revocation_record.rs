//! PostgreSQL as the record behind the Redis revocation list
//! ([`access_token::RevocationList::backed_by`]): `sessions.revoked_at`.

use std::time::Duration;

use access_token::{RevocationRecord, RevokedSessions};
use persistence::PgPool;

/// Reads recently revoked sessions from PostgreSQL.
pub struct PgRevocationRecord(pub PgPool);

impl RevocationRecord for PgRevocationRecord {
    fn revoked_within(&self, within: Duration) -> RevokedSessions<'_> {
        Box::pin(async move {
            let mut conn = self.0.get().await.map_err(|e| e.to_string())?;
            persistence::sessions::revoked_within(&mut conn, within)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
