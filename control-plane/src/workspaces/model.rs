//! Workspace rules, pure: names and addresses (slugs), the confirmations an owner gives,
//! the node console's scopes per role, and how pages say times, sizes and node health.

use crate::error::{AppError, AppResult, Code};
use crate::members::model::Role;
use crate::provisioning::state;

/// Longest workspace name, in characters.
pub const MAX_NAME_CHARS: usize = 80;

/// Checks a workspace name by the one rule for names ([`outpost_common::Name`]: NFC,
/// trimmed, no control, bidi or zero-width character, at most [`MAX_NAME_CHARS`]
/// characters); the refusal says which rule failed.
pub fn workspace_name(raw: &str) -> AppResult<outpost_common::Name> {
    outpost_common::Name::parse(raw, MAX_NAME_CHARS)
        .map_err(|e| AppError::invalid(Code::InvalidName, e.message("The name")))
}

/// Derives a slug from a name: `Acme Dental` → `acme-dental`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(40).collect();
    out.trim_end_matches('-').to_owned()
}

/// The region of a new workspace's node from the owner's `choice` among `offered` (the
/// provider's regions, the default first): none offered (the local provisioner) → `None`,
/// and a choice is refused; an empty choice → the first; otherwise one of them, or a
/// refusal that lists them.
pub fn choose_region(offered: &[String], choice: Option<&str>) -> AppResult<Option<String>> {
    let choice = choice.map(str::trim).filter(|c| !c.is_empty());
    match (offered.first(), choice) {
        (None, None) => Ok(None),
        (None, Some(c)) => Err(AppError::invalid(
            Code::UnknownRegion,
            format!("There is no region “{c}” to choose: this control plane runs nodes without a choice of region."),
        )),
        (Some(first), None) => Ok(Some(first.clone())),
        (Some(_), Some(c)) => match offered.iter().find(|r| r.eq_ignore_ascii_case(c)) {
            Some(r) => Ok(Some(r.clone())),
            None => Err(AppError::invalid(
                Code::UnknownRegion,
                format!(
                    "There is no region “{c}”: choose one of {}.",
                    offered.join(", ")
                ),
            )),
        },
    }
}

const RESERVED: &[&str] = &[
    "www",
    "api",
    "admin",
    "app",
    "control",
    "gateway",
    "static",
    "mail",
    "localhost",
];

/// Validates a slug: 3–40 of `a-z 0-9 -`, starting and ending with a letter or digit
/// (it becomes a DNS label).
pub fn validate_slug(slug: &str) -> AppResult<()> {
    let ok_chars = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = slug
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && slug
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !(3..=40).contains(&slug.len()) || !ok_chars || !ends_ok || slug.contains("--") {
        return Err(AppError::invalid(
            Code::InvalidSlug,
            "The address must be 3 to 40 lowercase letters, digits or single hyphens, starting and ending with a letter or digit.",
        ));
    }
    if RESERVED.contains(&slug) {
        return Err(AppError::Conflict(
            Code::SlugTaken,
            format!("The address “{slug}” is reserved."),
        ));
    }
    Ok(())
}

/// Checks that `confirm` is the workspace's address (`slug`), as typed by an owner who
/// means to destroy its node now.
pub fn check_address_confirmation(slug: &str, confirm: &str) -> AppResult<()> {
    if confirm.trim().eq_ignore_ascii_case(slug) {
        return Ok(());
    }
    Err(AppError::invalid(
        if confirm.trim().is_empty() {
            Code::ConfirmationRequired
        } else {
            Code::ConfirmationMismatch
        },
        format!(
            "Nothing was deleted. To delete the workspace and destroy its node now, type its address “{}” exactly: this erases its data and cannot be undone.",
            slug
        ),
    ))
}

/// What the cancellation form's checkbox sends when ticked.
pub const CANCEL_CONFIRMED: &str = "yes";

/// The node console scopes a member gets for their role (`Role::console_scopes`); owners
/// also carry `billing`, which the node ignores.
pub fn console_scopes(role: Role) -> Vec<&'static str> {
    let mut scopes: Vec<&str> = role.console_scopes().iter().map(|s| s.as_str()).collect();
    if role == Role::Owner {
        scopes.push("billing");
    }
    scopes
}

/// The steps of a healthy start, for the progress strip.
pub const STEPS: &[&str] = &[
    state::REQUESTED,
    state::PROVISIONING,
    state::BOOTING,
    state::ENROLLING,
    state::HEALTHY,
];

/// CSS class of a progress step: `done` before the node's current step, `current` on it.
pub fn step_class(step: &str, current: &str) -> &'static str {
    let pos = |s: &str| STEPS.iter().position(|x| *x == s);
    match (pos(step), pos(current)) {
        (Some(a), Some(b)) if a < b => "done",
        (Some(a), Some(b)) if a == b => "current",
        (Some(_), None) if ![state::FAILED, state::REQUESTED].contains(&current) => "done",
        _ => "",
    }
}

