//! Sign-in sessions and their rotating refresh tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use domain::{SessionId, UserId};

use crate::PersistenceError;
use crate::schema::{refresh_tokens, sessions};
use crate::users::{self, UserRecord};

/// Creates a session for `user_id` with its first refresh token (by hash), in one statement
/// (login is a hot path).
pub async fn create(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    user_id: UserId,
    refresh_hash: Vec<u8>,
    expires_at: DateTime<Utc>,
) -> Result<(), PersistenceError> {
    diesel::sql_query(
        "WITH session AS ( \
             INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3) RETURNING id \
         ) \
         INSERT INTO refresh_tokens (token_hash, session_id, expires_at) \
         SELECT $4, id, $3 FROM session",
    )
    .bind::<sql_types::Uuid, _>(session_id.0)
    .bind::<sql_types::Uuid, _>(user_id.0)
    .bind::<sql_types::Timestamptz, _>(expires_at)
    .bind::<sql_types::Bytea, _>(refresh_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes one session; returns false when it was unknown or revoked already.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
) -> Result<bool, PersistenceError> {
    let changed = diesel::update(
        sessions::table
            .find(session_id.0)
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(changed > 0)
}

/// Revokes every live session of `user_id` except `keep`, returning the ones revoked.
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    keep: Option<SessionId>,
) -> Result<Vec<SessionId>, PersistenceError> {
    let keep = keep.map(|s| s.0).unwrap_or(uuid::Uuid::nil());
    let ids = diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id.0))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::id.ne(keep)),
    )
    .set(sessions::revoked_at.eq(diesel::dsl::now))
    .returning(sessions::id)
    .get_results::<uuid::Uuid>(conn)
    .await?;
    Ok(ids.into_iter().map(SessionId).collect())
}

/// The session a refresh token (by hash) belongs to, spent or not.
pub async fn session_of_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> Result<Option<SessionId>, PersistenceError> {
    let id = refresh_tokens::table
        .find(token_hash)
        .select(refresh_tokens::session_id)
        .first::<uuid::Uuid>(conn)
        .await
        .optional()?;
    Ok(id.map(SessionId))
}

/// One step of a rotation chain, as read back for the two-tabs race.
#[derive(Debug, Clone)]
pub struct RefreshTokenState {
    /// Its session.
    pub session_id: SessionId,
    /// When it was spent, if it was.
    pub spent_at: Option<DateTime<Utc>>,
    /// Its successor, sealed with a key derived from this token.
    pub successor_sealed: Option<Vec<u8>>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Reads a refresh token (by hash) that belongs to a live session.
pub async fn live_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshTokenState>, PersistenceError> {
    let row = refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .filter(sessions::revoked_at.is_null())
        .select((
            refresh_tokens::session_id,
            refresh_tokens::spent_at,
            refresh_tokens::successor_sealed,
            refresh_tokens::expires_at,
        ))
        .first::<(
            uuid::Uuid,
            Option<DateTime<Utc>>,
            Option<Vec<u8>>,
            DateTime<Utc>,
        )>(conn)
        .await
        .optional()?;
    Ok(row.map(
        |(session_id, spent_at, successor_sealed, expires_at)| RefreshTokenState {
            session_id: SessionId(session_id),
            spent_at,
            successor_sealed,
            expires_at,
        },
    ))
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// Unknown, expired, or its session is revoked or expired.
    Invalid,
    /// The token was live: it is now spent and the successor stored.
    Rotated {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user: UserRecord,
    },
    /// The token was spent within the grace period (two tabs racing): nothing changed; the
    /// caller can unseal `successor_sealed` to find the session's current token.
    RecentlySpent {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// The successor, sealed with a key derived from the presented token.
        successor_sealed: Vec<u8>,
    },
    /// The token was spent longer ago: it was stolen or replayed, so the session is now
    /// revoked.
    Reused {
        /// The session just revoked.
        session_id: SessionId,
    },
}

/// The successor to store when a live token is rotated.
#[derive(Debug, Clone)]
pub struct Successor {
    /// Hash of the new token.
    pub token_hash: Vec<u8>,
    /// The new token sealed with a key derived from the presented one.
    pub sealed_for_predecessor: Vec<u8>,
    /// When the new token (and the session) expire, unless the session's absolute lifetime
    /// ends sooner.
    pub expires_at: DateTime<Utc>,
    /// The session's absolute lifetime, from its creation: no rotation extends a session past
    /// it, and a session past it rotates no more.
    pub session_max_age: Duration,
}

/// The row [`rotate_live`] reads back: the session and its user.
#[derive(QueryableByName)]
struct RotatedRow {
    #[diesel(sql_type = sql_types::Uuid)]
    session_id: uuid::Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = sql_types::Text)]
    email: String,
    #[diesel(sql_type = sql_types::Text)]
    password_hash: String,
    #[diesel(sql_type = sql_types::Text)]
    role: String,
    #[diesel(sql_type = sql_types::Bool)]
    email_verified: bool,
    #[diesel(sql_type = sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
}

