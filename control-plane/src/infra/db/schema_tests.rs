//! The two migration folders against `schema.rs` and against each other (issue 14: the
//! folders stay one per backend, and a test checks that their resulting schemas match).
//! Long because it reads each backend's catalog (SQLite pragmas, PostgreSQL
//! information_schema) and normalizes both to one shape; split, they would drift apart.
//!
//! Each backend's schema is read back from the database and normalized, per table: its
//! columns (name, a type among text/integer/bigint/boolean/blob/real, nullability), its
//! primary key, its other indexes and unique constraints (columns, unique, partial, and
//! the name when a migration names the index) and its foreign keys (columns, target,
//! `ON DELETE`). `schema.rs` knows only tables, columns and primary keys, so that is what
//! it is compared on; the two backends are compared on everything. Column order and
//! defaults are not compared: diesel names every column it selects, and the defaults
//! are in the same SQL on both sides.

#![allow(clippy::unwrap_used)]

use super::{connect, run_migrations, DbConn, ScratchDb, SQLITE_MIGRATIONS};
use crate::infra::schema;
use diesel::expression::Expression;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Bool, Double, Float, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A column: normalized type and nullability.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    ty: String,
    nullable: bool,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let null = if self.nullable { "NULL" } else { "NOT NULL" };
        write!(f, "{} {null}", self.ty)
    }
}

/// An index other than the primary key's, or a unique constraint. `name` is `None` for a
/// constraint's index, whose name each backend makes up (`users_email_key`,
/// `sqlite_autoindex_users_1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    name: Option<String>,
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let partial = if self.partial { "partial " } else { "" };
        let unique = if self.unique { "unique " } else { "" };
        let columns = self.columns.join(", ");
        match &self.name {
            Some(name) => write!(f, "{partial}{unique}index {name} ({columns})"),
            None => write!(f, "{partial}{unique}constraint ({columns})"),
        }
    }
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    target: String,
    target_columns: Vec<String>,
    on_delete: String,
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "foreign key ({}) -> {} ({}) ON DELETE {}",
            self.columns.join(", "),
            self.target,
            self.target_columns.join(", "),
            self.on_delete
        )
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    indexes: BTreeSet<Index>,
    foreign_keys: BTreeSet<ForeignKey>,
}

type Schema = BTreeMap<String, Table>;

/// The type vocabulary both backends are compared in, from a declared type (SQLite keeps
/// the migration's words) or PostgreSQL's `information_schema` name.
fn normalize_type(declared: &str) -> String {
    let lower = declared.trim().to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or_default().trim();
    match base {
        "text" | "varchar" | "character varying" | "char" | "character" | "clob" => "text",
        "integer" | "int" | "int4" => "integer",
        "bigint" | "int8" => "bigint",
        "boolean" | "bool" => "boolean",
        "blob" | "bytea" => "blob",
        "real" | "float" | "float4" | "float8" | "double" | "double precision" => "real",
        _ => return format!("unknown type `{declared}`"),
    }
    .to_owned()
}

// ------------------------------------------------------------- what schema.rs declares

/// A diesel SQL type in the normalized vocabulary.
trait Normalized {
    const TYPE: &'static str;
    const NULLABLE: bool = false;
}

impl Normalized for Text {
    const TYPE: &'static str = "text";
}
impl Normalized for Integer {
    const TYPE: &'static str = "integer";
}
impl Normalized for BigInt {
    const TYPE: &'static str = "bigint";
}
impl Normalized for Bool {
    const TYPE: &'static str = "boolean";
}
impl Normalized for Binary {
    const TYPE: &'static str = "blob";
}
impl Normalized for Float {
    const TYPE: &'static str = "real";
}
impl Normalized for Double {
    const TYPE: &'static str = "real";
}
impl<T: Normalized> Normalized for Nullable<T> {
    const TYPE: &'static str = T::TYPE;
    const NULLABLE: bool = true;
}

