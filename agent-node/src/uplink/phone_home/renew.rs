//! Certificate renewal (DESIGN §3): at a random 50–70 % of the certificate's life the
//! node generates a new key, sends a CSR to `POST /v1/node/renew` with its current
//! certificate, stores the new pair and switches the gateway client to it. The random
//! point spreads a fleet enrolled at once over a window instead of one instant.
//!
//! Times here are the CP's (local time plus the offset the gateway's `Date` answers
//! showed, [`crate::platform::clock`]): a node whose clock is days ahead would otherwise
//! see each new certificate as expired and renew in a loop. A renewal the CP refuses as
//! too early is asked for again an hour later.

use super::{sleep_or_stop, Exit, PhoneHome};
use crate::platform::backoff::Backoff;
use crate::platform::keys::{Identity, NodeKey};
use anyhow::Context as _;
use outpost_protocol::{RenewRequest, RenewResponse};
use rand::Rng as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest single sleep: wall-clock time is re-read after it, so a suspended VM or a
/// clock correction cannot push renewal past expiry.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// How long after a renewal refused as too early the node asks again, seconds (the CP
/// allows one renewal an hour per node).
const TOO_EARLY_RETRY_SECS: i64 = 3600;

/// Whether the CP refused a renewal as too early (`certificate_fresh`,
/// `renewal_too_soon`).
fn is_too_early(e: &super::CallError) -> bool {
    matches!(e, super::CallError::Rejected { code, .. }
        if code == "certificate_fresh" || code == "renewal_too_soon")
}

/// When to renew a certificate issued at `issued_at` (unix seconds) that expires at
/// `not_after`: a random point at 50–70 % of its remaining life, or after the fixed
/// `override_after` when given (tests).
pub fn pick_renew_at(issued_at: i64, not_after: i64, override_after: Option<Duration>) -> i64 {
    if let Some(d) = override_after {
        return issued_at.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    }
    let life = not_after.saturating_sub(issued_at).max(0);
    let fraction = rand::thread_rng().gen_range(0.5..=0.7);
    issued_at + (life as f64 * fraction) as i64
}

/// Sleeps until the stored `renew_at`, renews, repeats. Ends on a refused certificate
/// or stop.
pub async fn run(ctx: Arc<PhoneHome>, mut stop: watch::Receiver<bool>) -> anyhow::Result<Exit> {
    let mut backoff = Backoff::new(Duration::from_secs(1), ctx.max_backoff);
    loop {
        let renew_at = match ctx.store.node_state() {
            Ok(Some(s)) => s.renew_at,
            Ok(None) => anyhow::bail!("no node state: cannot schedule renewal"),
            Err(e) => {
                tracing::error!(error = %e, "reading the renewal time failed");
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return Ok(Exit::Stopped);
                }
                continue;
            }
        };
        // `renew_at` is in the CP's time (issue 18: a clock days ahead renewed in a loop).
        let wait = renew_at.saturating_sub(ctx.gateway.clock().cp_now());
        if wait > 0 {
            let d = Duration::from_secs(wait.unsigned_abs()).min(MAX_SLEEP);
            if sleep_or_stop(d, &mut stop).await {
                return Ok(Exit::Stopped);
            }
            continue;
        }
        let attempt = tokio::select! {
            r = renew_once(&ctx) => r,
            _ = stop.wait_for(|s| *s) => return Ok(Exit::Stopped),
        };
        match attempt {
            Ok(()) => backoff.reset(),
            Err(e)
                if e.downcast_ref::<super::CallError>()
                    .is_some_and(super::CallError::is_refused) =>
            {
                tracing::error!(error = %e, "renewal refused: certificate not accepted");
                return Ok(Exit::Refused);
            }
            Err(e)
                if e.downcast_ref::<super::CallError>()
                    .is_some_and(is_too_early) =>
            {
                // The CP judged it too early by its clock: ask again in an hour, not at
                // the reconnect backoff.
                let clock = ctx.gateway.clock();
                let next = clock.cp_now() + TOO_EARLY_RETRY_SECS;
                tracing::warn!(
                    error = %e,
                    clock_offset_secs = clock.offset().unwrap_or(0),
                    next_renewal = next,
                    "certificate renewal refused as too early; asking again in an hour"
                );
                if let Err(e) = ctx.store.set_renew_at(next) {
                    tracing::error!(error = %e, "storing the renewal time failed");
                    if sleep_or_stop(Duration::from_secs(TOO_EARLY_RETRY_SECS as u64), &mut stop)
                        .await
                    {
                        return Ok(Exit::Stopped);
                    }
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = %format!("{e:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "certificate renewal failed"
                );
                if sleep_or_stop(delay, &mut stop).await {
                    return Ok(Exit::Stopped);
                }
            }
        }
    }
}

async fn renew_once(ctx: &PhoneHome) -> anyhow::Result<()> {
    let key = NodeKey::generate()?;
    let request = RenewRequest {
        csr_pem: key.csr(ctx.node_id.as_str())?,
    };
    let response: RenewResponse = ctx
        .gateway
        .post("/v1/node/renew", &request, Duration::from_secs(30))
        .await?;
    let identity = Identity::new(response.cert_pem, key)?;
    anyhow::ensure!(
        identity.node_id == ctx.node_id.as_str(),
        "the renewed certificate names another node"
    );
    // Stored before use: a crash right after must not leave the old key with a new cert.
    identity
        .persist(&ctx.paths, &ctx.master)
        .context("storing the renewed certificate")?;
    let not_after = identity.not_after;
    ctx.gateway.install_identity(identity)?;
    let next = pick_renew_at(ctx.gateway.clock().cp_now(), not_after, ctx.renew_after);
    ctx.store.set_renew_at(next)?;
    tracing::info!(not_after, next_renewal = next, "certificate renewed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_50_and_70_percent_of_the_life() {
        let issued = 1_700_000_000;
        let life = 30 * 24 * 3600;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let at = pick_renew_at(issued, issued + life, None);
            assert!(at >= issued + life / 2, "not before 50 %");
            assert!(at <= issued + life * 7 / 10, "not after 70 %");
            seen.insert(at);
        }
        assert!(seen.len() > 100, "randomised across the window");
        assert_eq!(
            pick_renew_at(issued, issued + life, Some(Duration::from_secs(5))),
            issued + 5
        );
        // an already expired certificate is renewed at once
        assert_eq!(pick_renew_at(issued, issued - 10, None), issued);
    }
}
