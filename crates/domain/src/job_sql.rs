//! The SQL form of [`JobStatus`] and [`JobType`]: their names in PostgreSQL `text` columns
//! (`jobs.status`, `jobs.type`), for diesel (feature `diesel`).
//!
//! Why here, behind a feature, rather than newtypes in `persistence`: the orphan rule allows
//! `ToSql`/`FromSql` for these enums only in the crate that defines them (or the one that
//! defines the traits). Newtypes would make every row field a wrapper to unwrap at each use,
//! so callers would still hold two types for one status. The mapping is pure conversion
//! between an enum and its name; this crate still does no I/O, and builds without diesel
//! unless a crate asks for the feature.

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::job::{JobStatus, JobType};

impl ToSql<Text, Pg> for JobStatus {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
    }
}

/// An unknown name (a row written by a newer build, or by hand) is a deserialization error
/// of the query that read it, never a panic.
impl FromSql<Text, Pg> for JobStatus {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let name = std::str::from_utf8(value.as_bytes())?;
        name.parse()
            .map_err(|_| format!("unknown job status {name:?} in the database").into())
    }
}

impl ToSql<Text, Pg> for JobType {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
    }
}

/// As for [`JobStatus`]: an unknown type name is an error of the query.
impl FromSql<Text, Pg> for JobType {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let name = std::str::from_utf8(value.as_bytes())?;
        name.parse()
            .map_err(|_| format!("unknown job type {name:?} in the database").into())
    }
}
