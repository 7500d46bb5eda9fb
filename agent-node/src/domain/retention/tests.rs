use super::*;
use crate::domain::content::{Author, MediaIn, RECORDING_KIND};
use crate::domain::exports::tests::fx_with;

const DAY: i64 = 86_400;

/// Backdates every message of a conversation by `days`.
fn age_messages(store: &Store, conversation: &str, days: i64) {
    store
        .with(|c| {
            c.execute(
                "UPDATE messages SET created_at = created_at - ?2 WHERE conversation_id = ?1",
                params![conversation, days * DAY],
            )?;
            c.execute(
                "UPDATE conversations SET updated_at = updated_at - ?2, created_at = created_at - ?2
                 WHERE id = ?1",
                params![conversation, days * DAY],
            )?;
            Ok(())
        })
        .expect("backdate");
}

fn age_contact(store: &Store, contact: &str, days: i64) {
    store
        .with(|c| {
            c.execute(
                "UPDATE contacts SET last_seen_at = last_seen_at - ?2 WHERE id = ?1",
                params![contact, days * DAY],
            )?;
            Ok(())
        })
        .expect("backdate");
}

#[test]
fn defaults_are_on_and_saved_policies_replace_them() {
    let f = fx_with([1; 32], "n");
    let p = policies(&f.store).expect("policies");
    assert_eq!(
        p,
        vec![
            Policy {
                class: Class::Messages,
                enabled: true,
                days: 365
            },
            Policy {
                class: Class::Contacts,
                enabled: true,
                days: 730
            },
            Policy {
                class: Class::CallLogs,
                enabled: true,
                days: 365
            },
            Policy {
                class: Class::Recordings,
                enabled: true,
                days: 730
            },
        ]
    );
    save(
        &f.store,
        Policy {
            class: Class::Messages,
            enabled: true,
            days: 30,
        },
        "u",
    )
    .expect("save");
    save(
        &f.store,
        Policy {
            class: Class::Contacts,
            enabled: false,
            days: 90,
        },
        "u",
    )
    .expect("save");
    let p = policies(&f.store).expect("policies");
    assert_eq!(p[0].days, 30);
    assert!(!p[1].enabled);
}

#[test]
fn the_sweep_deletes_exactly_what_the_preview_counted() {
    let f = fx_with([1; 32], "n");
    let c = &f.content;
    // an old conversation (400 days), a recent one, and a conversation that straddles
    let (old, _) = c
        .ingest("web", "v-old", None, "a", "old CANARY-OLD")
        .expect("old");
    c.append_message(&old.id, Author::Agent, "old answer")
        .expect("m");
    age_messages(&f.store, &old.id, 400);
    let (mixed, _) = c
        .ingest("web", "v-mixed", None, "a", "first, old")
        .expect("mixed");
    age_messages(&f.store, &mixed.id, 380);
    c.append_message(&mixed.id, Author::Agent, "recent answer")
        .expect("m");
    let (new, _) = c
        .ingest("web", "v-new", None, "a", "new question")
        .expect("new");

    let now = store::now();
    let messages = Class::Messages.default_policy();
    let previewed = preview(&f.store, c, messages, now).expect("preview");
    assert_eq!(previewed, 3);
    let result = sweep(&f.store, c, Some(&f.exports), now).expect("sweep");
    assert_eq!(
        result.messages_deleted, previewed,
        "preview count = deleted count"
    );
    assert_eq!(
        result.contacts_erased, 0,
        "contacts were active within 730 days"
    );

    assert!(c.messages_after(&new.id, 0, 10).expect("new").len() == 1);
    let mixed_left = c.messages_after(&mixed.id, 0, 10).expect("mixed");
    assert_eq!(
        mixed_left
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        ["recent answer"]
    );
    assert!(
        c.conversation(&old.id).expect("get").is_none(),
        "an emptied old conversation goes"
    );
    assert_eq!(preview(&f.store, c, messages, now).expect("again"), 0);

    let recorded = sweeps_since(&f.store, now - 1).expect("sweeps");
    assert_eq!(recorded, vec![result.clone()]);
    assert_eq!(last_sweep(&f.store).expect("last"), Some(result));
    assert!(!due(&f.store, now + 60).expect("due"));
    assert!(due(&f.store, now + SWEEP_EVERY_SECS).expect("due"));
}

