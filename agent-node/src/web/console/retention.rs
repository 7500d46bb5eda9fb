//! Console page: data retention (Settings → Data retention). Changing a period first
//! shows a preview — "this will delete 1,204 messages older than …" — computed with the
//! query the sweep uses; saving needs that preview's confirmation. Needs the `settings`
//! scope (admins, owners; see `console::access`).

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::{human_time, render, ConsoleError, ConsoleSession, ConsoleState, WriteSession};
use crate::domain::retention::{self, Class, Policy, MAX_DAYS, MIN_DAYS};
use actix_web::{web, HttpResponse};
use askama::Template;
use std::collections::HashMap;

struct Row {
    class: &'static str,
    label: &'static str,
    effect: &'static str,
    days: i64,
    enabled: bool,
}

struct LastSweep {
    when: String,
    messages: i64,
    contacts: i64,
    exports: i64,
}

#[derive(Template)]
#[template(path = "retention.html")]
struct RetentionPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    rows: Vec<Row>,
    last: Option<LastSweep>,
    preview: Option<Vec<String>>,
}

/// `1,204`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn page_for(
    state: &ConsoleState,
    nav: Nav,
    policies: &[Policy],
    preview: Option<Vec<String>>,
) -> Result<RetentionPage, ConsoleError> {
    let last = retention::last_sweep(&state.store)?.map(|s| LastSweep {
        when: human_time(s.at),
        messages: s.messages_deleted,
        contacts: s.contacts_erased,
        exports: s.exports_deleted,
    });
    Ok(RetentionPage {
        nav,
        rows: policies
            .iter()
            .map(|p| Row {
                class: p.class.as_str(),
                label: p.class.label(),
                effect: p.class.effect(),
                days: p.days,
                enabled: p.enabled,
            })
            .collect(),
        last,
        preview,
    })
}

async fn page(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let nav = Nav::for_session(&session);
    let page = web::block(move || {
        let policies = retention::policies(&state.store)?;
        page_for(&state, nav, &policies, None)
    })
    .await??;
    render(&page)
}

/// The policies a form asks for: `<class>_days` (required) and `<class>_enabled`
/// (a checkbox: present means on).
fn parse(form: &HashMap<String, String>) -> Result<Vec<Policy>, ConsoleError> {
    Class::ALL
        .into_iter()
        .map(|class| {
            let days = form
                .get(&format!("{}_days", class.as_str()))
                .and_then(|d| d.trim().parse::<i64>().ok())
                .filter(|d| (MIN_DAYS..=MAX_DAYS).contains(d))
                .ok_or_else(|| {
                    ConsoleError::BadRequest(format!(
                        "{}: enter a number of days from {MIN_DAYS} to {MAX_DAYS}.",
                        class.label()
                    ))
                })?;
            let enabled = form.contains_key(&format!("{}_enabled", class.as_str()));
            Ok(Policy {
                class,
                enabled,
                days,
            })
        })
        .collect()
}

/// What each policy would delete now, in words.
fn describe(state: &ConsoleState, policies: &[Policy]) -> Result<Vec<String>, ConsoleError> {
    let content = super::inbox::content(state);
    let now = crate::platform::store::now();
    policies
        .iter()
        .map(|p| {
            if !p.enabled {
                return Ok(format!("{}: kept until you delete them.", p.class.label()));
            }
            let n = retention::preview(&state.store, &content, *p, now)?;
            let before = human_time(p.cutoff(now));
            Ok(match p.class {
                Class::Messages => format!(
                    "This will delete {} messages older than {before}.",
                    thousands(n)
                ),
                Class::Contacts => format!(
                    "This will erase {} contacts with no activity since {before}.",
                    thousands(n)
                ),
                Class::CallLogs => format!(
                    "This will delete {} calls (log and transcript) from before {before}.",
                    thousands(n)
                ),
                Class::Recordings => format!(
                    "This will delete {} call recordings and voicemails older than {before}.",
                    thousands(n)
                ),
            })
        })
        .collect()
}

/// The page with the preview of `policies`, to confirm before they are saved.
async fn render_preview(
    state: web::Data<ConsoleState>,
    session: &ConsoleSession,
    policies: Vec<Policy>,
) -> Result<HttpResponse, ConsoleError> {
    let nav = Nav::for_session(session);
    let page = web::block(move || {
        let lines = describe(&state, &policies)?;
        page_for(&state, nav, &policies, Some(lines))
    })
    .await??;
    render(&page)
}

async fn preview(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    render_preview(state, &session, parse(&form)?).await
}

async fn save(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let policies = parse(&form)?;
    if form.get("confirm").map(String::as_str) != Some("yes") {
        // Saving always goes through the preview.
        return render_preview(state, &session, policies).await;
    }
    let actor = session.user_id.clone();
    let saved = policies.clone();
    web::block(move || {
        for p in saved {
            retention::save(&state.store, p, &actor)?;
        }
        Ok::<_, ConsoleError>(())
    })
    .await??;
    for p in &policies {
        tracing::info!(
            user = %session.user_id,
            class = p.class.as_str(),
            enabled = p.enabled,
            days = p.days,
            "retention period saved"
        );
    }
    Ok(see_other_done("/settings/retention", Done::Saved))
}

/// `POST /settings/retention/sweep`: applies the saved periods now instead of waiting
/// for the daily sweep.
async fn sweep_now(
    state: web::Data<ConsoleState>,
    session: WriteSession,
) -> Result<HttpResponse, ConsoleError> {
    let result = web::block(move || {
        let content = super::inbox::content(&state);
        retention::sweep(
            &state.store,
            &content,
            Some(&state.exports),
            crate::platform::store::now(),
        )
    })
    .await??;
    tracing::info!(
        user = %session.user_id,
        messages = result.messages_deleted,
        contacts = result.contacts_erased,
        "retention sweep run from the console"
    );
    Ok(see_other_done("/settings/retention", Done::SweepDone))
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings/retention", web::get().to(page))
        .route("/settings/retention/sweep", web::post().to(sweep_now))
        .route("/settings/retention", web::post().to(save))
        .route("/settings/retention/preview", web::post().to(preview));
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_204), "1,204");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
