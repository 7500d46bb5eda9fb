//! The foundation every domain stands on, knowing none of them: the database (pool,
//! schema, embedded migrations for SQLite and PostgreSQL), the mail transport, and the
//! in-process wake-up of nodes' command long-polls, the revocation generation that
//! invalidates the gateway's cached certificate verdicts.

pub mod db;
pub mod mail;
pub mod revocations;
pub mod schema;
pub mod wake;
