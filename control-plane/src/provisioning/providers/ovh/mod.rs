//! The `ovh` provider: each workspace's node is an OVHcloud Public Cloud instance named by
//! its node id, booted with cloud-init user-data from `deploy/` ([`cloud_init`]), reached at
//! `<slug>.<nodes_domain>` on Cloudflare DNS ([`dns`]), through the signed OVH API
//! ([`api`]), configured by [`config`].
//!
//! Every step is idempotent, keyed by the node id, so a retried job or a control plane
//! killed mid-step never makes two servers: the instance is looked up by name before it is
//! created, DNS records by name before they are written. Provider answers that cannot get
//! better (quota, unknown flavor, image or region, refused credentials, an instance in
//! `ERROR`) fail the node at once with that code; 5xx, timeouts and a DNS API that is down
//! are retried with the job backoff.

pub mod api;
pub mod cloud_init;
pub mod config;
pub mod dns;

use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::provisioning::jobs::{Shared, StepError};
use crate::provisioning::model::state;
use crate::provisioning::service::{event, transition};
use crate::provisioning::store;
use api::{Instance, NewInstance, OvhApi, OvhError};
use config::CloudConfig;
use dns::{Dns, DnsError};
use outpost_protocol::{BootstrapBundle, NodeId};
use std::time::{Duration, Instant};

const BOOTSTRAP_TOKEN_TTL: i64 = 30 * 60;
/// How long one job run waits for a new instance to become `ACTIVE`: well inside the job's
/// 60 s lease. A longer build is picked up again by the next run.
const POLL_WINDOW: Duration = Duration::from_secs(40);
const POLL_EVERY: Duration = Duration::from_secs(2);

/// The OVHcloud + Cloudflare provider.
pub struct Ovh {
    api: OvhApi,
    dns: Dns,
    cfg: CloudConfig,
    report_interval_secs: f64,
}

fn ovh_err(step: &'static str) -> impl Fn(OvhError) -> StepError {
    move |e| StepError {
        step,
        code: e.code(),
        permanent: !e.is_transient(),
        cause: e.into(),
    }
}

fn dns_err(step: &'static str) -> impl Fn(DnsError) -> StepError {
    move |e| StepError {
        step,
        code: e.code(),
        permanent: !e.is_transient(),
        cause: e.into(),
    }
}

fn later(step: &'static str, code: &'static str, why: &str) -> StepError {
    StepError {
        step,
        code,
        permanent: false,
        cause: anyhow::anyhow!("{why}"),
    }
}

