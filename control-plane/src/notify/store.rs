//! Who a notice goes to, and the workspace it is about; the durable outbox
//! (`mail_outbox`) the notices are queued in.

use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{mail_outbox, memberships, nodes, users, workspaces};
use diesel::prelude::*;

/// Email addresses of a workspace's members holding one of `roles` (e.g. the owners, for
/// billing and suspension notices).
pub fn addresses_of(conn: &mut DbConn, ws_id: &str, roles: &[&str]) -> AppResult<Vec<String>> {
    Ok(memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::role.eq_any(roles))
        .select(users::email)
        .order(users::email)
        .load(conn)?)
}

/// The id and name of the workspace node `node_id` serves.
pub fn workspace_of_node(conn: &mut DbConn, node_id: &str) -> AppResult<(String, String)> {
    Ok(nodes::table
        .inner_join(workspaces::table)
        .filter(nodes::id.eq(node_id))
        .select((workspaces::id, workspaces::name))
        .first(conn)?)
}

// The durable outbox (`mail_outbox`): see `super::outbox`.

/// An email as queued.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct OutboxRow {
    /// Row id, `<milliseconds>-<uuid>`: sorts by creation, and names the dev outbox file.
    pub id: String,
    /// Recipient address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Attempts so far, this one included once claimed.
    pub attempts: i32,
}

/// Queues an email; call it inside the transaction of the change it announces.
pub fn insert_outbox(
    conn: &mut DbConn,
    id: &str,
    recipient: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> AppResult<()> {
    diesel::insert_into(mail_outbox::table)
        .values((
            mail_outbox::id.eq(id),
            mail_outbox::recipient.eq(recipient),
            mail_outbox::subject.eq(subject),
            mail_outbox::body.eq(body),
            mail_outbox::state.eq(QUEUED),
            mail_outbox::attempts.eq(0),
            mail_outbox::next_attempt_at.eq(now),
            mail_outbox::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

const QUEUED: &str = "queued";
const SENT: &str = "sent";
const FAILED: &str = "failed";

/// Claims the oldest due email for `worker` until `now + lease_s`, counting the attempt,
/// or `None` when nothing is due. The claim is a compare-and-set on the lease (as for
/// `jobs`): of two workers, on one replica or several sharing PostgreSQL, one wins a
/// row; an expired lease (a worker that died mid-send) is taken over.
pub fn claim_outbox(
    conn: &mut DbConn,
    worker: &str,
    now: i64,
    lease_s: i64,
) -> AppResult<Option<OutboxRow>> {
    let free = mail_outbox::locked_until
        .is_null()
        .or(mail_outbox::locked_until.lt(now));
    let candidates: Vec<String> = mail_outbox::table
        .filter(mail_outbox::state.eq(QUEUED))
        .filter(mail_outbox::next_attempt_at.le(now))
        .filter(free)
        .order(mail_outbox::next_attempt_at.asc())
        .select(mail_outbox::id)
        .limit(5)
        .load(conn)?;
    // The lease runs from now, not from `now` (the start of the worker's pass, which
    // may be many sends ago): a lease already past when taken would let another replica
    // claim the same email at once, and send it twice.
    let until = now.max(db::now()) + lease_s;
    for id in candidates {
        let free = mail_outbox::locked_until
            .is_null()
            .or(mail_outbox::locked_until.lt(now));
        let n = diesel::update(
            mail_outbox::table
                .find(&id)
                .filter(mail_outbox::state.eq(QUEUED))
                .filter(free),
        )
        .set((
            mail_outbox::locked_until.eq(until),
            mail_outbox::locked_by.eq(worker),
            mail_outbox::attempts.eq(mail_outbox::attempts + 1),
        ))
        .execute(conn)?;
        if n == 1 {
            let row = mail_outbox::table
                .find(&id)
                .select((
                    mail_outbox::id,
                    mail_outbox::recipient,
                    mail_outbox::subject,
                    mail_outbox::body,
                    mail_outbox::attempts,
                ))
                .first(conn)?;
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Records that the email was sent, and empties its body (it may hold a single-use link).
pub fn outbox_sent(conn: &mut DbConn, id: &str, now: i64) -> AppResult<()> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::state.eq(SENT),
            mail_outbox::body.eq(""),
            mail_outbox::locked_until.eq(None::<i64>),
            mail_outbox::done_at.eq(now),
            mail_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Releases a failed attempt's lease to try again at `next_attempt_at`.
pub fn outbox_retry(conn: &mut DbConn, id: &str, next_attempt_at: i64, err: &str) -> AppResult<()> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::locked_until.eq(None::<i64>),
            mail_outbox::next_attempt_at.eq(next_attempt_at),
            mail_outbox::last_error.eq(err),
        ))
        .execute(conn)?;
    Ok(())
}

/// Gives an email up: `failed`, body emptied, kept (recipient, subject, error) until
/// the retention period ends, for the operator to see.
pub fn outbox_given_up(conn: &mut DbConn, id: &str, now: i64, err: &str) -> AppResult<()> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::state.eq(FAILED),
            mail_outbox::body.eq(""),
            mail_outbox::locked_until.eq(None::<i64>),
            mail_outbox::done_at.eq(now),
            mail_outbox::last_error.eq(err),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes every email to these addresses from the outbox, queued or kept after sending
/// (recipient and subject are what the CP would otherwise keep 7 days).
pub fn forget_recipients(conn: &mut DbConn, recipients: &[String]) -> AppResult<usize> {
    if recipients.is_empty() {
        return Ok(0);
    }
    Ok(
        diesel::delete(mail_outbox::table.filter(mail_outbox::recipient.eq_any(recipients)))
            .execute(conn)?,
    )
}

/// Deletes sent and given-up emails done before `before`. Returns how many.
pub fn prune_outbox(conn: &mut DbConn, before: i64) -> AppResult<usize> {
    Ok(diesel::delete(
        mail_outbox::table
            .filter(mail_outbox::state.ne(QUEUED))
            .filter(mail_outbox::done_at.lt(before)),
    )
    .execute(conn)?)
}
