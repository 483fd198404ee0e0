//! The `flux` command: keys, wallet, node, app, gov, chain and devnet.
//!
//! Thin by design: argument parsing, output and process wiring. Keys stay in
//! the local keystore and every write is signed here; the node only ever
//! receives signed transactions.

mod client;
mod cmd;
mod daemon;
mod devnet;
mod keystore;
mod output;
mod submit;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::client::Client;
use crate::keystore::Keystore;
use crate::output::Output;

/// The node a command talks to unless told otherwise.
pub(crate) const DEFAULT_NODE_URL: &str = "http://127.0.0.1:16127";

/// Flux: a decentralized cloud.
#[derive(Debug, Parser)]
#[command(name = "flux", version, about, long_about = None)]
struct Cli {
    /// Directory of the keystore and the default devnet [default: ~/.flux]
    #[arg(long, global = true, env = "FLUX_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// URL of the node to talk to
    #[arg(long, global = true, env = "FLUX_NODE", value_name = "URL", default_value = DEFAULT_NODE_URL)]
    node: String,
    /// Print machine-readable JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and show keys in the local keystore
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Balances and transfers
    #[command(subcommand)]
    Wallet(cmd::wallet::WalletCommand),
    /// The chain: status, blocks, transactions
    #[command(subcommand)]
    Chain(cmd::chain::ChainCommand),
    /// Run a node, register and deregister nodes
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// Validate, price, deploy and manage apps
    #[command(subcommand)]
    App(cmd::app::AppCommand),
    /// Proposals and votes: change params, block images, spend the treasury
    #[command(subcommand)]
    Gov(cmd::gov::GovCommand),
    /// A local development network
    #[command(subcommand)]
    Devnet(devnet::DevnetCommand),
}

/// What every command may need: where the keys are, which node to ask, how to print.
pub(crate) struct Context {
    pub(crate) home: PathBuf,
    pub(crate) home_given: bool,
    pub(crate) node_url: String,
    pub(crate) out: Output,
}

impl Context {
    pub(crate) fn keystore(&self) -> Keystore {
        Keystore::new(&self.home)
    }

    pub(crate) fn client(&self) -> Result<Client> {
        Client::new(&self.node_url)
    }
}

fn default_home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".flux")),
        _ => bail!(
            "cannot find the home directory ($HOME is not set); pass --home DIR or set FLUX_HOME"
        ),
    }
}

fn run(cli: Cli, out: Output) -> Result<()> {
    let home_given = cli.home.is_some();
    let home = match cli.home {
        Some(home) => home,
        None => default_home()?,
    };
    let ctx = Context {
        home,
        home_given,
        node_url: cli.node,
        out,
    };
    match cli.command {
        Command::Keys(command) => cmd::keys::run(&ctx, command),
        Command::Wallet(command) => cmd::wallet::run(&ctx, command),
        Command::Chain(command) => cmd::chain::run(&ctx, command),
        Command::Node(command) => cmd::node::run(&ctx, command),
        Command::App(command) => cmd::app::run(&ctx, command),
        Command::Gov(command) => cmd::gov::run(&ctx, command),
        Command::Devnet(command) => devnet::run(&ctx, command),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    match run(cli, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            out.error(&error);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A subcommand flag named like a global one would silently take the
    /// global's value (`flux --node URL node deregister`).
    #[test]
    fn no_flag_shadows_a_global_one() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                if arg.is_global_set() {
                    continue;
                }
                if let Some(long) = arg.get_long() {
                    assert!(
                        !["home", "node", "json"].contains(&long),
                        "`{path}` has its own --{long}"
                    );
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut command = Cli::command();
        command.build();
        check(&command, "flux");
    }
}
