//! `flux chain`: status, blocks and transactions.

use anyhow::{Result, anyhow};
use clap::Subcommand;
use flux_types::{BlockHeader, Hash, SignedTransaction};
use serde_json::Value;

use crate::Context;
use crate::client::api_status;
use crate::output::{short, utc};
use crate::submit::describe_receipt;

#[derive(Debug, Subcommand)]
pub(crate) enum ChainCommand {
    /// Height, time, hashes and mempool of the chain as the node sees it
    Status,
    /// A finalized block and its transactions
    Block {
        /// Height of the block (the first block is 1)
        height: u64,
    },
    /// Where a transaction is: pending, committed (with its receipt) or rejected
    Tx {
        /// Hash of the transaction
        hash: Hash,
    },
    /// Every governable param: its key, value, the height it took effect and its allowed range
    Params,
    /// The validators of the next block's epoch, in seat order
    Committee,
    /// Total supply (genesis + issued - burned), the reward pool, the
    /// treasury and what was paid to nodes, at the last finalized block
    Supply,
}

pub(crate) fn run(ctx: &Context, command: ChainCommand) -> Result<()> {
    let client = ctx.client()?;
    match command {
        ChainCommand::Status => {
            let status = client.status()?;
            ctx.out.show(&status, |text| {
                text.fields(&[
                    ("chain", status.chain_id.clone()),
                    ("height", status.height.to_string()),
                    ("time", utc(status.time_ms)),
                    ("last block", status.last_block_hash.to_string()),
                    ("state root", status.state_root.to_string()),
                    ("genesis", status.genesis_hash.to_string()),
                    ("mempool", format!("{} transactions", status.mempool_txs)),
                    ("node", status.node_id.to_string()),
                    ("node url", client.node_url().to_string()),
                ]);
            });
        }
        ChainCommand::Block { height } => {
            let block = client
                .get_value(&format!("/blocks/{height}"))
                .map_err(|e| {
                    let e = anyhow!(e);
                    if api_status(&e) == Some(404) {
                        let tip = client
                            .status()
                            .map(|s| format!("; the chain is at height {}", s.height))
                            .unwrap_or_default();
                        anyhow!("no block at height {height}{tip}")
                    } else {
                        e
                    }
                })?;
            ctx.out.show(&block, |text| show_block(text, &block));
        }
        ChainCommand::Tx { hash } => {
            let status = client.tx_status(&hash)?;
            ctx.out.show(&status, |text| {
                text.fields(&[("tx", hash.to_string()), ("status", status.status.clone())]);
                if let Some(receipt) = &status.receipt {
                    describe_receipt(text, receipt);
                }
                if let Some(message) = &status.message {
                    text.fields(&[("reason", message.clone())]);
                }
            });
        }
        ChainCommand::Committee => {
            let committee = client.get_value("/committee")?;
            ctx.out
                .show(&committee, |text| show_committee(text, &committee));
        }
        ChainCommand::Supply => {
            let supply = client.get_value("/supply")?;
            ctx.out.show(&supply, |text| {
                let cell = |key: &str| match &supply[key] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let flux = |key: &str| format!("{} FLUX", cell(key));
                text.fields(&[
                    ("height", cell("height")),
                    ("epoch", cell("epoch")),
                    ("total supply", flux("total")),
                    ("genesis", flux("genesis")),
                    ("issued", flux("issued")),
                    ("burned", flux("burned")),
                    ("reward pool", flux("reward_pool")),
                    ("treasury", flux("treasury")),
                    ("gov deposits", flux("gov_deposits")),
                    ("paid to nodes", flux("paid_to_nodes")),
                    ("paid to treasury", flux("paid_to_treasury")),
                    ("unpaid epoch", cell("unpaid_epoch")),
                ]);
            });
        }
        ChainCommand::Params => {
            let value = client.get_value("/gov/params")?;
            ctx.out.show(&value, |text| {
                let cell = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let rows: Vec<Vec<String>> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|param| {
                        let since = match param["since_height"].as_u64() {
                            Some(0) | None => "genesis".to_string(),
                            Some(height) => height.to_string(),
                        };
                        vec![
                            cell(&param["key"]),
                            cell(&param["value"]),
                            since,
                            format!("{} to {}", cell(&param["min"]), cell(&param["max"])),
                        ]
                    })
                    .collect();
                text.table(
                    &["KEY", "VALUE", "SINCE HEIGHT", "ALLOWED"],
                    &rows,
                    "the node lists no governable params",
                );
            });
        }
    }
    Ok(())
}

fn show_committee(text: &mut crate::output::Text, committee: &Value) {
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    text.fields(&[("epoch", cell(&committee["epoch"]))]);
    text.blank();
    let rows: Vec<Vec<String>> = committee["members"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(seat, member)| {
            vec![
                seat.to_string(),
                cell(&member["id"]),
                cell(&member["name"]),
                cell(&member["tier"]),
                cell(&member["endpoint"]),
            ]
        })
        .collect();
    text.table(
        &["SEAT", "NODE", "NAME", "TIER", "ENDPOINT"],
        &rows,
        "this node does not know the committee of the epoch yet",
    );
}

fn show_block(text: &mut crate::output::Text, block: &Value) {
    let hash = block["hash"].as_str().unwrap_or("?").to_string();
    match serde_json::from_value::<BlockHeader>(block["header"].clone()) {
        Ok(header) => {
            text.fields(&[
                ("height", header.height.to_string()),
                ("hash", hash),
                ("parent", header.parent.to_string()),
                ("time", utc(header.timestamp_ms)),
                ("proposer", header.proposer.address().to_string()),
                ("state root", header.state_root.to_string()),
            ]);
        }
        Err(_) => {
            text.fields(&[("hash", hash)]);
        }
    }
    let txs = block["txs"].as_array().cloned().unwrap_or_default();
    text.blank();
    let rows: Vec<Vec<String>> = txs.iter().map(tx_row).collect();
    text.table(
        &["TX", "TYPE", "SIGNER", "NONCE", "FEE"],
        &rows,
        "no transactions",
    );
}

fn tx_row(entry: &Value) -> Vec<String> {
    let hash = entry["hash"].as_str().map(short).unwrap_or_default();
    match serde_json::from_value::<SignedTransaction>(entry["tx"].clone()) {
        Ok(signed) => vec![
            hash,
            signed.tx.body.kind().to_string(),
            signed.tx.sender().to_string(),
            signed.tx.nonce.to_string(),
            signed.tx.fee.to_string(),
        ],
        Err(_) => vec![hash, "?".into(), "?".into(), "?".into(), "?".into()],
    }
}
