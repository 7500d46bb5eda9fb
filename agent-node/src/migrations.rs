//! The node database's migrations, in the order they were released. Wiring, like
//! `node.rs`: each layer owns the SQL of its own tables, and only this list sees them all.
//! Append-only: never edit a released migration, add a new one.

use crate::platform::store::{self, Store};

/// Every migration of `node.db`, oldest first; `PRAGMA user_version` counts the applied.
pub const MIGRATIONS: &[&str] = &[
    store::BASE_SCHEMA,
    crate::domain::content::SCHEMA,
    crate::domain::kb::SCHEMA,
    crate::domain::secrets::SCHEMA,
    crate::domain::content::ERASURES_SCHEMA,
    crate::web::channels::SCHEMA,
    crate::domain::exports::SCHEMA,
    crate::domain::retention::SCHEMA,
    crate::domain::content::WAITING_SCHEMA,
    crate::domain::content::CONTACT_DETAILS_SCHEMA,
    crate::domain::kb::SECTIONS_SCHEMA,
    crate::web::channels::SENDING_SCHEMA,
    crate::domain::api_tokens::SCHEMA,
    crate::domain::webhooks::SCHEMA,
    crate::domain::appointments::SCHEMA,
    crate::domain::kb::website::SOURCES_SCHEMA,
    crate::domain::ai_usage::SCHEMA,
    crate::web::channels::twilio::SCHEMA,
    crate::domain::content::MEDIA_SCHEMA,
    crate::web::channels::wa_templates::TEMPLATES_SCHEMA,
    crate::domain::content::FOLLOWUP_HOLDS_SCHEMA,
    crate::domain::appointments::STAFF_SERVICES_SCHEMA,
    crate::domain::webhooks::APPOINTMENT_EVENTS_SCHEMA,
    crate::domain::appointments::COUNTS_SCHEMA,
    crate::web::channels::voice_takeover::SCHEMA,
    crate::web::channels::recording::SCHEMA,
    crate::web::channels::call_counts::SCHEMA,
    crate::domain::content::FOLLOWUP_TEMPLATES_SCHEMA,
];

impl Store {
    /// Opens (creating, mode 0600) and migrates the node database with `MIGRATIONS`.
    /// Defined here rather than in `platform::store` so that the platform layer names no
    /// table of the layers above it.
    pub fn open(path: &std::path::Path) -> store::Result<Self> {
        Self::open_with(path, MIGRATIONS)
    }
}
