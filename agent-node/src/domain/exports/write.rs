//! What goes into an export zip, file by file. Every read is paged; progress is saved
//! after each page, and an export deleted while it runs stops at the next page.

use super::archive::{Archive, JsonArray, Manifest, FORMAT};
use super::{Exports, Scope};
use crate::domain::content::{Content, KeyCache, MessageScope};
use crate::domain::kb::KnowledgeBase;
use anyhow::Context as _;
use serde::Serialize;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Rows read per page.
const PAGE: usize = 1_000;

const README: &str = "\
Outpost export
==============

This archive was produced by your Outpost node. It holds:

  contacts.csv        one row per contact (identity, name, email, phone, stage, score,
                      tags)
  contacts.json       the same contacts with their notes, timeline events and follow-ups
  conversations.csv   one row per conversation
  messages.csv        every message, oldest first
  media/              the files customers sent (pictures, voice notes, documents),
                      named <kind>-<message id>.<extension> after their message
  appointments.csv    every booking (service, staff, times, status, and the name,
                      email, phone and note given when booking)
  calls.csv           every phone call: its conversation, start, end, duration in
                      seconds and Twilio's last status (what was said is in
                      messages.csv, recordings and voicemails in media/)
  knowledge_base.json knowledge-base documents and their passages (workspace exports)
  settings.json       agent configuration, retention settings, which keys are set
                      (kind and fingerprint only, never the key) (workspace exports)
  erasures.csv        the record of erased contacts (workspace exports)
  manifest.json       the SHA-256, size and row count of every file above

Times are RFC 3339 in UTC. To check a file against the manifest:

  sha256sum messages.csv     # compare with manifest.json
";

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn rfc3339_opt(unix: Option<i64>) -> Option<String> {
    unix.map(rfc3339)
}

#[derive(Serialize)]
struct ContactJson {
    id: String,
    channel: String,
    identity: String,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    stage: &'static str,
    score: i64,
    tags: Vec<String>,
    created_at: String,
    last_seen_at: String,
    events: Vec<EventJson>,
    followups: Vec<FollowupJson>,
}

#[derive(Serialize)]
struct EventJson {
    at: String,
    kind: String,
    detail: Option<String>,
    actor: Option<String>,
}

#[derive(Serialize)]
struct FollowupJson {
    id: String,
    kind: &'static str,
    due_at: String,
    text: String,
    status: &'static str,
    created_by: Option<String>,
    created_at: String,
    done_at: Option<String>,
}

#[derive(Serialize)]
struct DocumentJson {
    id: String,
    title: String,
    kind: &'static str,
    bytes: i64,
    created_at: String,
    passages: Vec<String>,
}

/// Counts rows written; saves progress (a write, so an fsync) at most every 250 ms,
/// which is also when an export deleted while it runs notices and stops.
struct Progress<'a> {
    exports: &'a Exports,
    id: &'a str,
    done: i64,
    total: i64,
    saved: Option<std::time::Instant>,
}

impl Progress<'_> {
    fn add(&mut self, n: usize) -> anyhow::Result<()> {
        self.done += i64::try_from(n).unwrap_or(i64::MAX);
        if self
            .saved
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(250))
        {
            return Ok(());
        }
        self.saved = Some(std::time::Instant::now());
        anyhow::ensure!(
            self.exports.progress(self.id, self.done, self.total)?,
            "the export was deleted while it ran"
        );
        Ok(())
    }
}

