//! The outbox against a real database (SQLite, or PostgreSQL with `TEST_DATABASE_URL`) and
//! the real dev-outbox transport: a transport that refuses is a directory that cannot be
//! created (a file stands where it should be), as a full or read-only disk would be.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::infra::db::ScratchDb;
use crate::infra::schema::mail_outbox as m;
use diesel::prelude::*;
use std::path::Path;

struct Fixture {
    _dir: tempfile::TempDir,
    _scratch: ScratchDb,
    pool: DbPool,
    outbox: std::path::PathBuf,
    mailer: Mailer,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let scratch = ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
    let pool = db::connect(&scratch.url).unwrap();
    let outbox = dir.path().join("outbox");
    Fixture {
        mailer: Mailer::DevOutbox(outbox.clone()),
        outbox,
        pool,
        _scratch: scratch,
        _dir: dir,
    }
}

/// The transport is down: a file where the outbox directory goes.
fn break_transport(outbox: &Path) {
    std::fs::write(outbox, "not a directory").unwrap();
}

fn mend_transport(outbox: &Path) {
    std::fs::remove_file(outbox).unwrap();
}

fn files(outbox: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(outbox)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

fn queue(pool: &DbPool, to: &[&str], subject: &str) {
    let mut conn = pool.get().unwrap();
    let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
    db::transaction::<_, crate::error::AppError, _>(&mut conn, |c| {
        enqueue(
            c,
            &to,
            subject,
            "Hello\r\nhttps://cp.test/invitations/accept?token=t\r\n",
        )
    })
    .unwrap();
}

/// (state, attempts, next_attempt_at, body, last_error) of every row, oldest first.
type Row = (String, i32, i64, String, Option<String>);

fn rows(pool: &DbPool) -> Vec<Row> {
    let mut conn = pool.get().unwrap();
    m::table
        .order(m::id)
        .select((
            m::state,
            m::attempts,
            m::next_attempt_at,
            m::body,
            m::last_error,
        ))
        .load(&mut conn)
        .unwrap()
}

const RETRY: Retry = Retry {
    max_attempts: 4,
    first_delay_s: 10,
};

#[actix_web::test]
async fn a_refused_email_is_retried_with_backoff_and_sent_once_when_the_transport_is_back() {
    let f = fixture();
    break_transport(&f.outbox);
    queue(&f.pool, &["owner@acme.test"], "Outpost: Acme is ready");
    // Later than the clock, so the schedule is the test's own.
    let t0 = db::now() + 1000;
    let pass = |now| deliver_due(&f.pool, &f.mailer, &RETRY, "w1", now, 100);

    let p = pass(t0).await.unwrap();
    assert_eq!(
        p,
        Pass {
            retried: 1,
            ..Pass::default()
        }
    );
    let r = &rows(&f.pool)[0];
    assert_eq!((r.0.as_str(), r.1, r.2), ("queued", 1, t0 + 10));
    assert_eq!(r.4.as_deref(), Some("outbox: io"));
    // Not due before its time.
    assert_eq!(pass(t0 + 9).await.unwrap(), Pass::default());
    // The second failure waits twice as long.
    assert_eq!(pass(t0 + 10).await.unwrap().retried, 1);
    assert_eq!(rows(&f.pool)[0].2, t0 + 10 + 20);

    mend_transport(&f.outbox);
    assert_eq!(pass(t0 + 30).await.unwrap().sent, 1);
    // Once: nothing is due any more, ever.
    assert_eq!(pass(t0 + 10 * 86_400).await.unwrap(), Pass::default());
    let sent = files(&f.outbox);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("To: owner@acme.test\r\nSubject: Outpost: Acme is ready\r\n"));
    let r = &rows(&f.pool)[0];
    assert_eq!((r.0.as_str(), r.1), ("sent", 3));
    assert_eq!(
        r.3, "",
        "a sent email keeps no body (it may hold a single-use link)"
    );
}

#[actix_web::test]
async fn an_email_is_given_up_after_its_last_attempt_and_pruned_after_the_retention() {
    let f = fixture();
    break_transport(&f.outbox);
    queue(&f.pool, &["owner@acme.test"], "Outpost: Acme is ready");
    let t0 = db::now() + 1000;
    let mut at = t0;
    for attempt in 1..=RETRY.max_attempts {
        let p = deliver_due(&f.pool, &f.mailer, &RETRY, "w1", at, 100)
            .await
            .unwrap();
        if attempt < RETRY.max_attempts {
            assert_eq!(p.retried, 1, "attempt {attempt}");
            at = rows(&f.pool)[0].2;
        } else {
            assert_eq!(p.given_up, 1, "attempt {attempt}");
        }
    }
    let r = &rows(&f.pool)[0];
    assert_eq!((r.0.as_str(), r.1, r.3.as_str()), ("failed", 4, ""));
    mend_transport(&f.outbox);
    let p = deliver_due(&f.pool, &f.mailer, &RETRY, "w1", at + 86_400, 100)
        .await
        .unwrap();
    assert_eq!(p, Pass::default(), "a given-up email is not sent");

    // Kept for the retention period after it was given up (by the clock), then deleted.
    let mut conn = f.pool.get().unwrap();
    assert_eq!(prune(&mut conn, db::now() + KEEP_DONE_S - 60).unwrap(), 0);
    assert_eq!(prune(&mut conn, db::now() + KEEP_DONE_S + 60).unwrap(), 1);
    assert!(rows(&f.pool).is_empty());
}

