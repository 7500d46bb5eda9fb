//! Appointments (issue 16): services, optional staff, weekly opening hours and closed
//! days in the business's IANA time zone, free slots, and bookings that can never be
//! made twice.
//!
//! - **Settings** (services, staff, hours, closed days, zone) are the business's own
//!   configuration, stored in clear like the agents' settings.
//! - **Bookings are content**: the name, email, phone and note the customer gives are
//!   sealed under the contact's data key (associated data `booking:{id}`), the row
//!   belongs to the contact (`ON DELETE CASCADE`), so erasing the contact erases the
//!   booking; they go into exports and follow the messages' retention period. The
//!   control plane never sees them.
//! - **No double booking, by the database**: a booking holds one row per 5-minute cell
//!   it covers in `appt_cells`, whose primary key is (staff, cell). Two bookings of the
//!   same staff member that overlap by any amount, whatever their lengths, would share a
//!   cell, so the second insert fails with a constraint error; the whole booking is
//!   written in one `IMMEDIATE` transaction and rolled back then. The node's single
//!   connection serialises writers as well, but the guarantee does not depend on it.
//! - A staff id of `""` is the business itself: with no staff configured, one calendar.
//!   Staff members have their own weekly hours (the business's when they have none) and
//!   closed days (besides the business's), and offer the services chosen for them (every
//!   service when none is chosen, `appt_staff_services`).

mod bookings;
mod flow;
pub mod ics;
pub mod link;
mod settings;
pub mod slots;
#[cfg(test)]
mod tests;

pub use bookings::{
    delete_ended_before, BookRequest, Booking, BookingDetails, BookingStatus, Reminder, Slot,
    REMIND_EARLY_SECS, REMIND_LATE_SECS,
};
pub use flow::{Flow, FlowStep};
pub use settings::{Closure, Service, Settings, Staff};

use crate::domain::content::{Content, ContentError};
use crate::platform::keys::MasterKey;
use crate::platform::store::{Store, StoreError};
use rusqlite::Connection;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Migration adding the appointment tables (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE appt_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    time_zone TEXT NOT NULL,
    step_minutes INTEGER NOT NULL,
    notice_minutes INTEGER NOT NULL,
    horizon_days INTEGER NOT NULL
);
CREATE TABLE appt_services (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL
        CHECK (duration_minutes > 0 AND duration_minutes <= 720 AND duration_minutes % 5 = 0),
    price TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE TABLE appt_staff (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE appt_hours (
    id INTEGER PRIMARY KEY,
    staff_id TEXT NOT NULL DEFAULT '',
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_minute INTEGER NOT NULL,
    end_minute INTEGER NOT NULL,
    CHECK (start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440)
);
CREATE TABLE appt_closures (
    staff_id TEXT NOT NULL DEFAULT '',
    day TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (staff_id, day)
);
CREATE TABLE appt_bookings (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    staff_id TEXT NOT NULL DEFAULT '',
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    conversation_id TEXT,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    details_ct BLOB NOT NULL,
    reminded_24h INTEGER NOT NULL DEFAULT 0,
    reminded_2h INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (starts_at % 300 = 0 AND ends_at > starts_at)
);
CREATE INDEX appt_bookings_start ON appt_bookings (starts_at);
CREATE INDEX appt_bookings_contact ON appt_bookings (contact_id);
CREATE TABLE appt_cells (
    staff_id TEXT NOT NULL,
    cell INTEGER NOT NULL,
    booking_id TEXT NOT NULL REFERENCES appt_bookings (id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, cell)
);
CREATE INDEX appt_cells_booking ON appt_cells (booking_id);
CREATE TABLE appt_flows (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    service_id TEXT,
    day TEXT,
    starts_at INTEGER,
    details_ct BLOB,
    updated_at INTEGER NOT NULL
);
"#;

/// Migration adding which staff member offers which service: a staff member with no row
/// offers every service (as before it existed); with rows, only those.
pub const STAFF_SERVICES_SCHEMA: &str = r#"
CREATE TABLE appt_staff_services (
    staff_id TEXT NOT NULL REFERENCES appt_staff (id) ON DELETE CASCADE,
    service_id TEXT NOT NULL REFERENCES appt_services (id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, service_id)
);
"#;

/// Migration adding the hourly booking counts (`appt_counts`): bookings made, moved and
/// cancelled per UTC hour, counted by triggers on `appt_bookings` in the same transaction
/// as the change (the console's test channel is not counted). Counts only: no id, no
/// time of an appointment, no service.
pub const COUNTS_SCHEMA: &str = r#"
CREATE TABLE appt_counts (
    hour INTEGER PRIMARY KEY,
    booked INTEGER NOT NULL DEFAULT 0,
    rescheduled INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER appt_count_booked AFTER INSERT ON appt_bookings
WHEN NEW.status = 'booked'
    AND (SELECT channel FROM contacts WHERE id = NEW.contact_id) <> 'test'
BEGIN
    INSERT INTO appt_counts (hour, booked)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER) / 3600 * 3600, 1)
    ON CONFLICT (hour) DO UPDATE SET booked = booked + 1;
END;
CREATE TRIGGER appt_count_rescheduled AFTER UPDATE OF starts_at ON appt_bookings
WHEN OLD.starts_at <> NEW.starts_at AND NEW.status = 'booked'
    AND (SELECT channel FROM contacts WHERE id = NEW.contact_id) <> 'test'
BEGIN
    INSERT INTO appt_counts (hour, rescheduled)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER) / 3600 * 3600, 1)
    ON CONFLICT (hour) DO UPDATE SET rescheduled = rescheduled + 1;
