//! Least privilege in the database: the login roles of the job service and the worker.
//!
//! The auth service owns the schema (it runs the migrations) and alone reads credentials. The
//! job service and the worker can run as roles of their own that hold exactly the grants in
//! [`TABLES`]: neither can read a password hash, a refresh token, a verification code or a
//! reset link, nor change the schema. [`apply`] creates or updates those roles and sets their
//! grants; it is idempotent and is re-run after every migration (the Kubernetes Job runs
//! `auth-service migrate`, then `auth-service db-roles`), so that tables added later get their
//! grants. A table missing from [`TABLES`] is granted to nobody, and [`unclassified`] names it.

use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::PersistenceError;

/// Which service a role is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The job API (`job-service`).
    Jobs,
    /// The job runner (`worker`).
    Worker,
}

/// What each service role may do with one table (`None`: nothing).
#[derive(Debug, Clone, Copy)]
pub struct TableGrant {
    /// The table, in schema `public`.
    pub table: &'static str,
    /// The job service's privileges, as SQL (`SELECT (id, role)`, `SELECT, INSERT`).
    pub jobs: Option<&'static str>,
    /// The worker's privileges, as SQL.
    pub worker: Option<&'static str>,
}

/// Every table of the schema and what the service roles may do with it. A migration that adds a
/// table adds it here (the test `every_table_is_classified` fails until it does).
pub const TABLES: &[TableGrant] = &[
    // Accounts: the job service reads who a user is (role checks, the `send_email` recipient
    // check, the sender of real-time messages), never `password_hash`.
    TableGrant {
        table: "users",
        jobs: Some("SELECT (id, email, role, email_verified)"),
        worker: None,
    },
    // Sessions: the job service reads which were revoked, to re-seed the revocation list.
    TableGrant {
        table: "sessions",
        jobs: Some("SELECT (id, revoked_at)"),
        worker: None,
    },
    TableGrant {
        table: "refresh_tokens",
        jobs: None,
        worker: None,
    },
    TableGrant {
        table: "email_tokens",
        jobs: None,
        worker: None,
    },
    TableGrant {
        table: "otp_codes",
        jobs: None,
        worker: None,
    },
    // Jobs: submitted, cancelled and retried by the job service; claimed, finished, reaped and
    // deleted after their retention by the worker.
    TableGrant {
        table: "jobs",
        jobs: Some("SELECT, INSERT, UPDATE"),
        // INSERT: the jobs that schedules create.
        worker: Some("SELECT, INSERT, UPDATE, DELETE"),
    },
    // Dependency edges: written at submit by the job service, read when the worker settles a
    // parent's children (deleted with their jobs by the cascade, as the owner).
    TableGrant {
        table: "job_dependencies",
        jobs: Some("SELECT, INSERT"),
        worker: Some("SELECT"),
    },
    // The paused job types: set by admins through the job service, mirrored into Redis by the
    // worker's reconciler.
    TableGrant {
        table: "queue_pause",
        jobs: Some("SELECT, INSERT, UPDATE"),
        worker: Some("SELECT"),
    },
    // Schedules: managed through the job service; fired (their due times advanced) by workers.
    TableGrant {
        table: "schedules",
        jobs: Some("SELECT, INSERT, UPDATE, DELETE"),
        worker: Some("SELECT, UPDATE"),
    },
    // Lines written by job handlers: appended (and trimmed to the newest) by the worker, read
    // by the job service. They go with their job (the cascade runs as the owner).
    TableGrant {
        table: "job_logs",
        jobs: Some("SELECT"),
        worker: Some("SELECT, INSERT, DELETE"),
    },
    // The backlog's index, kept by triggers on `jobs` that run as the owner: read by the job
    // service (the per-user cap, status filters) and the worker (the reconciler).
    TableGrant {
        table: "unfinished_jobs",
        jobs: Some("SELECT"),
        worker: Some("SELECT"),
    },
    // Read at start, to refuse to run against a schema with pending migrations.
    TableGrant {
        table: "__diesel_schema_migrations",
        jobs: Some("SELECT"),
        worker: Some("SELECT"),
    },
];

