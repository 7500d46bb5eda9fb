//! Reads every row the CP holds about a user and their workspaces (users, sessions,
//! sign-in links, API tokens, invitations, memberships, workspaces, nodes, usage, secrets'
//! metadata, exports, retention sweeps, suspensions, audit events), and deletes an
//! account's rows. Long lists of tables are this domain's nature: it names all of them.

use super::model::AUDIT_LIMIT;
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    api_tokens, audit_events, email_changes, invitations, known_devices, magic_links, mail_outbox,
    memberships, node_exports, nodes, retention_sweeps, sessions, usage_counts, users,
    workspace_secrets, workspace_suspensions, workspaces,
};
use crate::members::model::Role;
use diesel::prelude::*;
use serde_json::{json, Value};

/// An API token as shown: id, name, created, last used, revoked, expires, read-only
/// (never its hash).
type TokenRow = (String, String, i64, Option<i64>, Option<i64>, i64, bool);

/// A session as shown: created, expires, last seen, device, place (never its hash).
type SessionRecord = (i64, i64, Option<i64>, String, String);

fn audit_json(rows: Vec<crate::audit::AuditRow>) -> Value {
    Value::Array(
        rows.into_iter()
            .map(|r| {
                json!({"seq": r.seq, "at": r.at, "actor": r.actor, "action": r.action,
                       "object_type": r.object_type, "object_id": r.object_id,
                       "workspace_id": r.workspace_id, "ip": r.ip, "detail": r.detail})
            })
            .collect(),
    )
}

/// id, email, role, created, expires, accepted, revoked.
type InvitationRecord = (String, String, String, i64, i64, Option<i64>, Option<i64>);