#[test]
fn inactive_contacts_are_erased_with_a_record_and_disabled_classes_are_left_alone() {
    let f = fx_with([1; 32], "n");
    let c = &f.content;
    let (stale, _) = c
        .ingest("telegram", "111", Some("Stale CANARY"), "a", "hi")
        .expect("stale");
    age_messages(&f.store, &stale.id, 800);
    age_contact(&f.store, &stale.contact_id, 800);
    let (active, _) = c
        .ingest("telegram", "222", None, "a", "hello")
        .expect("active");
    age_contact(&f.store, &active.contact_id, 800);
    // the contact row is old, but a conversation moved recently: still active

    save(
        &f.store,
        Policy {
            class: Class::Messages,
            enabled: false,
            days: 365,
        },
        "u",
    )
    .expect("off");
    let now = store::now();
    assert_eq!(
        preview(&f.store, c, Class::Contacts.default_policy(), now).expect("preview"),
        1
    );
    let result = sweep(&f.store, c, None, now).expect("sweep");
    assert_eq!(result.contacts_erased, 1);
    assert_eq!(result.messages_deleted, 0);
    assert!(c.contact(&stale.contact_id).expect("get").is_none());
    assert!(c.contact(&active.contact_id).expect("get").is_some());
    let erasures = c.erasures(10).expect("erasures");
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0].erased_by, RETENTION_ACTOR);
}

/// A call from `caller` with one transcript turn, a `calls` row and a recording, all
/// backdated by `days`.
fn old_call(f: &crate::domain::exports::tests::Fx, caller: &str, days: i64) -> String {
    let c = &f.content;
    let (conv, _) = c
        .ingest("voice", caller, None, "a", "when are you open CANARY-CALL")
        .expect("call");
    f.store
        .with(|db| {
            db.execute(
                "INSERT INTO calls (conversation_id, sid_hash, started_at, status)
                 VALUES (?1, ?2, ?3, 'completed')",
                params![conv.id, format!("sid-{caller}"), store::now()],
            )?;
            Ok(())
        })
        .expect("calls row");
    c.append_media_once(
        &conv.id,
        Author::System,
        "Call recording (0:42)",
        &MediaIn {
            kind: RECORDING_KIND.into(),
            content_type: "audio/mpeg",
            data: b"ID3 fake mp3".to_vec(),
        },
        |_| Ok(true),
        |_, _| Ok(()),
    )
    .expect("recording")
    .expect("new");
    age_messages(&f.store, &conv.id, days);
    f.store
        .with(|db| {
            db.execute(
                "UPDATE calls SET started_at = started_at - ?2 WHERE conversation_id = ?1",
                params![conv.id, days * DAY],
            )?;
            Ok(())
        })
        .expect("backdate call");
    conv.id
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .with(|c| Ok(c.query_row(sql, [], |r| r.get(0))?))
        .expect("count")
}

#[test]
fn the_sweep_removes_old_call_logs_and_old_recordings_and_keeps_recent_ones() {
    let f = fx_with([1; 32], "n");
    let c = &f.content;
    // 800 days: log, transcript and recording out of their periods.
    let ancient = old_call(&f, "+14155550101", 800);
    // 400 days: log and transcript out (365), the recording kept (730).
    let older = old_call(&f, "+14155550102", 400);
    // 10 days: everything kept.
    let recent = old_call(&f, "+14155550103", 10);
    // Chat older than a year goes with the messages' period, as before.
    let (chat, _) = c.ingest("web", "v1", None, "a", "old chat").expect("chat");
    age_messages(&f.store, &chat.id, 400);

    let now = store::now();
    let all = policies(&f.store).expect("policies");
    let of = |class| *all.iter().find(|p| p.class == class).expect("class");
    assert_eq!(
        preview(&f.store, c, of(Class::CallLogs), now).expect("p"),
        2
    );
    assert_eq!(
        preview(&f.store, c, of(Class::Recordings), now).expect("p"),
        1
    );
    assert_eq!(
        preview(&f.store, c, of(Class::Messages), now).expect("p"),
        1,
        "the messages' period counts no call turn and no recording"
    );
    sweep(&f.store, c, None, now).expect("sweep");

    let calls = |conv: &str| {
        f.store
            .with(|db| {
                Ok(db.query_row(
                    "SELECT COUNT(*) FROM calls WHERE conversation_id = ?1",
                    [conv],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .expect("calls")
    };
    let bodies = |conv: &str| -> Vec<String> {
        c.messages_after(conv, 0, 10)
            .expect("messages")
            .into_iter()
            .map(|m| m.body)
            .collect()
    };
    // The ancient call: no log, no turn, no recording left.
    assert_eq!(calls(&ancient), 0);
    assert!(c.media_of_conversation(&ancient).expect("media").is_empty());
    assert_eq!(bodies(&ancient), ["Call recording (0:42)"]);
    // The older call: log and turn gone, the recording kept for its own period.
    assert_eq!(calls(&older), 0);
    assert_eq!(bodies(&older), ["Call recording (0:42)"]);
    assert_eq!(c.media_of_conversation(&older).expect("media").len(), 1);
    // The recent call: untouched.
    assert_eq!(calls(&recent), 1);
    assert_eq!(bodies(&recent).len(), 2);
    assert_eq!(c.media_of_conversation(&recent).expect("media").len(), 1);
    assert!(c.conversation(&chat.id).expect("chat").is_none());
    assert_eq!(
        count(
            &f.store,
            "SELECT COUNT(*) FROM message_media WHERE kind = 'recording'"
        ),
        2
    );
}
