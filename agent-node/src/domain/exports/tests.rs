use super::archive::{ManifestFile, MANIFEST};
use super::*;
use crate::domain::content::{Author, Content, Inbound};
use outpost_common::hex;
use std::io::Read as _;

pub(crate) struct Fx {
    pub _dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub exports: Exports,
    pub content: Content,
}

pub(crate) fn fx_with(master: [u8; 32], node: &str) -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let master = Arc::new(MasterKey::from_bytes(master));
    let exports = Exports::new(
        store.clone(),
        master.clone(),
        NodeId(node.into()),
        WorkspaceInfo {
            id: "ws-1".into(),
            slug: "acme".into(),
            name: "Acme".into(),
        },
    );
    let content = Content::new(store.clone(), &master);
    Fx {
        _dir: dir,
        store,
        exports,
        content,
    }
}

fn fx() -> Fx {
    fx_with([5; 32], "node-a")
}

const ADA_EMAIL: &str = "ada.canary@example.com";
const ADA_PHONE: &str = "+44 20 7946 0958";

/// The `email` and `phone` columns of `id`'s row in `contacts.csv`, found by header name.
fn csv_email_and_phone(contacts_csv: &str, id: &str) -> (String, String) {
    let mut csv = csv::Reader::from_reader(contacts_csv.as_bytes());
    let headers = csv.headers().expect("headers").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} column in {headers:?}"))
    };
    let (id_col, email_col, phone_col) = (col("id"), col("email"), col("phone"));
    let row = csv
        .records()
        .map(|r| r.expect("record"))
        .find(|r| &r[id_col] == id)
        .expect("the contact's row");
    (row[email_col].to_owned(), row[phone_col].to_owned())
}

/// Two contacts with conversations, Ada with an email address and a phone number;
/// returns (Ada's contact id, Bob's contact id).
fn seed(f: &Fx) -> (String, String) {
    let (ada_conv, _) = f
        .content
        .ingest(
            "telegram",
            "1001",
            Some("Ada CANARY-NAME"),
            "agent-1",
            "Do you open on Sunday? CANARY-MSG, with \"quotes\", commas\nand a newline",
        )
        .expect("ada");
    f.content
        .append_message(&ada_conv.id, Author::Agent, "We open at 10.")
        .expect("reply");
    f.content
        .add_note(&ada_conv.contact_id, "prefers mornings", "user-1")
        .expect("note");
    f.content
        .update_contact(
            &ada_conv.contact_id,
            crate::domain::content::ContactUpdate {
                email: Some(ADA_EMAIL.into()),
                phone: Some(ADA_PHONE.into()),
                ..Default::default()
            },
            "user-1",
        )
        .expect("email and phone");
    let (bob_conv, _) = f
        .content
        .ingest("web", "visitor-2", None, "agent-1", "Bob asks about prices")
        .expect("bob");
    (ada_conv.contact_id, bob_conv.contact_id)
}

/// Downloads (decrypts) a ready export and checks every file against the manifest.
fn download(f: &Fx, id: &str) -> (ManifestFile, zip::ZipArchive<std::io::Cursor<Vec<u8>>>) {
    let e = f.exports.get(id).expect("get").expect("exists");
    assert_eq!(e.state, "ready", "{e:?}");
    let mut bytes = Vec::new();
    f.exports
        .open(id)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("decrypt");
    assert_eq!(bytes.len() as i64, e.size_bytes);
    assert_eq!(
        Some(hex(
            ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()
        )),
        e.sha256
    );
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
    let mut raw = String::new();
    zip.by_name(MANIFEST)
        .expect("manifest")
        .read_to_string(&mut raw)
        .expect("read");
    let manifest: ManifestFile = serde_json::from_str(&raw).expect("manifest json");
    for file in &manifest.files {
        let mut body = Vec::new();
        zip.by_name(&file.name)
            .expect("file in zip")
            .read_to_end(&mut body)
            .expect("read");
        assert_eq!(
            hex(ring::digest::digest(&ring::digest::SHA256, &body).as_ref()),
            file.sha256,
            "{}",
            file.name
        );
        assert_eq!(body.len() as u64, file.bytes);
    }
    (manifest, zip)
}

