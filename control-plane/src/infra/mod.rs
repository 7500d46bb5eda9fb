//! The foundation every domain stands on, knowing none of them: the database (pool,
//! schema, embedded migrations for SQLite and PostgreSQL), the mail transport, the
//! wake-up of nodes' command long-polls (across replicas on PostgreSQL), which replica
//! leads the periodic sweeps, the revocation generation that invalidates the gateway's
//! cached certificate verdicts, and the check that a replica's keys are the database's.

pub mod db;
pub mod keys;
pub mod leader;
pub mod mail;
pub mod revocations;
pub mod schema;
pub mod wake;
