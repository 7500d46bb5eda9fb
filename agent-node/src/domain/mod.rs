//! Domain: the node's data and its rules — contacts and conversations, the knowledge
//! base, exports, retention and sealed secrets. Imports only `platform` (and other
//! domain modules); never `engine`, `web` or `uplink`.

pub mod ai_usage;
pub mod content;
pub mod exports;
pub mod kb;
pub mod retention;
pub mod secrets;
