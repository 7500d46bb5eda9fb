//! Statements written as SQL text with `?` binds, for the hot paths where diesel's query
//! builder costs more than the query (issue 18, B1).
//!
//! diesel never caches an `UPDATE`, an upsert or an `sql_query` in its prepared-statement
//! cache (they could stand for unboundedly many texts), so each one is built as SQL text
//! and prepared again every time it runs. A [`Fixed`] statement's text is a constant of
//! its type, so diesel caches it by type: built and prepared once per connection, then
//! only bound and run. A [`Dynamic`] statement's text is built at run time from a small,
//! bounded set (a multi-row upsert of at most a constant number of rows), and diesel
//! caches it by its text: each text is prepared once per connection.
//!
//! `?` stands for a bind on both backends; diesel writes `$1, $2, …` for PostgreSQL. The SQL
//! text must be plain enough to hold no `?` of its own (no string literals with one).

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryResult;
use std::borrow::Cow;
use std::marker::PhantomData;

/// A bind value of a hand-written statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind<'a> {
    /// `BIGINT NOT NULL`
    Int(i64),
    /// `BIGINT` (nullable)
    OptInt(Option<i64>),
    /// `TEXT`
    Text(Cow<'a, str>),
}

impl From<i64> for Bind<'_> {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}

impl From<Option<i64>> for Bind<'_> {
    fn from(v: Option<i64>) -> Self {
        Bind::OptInt(v)
    }
}

impl<'a> From<&'a str> for Bind<'a> {
    fn from(v: &'a str) -> Self {
        Bind::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Bind<'_> {
    fn from(v: String) -> Self {
        Bind::Text(Cow::Owned(v))
    }
}

/// A statement whose SQL text is fixed: one type, one text.
pub trait FixedSql: 'static {
    /// The text, with one `?` per bind.
    const SQL: &'static str;
}

/// A run of [`FixedSql`] `S` with its binds; cached by diesel by type.
#[derive(Debug)]
pub struct Fixed<'a, S> {
    binds: Vec<Bind<'a>>,
    sql: PhantomData<S>,
}

impl<'a, S: FixedSql> Fixed<'a, S> {
    /// `S` with `binds`, one per `?` of its text, in order.
    pub fn new(binds: Vec<Bind<'a>>) -> Self {
        debug_assert_eq!(S::SQL.matches('?').count(), binds.len(), "{}", S::SQL);
        Self {
            binds,
            sql: PhantomData,
        }
    }
}

impl<S: FixedSql> QueryId for Fixed<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S, DB> QueryFragment<DB> for Fixed<'_, S>
where
    S: FixedSql,
    DB: Backend,
    DB: diesel::sql_types::HasSqlType<BigInt> + diesel::sql_types::HasSqlType<Text>,
    i64: ToSql<BigInt, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        walk(S::SQL, &self.binds, out)
    }
}

impl<S, Conn> diesel::RunQueryDsl<Conn> for Fixed<'_, S> {}

/// A statement whose text is built at run time (e.g. one row of binds per item), cached
/// by diesel by its text: each distinct text is prepared once per connection and kept
/// for the connection's life. **Its texts must come from a small bounded set**, e.g. a
/// row count below a constant; a text that could take unboundedly many values would grow
/// every connection's cache (and, on PostgreSQL, the server's prepared statements) without
/// end.
#[derive(Debug)]
pub struct Dynamic<'a> {
    sql: String,
    binds: Vec<Bind<'a>>,
}

impl<'a> Dynamic<'a> {
    /// `sql` with `binds`, one per `?`, in order.
    pub fn new(sql: String, binds: Vec<Bind<'a>>) -> Self {
        debug_assert_eq!(sql.matches('?').count(), binds.len(), "{sql}");
        Self { sql, binds }
    }
}

impl QueryId for Dynamic<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for Dynamic<'_>
where
    DB: Backend,
    DB: diesel::sql_types::HasSqlType<BigInt> + diesel::sql_types::HasSqlType<Text>,
    i64: ToSql<BigInt, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        walk(&self.sql, &self.binds, out)
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for Dynamic<'_> {}

fn walk<'b, DB>(
    sql: &'b str,
    binds: &'b [Bind<'_>],
    mut out: AstPass<'_, 'b, DB>,
) -> QueryResult<()>
where
    DB: Backend,
    DB: diesel::sql_types::HasSqlType<BigInt> + diesel::sql_types::HasSqlType<Text>,
    i64: ToSql<BigInt, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    str: ToSql<Text, DB>,
{
    let mut binds = binds.iter();
    let mut parts = sql.split('?');
    if let Some(first) = parts.next() {
        out.push_sql(first);
    }
    for part in parts {
        match binds.next() {
            Some(Bind::Int(v)) => out.push_bind_param::<BigInt, i64>(v)?,
            Some(Bind::OptInt(v)) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(v)?,
            Some(Bind::Text(v)) => out.push_bind_param::<Text, str>(v)?,
            None => {
                return Err(diesel::result::Error::QueryBuilderError(
                    "a statement has more `?` than binds".into(),
                ))
            }
        }
        out.push_sql(part);
    }
    Ok(())
}

/// `(?, ?, …)`: one row of `n` binds, for a `VALUES` list.
pub fn row(n: usize) -> String {
    let mut s = String::with_capacity(n * 3 + 2);
    s.push('(');
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s.push(')');
    s
}
