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
