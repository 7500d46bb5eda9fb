//! Outbound webhooks: the node tells the customer's own systems what happened
//! (`conversation.created`, `message.created`, `handoff.requested`, `contact.updated`,
//! `appointment.booked`, `appointment.rescheduled`, `appointment.cancelled`),
//! signed as the Standard Webhooks specification says ([`sign`]), retried with backoff,
//! logged for the console.
//!
//! **A durable queue filled by the database itself.** Every event is a row in
//! `webhook_deliveries`, one per endpoint that subscribed, inserted by a trigger on the
//! content tables in the same transaction as the write that caused it. So no code path
//! that stores a message, opens a conversation, asks for the team or edits a contact —
//! today's or a future one — can forget to emit, and a crash can neither lose an event
//! (it commits with its cause) nor invent one. This migration is the one place outside
//! `content` that names the content tables, for that reason. The queue holds ids only:
//! the payload is built when it is sent, from the content as it is then, so nothing
//! unsealed rests in `node.db`, and an event whose subject was erased meanwhile is
//! dropped rather than sent ([`deliver`]).
//!
//! Payloads leave the node for the endpoint the customer configured, and nothing about
//! them goes to the CP (docs/PRIVACY.md). Endpoint URLs pass the outbound-URL policy
//! (public https only) when saved and again when connecting.

pub mod deliver;
pub mod sign;

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store, StoreError};
use outpost_common::outbound::Policy;
use rusqlite::{params, OptionalExtension as _};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Migration adding the endpoints, the delivery queue and the triggers that fill it (see
/// `MIGRATIONS` in `src/migrations.rs`). `events` is space-separated with a space at
/// each end, so `instr(events, ' x ')` matches whole names. Conversations on the
/// console's "Try it here" channel (`test`) emit nothing.
pub const SCHEMA: &str = r#"
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_ct BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    finished_at INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at DESC);
CREATE TRIGGER webhook_conversation_created AFTER INSERT ON conversations
WHEN NEW.channel <> 'test'
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'conversation.created', NEW.id,
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' conversation.created ') > 0;
END;
CREATE TRIGGER webhook_message_created AFTER INSERT ON messages
WHEN (SELECT channel FROM conversations WHERE id = NEW.conversation_id) <> 'test'
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'message.created', CAST(NEW.id AS TEXT),
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' message.created ') > 0;
END;
CREATE TRIGGER webhook_handoff_requested AFTER UPDATE OF waiting_since ON conversations
WHEN OLD.waiting_since IS NULL AND NEW.waiting_since IS NOT NULL AND NEW.channel <> 'test'
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'handoff.requested', NEW.id,
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' handoff.requested ') > 0;
END;
CREATE TRIGGER webhook_contact_updated
AFTER UPDATE OF name_ct, email_ct, phone_ct, stage, score, tags_ct ON contacts
WHEN NEW.channel <> 'test' AND (OLD.name_ct IS NOT NEW.name_ct OR OLD.email_ct IS NOT NEW.email_ct
    OR OLD.phone_ct IS NOT NEW.phone_ct OR OLD.stage IS NOT NEW.stage
    OR OLD.score IS NOT NEW.score OR OLD.tags_ct IS NOT NEW.tags_ct)
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'contact.updated', NEW.id,
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' contact.updated ') > 0;
END;
"#;

