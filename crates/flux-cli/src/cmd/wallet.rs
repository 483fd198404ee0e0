//! `flux wallet`: balances and transfers.

use anyhow::{Result, bail};
use clap::Subcommand;
use flux_types::{Amount, TxBody};
use serde_json::json;

use crate::Context;
use crate::keystore::resolve_party;
use crate::submit::{self, TxOptions};

#[derive(Debug, Subcommand)]
pub(crate) enum WalletCommand {
    /// Show the balance of a key or an address
    Balance {
        /// A key name from the keystore or an address (flux1…)
        who: Option<String>,
    },
    /// Send FLUX to an address or to a key of the keystore
    Send {
        /// Key that signs and pays
        #[arg(long, value_name = "NAME")]
        from: String,
        /// Recipient: an address (flux1…) or a key name
        #[arg(long, value_name = "ADDRESS|NAME")]
        to: String,
        /// Amount in FLUX, decimals allowed (e.g. 12.5)
        amount: Amount,
        #[command(flatten)]
        tx: TxOptions,
    },
}

pub(crate) fn run(ctx: &Context, command: WalletCommand) -> Result<()> {
    let keystore = ctx.keystore();
    match command {
        WalletCommand::Balance { who } => {
            let Some(who) = who else {
                let names = keystore.names();
                let known = if names.is_empty() {
                    "the keystore is empty".to_string()
                } else {
                    format!("known keys: {}", names.join(", "))
                };
                bail!("name a key or an address: `flux wallet balance NAME|ADDRESS` ({known})");
            };
            let party = resolve_party(&keystore, &who)?;
            let client = ctx.client()?;
            let account = client.account(&party.address)?;
            let mut value = serde_json::to_value(&account)?;
            if let Some(name) = &party.key_name {
                value["name"] = json!(name);
            }
            ctx.out.show(&value, |text| {
                let mut fields = Vec::new();
                if let Some(name) = &party.key_name {
                    fields.push(("key", name.clone()));
                }
                fields.extend([
                    ("address", account.address.to_string()),
                    ("balance", format!("{} FLUX", account.balance)),
                    ("locked", format!("{} FLUX", account.locked)),
                    ("nonce", account.nonce.to_string()),
                ]);
                text.fields(&fields);
            });
        }
        WalletCommand::Send {
            from,
            to,
            amount,
            tx,
        } => {
            let sender = keystore.load(&from)?;
            let recipient = resolve_party(&keystore, &to)?;
            if amount.is_zero() {
                bail!("the amount must be greater than zero");
            }
            let key = sender.secret()?;
            let client = ctx.client()?;
            let prepared = submit::prepare(&client, &key)?;
            let body = TxBody::Transfer {
                to: recipient.address,
                amount,
            };
            let fee = prepared.fee_for(&key, &body, tx.fee);
            let needed = amount.checked_add(fee);
            let available = prepared.account.balance;
            if needed.is_none_or(|needed| needed > available) {
                let needed = needed.map_or_else(|| "more".to_string(), |n| n.to_string());
                bail!(
                    "insufficient funds: {from} ({}) has {available} FLUX available; sending {amount} FLUX \
                     with a fee of {fee} FLUX needs {needed} FLUX",
                    sender.address
                );
            }
            let signed = prepared.sign(&key, body, Some(fee));
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
    }
    Ok(())
}
