//! `control-plane`: thin binary over the `control_plane` library.
//!
//! A command that fails logs its error with the whole chain of causes (tracing, on
//! stderr, in the configured log format), then prints the same in one line, `error: …`,
//! on stderr, and exits 1. Causes name what failed (a SQLite file's path, a table), never
//! a secret: an API token goes to stdout only, and no message quotes a PostgreSQL URL
//! (which may hold a password).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use control_plane::ServeArgs;
use std::process::ExitCode;

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
    /// OVHcloud, for `--provisioner ovh`.
    Ovh {
        #[command(subcommand)]
        command: OvhCommand,
    },
    /// Fleet upgrades of the nodes: one canary node, then the rest in batches; halts on
    /// a node that refuses the release, fails its health or does not come back.
    Upgrade {
        #[command(subcommand)]
        command: UpgradeCommand,
    },
    /// The release key that signs node binaries (keep it off the control plane's machine).
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Run an embedded agent node (what the local provisioner spawns).
    Node {
        #[command(subcommand)]
        command: agent_node::cli::NodeCommand,
    },
}

#[derive(Subcommand)]
enum UpgradeCommand {
    /// Start upgrading every healthy node not on --version (exits 1, saying why, if refused).
    Start {
        /// Where nodes download the `agent-node` binary (https, or http: the signature
        /// protects it either way).
        #[arg(long)]
        url: String,
        /// The binary's SHA-256, hex (`control-plane release sign` prints it).
        #[arg(long)]
        sha256: String,
        /// The release key's signature over it (`control-plane release sign` prints it).
        /// Base64url, so it may begin with `-`: taken as the value, not as an option.
        #[arg(long, allow_hyphen_values = true)]
        signature: String,
        /// The version the binary reports (`agent-node --version`).
        #[arg(long)]
        version: String,
        /// Nodes per batch after the canary.
        #[arg(long, default_value_t = 5)]
        batch_size: i32,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// The newest upgrades: state, why one halted, each node's progress.
    Status(ServeArgs),
    /// Halt the running upgrade: no further wave is sent (exits 1 if none runs).
    Halt(ServeArgs),
    /// Resume the newest upgrade if it halted, from where it stopped; a node it halted
    /// on is sent the release again (exits 1, saying why, if it cannot).
    Resume(ServeArgs),
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// Make a release key: writes the private key (PKCS#8 PEM, 0600) and prints the
    /// public key to set as OUTPOST_RELEASE_PUBLIC_KEY.
    Keygen {
        /// File for the private key (never overwritten).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Sign a node binary: prints its SHA-256 and the signature for `upgrade start`.
    Sign {
        /// The private release key file.
        #[arg(long)]
        key: std::path::PathBuf,
        /// The `agent-node` binary.
        binary: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum OvhCommand {
    /// Check the OVH credentials (exits 1 if refused) and list the project's regions and
    /// the flavors of the configured regions.
    Check(ServeArgs),
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
    /// Create a personal API token for a user (the account is created if needed) and
    /// email them that it was made. Prints the token, once.
    Create {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// A name for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until it expires (1 to 365).
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// GET requests only.
        #[arg(long)]
        read_only: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// List a user's unrevoked tokens: id, name, scope, created, expires, last used.
    List {
        /// The user's email.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Revoke a token by its id (from `token list`): its next request gets 401.
    Revoke {
        /// The token's id.
        id: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

impl Command {
    /// The command's words, for the log.
    fn name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Migrate(_) => "migrate",
            Command::Token {
                command: TokenCommand::Create { .. },
            } => "token create",
            Command::Token {
                command: TokenCommand::List { .. },
            } => "token list",
            Command::Token {
                command: TokenCommand::Revoke { .. },
            } => "token revoke",
            Command::Audit { .. } => "audit verify",
            Command::Operator {
                command: OperatorCommand::Add { .. },
            } => "operator add",
            Command::Operator {
                command: OperatorCommand::Remove { .. },
            } => "operator remove",
            Command::Operator {
                command: OperatorCommand::List(_),
            } => "operator list",
            Command::Ovh { .. } => "ovh check",
            Command::Upgrade {
                command: UpgradeCommand::Start { .. },
            } => "upgrade start",
            Command::Upgrade {
                command: UpgradeCommand::Status(_),
            } => "upgrade status",
            Command::Upgrade {
                command: UpgradeCommand::Halt(_),
            } => "upgrade halt",
            Command::Upgrade {
                command: UpgradeCommand::Resume(_),
            } => "upgrade resume",
            Command::Release {
                command: ReleaseCommand::Keygen { .. },
            } => "release keygen",
            Command::Release {
                command: ReleaseCommand::Sign { .. },
            } => "release sign",
            Command::Node { .. } => "node",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = cli.command.name();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => failed(name, &e),
    }
}

/// Logs why `command` failed and says it on stderr. The log comes first, with the
/// subscriber the command set up, or a text one when it failed before it had one (its
/// configuration did not resolve).
fn failed(command: &str, e: &anyhow::Error) -> ExitCode {
    if !tracing::dispatcher::has_been_set() {
        control_plane::app::init_tracing("text");
    }
    let why = format!("{e:#}");
    tracing::error!(command, error = %why, "command failed");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("error: {why}");
    }
    ExitCode::FAILURE
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Node { command } => agent_node::execute(command),
        Command::Serve(args) => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            actix_web::rt::System::new().block_on(control_plane::serve(config, banner))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            control_plane::app::migrate(&config).context("migrating the database failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let verdict = control_plane::cli::audit_verify(&config)
                .context("verifying the audit log failed")?;
            #[allow(clippy::print_stdout)]
            match verdict {
                Ok(n) => {
                    println!("audit log intact: {n} events verified");
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    println!("{why}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Operator { command } => operator(command),
        Command::Ovh {
            command: OvhCommand::Check(args),
        } => {
            let config = args.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let lines = control_plane::cli::ovh_check(&config).context("checking OVH failed")?;
            #[allow(clippy::print_stdout)]
            for l in lines {
                println!("{l}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => token(command),
        Command::Upgrade { command } => upgrade(command),
        Command::Release { command } => release(command),
    }
}

#[allow(clippy::print_stdout)]
fn halt_or_resume(serve: ServeArgs, resume: bool) -> anyhow::Result<ExitCode> {
    let config = serve.resolve()?;
    control_plane::app::init_tracing(&config.log_format);
    match control_plane::cli::upgrade_halt_or_resume(&config, resume)
        .context("changing the upgrade failed")?
    {
        Ok(done) => {
            println!("{done}");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            let what = if resume { "not resumed" } else { "not halted" };
            println!("upgrade {what}: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[allow(clippy::print_stdout)]
fn upgrade(command: UpgradeCommand) -> anyhow::Result<ExitCode> {
    use control_plane::cli;
    match command {
        UpgradeCommand::Start {
            url,
            sha256,
            signature,
            version,
            batch_size,
            serve,
        } => {
            let config = serve.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let release = control_plane::upgrades::service::Release {
                url,
                sha256,
                signature,
                version,
            };
            match cli::upgrade_start(&config, &release, batch_size)
                .context("starting the upgrade failed")?
            {
                Ok(done) => println!("{done}"),
                Err(why) => {
                    println!("upgrade refused: {why}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        UpgradeCommand::Status(serve) => {
            let config = serve.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let lines = cli::upgrade_status(&config).context("reading the upgrades failed")?;
            if lines.is_empty() {
                println!("no upgrades");
            }
            for l in lines {
                println!("{l}");
            }
        }
        UpgradeCommand::Halt(serve) => return halt_or_resume(serve, false),
        UpgradeCommand::Resume(serve) => return halt_or_resume(serve, true),
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn release(command: ReleaseCommand) -> anyhow::Result<ExitCode> {
    use control_plane::cli;
    match command {
        ReleaseCommand::Keygen { out } => {
            let public = cli::release_keygen(&out).context("making the release key failed")?;
            println!(
                "private key written to {} (keep it off the control plane)",
                out.display()
            );
            println!("OUTPOST_RELEASE_PUBLIC_KEY={public}");
        }
        ReleaseCommand::Sign { key, binary } => {
            let (sha256, signature) =
                cli::release_sign(&key, &binary).context("signing the release failed")?;
            println!("sha256: {sha256}");
            println!("signature: {signature}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn token(command: TokenCommand) -> anyhow::Result<ExitCode> {
    use control_plane::cli;
    match command {
        TokenCommand::Create {
            email,
            name,
            days,
            read_only,
            serve,
        } => {
            let config = serve.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let new = control_plane::accounts::NewToken {
                name,
                days: Some(days),
                read_only,
            };
            let token =
                cli::token_create(&config, &email, &new).context("creating the token failed")?;
            println!("{token}");
        }
        TokenCommand::List { email, serve } => {
            let config = serve.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let lines = cli::token_list(&config, &email).context("listing the tokens failed")?;
            if lines.is_empty() {
                println!("no tokens");
            }
            for l in lines {
                println!("{l}");
            }
        }
        TokenCommand::Revoke { id, serve } => {
            let config = serve.resolve()?;
            control_plane::app::init_tracing(&config.log_format);
            let done = cli::token_revoke(&config, &id).context("revoking the token failed")?;
            println!("{done}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn operator(command: OperatorCommand) -> anyhow::Result<ExitCode> {
    use control_plane::cli;
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
            let done = cli::operator_add(&config, email).context("adding the operator failed")?;
            println!("{done}");
        }
        (OperatorCommand::Remove { .. }, Some(email)) => {
            match cli::operator_remove(&config, email).context("removing the operator failed")? {
                Ok(done) => println!("{done}"),
                Err(why) => {
                    println!("{why}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        _ => {
            let all = cli::operator_list(&config).context("listing the operators failed")?;
            if all.is_empty() {
                println!("no operators");
            }
            for (email, id) in all {
                println!("{email}\t{id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn banner(ui: &str, gateway: &str, backend: &str) {
    println!("Outpost control plane {VERSION}");
    println!("  UI:            {ui}");
    println!("  Node gateway:  {gateway}");
    println!("  Storage:       {backend}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature is base64url: one in 64 begins with `-`. Pasted as `release sign`
    /// printed it, it is the value of `--signature`, not an unknown option.
    #[test]
    fn a_signature_beginning_with_a_dash_is_taken_as_the_signature() {
        let cli = Cli::try_parse_from([
            "control-plane",
            "upgrade",
            "start",
            "--url",
            "https://example.test/agent-node",
            "--sha256",
            "ab",
            "--signature",
            "-5aQ_x",
            "--version",
            "9.9.0",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Upgrade {
            command: UpgradeCommand::Start { signature, .. },
        } = cli.command
        else {
            panic!("not upgrade start");
        };
        assert_eq!(signature, "-5aQ_x");
    }

    /// The release public key is base64url too, on the control plane and on a node.
    #[test]
    fn a_release_key_beginning_with_a_dash_is_taken_as_the_key() {
        let key = "-Kx2w9";
        let serve = Cli::try_parse_from(["control-plane", "serve", "--release-public-key", key])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Serve(args) = serve.command else {
            panic!("not serve");
        };
        assert_eq!(args.release_public_key.as_deref(), Some(key));
        let node = Cli::try_parse_from([
            "control-plane",
            "node",
            "run",
            "--data-dir",
            "/tmp/n",
            "--release-public-key",
            key,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Node {
            command: agent_node::cli::NodeCommand::Run(args),
        } = node.command
        else {
            panic!("not node run");
        };
        assert_eq!(args.release_public_key.as_deref(), Some(key));
    }
}