/// Everything the CP stores about `user_id`, as one JSON document.
pub fn collect(conn: &mut DbConn, user_id: &str) -> AppResult<Value> {
    let (id, email, is_operator, created_at): (String, String, bool, i64) = users::table
        .find(user_id)
        .select((
            users::id,
            users::email,
            users::is_operator,
            users::created_at,
        ))
        .first(conn)?;
    let sessions: Vec<SessionRecord> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select((
            sessions::created_at,
            sessions::expires_at,
            sessions::last_seen_at,
            sessions::device,
            sessions::place,
        ))
        .load(conn)?;
    let links: Vec<(String, i64, i64, Option<i64>)> = magic_links::table
        .filter(magic_links::email.eq(&email))
        .select((
            magic_links::ip,
            magic_links::created_at,
            magic_links::expires_at,
            magic_links::used_at,
        ))
        .load(conn)?;
    let browsers: Vec<(i64, i64)> = known_devices::table
        .filter(known_devices::user_id.eq(user_id))
        .order(known_devices::first_seen_at)
        .select((known_devices::first_seen_at, known_devices::last_seen_at))
        .load(conn)?;
    let changes: Vec<(String, i64, i64, Option<i64>)> = email_changes::table
        .filter(email_changes::user_id.eq(user_id))
        .order(email_changes::created_at)
        .select((
            email_changes::new_email,
            email_changes::created_at,
            email_changes::expires_at,
            email_changes::used_at,
        ))
        .load(conn)?;
    let tokens: Vec<TokenRow> = api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .select((
            api_tokens::id,
            api_tokens::name,
            api_tokens::created_at,
            api_tokens::last_used_at,
            api_tokens::revoked_at,
            api_tokens::expires_at,
            api_tokens::read_only,
        ))
        .load(conn)?;
    let invited: Vec<(String, String, i64, i64, Option<i64>)> = invitations::table
        .filter(invitations::email.eq(&email))
        .select((
            invitations::workspace_id,
            invitations::role,
            invitations::created_at,
            invitations::expires_at,
            invitations::accepted_at,
        ))
        .load(conn)?;
    let mine: Vec<crate::audit::AuditRow> = audit_events::table
        .filter(audit_events::actor.eq(user_id))
        .order(audit_events::seq.desc())
        .limit(AUDIT_LIMIT)
        .load(conn)?;
    let member_of: Vec<(String, String)> = memberships::table
        .filter(memberships::user_id.eq(user_id))
        .select((memberships::workspace_id, memberships::role))
        .load(conn)?;
    let mut spaces = Vec::new();
    for (ws_id, role) in member_of {
        let ws: crate::workspaces::Workspace = workspaces::table.find(&ws_id).first(conn)?;
        let node: Option<crate::workspaces::NodeView> = nodes::table
            .filter(nodes::workspace_id.eq(&ws_id))
            .order(nodes::created_at.desc())
            .select(crate::workspaces::NodeView::as_select())
            .first(conn)
            .optional()?;
        let usage: Vec<(String, i64, i64, i64, i64)> = match &node {
            Some(n) => usage_counts::table
                .filter(usage_counts::node_id.eq(&n.id))
                .select((
                    usage_counts::channel,
                    usage_counts::hour,
                    usage_counts::inbound,
                    usage_counts::outbound,
                    usage_counts::conversations,
                ))
                .load(conn)?,
            None => vec![],
        };
        let secrets: Vec<crate::secrets::SecretRow> = workspace_secrets::table
            .filter(workspace_secrets::workspace_id.eq(&ws_id))
            .select(crate::secrets::SecretRow::as_select())
            .load(conn)?;
        let audit: Vec<crate::audit::AuditRow> = audit_events::table
            .filter(audit_events::workspace_id.eq(&ws_id))
            .order(audit_events::seq.desc())
            .limit(AUDIT_LIMIT)
            .load(conn)?;
        let agents = crate::agents::list(conn, &ws_id)?;
        let exports: Vec<(String, String, String, i64, i64, i64)> = node_exports::table
            .filter(node_exports::workspace_id.eq(&ws_id))
            .order(node_exports::created_at.desc())
            .select((
                node_exports::export_id,
                node_exports::scope,
                node_exports::state,
                node_exports::size_bytes,
                node_exports::created_at,
                node_exports::expires_at,
            ))
            .load(conn)?;
        let sweeps: Vec<(i64, i64, i64, i64)> = retention_sweeps::table
            .filter(retention_sweeps::workspace_id.eq(&ws_id))
            .order(retention_sweeps::at.desc())
            .select((
                retention_sweeps::at,
                retention_sweeps::messages_deleted,
                retention_sweeps::contacts_erased,
                retention_sweeps::exports_deleted,
            ))
            .load(conn)?;
        let members = crate::members::list(conn, &ws_id)?;
        let invitations: Vec<InvitationRecord> = invitations::table
            .filter(invitations::workspace_id.eq(&ws_id))
            .select((
                invitations::id,
                invitations::email,
                invitations::role,
                invitations::created_at,
                invitations::expires_at,
                invitations::accepted_at,
                invitations::revoked_at,
            ))
            .load(conn)?;
        // Invitations name people who are not members yet: shown to the owner only.
        let invitations = if role == Role::Owner.as_str() {
            invitations
        } else {
            vec![]
        };
        let suspensions: Vec<(String, String, String, i64, Option<i64>)> =
            workspace_suspensions::table
                .filter(workspace_suspensions::workspace_id.eq(&ws_id))
                .select((
                    workspace_suspensions::code,
                    workspace_suspensions::reason,
                    workspace_suspensions::actor,
                    workspace_suspensions::created_at,
                    workspace_suspensions::lifted_at,
                ))
                .load(conn)?;
        // Billing is the owners' business, as on the Billing page.
        let billing = if role == Role::Owner.as_str() {
            json!({
                "account": crate::billing::ledger::account(conn, &ws_id)?,
                "invoices": crate::billing::ledger::all_invoices(conn, &ws_id)?,
            })
        } else {
            Value::Null
        };
        spaces.push(json!({
            "workspace": ws,
            "billing": billing,
            "your_role": role,
            "members": members,
            "invitations": invitations.iter().map(|(i, e, r, c, x, a, v)| json!({"id": i, "email": e, "role": r, "created_at": c, "expires_at": x, "accepted_at": a, "revoked_at": v})).collect::<Vec<_>>(),
            "suspensions": suspensions.iter().map(|(c, r, a, at, l)| json!({"code": c, "reason": r, "actor": a, "created_at": at, "lifted_at": l})).collect::<Vec<_>>(),
            "node": node,
            "agents": agents.iter().map(|a| json!({"config": a.to_config(), "created_at": a.created_at, "updated_at": a.updated_at})).collect::<Vec<_>>(),
            "secrets": secrets.iter().map(|s| json!({"kind": s.kind, "fingerprint": s.fingerprint, "last4": s.last4, "validated_at": s.validated_at, "delivered_at": s.delivered_at, "status": s.status})).collect::<Vec<_>>(),
            "usage_counts": usage.iter().map(|(c, h, i, o, v)| json!({"channel": c, "hour": h, "inbound": i, "outbound": o, "conversations": v})).collect::<Vec<_>>(),
            "exports": exports.iter().map(|(i, sc, st, b, c, e)| json!({"id": i, "scope": sc, "state": st, "size_bytes": b, "created_at": c, "expires_at": e})).collect::<Vec<_>>(),
            "retention_sweeps": sweeps.iter().map(|(at, m, c, e)| json!({"at": at, "messages_deleted": m, "contacts_erased": c, "exports_deleted": e})).collect::<Vec<_>>(),
            "audit_events": audit_json(audit),
        }));
    }
    Ok(json!({
        "about": "Everything the Outpost control plane stores about you and your workspaces. Conversations, contacts, documents and keys are on your workspace's node, not here.",
        "account": {"id": id, "email": email, "is_operator": is_operator, "created_at": created_at},
        "sessions": sessions.iter().map(|(c, e, l, d, p)| json!({"created_at": c, "expires_at": e, "last_seen_at": l, "device": d, "network": p})).collect::<Vec<_>>(),
        "sign_in_links": links.iter().map(|(ip, c, e, u)| json!({"ip": ip, "created_at": c, "expires_at": e, "used_at": u})).collect::<Vec<_>>(),
        "sign_in_identities": crate::oauth::service::for_user_json(conn, user_id)?,
        "known_browsers": browsers.iter().map(|(f, l)| json!({"first_seen_at": f, "last_seen_at": l})).collect::<Vec<_>>(),
        "email_changes": changes.iter().map(|(e, c, x, u)| json!({"new_email": e, "created_at": c, "expires_at": x, "used_at": u})).collect::<Vec<_>>(),
        "invitations_to_you": invited.iter().map(|(w, r, c, x, a)| json!({"workspace_id": w, "role": r, "created_at": c, "expires_at": x, "accepted_at": a})).collect::<Vec<_>>(),
        "api_tokens": tokens.iter().map(|(i, n, c, l, r, e, ro)| json!({"id": i, "name": n, "created_at": c, "last_used_at": l, "revoked_at": r, "expires_at": e, "read_only": ro})).collect::<Vec<_>>(),
        "your_audit_events": audit_json(mine),
        "workspaces": spaces,
    }))
}

