//! `flux node`: run a node; register, benchmark and deregister nodes on the chain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use flux_ledger::{NodeRecord, ReceiptDetail};
use flux_types::node::{validate_endpoint, validate_region};
use flux_types::{BenchmarkReport, FigureCheck, Params, Tier, TxBody};
use serde::Serialize;

use crate::Context;
use crate::client::{is_unreachable, list_items};
use crate::keystore::{KeyFile, read_key_file, resolve_party};
use crate::output::Text;
use crate::submit::{self, TxOptions, Written};

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
    /// Measure this machine (CPU score, disk write speed, memory, cores, disk) against a tier's thresholds
    ///
    /// With --submit the report goes to the chain signed by the node's own key,
    /// which confirms the node for its tier when every figure passes.
    Benchmark {
        /// Directory whose disk is measured: the node's data directory [default: the current directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Seconds the CPU test runs
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        cpu_seconds: u64,
        /// MB the disk test writes (and flushes)
        #[arg(long, value_name = "MB", default_value_t = 256)]
        disk_mb: u64,
        /// Compare with this tier [default: the tier of the node --from names, else cumulus]
        #[arg(long)]
        tier: Option<Tier>,
        /// Send the report to the chain, signed by the node's key
        #[arg(long, requires = "from")]
        submit: bool,
        /// The node's own key: a keystore name, or a key file such as DEVNET/node-0/node_key.json
        #[arg(long, value_name = "NAME|FILE")]
        from: Option<String>,
        #[command(flatten)]
        tx: TxOptions,
    },
    /// List the registered nodes
    List,
    /// A node's tier, state, instances, useful work, rewards and committee seat
    Status {
        /// The node: its id (flux1…), a keystore key name (the node's own key,
        /// or a key that owns exactly one node) or a devnet node name (node-0)
        ///
        /// (Not called `node`: the global --node is the URL of the node to talk to.)
        #[arg(value_name = "NAME|ADDRESS")]
        which: String,
    },
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
        NodeCommand::Benchmark {
            dir,
            cpu_seconds,
            disk_mb,
            tier,
            submit,
            from,
            tx,
        } => benchmark(
            ctx,
            BenchmarkArgs {
                dir,
                cpu_seconds,
                disk_mb,
                tier,
                submit,
                from,
                tx,
            },
        )?,
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
        NodeCommand::Status { which } => {
            let client = ctx.client()?;
            let id = resolve_node(ctx, &client, &which)?;
            let detail = client.get_value(&format!("/nodes/{id}")).map_err(|e| {
                let e = anyhow!(e);
                if crate::client::api_status(&e) == Some(404) {
                    anyhow!(
                        "no node with id {id} is registered; `flux node list` shows those that are"
                    )
                } else {
                    e
                }
            })?;
            ctx.out.show(&detail, |text| show_status(text, &detail));
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

/// The node id that `text` names: an address as is; a keystore key, as the
/// node it is the key of or the only node it owns; or a node of the devnet
/// in the default devnet directory (`node-0`), by its node key.
fn resolve_node(
    ctx: &Context,
    client: &crate::client::Client,
    text: &str,
) -> Result<flux_types::Address> {
    let text = text.trim();
    if text.starts_with("flux1") {
        return Ok(text.parse()?);
    }
    if let Ok(key) = ctx.keystore().load(text) {
        let nodes = list_nodes(client)?;
        if nodes.iter().any(|n| n.id == key.address) {
            return Ok(key.address);
        }
        let owned: Vec<&NodeRecord> = nodes.iter().filter(|n| n.owner == key.address).collect();
        return match owned.as_slice() {
            [only] => Ok(only.id),
            [] => bail!(
                "key {text} ({}) is no node's key and owns no node",
                key.address
            ),
            many => bail!(
                "{text} owns {} nodes; name one by id: {}",
                many.len(),
                many.iter()
                    .map(|n| n.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    let path = devnet_node_key_path(&ctx.home, text);
    if path.is_file() {
        return Ok(read_key_file(&path)?.address);
    }
    bail!(
        "'{text}' is not a node id (flux1…), a key in the keystore (`flux keys list`) or a devnet node ({} does not exist)",
        path.display()
    )
}

/// Where the default devnet keeps node `name`'s key.
fn devnet_node_key_path(home: &Path, name: &str) -> PathBuf {
    home.join("devnet").join(name).join("node_key.json")
}

/// The human form of `GET /nodes/{id}`.
fn show_status(text: &mut Text, detail: &serde_json::Value) {
    text.fields(&status_fields(detail));
}

/// The fields `flux node status` shows, from `GET /nodes/{id}`.
fn status_fields(detail: &serde_json::Value) -> Vec<(&'static str, String)> {
    let plain = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let work = &detail["work"];
    let epoch_line = |e: &serde_json::Value| -> String {
        if e.is_null() {
            return "-".into();
        }
        let share = match e["verified_permille"].as_u64() {
            Some(permille) => format!("{}.{}%", permille / 10, permille % 10),
            None => "nothing assigned".into(),
        };
        format!(
            "epoch {}: {} of {} instance-windows verified ({share}), reward {} FLUX",
            plain(&e["epoch"]),
            plain(&e["verified_windows"]),
            plain(&e["assigned_windows"]),
            plain(&e["reward"]),
        )
    };
    let instances: Vec<String> = detail["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{}#{}", plain(&i["app"]), plain(&i["instance"])))
        .collect();
    let seat = match work["committee_seat"].as_bool() {
        Some(true) => format!("yes (epoch {})", plain(&work["epoch"])),
        Some(false) => "no".to_string(),
        None => "unknown".to_string(),
    };
    let last_paid = match work["rewards_last_paid_epoch"].as_u64() {
        Some(epoch) => format!(
            "{} FLUX for epoch {epoch}",
            plain(&work["rewards_last_paid"])
        ),
        None => "never".to_string(),
    };
    vec![
        ("id", plain(&detail["id"])),
        ("tier", plain(&detail["tier"])),
        ("status", plain(&detail["status"])),
        ("endpoint", plain(&detail["endpoint"])),
        ("owner", plain(&detail["owner"])),
        (
            "instances",
            if instances.is_empty() {
                "none".to_string()
            } else {
                format!("{} ({})", instances.len(), instances.join(", "))
            },
        ),
        (
            "verifying",
            format!("{} targets", plain(&work["verifying"])),
        ),
        ("this epoch", epoch_line(&work["this_epoch"])),
        ("last epoch", epoch_line(&work["last_epoch"])),
        ("down windows", plain(&work["down_windows"])),
        (
            "rewards",
            format!("{} FLUX in total", plain(&work["rewards_total"])),
        ),
        ("last paid", last_paid),
        ("committee", seat),
    ]
}

struct BenchmarkArgs {
    dir: Option<PathBuf>,
    cpu_seconds: u64,
    disk_mb: u64,
    tier: Option<Tier>,
    submit: bool,
    from: Option<String>,
    tx: TxOptions,
}

/// What `flux node benchmark --json` prints.
#[derive(Serialize)]
struct BenchmarkOutput {
    report: BenchmarkReport,
    tier: Tier,
    checks: Vec<FigureCheck>,
    passed: bool,
    params: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    submitted: Option<Written>,
}

/// Reads a node key given as a keystore name or as a key file path.
fn load_node_key(ctx: &Context, text: &str) -> Result<KeyFile> {
    let path = Path::new(text);
    if text.contains('/') || text.ends_with(".json") || path.is_file() {
        return read_key_file(path);
    }
    ctx.keystore().load(text)
}

fn benchmark(ctx: &Context, args: BenchmarkArgs) -> Result<()> {
    let key = args
        .from
        .as_deref()
        .map(|f| load_node_key(ctx, f))
        .transpose()?;
    let client = ctx.client()?;
    // The thresholds and the node's tier come from the node when it answers.
    let (params, source) = match client.params() {
        Ok(params) => (
            params,
            format!("thresholds of the node at {}", client.node_url()),
        ),
        Err(error) => {
            let error = anyhow!(error);
            if args.submit || !is_unreachable(&error) {
                return Err(error);
            }
            ctx.out.note(&format!(
                "no node answers at {}; comparing with the devnet thresholds",
                client.node_url()
            ));
            (Params::devnet(), "devnet default thresholds".to_string())
        }
    };
    let registered: Option<NodeRecord> = match &key {
        Some(key) => match client.get(&format!("/nodes/{}", key.address)) {
            Ok(node) => Some(node),
            Err(error) if error.status() == Some(404) => None,
            Err(error) => {
                let error = anyhow!(error);
                if args.submit || !is_unreachable(&error) {
                    return Err(error);
                }
                None
            }
        },
        None => None,
    };
    if args.submit && registered.is_none() {
        let key = key.as_ref().expect("--submit requires --from");
        bail!(
            "{} ({}) is not a registered node; register it first with `flux node register --node-key {}`",
            key.name,
            key.address,
            key.name
        );
    }
    let tier = args
        .tier
        .or(registered.as_ref().map(|n| n.tier))
        .unwrap_or(Tier::Cumulus);
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let options = flux_benchmark::Options {
        dir,
        cpu_duration: Duration::from_secs(args.cpu_seconds.max(1)),
        disk_write_bytes: args.disk_mb.max(1) * 1_000_000,
    };
    let report = {
        let _spinner = ctx.out.spinner(format!(
            "measuring: {} s of CPU, {} MB written to {}",
            args.cpu_seconds.max(1),
            args.disk_mb.max(1),
            options.dir.display()
        ));
        flux_benchmark::measure(&options)?
    };
    let checks = report.check(params.tier(tier));
    let passed = checks.iter().all(FigureCheck::passed);
    let submitted = match (&key, args.submit) {
        (Some(key_file), true) => {
            let secret = key_file.secret()?;
            let prepared = submit::prepare(&client, &secret)?;
            let signed = prepared.sign(&secret, TxBody::NodeBenchmark { report }, args.tx.fee);
            Some(submit::submit_and_wait(
                &client, &ctx.out, &signed, &args.tx,
            )?)
        }
        _ => None,
    };
    let output = BenchmarkOutput {
        report,
        tier,
        checks,
        passed,
        params: source,
        submitted,
    };
    ctx.out.show(&output, |text| show_benchmark(text, &output));
    Ok(())
}

fn show_benchmark(text: &mut Text, output: &BenchmarkOutput) {
    let rows: Vec<Vec<String>> = output
        .checks
        .iter()
        .map(|check| {
            let unit = check.figure.unit();
            vec![
                check.figure.to_string(),
                format!("{} {unit}", check.measured),
                format!("{} {unit}", check.required),
                if check.passed() { "ok" } else { "TOO LOW" }.to_string(),
            ]
        })
        .collect();
    text.line(format!("{} tier, {}", output.tier, output.params));
    text.table(&["FIGURE", "MEASURED", "REQUIRED", ""], &rows, "");
    let failing: Vec<String> = output
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.figure.to_string())
        .collect();
    if failing.is_empty() {
        text.line(format!("passes every {} threshold", output.tier));
    } else {
        text.line(format!(
            "falls short of the {} thresholds in: {}",
            output.tier,
            failing.join(", ")
        ));
    }
    match &output.submitted {
        Some(written) => {
            text.blank();
            match (&written.height, &written.receipt) {
                (Some(height), Some(receipt)) => {
                    text.line(format!("committed at height {height}"));
                    if let ReceiptDetail::NodeBenchmarked { status, .. } = &receipt.detail {
                        let status = serde_json::to_value(status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default();
                        text.line(format!("the node is now {status}"));
                    }
                    submit::describe_receipt(text, receipt);
                }
                _ => {
                    text.line(format!(
                        "submitted; check with `flux chain tx {}`",
                        written.hash
                    ));
                }
            }
        }
        None => {
            text.line("not sent; send it with --submit --from NODE_KEY");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field<'a>(fields: &'a [(&'static str, String)], name: &str) -> &'a str {
        fields
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    #[test]
    fn status_shows_work_rewards_and_seat() {
        let detail = json!({
            "id": "flux1node", "tier": "nimbus", "status": "confirmed",
            "endpoint": "127.0.0.1:16127", "owner": "flux1owner",
            "instances": [{ "app": "web", "instance": 2 }],
            "work": {
                "epoch": 7, "verifying": 4, "down_windows": 0,
                "this_epoch": { "epoch": 7, "assigned_windows": 3, "verified_windows": 2,
                                "verified_permille": 666, "reward": "0.00000000" },
                "last_epoch": { "epoch": 6, "assigned_windows": 10, "verified_windows": 10,
                                "verified_permille": 1000, "reward": "12.50000000" },
                "rewards_total": "40.00000000", "rewards_last_paid_epoch": 6,
                "rewards_last_paid": "12.50000000", "committee_seat": true,
            },
        });
        let fields = status_fields(&detail);
        assert_eq!(field(&fields, "tier"), "nimbus");
        assert_eq!(field(&fields, "status"), "confirmed");
        assert_eq!(field(&fields, "instances"), "1 (web#2)");
        assert_eq!(field(&fields, "verifying"), "4 targets");
        assert_eq!(
            field(&fields, "this epoch"),
            "epoch 7: 2 of 3 instance-windows verified (66.6%), reward 0.00000000 FLUX"
        );
        assert_eq!(
            field(&fields, "last epoch"),
            "epoch 6: 10 of 10 instance-windows verified (100.0%), reward 12.50000000 FLUX"
        );
        assert_eq!(field(&fields, "rewards"), "40.00000000 FLUX in total");
        assert_eq!(field(&fields, "last paid"), "12.50000000 FLUX for epoch 6");
        assert_eq!(field(&fields, "committee"), "yes (epoch 7)");
    }

    #[test]
    fn status_of_a_new_node_says_nothing_yet() {
        let detail = json!({
            "id": "flux1node", "tier": "cumulus", "status": "pending", "instances": [],
            "work": {
                "epoch": 0, "verifying": 0, "down_windows": 0,
                "this_epoch": { "epoch": 0, "assigned_windows": 0, "verified_windows": 0,
                                "verified_permille": null, "reward": "0.00000000" },
                "last_epoch": null, "rewards_total": "0.00000000",
                "rewards_last_paid_epoch": null, "rewards_last_paid": "0.00000000",
                "committee_seat": null,
            },
        });
        let fields = status_fields(&detail);
        assert_eq!(field(&fields, "instances"), "none");
        assert!(field(&fields, "this epoch").contains("nothing assigned"));
        assert_eq!(field(&fields, "last epoch"), "-");
        assert_eq!(field(&fields, "last paid"), "never");
        assert_eq!(field(&fields, "committee"), "unknown");
    }

    #[test]
    fn devnet_nodes_are_found_under_the_default_devnet() {
        assert_eq!(
            devnet_node_key_path(Path::new("/home/x/.flux"), "node-2"),
            Path::new("/home/x/.flux/devnet/node-2/node_key.json")
        );
    }
}
