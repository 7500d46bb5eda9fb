//! `GET /`: the console home page (workspace and node overview). Later pages (inbox,
//! knowledge base, exports) sit beside it, each taking a [`ConsoleSession`].

use super::{access::Nav, ConsoleError, ConsoleSession, ConsoleState};
use crate::platform::store::SUSPENDED_KEY;
use actix_web::{web, HttpResponse};
use askama::Template;
use time::format_description::well_known::Rfc3339;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    nav: Nav,
    workspace_name: &'a str,
    workspace_slug: &'a str,
    node_id: &'a str,
    version: &'a str,
    enrolled_at: String,
    uptime: String,
    suspended: Option<String>,
}

/// Renders seconds as `3d 4h 5m 6s`, dropping leading zero units.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// `GET /`.
pub async fn home(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let st = state.clone();
    let suspended = web::block(move || st.store.meta(SUSPENDED_KEY)).await??;
    let enrolled_at = time::OffsetDateTime::from_unix_timestamp(state.enrolled_at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let page = HomePage {
        nav: Nav::for_session(&session),
        workspace_name: &state.workspace.name,
        workspace_slug: &state.workspace.slug,
        node_id: state.node_id.as_str(),
        version: crate::version(),
        enrolled_at,
        uptime: human_duration(state.started.elapsed().as_secs()),
        suspended,
    };
    let html = page
        .render()
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("rendering home: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Why the workspace is suspended, in words: the node is sent a cause code only (the
/// operator's own words stay in the control plane, which emails them to the owners).
pub fn suspension_words(code: &str) -> String {
    match code {
        "operator" => "Suspended by Outpost staff. The workspace's owners were emailed the reason, and the control plane's workspace page shows it.".into(),
        "payment" => "Payment is needed: an invoice is unpaid, or the subscription has ended. Pay or subscribe again from Billing in the control plane and the workspace resumes within a minute.".into(),
        "cancelled" => "The workspace was cancelled. This console stays open so you can export your data until the node is destroyed.".into(),
        other => format!("Reason code: {other}."),
    }
}

#[cfg(test)]
mod tests {
    use super::{human_duration, suspension_words};

    #[test]
    fn suspension_causes_read_as_words() {
        assert!(suspension_words("operator").starts_with("Suspended by Outpost staff"));
        assert!(suspension_words("payment").contains("invoice is unpaid"));
        assert_eq!(suspension_words("other_code"), "Reason code: other_code.");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(65), "1m 5s");
        assert_eq!(human_duration(3_661), "1h 1m 1s");
        assert_eq!(human_duration(90_061), "1d 1h 1m 1s");
    }
}
