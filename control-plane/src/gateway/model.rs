//! The gateway's types and rules: the authenticated node, what a
//! report may carry (export and sweep metadata checked field by field), when the members
//! hear that customers wait, how an enrollment is refused, how a destruction receipt
//! verifies, and which command an acknowledgement is for. Pure: no database, no HTTP.

use crate::error::{AppError, AppResult, Code};
use outpost_protocol::{
    AiCount, BookingCount, CallCount, CommandKind, CountBucket, ExportMeta, RetentionSweep,
    MAX_AI_COUNTS, MAX_BOOKING_COUNTS, MAX_CALL_COUNTS, MAX_COUNT_BUCKETS, MAX_EPOCH_LEN,
    MAX_SEQ_AHEAD,
};

/// The one key of `AppState::csr_limiter`: DESIGN §6 caps CSR signing (enrollment and
/// renewal) at 50/s for all nodes together, not per node.
pub const CSR_LIMIT_KEY: &str = "csr";

/// How far a node's clock may be from the CP's at enrollment, seconds (DESIGN §6, ±5 min).
pub const CLOCK_SKEW_TOLERANCE_SECS: i64 = 5 * 60;

/// An enrolling node's clock further than [`CLOCK_SKEW_TOLERANCE_SECS`] from the CP's
/// (`now`): 409 `clock_skew`, in words a node log or an operator can act on. `None` when
/// in tolerance or when the node did not say its time (an older node).
pub fn skew_refusal(node_time: Option<i64>, now: i64) -> Option<(i64, AppError)> {
    let offset = now.saturating_sub(node_time?);
    if offset.abs() <= CLOCK_SKEW_TOLERANCE_SECS {
        return None;
    }
    Some((
        offset,
        AppError::Conflict(
            Code::ClockSkew,
            format!(
                "The node's clock is {} the control plane's (more than the 5 minutes tolerated): fix its time (NTP); it enrolls by itself once its clock is right.",
                skew_words(offset)
            ),
        ),
    ))
}

/// "120 minutes behind" / "3 minutes ahead of", for `offset` = CP − node seconds.
pub fn skew_words(offset: i64) -> String {
    // To the nearest minute: a request takes a moment, so a clock 120 minutes off is
    // seen 120 minutes and a few seconds off.
    let minutes = offset.unsigned_abs().saturating_add(30) / 60;
    let side = if offset > 0 { "behind" } else { "ahead of" };
    format!("{minutes} minutes {side}")
}

/// Where a report stands against the newest one the CP applied for its node
/// (`last`: that report's seq and epoch, `None` before the first). A new epoch (the node
/// process restarted, perhaps from a backup whose `seq` is behind) restarts the ordering,
/// so its reports are the newest whatever their `seq`; within an epoch the higher `seq`
/// wins. Refused (400 `invalid_seq`): a `seq` below 1, or further ahead of the newest
/// than any node could have produced ([`MAX_SEQ_AHEAD`]): accepting it would make every
/// later report of that epoch look older and freeze the node's status. An epoch longer
/// than [`MAX_EPOCH_LEN`] is refused too. A stored newest `seq` more than
/// [`MAX_SEQ_AHEAD`] ahead of this one (accepted before this rule) is superseded. Returns whether the report is the newest.
pub fn order_report(last: Option<(i64, &str)>, seq: i64, epoch: &str) -> AppResult<bool> {
    if seq < 1 {
        return Err(AppError::invalid(Code::InvalidSeq, "seq starts at 1."));
    }
    let base = last.map_or(0, |(s, _)| s.max(0));
    if seq > base.saturating_add(MAX_SEQ_AHEAD) {
        return Err(AppError::invalid(
            Code::InvalidSeq,
            format!(
                "seq {seq} is more than {MAX_SEQ_AHEAD} ahead of this node's newest report ({base}): no node produces that many reports."
            ),
        ));
    }
    if epoch.len() > MAX_EPOCH_LEN || epoch.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(AppError::invalid(
            Code::InvalidSeq,
            format!("epoch must be at most {MAX_EPOCH_LEN} printable ASCII characters."),
        ));
    }
    // A newest seq that far ahead of this one was itself absurd (stored before such seqs
    // were refused): this report replaces it, which unfreezes such a node.
    Ok(match last {
        None => true,
        Some((s, e)) => e != epoch || seq > s || s - seq > MAX_SEQ_AHEAD,
    })
}

