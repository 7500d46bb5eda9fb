//! Retention: how long the node keeps each class of data, and the daily sweep that
//! applies it (issue 6, DESIGN §3).
//!
//! - **Messages** older than the period are deleted (on by default, 365 days).
//! - **Contacts** with no activity within the period are erased like "Erase this
//!   contact" (crypto-shredded, with an erasure record by `retention`), on by default
//!   after 730 days.
//! - **Appointments** that ended before the messages' cutoff are deleted with them.
//! - **Exports** are deleted when their link expires (at most 7 days); not a setting.
//! - **Call logs and transcripts** (the `calls` rows and the turns of voice
//!   conversations) older than the period are deleted (on by default, 365 days); the
//!   messages period does not apply to them.
//! - **Recordings** (call recordings and voicemails) older than the period are deleted
//!   (on by default, 730 days); the message that carried one stays, as a line of the
//!   transcript, for the period of its own class.
//!
//! A preview counts what a period would delete now, with the same query the sweep uses,
//! so the number a user confirms is the number deleted. Each sweep's counts (never what
//! was deleted) are recorded and reported to the CP for 7 days.

use crate::domain::content::{Content, MessageClass};
use crate::domain::exports::Exports;
use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store};
use outpost_protocol::RetentionSweep;
use rusqlite::{params, OptionalExtension as _};
use std::sync::Arc;
use std::time::Duration;

/// Migration adding the retention tables (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE retention_policies (
    class TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    days INTEGER NOT NULL,
    updated_by TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE retention_sweeps (
    at INTEGER PRIMARY KEY,
    messages_deleted INTEGER NOT NULL,
    contacts_erased INTEGER NOT NULL,
    exports_deleted INTEGER NOT NULL
);
"#;

/// Shortest period a user may set, days.
pub const MIN_DAYS: i64 = 1;
/// Longest period a user may set, days (ten years).
pub const MAX_DAYS: i64 = 3650;
/// Seconds between sweeps.
pub const SWEEP_EVERY_SECS: i64 = 86_400;
/// Messages deleted per transaction.
const DELETE_BATCH: usize = 2_000;
/// Actor named in erasure records made by the sweep.
pub const RETENTION_ACTOR: &str = "retention";
/// `meta` key of the last sweep time.
const LAST_SWEEP: &str = "retention_last_sweep";

/// A class of data with a retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Conversation messages.
    Messages,
    /// Contacts without activity.
    Contacts,
    /// Call logs and the transcripts of calls.
    CallLogs,
    /// Call recordings and voicemails.
    Recordings,
}

impl Class {
    /// Every class, in display order.
    pub const ALL: [Class; 4] = [
        Class::Messages,
        Class::Contacts,
        Class::CallLogs,
        Class::Recordings,
    ];

    /// Stored (and form) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Messages => "messages",
            Class::Contacts => "contacts",
            Class::CallLogs => "call_logs",
            Class::Recordings => "recordings",
        }
    }

    /// Inverse of `as_str`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Label for the console.
    pub fn label(self) -> &'static str {
        match self {
            Class::Messages => "Messages",
            Class::Contacts => "Contacts without activity",
            Class::CallLogs => "Call logs and transcripts",
            Class::Recordings => "Call recordings and voicemails",
        }
    }

    /// What a sweep does to this class.
    pub fn effect(self) -> &'static str {
        match self {
            Class::Messages => {
                "messages older than the period are deleted (calls and recordings have their own periods)"
            }
            Class::CallLogs => "calls (times, duration, status) and what was said in them are deleted after the period",
            Class::Recordings => "recordings and voicemails older than the period are deleted; the transcript keeps a line saying there was one",
            Class::Contacts => {
                "contacts with no message or change within the period are erased (key destroyed, erasure recorded)"
            }
        }
    }

    /// The default policy.
    pub fn default_policy(self) -> Policy {
        let days = match self {
            Class::Messages => 365,
            Class::Contacts => 730,
            Class::CallLogs => 365,
            Class::Recordings => 730,
        };
        Policy {
            class: self,
            enabled: true,
            days,
        }
    }
}

/// A retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The data class.
    pub class: Class,
    /// Whether the sweep applies it.
    pub enabled: bool,
    /// Period, days.
    pub days: i64,
}

