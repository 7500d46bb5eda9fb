//! The providers that create and destroy nodes' servers: [`local`], a process per node on
//! this machine (or, as `manual`, a bootstrap bundle to start by hand), and [`ovh`], an
//! OVHcloud Public Cloud instance per node with its name on Cloudflare DNS.

pub mod local;
pub mod ovh;

pub use local::LocalProcess;
pub use ovh::Ovh;

/// The configured provider of servers.
pub enum Provisioner {
    /// One `agent-node` process per workspace on 127.0.0.1 (the default).
    Local(LocalProcess),
    /// One OVHcloud instance per workspace.
    Ovh(Box<Ovh>),
}

impl Provisioner {
    /// The provider `config.provisioner` names. `http` is the CP's shared client.
    pub fn from_config(config: &crate::Config, http: reqwest::Client) -> anyhow::Result<Self> {
        if config.provisioner == "ovh" {
            Ok(Self::Ovh(Box::new(Ovh::new(config, http)?)))
        } else {
            Self::local(config)
        }
    }

    /// The local-process provider, configured from `config`.
    pub fn local(config: &crate::Config) -> anyhow::Result<Self> {
        Ok(Self::Local(LocalProcess::new(config)?))
    }

    /// Provider name as stored in `nodes.provider`.
    pub fn name(&self) -> &'static str {
        match self {
            Provisioner::Local(l) if l.is_manual() => "manual",
            Provisioner::Local(_) => "local",
            Provisioner::Ovh(_) => "ovh",
        }
    }

    /// Regions an owner chooses from when creating a workspace, the default first; empty
    /// when there is no choice (local nodes).
    pub fn regions(&self) -> &[String] {
        match self {
            Provisioner::Local(_) => &[],
            Provisioner::Ovh(o) => o.regions(),
        }
    }

    /// Region label as stored in `nodes.region` when the workspace chose none.
    pub fn region(&self) -> &str {
        match self {
            Provisioner::Local(_) => "local",
            Provisioner::Ovh(o) => o.region(),
        }
    }
}
