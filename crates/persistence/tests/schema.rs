#![allow(clippy::expect_used)]
//! `src/schema.rs` is written by hand; this test keeps it honest. It applies every migration to
//! a fresh database and compares each table's columns (name, SQL type, nullability) with the
//! `diesel::table!` blocks, so a migration without its schema change (or the reverse) fails the
//! build instead of failing a query at run time.

use std::collections::BTreeMap;

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::RunQueryDsl;
use test_support::TestDb;

/// Column name → (diesel type, nullable), per table.
type Tables = BTreeMap<String, BTreeMap<String, (String, bool)>>;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    udt_name: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

/// The diesel name of a PostgreSQL type, as `diesel print-schema` would write it.
fn diesel_type(udt: &str) -> String {
    match udt {
        "uuid" => "Uuid",
        "text" => "Text",
        "varchar" => "Varchar",
        "bool" => "Bool",
        "int2" => "Int2",
        "int4" => "Int4",
        "int8" => "Int8",
        "float8" => "Float8",
        "bytea" => "Bytea",
        "jsonb" => "Jsonb",
        "timestamptz" => "Timestamptz",
        "timestamp" => "Timestamp",
        "date" => "Date",
        "_text" => "Array<Text>",
        "_uuid" => "Array<Uuid>",
        other => return format!("<unmapped PostgreSQL type {other}>"),
    }
    .to_owned()
}

/// Reads the `diesel::table!` blocks of `schema.rs`: table names, columns (with their
/// `#[sql_name]` when the Rust name differs) and types.
fn declared(source: &str) -> Tables {
    let mut tables = Tables::new();
    let mut table: Option<String> = None;
    let mut sql_name: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if line == "diesel::table! {" {
            table = None;
        } else if table.is_none() && line.ends_with('{') && line.contains('(') {
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            tables.entry(name.clone()).or_default();
            table = Some(name);
        } else if let Some(name) = line
            .strip_prefix("#[sql_name = \"")
            .and_then(|rest| rest.strip_suffix("\"]"))
        {
            sql_name = Some(name.to_owned());
        } else if let (Some(t), Some((column, ty))) = (&table, line.split_once(" -> ")) {
            let ty = ty.trim_end_matches(',');
            let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                Some(inner) => (inner.strip_suffix('>').unwrap_or(inner), true),
                None => (ty, false),
            };
            let column = sql_name.take().unwrap_or_else(|| column.to_owned());
            tables
                .entry(t.clone())
                .or_default()
                .insert(column, (ty.to_owned(), nullable));
        } else if line == "}" {
            table = None;
        }
    }
    tables
}

#[tokio::test]
async fn schema_rs_matches_the_migrations() {
    let db = TestDb::migrated().await;
    let mut conn = persistence::pool::connect(db.url()).await.expect("connect");
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, udt_name::text, is_nullable = 'YES' AS nullable \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_diesel%'",
    )
    .load(&mut conn)
    .await
    .expect("read information_schema");
    let mut migrated = Tables::new();
    for c in columns {
        migrated
            .entry(c.table_name)
            .or_default()
            .insert(c.column_name, (diesel_type(&c.udt_name), c.nullable));
    }

    let declared = declared(include_str!("../src/schema.rs"));
    assert!(
        declared.len() >= 6,
        "the schema.rs reader found only {declared:?}: has the file's layout changed?"
    );
    let differences = differences(&declared, &migrated);
    assert!(
        differences.is_empty(),
        "crates/persistence/src/schema.rs does not match the migrations; update schema.rs:\n{}",
        differences.join("\n")
    );
}

/// One line per table or column that is not the same on both sides.
fn differences(declared: &Tables, migrated: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    let tables: std::collections::BTreeSet<&String> =
        declared.keys().chain(migrated.keys()).collect();
    for table in tables {
        let (Some(left), Some(right)) = (declared.get(table), migrated.get(table)) else {
            let side = if declared.contains_key(table) {
                "schema.rs only"
            } else {
                "migrations only"
            };
            out.push(format!("table {table}: {side}"));
            continue;
        };
        let columns: std::collections::BTreeSet<&String> =
            left.keys().chain(right.keys()).collect();
        for column in columns {
            match (left.get(column), right.get(column)) {
                (Some(l), Some(r)) if l == r => {}
                (l, r) => out.push(format!(
                    "{table}.{column}: schema.rs {} / migrations {}",
                    describe(l),
                    describe(r)
                )),
            }
        }
    }
    out
}

fn describe(column: Option<&(String, bool)>) -> String {
    match column {
        None => "(absent)".to_owned(),
        Some((ty, true)) => format!("Nullable<{ty}>"),
        Some((ty, false)) => ty.clone(),
    }
}
