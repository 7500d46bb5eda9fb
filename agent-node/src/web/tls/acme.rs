//! The node's certificate over ACME (RFC 8555), validated by HTTP-01 on port 80:
//!
//! 1. At start, a stored certificate for the same host is served at once (no order).
//! 2. When there is none, or two thirds of its life have passed, an order is placed with
//!    the stored account (created, with the operator's contact address, on first use),
//!    the challenge answered by [`super::redirect`], a new P-256 key made on the node and
//!    the chain fetched. The new certificate is swapped into [`CertSlot`] (no restart:
//!    new handshakes get it, open connections keep theirs) and sealed to disk.
//! 3. A failure is retried with full-jitter backoff (10 s doubling, capped at
//!    `--acme-max-backoff-secs`, an hour by default, which keeps a node whose DNS is not
//!    there yet below Let's Encrypt's failed-validation limit) and shows as the failing
//!    `tls` check, with a code, in the reports until an attempt succeeds.

use super::client::{AcmeHttp, Transport};
use super::stored::{self, StoredAccount, StoredCert};
use super::{AcmeSettings, CertSlot, Challenges, TlsStatus};
use crate::platform::backoff::Backoff;
use crate::platform::config::Paths;
use crate::platform::keys::MasterKey;
use crate::platform::store::now;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

/// First backoff step after a failure.
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// How long the CA may take to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));
/// Longest single sleep while waiting for the renewal time, so a wall clock that jumps
/// (a suspended machine, a corrected clock) is noticed within the hour.
const LONGEST_SLEEP: i64 = 3600;

/// Everything the certificate loop needs.
pub struct Acme {
    settings: AcmeSettings,
    host: String,
    paths: Paths,
    master: Arc<MasterKey>,
    slot: Arc<CertSlot>,
    challenges: Arc<Challenges>,
    status: Arc<TlsStatus>,
    http: AcmeHttp,
}

/// Why an attempt failed: the code the `tls` check carries, and the cause for the log.
struct Failure {
    code: &'static str,
    error: anyhow::Error,
}

impl Failure {
    fn new(code: &'static str, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Self {
        let code = match &e {
            instant_acme::Error::Api(problem) => problem_code(problem.r#type.as_deref()),
            instant_acme::Error::Other(inner) if inner.downcast_ref::<Transport>().is_some() => {
                "acme_unreachable"
            }
            instant_acme::Error::Timeout(_) => "acme_timeout",
            _ => "acme_refused",
        };
        Self::new(code, e)
    }
}

/// The check code for an ACME problem type (RFC 8555 §6.7).
fn problem_code(kind: Option<&str>) -> &'static str {
    let name = kind
        .and_then(|k| k.strip_prefix("urn:ietf:params:acme:error:"))
        .unwrap_or_default();
    match name {
        "rateLimited" => "acme_rate_limited",
        // What the CA says when it could not see the challenge answer at the node's name.
        "connection" | "dns" | "incorrectResponse" | "unauthorized" | "tls" | "caa" => {
            "challenge_failed"
        }
        _ => "acme_refused",
    }
}

/// What is known of the certificate being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    not_before: i64,
    not_after: i64,
}

impl Held {
    /// Two thirds into the certificate's life.
    fn renew_at(self) -> i64 {
        self.not_before + (self.not_after - self.not_before).max(0) * 2 / 3
    }
}

/// The challenge tokens of one attempt, no longer answered once it ends, however it ends.
struct Answering<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Answering<'_> {
    fn add(&mut self, token: &str, key_authorization: &str) {
        self.challenges.insert(token, key_authorization);
        self.tokens.push(token.to_owned());
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.challenges.remove(t);
        }
    }
}

impl Acme {
    /// The loop's state; nothing is contacted until [`Acme::run`].
    pub fn new(
        settings: AcmeSettings,
        host: String,
        paths: Paths,
        master: Arc<MasterKey>,
        slot: Arc<CertSlot>,
        challenges: Arc<Challenges>,
        status: Arc<TlsStatus>,
    ) -> anyhow::Result<Self> {
        let http = AcmeHttp::new(settings.extra_roots.clone())?;
        Ok(Self {
            settings,
            host,
            paths,
            master,
            slot,
            challenges,
            status,
            http,
        })
    }

