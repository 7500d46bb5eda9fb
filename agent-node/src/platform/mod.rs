//! Platform: what the node needs to run that knows nothing of its business — run
//! arguments and file names, private files, the master key and sealed files, the SQLite
//! database, retry backoff, and the clock next to the CP's. Imports nothing from
//! `domain`, `engine`, `web` or `uplink`.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod files;
pub mod keys;
pub mod store;