/// The common case in one statement: spends a live token of a live session, stores its
/// successor, extends the session and reads back its user. `None` when the token is not live
/// (unknown, spent, expired, or its session revoked or expired). A concurrent presentation of
/// the same token waits for the row lock and then finds it spent.
async fn rotate_live(
    conn: &mut AsyncPgConnection,
    presented_hash: &[u8],
    successor: &Successor,
    now: DateTime<Utc>,
) -> Result<Option<(SessionId, UserRecord)>, PersistenceError> {
    let row = diesel::sql_query(
        "WITH spent AS ( \
             UPDATE refresh_tokens AS t SET spent_at = $5, successor_sealed = $2 \
               FROM sessions AS s \
              WHERE t.token_hash = $1 AND t.spent_at IS NULL AND t.expires_at > $5 \
                AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > $5 \
                AND s.created_at + make_interval(secs => $6) > $5 \
             RETURNING t.session_id, s.user_id, \
                       LEAST($4, s.created_at + make_interval(secs => $6)) AS expires_at \
         ), successor AS ( \
             INSERT INTO refresh_tokens (token_hash, session_id, expires_at) \
             SELECT $3, session_id, expires_at FROM spent \
         ), extended AS ( \
             UPDATE sessions SET expires_at = spent.expires_at FROM spent \
              WHERE sessions.id = spent.session_id \
         ) \
         SELECT spent.session_id, u.id, u.email, u.password_hash, u.role, u.email_verified, \
                u.created_at \
           FROM spent JOIN users AS u ON u.id = spent.user_id",
    )
    .bind::<sql_types::Bytea, _>(presented_hash)
    .bind::<sql_types::Bytea, _>(&successor.sealed_for_predecessor)
    .bind::<sql_types::Bytea, _>(&successor.token_hash)
    .bind::<sql_types::Timestamptz, _>(successor.expires_at)
    .bind::<sql_types::Timestamptz, _>(now)
    .bind::<sql_types::Double, _>(successor.session_max_age.as_secs_f64())
    .get_result::<RotatedRow>(conn)
    .await
    .optional()?;
    Ok(row.map(|r| {
        (
            SessionId(r.session_id),
            users::record((
                r.id,
                r.email,
                r.password_hash,
                r.role,
                r.email_verified,
                r.created_at,
            )),
        )
    }))
}