/// Names of the workspaces `user_id` is the only owner of and that are still open (live,
/// or cancelled with the node kept for exports). Closing the account would leave them
/// with nobody to run, export or delete them, so it is refused while there are any.
pub fn sole_owned_open_workspaces(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<String>> {
    let now = db::now();
    let owned: Vec<(String, String)> = memberships::table
        .inner_join(workspaces::table)
        .filter(memberships::user_id.eq(user_id))
        .filter(memberships::role.eq(Role::Owner.as_str()))
        .filter(
            workspaces::deleted_at
                .is_null()
                .or(workspaces::deprovision_after.gt(now)),
        )
        .select((workspaces::id, workspaces::name))
        .load(conn)?;
    let mut out = vec![];
    for (ws_id, name) in owned {
        let owners: i64 = memberships::table
            .filter(memberships::workspace_id.eq(&ws_id))
            .filter(memberships::role.eq(Role::Owner.as_str()))
            .count()
            .get_result(conn)?;
        if owners == 1 {
            out.push(name);
        }
    }
    Ok(out)
}

/// Deletes an account's sessions, API tokens, sign-in links, known browsers, pending address
/// changes, memberships, the emails to its address in the mail outbox (queued or kept
/// after sending) and user row in one transaction.
pub fn delete_account(conn: &mut DbConn, user_id: &str) -> AppResult<()> {
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let email: String = users::table
            .find(user_id)
            .select(users::email)
            .first(conn)?;
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
        diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(user_id))).execute(conn)?;
        diesel::delete(magic_links::table.filter(magic_links::email.eq(&email))).execute(conn)?;
        diesel::delete(mail_outbox::table.filter(mail_outbox::recipient.eq(&email)))
            .execute(conn)?;
        diesel::delete(memberships::table.filter(memberships::user_id.eq(user_id)))
            .execute(conn)?;
        diesel::delete(known_devices::table.filter(known_devices::user_id.eq(user_id)))
            .execute(conn)?;
        diesel::delete(email_changes::table.filter(email_changes::user_id.eq(user_id)))
            .execute(conn)?;
        diesel::delete(users::table.find(user_id)).execute(conn)?;
        Ok(())
    })?;
    Ok(())
}
