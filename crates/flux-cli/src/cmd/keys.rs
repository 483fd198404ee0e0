//! `flux keys`: the local keystore.

use anyhow::Result;
use clap::Subcommand;
use flux_types::SecretKey;
use serde_json::json;

use crate::Context;
use crate::keystore::KeyFile;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a new key and store it under NAME
    New {
        /// Name of the key (letters, digits, '-', '_')
        name: String,
    },
    /// List the stored keys
    List,
    /// Show a key's address and public key
    Show {
        /// Name of the key
        name: String,
        /// Also print the secret seed (whoever sees it controls the address)
        #[arg(long)]
        secret: bool,
    },
}

pub(crate) fn run(ctx: &Context, command: KeysCommand) -> Result<()> {
    let keystore = ctx.keystore();
    match command {
        KeysCommand::New { name } => {
            let key = keystore.create(&name, &SecretKey::generate())?;
            let file = keystore.dir().join(format!("{name}.json"));
            let value = json!({
                "name": key.name,
                "address": key.address,
                "public_key": key.public_key,
                "file": file,
            });
            ctx.out.show(&value, |text| {
                text.line(format!("created key '{}'", key.name)).fields(&[
                    ("address", key.address.to_string()),
                    ("public key", key.public_key.to_string()),
                    ("file", file.display().to_string()),
                ]);
                text.line("the file holds the secret key: keep a copy somewhere safe; it is never shown unless asked with `flux keys show NAME --secret`");
            });
        }
        KeysCommand::List => {
            let (keys, problems) = keystore.list();
            for problem in &problems {
                ctx.out.note(&format!("skipped: {problem}"));
            }
            let value: Vec<_> = keys.iter().map(public_view).collect();
            ctx.out.show(&value, |text| {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| vec![k.name.clone(), k.address.to_string()])
                    .collect();
                let empty = format!(
                    "no keys in {}; create one with `flux keys new NAME`",
                    keystore.dir().display()
                );
                text.table(&["NAME", "ADDRESS"], &rows, &empty);
            });
        }
        KeysCommand::Show { name, secret } => {
            let key = keystore.load(&name)?;
            let mut value = public_view(&key);
            if secret {
                value["seed"] = json!(key.seed);
            }
            ctx.out.show(&value, |text| {
                let mut fields = vec![
                    ("name", key.name.clone()),
                    ("address", key.address.to_string()),
                    ("public key", key.public_key.to_string()),
                ];
                if secret {
                    fields.push(("secret seed", key.seed.clone()));
                }
                text.fields(&fields);
            });
        }
    }
    Ok(())
}

/// A key without its secret.
fn public_view(key: &KeyFile) -> serde_json::Value {
    json!({
        "name": key.name,
        "address": key.address,
        "public_key": key.public_key,
    })
}