fn read(zip: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> String {
    let mut s = String::new();
    zip.by_name(name)
        .expect(name)
        .read_to_string(&mut s)
        .expect("utf-8");
    s
}

fn rows(manifest: &ManifestFile, name: &str) -> u64 {
    manifest
        .files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} listed"))
        .rows
}

#[test]
fn a_workspace_export_holds_everything_and_verifies_against_its_manifest() {
    let f = fx();
    let (ada, _) = seed(&f);
    let id = f
        .exports
        .create(&Scope::Workspace, DEFAULT_TTL_SECS, "user-1")
        .expect("create");
    f.exports.run(&id, &Scope::Workspace).expect("run");
    let (manifest, mut zip) = download(&f, &id);
    assert_eq!(manifest.head.scope, "workspace");
    assert_eq!(manifest.head.node_id, "node-a");
    let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    for expected in [
        "README.txt",
        "contacts.csv",
        "contacts.json",
        "conversations.csv",
        "messages.csv",
        "knowledge_base.json",
        "settings.json",
        "erasures.csv",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert_eq!(rows(&manifest, "contacts.csv"), 2);
    assert_eq!(rows(&manifest, "conversations.csv"), 2);
    assert_eq!(rows(&manifest, "messages.csv"), 3);

    // CSV round-trips quotes, commas and newlines
    let messages = read(&mut zip, "messages.csv");
    let mut csv = csv::Reader::from_reader(messages.as_bytes());
    let bodies: Vec<String> = csv
        .records()
        .map(|r| r.expect("record")[5].to_owned())
        .collect();
    assert!(bodies[0].contains("CANARY-MSG, with \"quotes\", commas\nand a newline"));
    assert_eq!(bodies.len(), 3);

    let contacts: serde_json::Value =
        serde_json::from_str(&read(&mut zip, "contacts.json")).expect("contacts json");
    let ada_json = contacts
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["id"] == ada.as_str())
        .expect("ada");
    assert_eq!(ada_json["name"], "Ada CANARY-NAME");
    assert_eq!(ada_json["identity"], "1001");
    assert_eq!(ada_json["email"], ADA_EMAIL);
    assert_eq!(ada_json["phone"], ADA_PHONE);
    let bob_json = contacts
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["id"] != ada.as_str())
        .expect("bob");
    assert!(bob_json["email"].is_null() && bob_json["phone"].is_null());
    assert_eq!(
        csv_email_and_phone(&read(&mut zip, "contacts.csv"), &ada),
        (ADA_EMAIL.to_owned(), ADA_PHONE.to_owned())
    );
    assert!(ada_json["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["detail"] == "prefers mornings"));

    // at rest the file is an age file, not a zip
    let raw = std::fs::read(f.exports.file(&id)).expect("file");
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(zip::ZipArchive::new(std::io::Cursor::new(raw)).is_err());
}

#[test]
fn a_contact_export_holds_only_that_contact() {
    let f = fx();
    let (ada, bob) = seed(&f);
    let scope = Scope::Contact(ada.clone());
    let id = f.exports.create(&scope, 3600, "user-1").expect("create");
    f.exports.run(&id, &scope).expect("run");
    let (manifest, mut zip) = download(&f, &id);
    assert_eq!(manifest.head.scope, "contact");
    assert_eq!(rows(&manifest, "contacts.csv"), 1);
    assert_eq!(rows(&manifest, "messages.csv"), 2);
    let all: String = [
        "contacts.csv",
        "contacts.json",
        "conversations.csv",
        "messages.csv",
    ]
    .iter()
    .map(|n| read(&mut zip, n))
    .collect();
    assert!(all.contains(&ada) && all.contains("CANARY-MSG"));
    assert!(!all.contains(&bob) && !all.contains("Bob asks"));
    // A data-subject export hands the person the email and phone the team holds.
    assert_eq!(
        csv_email_and_phone(&read(&mut zip, "contacts.csv"), &ada),
        (ADA_EMAIL.to_owned(), ADA_PHONE.to_owned())
    );
    let contacts: serde_json::Value =
        serde_json::from_str(&read(&mut zip, "contacts.json")).expect("contacts json");
    assert_eq!(contacts[0]["email"], ADA_EMAIL);
    assert_eq!(contacts[0]["phone"], ADA_PHONE);
    assert!(
        !manifest
            .files
            .iter()
            .any(|f| f.name == "knowledge_base.json"),
        "workspace files are not in a contact's export"
    );

    let appointments = read(&mut zip, "appointments.csv");
    assert!(appointments.starts_with("id,contact_id,conversation_id,service,"));
    assert_eq!(rows(&manifest, "appointments.csv"), 0);

    let missing = Scope::Contact("no-such-contact".into());
    let id = f.exports.create(&missing, 3600, "user-1").expect("create");
    assert!(f.exports.run(&id, &missing).is_err());
    let e = f.exports.get(&id).expect("get").expect("row");
    assert_eq!(e.state, "failed");
    assert!(!f.exports.partial(&id).exists() && !f.exports.file(&id).exists());
}

#[test]
fn links_are_refused_when_tampered_foreign_or_expired() {
    let f = fx();
    seed(&f);
    let id = f
        .exports
        .create(&Scope::Workspace, DEFAULT_TTL_SECS, "u")
        .expect("create");
    f.exports.run(&id, &Scope::Workspace).expect("run");
    let e = f.exports.get(&id).expect("get").expect("row");
    let link = f.exports.link(&e).expect("ready exports have a link");
    let sig = link.rsplit("sig=").next().expect("sig").to_owned();
    let now = store::now();

    assert!(matches!(
        f.exports.check_link(&id, e.expires_at, &sig, now).expect("check"),
        Download::Ready(_, n) if n as i64 == e.size_bytes
    ));
    // a later expiry, or another signature, does not verify
    assert_eq!(
        f.exports
            .check_link(&id, e.expires_at + 3600, &sig, now)
            .expect("check"),
        Download::Forged
    );
    assert_eq!(
        f.exports
            .check_link(&id, e.expires_at, "AAAA", now)
            .expect("check"),
        Download::Forged
    );
    // another node (another workspace) has another key: its links are not ours
    let other = fx_with([6; 32], "node-b");
    let foreign = link::sign(&other.exports.link_key[..], "node-b", &id, e.expires_at);
    assert_eq!(
        f.exports
            .check_link(&id, e.expires_at, &foreign, now)
            .expect("check"),
        Download::Forged
    );
    assert_eq!(
        other
            .exports
            .check_link(&id, e.expires_at, &sig, now)
            .expect("check"),
        Download::Forged
    );

    // after expiry: gone, and the file and key are deleted on the spot
    assert!(f.exports.file(&id).exists());
    assert_eq!(
        f.exports
            .check_link(&id, e.expires_at, &sig, e.expires_at)
            .expect("check"),
        Download::Gone
    );
    assert!(!f.exports.file(&id).exists());
    let e = f.exports.get(&id).expect("get").expect("row");
    assert_eq!(e.state, "expired");
    assert!(f.exports.open(&id).is_err(), "no key any more");
    assert_eq!(
        f.exports
            .check_link(&id, e.expires_at, &sig, now)
            .expect("check"),
        Download::Gone
    );
}

#[test]
fn the_sweep_deletes_expired_files_and_leftovers_and_reports_metadata_only() {
    let f = fx();
    seed(&f);
    let id = f
        .exports
        .create(&Scope::Workspace, 3600, "u")
        .expect("create");
    f.exports.run(&id, &Scope::Workspace).expect("run");
    let leftover = f.exports.dir.join("0000-stale.zip.age.part");
    std::fs::write(&leftover, b"x").expect("leftover");
    assert_eq!(f.exports.sweep(store::now()).expect("sweep"), 0);
    assert!(f.exports.file(&id).exists());
    assert!(
        !leftover.exists(),
        "files without a live export are removed"
    );

    let metas = f.exports.metas().expect("metas");
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].state, "ready");
    assert!(metas[0].size_bytes > 0);
    let json = serde_json::to_string(&metas).expect("json");
    assert!(!json.contains("CANARY") && !json.contains("sig"));

    assert_eq!(f.exports.sweep(store::now() + 3601).expect("sweep"), 1);
    assert!(!f.exports.file(&id).exists());
    assert_eq!(f.exports.metas().expect("metas")[0].state, "expired");
}