impl Ovh {
    /// Configures the provider; `serve` refuses `--provisioner ovh` without the whole
    /// cloud configuration.
    pub fn new(config: &crate::Config, http: reqwest::Client) -> anyhow::Result<Self> {
        let cfg = config.cloud.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "--provisioner ovh needs the OVHcloud and Cloudflare options (OUTPOST_OVH_*, OUTPOST_CLOUDFLARE_*, OUTPOST_NODES_DOMAIN, OUTPOST_NODE_RELEASE_URL, OUTPOST_NODE_RELEASE_SHA256)"
            )
        })?;
        Ok(Self {
            api: OvhApi::new(http, cfg.ovh.clone()),
            dns: Dns::new(&cfg.dns)?,
            cfg,
            report_interval_secs: config.report_interval_secs,
        })
    }

    /// The region new nodes go to when their workspace chose none (the first configured).
    pub fn region(&self) -> &str {
        self.cfg.ovh.regions.first().map_or("", String::as_str)
    }

    /// The configured regions an owner chooses from, the default first.
    pub fn regions(&self) -> &[String] {
        &self.cfg.ovh.regions
    }

    fn hostname(&self, slug: &str) -> String {
        format!("{slug}.{}", self.cfg.nodes_domain)
    }

    async fn hostname_of(&self, st: &Shared, node_id: &str) -> Result<String, StepError> {
        let id = node_id.to_owned();
        let ws = db::run(&st.db, move |conn| store::workspace_info(conn, &id)).await?;
        Ok(self.hostname(&ws.slug))
    }

    /// Creates (or finds) the node's instance, waits for it to run, points its DNS name
    /// at it, and moves the node to `booting`.
    pub async fn create_server(&self, st: &Shared, node_id: &str) -> Result<(), StepError> {
        const STEP: &str = "provisioning";
        let found = self
            .api
            .instance_named(node_id)
            .await
            .map_err(ovh_err(STEP))?;
        let mut inst = match found {
            Some(i) if i.status == "DELETING" || i.status == "DELETED" => {
                return Err(later(
                    STEP,
                    "server_replacing",
                    "old instance still deleting",
                ));
            }
            Some(i) => {
                let id = node_id.to_owned();
                let usable = db::run(&st.db, move |conn| {
                    store::has_live_bootstrap_token(conn, &id, db::now())
                })
                .await?;
                if !usable {
                    // A retry after the node never enrolled: its user-data carries a token
                    // that is spent or expired. Replace the server with a fresh one.
                    self.api
                        .delete_instance(&i.id)
                        .await
                        .map_err(ovh_err(STEP))?;
                    self.note(
                        st,
                        node_id,
                        "old instance deleted: its bootstrap token expired",
                    )
                    .await?;
                    return Err(later(STEP, "server_replacing", "old instance deleting"));
                }
                i
            }
            None => self.create_instance(st, node_id).await?,
        };
        let started = Instant::now();
        loop {
            match inst.status.as_str() {
                "ACTIVE" => break,
                "ERROR" => {
                    // Never leave a broken server billed.
                    let _ = self.api.delete_instance(&inst.id).await;
                    self.note(st, node_id, "instance in ERROR; deleted").await?;
                    return Err(StepError {
                        step: STEP,
                        code: "server_error",
                        permanent: true,
                        cause: anyhow::anyhow!("OVH instance {} in ERROR", inst.id),
                    });
                }
                _ if started.elapsed() >= POLL_WINDOW => {
                    return Err(later(STEP, "server_building", "instance still building"));
                }
                _ => {}
            }
            tokio::time::sleep(POLL_EVERY).await;
            inst = self.api.instance(&inst.id).await.map_err(ovh_err(STEP))?;
        }
        self.point_dns(st, node_id, &inst).await
    }

    async fn create_instance(&self, st: &Shared, node_id: &str) -> Result<Instance, StepError> {
        let (id, cfg, interval) = (
            node_id.to_owned(),
            self.cfg.clone(),
            self.report_interval_secs,
        );
        let (gateway_url, ca_pem) = (st.gateway_url.clone(), st.ca_pem.clone());
        let release_key = st.release_public_key.clone();
        let (host, bundle, region) = db::run(&st.db, move |conn| {
            let (host, bundle) = write_bundle(
                conn,
                &id,
                &cfg,
                (gateway_url, ca_pem, release_key),
                interval,
            )?;
            // The region the workspace's owner chose, stored with the node.
            Ok((host, bundle, store::region_of(conn, &id)?))
        })
        .await?;
        let user_data = cloud_init::render(&self.cfg, &host, &bundle);
        let new = NewInstance {
            name: node_id,
            flavor_id: &self.cfg.ovh.flavor_id,
            image_id: &self.cfg.ovh.image_id,
            region: &region,
            user_data: &user_data,
            monthly_billing: false,
        };
        let inst = self
            .api
            .create_instance(&new)
            .await
            .map_err(ovh_err("provisioning"))?;
        let (id, r) = (node_id.to_owned(), format!("ovh:{}", inst.id));
        db::run(&st.db, move |conn| {
            store::set_provider_ref(conn, &id, Some(r))?;
            event(conn, &id, "server", "OVH instance created")
        })
        .await?;
        Ok(inst)
    }

    async fn point_dns(
        &self,
        st: &Shared,
        node_id: &str,
        inst: &Instance,
    ) -> Result<(), StepError> {
        let host = self.hostname_of(st, node_id).await?;
        let v4 = inst.public_ip(4).and_then(|ip| match ip {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        });
        let v6 = inst.public_ip(6).and_then(|ip| match ip {
            std::net::IpAddr::V6(a) => Some(a),
            std::net::IpAddr::V4(_) => None,
        });
        if v4.is_none() && v6.is_none() {
            return Err(later(
                "provisioning",
                "server_building",
                "no public address yet",
            ));
        }
        self.dns
            .upsert(&host, v4, v6)
            .await
            .map_err(dns_err("provisioning"))?;
        let id = node_id.to_owned();
        db::run(&st.db, move |conn| {
            store::set_addresses(
                conn,
                &id,
                v4.map(|a| a.to_string()),
                v6.map(|a| a.to_string()),
                &host,
            )?;
            event(conn, &id, "server", "OVH instance running; DNS record set")?;
            transition(conn, &id, &[state::PROVISIONING], state::BOOTING)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// An operator's retry of an enrolled node that stopped reporting: a soft reboot of
    /// its instance (systemd starts the node again).
    pub async fn restart_server(&self, st: &Shared, node_id: &str) -> Result<(), StepError> {
        const STEP: &str = "running";
        let inst = self
            .api
            .instance_named(node_id)
            .await
            .map_err(ovh_err(STEP))?;
        let detail = match inst {
            Some(i) => {
                self.api.reboot(&i.id).await.map_err(ovh_err(STEP))?;
                "retry: OVH instance rebooted"
            }
            None => "retry: no OVH instance found",
        };
        self.note(st, node_id, detail).await
    }

    /// Deletes the node's DNS records and its instance (both fine if already gone).
    pub async fn destroy_server(&self, st: &Shared, node_id: &str) -> Result<(), StepError> {
        const STEP: &str = "deprovisioning";
        let host = self.hostname_of(st, node_id).await?;
        self.dns.delete(&host).await.map_err(dns_err(STEP))?;
        if let Some(i) = self
            .api
            .instance_named(node_id)
            .await
            .map_err(ovh_err(STEP))?
        {
            self.api
                .delete_instance(&i.id)
                .await
                .map_err(ovh_err(STEP))?;
        }
        self.note(st, node_id, "OVH instance and DNS records deleted")
            .await
    }

    async fn note(
        &self,
        st: &Shared,
        node_id: &str,
        detail: &'static str,
    ) -> Result<(), StepError> {
        let id = node_id.to_owned();
        db::run(&st.db, move |conn| event(conn, &id, "server", detail)).await?;
        Ok(())
    }

    /// `control-plane ovh check`: the credentials are accepted; the project's regions and,
    /// for each configured region, its flavors. Lines to print.
    pub async fn check(&self) -> Result<Vec<String>, OvhError> {
        let mut out = vec![];
        let status = self.api.current_credential().await?;
        out.push(format!("credentials: accepted ({status})"));
        let regions = self.api.regions().await?;
        out.push(format!("project regions: {}", regions.join(", ")));
        for r in &self.cfg.ovh.regions {
            if !regions.contains(r) {
                out.push(format!(
                    "WARNING: configured region {r} is not in the project"
                ));
                continue;
            }
            let flavors = self.api.flavors(r).await?;
            out.push(format!("flavors in {r}:"));
            for f in flavors {
                let mark = if f.id == self.cfg.ovh.flavor_id {
                    "  <- configured"
                } else {
                    ""
                };
                out.push(format!(
                    "  {}  {}  {} vCPU  {} MB RAM  {} GB disk{mark}",
                    f.id, f.name, f.vcpus, f.ram, f.disk
                ));
            }
        }
        Ok(out)
    }
}

/// Writes a fresh single-use bootstrap token (only the newest is valid) and the node's
/// public URL; returns its DNS name and the bundle's bytes for the user-data.
fn write_bundle(
    conn: &mut DbConn,
    node_id: &str,
    cfg: &CloudConfig,
    (gateway_url, ca_pem, release_public_key): (String, String, Option<String>),
    interval: f64,
) -> AppResult<(String, Vec<u8>)> {
    let workspace = store::workspace_info(conn, node_id)?;
    let host = format!("{}.{}", workspace.slug, cfg.nodes_domain);
    let public_url = format!("https://{host}");
    let now = db::now();
    let token = format!("{node_id}.{}", outpost_crypto::random_token());
    store::replace_bootstrap_token(
        conn,
        node_id,
        &outpost_crypto::token_hash(&token),
        now,
        now + BOOTSTRAP_TOKEN_TTL,
    )?;
    store::set_public_url(conn, node_id, &public_url)?;
    let bundle = BootstrapBundle {
        node_id: NodeId(node_id.to_owned()),
        gateway_url,
        ca_pem,
        token,
        listen_addr: cfg.node_listen.clone(),
        public_url,
        public_host: Some(host.clone()),
        workspace,
        report_interval_secs: interval,
        release_public_key,
    };
    let json = serde_json::to_vec_pretty(&bundle).map_err(|e| AppError::internal(e.into()))?;
    Ok((host, json))
}
