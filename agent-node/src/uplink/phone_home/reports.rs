//! Health reports: produced on schedule into the outbox (`node.db`) first, then sent
//! oldest first. A CP outage therefore loses nothing, and replays are harmless because the
//! CP deduplicates on `(node, epoch, seq)`. The epoch is new at every process start, so a
//! node restored from a backup (its `seq` gone back) is followed again by the CP.

use super::{sleep_or_stop, CallError, Exit, PhoneHome};
use crate::platform::backoff::{jittered, Backoff};
use crate::platform::config::Paths;
use crate::platform::files;
use crate::platform::store::Store;
use outpost_protocol::{Check, Report, ReportAck};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How many outbox rows are read per round trip to the database.
const BATCH: usize = 50;
const REPORT_TIMEOUT: Duration = Duration::from_secs(15);

/// This process's report epoch (`Report::epoch`): 32 random hex digits, new at every
/// start and never stored, so a restore from a backup cannot bring an old one back.
pub fn boot_epoch() -> &'static str {
    static EPOCH: OnceLock<String> = OnceLock::new();
    EPOCH.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Appends a report every interval (±20 %), starting at once, and wakes the flusher.
pub async fn produce(
    ctx: Arc<PhoneHome>,
    flush_now: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Exit> {
    loop {
        let c = ctx.clone();
        match tokio::task::spawn_blocking(move || record_report(&c)).await {
            Ok(Ok(seq)) => tracing::debug!(seq, "report recorded"),
            Ok(Err(e)) => tracing::error!(error = %e, "recording a report failed"),
            Err(e) => tracing::error!(error = %e, "recording a report panicked"),
        }
        flush_now.notify_one();
        if sleep_or_stop(jittered(ctx.report_interval, 0.2), &mut stop).await {
            return Ok(Exit::Stopped);
        }
    }
}

fn record_report(ctx: &PhoneHome) -> crate::platform::store::Result<i64> {
    let storage = storage_check(&ctx.paths, &ctx.store);
    let disk = i64::try_from(files::dir_size(ctx.paths.dir())).unwrap_or(i64::MAX);
    let uptime = i64::try_from(ctx.started.elapsed().as_secs()).unwrap_or(i64::MAX);
    let mut checks = vec![storage];
    checks.extend(crate::web::channels::checks(&ctx.store));
    checks.extend(ctx.tls.as_ref().and_then(|t| t.check()));
    let mut counts = vec![];
    if let Some(rt) = &ctx.runtime {
        checks.extend(rt.health().check());
        // The current and the two previous hours: a report replaces the CP's figures for
        // the hours it carries, so late messages in a past hour are still counted.
        let since = crate::platform::store::now() / 3600 * 3600 - 2 * 3600;
        match rt.content().counts_since(since) {
            Ok(c) => counts = c,
            Err(e) => tracing::error!(error = %e, "reading usage counts failed"),
        }
    }
    let exports = match &ctx.exports {
        Some(e) => e.metas().unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "reading export metadata failed");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let week_ago = crate::platform::store::now() - 7 * 86_400;
    let retention_sweeps = crate::domain::retention::sweeps_since(&ctx.store, week_ago)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading retention sweeps failed");
            Vec::new()
        });
    let waiting = crate::domain::content::waiting_count(&ctx.store).unwrap_or_else(|e| {
        tracing::error!(error = %e, "counting waiting conversations failed");
        0
    });
    let ai_counts = crate::domain::ai_usage::since(
        &ctx.store,
        crate::domain::ai_usage::day_of(crate::platform::store::now()) - 86_400,
    )
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading AI counts failed");
        Vec::new()
    });
    let booking_counts =
        crate::domain::appointments::report_counts(&ctx.store, crate::platform::store::now())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading booking counts failed");
                Vec::new()
            });
    let call_counts =
        crate::web::channels::call_counts::report_counts(&ctx.store, crate::platform::store::now())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading call counts failed");
                Vec::new()
            });
    let base = Report {
        seq: 0,
        epoch: Some(boot_epoch().to_owned()),
        produced_at: crate::platform::store::now(),
        version: crate::version().to_owned(),
        uptime_s: uptime,
        checks,
        counts,
        disk_used_bytes: disk,
        queue_depth: 0,
        exports,
        retention_sweeps,
        waiting_conversations: i64::from(waiting),
        ai_counts,
        booking_counts,
        call_counts,
    };
    let appended = ctx.store.append_report(|seq, queue_depth| Report {
        seq,
        queue_depth,
        ..base.clone()
    });
    match appended {
        Ok(report) => Ok(report.seq),
        Err(e) if e.is_full() => {
            // The outbox cannot take the report that says so: it goes out without the
            // outbox (the flusher sends it after the stored ones). Lost if the process
            // stops first, like any state that could not be written; the next report
            // says the same.
            let mut report = base;
            report.seq = ctx.store.unsaved_seq()?;
            report.queue_depth = ctx.store.queue_depth().unwrap_or(0);
            if let Some(c) = report.checks.iter_mut().find(|c| c.name == "storage") {
                c.ok = false;
                c.detail_code = Some("disk_full".to_owned());
            }
            let seq = report.seq;
            tracing::warn!(seq, "the outbox is full; sending this report without it");
            *ctx.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
            Ok(seq)
        }
        Err(e) => Err(e),
    }
}