#[actix_web::test]
async fn an_address_no_transport_takes_is_given_up_at_once() {
    assert_eq!(
        after_failure(&RETRY, 1, crate::infra::mail::ErrorKind::InvalidAddress, 0),
        None
    );
    assert_eq!(
        after_failure(&RETRY, 1, crate::infra::mail::ErrorKind::Timeout, 0),
        Some(10)
    );
    assert_eq!(
        after_failure(&RETRY, 4, crate::infra::mail::ErrorKind::Timeout, 0),
        None
    );
}

#[actix_web::test]
async fn of_two_claims_one_wins_and_an_expired_lease_is_taken_over() {
    let f = fixture();
    queue(&f.pool, &["owner@acme.test"], "Outpost: Acme is ready");
    let t0 = db::now() + 1000;
    let mut conn = f.pool.get().unwrap();
    let a = store::claim_outbox(&mut conn, "a", t0, LEASE_S).unwrap();
    assert!(a.is_some());
    assert_eq!(
        store::claim_outbox(&mut conn, "b", t0, LEASE_S).unwrap(),
        None
    );
    assert_eq!(
        store::claim_outbox(&mut conn, "b", t0 + LEASE_S - 1, LEASE_S).unwrap(),
        None,
        "the lease holds while a send may still be under way"
    );
    // Worker a died mid-send: once its lease is over, b takes the email.
    let b = store::claim_outbox(&mut conn, "b", t0 + LEASE_S + 1, LEASE_S)
        .unwrap()
        .unwrap();
    assert_eq!(b.attempts, 2);
    assert_eq!(b.id, a.unwrap().id);
}

#[actix_web::test]
async fn two_workers_on_one_database_send_each_email_once() {
    let f = fixture();
    let to: Vec<String> = (0..24).map(|i| format!("m{i}@acme.test")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    queue(&f.pool, &to, "Outpost: Acme is ready");
    let now = db::now() + 1000;
    let (a, b) = tokio::join!(
        deliver_due(&f.pool, &f.mailer, &RETRY, "a", now, 100),
        deliver_due(&f.pool, &f.mailer, &RETRY, "b", now, 100),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 24, "{a:?} {b:?}");
    let sent = files(&f.outbox);
    assert_eq!(sent.len(), 24);
    for addr in &to {
        assert_eq!(
            sent.iter()
                .filter(|m| m.starts_with(&format!("To: {addr}\r\n")))
                .count(),
            1,
            "{addr}"
        );
    }
    assert!(rows(&f.pool).iter().all(|r| r.0 == "sent" && r.1 == 1));
}

#[actix_web::test]
async fn an_email_queued_in_a_transaction_that_rolls_back_is_never_sent() {
    let f = fixture();
    let mut conn = f.pool.get().unwrap();
    let r = db::transaction::<(), crate::error::AppError, _>(&mut conn, |c| {
        enqueue(
            c,
            &["owner@acme.test".to_owned()],
            "Outpost: Acme is ready",
            "x",
        )?;
        Err(crate::error::AppError::NotFound)
    });
    assert!(r.is_err());
    drop(conn);
    let p = deliver_due(&f.pool, &f.mailer, &RETRY, "w1", db::now() + 1000, 100)
        .await
        .unwrap();
    assert_eq!(p, Pass::default());
    assert!(files(&f.outbox).is_empty());
}

/// A pass that started long ago (slow sends before this one) still leases each email it
/// claims for the full lease from the moment of the claim: another replica cannot take
/// the email while it is being sent, so it is not sent twice.
#[test]
fn a_late_claim_in_a_long_pass_still_holds_its_email_for_a_whole_lease() {
    let f = fixture();
    let conn = &mut f.pool.get().unwrap();
    let pass_began = db::now() - 3 * LEASE_S;
    store::insert_outbox(
        conn,
        "e1",
        "a@example.test",
        "Subject",
        "Body",
        pass_began - 1,
    )
    .unwrap();
    let got = store::claim_outbox(conn, "replica-a", pass_began, LEASE_S).unwrap();
    assert_eq!(got.unwrap().id, "e1");
    let until: Option<i64> = m::table
        .find("e1")
        .select(m::locked_until)
        .first(conn)
        .unwrap();
    assert!(until.unwrap() >= db::now() + LEASE_S - 2, "{until:?}");
    assert!(
        store::claim_outbox(conn, "replica-b", db::now(), LEASE_S)
            .unwrap()
            .is_none(),
        "another replica took the email being sent"
    );
}