/// Migration adding the appointment events: triggers on `appt_bookings` queue
/// `appointment.booked` (a booking is made), `appointment.rescheduled` (its time moved
/// while booked) and `appointment.cancelled`, with the booking id as subject; bookings
/// of the console's test channel emit nothing.
pub const APPOINTMENT_EVENTS_SCHEMA: &str = r#"
CREATE TRIGGER webhook_appointment_booked AFTER INSERT ON appt_bookings
WHEN NEW.status = 'booked'
    AND (SELECT channel FROM contacts WHERE id = NEW.contact_id) <> 'test'
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'appointment.booked', NEW.id,
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' appointment.booked ') > 0;
END;
CREATE TRIGGER webhook_appointment_rescheduled AFTER UPDATE OF starts_at ON appt_bookings
WHEN OLD.starts_at <> NEW.starts_at AND NEW.status = 'booked'
    AND (SELECT channel FROM contacts WHERE id = NEW.contact_id) <> 'test'
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'appointment.rescheduled', NEW.id,
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' appointment.rescheduled ') > 0;
END;
CREATE TRIGGER webhook_appointment_cancelled AFTER UPDATE OF status ON appt_bookings
WHEN OLD.status = 'booked' AND NEW.status = 'cancelled'
    AND (SELECT channel FROM contacts WHERE id = NEW.contact_id) <> 'test'
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event, subject, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), e.id, 'appointment.cancelled', NEW.id,
           CAST(strftime('%s', 'now') AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)
    FROM webhook_endpoints e WHERE instr(e.events, ' appointment.cancelled ') > 0;
END;
"#;

/// Most endpoints a node keeps.
pub const MAX_ENDPOINTS: i64 = 10;
/// Longest endpoint URL, characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Delivery-log rows kept once finished (the newest).
pub const LOG_KEEP: i64 = 1000;

/// An event an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An appointment was booked.
    AppointmentBooked,
    /// A booked appointment was cancelled.
    AppointmentCancelled,
    /// A booked appointment moved to another time.
    AppointmentRescheduled,
    /// A contact's name, email, phone, stage, score or tags changed.
    ContactUpdated,
    /// A conversation was opened.
    ConversationCreated,
    /// A customer asked for a person (the conversation waits for the team).
    HandoffRequested,
    /// A message was stored (from the contact, the assistant, the team or the system).
    MessageCreated,
}

impl Event {
    /// Every event, in the order the console lists them.
    pub const ALL: [Event; 7] = [
        Event::ConversationCreated,
        Event::MessageCreated,
        Event::HandoffRequested,
        Event::ContactUpdated,
        Event::AppointmentBooked,
        Event::AppointmentRescheduled,
        Event::AppointmentCancelled,
    ];

    /// The event's `type` in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::AppointmentBooked => "appointment.booked",
            Event::AppointmentCancelled => "appointment.cancelled",
            Event::AppointmentRescheduled => "appointment.rescheduled",
            Event::ContactUpdated => "contact.updated",
            Event::ConversationCreated => "conversation.created",
            Event::HandoffRequested => "handoff.requested",
            Event::MessageCreated => "message.created",
        }
    }

    /// The event named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// A configured endpoint (its secret stays sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Endpoint id (UUID).
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// What it receives.
    pub events: Vec<Event>,
    /// CP user id of who added it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One row of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `webhook-id` (`msg_` + this id), the same on every attempt.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The endpoint's URL.
    pub url: String,
    /// The event's type.
    pub event: String,
    /// `pending`, `delivered`, `failed` (gave up) or `dropped` (its subject was erased).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: i64,
    /// HTTP status of the last attempt, if it got an answer.
    pub last_status: Option<i64>,
    /// Why the last attempt failed (a short code, never a response body).
    pub last_error: Option<String>,
}

/// Errors of the webhook store.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A value a user entered is refused; the message is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// A stored secret does not decrypt (wrong master key or a damaged row).
    #[error("a stored webhook secret could not be decrypted")]
    Crypto,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for WebhookError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

type Result<T> = std::result::Result<T, WebhookError>;

/// The endpoints and their delivery queue. Synchronous (use `web::block` or
/// `spawn_blocking` from async code).
#[derive(Clone)]
pub struct Webhooks {
    store: Arc<Store>,
    secret_key: Arc<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhooks(***)")
    }
}

