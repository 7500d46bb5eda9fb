//! Long because it tests the content store end to end: one test per behaviour, cited by PRIVACY.md.

use super::*;
use crate::platform::store;

struct Fx {
    dir: tempfile::TempDir,
    content: Content,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let content = Content::new(store, &MasterKey::from_bytes([9; 32]));
    Fx { dir, content }
}

#[test]
fn contact_conversation_and_messages_round_trip() {
    let f = fx();
    let c = &f.content;
    let contact = c
        .contact_for_identity("telegram", "12345", Some("Ada"))
        .expect("contact");
    let conv = c
        .current_conversation(&contact, "agent-1", "telegram")
        .expect("conversation");
    assert_eq!(conv.status, ConversationStatus::Open);
    assert_eq!(
        c.current_conversation(&contact, "agent-1", "telegram")
            .expect("same")
            .id,
        conv.id
    );
    let m1 = c
        .append_message(&conv.id, Author::Contact, "Hello, are you open?")
        .expect("m1");
    let m2 = c
        .append_message(&conv.id, Author::Agent, "Yes, until 6pm.")
        .expect("m2");
    let m3 = c
        .append_message(&conv.id, Author::Contact, "Thanks")
        .expect("m3");
    assert!(m1.id < m2.id && m2.id < m3.id);
    let all = c.messages_after(&conv.id, 0, 100).expect("all");
    assert_eq!(
        all.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["Hello, are you open?", "Yes, until 6pm.", "Thanks"]
    );
    assert_eq!(all[1].author, Author::Agent);
    let after = c.messages_after(&conv.id, m1.id, 1).expect("after");
    assert_eq!(after, vec![m2.clone()]);
    let recent = c.recent_messages(&conv.id, 2).expect("recent");
    assert_eq!(recent, vec![m2, m3]);
    assert_eq!(
        c.conversation(&conv.id).expect("get").expect("some").id,
        conv.id
    );
    assert!(c.conversation("nope").expect("get").is_none());
    assert!(matches!(
        c.append_message("nope", Author::Agent, "x"),
        Err(ContentError::NotFound)
    ));
    assert!(matches!(
        c.current_conversation("nope", "agent-1", "web"),
        Err(ContentError::NotFound)
    ));

    let list = c.list_conversations(None, 10).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].contact_name, "Ada");
    assert_eq!(list[0].preview, "Thanks");
    assert_eq!(list[0].last_author, Some(Author::Contact));
    assert!(c
        .list_conversations(Some(ConversationStatus::Closed), 10)
        .expect("closed")
        .is_empty());

    let d = c.contact(&contact).expect("contact").expect("some");
    assert_eq!(d.identity, "12345");
    assert_eq!(d.name.as_deref(), Some("Ada"));
    assert_eq!(d.channel, "telegram");
}

#[test]
fn contact_for_identity_is_idempotent_per_channel() {
    let f = fx();
    let c = &f.content;
    let a = c.contact_for_identity("telegram", "42", None).expect("a");
    let b = c
        .contact_for_identity("telegram", "42", Some("Bob"))
        .expect("b");
    let w = c.contact_for_identity("whatsapp", "42", None).expect("w");
    assert_eq!(a, b);
    assert_ne!(a, w);
    // the name is learned once, a later channel name does not overwrite it
    c.contact_for_identity("telegram", "42", Some("Robert"))
        .expect("again");
    let d = c.contact(&a).expect("get").expect("some");
    assert_eq!(d.display_name, "Bob");
    let unnamed = c.contact(&w).expect("get").expect("some");
    assert!(unnamed.display_name.starts_with("WhatsApp contact "));
}

#[test]
fn visitors_get_a_token_bound_to_the_agent() {
    let f = fx();
    let c = &f.content;
    let (token, contact) = c.create_visitor("agent-1").expect("visitor");
    assert_eq!(
        c.visitor_contact(&token, "agent-1").expect("lookup"),
        Some(contact.clone())
    );
    assert_eq!(c.visitor_contact(&token, "agent-2").expect("lookup"), None);
    assert_eq!(
        c.visitor_contact("garbage", "agent-1").expect("lookup"),
        None
    );
    let d = c.contact(&contact).expect("get").expect("some");
    assert_eq!(d.channel, "web");
    assert_eq!(d.display_name, format!("Web visitor {}", &contact[..4]));
    assert_ne!(d.identity, token, "the visitor id is not the token");
}