/// Formats unix seconds for pages.
pub fn fmt_time(t: &i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(*t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A day (unix seconds at its start, UTC) as "3 Dec 2026".
pub fn fmt_day(t: &i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(*t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[day padding:none] [month repr:short] [year]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// Where a page of a user's workspace list ends: the last row's place in the list's
/// order (active before deleted, newest first, then by id). Written as
/// `<a|d>.<created_at>.<id>` and opaque to clients, who hand back the `next` they got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    /// The row was a deleted workspace.
    pub deleted: bool,
    /// Its creation time, unix seconds.
    pub created_at: i64,
    /// Its id.
    pub id: String,
}

/// Workspaces on a page of the list (page and API default).
pub const LIST_PAGE: i64 = 50;
/// The most a client may ask for on one page of the API.
pub const LIST_PAGE_MAX: i64 = 200;

impl ListCursor {
    /// The cursor just after `w`.
    pub fn of(w: &super::store::Workspace) -> Self {
        Self {
            deleted: w.deleted_at.is_some(),
            created_at: w.created_at,
            id: w.id.clone(),
        }
    }

    /// Parses a cursor a client sent back; `invalid_cursor` if it is not one.
    pub fn parse(s: &str) -> AppResult<Self> {
        let bad = || AppError::invalid(Code::InvalidCursor, "This page link is not valid.");
        let mut parts = s.splitn(3, '.');
        let deleted = match parts.next() {
            Some("a") => false,
            Some("d") => true,
            _ => return Err(bad()),
        };
        let created_at = parts
            .next()
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(bad)?;
        let id = parts.next().unwrap_or_default();
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
        Ok(Self {
            deleted,
            created_at,
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for ListCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.deleted { "d" } else { "a" };
        write!(f, "{state}.{}.{}", self.created_at, self.id)
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn pages_say_times_durations_and_health_in_words() {
        assert_eq!(fmt_time(&1_795_000_000), "18 Nov 2026, 11:06 UTC");
        assert_eq!(fmt_uptime(&5), "5 seconds");
        assert_eq!(fmt_uptime(&3661), "1 hour 1 minute");
        assert_eq!(fmt_uptime(&(3 * 86_400 + 4 * 3600 + 59)), "3 days 4 hours");
        assert_eq!(fmt_uptime(&0), "0 seconds");
        assert_eq!(fmt_bytes(&495_380), "483.8 KiB");
        assert_eq!(
            fmt_checks(r#"[{"name":"storage","ok":true,"detail_code":null}]"#),
            "The check passes"
        );
        assert_eq!(
            fmt_checks(
                r#"[{"name":"storage","ok":false,"detail_code":"disk_full"},{"name":"llm","ok":false,"detail_code":"unavailable"},{"name":"telegram","ok":true,"detail_code":null}]"#
            ),
            "storage fails (the disk is full); the AI model provider fails (the provider is unavailable)"
        );
        assert_eq!(
            fmt_checks(r#"[{"name":"tls","ok":false,"detail_code":"challenge_failed"}]"#),
            "HTTPS fails (the certificate authority could not reach the node on port 80 at its name: check DNS and the firewall)"
        );
        assert_eq!(fmt_checks("not json"), "Unknown");
    }
}

/// How long a node has been up, in its two largest units: `3 days 4 hours`, `5 minutes`,
/// `12 seconds`.
pub fn fmt_uptime(secs: &i64) -> String {
    let secs = (*secs).max(0);
    let units = [
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |left, &(size, name)| {
            let n = *left / size;
            *left %= size;
            Some((n, name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n} {name}{}", if n == 1 { "" } else { "s" }))
        .collect();
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Work waiting on the node (outbound messages, unsent reports), in words.
pub fn fmt_queue(n: &i64) -> String {
    match *n {
        0 => "nothing".to_owned(),
        1 => "1 item".to_owned(),
        n => format!("{n} items"),
    }
}

/// The node's health checks in words: "All checks pass" or what fails and why, from the
/// JSON the report ingest stored (`[{name, ok, detail_code}]`).
pub fn fmt_checks(json: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Check {
        name: String,
        ok: bool,
        detail_code: Option<String>,
    }
    let Ok(checks) = serde_json::from_str::<Vec<Check>>(json) else {
        return "Unknown".to_owned();
    };
    let failing: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            let what = match c.name.as_str() {
                "storage" => "storage",
                "llm" => "the AI model provider",
                "telegram" => "Telegram",
                "whatsapp" => "WhatsApp",
                "sms" => "SMS (Twilio)",
                "voice" => "phone calls (Twilio)",
                "tls" => "HTTPS",
                other => other,
            };
            let why = match c.detail_code.as_deref() {
                Some("disk_full") => " (the disk is full)",
                Some("write_failed") => " (cannot write to the disk)",
                Some("no_key") => " (no API key is set: add one in the node console's Settings)",
                Some("unauthorized") => " (the key or token is refused)",
                Some("rate_limited") => " (the provider is limiting requests)",
                Some("timeout") => " (the provider did not answer in time)",
                Some("unavailable") => " (the provider is unavailable)",
                Some("bad_response") | Some("no_answer") => " (the provider's answer was unusable)",
                Some("url_not_allowed") => {
                    " (the model endpoint is refused: it must be a public https address)"
                }
                // The node's own certificate (ACME), `agent_node::web::tls`.
                Some("acme_unreachable") => {
                    " (the certificate authority cannot be reached; the node keeps trying)"
                }
                Some("acme_timeout") => " (the certificate authority did not answer in time)",
                Some("acme_rate_limited") => {
                    " (the certificate authority is limiting requests; the node waits and tries again)"
                }
                Some("acme_refused") => " (the certificate authority refused the request)",
                Some("challenge_failed") => {
                    " (the certificate authority could not reach the node on port 80 at its name: check DNS and the firewall)"
                }
                Some("not_saved") => " (the certificate or ACME account could not be saved on the node's disk)",
                Some(code) if !code.is_empty() => return format!("{what} fails ({code})"),
                _ => "",
            };
            format!("{what} fails{why}")
        })
        .collect();
    match (checks.len(), failing.is_empty()) {
        (0, _) => "No checks reported yet".to_owned(),
        (1, true) => "The check passes".to_owned(),
        (n, true) => format!("All {n} checks pass"),
        (_, false) => failing.join("; "),
    }
}

/// A length of time in words, in its largest whole unit: `30 days`, `5 seconds`.
pub fn fmt_duration(secs: i64) -> String {
    let units = [
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (size, name) = units
        .into_iter()
        .find(|(size, _)| secs >= *size && secs % size == 0)
        .unwrap_or((1, "second"));
    let n = secs / size;
    format!("{n} {name}{}", if n == 1 { "" } else { "s" })
}

/// Formats a byte count for pages: `12.3 MiB`.
pub fn fmt_bytes(b: &i64) -> String {
    let mut v = *b as f64;
    for unit in ["bytes", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "bytes" {
                format!("{b} bytes")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{b} bytes")
}

/// Formats unix ms for pages.
pub fn fmt_ms(t: &i64) -> String {
    fmt_time(&(t / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_region_is_one_offered_and_the_first_by_default() {
        let offered = vec!["GRA11".to_string(), "BHS5".to_string()];
        assert_eq!(
            choose_region(&offered, None).unwrap().as_deref(),
            Some("GRA11")
        );
        assert_eq!(
            choose_region(&offered, Some(" ")).unwrap().as_deref(),
            Some("GRA11")
        );
        assert_eq!(
            choose_region(&offered, Some("BHS5")).unwrap().as_deref(),
            Some("BHS5")
        );
        assert_eq!(
            choose_region(&offered, Some("bhs5")).unwrap().as_deref(),
            Some("BHS5")
        );
        let e = choose_region(&offered, Some("SBG5")).unwrap_err();
        assert_eq!(e.status(), actix_web::http::StatusCode::BAD_REQUEST);
        assert!(
            e.message().contains("choose one of GRA11, BHS5"),
            "{}",
            e.message()
        );
        // Local nodes: no choice, and none may be made.
        assert_eq!(choose_region(&[], None).unwrap(), None);
        assert!(choose_region(&[], Some("GRA11")).is_err());
    }

    #[test]
    fn durations_and_sizes_read_as_words() {
        assert_eq!(fmt_duration(30 * 86_400), "30 days");
        assert_eq!(fmt_duration(86_400), "1 day");
        assert_eq!(fmt_duration(7200), "2 hours");
        assert_eq!(fmt_duration(5), "5 seconds");
        assert_eq!(fmt_duration(90), "90 seconds");
        assert_eq!(fmt_bytes(&512), "512 bytes");
        assert_eq!(fmt_bytes(&(3 * 1024 * 1024 / 2)), "1.5 MiB");
    }

    #[test]
    fn slugs_derive_and_validate() {
        assert_eq!(slugify("Acme Dental"), "acme-dental");
        assert_eq!(slugify("  Dr. Müller & Söhne!! "), "dr-m-ller-s-hne");
        assert!(validate_slug("acme-dental").is_ok());
        for bad in ["ab", "-acme", "acme-", "Acme", "ac me", "a--b", "api"] {
            assert!(validate_slug(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_list_cursor_reads_back_and_refuses_anything_else() {
        let c = ListCursor {
            deleted: true,
            created_at: 1_764_000_000,
            id: "ws_0a1B-2".into(),
        };
        assert_eq!(c.to_string(), "d.1764000000.ws_0a1B-2");
        assert_eq!(ListCursor::parse(&c.to_string()).unwrap(), c);
        assert!(!ListCursor::parse("a.5.x").unwrap().deleted);
        for bad in [
            "",
            "a",
            "a.5",
            "a.5.",
            "x.5.id",
            "a.five.id",
            "a.5.id'--",
            "a.5.a.b",
        ] {
            assert!(ListCursor::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