fn endpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Endpoint> {
    let events: String = r.get(2)?;
    Ok(Endpoint {
        id: r.get(0)?,
        url: r.get(1)?,
        events: events.split(' ').filter_map(Event::parse).collect(),
        created_by: r.get(3)?,
        created_at: r.get(4)?,
    })
}

impl Webhooks {
    /// Over `store`, secrets sealed under a key derived from `master`.
    pub fn new(store: Arc<Store>, master: &MasterKey) -> Self {
        Self {
            store,
            secret_key: Arc::new(master.derive("webhook-secrets")),
        }
    }

    /// Adds an endpoint; returns it and its signing secret (`whsec_…`), shown once.
    /// The URL must pass `policy` (public https; loopback only when the operator allows
    /// local addresses).
    pub fn add_endpoint(
        &self,
        url: &str,
        events: &[Event],
        policy: Policy,
        actor: &str,
    ) -> Result<(Endpoint, String)> {
        let url = url.trim();
        if url.chars().count() > MAX_URL_CHARS {
            return Err(WebhookError::Invalid(
                "The URL is longer than 2,048 characters.".into(),
            ));
        }
        let checked = policy
            .check(url)
            .map_err(|r| WebhookError::Invalid(format!("This URL cannot receive webhooks. {r}")))?;
        if events.is_empty() {
            return Err(WebhookError::Invalid("Choose at least one event.".into()));
        }
        let mut events = events.to_vec();
        events.dedup();
        let secret = outpost_crypto::random_bytes::<24>();
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = outpost_crypto::aead_seal(&self.secret_key, &secret, id.as_bytes());
        let list = format!(
            " {} ",
            events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let now = store::now();
        let endpoint = Endpoint {
            id,
            url: checked.to_string(),
            events,
            created_by: actor.to_owned(),
            created_at: now,
        };
        let added = self.store.with(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM webhook_endpoints", [], |r| r.get(0))?;
            if n >= MAX_ENDPOINTS {
                return Ok(false);
            }
            c.execute(
                "INSERT INTO webhook_endpoints (id, url, events, secret_ct, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![endpoint.id, endpoint.url, list, sealed, actor, now],
            )?;
            Ok(true)
        })?;
        if !added {
            return Err(WebhookError::Invalid(
                "This node has 10 endpoints: remove one first.".into(),
            ));
        }
        Ok((endpoint, sign::format_secret(&secret)))
    }

