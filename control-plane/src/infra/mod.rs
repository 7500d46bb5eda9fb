//! The foundation every domain stands on, knowing none of them: the database (pool,
//! schema, embedded migrations for SQLite and PostgreSQL) and the mail transport.

pub mod db;
pub mod mail;
pub mod schema;
