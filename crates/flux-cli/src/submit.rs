//! Every write goes the same way: read the chain id, params and next nonce
//! from the node, sign locally, submit, and wait until the transaction is
//! committed or rejected.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use flux_ledger::{Receipt, ReceiptDetail, min_fee};
use flux_types::{Amount, Hash, Params, SecretKey, SignedTransaction, Transaction, TxBody};
use serde::Serialize;

use crate::client::{AccountView, Client};
use crate::output::{Output, Text, utc};

/// Interval between two looks at a pending transaction.
const POLL_INTERVAL_MS: u64 = 200;

/// Options of every command that writes to the chain.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct TxOptions {
    /// Fee in FLUX; defaults to the network's minimum for this transaction.
    #[arg(long, value_name = "AMOUNT")]
    pub(crate) fee: Option<Amount>,
    /// Seconds to wait for the transaction to be committed before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) wait_timeout_secs: u64,
    /// Submit and return at once, without waiting for the transaction to be committed.
    #[arg(long)]
    pub(crate) no_wait: bool,
}

/// What a write needs from the node before signing.
pub(crate) struct Prepared {
    pub(crate) chain_id: String,
    pub(crate) params: Params,
    pub(crate) account: AccountView,
}

/// Reads the chain id, the params and the signer's account.
pub(crate) fn prepare(client: &Client, key: &SecretKey) -> Result<Prepared> {
    let status = client.status()?;
    let params = client.params()?;
    let account = client.account(&key.address())?;
    Ok(Prepared {
        chain_id: status.chain_id,
        params,
        account,
    })
}

impl Prepared {
    /// The fee `body` would pay: `fee`, or else the network's minimum.
    pub(crate) fn fee_for(&self, key: &SecretKey, body: &TxBody, fee: Option<Amount>) -> Amount {
        fee.unwrap_or_else(|| {
            min_fee(
                &self.params,
                &self.sign_with(key, body.clone(), Amount::ZERO),
            )
        })
    }

    fn sign_with(&self, key: &SecretKey, body: TxBody, fee: Amount) -> SignedTransaction {
        Transaction {
            chain_id: self.chain_id.clone(),
            signer: key.public_key(),
            nonce: self.account.next_nonce,
            fee,
            body,
        }
        .sign(key)
    }

    /// Signs `body` with the next nonce and the fee from [`Prepared::fee_for`].
    pub(crate) fn sign(
        &self,
        key: &SecretKey,
        body: TxBody,
        fee: Option<Amount>,
    ) -> SignedTransaction {
        let fee = self.fee_for(key, &body, fee);
        self.sign_with(key, body, fee)
    }
}

/// The result of a write.
#[derive(Debug, Serialize)]
pub(crate) struct Written {
    pub(crate) hash: Hash,
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) receipt: Option<Receipt>,
}

/// Submits `tx` and, unless told not to, waits with a spinner until it is
/// committed (returned) or rejected (an error carrying the ledger's message).
pub(crate) fn submit_and_wait(
    client: &Client,
    out: &Output,
    tx: &SignedTransaction,
    options: &TxOptions,
) -> Result<Written> {
    let hash = client.submit(tx)?;
    if options.no_wait {
        return Ok(Written {
            hash,
            status: "pending".into(),
            height: None,
            receipt: None,
        });
    }
    let spinner = out.spinner(format!(
        "waiting for transaction {} to be committed",
        crate::output::short(&hash.to_string())
    ));
    let timeout = Duration::from_secs(options.wait_timeout_secs);
    let started = Instant::now();
    loop {
        let status = client.tx_status(&hash)?;
        match status.status.as_str() {
            "committed" => {
                drop(spinner);
                let height = status.receipt.as_ref().map(|r| r.height);
                return Ok(Written {
                    hash,
                    status: status.status,
                    height,
                    receipt: status.receipt,
                });
            }
            "rejected" => {
                let message = status
                    .message
                    .unwrap_or_else(|| "no reason given".to_string());
                bail!("transaction {hash} was rejected: {message}");
            }
            other => {
                if started.elapsed() >= timeout {
                    bail!(
                        "transaction {hash} is still {other} after {} s; it may yet be committed: \
                         check with `flux chain tx {hash}`",
                        options.wait_timeout_secs
                    );
                }
                spinner.set_message(format!(
                    "waiting for transaction {} to be committed ({other})",
                    crate::output::short(&hash.to_string())
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Shows the result of a write.
pub(crate) fn show_written(out: &Output, written: &Written) {
    out.show(written, |text| match (&written.height, &written.receipt) {
        (Some(height), Some(receipt)) => {
            text.line(format!("committed at height {height}"));
            describe_receipt(text, receipt);
        }
        _ => {
            text.line(format!(
                "submitted; check with `flux chain tx {}`",
                written.hash
            ));
            text.fields(&[("tx", written.hash.to_string())]);
        }
    });
}

/// The lines describing a receipt.
pub(crate) fn describe_receipt(text: &mut Text, receipt: &Receipt) {
    let what = match &receipt.detail {
        ReceiptDetail::Transfer { to, amount } => format!("sent {amount} FLUX to {to}"),
        ReceiptDetail::NodeRegistered { node, collateral } => {
            format!("node {node} registered; {collateral} FLUX collateral locked")
        }
        ReceiptDetail::NodeDeregistered { node, unlocked } => {
            format!("node {node} deregistered; {unlocked} FLUX collateral unlocked")
        }
        ReceiptDetail::AppRegistered {
            app,
            price,
            expires_at_ms,
        } => format!(
            "app {app} registered; paid {price} FLUX; runs until {}",
            utc(*expires_at_ms)
        ),
        ReceiptDetail::AppUpdated {
            app,
            charged,
            credit,
            expires_at_ms,
            ..
        } => format!(
            "app {app} updated; charged {charged} FLUX after a credit of {credit} FLUX; runs until {}",
            utc(*expires_at_ms)
        ),
        ReceiptDetail::AppRemoved { app } => format!("app {app} removed"),
        ReceiptDetail::NodeBenchmarked {
            node, shortfalls, ..
        } if shortfalls.is_empty() => {
            format!("node {node} benchmarked: every figure meets its tier's threshold; confirmed")
        }
        ReceiptDetail::NodeBenchmarked {
            node, shortfalls, ..
        } => format!(
            "node {node} benchmarked: {}; pending",
            shortfalls
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ReceiptDetail::WorkReported {
            node,
            epoch,
            first_window,
            windows,
            targets,
        } => format!(
            "node {node} reported {targets} targets for windows {first_window} to {} of epoch {epoch}",
            first_window + u64::from(windows.saturating_sub(1))
        ),
        ReceiptDetail::ProposalSubmitted {
            proposal,
            deposit,
            voting_ends_ms,
        } => format!(
            "proposal {proposal} is open for votes until {}; {deposit} FLUX deposit held",
            utc(*voting_ends_ms)
        ),
        ReceiptDetail::Voted {
            proposal,
            choice,
            power,
            changed_from,
        } => match changed_from {
            Some(old) => format!(
                "vote on proposal {proposal} changed from {old} to {choice} (power {power})"
            ),
            None => format!("voted {choice} on proposal {proposal} (power {power})"),
        },
    };
    text.fields(&[
        ("result", what),
        ("tx", receipt.tx_hash.to_string()),
        (
            "block",
            format!("{} (index {})", receipt.height, receipt.index),
        ),
        ("fee", format!("{} FLUX", receipt.fee)),
    ]);
}