#[test]
fn erasing_a_contact_deletes_the_exports_that_hold_them() {
    let f = fx();
    let (ada, bob) = seed(&f);
    let ws = f.exports.create(&Scope::Workspace, 3600, "u").expect("ws");
    f.exports.run(&ws, &Scope::Workspace).expect("run");
    let bob_scope = Scope::Contact(bob.clone());
    let bob_export = f.exports.create(&bob_scope, 3600, "u").expect("bob");
    f.exports.run(&bob_export, &bob_scope).expect("run");

    f.content.erase_contact(&ada, "user-1").expect("erase");
    let ws_row = f.exports.get(&ws).expect("get").expect("row");
    assert_eq!(ws_row.state, "expired");
    assert_eq!(ws_row.error_code.as_deref(), Some("contact_erased"));
    assert!(
        f.exports.open(&ws).is_err(),
        "its key went with the erasure"
    );
    assert_eq!(
        f.exports.get(&bob_export).expect("get").expect("row").state,
        "ready",
        "another contact's own export stays"
    );
    f.exports.sweep(store::now()).expect("sweep");
    assert!(!f.exports.file(&ws).exists());
    assert!(f.exports.file(&bob_export).exists());
}

#[test]
fn an_interrupted_export_is_marked_failed_at_startup() {
    let f = fx();
    let id = f
        .exports
        .create(&Scope::Workspace, 3600, "u")
        .expect("create");
    crate::platform::files::prepare_dir(&f.exports.dir).expect("dir");
    std::fs::write(f.exports.partial(&id), b"half").expect("partial");
    f.exports.recover().expect("recover");
    let e = f.exports.get(&id).expect("get").expect("row");
    assert_eq!(
        (e.state.as_str(), e.error_code.as_deref()),
        ("failed", Some("interrupted"))
    );
    assert!(!f.exports.partial(&id).exists());
    assert!(
        f.exports
            .create(&Scope::Workspace, 7 * 86_400 + 1, "u")
            .is_err(),
        "links live at most 7 days"
    );
}