/// A report's call counts, refused whole (400 `invalid_counts`) if there are more than
/// [`MAX_CALL_COUNTS`], a figure is negative or an hour is not the start of one.
pub fn check_call_counts(counts: &[CallCount]) -> AppResult<()> {
    if counts.len() > MAX_CALL_COUNTS {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            format!(
                "A report carries at most {MAX_CALL_COUNTS} call count rows; this one has {}.",
                counts.len()
            ),
        ));
    }
    if counts
        .iter()
        .any(|c| c.hour < 0 || c.hour % 3600 != 0 || c.calls < 0 || c.minutes < 0)
    {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            "Call counts need whole hours and no negative figure.",
        ));
    }
    Ok(())
}

/// A report's booking counts, refused whole (400 `invalid_counts`) if there are more
/// than [`MAX_BOOKING_COUNTS`], a figure is negative or an hour is not the start of one.
pub fn check_booking_counts(counts: &[BookingCount]) -> AppResult<()> {
    if counts.len() > MAX_BOOKING_COUNTS {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            format!(
                "A report carries at most {MAX_BOOKING_COUNTS} booking count rows; this one has {}.",
                counts.len()
            ),
        ));
    }
    if counts.iter().any(|c| {
        c.hour < 0 || c.hour % 3600 != 0 || c.booked < 0 || c.rescheduled < 0 || c.cancelled < 0
    }) {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            "Booking counts need whole hours and no negative figure.",
        ));
    }
    Ok(())
}

/// A report's AI counts, refused whole (400 `invalid_counts`) if there are more than
/// [`MAX_AI_COUNTS`], a figure or day is negative, or a model name is not one
/// ([`outpost_protocol::valid_model_name`]: bounded, `A-Z a-z 0-9 . _ : / @ -`), so the
/// field carries counts and model names and nothing else.
pub fn check_ai_counts(counts: &[AiCount]) -> AppResult<()> {
    if counts.len() > MAX_AI_COUNTS {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            format!(
                "A report carries at most {MAX_AI_COUNTS} AI count rows; this one has {}.",
                counts.len()
            ),
        ));
    }
    if counts
        .iter()
        .any(|c| c.day < 0 || c.requests < 0 || c.input_tokens < 0 || c.output_tokens < 0)
    {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            "AI counts and days are never negative.",
        ));
    }
    if counts
        .iter()
        .any(|c| !outpost_protocol::valid_model_name(&c.model))
    {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            "A model name has 1 to 100 of the characters A-Z a-z 0-9 . _ : / @ -.",
        ));
    }
    Ok(())
}

/// A report's usage counts, refused whole (400 `invalid_counts`) if any figure or hour is
/// negative or there are more than [`MAX_COUNT_BUCKETS`] buckets: no node sends those,
/// and stored they would skew the workspace's usage and billing.
pub fn check_counts(counts: &[CountBucket]) -> AppResult<()> {
    if counts.len() > MAX_COUNT_BUCKETS {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            format!(
                "A report carries at most {MAX_COUNT_BUCKETS} count buckets; this one has {}.",
                counts.len()
            ),
        ));
    }
    if let Some(c) = counts
        .iter()
        .find(|c| c.hour < 0 || c.inbound < 0 || c.outbound < 0 || c.conversations < 0)
    {
        return Err(AppError::invalid(
            Code::InvalidCounts,
            format!(
                "Counts and hours are never negative (channel {:?}, hour {}).",
                c.channel.chars().take(32).collect::<String>(),
                c.hour
            ),
        ));
    }
    Ok(())
}

/// An authenticated node: its certificate chained to our CA (checked by rustls), its
/// serial is current or a still-valid previous one, not revoked, and the node is not
/// destroyed.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node id from the certificate SAN.
    pub node_id: String,
    /// Certificate serial.
    pub serial: String,
    /// Certificate DER (to verify receipts signed by the node key).
    pub cert_der: Vec<u8>,
}

/// How long a good verdict on a connection's certificate is trusted without asking the
/// database again. A revocation made by this process is seen at once (the revocation
/// generation); this bounds how long one made by another replica goes unseen.
pub const VERDICT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// A good verdict on a client certificate, kept with its TLS connection.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Who the certificate says the node is.
    pub identity: NodeIdentity,
    /// The certificate's expiry, unix seconds.
    pub not_after: i64,
    /// The revocation generation read before the database said it was good.
    pub generation: u64,
    /// When the database said so.
    pub at: std::time::Instant,
}