    /// Every endpoint, oldest first.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        Ok(self.store.with(|c| {
            let mut st = c.prepare(
                "SELECT id, url, events, created_by, created_at FROM webhook_endpoints
                 ORDER BY created_at, rowid",
            )?;
            let rows = st.query_map([], endpoint_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?)
    }

    /// Removes an endpoint and its queue; `false` when there is none.
    pub fn remove_endpoint(&self, id: &str) -> Result<bool> {
        Ok(self
            .store
            .with(|c| Ok(c.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id])? > 0))?)
    }

    /// An endpoint's URL and signing secret.
    pub(crate) fn target(&self, endpoint_id: &str) -> Result<Option<(String, Vec<u8>)>> {
        let row: Option<(String, Vec<u8>)> = self.store.with(|c| {
            Ok(c.query_row(
                "SELECT url, secret_ct FROM webhook_endpoints WHERE id = ?1",
                [endpoint_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        row.map(|(url, ct)| {
            outpost_crypto::aead_open(&self.secret_key, &ct, endpoint_id.as_bytes())
                .map(|s| (url, s))
                .map_err(|_| WebhookError::Crypto)
        })
        .transpose()
    }

    /// A booking as appointment events carry it: ids, service, staff, times and status;
    /// the customer's name and details stay sealed (they are the contact's, which
    /// `contact.updated` and the API give). `None` when the booking is gone.
    pub(crate) fn appointment_json(&self, id: &str) -> Result<Option<serde_json::Value>> {
        Ok(self.store.with(|c| {
            Ok(c.query_row(
                "SELECT b.id, b.service_id, COALESCE(s.name, ''), b.staff_id, COALESCE(t.name, ''),
                        b.contact_id, b.conversation_id, b.starts_at, b.ends_at, b.status,
                        b.created_at, b.updated_at
                 FROM appt_bookings b LEFT JOIN appt_services s ON s.id = b.service_id
                      LEFT JOIN appt_staff t ON t.id = b.staff_id
                 WHERE b.id = ?1",
                [id],
                |r| {
                    Ok(serde_json::json!({
                        "id": r.get::<_, String>(0)?,
                        "service_id": r.get::<_, String>(1)?,
                        "service_name": r.get::<_, String>(2)?,
                        "staff_id": r.get::<_, String>(3)?,
                        "staff_name": r.get::<_, String>(4)?,
                        "contact_id": r.get::<_, String>(5)?,
                        "conversation_id": r.get::<_, Option<String>>(6)?,
                        "starts_at": r.get::<_, i64>(7)?,
                        "ends_at": r.get::<_, i64>(8)?,
                        "status": r.get::<_, String>(9)?,
                        "created_at": r.get::<_, i64>(10)?,
                        "updated_at": r.get::<_, i64>(11)?,
                    }))
                },
            )
            .optional()?)
        })?)
    }

    /// The delivery log, newest first, at most `limit` rows.
    pub fn log(&self, limit: usize) -> Result<Vec<Delivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self.store.with(|c| {
            let mut st = c.prepare(
                "SELECT d.id, d.endpoint_id, e.url, d.event, d.status, d.attempts, d.created_at,
                        d.next_attempt_at, d.last_status, d.last_error
                 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 ORDER BY d.created_at DESC, d.rowid DESC LIMIT ?1",
            )?;
            let rows = st.query_map([limit], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    endpoint_id: r.get(1)?,
                    url: r.get(2)?,
                    event: r.get(3)?,
                    status: r.get(4)?,
                    attempts: r.get(5)?,
                    created_at: r.get(6)?,
                    next_attempt_at: r.get(7)?,
                    last_status: r.get(8)?,
                    last_error: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?)
    }

    /// Pending deliveries due at `now`, oldest first: `(id, endpoint, event, subject,
    /// created_at, attempts)`.
    pub(crate) fn due(&self, now: i64, limit: i64) -> Result<Vec<deliver::Due>> {
        Ok(self.store.with(|c| {
            let mut st = c.prepare(
                "SELECT id, endpoint_id, event, subject, created_at, attempts
                 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, rowid LIMIT ?2",
            )?;
            let rows = st.query_map(params![now, limit], |r| {
                Ok(deliver::Due {
                    id: r.get(0)?,
                    endpoint_id: r.get(1)?,
                    event: r.get(2)?,
                    subject: r.get(3)?,
                    created_at: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?)
    }

    /// Records an attempt's outcome: `status` the new state, `next` when to try again
    /// (pending only), the answer's HTTP status or a short error code.
    pub(crate) fn record(
        &self,
        id: &str,
        status: &str,
        next: Option<i64>,
        http_status: Option<u16>,
        error: Option<&str>,
    ) -> Result<()> {
        let now = store::now();
        self.store.with(|c| {
            c.execute(
                "UPDATE webhook_deliveries
                 SET status = ?2, attempts = attempts + 1, next_attempt_at = COALESCE(?3, next_attempt_at),
                     last_status = ?4, last_error = ?5,
                     finished_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?6 END
                 WHERE id = ?1",
                params![id, status, next, http_status, error, now],
            )?;
            // The log keeps the newest finished rows; pending ones always stay.
            c.execute(
                "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND rowid NOT IN (
                     SELECT rowid FROM webhook_deliveries WHERE status <> 'pending'
                     ORDER BY created_at DESC, rowid DESC LIMIT ?1)",
                [LOG_KEEP],
            )?;
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
