//! Current roles. An access token carries the role its user had when it was signed; the job
//! service asks PostgreSQL instead (remembered for [`ROLE_TTL`]), so that `grant-admin`, or a
//! role taken away, takes effect within seconds without the user signing in again.

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
    cache: moka::future::Cache<Uuid, Role>,
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

    /// `user`'s role now; an account that no longer exists has no privileges.
    pub async fn current(&self, user: Uuid) -> Result<Role, Arc<PersistenceError>> {
        self.cache
            .try_get_with(user, async {
                let mut conn = self.pg.get().await?;
                let role = persistence::users::role(&mut conn, UserId(user)).await?;
                Ok::<_, PersistenceError>(role.unwrap_or(Role::User))
            })
            .await
    }
}
