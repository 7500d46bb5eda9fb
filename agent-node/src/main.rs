//! `agent-node`: thin binary over the `agent_node` library.

use clap::Parser;

/// Outpost agent node: one per workspace; keeps content local and phones home over mTLS.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: agent_node::cli::NodeCommand,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    agent_node::init_tracing();
    agent_node::execute(cli.command)
}
