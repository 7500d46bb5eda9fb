//! The durable outbox: every email but a sign-in link is queued in the `mail_outbox`
//! table by [`enqueue`], on the connection of the change it announces, so that inside the
//! change's transaction a crash loses both or neither. [`run_worker`] sends what is due:
//! each email is claimed with a lease (several workers, on one replica or several sharing
//! PostgreSQL, send it once), a failed attempt is retried after `Retry::delay_after`
//! (exponential, at most an hour), and after `Retry::max_attempts` the email is given up
//! with a log line. A sent or given-up email loses its body at once (it may hold a
//! single-use link) and the rest of its row after [`KEEP_DONE_S`].
//!
//! Sending is at least once across a crash: a worker that dies after the transport took
//! the email but before recording it leaves a row whose lease expires and is sent again.
//! The dev outbox writes each email under its row id, so there the second attempt
//! replaces the first; a provider gets it twice.

use super::store::{self, OutboxRow};
use crate::error::AppResult;
use crate::infra::db::{self, DbConn, DbPool};
use crate::infra::mail::config::Retry;
use crate::infra::mail::{Email, Mailer};
use std::time::Duration;

/// How long a claimed email is reserved for its worker: longer than [`SEND_LIMIT`], so a
/// slow send is not taken over while it may still succeed.
pub const LEASE_S: i64 = 300;
/// The longest one attempt may take (an SMTP conversation is many 20 s steps).
pub const SEND_LIMIT: Duration = Duration::from_secs(120);
/// Sent and given-up emails are deleted this long after (privacy: recipient and subject).
pub const KEEP_DONE_S: i64 = 7 * 24 * 3600;
/// How often the worker looks for due emails.
const POLL: Duration = Duration::from_secs(1);
/// The most emails one pass of the worker attempts before it looks at pruning again.
const PASS_LIMIT: usize = 100;
/// How often the worker deletes old sent and given-up emails.
const PRUNE_EVERY_S: i64 = 3600;

/// Queues one email to each of `recipients` with the same `subject` and `body`. Call it
/// on the connection (inside the transaction) of the change it announces.
pub fn enqueue(
    conn: &mut DbConn,
    recipients: &[String],
    subject: &str,
    body: &str,
) -> AppResult<()> {
    let now = db::now();
    for to in recipients {
        let id = format!("{:013}-{}", db::now_ms(), db::new_id());
        store::insert_outbox(conn, &id, to, subject, body, now)?;
    }
    Ok(())
}

/// What one pass of [`deliver_due`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Emails the transport took.
    pub sent: usize,
    /// Emails that failed and wait for another attempt.
    pub retried: usize,
    /// Emails given up.
    pub given_up: usize,
}

/// What happens to an email whose `attempt`-th attempt failed with `kind`: retried at
/// `Some(next_attempt_at)`, or given up (`None`) once the attempts are spent or the
/// recipient is an address no transport takes.
pub fn after_failure(
    retry: &Retry,
    attempt: u32,
    kind: crate::infra::mail::ErrorKind,
    now: i64,
) -> Option<i64> {
    let permanent = kind == crate::infra::mail::ErrorKind::InvalidAddress;
    (!permanent && attempt < retry.max_attempts).then(|| now + retry.delay_after(attempt))
}

/// Sends up to `limit` emails due at `now` (unix seconds), oldest first, one claim at a
/// time, as `worker`.
pub async fn deliver_due(
    pool: &DbPool,
    mailer: &Mailer,
    retry: &Retry,
    worker: &str,
    now: i64,
    limit: usize,
) -> AppResult<Pass> {
    let mut pass = Pass::default();
    while pass.sent + pass.retried + pass.given_up < limit {
        let w = worker.to_owned();
        let Some(row) = db::run(pool, move |c| store::claim_outbox(c, &w, now, LEASE_S)).await?
        else {
            return Ok(pass);
        };
        match send(mailer, &row).await {
            Ok(()) => {
                let id = row.id.clone();
                db::run(pool, move |c| store::outbox_sent(c, &id, db::now())).await?;
                tracing::debug!(email = %row.id, transport = mailer.transport(), "email sent");
                pass.sent += 1;
            }
            Err(e) => {
                let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                let err = format!("{}: {}", e.transport, e.kind.code());
                let id = row.id.clone();
                // From when the attempt ended: a slow failure must not be retried at once.
                let ended = now.max(db::now());
                match after_failure(retry, attempt, e.kind, ended) {
                    Some(at) => {
                        tracing::warn!(
                            email = %row.id, transport = e.transport, kind = %e.kind.code(),
                            attempt, retry_in_s = at - ended,
                            "email not sent: will retry"
                        );
                        db::run(pool, move |c| store::outbox_retry(c, &id, at, &err)).await?;
                        pass.retried += 1;
                    }
                    None => {
                        tracing::error!(
                            email = %row.id, transport = e.transport, kind = %e.kind.code(),
                            attempts = attempt,
                            "email given up: not sent after its last attempt (see mail_outbox)"
                        );
                        db::run(pool, move |c| {
                            store::outbox_given_up(c, &id, db::now(), &err)
                        })
                        .await?;
                        pass.given_up += 1;
                    }
                }
            }
        }
    }
    Ok(pass)
}

/// One attempt, bounded by [`SEND_LIMIT`] (a timeout counts as a failure).
async fn send(mailer: &Mailer, row: &OutboxRow) -> Result<(), crate::infra::mail::MailError> {
    let email = Email {
        to: row.recipient.clone(),
        subject: row.subject.clone(),
        body: row.body.clone(),
    };
    match tokio::time::timeout(SEND_LIMIT, mailer.send_keyed(&email, &row.id)).await {
        Ok(r) => r,
        Err(_) => Err(crate::infra::mail::MailError::new(
            mailer.transport(),
            crate::infra::mail::ErrorKind::Timeout,
        )),
    }
}

/// Deletes sent and given-up emails older than [`KEEP_DONE_S`] at `now`.
pub fn prune(conn: &mut DbConn, now: i64) -> AppResult<usize> {
    store::prune_outbox(conn, now - KEEP_DONE_S)
}

/// The outbox worker: every second, sends what is due; every hour, deletes what is past
/// its retention. Runs for the life of the process; safe beside other replicas' workers.
pub async fn run_worker(pool: DbPool, mailer: Mailer, retry: Retry) {
    let worker = format!("mail-{}", db::new_id());
    let mut next_prune = 0;
    loop {
        // While the database is away a pass can only wait out the pool and fail; the
        // outage is logged once by the pool's health, not here every second.
        if db::health(&pool).is_down() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let now = db::now();
        if let Err(e) = deliver_due(&pool, &mailer, &retry, &worker, now, PASS_LIMIT).await {
            tracing::warn!(error = %e, "mail outbox pass failed");
        }
        if now >= next_prune {
            match db::run(&pool, move |c| prune(c, now)).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "mail outbox pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mail outbox prune failed"),
            }
            next_prune = now + PRUNE_EVERY_S;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