impl Policy {
    /// Data older than this (unix seconds) is out of its period at `now`.
    pub fn cutoff(&self, now: i64) -> i64 {
        now - self.days * 86_400
    }
}

/// The policies in force (defaults where none was saved).
pub fn policies(store: &Store) -> store::Result<Vec<Policy>> {
    let saved: Vec<(String, bool, i64)> = store.with(|c| {
        let mut st = c.prepare("SELECT class, enabled, days FROM retention_policies")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })?;
    Ok(Class::ALL
        .into_iter()
        .map(|class| {
            saved.iter().find(|(c, _, _)| c == class.as_str()).map_or(
                class.default_policy(),
                |(_, enabled, days)| Policy {
                    class,
                    enabled: *enabled,
                    days: *days,
                },
            )
        })
        .collect())
}

/// Saves a policy (the caller validated `days`).
pub fn save(store: &Store, policy: Policy, actor: &str) -> store::Result<()> {
    store.with(|c| {
        c.execute(
            "INSERT INTO retention_policies (class, enabled, days, updated_by, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (class) DO UPDATE SET enabled = excluded.enabled, days = excluded.days,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            params![
                policy.class.as_str(),
                policy.enabled,
                policy.days,
                actor,
                store::now()
            ],
        )?;
        Ok(())
    })
}

/// What `policy` would delete at `now`: the same selection the sweep applies.
pub fn preview(store: &Store, content: &Content, policy: Policy, now: i64) -> anyhow::Result<i64> {
    if !policy.enabled {
        return Ok(0);
    }
    let cutoff = policy.cutoff(now);
    Ok(match policy.class {
        Class::Messages => content.count_messages_before(MessageClass::Chat, cutoff)?,
        Class::Contacts => i64::try_from(content.inactive_contacts(cutoff)?.len()).unwrap_or(0),
        Class::CallLogs => count_calls_before(store, cutoff)?,
        Class::Recordings => content.count_call_audio_before(cutoff)?,
    })
}

/// How many calls started before `cutoff` (the call logs [`Class::CallLogs`] deletes;
/// their transcripts go with them).
fn count_calls_before(store: &Store, cutoff: i64) -> anyhow::Result<i64> {
    Ok(store.with(|c| {
        Ok(c.query_row(
            "SELECT COUNT(*) FROM calls WHERE started_at < ?1",
            [cutoff],
            |r| r.get(0),
        )?)
    })?)
}

