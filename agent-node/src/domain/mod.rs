//! Domain: the node's data and its rules — contacts and conversations, appointments, the
//! knowledge base, exports, retention, sealed secrets, the API tokens and the outbound
//! webhooks' queue. Imports only `platform` (and other domain modules); never `engine`,
//! `web` or `uplink`.

pub mod ai_usage;
pub mod api_tokens;
pub mod appointments;
pub mod content;
pub mod exports;
pub mod kb;
pub mod retention;
pub mod secrets;
pub mod webhooks;