impl Verdict {
    /// Whether it still holds: no revocation since (same generation), younger than
    /// [`VERDICT_TTL`], certificate unexpired.
    pub fn holds(&self, generation: u64, now: std::time::Instant, unix_now: i64) -> bool {
        self.generation == generation
            && now.saturating_duration_since(self.at) < VERDICT_TTL
            && self.not_after > unix_now
    }
}

/// Why a bootstrap token is refused (its audit detail), or `None` if it is good: it must
/// exist, belong to the node it names, be unused and unexpired. `token` is the stored
/// row: node id, expiry, when it was used.
pub fn token_refusal(
    token: Option<&(String, i64, Option<i64>)>,
    node_id: &str,
    now: i64,
) -> Option<&'static str> {
    match token {
        None => Some("unknown_token"),
        Some((n, _, _)) if n != node_id => Some("unknown_token"),
        Some((_, _, Some(_))) => Some("token_reused"),
        Some((_, exp, _)) if *exp <= now => Some("token_expired"),
        _ => None,
    }
}

/// The fewest seconds between two renewals of one node's certificate (issue 18: a node
/// whose clock ran ahead renewed many times a second).
pub const RENEWAL_MIN_INTERVAL_SECS: i64 = 3600;

/// Why a renewal is refused, if it is: the presented certificate (issued at `issued_at`,
/// expiring at `not_after`) still has more than half its life left at `now`, or the
/// node's newest certificate was issued less than [`RENEWAL_MIN_INTERVAL_SECS`] ago.
/// The message says when to come back in CP time, which a node with a wrong clock can
/// still use.
pub fn renewal_refusal(
    issued_at: i64,
    not_after: i64,
    newest_issued_at: i64,
    now: i64,
) -> Option<AppError> {
    let half_life = issued_at + (not_after - issued_at) / 2;
    if now < half_life {
        return Some(AppError::Conflict(
            Code::CertificateFresh,
            format!(
                "This certificate has more than half of its life left; renew it after {half_life} (unix time, control plane clock)."
            ),
        ));
    }
    let next = newest_issued_at + RENEWAL_MIN_INTERVAL_SECS;
    if now < next {
        return Some(AppError::Conflict(
            Code::RenewalTooSoon,
            format!(
                "This node was issued a certificate less than an hour ago; renew after {next} (unix time, control plane clock)."
            ),
        ));
    }
    None
}

/// Whether an age recipient looks like one (`age1…`, bounded).
pub fn plausible_age_recipient(r: &str) -> bool {
    r.starts_with("age1") && r.len() <= 200
}

/// How long after telling a workspace's members that customers wait for them the CP
/// stays quiet about new ones (a busy morning must not flood their mailboxes).
pub const WAITING_NOTICE_QUIET_SECS: i64 = 600;

/// The waiting count to store (clamped) and whether to tell the members: when it rose,
/// unless they were told within [`WAITING_NOTICE_QUIET_SECS`].
pub fn waiting_notice(
    reported: i64,
    before: Option<i64>,
    notified_at: Option<i64>,
    now: i64,
) -> (i64, bool) {
    let waiting = reported.clamp(0, 1_000_000);
    let rose = waiting > before.unwrap_or(0);
    let quiet = notified_at.is_some_and(|t| now - t < WAITING_NOTICE_QUIET_SECS);
    (waiting, rose && !quiet)
}

/// A node's version as the CP stores it (enrollment and reports): its first 64
/// characters.
pub fn stored_version(version: &str) -> String {
    version.chars().take(64).collect()
}

/// Most exports and sweeps one report may carry; more are ignored (a node reports 30 days
/// of exports and 7 days of daily sweeps).
pub const MAX_EXPORTS_PER_REPORT: usize = 200;
/// See [`MAX_EXPORTS_PER_REPORT`].
pub const MAX_SWEEPS_PER_REPORT: usize = 64;
/// Larger sizes or counts than this are not plausible and are ignored (1 PiB, 10^12).
const MAX_EXPORT_BYTES: i64 = 1 << 50;
const MAX_SWEEP_COUNT: i64 = 1_000_000_000_000;
/// Times before 2020 or more than the skew tolerance (DESIGN §6: 5 min) ahead are ignored.
const EARLIEST_PLAUSIBLE: i64 = 1_577_836_800;
const CLOCK_SKEW_S: i64 = 300;
/// A link is valid 7 days at most from when the export finished (which may be well after
/// it was requested), and an expired one carries when it expired; a node reports exports
/// of its last 30 days, so any expiry within 31 days of the request is plausible.
const MAX_EXPORT_LIFETIME_S: i64 = 31 * 24 * 3600;