/// Applies every enabled policy at `now` and records the counts.
pub fn sweep(
    store: &Store,
    content: &Content,
    exports: Option<&Exports>,
    now: i64,
) -> anyhow::Result<RetentionSweep> {
    let mut result = RetentionSweep {
        at: now,
        messages_deleted: 0,
        contacts_erased: 0,
        exports_deleted: 0,
    };
    // Contacts first: erasing destroys their keys, the strongest deletion.
    for policy in policies(store)? {
        if !policy.enabled {
            continue;
        }
        let cutoff = policy.cutoff(now);
        match policy.class {
            Class::Contacts => {
                let ids = content.inactive_contacts(cutoff)?;
                for chunk in ids.chunks(500) {
                    let erased = content.erase_contacts(chunk, RETENTION_ACTOR)?;
                    result.contacts_erased += i64::try_from(erased.len()).unwrap_or(0);
                }
            }
            Class::Messages | Class::CallLogs | Class::Recordings => {}
        }
    }
    for policy in policies(store)? {
        if !policy.enabled {
            continue;
        }
        let cutoff = policy.cutoff(now);
        match policy.class {
            Class::CallLogs => {
                let turns = content.delete_messages_before(
                    MessageClass::CallTranscripts,
                    cutoff,
                    DELETE_BATCH,
                )?;
                let calls = store.with(|c| {
                    Ok(c.execute("DELETE FROM calls WHERE started_at < ?1", [cutoff])?)
                })?;
                result.messages_deleted += turns;
                if calls > 0 {
                    tracing::info!(calls, "call logs deleted by retention");
                }
            }
            Class::Recordings => {
                let recordings = content.delete_call_audio_before(cutoff)?;
                if recordings > 0 {
                    tracing::info!(recordings, "call recordings deleted by retention");
                }
            }
            Class::Messages | Class::Contacts => {}
        }
    }
    for policy in policies(store)? {
        if policy.enabled && policy.class == Class::Messages {
            result.messages_deleted += content.delete_messages_before(
                MessageClass::Chat,
                policy.cutoff(now),
                DELETE_BATCH,
            )?;
            // Appointments are part of the conversation record: those that ended
            // before the messages' cutoff go with them.
            let bookings =
                crate::domain::appointments::delete_ended_before(store, policy.cutoff(now))?;
            if bookings > 0 {
                tracing::info!(bookings, "past appointments deleted by retention");
            }
        }
    }
    let last: Option<i64> = store.meta(LAST_SWEEP)?.and_then(|v| v.parse().ok());
    if let Some(exports) = exports {
        exports.sweep(now)?;
    }
    result.exports_deleted = store.with(|c| {
        Ok(c.query_row(
            "SELECT COUNT(*) FROM exports WHERE state = 'expired' AND error_code IS NULL
               AND expires_at > ?1 AND expires_at <= ?2",
            params![last.unwrap_or(0), now],
            |r| r.get(0),
        )?)
    })?;
    store.with(|c| {
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO retention_sweeps (at, messages_deleted, contacts_erased, exports_deleted)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (at) DO UPDATE SET
                messages_deleted = messages_deleted + excluded.messages_deleted,
                contacts_erased = contacts_erased + excluded.contacts_erased,
                exports_deleted = exports_deleted + excluded.exports_deleted",
            params![
                now,
                result.messages_deleted,
                result.contacts_erased,
                result.exports_deleted
            ],
        )?;
        Store::set_meta(&tx, LAST_SWEEP, &now.to_string())?;
        tx.execute(
            "DELETE FROM retention_sweeps WHERE at < ?1",
            [now - 90 * 86_400],
        )?;
        tx.commit()?;
        Ok(())
    })?;
    tracing::info!(
        messages = result.messages_deleted,
        contacts = result.contacts_erased,
        exports = result.exports_deleted,
        "retention sweep done"
    );
    Ok(result)
}

/// Whether a sweep is due at `now` (none yet, or the last one a day ago).
pub fn due(store: &Store, now: i64) -> store::Result<bool> {
    let last: Option<i64> = store.meta(LAST_SWEEP)?.and_then(|v| v.parse().ok());
    Ok(last.is_none_or(|at| now - at >= SWEEP_EVERY_SECS))
}

/// Sweeps since `since` (unix seconds), oldest first.
pub fn sweeps_since(store: &Store, since: i64) -> store::Result<Vec<RetentionSweep>> {
    store.with(|c| {
        let mut st = c.prepare(
            "SELECT at, messages_deleted, contacts_erased, exports_deleted FROM retention_sweeps
             WHERE at >= ?1 ORDER BY at",
        )?;
        let rows = st.query_map([since], |r| {
            Ok(RetentionSweep {
                at: r.get(0)?,
                messages_deleted: r.get(1)?,
                contacts_erased: r.get(2)?,
                exports_deleted: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

/// The last sweep, if any.
pub fn last_sweep(store: &Store) -> store::Result<Option<RetentionSweep>> {
    store.with(|c| {
        Ok(c.query_row(
            "SELECT at, messages_deleted, contacts_erased, exports_deleted FROM retention_sweeps
             ORDER BY at DESC LIMIT 1",
            [],
            |r| {
                Ok(RetentionSweep {
                    at: r.get(0)?,
                    messages_deleted: r.get(1)?,
                    contacts_erased: r.get(2)?,
                    exports_deleted: r.get(3)?,
                })
            },
        )
        .optional()?)
    })
}

/// Every minute: expire export links that ran out; once a day: the retention sweep.
pub async fn run(store: Arc<Store>, master: Arc<MasterKey>, exports: Arc<Exports>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (store, master, exports) = (store.clone(), master.clone(), exports.clone());
        let done = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let now = store::now();
            if due(&store, now)? {
                let content = Content::new(store.clone(), &master);
                sweep(&store, &content, Some(&exports), now)?;
            } else {
                exports.sweep(now)?;
            }
            Ok(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "retention sweep failed"),
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
    }
}

#[cfg(test)]
mod tests;