#[test]
fn usage_is_counted_per_channel_and_hour() {
    let f = fx();
    let c = &f.content;
    let hour = hour_of(store::now());
    let t = c.contact_for_identity("telegram", "1", None).expect("t");
    let w = c.contact_for_identity("web", "v1", None).expect("w");
    let tc = c.current_conversation(&t, "a", "telegram").expect("tc");
    let wc = c.current_conversation(&w, "a", "web").expect("wc");
    c.append_message(&tc.id, Author::Contact, "in").expect("m");
    c.append_message(&tc.id, Author::Contact, "in").expect("m");
    c.append_message(&tc.id, Author::Agent, "out").expect("m");
    c.append_message(&tc.id, Author::Human, "out").expect("m");
    c.append_message(&tc.id, Author::System, "sys").expect("m");
    c.append_message(&wc.id, Author::Contact, "in").expect("m");
    let counts = c.counts_since(hour - 3600).expect("counts");
    let get = |ch: &str| {
        counts
            .iter()
            .find(|b| b.channel == ch)
            .cloned()
            .expect("bucket")
    };
    let tb = get("telegram");
    assert_eq!(tb.hour, hour);
    assert_eq!(tb.hour % 3600, 0);
    assert_eq!((tb.inbound, tb.outbound, tb.conversations), (2, 2, 1));
    let wb = get("web");
    assert_eq!((wb.inbound, wb.outbound, wb.conversations), (1, 0, 1));
    assert!(c.counts_since(hour + 3600).expect("later").is_empty());
}