/// An export's metadata as the CP may store it, or `None` if any field is not what the
/// protocol allows (the id must be a UUID, scope and state from their lists, size and
/// times plausible). Garbage is dropped quietly: one bad entry must not cost the node its
/// health report, and nothing but these fields is ever kept.
pub fn valid_export(e: &ExportMeta, now: i64) -> Option<ExportMeta> {
    let id = uuid::Uuid::parse_str(&e.id).ok()?.to_string();
    let scope = ["workspace", "contact"]
        .into_iter()
        .find(|s| *s == e.scope)?;
    let state = ["running", "ready", "failed", "expired"]
        .into_iter()
        .find(|s| *s == e.state)?;
    let plausible = (0..=MAX_EXPORT_BYTES).contains(&e.size_bytes)
        && (EARLIEST_PLAUSIBLE..=now + CLOCK_SKEW_S).contains(&e.created_at)
        && (e.created_at..=e.created_at + MAX_EXPORT_LIFETIME_S).contains(&e.expires_at);
    plausible.then(|| ExportMeta {
        id,
        scope: scope.to_owned(),
        state: state.to_owned(),
        size_bytes: e.size_bytes,
        created_at: e.created_at,
        expires_at: e.expires_at,
    })
}

/// A retention sweep's counts if they are plausible.
pub fn valid_sweep(s: &RetentionSweep, now: i64) -> Option<RetentionSweep> {
    let counts = [s.messages_deleted, s.contacts_erased, s.exports_deleted];
    let plausible = counts.iter().all(|c| (0..=MAX_SWEEP_COUNT).contains(c))
        && (EARLIEST_PLAUSIBLE..=now + CLOCK_SKEW_S).contains(&s.at);
    plausible.then(|| s.clone())
}

/// The command an acknowledgement is for. Its stored payload is the [`CommandKind`]
/// itself; once acknowledged the payload is erased (it may hold a sealed secret), so a
/// repeated ack is known by its stored kind name only, and its data fields are empty.
pub fn acked_kind(name: &str, payload: Option<&str>) -> Option<CommandKind> {
    if let Some(kind) = payload.and_then(|p| serde_json::from_str::<CommandKind>(p).ok()) {
        return Some(kind);
    }
    let blank = || String::new();
    let kinds = [
        CommandKind::ApplyConfig {
            config: serde_json::Value::Null,
        },
        CommandKind::DeliverSecret {
            secret_kind: blank(),
            sealed: blank(),
        },
        CommandKind::RemoveSecret {
            secret_kind: blank(),
        },
        CommandKind::Suspend {
            reason_code: blank(),
        },
        CommandKind::Resume,
        CommandKind::Deprovision,
        CommandKind::EndConsoleSessions { user_id: blank() },
    ];
    kinds.into_iter().find(|k| k.name() == name)
}

