//! Current roles. An access token carries the role its user had when it was signed; the job
//! service asks PostgreSQL instead (remembered for [`ROLE_TTL`]), so that `grant-admin`, or a
//! role taken away, takes effect within seconds without the user signing in again. A token
//! issued after the remembered role was read makes it read again: a user who signs in again
//! after a change of role is served with the new role at once.

use std::sync::Arc;
use std::time::Duration;

use domain::{Role, UserId};
use persistence::{PersistenceError, PgPool};
use uuid::Uuid;

/// How long a role read from PostgreSQL is used before it is read again.
pub const ROLE_TTL: Duration = Duration::from_secs(5);

/// Users' current roles, read through a short cache.
#[derive(Clone)]
pub struct Roles {
    pg: PgPool,
    /// The role and when it was read (Unix seconds).
    cache: moka::future::Cache<Uuid, (Role, i64)>,
}

impl Roles {
    /// Roles read from `pg`.
    pub fn new(pg: PgPool) -> Self {
        Self {
            pg,
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ROLE_TTL)
                .build(),
        }
    }

    /// `user`'s role now; an account that no longer exists has no privileges. `issued_at` is
    /// the `iat` of the token presented: a role read before then may predate the token.
    pub async fn current(&self, user: Uuid, issued_at: i64) -> Result<Role, Arc<PersistenceError>> {
        if let Some((role, read_at)) = self.cache.get(&user).await {
            // `iat` has whole seconds: a read in the same second may predate the token.
            if read_at > issued_at {
                return Ok(role);
            }
            self.cache.invalidate(&user).await;
        }
        let (role, _) = self
            .cache
            .try_get_with(user, async {
                let read_at = chrono::Utc::now().timestamp();
                let mut conn = self.pg.get().await?;
                let role = persistence::users::role(&mut conn, UserId(user)).await?;
                Ok::<_, PersistenceError>((role.unwrap_or(Role::User), read_at))
            })
            .await?;
        Ok(role)
    }
}
