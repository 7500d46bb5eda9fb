//! `control-plane`: thin binary over the `control_plane` library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use control_plane::ServeArgs;

/// `0.1.0 (commit 1a2b3c4d5e6f)`: the version and the git commit built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OUTPOST_BUILD_COMMIT"),
    ")"
);

/// Outpost control plane: accounts, workspaces, provisioning and fleet health.
#[derive(Parser)]
#[command(version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web UI, the JSON API and the node gateway.
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate(ServeArgs),
    /// Personal API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Outpost staff: operators see every workspace's metadata in the operator console
    /// (`/operator`) and can suspend, resume, retry and force deprovisioning.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Run an embedded agent node (what the local provisioner spawns).
    Node {
        #[command(subcommand)]
        command: agent_node::cli::NodeCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits 1 and names the first event that does not verify.
    Verify(ServeArgs),
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Make a user an operator (the account is created if needed).
    Add {
        /// The user's email.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Take the operator role away (effective at once, also in open sessions); exits 1
    /// if the user is not an operator.
    Remove {
        /// The user's email.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// List the operators.
    List(ServeArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a personal API token for a user (the account is created if needed).
    Create {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// A name for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Node { command } => agent_node::execute(command),
        Command::Serve(args) => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            actix_web::rt::System::new().block_on(control_plane::serve(config, banner))
        }
        Command::Migrate(args) => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            control_plane::app::migrate(&config)
        }
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            #[allow(clippy::print_stdout)]
            match control_plane::app::audit_verify_cli(&config)? {
                Ok(n) => {
                    println!("audit log intact: {n} events verified");
                    Ok(())
                }
                Err(why) => {
                    println!("{why}");
                    std::process::exit(1)
                }
            }
        }
        Command::Operator { command } => operator(command),
        Command::Token {
            command: TokenCommand::Create { email, name, serve },
        } => {
            let config = serve.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let token = control_plane::app::create_token_cli(&config, &email, &name)
                .context("creating the token failed")?;
            #[allow(clippy::print_stdout)]
            {
                println!("{token}");
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
fn operator(command: OperatorCommand) -> anyhow::Result<()> {
    use control_plane::operator;
    let (serve, email) = match &command {
        OperatorCommand::Add { serve, email } | OperatorCommand::Remove { serve, email } => {
            (serve, Some(email))
        }
        OperatorCommand::List(serve) => (serve, None),
    };
    let config = serve.resolve()?;
    control_plane::app::init_tracing(&config.log_format);
    match (&command, email) {
        (OperatorCommand::Add { .. }, Some(email)) => {
            println!("{}", operator::add_cli(&config, email)?);
        }
        (OperatorCommand::Remove { .. }, Some(email)) => {
            match operator::remove_cli(&config, email)? {
                Ok(done) => println!("{done}"),
                Err(why) => {
                    println!("{why}");
                    std::process::exit(1)
                }
            }
        }
        _ => {
            let all = operator::list_cli(&config)?;
            if all.is_empty() {
                println!("no operators");
            }
            for (email, id) in all {
                println!("{email}\t{id}");
            }
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn banner(ui: &str, gateway: &str, backend: &str) {
    println!("Outpost control plane {VERSION}");
    println!("  UI:            {ui}");
    println!("  Node gateway:  {gateway}");
    println!("  Storage:       {backend}");
}