#[test]
fn many_messages_export_in_pages() {
    let f = fx();
    let bodies: Vec<String> = (0..2_500).map(|i| format!("message {i}")).collect();
    let ids: Vec<String> = (0..2_500).map(|i| format!("{}", i % 37)).collect();
    let batch: Vec<Inbound<'_>> = bodies
        .iter()
        .zip(&ids)
        .map(|(b, id)| Inbound {
            channel: "telegram",
            external_id: id,
            name: None,
            agent_id: "a",
            body: b,
        })
        .collect();
    f.content.ingest_batch(&batch).expect("seed");
    let id = f
        .exports
        .create(&Scope::Workspace, 3600, "u")
        .expect("create");
    f.exports.run(&id, &Scope::Workspace).expect("run");
    let (manifest, mut zip) = download(&f, &id);
    assert_eq!(rows(&manifest, "messages.csv"), 2_500);
    assert_eq!(rows(&manifest, "contacts.csv"), 37);
    let e = f.exports.get(&id).expect("get").expect("row");
    assert_eq!(e.rows_done, e.rows_total);
    assert_eq!(e.percent(), 100);
    let messages = read(&mut zip, "messages.csv");
    assert!(messages.contains("message 0\n") || messages.contains("message 0\r\n"));
    assert!(messages.contains("message 2499"));
}