/// Writes the export `id` of `scope` to `path`, encrypted to `recipient`. Returns the
/// zip's size and SHA-256 (of the decrypted bytes a user downloads).
pub(super) fn write_zip(
    exports: &Exports,
    id: &str,
    scope: &Scope,
    path: &Path,
    recipient: &str,
) -> anyhow::Result<(u64, String)> {
    let content = Content::new(exports.store.clone(), &exports.master);
    let contact = scope.contact();
    let totals = content.totals(contact)?;
    if let Some(c) = contact {
        anyhow::ensure!(totals.contacts == 1, "contact {c} not found");
    }
    let kb = KnowledgeBase::new(exports.store.clone(), &exports.master);
    let documents = match scope {
        Scope::Workspace => kb.list()?,
        Scope::Contact(_) => Vec::new(),
    };
    let mut progress = Progress {
        exports,
        id,
        done: 0,
        total: 2 * totals.contacts
            + totals.conversations
            + totals.messages
            + i64::try_from(documents.len()).unwrap_or(0),
        saved: None,
    };
    progress.add(0)?;

    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let r: age::x25519::Recipient = recipient
        .parse()
        .map_err(|_| anyhow::anyhow!("bad export recipient"))?;
    let encrypted = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .context("preparing the export encryption")?
        .wrap_output(BufWriter::with_capacity(256 * 1024, file))?;
    let created = time::OffsetDateTime::now_utc();
    let mut zip = Archive::new(encrypted, created)?;

    zip.file("README.txt", false, |w| {
        w.write_all(README.as_bytes())?;
        Ok(0)
    })?;

    // Contact ids, page by page (one id for a data-subject export).
    let contact_pages = |after: &str| -> anyhow::Result<Vec<String>> {
        Ok(match contact {
            Some(c) if after.is_empty() => vec![c.to_owned()],
            Some(_) => Vec::new(),
            None => content.contact_ids_after(after, PAGE)?,
        })
    };

    zip.file("contacts.csv", false, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "id",
            "channel",
            "identity",
            "name",
            "email",
            "phone",
            "stage",
            "score",
            "tags",
            "created_at",
            "last_seen_at",
        ])?;
        let (mut after, mut rows) = (String::new(), 0u64);
        loop {
            let ids = contact_pages(&after)?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            let mut n = 0;
            for cid in &ids {
                let Some(c) = content.contact(cid)? else {
                    continue;
                };
                csv.write_record([
                    c.id.as_str(),
                    &c.channel,
                    &c.identity,
                    c.name.as_deref().unwrap_or_default(),
                    c.email.as_deref().unwrap_or_default(),
                    c.phone.as_deref().unwrap_or_default(),
                    c.stage.as_str(),
                    &c.score.to_string(),
                    &c.tags.join(";"),
                    &rfc3339(c.created_at),
                    &rfc3339(c.last_seen_at),
                ])?;
                n += 1;
            }
            rows += n;
            progress.add(ids.len())?;
            after = last;
        }
        csv.flush()?;
        Ok(rows)
    })?;

    zip.file("contacts.json", false, |w| {
        let mut arr = JsonArray::new(w)?;
        let mut after = String::new();
        loop {
            let ids = contact_pages(&after)?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for cid in &ids {
                let Some(c) = content.contact(cid)? else {
                    continue;
                };
                let events = content.contact_events(cid)?;
                let followups = content.followups(cid, usize::MAX)?;
                arr.push(&ContactJson {
                    id: c.id,
                    channel: c.channel,
                    identity: c.identity,
                    name: c.name,
                    email: c.email,
                    phone: c.phone,
                    stage: c.stage.as_str(),
                    score: c.score,
                    tags: c.tags,
                    created_at: rfc3339(c.created_at),
                    last_seen_at: rfc3339(c.last_seen_at),
                    events: events
                        .into_iter()
                        .map(|e| EventJson {
                            at: rfc3339(e.created_at),
                            kind: e.kind,
                            detail: e.detail,
                            actor: e.actor,
                        })
                        .collect(),
                    followups: followups
                        .into_iter()
                        .map(|f| FollowupJson {
                            id: f.id,
                            kind: f.kind.as_str(),
                            due_at: rfc3339(f.due_at),
                            text: f.text,
                            status: f.status.as_str(),
                            created_by: f.created_by,
                            created_at: rfc3339(f.created_at),
                            done_at: rfc3339_opt(f.done_at),
                        })
                        .collect(),
                })?;
            }
            progress.add(ids.len())?;
            after = last;
        }
        Ok(arr.finish()?)
    })?;

    zip.file("conversations.csv", false, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "id",
            "contact_id",
            "agent_id",
            "channel",
            "status",
            "created_at",
            "updated_at",
        ])?;
        let (mut after, mut rows) = (String::new(), 0u64);
        loop {
            let page = content.conversations_after(contact, &after, PAGE)?;
            let Some(last) = page.last().map(|c| c.id.clone()) else {
                break;
            };
            for c in &page {
                csv.write_record([
                    c.id.as_str(),
                    &c.contact_id,
                    &c.agent_id,
                    &c.channel,
                    c.status.as_str(),
                    &rfc3339(c.created_at),
                    &rfc3339(c.updated_at),
                ])?;
            }
            rows += page.len() as u64;
            progress.add(page.len())?;
            after = last;
        }
        csv.flush()?;
        Ok(rows)
    })?;

    zip.file("messages.csv", true, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "id",
            "conversation_id",
            "contact_id",
            "created_at",
            "author",
            "body",
        ])?;
        let mut keys = KeyCache::default();
        let mut rows = 0u64;
        let mut write_scope = |scope: MessageScope<'_>| -> anyhow::Result<()> {
            let mut after = 0i64;
            loop {
                let page = content.messages_page(scope, after, PAGE, &mut keys)?;
                let Some(last) = page.last().map(|m| m.id) else {
                    break;
                };
                for m in &page {
                    csv.write_record([
                        m.id.to_string().as_str(),
                        &m.conversation_id,
                        &m.contact_id,
                        &rfc3339(m.created_at),
                        m.author.as_str(),
                        &m.body,
                    ])?;
                }
                rows += page.len() as u64;
                progress.add(page.len())?;
                after = last;
            }
            Ok(())
        };
        match contact {
            None => write_scope(MessageScope::All)?,
            Some(_) => {
                // A contact's messages, conversation by conversation.
                let mut after = String::new();
                loop {
                    let convs = content.conversations_after(contact, &after, PAGE)?;
                    let Some(last) = convs.last().map(|c| c.id.clone()) else {
                        break;
                    };
                    for c in &convs {
                        write_scope(MessageScope::Conversation(&c.id))?;
                    }
                    after = last;
                }
            }
        }
        csv.flush()?;
        Ok(rows)
    })?;

    // Files customers sent, one zip entry each, read one at a time.
    let mut keys = KeyCache::default();
    let mut after = 0i64;
    while let Some(file) = content.media_after(contact, after, &mut keys)? {
        after = file.info.message_id;
        zip.file(&format!("media/{}", file.info.file_name()), false, |w| {
            w.write_all(&file.data)?;
            Ok(1)
        })?;
    }

    zip.file("appointments.csv", false, |w| {
        let book = crate::domain::appointments::Appointments::new(
            exports.store.clone(),
            content.clone(),
            &exports.master,
        );
        // Bookings are few next to messages (one per visit): read at once.
        let bookings = match contact {
            Some(c) => book.contact_bookings(c)?,
            None => book.all_bookings()?,
        };
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "id",
            "contact_id",
            "conversation_id",
            "service",
            "staff",
            "starts_at",
            "ends_at",
            "status",
            "name",
            "email",
            "phone",
            "note",
            "created_at",
        ])?;
        for b in &bookings {
            csv.write_record([
                b.id.as_str(),
                &b.contact_id,
                b.conversation_id.as_deref().unwrap_or_default(),
                &b.service_name,
                &b.staff_name,
                &rfc3339(b.starts_at),
                &rfc3339(b.ends_at),
                b.status.as_str(),
                &b.details.name,
                &b.details.email,
                &b.details.phone,
                &b.details.note,
                &rfc3339(b.created_at),
            ])?;
        }
        csv.flush()?;
        Ok(bookings.len() as u64)
    })?;

    zip.file("calls.csv", false, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "conversation_id",
            "started_at",
            "ended_at",
            "duration_seconds",
            "status",
        ])?;
        let (mut rows, mut after) = (0u64, 0i64);
        loop {
            let page = call_page(&exports.store, contact, after)?;
            let Some(last) = page.last().map(|c| c.0) else {
                break;
            };
            for (_, conversation, started, ended, duration, status) in &page {
                csv.write_record([
                    conversation.as_str(),
                    &rfc3339(*started),
                    &rfc3339_opt(*ended).unwrap_or_default(),
                    &duration.map(|d| d.to_string()).unwrap_or_default(),
                    status,
                ])?;
                rows += 1;
            }
            after = last;
        }
        csv.flush()?;
        Ok(rows)
    })?;

    if *scope == Scope::Workspace {
        zip.file("knowledge_base.json", false, |w| {
            let mut arr = JsonArray::new(w)?;
            for d in &documents {
                let Some((doc, passages)) = kb.document(&d.id)? else {
                    continue;
                };
                arr.push(&DocumentJson {
                    id: doc.id,
                    title: doc.title,
                    kind: doc.kind.as_str(),
                    bytes: doc.bytes,
                    created_at: rfc3339(doc.created_at),
                    passages,
                })?;
                progress.add(1)?;
            }
            Ok(arr.finish()?)
        })?;

        zip.file("settings.json", false, |w| {
            let settings = settings(exports)?;
            serde_json::to_writer_pretty(&mut *w, &settings)?;
            w.write_all(b"\n")?;
            Ok(1)
        })?;

        zip.file("erasures.csv", false, |w| {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record(["id", "contact_hash", "channel", "erased_by", "erased_at"])?;
            let erasures = content.erasures(usize::MAX)?;
            for e in &erasures {
                csv.write_record([
                    e.id.as_str(),
                    &e.contact_hash,
                    &e.channel,
                    &e.erased_by,
                    &rfc3339(e.erased_at),
                ])?;
            }
            csv.flush()?;
            Ok(erasures.len() as u64)
        })?;
    }

    let head = Manifest {
        format: FORMAT.to_owned(),
        export_id: id.to_owned(),
        scope: scope.name().to_owned(),
        node_id: exports.node_id.0.clone(),
        workspace_id: exports.workspace.id.clone(),
        workspace_name: exports.workspace.name.clone(),
        created_at: rfc3339(created.unix_timestamp()),
    };
    let (encrypted, size, sha256) = zip.finish(head)?;
    let buffered = encrypted
        .finish()
        .context("finishing the export encryption")?;
    let file = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the export")?;
    file.sync_all().context("syncing the export")?;
    Ok((size, sha256))
}