END;
CREATE TRIGGER appt_count_cancelled AFTER UPDATE OF status ON appt_bookings
WHEN OLD.status = 'booked' AND NEW.status = 'cancelled'
    AND (SELECT channel FROM contacts WHERE id = NEW.contact_id) <> 'test'
BEGIN
    INSERT INTO appt_counts (hour, cancelled)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER) / 3600 * 3600, 1)
    ON CONFLICT (hour) DO UPDATE SET cancelled = cancelled + 1;
END;
"#;

/// The booking counts a report carries at `now`: the current hour and the two before it
/// (as the message counts), oldest first.
pub fn report_counts(
    store: &Store,
    now: i64,
) -> std::result::Result<Vec<outpost_protocol::BookingCount>, StoreError> {
    let since_hour = now / 3600 * 3600 - 2 * 3600;
    store.with(|c| {
        let mut st = c.prepare(
            "SELECT hour, booked, rescheduled, cancelled FROM appt_counts
             WHERE hour >= ?1 ORDER BY hour",
        )?;
        let rows = st.query_map([since_hour], |r| {
            Ok(outpost_protocol::BookingCount {
                hour: r.get(0)?,
                booked: r.get(1)?,
                rescheduled: r.get(2)?,
                cancelled: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

/// Seconds per cell of `appt_cells`: bookings start and end on 5-minute boundaries.
pub const CELL_SECS: i64 = 300;

/// Errors of appointments. Messages never quote content; `Invalid` and `Taken` are
/// safe to show to users.
#[derive(Debug, thiserror::Error)]
pub enum AppointmentError {
    /// Sealing or opening contact details failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A value out of range; the message is for the user.
    #[error("{0}")]
    Invalid(&'static str),
    /// No such service, staff member or booking.
    #[error("not found")]
    NotFound,
    /// The node database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The slot was booked by someone else first (or is no longer offered); other free
    /// slots of the same service, soonest first.
    #[error("that time is no longer available")]
    Taken(Vec<Slot>),
}

impl From<rusqlite::Error> for AppointmentError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

type Result<T> = std::result::Result<T, AppointmentError>;

/// The appointment book over the node database. Cheap to clone.
#[derive(Clone)]
pub struct Appointments {
    store: Arc<Store>,
    content: Content,
    link_key: Arc<Zeroizing<[u8; 32]>>,
}

/// The signed links of one booking, absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookingLinks {
    /// The `.ics` file.
    pub ics: String,
    /// The page that cancels it.
    pub cancel: String,
    /// The page that moves it.
    pub reschedule: String,
}

impl std::fmt::Debug for Appointments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Appointments(***)")
    }
}

impl Appointments {
    /// The book over `store`, sealing contact details with `content`; links are signed
    /// with a key derived from `master` for them alone.
    pub fn new(store: Arc<Store>, content: Content, master: &MasterKey) -> Self {
        Self {
            store,
            content,
            link_key: Arc::new(master.derive(link::KEY_LABEL)),
        }
    }

    /// The signed links of `booking` under `base_url` (the node's public URL) for this
    /// node; they expire when the appointment starts (the `.ics` a week after it ends).
    pub fn links(&self, base_url: &str, node_id: &str, booking: &Booking) -> BookingLinks {
        let base = base_url.trim_end_matches('/');
        let make = |purpose: link::Purpose, expires: i64, path: &str| {
            format!(
                "{base}/appointments/{}/{path}?{}",
                booking.id,
                link::query(&self.link_key[..], node_id, purpose, &booking.id, expires)
            )
        };
        BookingLinks {
            ics: make(
                link::Purpose::Event,
                booking.ends_at + 7 * 86_400,
                "booking.ics",
            ),
            cancel: make(link::Purpose::Cancel, booking.starts_at, "cancel"),
            reschedule: make(link::Purpose::Reschedule, booking.starts_at, "reschedule"),
        }
    }

    /// The feed URL of a staff member (`""`: the business), valid a year from `now`.
    pub fn feed_link(&self, base_url: &str, node_id: &str, staff_id: &str, now: i64) -> String {
        let expires = now + 365 * 86_400;
        let who = if staff_id.is_empty() { "all" } else { staff_id };
        format!(
            "{}/appointments/feed/{who}/calendar.ics?{}",
            base_url.trim_end_matches('/'),
            link::query(
                &self.link_key[..],
                node_id,
                link::Purpose::Feed,
                staff_id,
                expires
            )
        )
    }

    /// Whether a link is genuine and unexpired at `now`.
    pub fn link_ok(
        &self,
        node_id: &str,
        purpose: link::Purpose,
        subject: &str,
        expires: i64,
        sig: &str,
        now: i64,
    ) -> bool {
        now < expires && link::verify(&self.link_key[..], node_id, purpose, subject, expires, sig)
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let result = self.store.with(|c| Ok(f(c)))?;
        if let Err(AppointmentError::Store(e)) = &result {
            self.store.note_if_full(e);
        }
        result
    }
}