/// A service's login role: its name and password (taken from the URL the service connects with).
#[derive(Clone)]
pub struct ServiceRole {
    /// Which service logs in with it.
    pub service: Service,
    /// The role name.
    pub name: String,
    /// The password; only its SCRAM verifier is sent to the server.
    pub password: String,
}

impl std::fmt::Debug for ServiceRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRole")
            .field("service", &self.service)
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ServiceRole {
    /// The role a service connects as with `url` (`postgres://NAME:PASSWORD@host/db`, user
    /// name and password percent-decoded).
    pub fn from_url(service: Service, url: &str) -> Result<Self, PersistenceError> {
        let what = match service {
            Service::Jobs => "the job service's database URL",
            Service::Worker => "the worker's database URL",
        };
        let invalid = |why: &str| PersistenceError::Invalid(format!("{what} {why}"));
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or_else(|| invalid("is not a postgres:// URL"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, _) = authority
            .rsplit_once('@')
            .ok_or_else(|| invalid("names no user (postgres://ROLE:PASSWORD@host/db)"))?;
        let (name, password) = userinfo
            .split_once(':')
            .ok_or_else(|| invalid("has no password (postgres://ROLE:PASSWORD@host/db)"))?;
        let (name, password) = (percent_decode(name), percent_decode(password));
        if !valid_role_name(&name) {
            return Err(invalid(
                "names a role that is not a plain lower-case identifier (a-z, 0-9, _; at most 63)",
            ));
        }
        if password.is_empty() {
            return Err(invalid("has an empty password"));
        }
        Ok(Self {
            service,
            name,
            password,
        })
    }
}

fn valid_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(diesel::QueryableByName)]
struct RoleState {
    #[diesel(sql_type = Bool)]
    exists: bool,
    #[diesel(sql_type = Bool)]
    unsafe_to_manage: bool,
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Key of the advisory lock held while roles are set, so that two runs never interleave.
const ROLES_LOCK_KEY: i64 = 0x0074_7672_6f6c_6573; // "tvroles"

/// Creates each role (or updates its password), then gives it exactly its grants of [`TABLES`]
/// in the database of `admin_url`, in one transaction: everything it held there before is
/// revoked first, so a grant dropped from [`TABLES`] is withdrawn. Returns the tables that
/// exist but are not in [`TABLES`] (granted to nobody).
///
/// `admin_url` is the schema owner's URL (the one `migrate` uses); it needs `CREATEROLE`.
/// Refuses a role that is a superuser, the connecting role, owns anything in this database,
/// or is a member of another role (its privileges would not be exactly these).
pub async fn apply(
    admin_url: &str,
    roles: &[ServiceRole],
) -> Result<Vec<String>, PersistenceError> {
    if let [first, second] = roles
        && first.name == second.name
    {
        return Err(PersistenceError::Invalid(format!(
            "the job service and the worker must log in as different roles (both are `{}`)",
            first.name
        )));
    }
    let mut conn = crate::pool::connect(admin_url).await?;
    conn.transaction::<_, PersistenceError, _>(async |conn| {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({ROLES_LOCK_KEY})"))
            .execute(conn)
            .await?;
        for role in roles {
            apply_one(conn, role).await?;
        }
        Ok(())
    })
    .await?;
    unclassified(&mut conn).await
}

async fn apply_one(
    conn: &mut AsyncPgConnection,
    role: &ServiceRole,
) -> Result<(), PersistenceError> {
    let state = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists, \
           EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = $1 AND (r.rolsuper \
             OR r.rolname = current_user \
             OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid) \
             OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid) \
             OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid))) \
           AS unsafe_to_manage",
    )
    .bind::<Text, _>(&role.name)
    .get_result::<RoleState>(conn)
    .await?;
    let name = quote_ident(&role.name);
    if state.unsafe_to_manage {
        return Err(PersistenceError::Invalid(format!(
            "role {name} is a superuser, the role running this command, an owner of database \
             objects or a member of another role; give the service a role of its own"
        )));
    }
    // Only the SCRAM verifier reaches the server (and any statement log), never the password.
    let verifier = postgres_protocol::password::scram_sha_256(role.password.as_bytes());
    if verifier.contains(['\'', '\\']) {
        return Err(PersistenceError::Invalid(
            "unexpected password verifier".into(),
        ));
    }
    let set_password = if state.exists {
        format!("ALTER ROLE {name} WITH LOGIN PASSWORD '{verifier}'")
    } else {
        format!("CREATE ROLE {name} WITH LOGIN PASSWORD '{verifier}'")
    };
    diesel::sql_query(set_password).execute(conn).await?;

    // Exactly these grants: first withdraw whatever the role held in this database (revoking a
    // table privilege revokes its column privileges too).
    let mut statements = vec![
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {name}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {name}"),
        format!("REVOKE ALL ON SCHEMA public FROM {name}"),
        format!("GRANT USAGE ON SCHEMA public TO {name}"),
    ];
    let existing = table_names(conn).await?;
    for grant in TABLES {
        let privileges = match role.service {
            Service::Jobs => grant.jobs,
            Service::Worker => grant.worker,
        };
        // A table of a later migration may not exist yet in an older database.
        if let Some(privileges) = privileges
            && existing.iter().any(|t| t == grant.table)
        {
            statements.push(format!(
                "GRANT {privileges} ON TABLE public.{} TO {name}",
                quote_ident(grant.table)
            ));
        }
    }
    for statement in statements {
        diesel::sql_query(statement).execute(conn).await?;
    }
    let database = diesel::sql_query("SELECT current_database() AS name")
        .get_result::<TableName>(conn)
        .await?
        .name;
    diesel::sql_query(format!(
        "GRANT CONNECT ON DATABASE {} TO {name}",
        quote_ident(&database)
    ))
    .execute(conn)
    .await?;
    Ok(())
}

