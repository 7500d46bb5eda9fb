//! Enrollment (DESIGN §3): the node generates its TLS key and age identity locally, sends
//! a CSR, its age recipient and the single-use bootstrap token to `POST /v1/enroll` over
//! TLS pinned to the CP's CA, and stores the certificate and the CP's capability-token
//! public key it gets back. The bootstrap bundle is deleted afterwards: its token is
//! spent, and nothing else in it is needed any more.

use crate::platform::backoff::Backoff;
use crate::platform::config::{
    read_bootstrap, NodeConfig, Paths, AGE_IDENTITY_FILE, BOOTSTRAP_FILE, NODE_CERT_FILE,
};
use crate::platform::keys::{Identity, MasterKey, NodeKey};
use crate::platform::store::{NodeState, Store};
use crate::uplink::phone_home::{self, renew};
use anyhow::Context as _;
use outpost_protocol::{BootstrapBundle, EnrollRequest, EnrollResponse};
use std::time::Duration;

/// Returns the node's state and identity: loaded from disk when the node has enrolled
/// before, otherwise obtained by enrolling with the bootstrap bundle.
pub async fn ensure_enrolled(
    cfg: &NodeConfig,
    master: &MasterKey,
    store: &Store,
) -> anyhow::Result<(NodeState, Identity)> {
    let paths = &cfg.paths;
    if paths.file(NODE_CERT_FILE).exists() {
        if let Some(state) = store.node_state()? {
            let identity = Identity::load(paths, master)?;
            // A crash between enrolling and deleting the bundle leaves it behind.
            remove_bootstrap(paths)?;
            tracing::info!(node = %state.node_id, "already enrolled; resuming");
            return Ok((state, identity));
        }
    }
    let bundle = read_bootstrap(paths)?.with_context(|| {
        format!(
            "{} holds neither a certificate nor {BOOTSTRAP_FILE}: nothing to start from",
            paths.dir().display()
        )
    })?;
    enroll(cfg, master, store, bundle).await
}

/// "this machine's clock is [at least] N minutes behind the control plane's; fix NTP",
/// from the CP's time in an answer or, before any answer, from the TLS handshake.
fn skew_sentence(clock: &crate::platform::clock::Clock) -> String {
    let (at_least, secs) = match (clock.offset(), clock.behind_at_least()) {
        (Some(offset), _) => ("", offset),
        (None, Some(behind)) => ("at least ", behind),
        (None, None) => return "this machine's clock is off; fix NTP".to_owned(),
    };
    // To the nearest minute (a request takes a moment; 120 minutes is not "121").
    let minutes = secs.unsigned_abs().saturating_add(30) / 60;
    let side = if secs > 0 { "behind" } else { "ahead of" };
    format!(
        "this machine's clock is {at_least}{minutes} minutes {side} the control plane's; fix NTP"
    )
}

