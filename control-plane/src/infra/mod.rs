//! The foundation every domain stands on, knowing none of them: the database (pool,
//! schema, embedded migrations for SQLite and PostgreSQL), the mail transport, the
//! wake-up of nodes' command long-polls (across replicas on PostgreSQL), which replica
//! leads the periodic sweeps, and the revocation generation that invalidates the
//! gateway's cached certificate verdicts.

pub mod db;
pub mod leader;
pub mod mail;
pub mod revocations;
pub mod schema;
pub mod wake;
