//! Domain: the node's data and its rules — contacts and conversations, appointments, the knowledge
//! base, exports, retention and sealed secrets. Imports only `platform` (and other
//! domain modules); never `engine`, `web` or `uplink`.

pub mod appointments;
pub mod content;
pub mod exports;
pub mod kb;
pub mod retention;
pub mod secrets;