fn remove_bootstrap(paths: &Paths) -> anyhow::Result<()> {
    let path = paths.file(BOOTSTRAP_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(crate::platform::files::sync_parent(&path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing bootstrap.json"),
    }
}

async fn enroll(
    cfg: &NodeConfig,
    master: &MasterKey,
    store: &Store,
    bundle: BootstrapBundle,
) -> anyhow::Result<(NodeState, Identity)> {
    let node_id = bundle.node_id.clone();
    // Checked before the single-use token is spent.
    if let Some(host) = &bundle.public_host {
        anyhow::ensure!(
            crate::web::tls::normalize_host(host).is_some(),
            "{BOOTSTRAP_FILE} names a public host that is not a DNS name: {host:?}"
        );
    }
    tracing::info!(node = %node_id, "enrolling with the control plane");
    let key = NodeKey::generate()?;
    let (age_identity, age_recipient) = outpost_crypto::generate_age_identity();
    let mut request = EnrollRequest {
        token: bundle.token.clone(),
        csr_pem: key.csr(node_id.as_str())?,
        age_recipient,
        version: crate::version().to_owned(),
        node_time: None,
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(cfg.clock.tls_config(&bundle.ca_pem, None)?)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the enrollment client")?;
    let url = format!("{}/v1/enroll", bundle.gateway_url.trim_end_matches('/'));
    let mut backoff = Backoff::new(Duration::from_secs(1), cfg.max_backoff);
    let response: EnrollResponse = loop {
        // The CP refuses (409 clock_skew) a node whose clock is more than 5 minutes off.
        request.node_time = Some(cfg.clock.local_now());
        match client.post(&url).json(&request).send().await {
            Ok(r) if r.status().is_success() => {
                cfg.clock.observe(r.headers());
                // The token is spent now: an unreadable answer cannot be retried.
                break r
                    .json()
                    .await
                    .context("the control plane's enrollment answer is unreadable")?;
            }
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                let code = phone_home::error_code(r).await;
                tracing::error!(
                    node = %node_id,
                    status = 401,
                    code,
                    "the control plane refused the bootstrap token"
                );
                anyhow::bail!("enrollment refused: bootstrap token rejected (HTTP 401, {code})");
            }
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                cfg.clock.observe(r.headers());
                let code = phone_home::error_code(r).await;
                let delay = backoff.next_delay();
                if code == "clock_skew" {
                    // The token is not spent: enrollment goes through once the clock is right.
                    tracing::error!(
                        node = %node_id,
                        status = 409,
                        code,
                        offset_secs = cfg.clock.offset().unwrap_or_default(),
                        retry_in_ms = delay.as_millis() as u64,
                        "enrollment refused: {}",
                        skew_sentence(&cfg.clock)
                    );
                } else {
                    tracing::warn!(
                        node = %node_id,
                        status = 409,
                        code,
                        retry_in_ms = delay.as_millis() as u64,
                        "enrollment refused for now; retrying"
                    );
                }
                tokio::time::sleep(delay).await;
            }
            Ok(r) if phone_home::is_retryable(r.status()) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    node = %node_id,
                    status = r.status().as_u16(),
                    retry_in_ms = delay.as_millis() as u64,
                    "enrollment failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let code = phone_home::error_code(r).await;
                tracing::error!(node = %node_id, status, code, "enrollment refused");
                anyhow::bail!("enrollment refused (HTTP {status}, {code})");
            }
            Err(e) if cfg.clock.behind_at_least().is_some() => {
                // The gateway's certificate is not valid yet by this clock, further
                // behind than the handshake may tolerate: the CP cannot be told.
                let delay = backoff.next_delay();
                tracing::error!(
                    node = %node_id,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot enroll: {}",
                    skew_sentence(&cfg.clock)
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    node = %node_id,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "control plane unreachable; retrying enrollment"
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    anyhow::ensure!(
        response.node_id == node_id,
        "the control plane enrolled another node id"
    );
    let identity = Identity::new(response.cert_pem, key)?;
    anyhow::ensure!(
        identity.node_id == node_id.as_str(),
        "the certificate names another node"
    );
    // Validate the key now: a bad key would only surface at the first console sign-in.
    outpost_crypto::CapabilityVerifier::from_b64(&response.capability_public_key)
        .map_err(|_| anyhow::anyhow!("the capability public key is malformed"))?;
    let paths = &cfg.paths;
    master
        .seal_to_file(
            &paths.file(AGE_IDENTITY_FILE),
            age_identity.expose().as_bytes(),
        )
        .context("writing age.identity")?;
    let enrolled_at = cfg.clock.local_now();
    // Renewal is scheduled in the CP's time, whatever the local clock says.
    let cp_now = cfg.clock.cp_now();
    let state = NodeState {
        node_id: node_id.clone(),
        workspace: response.workspace,
        gateway_url: bundle.gateway_url,
        ca_pem: bundle.ca_pem,
        public_url: bundle.public_url,
        listen_addr: bundle.listen_addr,
        report_interval_secs: bundle.report_interval_secs,
        capability_public_key: response.capability_public_key,
        enrolled_at,
        renew_at: renew::pick_renew_at(cp_now, identity.not_after, cfg.renew_after),
    };
    if let Some(host) = &bundle.public_host {
        store.put_meta(crate::platform::store::PUBLIC_HOST_KEY, host)?;
    }
    if let Some(key) = &bundle.release_public_key {
        store.put_meta(crate::platform::store::RELEASE_KEY_KEY, key)?;
    }
    store.save_node_state(&state)?;
    // node.crt last: its presence is what marks the node as enrolled.
    identity.persist(paths, master)?;
    remove_bootstrap(paths)?;
    tracing::info!(node = %node_id, "enrolled");
    Ok((state, identity))
}