/// `settings.json`: configuration, retention and which keys are set (never a key).
fn settings(exports: &Exports) -> anyhow::Result<serde_json::Value> {
    let config = exports
        .store
        .meta(crate::platform::store::CONFIG_KEY)?
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
        .unwrap_or(serde_json::Value::Null);
    let secrets =
        crate::domain::secrets::SecretStore::new(exports.store.clone(), exports.master.clone())
            .list()?
            .into_iter()
            .map(|s| {
                serde_json::json!({
                    "kind": s.kind.as_str(),
                    "fingerprint": s.fingerprint,
                    "source": s.source,
                    "stored_at": rfc3339(s.created_at),
                })
            })
            .collect::<Vec<_>>();
    let retention = crate::domain::retention::policies(&exports.store)?
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "data": p.class.as_str(),
                "enabled": p.enabled,
                "days": p.days,
            })
        })
        .collect::<Vec<_>>();
    Ok(serde_json::json!({
        "workspace": {
            "id": exports.workspace.id,
            "slug": exports.workspace.slug,
            "name": exports.workspace.name,
        },
        "configuration": config,
        "keys": secrets,
        "retention": retention,
    }))
}

/// A call's row: id, conversation, start, end, duration (seconds), Twilio's status.
type CallRow = (i64, String, i64, Option<i64>, Option<i64>, String);

/// The calls after id `after` (all, or those of `contact`'s conversations), a page at a
/// time. The `calls` table is the telephony channel's; its rows are the business's own
/// call log, exported like the conversations they belong to.
fn call_page(
    store: &crate::platform::store::Store,
    contact: Option<&str>,
    after: i64,
) -> anyhow::Result<Vec<CallRow>> {
    Ok(store.with(|c| {
        let mut st = c.prepare(
            "SELECT k.id, k.conversation_id, k.started_at, k.ended_at, k.duration_secs, k.status
             FROM calls k JOIN conversations v ON v.id = k.conversation_id
             WHERE k.id > ?1 AND (?2 IS NULL OR v.contact_id = ?2)
             ORDER BY k.id LIMIT ?3",
        )?;
        let rows = st
            .query_map(rusqlite::params![after, contact, PAGE as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })?)
}
