//! The providers that create and destroy nodes' servers. Today one: [`local`], a process
//! per node on this machine (or, as `manual`, a bootstrap bundle to start by hand).

pub mod local;

pub use local::LocalProcess;

/// The configured provider of servers.
pub enum Provisioner {
    /// One `agent-node` process per workspace on 127.0.0.1 (the default).
    Local(LocalProcess),
}

impl Provisioner {
    /// The local-process provider, configured from `config`.
    pub fn local(config: &crate::Config) -> anyhow::Result<Self> {
        Ok(Self::Local(LocalProcess::new(config)?))
    }

    /// Provider name as stored in `nodes.provider`.
    pub fn name(&self) -> &'static str {
        match self {
            Provisioner::Local(l) if l.is_manual() => "manual",
            Provisioner::Local(_) => "local",
        }
    }

    /// Region label as stored in `nodes.region`.
    pub fn region(&self) -> &'static str {
        match self {
            Provisioner::Local(_) => "local",
        }
    }
}