    /// Serves the stored certificate if there is one, then obtains and renews for ever.
    pub async fn run(self) {
        let mut held = self.load_stored();
        let mut backoff = Backoff::new(
            FIRST_RETRY.min(self.settings.max_backoff),
            self.settings.max_backoff,
        );
        loop {
            if let Some(h) = held {
                let wait = h.renew_at() - now();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_secs(wait.min(LONGEST_SLEEP).unsigned_abs()))
                        .await;
                    continue;
                }
            }
            tracing::info!(host = %self.host, renewal = held.is_some(), "ordering the HTTPS certificate");
            match self.obtain().await {
                Ok((h, saved)) => {
                    held = Some(h);
                    backoff.reset();
                    if saved {
                        self.status.set_ok();
                    } else {
                        self.status.set_failed("not_saved");
                    }
                    tracing::info!(
                        host = %self.host,
                        not_after = h.not_after,
                        renew_at = h.renew_at(),
                        "HTTPS certificate obtained and served"
                    );
                }
                Err(f) => {
                    self.status.set_failed(f.code);
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        host = %self.host,
                        code = f.code,
                        error = %format!("{:#}", f.error),
                        retry_in_s = delay.as_secs(),
                        "could not obtain the HTTPS certificate; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The stored certificate for this host, served at once; `None` when there is none
    /// (or it is for another host, or unreadable: then a new one is ordered).
    fn load_stored(&self) -> Option<Held> {
        let cert = match stored::cert(&self.paths, &self.master) {
            Ok(Some(c)) if c.host == self.host => c,
            Ok(Some(_)) => {
                tracing::info!(host = %self.host, "the stored certificate names another host; ordering one");
                return None;
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the stored certificate is unreadable; ordering one");
                return None;
            }
        };
        match self.install(&cert) {
            Ok(h) => {
                if h.not_after > now() {
                    self.status.set_ok();
                }
                tracing::info!(host = %self.host, not_after = h.not_after, renew_at = h.renew_at(), "serving the stored HTTPS certificate");
                Some(h)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the stored certificate is unusable; ordering one");
                None
            }
        }
    }

    /// Checks that `cert` names this host and serves it.
    fn install(&self, cert: &StoredCert) -> anyhow::Result<Held> {
        let key = super::certified_key(&cert.chain_pem, &cert.key_pem)?;
        let leaf = key
            .cert
            .first()
            .ok_or_else(|| anyhow::anyhow!("the chain is empty"))?;
        let info = outpost_pki::server_cert_info(leaf)?;
        anyhow::ensure!(
            info.dns_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&self.host)),
            "the certificate does not name {}",
            self.host
        );
        self.slot.install(Arc::new(key));
        Ok(Held {
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }

    /// One attempt: order, answer the challenge, finalize with a new key, install, store.
    /// `saved` is false when the certificate is served but could not be written.
    async fn obtain(&self) -> Result<(Held, bool), Failure> {
        let account = self.account().await?;
        let ids = [Identifier::Dns(self.host.clone())];
        let mut order = match account.new_order(&NewOrder::new(&ids)).await {
            Ok(o) => o,
            Err(e) => {
                let failure = Failure::from(e);
                if is_problem(&failure, "accountDoesNotExist") {
                    // The CA forgot the account (a test CA restarted, an account deactivated):
                    // the next attempt makes another.
                    stored::forget_account(&self.paths)
                        .map_err(|e| Failure::new("not_saved", e))?;
                }
                return Err(failure);
            }
        };
        let mut answering = Answering {
            challenges: &self.challenges,
            tokens: Vec::new(),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(Failure::new(
                        "challenge_failed",
                        anyhow::anyhow!("the authorization is {other:?}"),
                    ))
                }
            }
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                Failure::new(
                    "acme_refused",
                    anyhow::anyhow!("the CA offers no http-01 challenge"),
                )
            })?;
            answering.add(&challenge.token, challenge.key_authorization().as_str());
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&POLL).await?;
        drop(answering);
        if status != OrderStatus::Ready {
            return Err(Failure::new(
                "challenge_failed",
                anyhow::anyhow!("the order is {status:?}: the CA could not validate the challenge"),
            ));
        }
        let key = outpost_pki::generate_key().map_err(|e| Failure::new("acme_refused", e))?;
        let csr = outpost_pki::make_server_csr(&key, &self.host)
            .map_err(|e| Failure::new("acme_refused", e))?;
        order.finalize_csr(&csr).await?;
        let chain_pem = order.poll_certificate(&POLL).await?;
        let cert = StoredCert {
            host: self.host.clone(),
            chain_pem,
            key_pem: key.serialize_pem(),
        };
        let held = self
            .install(&cert)
            .map_err(|e| Failure::new("acme_refused", e))?;
        let saved = match stored::save_cert(&self.paths, &self.master, &cert) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the new HTTPS certificate is served but could not be stored");
                false
            }
        };
        Ok((held, saved))
    }

    /// The stored account for this directory, or a new one (stored before use).
    async fn account(&self) -> Result<Account, Failure> {
        let http = || Box::new(self.http.clone());
        match stored::account(&self.paths, &self.master) {
            Ok(Some(a)) if a.directory == self.settings.directory => {
                return Ok(Account::builder_with_http(http())
                    .from_credentials(a.credentials)
                    .await?);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the stored ACME account is unreadable; creating another");
            }
        }
        let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(http())
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await?;
        stored::save_account(
            &self.paths,
            &self.master,
            &StoredAccount {
                directory: self.settings.directory.clone(),
                credentials,
            },
        )
        .map_err(|e| Failure::new("not_saved", e))?;
        tracing::info!(directory = %self.settings.directory, "ACME account created");
        Ok(account)
    }
}

fn is_problem(f: &Failure, name: &str) -> bool {
    matches!(
        f.error.downcast_ref::<instant_acme::Error>(),
        Some(instant_acme::Error::Api(p))
            if p.r#type.as_deref().and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:")) == Some(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_two_thirds_into_the_life() {
        let h = Held {
            not_before: 1_000,
            not_after: 1_000 + 90 * 86_400,
        };
        assert_eq!(h.renew_at(), 1_000 + 60 * 86_400);
    }

    #[test]
    fn problems_become_check_codes() {
        let p = |t: &str| problem_code(Some(&format!("urn:ietf:params:acme:error:{t}")));
        assert_eq!(p("rateLimited"), "acme_rate_limited");
        assert_eq!(p("connection"), "challenge_failed");
        assert_eq!(p("unauthorized"), "challenge_failed");
        assert_eq!(p("malformed"), "acme_refused");
        assert_eq!(problem_code(None), "acme_refused");
    }
}