/// The `storage` check: can the node still write to its data directory, and has its
/// database room for a small write? `disk_full` when either has no space left.
pub fn storage_check(paths: &Paths, store: &Store) -> Check {
    let probe = paths.file(".storage-probe");
    let result = files::write_private(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe));
    let detail_code = match (result, store.probe_space()) {
        (Err(e), _) if e.raw_os_error() == Some(28) => Some("disk_full"),
        (_, Ok(false)) => Some("disk_full"),
        (Err(_), _) => Some("write_failed"),
        (Ok(()), Err(e)) => {
            tracing::error!(error = %e, "probing the database for space failed");
            Some("write_failed")
        }
        (Ok(()), Ok(true)) => None,
    };
    Check {
        name: "storage".into(),
        ok: detail_code.is_none(),
        detail_code: detail_code.map(str::to_owned),
    }
}

enum Flushed {
    Empty,
    Retry,
    Refused,
    Stopped,
}

/// Sends the outbox whenever woken; backs off (full jitter, base 1 s) while the CP
/// cannot be reached. Ends only on a refused certificate or stop.
pub async fn flush(
    ctx: Arc<PhoneHome>,
    flush_now: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Exit> {
    let mut backoff = Backoff::new(Duration::from_secs(1), ctx.max_backoff);
    loop {
        match flush_outbox(&ctx, &mut stop).await {
            Flushed::Empty => {
                backoff.reset();
                tokio::select! {
                    _ = flush_now.notified() => {}
                    _ = stop.wait_for(|s| *s) => return Ok(Exit::Stopped),
                }
            }
            Flushed::Retry => {
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return Ok(Exit::Stopped);
                }
            }
            Flushed::Refused => return Ok(Exit::Refused),
            Flushed::Stopped => return Ok(Exit::Stopped),
        }
    }
}

async fn flush_outbox(ctx: &PhoneHome, stop: &mut watch::Receiver<bool>) -> Flushed {
    loop {
        let batch = match ctx.store.pending_reports(BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                return Flushed::Retry;
            }
        };
        if batch.is_empty() {
            return flush_unsaved(ctx, stop).await;
        }
        for report in batch {
            let sent = tokio::select! {
                r = ctx.gateway.post::<_, ReportAck>("/v1/node/report", &report, REPORT_TIMEOUT) => r,
                _ = stop.wait_for(|s| *s) => return Flushed::Stopped,
            };
            match sent {
                Ok(ack) => {
                    if !ack.accepted {
                        tracing::debug!(seq = report.seq, "report was a replay");
                    }
                    // This process's own report reached the CP: a new binary on
                    // probation has phoned home.
                    if report.epoch.as_deref() == Some(boot_epoch()) {
                        if let Some(u) = &ctx.upgrade {
                            u.report_accepted();
                        }
                    }
                }
                Err(CallError::Refused(status)) => {
                    tracing::error!(
                        status,
                        "the control plane refuses this node's certificate; stopping reports"
                    );
                    return Flushed::Refused;
                }
                Err(CallError::Rejected { status, code }) => {
                    // Resending a report the CP cannot accept would block the outbox forever.
                    tracing::error!(
                        seq = report.seq,
                        status,
                        code,
                        "report rejected; dropping it"
                    );
                }
                Err(e) => {
                    tracing::warn!(seq = report.seq, error = %e, "report not delivered; will retry");
                    return Flushed::Retry;
                }
            }
            if let Err(e) = ctx.store.mark_report_sent(report.seq) {
                tracing::error!(seq = report.seq, error = %e, "updating the outbox failed");
                return Flushed::Retry;
            }
        }
    }
}

/// Sends the report the outbox could not take, if any (after the stored ones).
async fn flush_unsaved(ctx: &PhoneHome, stop: &mut watch::Receiver<bool>) -> Flushed {
    let Some(report) = ctx.unsaved.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return Flushed::Empty;
    };
    let sent = tokio::select! {
        r = ctx.gateway.post::<_, ReportAck>("/v1/node/report", &report, REPORT_TIMEOUT) => r,
        _ = stop.wait_for(|s| *s) => return Flushed::Stopped,
    };
    match sent {
        Ok(_) => Flushed::Empty,
        Err(CallError::Refused(status)) => {
            tracing::error!(
                status,
                "the control plane refuses this node's certificate; stopping reports"
            );
            Flushed::Refused
        }
        Err(CallError::Rejected { status, code }) => {
            tracing::error!(
                seq = report.seq,
                status,
                code,
                "report rejected; dropping it"
            );
            Flushed::Empty
        }
        Err(e) => {
            tracing::warn!(seq = report.seq, error = %e, "report not delivered; will retry");
            // Unless a newer one took its place meanwhile.
            ctx.unsaved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(report);
            Flushed::Retry
        }
    }
}
