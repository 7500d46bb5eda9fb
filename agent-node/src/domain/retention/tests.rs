use super::*;
use crate::domain::content::Author;
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
    let previewed = preview(c, messages, now).expect("preview");
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
    assert_eq!(preview(c, messages, now).expect("again"), 0);

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
        preview(c, Class::Contacts.default_policy(), now).expect("preview"),
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