#[test]
fn a_contacts_bookings_are_in_their_export_and_nobody_elses() {
    use crate::domain::appointments::{slots::Window, Appointments, BookRequest, BookingDetails};
    let f = fx();
    let (ada, bob) = seed(&f);
    let book = Appointments::new(
        f.store.clone(),
        f.content.clone(),
        &MasterKey::from_bytes([5; 32]),
    );
    let windows: Vec<Window> = (1..=7)
        .map(|weekday| Window {
            weekday,
            start_minute: 0,
            end_minute: 1440,
        })
        .collect();
    book.set_hours("", &windows).expect("hours");
    let service = book.add_service("Check-up", 30, "").expect("service");
    let now = store::now();
    let slots = book
        .find_slots(&service, None, now + 86_400, now + 3 * 86_400, now, 2)
        .expect("slots");
    for (who, slot, email) in [
        (&ada, &slots[0], "ada.booking@example.com"),
        (&bob, &slots[1], "bob.booking@example.com"),
    ] {
        book.book(
            &BookRequest {
                service_id: service.clone(),
                staff_id: None,
                starts_at: slot.starts_at,
                contact_id: who.clone(),
                conversation_id: None,
                details: BookingDetails {
                    name: "CANARY-BOOKER".into(),
                    email: email.into(),
                    ..Default::default()
                },
            },
            now,
        )
        .expect("book");
    }
    let scope = Scope::Contact(ada.clone());
    let id = f.exports.create(&scope, 3600, "user-1").expect("create");
    f.exports.run(&id, &scope).expect("run");
    let (manifest, mut zip) = download(&f, &id);
    assert_eq!(rows(&manifest, "appointments.csv"), 1);
    let csv = read(&mut zip, "appointments.csv");
    assert!(
        csv.contains("ada.booking@example.com") && csv.contains("Check-up"),
        "{csv}"
    );
    assert!(!csv.contains("bob.booking@example.com"));
    let scope = Scope::Workspace;
    let id = f.exports.create(&scope, 3600, "user-1").expect("create");
    f.exports.run(&id, &scope).expect("run");
    let (manifest, _) = download(&f, &id);
    assert_eq!(rows(&manifest, "appointments.csv"), 2);
}

#[test]
fn the_files_a_contact_sent_are_in_their_export_and_gone_after_erasure() {
    use crate::domain::content::MediaIn;
    let f = fx();
    let (ada, bob) = seed(&f);
    let mut ids = Vec::new();
    for (who, data) in [
        ("1001", b"\x89PNG ada CANARY-FILE-ADA".to_vec()),
        ("1002", b"\x89PNG bob CANARY-FILE-BOB".to_vec()),
    ] {
        let (_, msg) = f
            .content
            .ingest_once_with_media(
                Inbound {
                    channel: "telegram",
                    external_id: who,
                    name: None,
                    agent_id: "agent-1",
                    body: "[photo]",
                },
                Some(&MediaIn {
                    kind: "photo".into(),
                    content_type: "image/png",
                    data: data.clone(),
                }),
                |_| Ok(true),
                |_, _, _| Ok(()),
            )
            .expect("ingest")
            .expect("new");
        ids.push((msg.id, data));
    }
    let scope = Scope::Contact(ada.clone());
    let id = f.exports.create(&scope, 3600, "user-1").expect("create");
    f.exports.run(&id, &scope).expect("run");
    let (manifest, mut zip) = download(&f, &id);
    let ada_file = format!("media/photo-{}.png", ids[0].0);
    assert!(
        manifest.files.iter().any(|m| m.name == ada_file),
        "{:?}",
        manifest.files
    );
    assert!(!manifest
        .files
        .iter()
        .any(|m| m.name.contains(&ids[1].0.to_string()) && m.name.starts_with("media/")));
    let mut got = Vec::new();
    zip.by_name(&ada_file)
        .expect("file")
        .read_to_end(&mut got)
        .expect("read");
    assert_eq!(got, ids[0].1);
    assert!(read(&mut zip, "README.txt").contains("media/"));

    let ws = f
        .exports
        .create(&Scope::Workspace, 3600, "user-1")
        .expect("create");
    f.exports.run(&ws, &Scope::Workspace).expect("run");
    let (manifest, _) = download(&f, &ws);
    assert_eq!(
        manifest
            .files
            .iter()
            .filter(|m| m.name.starts_with("media/"))
            .count(),
        2
    );

    f.content.erase_contact(&ada, "user-1").expect("erase");
    assert!(f.content.media(ids[0].0).expect("read").is_none());
    assert!(
        f.content.media(ids[1].0).expect("read").is_some(),
        "another contact keeps theirs ({bob} sent none)"
    );
}