/// Rotates the refresh token with hash `presented_hash`.
///
/// A live token is rotated in one statement (`rotate_live`). Anything else is examined in a
/// transaction with the token row locked (`SELECT … FOR UPDATE`), so concurrent presentations
/// are serialized: a token spent within `grace` answers [`Rotation::RecentlySpent`], one spent
/// earlier revokes its session.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    presented_hash: Vec<u8>,
    successor: Successor,
    grace: Duration,
) -> Result<Rotation, PersistenceError> {
    if let Some((session_id, user)) =
        rotate_live(conn, &presented_hash, &successor, Utc::now()).await?
    {
        return Ok(Rotation::Rotated { session_id, user });
    }
    conn.transaction(async |conn| {
        let row = refresh_tokens::table
            .find(&presented_hash)
            .select((
                refresh_tokens::session_id,
                refresh_tokens::expires_at,
                refresh_tokens::spent_at,
                refresh_tokens::successor_sealed,
            ))
            .for_update()
            .first::<(
                uuid::Uuid,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
                Option<Vec<u8>>,
            )>(conn)
            .await
            .optional()?;
        let Some((session_id, expires_at, spent_at, sealed)) = row else {
            return Ok(Rotation::Invalid);
        };
        let now = Utc::now();
        let session = sessions::table
            .find(session_id)
            .select((
                sessions::user_id,
                sessions::expires_at,
                sessions::revoked_at,
                sessions::created_at,
            ))
            .first::<(
                uuid::Uuid,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
                DateTime<Utc>,
            )>(conn)
            .await?;
        let (user_id, session_expires_at, revoked_at, created_at) = session;
        let max_age =
            chrono::Duration::from_std(successor.session_max_age).unwrap_or(chrono::Duration::MAX);
        let absolute_end = created_at
            .checked_add_signed(max_age)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if revoked_at.is_some()
            || expires_at <= now
            || session_expires_at <= now
            || absolute_end <= now
        {
            return Ok(Rotation::Invalid);
        }
        let successor_expires_at = successor.expires_at.min(absolute_end);
        match (spent_at, sealed) {
            (None, _) => {
                diesel::update(refresh_tokens::table.find(&presented_hash))
                    .set((
                        refresh_tokens::spent_at.eq(now),
                        refresh_tokens::successor_sealed.eq(&successor.sealed_for_predecessor),
                    ))
                    .execute(conn)
                    .await?;
                diesel::insert_into(refresh_tokens::table)
                    .values((
                        refresh_tokens::token_hash.eq(&successor.token_hash),
                        refresh_tokens::session_id.eq(session_id),
                        refresh_tokens::expires_at.eq(successor_expires_at),
                    ))
                    .execute(conn)
                    .await?;
                diesel::update(sessions::table.find(session_id))
                    .set(sessions::expires_at.eq(successor_expires_at))
                    .execute(conn)
                    .await?;
                match users::find(conn, UserId(user_id)).await? {
                    Some(user) => Ok(Rotation::Rotated {
                        session_id: SessionId(session_id),
                        user,
                    }),
                    None => Ok(Rotation::Invalid),
                }
            }
            (Some(spent_at), Some(sealed))
                if now
                    .signed_duration_since(spent_at)
                    .to_std()
                    .is_ok_and(|age| age <= grace)
                    || spent_at > now =>
            {
                Ok(Rotation::RecentlySpent {
                    session_id: SessionId(session_id),
                    user_id: UserId(user_id),
                    successor_sealed: sealed,
                })
            }
            (Some(_), _) => {
                diesel::update(sessions::table.find(session_id))
                    .set(sessions::revoked_at.eq(now))
                    .execute(conn)
                    .await?;
                Ok::<_, PersistenceError>(Rotation::Reused {
                    session_id: SessionId(session_id),
                })
            }
        }
    })
    .await
}

#[derive(QueryableByName)]
struct RevokedRow {
    #[diesel(sql_type = sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = sql_types::Double)]
    ago_secs: f64,
}

/// The sessions revoked less than `within` ago, each with how long ago (by the database's
/// clock), through the `sessions_by_revoked_at` index.
pub async fn revoked_within(
    conn: &mut AsyncPgConnection,
    within: Duration,
) -> Result<Vec<(SessionId, Duration)>, PersistenceError> {
    let rows = diesel::sql_query(
        "SELECT id, GREATEST(EXTRACT(EPOCH FROM now() - revoked_at), 0)::float8 AS ago_secs \
           FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)",
    )
    .bind::<sql_types::Double, _>(within.as_secs_f64())
    .load::<RevokedRow>(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                SessionId(row.id),
                Duration::try_from_secs_f64(row.ago_secs).unwrap_or_default(),
            )
        })
        .collect())
}