/// A table's `all_columns` tuple, read back as (name, column).
trait Columns {
    fn columns() -> Vec<(&'static str, Column)>;
}

fn column<C>() -> (&'static str, Column)
where
    C: diesel::Column + Expression,
    C::SqlType: Normalized,
{
    let c = Column {
        ty: <C::SqlType as Normalized>::TYPE.to_owned(),
        nullable: <C::SqlType as Normalized>::NULLABLE,
    };
    (C::NAME, c)
}

macro_rules! columns_for_tuples {
    () => {};
    ($first:ident $($rest:ident)*) => {
        impl<$first, $($rest),*> Columns for ($first, $($rest,)*)
        where
            $first: diesel::Column + Expression,
            <$first as Expression>::SqlType: Normalized,
            $($rest: diesel::Column + Expression, <$rest as Expression>::SqlType: Normalized,)*
        {
            fn columns() -> Vec<(&'static str, Column)> {
                vec![column::<$first>() $(, column::<$rest>())*]
            }
        }
        columns_for_tuples!($($rest)*);
    };
}

// Up to diesel's `32-column-tables`.
columns_for_tuples!(
    C01 C02 C03 C04 C05 C06 C07 C08 C09 C10 C11 C12 C13 C14 C15 C16
    C17 C18 C19 C20 C21 C22 C23 C24 C25 C26 C27 C28 C29 C30 C31 C32
);

/// What `schema.rs` says of one table. Its primary key is a column or a tuple of them;
/// diesel renders either as SQL (`` `t`.`a`, `t`.`b` ``), which gives the names in order.
fn declared<T>() -> Table
where
    T: diesel::Table + Default,
    T::AllColumns: Columns,
    T::PrimaryKey: diesel::query_builder::QueryFragment<Sqlite>,
{
    let key = T::default().primary_key();
    let rendered = diesel::debug_query::<Sqlite, _>(&key).to_string();
    let sql = rendered.split(" -- binds").next().unwrap_or_default();
    let primary_key = sql
        .split(", ")
        .map(|c| {
            c.rsplit('.')
                .next()
                .unwrap_or(c)
                .trim_matches('`')
                .to_owned()
        })
        .collect();
    Table {
        columns: T::AllColumns::columns()
            .into_iter()
            .map(|(n, c)| (n.to_owned(), c))
            .collect(),
        primary_key,
        ..Table::default()
    }
}

macro_rules! declared_schema {
    ($($table:ident),* $(,)?) => {{
        let mut s = Schema::new();
        $(s.insert(stringify!($table).to_owned(), declared::<schema::$table::table>());)*
        s
    }};
}

/// Every table of `schema.rs`.
fn schema_rs() -> Schema {
    let s = declared_schema![
        users,
        magic_links,
        sessions,
        api_tokens,
        workspaces,
        workspace_secrets,
        agents,
        memberships,
        nodes,
        node_certs,
        bootstrap_tokens,
        node_reports,
        usage_counts,
        ai_counts,
        booking_counts,
        call_counts,
        node_events,
        commands,
        jobs,
        audit_events,
        invitations,
        workspace_suspensions,
        node_exports,
        retention_sweeps,
        audit_anchor,
        retention_runs,
        oauth_identities,
        oauth_states,
        billing_accounts,
        stripe_events,
        invoices,
        known_devices,
        email_changes,
        mail_outbox,
        upgrades,
        upgrade_nodes,
        key_fingerprints,
    ];
    let in_file = include_str!("../schema.rs")
        .matches("diesel::table!")
        .count();
    assert_eq!(
        s.len(),
        in_file,
        "schema.rs declares {in_file} tables and this test lists {}: add the new table to \
         `schema_rs()`",
        s.len()
    );
    s
}

// ---------------------------------------------------------------- what a database has

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = BigInt)]
    not_null: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    is_unique: i64,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint) or `pk`.
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = BigInt)]
    partial: i64,
}