#[test]
fn a_callers_recordings_and_voicemails_are_in_their_export() {
    use crate::domain::content::{Author, MediaIn, RECORDING_KIND, VOICEMAIL_KIND};
    let f = fx();
    let (conv, _) = f
        .content
        .ingest("voice", "+14155550160", None, "agent-1", "[phone call]")
        .expect("call");
    let mut names = Vec::new();
    for (author, kind, body, data) in [
        (
            Author::System,
            RECORDING_KIND,
            "Call recording (1:05)",
            b"ID3 CANARY-CALL".to_vec(),
        ),
        (
            Author::Contact,
            VOICEMAIL_KIND,
            "Voicemail (0:42)",
            b"ID3 CANARY-VOICEMAIL".to_vec(),
        ),
    ] {
        let msg = f
            .content
            .append_media_once(
                &conv.id,
                author,
                body,
                &MediaIn {
                    kind: kind.into(),
                    content_type: "audio/mpeg",
                    data: data.clone(),
                },
                |_| Ok(true),
                |_, _| Ok(()),
            )
            .expect("store")
            .expect("new");
        names.push((format!("media/{kind}-{}.mp3", msg.id), data));
    }
    // The call itself (times, duration, status), and another caller's call that must not
    // be in this contact's export.
    let (other, _) = f
        .content
        .ingest("voice", "+14155550161", None, "agent-1", "[phone call]")
        .expect("other call");
    f.exports
        .store
        .with(|c| {
            c.execute(
                "INSERT INTO calls (conversation_id, sid_hash, started_at, ended_at, duration_secs, status)
                 VALUES (?1, 'h1', 1700000000, 1700000065, 65, 'completed'),
                        (?2, 'h2', 1700000100, NULL, NULL, 'in-progress')",
                rusqlite::params![conv.id, other.id],
            )?;
            Ok(())
        })
        .expect("calls");
    let scope = Scope::Contact(conv.contact_id.clone());
    let id = f.exports.create(&scope, 3600, "user-1").expect("create");
    f.exports.run(&id, &scope).expect("run");
    let (manifest, mut zip) = download(&f, &id);
    assert_eq!(rows(&manifest, "calls.csv"), 1);
    assert_eq!(
        read(&mut zip, "calls.csv"),
        format!(
            "conversation_id,started_at,ended_at,duration_seconds,status\n{},2023-11-14T22:13:20Z,2023-11-14T22:14:25Z,65,completed\n",
            conv.id
        )
    );
    for (name, data) in names {
        assert!(
            manifest.files.iter().any(|m| m.name == name),
            "{name}: {:?}",
            manifest.files
        );
        let mut got = Vec::new();
        zip.by_name(&name)
            .expect("file")
            .read_to_end(&mut got)
            .expect("read");
        assert_eq!(got, data);
    }
}