/// Verifies a destruction receipt: signed by the key of the certificate the node
/// presented, for this node, naming this certificate.
pub fn verify_receipt(
    node: &NodeIdentity,
    r: &outpost_protocol::DestructionReceipt,
) -> AppResult<()> {
    let bad = || {
        AppError::invalid(
            Code::InvalidReceipt,
            "The destruction receipt does not verify.",
        )
    };
    let sig = outpost_crypto::unb64(&r.signature).map_err(|_| bad())?;
    outpost_pki::verify_with_cert(&node.cert_der, r.body.as_bytes(), &sig).map_err(|_| bad())?;
    let body = r.parsed_body().map_err(|_| bad())?;
    if body.format != outpost_protocol::RECEIPT_FORMAT
        || body.node_id.as_str() != node.node_id
        || body.cert_sha256 != outpost_pki::sha256_hex(&node.cert_der)
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_holds_until_a_revocation_its_ttl_or_the_expiry() {
        let at = std::time::Instant::now();
        let v = Verdict {
            identity: NodeIdentity {
                node_id: "n".into(),
                serial: "s".into(),
                cert_der: vec![],
            },
            not_after: 1_000,
            generation: 7,
            at,
        };
        assert!(v.holds(7, at + std::time::Duration::from_secs(1), 999));
        assert!(!v.holds(8, at, 999), "a revocation since");
        assert!(!v.holds(7, at + VERDICT_TTL, 999), "too old");
        assert!(!v.holds(7, at, 1_000), "certificate expired");
    }

    #[test]
    fn renewal_waits_for_half_the_life_and_an_hour() {
        let day = 86_400;
        let code = |e: Option<AppError>| e.map(|e| e.code().to_owned());
        // fresh
        assert_eq!(
            code(renewal_refusal(0, 30 * day, 0, 14 * day)).as_deref(),
            Some("certificate_fresh")
        );
        // half-way, nothing newer
        assert_eq!(code(renewal_refusal(0, 30 * day, 0, 15 * day)), None);
        // half-way, but another certificate issued 10 minutes ago
        assert_eq!(
            code(renewal_refusal(0, 30 * day, 20 * day - 600, 20 * day)).as_deref(),
            Some("renewal_too_soon")
        );
        assert_eq!(code(renewal_refusal(0, 30 * day, 19 * day, 20 * day)), None);
    }

    #[test]
    fn skew_is_said_to_the_nearest_minute() {
        // A node two hours behind is seen a second or two further behind by the time its
        // request arrives: still "120 minutes", as the operator set it (the e2e test was
        // flaky with 121).
        assert_eq!(skew_words(7_200), "120 minutes behind");
        assert_eq!(skew_words(7_201), "120 minutes behind");
        assert_eq!(skew_words(7_229), "120 minutes behind");
        assert_eq!(skew_words(7_230), "121 minutes behind");
        assert_eq!(skew_words(-330), "6 minutes ahead of");
    }

    #[test]
    fn report_order_follows_seq_within_an_epoch_and_restarts_with_a_new_one() {
        assert_eq!(order_report(None, 1, "").ok(), Some(true));
        assert_eq!(order_report(Some((5, "a")), 6, "a").ok(), Some(true));
        assert_eq!(order_report(Some((5, "a")), 5, "a").ok(), Some(false));
        assert_eq!(order_report(Some((5, "a")), 2, "a").ok(), Some(false));
        // Restored from a backup: a new epoch, seq gone back → the newest.
        assert_eq!(order_report(Some((5, "a")), 2, "b").ok(), Some(true));
        // An old node (no epoch) that starts sending one.
        assert_eq!(order_report(Some((5, "")), 6, "b").ok(), Some(true));
    }

    #[test]
    fn counts_are_bounded_and_never_negative() {
        let b = |hour, inbound, conversations| CountBucket {
            channel: "web".into(),
            hour,
            inbound,
            outbound: 0,
            conversations,
        };
        assert!(check_counts(&[b(3600, 2, 1)]).is_ok());
        assert!(check_counts(&vec![b(3600, 0, 0); MAX_COUNT_BUCKETS]).is_ok());
        for bad in [
            vec![b(3600, -1, 0)],
            vec![b(3600, 0, -1)],
            vec![b(-1, 0, 0)],
            vec![b(3600, 0, 0); MAX_COUNT_BUCKETS + 1],
        ] {
            assert!(
                matches!(
                    check_counts(&bad),
                    Err(AppError::BadRequest(Code::InvalidCounts, _))
                ),
                "{bad:?}"
            );
        }
    }

    /// Issue 19 part 5: AI counts carry counts and a model name, nothing else.
    #[test]
    fn ai_counts_need_a_model_name_and_no_negative_figure() {
        let a = |model: &str, requests| AiCount {
            day: 86_400,
            model: model.into(),
            requests,
            input_tokens: 10,
            output_tokens: 2,
        };
        assert!(check_ai_counts(&[
            a("gpt-4o-mini", 3),
            a("claude-3-5-haiku@20241022", 1),
            a("meta-llama/Llama-3.1-8B:free", 0)
        ])
        .is_ok());
        assert!(check_ai_counts(&vec![a("m", 1); MAX_AI_COUNTS]).is_ok());
        for bad in [
            vec![a("", 1)],
            vec![a("gpt 4", 1)],
            vec![a("what is my diagnosis?", 1)],
            vec![a("gpt\n4", 1)],
            vec![a(&"m".repeat(101), 1)],
            vec![a("é", 1)],
            vec![a("m", -1)],
            vec![a("m", 1); MAX_AI_COUNTS + 1],
        ] {
            assert!(
                matches!(
                    check_ai_counts(&bad),
                    Err(AppError::BadRequest(Code::InvalidCounts, _))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn absurd_seqs_and_epochs_are_refused() {
        for (last, seq) in [
            (None, 0),
            (None, -1),
            (None, i64::MAX),
            (None, MAX_SEQ_AHEAD + 1),
            (Some((7, "a")), 7 + MAX_SEQ_AHEAD + 1),
        ] {
            let e = order_report(last, seq, "a");
            assert!(
                matches!(e, Err(AppError::BadRequest(Code::InvalidSeq, _))),
                "{last:?} {seq}"
            );
        }
        assert!(order_report(Some((7, "a")), 7 + MAX_SEQ_AHEAD, "a").is_ok());
        // A node frozen by an i64::MAX stored before this rule is followed again.
        assert_eq!(order_report(Some((i64::MAX, "")), 2, "").ok(), Some(true));
        assert!(order_report(None, 1, &"e".repeat(MAX_EPOCH_LEN + 1)).is_err());
        assert!(order_report(None, 1, "bad epoch").is_err());
    }

    fn export(
        id: &str,
        scope: &str,
        state: &str,
        size: i64,
        created: i64,
        expires: i64,
    ) -> ExportMeta {
        ExportMeta {
            id: id.into(),
            scope: scope.into(),
            state: state.into(),
            size_bytes: size,
            created_at: created,
            expires_at: expires,
        }
    }

    #[test]
    fn export_metadata_is_kept_only_when_every_field_is_what_the_protocol_allows() {
        let now = 1_800_000_000;
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        let ok = valid_export(
            &export(id, "workspace", "ready", 10, now, now + 86_400),
            now,
        )
        .expect("valid");
        assert_eq!(ok.id, "6f9619ff-8b86-d011-b42d-00c04fc964ff", "normalised");
        assert!(valid_export(&export(id, "contact", "running", 0, now, now), now).is_some());
        for bad in [
            export("not-a-uuid", "workspace", "ready", 1, now, now + 1),
            export(
                "https://node/x?sig=1",
                "workspace",
                "ready",
                1,
                now,
                now + 1,
            ),
            export(id, "everything", "ready", 1, now, now + 1),
            export(id, "workspace", "downloadable", 1, now, now + 1),
            export(id, "workspace", "ready", -1, now, now + 1),
            export(id, "workspace", "ready", MAX_EXPORT_BYTES + 1, now, now + 1),
            export(id, "workspace", "ready", 1, now + 3600, now + 7200),
            export(id, "workspace", "ready", 1, 5, 6),
            export(id, "workspace", "ready", 1, now, now - 1),
            export(id, "workspace", "ready", 1, now, now + 40 * 86_400),
        ] {
            assert!(valid_export(&bad, now).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sweep_counts_must_be_plausible() {
        let now = 1_800_000_000;
        let s = |at, m, c, e| RetentionSweep {
            at,
            messages_deleted: m,
            contacts_erased: c,
            exports_deleted: e,
        };
        assert!(valid_sweep(&s(now - 60, 1204, 3, 0), now).is_some());
        for bad in [
            s(now, -1, 0, 0),
            s(now, 0, -1, 0),
            s(now, 0, 0, MAX_SWEEP_COUNT + 1),
            s(now + 3600, 0, 0, 0),
            s(0, 0, 0, 0),
        ] {
            assert!(valid_sweep(&bad, now).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn an_ack_is_matched_to_its_command_with_or_without_the_payload() {
        let suspend = CommandKind::Suspend {
            reason_code: "payment".into(),
        };
        let payload = serde_json::to_string(&suspend).expect("serialises");
        assert_eq!(acked_kind("suspend", Some(&payload)), Some(suspend));
        // Every kind the CP sends is known by its name once its payload is erased.
        for name in [
            "apply_config",
            "deliver_secret",
            "remove_secret",
            "suspend",
            "resume",
            "deprovision",
            "end_console_sessions",
        ] {
            assert_eq!(acked_kind(name, None).map(|k| k.name()), Some(name));
        }
        assert_eq!(acked_kind("reboot", None), None);
    }

    #[test]
    fn members_hear_of_waiting_customers_when_the_count_rises_outside_the_quiet_time() {
        let now = 1_800_000_000;
        assert_eq!(waiting_notice(3, Some(1), None, now), (3, true));
        assert_eq!(waiting_notice(1, Some(3), None, now), (1, false));
        assert_eq!(waiting_notice(3, None, Some(now - 60), now), (3, false));
        assert_eq!(
            waiting_notice(3, Some(0), Some(now - WAITING_NOTICE_QUIET_SECS), now),
            (3, true)
        );
        assert_eq!(waiting_notice(-5, None, None, now), (0, false));
    }
}