async fn table_names(conn: &mut AsyncPgConnection) -> Result<Vec<String>, PersistenceError> {
    Ok(diesel::sql_query(
        "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .load::<TableName>(conn)
    .await?
    .into_iter()
    .map(|t| t.name)
    .collect())
}

/// The tables of schema `public` that [`TABLES`] does not mention (granted to no service role).
pub async fn unclassified(conn: &mut AsyncPgConnection) -> Result<Vec<String>, PersistenceError> {
    Ok(table_names(conn)
        .await?
        .into_iter()
        .filter(|name| !TABLES.iter().any(|grant| grant.table == name))
        .collect())
}

/// `"name"`, with any `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_and_password_come_from_the_url() -> Result<(), PersistenceError> {
        let role = ServiceRole::from_url(
            Service::Jobs,
            "postgres://tv_jobs:p%40ss%3Aword@db.internal:5432/taskvault?sslmode=require",
        )?;
        assert_eq!(role.name, "tv_jobs");
        assert_eq!(role.password, "p@ss:word");
        assert!(!format!("{role:?}").contains("p@ss"));
        Ok(())
    }

    #[test]
    fn a_url_without_a_role_password_or_a_plain_name_is_refused() {
        for url in [
            "postgres://db.internal/taskvault",
            "postgres://tv_jobs@db.internal/taskvault",
            "postgres://tv_jobs:@db.internal/taskvault",
            "postgres://Jobs:x@db.internal/taskvault",
            "postgres://tv%22jobs:x@db.internal/taskvault",
            "postgres://pg_monitor:x@db.internal/taskvault",
            "not a url",
        ] {
            assert!(
                ServiceRole::from_url(Service::Worker, url).is_err(),
                "{url}"
            );
        }
    }

    #[test]
    fn no_table_is_granted_credentials() {
        for grant in TABLES {
            if ["refresh_tokens", "email_tokens", "otp_codes"].contains(&grant.table) {
                assert!(grant.jobs.is_none() && grant.worker.is_none());
            }
            if grant.table == "users" {
                assert!(!grant.jobs.unwrap_or_default().contains("password_hash"));
                assert!(grant.worker.is_none());
            }
        }
    }
}