#[test]
fn status_transitions_write_system_messages_and_timeline_events() {
    let f = fx();
    let c = &f.content;
    let contact = c.contact_for_identity("web", "v", None).expect("contact");
    let conv = c.current_conversation(&contact, "a", "web").expect("conv");
    c.append_message(&conv.id, Author::Contact, "hi")
        .expect("m");
    let taken = c
        .set_status(&conv.id, ConversationStatus::Human, "user-7")
        .expect("takeover");
    assert_eq!(taken.status, ConversationStatus::Human);
    // same status again: nothing new
    c.set_status(&conv.id, ConversationStatus::Human, "user-7")
        .expect("again");
    c.set_status(&conv.id, ConversationStatus::Open, "user-7")
        .expect("handback");
    c.set_status(&conv.id, ConversationStatus::Closed, "user-8")
        .expect("close");
    let msgs = c.messages_after(&conv.id, 0, 100).expect("msgs");
    let system: Vec<_> = msgs
        .iter()
        .filter(|m| m.author == Author::System)
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(
        system,
        [
            "A team member joined the conversation",
            "A team member handed the conversation back to the assistant",
            "Conversation closed"
        ]
    );
    let tl = c.timeline(&contact, 100).expect("timeline");
    let events: Vec<_> = tl
        .iter()
        .filter_map(|e| match &e.kind {
            TimelineKind::Event(k) if k.starts_with("conversation_") => {
                Some((k.as_str(), e.actor.as_deref()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [
            ("conversation_closed", Some("user-8")),
            ("conversation_handback", Some("user-7")),
            ("conversation_takeover", Some("user-7")),
        ]
    );
    // system messages are not counted
    let counts = c.counts_since(0).expect("counts");
    assert_eq!((counts[0].inbound, counts[0].outbound), (1, 0));
    assert_eq!(
        c.list_conversations(Some(ConversationStatus::Closed), 10)
            .expect("closed")
            .len(),
        1
    );
}

#[test]
fn a_contact_message_reopens_a_closed_conversation() {
    let f = fx();
    let c = &f.content;
    let contact = c.contact_for_identity("web", "v", None).expect("contact");
    let conv = c.current_conversation(&contact, "a", "web").expect("conv");
    c.set_status(&conv.id, ConversationStatus::Closed, "u")
        .expect("close");
    // the agent writing does not reopen
    c.append_message(&conv.id, Author::Agent, "bye").expect("m");
    assert_eq!(
        c.conversation(&conv.id).expect("get").expect("some").status,
        ConversationStatus::Closed
    );
    c.append_message(&conv.id, Author::Contact, "one more thing")
        .expect("m");
    assert_eq!(
        c.conversation(&conv.id).expect("get").expect("some").status,
        ConversationStatus::Open
    );
    // a new current_conversation after closing starts a fresh one
    c.set_status(&conv.id, ConversationStatus::Closed, "u")
        .expect("close");
    let next = c.current_conversation(&contact, "a", "web").expect("next");
    assert_ne!(next.id, conv.id);
}

#[test]
fn crm_updates_notes_and_followups() {
    let f = fx();
    let c = &f.content;
    let id = c
        .contact_for_identity("whatsapp", "+4915100000", None)
        .expect("c");
    c.update_contact(
        &id,
        ContactUpdate {
            name: Some("  Grace  ".into()),
            stage: Some(Stage::Qualified),
            score: Some(70),
            tags: Some(vec![
                "vip".into(),
                " vip ".into(),
                "".into(),
                "dental".into(),
            ]),
            ..Default::default()
        },
        "user-1",
    )
    .expect("update");
    let d = c.contact(&id).expect("get").expect("some");
    assert_eq!(d.name.as_deref(), Some("Grace"));
    assert_eq!(d.stage, Stage::Qualified);
    assert_eq!(d.score, 70);
    assert_eq!(d.tags, ["vip", "dental"]);
    assert!(matches!(
        c.update_contact(
            &id,
            ContactUpdate {
                score: Some(101),
                ..Default::default()
            },
            "u"
        ),
        Err(ContentError::Invalid(_))
    ));
    assert!(matches!(
        c.update_contact("nope", ContactUpdate::default(), "u"),
        Err(ContentError::NotFound)
    ));
    // unchanged fields record nothing
    c.update_contact(
        &id,
        ContactUpdate {
            stage: Some(Stage::Qualified),
            ..Default::default()
        },
        "u",
    )
    .expect("noop");
    assert_eq!(
        c.list_contacts(Some(Stage::Qualified), 10)
            .expect("list")
            .len(),
        1
    );
    assert!(c
        .list_contacts(Some(Stage::Won), 10)
        .expect("list")
        .is_empty());

    c.add_note(&id, "Prefers mornings", "user-2").expect("note");
    assert!(matches!(
        c.add_note(&id, "  ", "u"),
        Err(ContentError::Invalid(_))
    ));
    let now = store::now();
    let due = c
        .add_followup(&id, FollowupKind::Reminder, now - 10, "Call back", "user-2")
        .expect("due");
    let later = c
        .add_followup(
            &id,
            FollowupKind::Message,
            now + 3600,
            "Checkup reminder",
            "user-2",
        )
        .expect("later");
    let due_now = c.due_followups(now).expect("due");
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].id, due);
    assert_eq!(due_now[0].text, "Call back");
    assert_eq!(c.due_followups(now + 7200).expect("due").len(), 2);
    c.complete_followup(&due, "user-3").expect("done");
    c.complete_followup(&due, "user-3").expect("done twice");
    assert!(matches!(
        c.complete_followup("nope", "u"),
        Err(ContentError::NotFound)
    ));
    let due_now = c.due_followups(now + 7200).expect("due");
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].id, later);
    let all = c.followups(&id, 10).expect("all");
    assert_eq!(all[0].id, later, "pending first");
    assert_eq!(all[1].status, FollowupStatus::Done);

    let tl = c.timeline(&id, 100).expect("timeline");
    let kinds: Vec<String> = tl
        .iter()
        .filter_map(|e| match &e.kind {
            TimelineKind::Event(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    for k in [
        "created",
        "name_changed",
        "stage_changed",
        "score_changed",
        "tags_changed",
        "note",
        "followup_done",
    ] {
        assert_eq!(
            kinds.iter().filter(|x| *x == k).count(),
            1,
            "{k}: {kinds:?}"
        );
    }
    assert!(tl
        .iter()
        .any(|e| e.text == "Prefers mornings" && e.actor.as_deref() == Some("user-2")));
    assert_eq!(
        tl.iter()
            .filter(|e| matches!(e.kind, TimelineKind::Followup { .. }))
            .count(),
        2
    );
    assert!(tl.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
    assert_eq!(c.timeline(&id, 3).expect("short").len(), 3);
    assert!(matches!(c.timeline("nope", 3), Err(ContentError::NotFound)));
}

#[test]
fn wrong_master_key_cannot_read_content() {
    let f = fx();
    let id = f
        .content
        .contact_for_identity("web", "v", Some("Name"))
        .expect("c");
    let other = Content::new(f.content.store.clone(), &MasterKey::from_bytes([1; 32]));
    assert!(matches!(other.contact(&id), Err(ContentError::Crypto)));
}

#[test]
fn canary_content_never_reaches_the_database_files_in_plaintext() {
    const CANARY: &str = "canary-content-51d2";
    const ID_CANARY: &str = "canary-identity-9e4f";
    let f = fx();
    let c = &f.content;
    let id = c
        .contact_for_identity("telegram", ID_CANARY, Some(&format!("name {CANARY}")))
        .expect("contact");
    let conv = c.current_conversation(&id, "a", "telegram").expect("conv");
    c.append_message(&conv.id, Author::Contact, &format!("body {CANARY}"))
        .expect("message");
    c.update_contact(
        &id,
        ContactUpdate {
            name: Some(format!("renamed {CANARY}")),
            tags: Some(vec![format!("tag-{CANARY}")]),
            ..Default::default()
        },
        "u",
    )
    .expect("update");
    c.add_note(&id, &format!("note {CANARY}"), "u")
        .expect("note");
    c.add_followup(&id, FollowupKind::Reminder, 0, &format!("fu {CANARY}"), "u")
        .expect("followup");
    // everything reads back
    let d = c.contact(&id).expect("get").expect("some");
    assert!(d.display_name.contains(CANARY) && d.identity == ID_CANARY);
    assert!(d.tags[0].contains(CANARY));

    let db = f.dir.path().join("node.db");
    let wal = f.dir.path().join("node.db-wal");
    let mut checked = 0;
    for path in [db, wal] {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += bytes.len();
        for needle in [CANARY, ID_CANARY] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {}",
                path.display()
            );
        }
    }
    assert!(checked > 0, "database files were read");
}

#[test]
fn erasing_a_contact_removes_its_key_and_rows() {
    let f = fx();
    let c = &f.content;
    let (token, id) = c.create_visitor("a").expect("visitor");
    let conv = c.current_conversation(&id, "a", "web").expect("conv");
    c.append_message(&conv.id, Author::Contact, "hello")
        .expect("m");
    c.add_note(&id, "note", "u").expect("note");
    c.add_followup(&id, FollowupKind::Reminder, 0, "fu", "u")
        .expect("followup");
    let keep = c.contact_for_identity("web", "other", None).expect("other");
    let record = c.erase_contact(&id, "u1").expect("erase");
    assert_eq!(c.erasures(10).expect("list"), vec![record.clone()]);
    assert_eq!(record.erased_by, "u1");
    assert_eq!(
        record.contact_hash.len(),
        64,
        "a keyed hash, not the identity"
    );
    assert!(c.contact(&id).expect("get").is_none());
    assert!(c.conversation(&conv.id).expect("get").is_none());
    assert_eq!(c.visitor_contact(&token, "a").expect("lookup"), None);
    assert!(c.due_followups(i64::MAX).expect("due").is_empty());
    let left: i64 = c
        .store
        .with(|db| {
            Ok(db.query_row(
                "SELECT (SELECT COUNT(*) FROM contact_keys WHERE contact_id = ?1)
                      + (SELECT COUNT(*) FROM messages WHERE contact_id = ?1)
                      + (SELECT COUNT(*) FROM contact_events WHERE contact_id = ?1)",
                [&id],
                |r| r.get(0),
            )?)
        })
        .expect("count");
    assert_eq!(left, 0);
    assert!(c.contact(&keep).expect("get").is_some());
    assert!(matches!(
        c.erase_contact(&id, "u1"),
        Err(ContentError::NotFound)
    ));
    assert_eq!(
        c.counts_since(0).expect("counts")[0].inbound,
        1,
        "counts stay"
    );
}

#[test]
fn ingest_is_contact_conversation_and_message_in_one_step() {
    let f = fx();
    let c = &f.content;
    let (conv, m1) = c
        .ingest("whatsapp", "+15550001", Some("Ana"), "a1", "Hello")
        .expect("ingest");
    let (again, m2) = c
        .ingest("whatsapp", "+15550001", None, "a1", "Are you open?")
        .expect("ingest");
    assert_eq!(conv.id, again.id, "same conversation");
    assert!(m2.id > m1.id);
    let contact = c
        .contact_for_identity("whatsapp", "+15550001", None)
        .expect("contact");
    assert_eq!(
        contact, conv.contact_id,
        "same contact as the one-by-one API finds"
    );
    assert_eq!(
        c.contact(&contact)
            .expect("get")
            .expect("some")
            .display_name,
        "Ana"
    );
    let texts: Vec<String> = c
        .messages_after(&conv.id, 0, 10)
        .expect("messages")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(texts, ["Hello", "Are you open?"]);
    let counts = c.counts_since(0).expect("counts");
    assert_eq!((counts[0].inbound, counts[0].conversations), (2, 1));
}

#[test]
fn an_erased_contact_stays_unreadable_in_a_copy_of_the_database_taken_before() {
    let f = fx();
    let c = &f.content;
    let gone = c
        .contact_for_identity("whatsapp", "+15550009", Some("Eve"))
        .expect("contact");
    let conv = c
        .current_conversation(&gone, "a1", "whatsapp")
        .expect("conv");
    c.append_message(&conv.id, Author::Contact, "my card is canary-erase-4417")
        .expect("message");
    let kept = c
        .contact_for_identity("web", "v-keep", Some("Kim"))
        .expect("contact");

    // A backup of the database (and its WAL) before the erasure.
    let backup = tempfile::tempdir().expect("tempdir");
    for name in ["node.db", "node.db-wal"] {
        let from = f.dir.path().join(name);
        if from.exists() {
            std::fs::copy(&from, backup.path().join(name)).expect("copy");
        }
    }
    c.erase_contact(&gone, "u1").expect("erase");
    assert!(
        c.contact(&kept).expect("read").is_some(),
        "the others stay readable"
    );
    assert_eq!(
        c.contact(&kept).expect("read").expect("kim").display_name,
        "Kim"
    );

    // The attacker has the old copy, the master key and today's key files.
    let stolen_keys = backup.path().join("keys");
    std::fs::create_dir_all(&stolen_keys).expect("dir");
    for e in std::fs::read_dir(f.dir.path().join("keys"))
        .expect("keys")
        .flatten()
    {
        std::fs::copy(e.path(), stolen_keys.join(e.file_name())).expect("copy");
    }
    let old = Arc::new(Store::open(&backup.path().join("node.db")).expect("open copy"));
    let thief = Content::new(old.clone(), &MasterKey::from_bytes([9; 32]));
    assert!(
        matches!(
            thief.messages_after(&conv.id, 0, 10),
            Err(ContentError::Crypto)
        ),
        "the erased contact's messages cannot be decrypted from the old copy"
    );
    assert!(matches!(thief.contact(&gone), Err(ContentError::Crypto)));
    // And the plaintext is in no file of the live node.
    let mut bytes = std::fs::read(f.dir.path().join("node.db")).expect("db");
    bytes.extend(std::fs::read(f.dir.path().join("node.db-wal")).unwrap_or_default());
    assert!(!bytes.windows(13).any(|w| w == b"canary-erase-"));
    // Only the newest KEK file is left.
    let kek_files = std::fs::read_dir(f.dir.path().join("keys"))
        .expect("keys")
        .count();
    assert_eq!(kek_files, 1);
}

/// Issue 13: the team can give a contact an email address and a phone number; both are
/// checked, read back decrypted, listed, can be cleared, and each change is on the timeline.
#[test]
fn email_and_phone_are_checked_stored_and_cleared() {
    let f = fx();
    let c = &f.content;
    let id = c.contact_for_identity("web", "v-email", None).expect("c");
    c.update_contact(
        &id,
        ContactUpdate {
            email: Some("  jane.doe@example.com ".into()),
            phone: Some("+49 (30) 123-45.67".into()),
            ..Default::default()
        },
        "user-1",
    )
    .expect("update");
    let d = c.contact(&id).expect("get").expect("some");
    assert_eq!(d.email.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(d.phone.as_deref(), Some("+49 (30) 123-45.67"));
    let listed = c.list_contacts(None, 10).expect("list");
    assert_eq!(listed[0].email.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(listed[0].phone.as_deref(), Some("+49 (30) 123-45.67"));

    // A refused value refuses the whole update: nothing changes.
    for (email, phone) in [
        ("jane@@example.org", "5"),
        ("jane doe@example.org", "5"),
        ("jane.example.org", "5"),
        ("jane@example", "5"),
        ("@example.org", "5"),
        ("jane@example.org.", "5"),
        ("ok@example.org", "call me"),
        ("ok@example.org", "+1 555 0100 ext. 12"),
        ("ok@example.org", "()"),
    ] {
        let refused = c.update_contact(
            &id,
            ContactUpdate {
                name: Some("Changed".into()),
                email: Some(email.into()),
                phone: Some(phone.into()),
                ..Default::default()
            },
            "u",
        );
        assert!(
            matches!(refused, Err(ContentError::Invalid(m)) if !m.contains(email) && !m.contains(phone)),
            "{email} / {phone}: the message does not quote the value"
        );
    }
    let long_email = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long_email.len(), 255);
    assert!(check_email(&long_email).is_err());
    assert!(check_email(&long_email[1..]).is_ok(), "254 characters pass");
    assert!(check_phone(&"1".repeat(33)).is_err());
    assert!(check_phone(&"1".repeat(32)).is_ok());
    let d = c.contact(&id).expect("get").expect("some");
    assert_eq!(d.name, None);
    assert_eq!(d.email.as_deref(), Some("jane.doe@example.com"));

    // Leaving a field out keeps it; an empty one clears it.
    c.update_contact(
        &id,
        ContactUpdate {
            email: Some(" ".into()),
            ..Default::default()
        },
        "user-2",
    )
    .expect("clear");
    let d = c.contact(&id).expect("get").expect("some");
    assert_eq!(
        (d.email, d.phone.as_deref()),
        (None, Some("+49 (30) 123-45.67"))
    );

    let events: Vec<(String, String)> = c
        .timeline(&id, 100)
        .expect("timeline")
        .into_iter()
        .filter_map(|e| match e.kind {
            TimelineKind::Event(k) if k != "created" => Some((k, e.text)),
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [
            ("email_changed".to_owned(), "Email removed".to_owned()),
            (
                "phone_changed".to_owned(),
                "Phone set to +49 (30) 123-45.67".to_owned()
            ),
            (
                "email_changed".to_owned(),
                "Email set to jane.doe@example.com".to_owned()
            ),
        ]
    );
}

/// Issue 13: email and phone are sealed under the contact's key like the name: no
/// plaintext in the database files, and after an erasure a copy taken before cannot be
/// read for them.
#[test]
fn an_erased_contacts_email_and_phone_are_unreadable_in_a_copy_taken_before() {
    const EMAIL: &str = "canary-mail-7f3a@example.com";
    const PHONE: &str = "+1 555 0199 7731";
    let f = fx();
    let c = &f.content;
    let gone = c.contact_for_identity("telegram", "555", None).expect("c");
    c.update_contact(
        &gone,
        ContactUpdate {
            email: Some(EMAIL.into()),
            phone: Some(PHONE.into()),
            ..Default::default()
        },
        "u",
    )
    .expect("update");
    let files = |dir: &std::path::Path| {
        let mut bytes = std::fs::read(dir.join("node.db")).expect("db");
        bytes.extend(std::fs::read(dir.join("node.db-wal")).unwrap_or_default());
        bytes
    };
    let live = files(f.dir.path());
    for needle in [EMAIL, PHONE] {
        assert!(
            !live.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} is in the database files in plaintext"
        );
    }

    let backup = tempfile::tempdir().expect("tempdir");
    for name in ["node.db", "node.db-wal"] {
        let from = f.dir.path().join(name);
        if from.exists() {
            std::fs::copy(&from, backup.path().join(name)).expect("copy");
        }
    }
    c.erase_contact(&gone, "u1").expect("erase");
    assert!(c.contact(&gone).expect("get").is_none());

    // The old copy still holds the sealed values, but with the master key and today's key
    // files they no longer open.
    let stolen_keys = backup.path().join("keys");
    std::fs::create_dir_all(&stolen_keys).expect("dir");
    for e in std::fs::read_dir(f.dir.path().join("keys"))
        .expect("keys")
        .flatten()
    {
        std::fs::copy(e.path(), stolen_keys.join(e.file_name())).expect("copy");
    }
    let old = Arc::new(Store::open(&backup.path().join("node.db")).expect("open copy"));
    let sealed: (Option<Vec<u8>>, Option<Vec<u8>>) = old
        .with(|db| {
            Ok(db.query_row(
                "SELECT email_ct, phone_ct FROM contacts WHERE id = ?1",
                [&gone],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .expect("old row");
    assert!(
        sealed.0.is_some() && sealed.1.is_some(),
        "sealed in the copy"
    );
    let thief = Content::new(old, &MasterKey::from_bytes([9; 32]));
    assert!(matches!(thief.contact(&gone), Err(ContentError::Crypto)));
    assert!(matches!(
        thief.list_contacts(None, 10),
        Err(ContentError::Crypto)
    ));
}

/// Issue 13: a conversation the assistant queued for a person is waiting for the team,
/// not "taken over"; a team member taking it over ends the wait.
#[test]
fn a_customer_asking_for_a_person_waits_for_the_team_until_someone_takes_over() {
    let f = fx();
    let c = &f.content;
    let store = c.store.clone();
    let contact = c.contact_for_identity("web", "v-1", None).expect("contact");
    let conv = c
        .current_conversation(&contact, "agent-1", "web")
        .expect("conversation");
    assert_eq!(waiting_count(&store).expect("count"), 0);

    let queued = c
        .set_status(&conv.id, ConversationStatus::Human, AGENT_ACTOR)
        .expect("queued");
    assert!(queued.waiting_since.is_some());
    assert!(!queued.taken_over(), "nobody took it over");
    assert_eq!(queued.status_label(), "Waiting for the team");
    assert_eq!(waiting_count(&store).expect("count"), 1);
    let listed = c.list_conversations(None, 10).expect("list");
    assert!(listed[0].waiting_since.is_some());

    // The same status set by a team member is a takeover: the wait ends.
    let taken = c
        .set_status(&conv.id, ConversationStatus::Human, "user-7")
        .expect("taken");
    assert!(taken.taken_over() && taken.waiting_since.is_none());
    assert_eq!(taken.status_label(), "Taken over");
    assert_eq!(waiting_count(&store).expect("count"), 0);
    let texts: Vec<String> = c
        .messages_after(&conv.id, 0, 10)
        .expect("messages")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        texts,
        [
            "Waiting for a member of the team",
            "A team member joined the conversation"
        ]
    );

    // Handing back or closing a waiting conversation ends the wait too.
    c.set_status(&conv.id, ConversationStatus::Open, "user-7")
        .expect("back");
    c.set_status(&conv.id, ConversationStatus::Human, AGENT_ACTOR)
        .expect("queued again");
    c.set_status(&conv.id, ConversationStatus::Closed, "user-7")
        .expect("closed");
    assert_eq!(waiting_count(&store).expect("count"), 0);
}

/// Issue 13: conversations held on the console's "Try it here" page are kept and listed
/// as tests, and left out of the usage counts the control plane receives.
#[test]
fn try_it_here_conversations_are_kept_as_tests_and_not_counted() {
    let f = fx();
    let c = &f.content;
    let staff = c
        .contact_for_identity("web", "v-staff", None)
        .expect("contact");
    let test = c
        .current_conversation(&staff, "agent-1", TEST_CHANNEL)
        .expect("conversation");
    c.append_message(&test.id, Author::Contact, "Do you open on Saturdays?")
        .expect("in");
    c.append_message(&test.id, Author::Agent, "Yes, 9 to 12.")
        .expect("out");
    assert!(
        c.counts_since(0).expect("counts").is_empty(),
        "a test conversation counts nothing"
    );
    let listed = c.list_conversations(None, 10).expect("list");
    assert_eq!(listed.len(), 1, "it is kept and listed");
    assert_eq!(channel_label(&listed[0].channel), "Test (Try it here)");

    // A real visitor is counted as before.
    let visitor = c
        .contact_for_identity("web", "v-real", None)
        .expect("contact");
    let real = c
        .current_conversation(&visitor, "agent-1", "web")
        .expect("conversation");
    c.append_message(&real.id, Author::Contact, "Hello")
        .expect("in");
    let counts = c.counts_since(0).expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].channel.as_str(),
            counts[0].inbound,
            counts[0].conversations
        ),
        ("web", 1, 1)
    );
}
