//! `flux node`: run a node; register and deregister nodes on the chain.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use flux_ledger::NodeRecord;
use flux_types::node::{validate_endpoint, validate_region};
use flux_types::{Tier, TxBody};

use crate::Context;
use crate::client::list_items;
use crate::keystore::resolve_party;
use crate::submit::{self, TxOptions};

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run a node in the foreground until SIGINT or SIGTERM
    #[command(long_about = crate::daemon::CONFIG_HELP)]
    Run {
        /// The node's configuration file (TOML)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Register a node: locks the tier's collateral from the --from key
    Register {
        /// Key that owns the node and pays the collateral
        #[arg(long, value_name = "NAME")]
        from: String,
        /// Tier: cumulus, nimbus or stratus
        #[arg(long)]
        tier: Tier,
        /// Where the node's API answers, HOST:PORT
        #[arg(long, value_name = "HOST:PORT")]
        endpoint: String,
        /// Where the node is, CONTINENT_COUNTRY (e.g. EU_CZ, NA_US)
        #[arg(long, value_name = "CONTINENT_COUNTRY")]
        region: String,
        /// Key the node itself signs with [default: the --from key]
        #[arg(long, value_name = "NAME")]
        node_key: Option<String>,
        #[command(flatten)]
        tx: TxOptions,
    },
    /// List the registered nodes
    List,
    /// Deregister a node owned by the --from key, unlocking its collateral
    Deregister {
        /// Key that owns the node
        #[arg(long, value_name = "NAME")]
        from: String,
        /// The node's id (flux1…) or the name of its node key [default: the only node --from owns]
        ///
        /// (Named --id because the global --node is the URL of the node to talk to.)
        #[arg(long, value_name = "ID|NAME")]
        id: Option<String>,
        #[command(flatten)]
        tx: TxOptions,
    },
}

pub(crate) fn run(ctx: &Context, command: NodeCommand) -> Result<()> {
    let keystore = ctx.keystore();
    match command {
        NodeCommand::Run { config } => return crate::daemon::run(&config),
        NodeCommand::Register {
            from,
            tier,
            endpoint,
            region,
            node_key,
            tx,
        } => {
            validate_endpoint(&endpoint).map_err(|e| anyhow!("--endpoint: {e}"))?;
            validate_region(&region).map_err(|e| anyhow!("--region: {e}"))?;
            let owner = keystore.load(&from)?;
            let node_key = match &node_key {
                Some(name) => keystore.load(name)?.public_key,
                None => owner.public_key,
            };
            let key = owner.secret()?;
            let client = ctx.client()?;
            let prepared = submit::prepare(&client, &key)?;
            let collateral = prepared.params.tier(tier).collateral;
            let body = TxBody::NodeRegister {
                node_key,
                tier,
                endpoint,
                region,
            };
            let fee = prepared.fee_for(&key, &body, tx.fee);
            let available = prepared.account.balance;
            if collateral
                .checked_add(fee)
                .is_none_or(|needed| needed > available)
            {
                bail!(
                    "insufficient funds: a {tier} node locks {collateral} FLUX of collateral (plus a fee of {fee} FLUX) \
                     and {from} ({}) has {available} FLUX available",
                    owner.address
                );
            }
            let signed = prepared.sign(&key, body, Some(fee));
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
        NodeCommand::List => {
            let client = ctx.client()?;
            let nodes = list_nodes(&client)?;
            ctx.out.show(&nodes, |text| {
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.to_string(),
                            n.tier.to_string(),
                            n.endpoint.clone(),
                            n.region.clone(),
                            serde_json::to_value(n.status)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                            n.collateral.to_string(),
                            n.owner.to_string(),
                        ]
                    })
                    .collect();
                text.table(
                    &[
                        "ID",
                        "TIER",
                        "ENDPOINT",
                        "REGION",
                        "STATUS",
                        "COLLATERAL",
                        "OWNER",
                    ],
                    &rows,
                    "no nodes registered; register one with `flux node register`",
                );
            });
        }
        NodeCommand::Deregister { from, id, tx } => {
            let owner = keystore.load(&from)?;
            let key = owner.secret()?;
            let client = ctx.client()?;
            let node = match id {
                Some(text) => resolve_party(&keystore, &text)?.address,
                None => {
                    let owned: Vec<NodeRecord> = list_nodes(&client)?
                        .into_iter()
                        .filter(|n| n.owner == owner.address)
                        .collect();
                    match owned.as_slice() {
                        [only] => only.id,
                        [] => bail!("{from} ({}) owns no registered node", owner.address),
                        many => bail!(
                            "{from} owns {} nodes; name one with --id: {}",
                            many.len(),
                            many.iter()
                                .map(|n| n.id.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                }
            };
            let prepared = submit::prepare(&client, &key)?;
            let signed = prepared.sign(&key, TxBody::NodeDeregister { node }, tx.fee);
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
    }
    Ok(())
}

pub(crate) fn list_nodes(client: &crate::client::Client) -> Result<Vec<NodeRecord>> {
    let value = client.get_value("/nodes")?;
    list_items(value, "nodes")
        .into_iter()
        .map(|item| {
            serde_json::from_value(item)
                .map_err(|e| anyhow!("unexpected node record from {}: {e}", client.node_url()))
        })
        .collect()
}