#[derive(QueryableByName)]
struct SqliteIndexColumn {
    /// NULL for an expression.
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

#[derive(QueryableByName)]
struct SqliteForeignKey {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    target: String,
    #[diesel(sql_type = Text)]
    source: String,
    /// NULL when the key names only the target table (its primary key).
    #[diesel(sql_type = Nullable<Text>)]
    target_column: Option<String>,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

fn read_sqlite(c: &mut diesel::SqliteConnection) -> Schema {
    let names = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'",
    )
    .load::<Name>(c)
    .unwrap();
    let mut schema = Schema::new();
    for Name { name: table } in names {
        let mut t = Table::default();
        let mut cols = diesel::sql_query(
            "SELECT name, type AS ty, \"notnull\" AS not_null, pk FROM pragma_table_info(?)",
        )
        .bind::<Text, _>(&table)
        .load::<SqliteColumn>(c)
        .unwrap();
        cols.sort_by_key(|col| col.pk);
        for col in cols {
            if col.pk > 0 {
                t.primary_key.push(col.name.clone());
            }
            let column = Column {
                ty: normalize_type(&col.ty),
                nullable: col.not_null == 0,
            };
            t.columns.insert(col.name, column);
        }
        let indexes = diesel::sql_query(
            "SELECT name, \"unique\" AS is_unique, origin, partial FROM pragma_index_list(?)",
        )
        .bind::<Text, _>(&table)
        .load::<SqliteIndex>(c)
        .unwrap();
        for ix in indexes.into_iter().filter(|ix| ix.origin != "pk") {
            let columns = diesel::sql_query("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                .bind::<Text, _>(&ix.name)
                .load::<SqliteIndexColumn>(c)
                .unwrap()
                .into_iter()
                .map(|col| col.name.unwrap_or_else(|| "<expression>".into()))
                .collect();
            t.indexes.insert(Index {
                name: (ix.origin == "c").then_some(ix.name),
                columns,
                unique: ix.is_unique != 0,
                partial: ix.partial != 0,
            });
        }
        let fks = diesel::sql_query(
            "SELECT id, \"table\" AS target, \"from\" AS source, \"to\" AS target_column, \
             on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        )
        .bind::<Text, _>(&table)
        .load::<SqliteForeignKey>(c)
        .unwrap();
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for fk in fks {
            let entry = by_id.entry(fk.id).or_insert_with(|| ForeignKey {
                columns: vec![],
                target: fk.target.clone(),
                target_columns: vec![],
                on_delete: fk.on_delete.clone(),
            });
            entry.columns.push(fk.source);
            entry
                .target_columns
                .push(fk.target_column.unwrap_or_else(|| "<primary key>".into()));
        }
        t.foreign_keys = by_id.into_values().collect();
        schema.insert(table, t);
    }
    schema
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use diesel::sql_types::Array;

    #[derive(QueryableByName)]
    struct PgColumn {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        data_type: String,
        #[diesel(sql_type = Bool)]
        nullable: bool,
    }

    #[derive(QueryableByName)]
    struct PgIndex {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        index_name: String,
        #[diesel(sql_type = Bool)]
        is_unique: bool,
        #[diesel(sql_type = Bool)]
        is_primary: bool,
        #[diesel(sql_type = Bool)]
        partial: bool,
        #[diesel(sql_type = Bool)]
        from_constraint: bool,
        #[diesel(sql_type = Array<Text>)]
        columns: Vec<String>,
    }

    #[derive(QueryableByName)]
    struct PgForeignKey {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        target: String,
        #[diesel(sql_type = Text)]
        on_delete: String,
        #[diesel(sql_type = Array<Text>)]
        columns: Vec<String>,
        #[diesel(sql_type = Array<Text>)]
        target_columns: Vec<String>,
    }

    /// The column names of attribute numbers, in key order (`$1` the array, `$2` the
    /// table's oid column).
    macro_rules! attnames {
        ($keys:literal, $rel:literal) => {
            concat!(
                "ARRAY(SELECT a.attname::text FROM unnest(",
                $keys,
                ") WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = ",
                $rel,
                " AND a.attnum = k.attnum ORDER BY k.ord)"
            )
        };
    }

    pub(super) fn read_postgres(c: &mut diesel::PgConnection) -> Schema {
        let mut schema = Schema::new();
        let names = diesel::sql_query(
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename <> '__diesel_schema_migrations'",
        )
        .load::<Name>(c)
        .unwrap();
        for Name { name } in names {
            schema.insert(name, Table::default());
        }
        let columns = diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, \
             data_type::text AS data_type, is_nullable = 'YES' AS nullable \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name <> '__diesel_schema_migrations'",
        )
        .load::<PgColumn>(c)
        .unwrap();
        for col in columns {
            let column = Column {
                ty: normalize_type(&col.data_type),
                nullable: col.nullable,
            };
            let t = schema.entry(col.table_name).or_default();
            t.columns.insert(col.column_name, column);
        }
        let indexes = diesel::sql_query(concat!(
            "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
             x.indisunique AS is_unique, x.indisprimary AS is_primary, \
             x.indpred IS NOT NULL AS partial, \
             EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid \
               AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u')) AS from_constraint, ",
            attnames!("x.indkey::int2[]", "x.indrelid"),
            " AS columns \
             FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid \
             JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE t.relnamespace = current_schema()::regnamespace \
             AND t.relname <> '__diesel_schema_migrations'"
        ))
        .load::<PgIndex>(c)
        .unwrap();
        for ix in indexes {
            let t = schema.entry(ix.table_name).or_default();
            if ix.is_primary {
                t.primary_key = ix.columns;
                continue;
            }
            t.indexes.insert(Index {
                name: (!ix.from_constraint).then_some(ix.index_name),
                columns: ix.columns,
                unique: ix.is_unique,
                partial: ix.partial,
            });
        }
        let fks = diesel::sql_query(concat!(
            "SELECT t.relname::text AS table_name, r.relname::text AS target, \
             c.confdeltype::text AS on_delete, ",
            attnames!("c.conkey", "c.conrelid"),
            " AS columns, ",
            attnames!("c.confkey", "c.confrelid"),
            " AS target_columns \
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_class r ON r.oid = c.confrelid \
             WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace"
        ))
        .load::<PgForeignKey>(c)
        .unwrap();
        for fk in fks {
            // In SQLite's words (`pragma_foreign_key_list`).
            let on_delete = match fk.on_delete.as_str() {
                "a" => "NO ACTION",
                "r" => "RESTRICT",
                "c" => "CASCADE",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                other => other,
            };
            let t = schema.entry(fk.table_name).or_default();
            t.foreign_keys.insert(ForeignKey {
                columns: fk.columns,
                target: fk.target,
                target_columns: fk.target_columns,
                on_delete: on_delete.to_owned(),
            });
        }
        schema
    }
}

fn read_schema(conn: &mut DbConn) -> Schema {
    match conn {
        DbConn::Sqlite(c) => read_sqlite(c),
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => pg::read_postgres(c),
    }
}

/// Runs every migration's `down.sql`, newest first.
fn revert_all(conn: &mut DbConn) -> Result<(), String> {
    let reverted = match conn {
        DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => c.revert_all_migrations(super::PG_MIGRATIONS),
    };
    reverted.map(drop).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------- comparing

/// What differs between two schemas, one line each. `full` also compares indexes,
/// unique constraints and foreign keys (`schema.rs` has none of those).
fn differences(left: (&str, &Schema), right: (&str, &Schema), full: bool) -> Vec<String> {
    let ((ln, l), (rn, r)) = (left, right);
    let mut out = vec![];
    for name in l.keys().filter(|n| !r.contains_key(*n)) {
        out.push(format!("table {name}: in {ln}, not in {rn}"));
    }
    for name in r.keys().filter(|n| !l.contains_key(*n)) {
        out.push(format!("table {name}: in {rn}, not in {ln}"));
    }
    for (name, lt) in l {
        let Some(rt) = r.get(name) else { continue };
        for (col, lc) in &lt.columns {
            match rt.columns.get(col) {
                None => out.push(format!("{name}.{col}: in {ln} ({lc}), not in {rn}")),
                Some(rc) if rc != lc => {
                    out.push(format!("{name}.{col}: {lc} in {ln}, {rc} in {rn}"));
                }
                Some(_) => {}
            }
        }
        for (col, rc) in &rt.columns {
            if !lt.columns.contains_key(col) {
                out.push(format!("{name}.{col}: in {rn} ({rc}), not in {ln}"));
            }
        }
        if lt.primary_key != rt.primary_key {
            out.push(format!(
                "{name}: primary key {:?} in {ln}, {:?} in {rn}",
                lt.primary_key, rt.primary_key
            ));
        }
        if !full {
            continue;
        }
        for ix in lt.indexes.difference(&rt.indexes) {
            out.push(format!("{name}: {ix} in {ln}, not in {rn}"));
        }
        for ix in rt.indexes.difference(&lt.indexes) {
            out.push(format!("{name}: {ix} in {rn}, not in {ln}"));
        }
        for fk in lt.foreign_keys.difference(&rt.foreign_keys) {
            out.push(format!("{name}: {fk} in {ln}, not in {rn}"));
        }
        for fk in rt.foreign_keys.difference(&lt.foreign_keys) {
            out.push(format!("{name}: {fk} in {rn}, not in {ln}"));
        }
    }
    out
}

fn assert_same(left: (&str, &Schema), right: (&str, &Schema), full: bool) {
    let diffs = differences(left, right, full);
    assert!(
        diffs.is_empty(),
        "the schema of {} differs from {}'s:\n  {}",
        right.0,
        left.0,
        diffs.join("\n  ")
    );
}

/// Migrates a fresh database up, down (every `down.sql`) and up again, checking that the
/// way down leaves no table and the way back gives the same schema; returns that schema.
fn up_down_up(url: &str, backend: &str) -> Schema {
    let pool = connect(url).unwrap_or_else(|e| panic!("{backend}: migrations up: {e:#}"));
    let mut conn = pool.get().unwrap();
    let first = read_schema(&mut conn);
    assert!(
        !first.is_empty(),
        "{backend}: no tables after the migrations"
    );
    revert_all(&mut conn).unwrap_or_else(|e| panic!("{backend}: a down.sql failed: {e}"));
    let left: Vec<_> = read_schema(&mut conn).into_keys().collect();
    assert!(
        left.is_empty(),
        "{backend}: tables left after every down.sql ran: {left:?}"
    );
    run_migrations(&mut conn)
        .unwrap_or_else(|e| panic!("{backend}: migrations up again after down: {e:#}"));
    let again = read_schema(&mut conn);
    let first_label = format!("{backend} (first up)");
    let again_label = format!("{backend} (up after down)");
    assert_same((&first_label, &first), (&again_label, &again), true);
    first
}

/// Runs every migration up, down and up again on SQLite, and checks the tables, columns
/// (type, nullability) and primary keys they leave against `schema.rs`.
///
/// The comparison of the two backends runs in the PostgreSQL pass only
/// (`TEST_DATABASE_URL=postgres://… ./scripts/test.sh`, which builds with
/// `--features control-plane/postgres`): there the same is done on a fresh PostgreSQL
/// database, which is checked against `schema.rs` too, and the two backends' schemas must
/// then be equal, indexes, unique constraints and foreign keys included. Without
/// `TEST_DATABASE_URL`, only SQLite is checked (against `schema.rs`).
#[test]
fn migrations_give_schema_rs_on_each_backend_and_run_down_and_up_again() {
    let declared = schema_rs();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("schema.sqlite");
    let sqlite = up_down_up(sqlite_path.to_str().unwrap(), "SQLite");
    assert_same(("schema.rs", &declared), ("SQLite", &sqlite), false);

    if std::env::var("TEST_DATABASE_URL")
        .unwrap_or_default()
        .is_empty()
    {
        eprintln!(
            "TEST_DATABASE_URL is not set: SQLite checked against schema.rs; the \
             comparison with PostgreSQL runs in the PostgreSQL pass"
        );
        return;
    }
    let pg = ScratchDb::new(&dir.path().join("unused.sqlite"), "schema");
    let postgres = up_down_up(&pg.url, "PostgreSQL");
    assert_same(("SQLite", &sqlite), ("PostgreSQL", &postgres), true);
    assert_same(("schema.rs", &declared), ("PostgreSQL", &postgres), false);
}

/// The comparison itself: a difference in type, nullability, key, index or foreign key
/// is reported, naming the table and column.
#[test]
fn schema_differences_are_named() {
    let mut a = Schema::new();
    let mut t = Table::default();
    t.columns.insert(
        "n".into(),
        Column {
            ty: "bigint".into(),
            nullable: false,
        },
    );
    t.primary_key = vec!["n".into()];
    a.insert("t".into(), t.clone());
    let mut b = a.clone();
    assert!(differences(("a", &a), ("b", &b), true).is_empty());

    let bt = b.get_mut("t").unwrap();
    bt.columns.insert(
        "n".into(),
        Column {
            ty: normalize_type("INTEGER"),
            nullable: true,
        },
    );
    bt.indexes.insert(Index {
        name: None,
        columns: vec!["n".into()],
        unique: true,
        partial: false,
    });
    b.insert("u".into(), Table::default());
    let d = differences(("a", &a), ("b", &b), true);
    assert!(
        d.contains(&"t.n: bigint NOT NULL in a, integer NULL in b".to_owned()),
        "{d:?}"
    );
    assert!(
        d.contains(&"t: unique constraint (n) in b, not in a".to_owned()),
        "{d:?}"
    );
    assert!(d.contains(&"table u: in b, not in a".to_owned()), "{d:?}");
    // schema.rs has no indexes: they are not compared with it.
    assert_eq!(differences(("a", &a), ("b", &b), false).len(), 2, "{d:?}");
    assert_eq!(normalize_type("character varying(20)"), "text");
    assert!(normalize_type("NUMERIC").starts_with("unknown"));
}
