//! `flux app`: validate, price, deploy, list, inspect and remove apps, and
//! read an app's logs and stats (signed by its owner's key).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use flux_ledger::{AppRecord, Quote, quote};
use flux_types::app::{ParsedSpec, parse_spec};
use flux_types::{Address, Amount, AppSpec, Params, TxBody};
use serde_json::json;

use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use flux_agent::driver::LOG_TAIL_LINES_MAX;
use flux_node::routes::{InstanceStats, LogLine, StatsView};
use flux_types::SecretKey;

use crate::Context;
use crate::client::{Client, ClientError, api_status, is_unreachable, list_items};
use crate::output::{Text, utc};
use crate::submit::{self, TxOptions};

/// Time allowed for one node's past logs.
const LOGS_TIMEOUT_MS: u64 = 30_000;
/// Time allowed for one node's stats (a reading takes the driver a moment).
const STATS_TIMEOUT_MS: u64 = 15_000;
/// Largest spec file read; real ones are a few kilobytes.
const SPEC_FILE_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Check a spec (Flux v8 JSON or TOML) against the network's rules, without sending anything
    Validate {
        /// The spec file
        file: PathBuf,
        /// Key that would deploy (fills a missing owner)
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
    },
    /// Price a spec for a period
    Price {
        /// The spec file
        file: PathBuf,
        /// Months to pay for [default: the spec's `expire`, else 1]
        #[arg(long)]
        months: Option<u32>,
    },
    /// Register an app and pay for its period
    Deploy {
        /// The spec file
        file: PathBuf,
        /// Key that owns and pays for the app
        #[arg(long, value_name = "NAME")]
        from: String,
        /// Months to pay for [default: the spec's `expire`, else 1]
        #[arg(long)]
        months: Option<u32>,
        /// The most to pay, in FLUX [default: the quoted price]
        #[arg(long, value_name = "AMOUNT")]
        max_payment: Option<Amount>,
        #[command(flatten)]
        tx: TxOptions,
    },
    /// Replace a registered app's spec and period (same name), crediting the unused part
    Update {
        /// The new spec file (Flux v8 JSON, TOML or docker-compose)
        file: PathBuf,
        /// Key that owns the app and pays
        #[arg(long, value_name = "NAME")]
        from: String,
        /// Months to pay for from now [default: the spec's `expire`, else 1]
        #[arg(long)]
        months: Option<u32>,
        /// The most to pay after the credit, in FLUX [default: the quoted price]
        #[arg(long, value_name = "AMOUNT")]
        max_payment: Option<Amount>,
        #[command(flatten)]
        tx: TxOptions,
    },
    /// List the registered apps
    List,
    /// Show one app
    Status {
        /// The app's name
        name: String,
    },
    /// Show the output of the app's instances, from every node that hosts one (the owner's key signs)
    Logs {
        /// The app's name
        name: String,
        /// Only this component's output
        #[arg(long, value_name = "NAME")]
        component: Option<String>,
        /// Keep printing new output, from all nodes at once, until Ctrl-C
        #[arg(long)]
        follow: bool,
        /// Lines of past output per instance (at most 10000)
        #[arg(long, value_name = "LINES", default_value_t = 100,
              value_parser = clap::value_parser!(u32).range(0..=i64::from(LOG_TAIL_LINES_MAX)))]
        tail: u32,
        /// Key to sign with [default: the key in the keystore that owns the app]
        #[arg(long, value_name = "KEY")]
        from: Option<String>,
    },
    /// Show CPU, memory and network use of each of the app's instances (the owner's key signs)
    Stats {
        /// The app's name
        name: String,
        /// Key to sign with [default: the key in the keystore that owns the app]
        #[arg(long, value_name = "KEY")]
        from: Option<String>,
    },
    /// Remove an app owned by the --from key (the unused period is not refunded)
    Remove {
        /// The app's name
        name: String,
        /// Key that owns the app
        #[arg(long, value_name = "NAME")]
        from: String,
        #[command(flatten)]
        tx: TxOptions,
    },
}

/// Stands for "whoever deploys" when a spec names no owner and no key was given.
const UNSPECIFIED_OWNER: Address = Address([0; 20]);

pub(crate) fn run(ctx: &Context, command: AppCommand) -> Result<()> {
    match command {
        AppCommand::Validate { file, from } => {
            let owner = match &from {
                Some(name) => ctx.keystore().load(name)?.address,
                None => UNSPECIFIED_OWNER,
            };
            let parsed = read_spec(&file, owner)?;
            let (params, source) = params_or_defaults(ctx)?;
            check_spec(&file, &parsed.spec, &params)?;
            let value = json!({
                "valid": true,
                "file": file,
                "params": source,
                "spec": parsed.spec,
            });
            ctx.out.show(&value, |text| {
                text.line(format!(
                    "{} is a valid app specification ({source})",
                    file.display()
                ));
                show_spec(text, &parsed.spec);
            });
        }
        AppCommand::Price { file, months } => {
            let parsed = read_spec(&file, UNSPECIFIED_OWNER)?;
            let months = months.or(parsed.months_hint).unwrap_or(1);
            let (params, source) = params_or_defaults(ctx)?;
            check_spec(&file, &parsed.spec, &params)?;
            let quote = quote(&params, &parsed.spec, months)?;
            let mut value = serde_json::to_value(&quote)?;
            value["app"] = json!(parsed.spec.name);
            value["params"] = json!(source);
            ctx.out
                .show(&value, |text| show_quote(text, &parsed.spec, &quote));
        }
        AppCommand::Deploy {
            file,
            from,
            months,
            max_payment,
            tx,
        } => {
            let owner = ctx.keystore().load(&from)?;
            let key = owner.secret()?;
            let parsed = read_spec(&file, owner.address)?;
            let months = months.or(parsed.months_hint).unwrap_or(1);
            let client = ctx.client()?;
            let prepared = submit::prepare(&client, &key)?;
            check_spec(&file, &parsed.spec, &prepared.params)?;
            let quote = quote(&prepared.params, &parsed.spec, months)?;
            let max_payment = max_payment.unwrap_or(quote.total);
            if !ctx.out.is_json() {
                ctx.out.note(&format!(
                    "deploying {} for {months} month(s): price {} FLUX, paying at most {max_payment} FLUX",
                    parsed.spec.name, quote.total
                ));
            }
            let body = TxBody::AppRegister {
                spec: parsed.spec,
                months,
                max_payment,
            };
            let signed = prepared.sign(&key, body, tx.fee);
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
        AppCommand::Update {
            file,
            from,
            months,
            max_payment,
            tx,
        } => {
            let owner = ctx.keystore().load(&from)?;
            let key = owner.secret()?;
            let parsed = read_spec(&file, owner.address)?;
            let months = months.or(parsed.months_hint).unwrap_or(1);
            let client = ctx.client()?;
            let app = get_app(&client, &parsed.spec.name)?;
            if app.spec.owner != owner.address {
                bail!(
                    "app '{}' is owned by {}, not by {from} ({}); only its owner can update it",
                    parsed.spec.name,
                    app.spec.owner,
                    owner.address
                );
            }
            let prepared = submit::prepare(&client, &key)?;
            check_spec(&file, &parsed.spec, &prepared.params)?;
            let quote = quote(&prepared.params, &parsed.spec, months)?;
            let max_payment = max_payment.unwrap_or(quote.total);
            let body = TxBody::AppUpdate {
                spec: parsed.spec,
                months,
                max_payment,
            };
            let signed = prepared.sign(&key, body, tx.fee);
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
        AppCommand::List => {
            let client = ctx.client()?;
            let value = client.get_value("/apps")?;
            let apps: Vec<AppRecord> = list_items(value, "apps")
                .into_iter()
                .map(|item| {
                    serde_json::from_value(item).map_err(|e| {
                        anyhow!("unexpected app record from {}: {e}", client.node_url())
                    })
                })
                .collect::<Result<_>>()?;
            ctx.out.show(&apps, |text| {
                let rows: Vec<Vec<String>> = apps
                    .iter()
                    .map(|app| {
                        let spec = &app.spec;
                        vec![
                            spec.name.clone(),
                            spec.instances.to_string(),
                            format!("{}", f64::from(spec.cpu_tenths()) / 10.0),
                            format!("{} MB", spec.ram_mb()),
                            format!("{} GB", spec.hdd_gb()),
                            format!("{} FLUX", app.paid),
                            utc(app.expires_at_ms),
                            spec.owner.to_string(),
                        ]
                    })
                    .collect();
                text.table(
                    &[
                        "NAME",
                        "INSTANCES",
                        "CPU",
                        "RAM",
                        "HDD",
                        "PAID",
                        "EXPIRES",
                        "OWNER",
                    ],
                    &rows,
                    "no apps registered; deploy one with `flux app deploy FILE --from NAME`",
                );
            });
        }
        AppCommand::Status { name } => {
            let client = ctx.client()?;
            let detail: AppDetailView = get_app_as(&client, &name)?;
            let app = &detail.record;
            let live = live_instances(&client, &app.spec.name)?;
            let mut value = serde_json::to_value(app)?;
            value["wanted"] = json!(app.spec.instances);
            value["placed"] = json!(detail.placed);
            value["placements"] = json!(detail.instances);
            value["instances"] = json!(live.instances);
            value["unreachable"] = json!(live.unreachable);
            ctx.out.show(&value, |text| {
                text.fields(&[
                    ("app", app.spec.name.clone()),
                    ("owner", app.spec.owner.to_string()),
                    ("registered", format!("height {}", app.registered_height)),
                    ("updated", format!("height {}", app.updated_height)),
                    (
                        "paid",
                        format!("{} FLUX for {} month(s)", app.paid, app.months),
                    ),
                    ("period from", utc(app.period_start_ms)),
                    ("expires", utc(app.expires_at_ms)),
                ]);
                text.blank();
                show_spec(text, &app.spec);
                text.blank();
                show_placements(text, &detail);
                text.blank();
                show_instances(text, app.spec.instances, &live);
            });
        }
        AppCommand::Logs {
            name,
            component,
            follow,
            tail,
            from,
        } => {
            let read = owner_read(ctx, &name, from.as_deref())?;
            let mut path = format!("/apps/{}/logs?tail={tail}", read.app);
            if let Some(component) = &component {
                if component.is_empty() || !component.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    bail!(
                        "'{component}' is not a component name (component names are letters and digits)"
                    );
                }
                path.push_str(&format!("&component={component}"));
            }
            if follow {
                path.push_str("&follow=true");
                follow_logs(ctx, &read, &path)?;
            } else {
                show_logs(ctx, &read, &path)?;
            }
        }
        AppCommand::Stats { name, from } => {
            let read = owner_read(ctx, &name, from.as_deref())?;
            show_stats(ctx, &read)?;
        }
        AppCommand::Remove { name, from, tx } => {
            let owner = ctx.keystore().load(&from)?;
            let key = owner.secret()?;
            let client = ctx.client()?;
            let app = get_app(&client, &name)?;
            if app.spec.owner != owner.address {
                bail!(
                    "app '{name}' is owned by {}, not by {from} ({}); only its owner can remove it",
                    app.spec.owner,
                    owner.address
                );
            }
            let prepared = submit::prepare(&client, &key)?;
            let signed = prepared.sign(&key, TxBody::AppRemove { name }, tx.fee);
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
    }
    Ok(())
}

/// Reads and converts a spec file; errors name the file and the field.
fn read_spec(path: &Path, default_owner: Address) -> Result<ParsedSpec> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read app spec {}", path.display()))?
        .len();
    if size > SPEC_FILE_BYTES_MAX {
        bail!(
            "{} is {size} bytes; an app spec is at most {SPEC_FILE_BYTES_MAX} bytes",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read app spec {}", path.display()))?;
    if flux_types::compose::is_compose(&text) {
        return flux_types::compose::parse_compose(&text, default_owner)
            .map_err(|e| anyhow!("{}: invalid compose file: {e}", path.display()));
    }
    parse_spec(&text, default_owner)
        .map_err(|e| anyhow!("{}: invalid app spec: {e}", path.display()))
}

/// Applies the network's rules to a spec; errors name the file and the field.
fn check_spec(path: &Path, spec: &AppSpec, params: &Params) -> Result<()> {
    spec.validate(&params.app_limits)
        .map_err(|e| anyhow!("{}: invalid app spec: {e}", path.display()))
}

/// The node's params, or the devnet defaults (with a note) when no node answers.
fn params_or_defaults(ctx: &Context) -> Result<(Params, String)> {
    let client = ctx.client()?;
    match client.params() {
        Ok(params) => Ok((
            params,
            format!("rules of the node at {}", client.node_url()),
        )),
        Err(error) => {
            let error = anyhow!(error);
            if !is_unreachable(&error) {
                return Err(error);
            }
            ctx.out.note(&format!(
                "no node answers at {}; using the devnet defaults for the network's rules and prices",
                client.node_url()
            ));
            Ok((Params::devnet(), "devnet default rules".to_string()))
        }
    }
}

/// What the hosting nodes say of an app's instances.
struct Live {
    instances: Vec<serde_json::Value>,
    /// Nodes that did not answer, with the reason.
    unreachable: Vec<String>,
}

/// Asks every registered node (at its registered endpoint) for the status
/// of the app's instances it runs.
fn live_instances(client: &Client, app: &str) -> Result<Live> {
    let nodes = crate::cmd::node::list_nodes(client)?;
    let mut live = Live {
        instances: Vec::new(),
        unreachable: Vec::new(),
    };
    for node in nodes {
        let url = format!("http://{}", node.endpoint);
        let answer = Client::with_timeout(&url, std::time::Duration::from_millis(2_000))
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.get_value(&format!("/instances?app={app}"))
                    .map_err(|e| e.to_string())
            });
        match answer {
            Ok(value) => live.instances.extend(list_items(value, "instances")),
            Err(error) => live.unreachable.push(format!("{} ({error})", node.id)),
        }
    }
    live.instances.sort_by_key(|i| {
        (
            i["instance"].as_u64().unwrap_or(0),
            i["component"].as_str().unwrap_or("").to_string(),
        )
    });
    Ok(live)
}

fn show_instances(text: &mut Text, wanted: u32, live: &Live) {
    let running = live
        .instances
        .iter()
        .filter(|i| i["phase"] == "running")
        .count();
    text.line(format!(
        "instances: {wanted} wanted; {running} component instance(s) running"
    ));
    let rows: Vec<Vec<String>> = live
        .instances
        .iter()
        .map(|i| {
            let ports: Vec<String> = i["ports"]
                .as_array()
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| {
                            format!(
                                "{}:{}->{}",
                                i["host_ip"].as_str().unwrap_or(""),
                                p["host_port"],
                                p["container_port"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let field = |name: &str| match &i[name] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".to_string(),
                other => other.to_string(),
            };
            vec![
                field("instance"),
                field("component"),
                crate::output::short(&field("node")),
                field("phase"),
                field("health"),
                field("restarts"),
                ports.join(","),
                match &i["reason"] {
                    serde_json::Value::Null => field("health_reason"),
                    _ => field("reason"),
                },
            ]
        })
        .collect();
    text.table(
        &[
            "INSTANCE",
            "COMPONENT",
            "NODE",
            "STATE",
            "HEALTH",
            "RESTARTS",
            "PORTS",
            "REASON",
        ],
        &rows,
        "no instance reported by any node",
    );
    for node in &live.unreachable {
        text.line(format!("node {node} did not answer"));
    }
}

/// What an owner-only read needs: the app, its owner, the nodes that host
/// it, the key that signs and the network it signs for.
struct OwnerRead {
    app: String,
    owner: Address,
    /// Hosting nodes and their API URLs, each once.
    nodes: Vec<(Address, String)>,
    key: SecretKey,
    chain_id: String,
}

fn owner_read(ctx: &Context, name: &str, from: Option<&str>) -> Result<OwnerRead> {
    let client = ctx.client()?;
    let detail: AppDetailView = get_app_as(&client, name)?;
    let app = detail.record.spec.name.clone();
    let owner = detail.record.spec.owner;
    let key = match from {
        Some(from) => ctx.keystore().load(from)?.secret()?,
        None => {
            let keystore = ctx.keystore();
            let (keys, _) = keystore.list();
            keys.into_iter()
                .find(|k| k.address == owner)
                .ok_or_else(|| {
                    anyhow!(
                        "no key in {} owns app '{app}' ({owner}); only its owner may read its logs and stats: \
                         import the owner's key, or name it with --from KEY",
                        keystore.dir().display()
                    )
                })?
                .secret()?
        }
    };
    let chain_id = client.status()?.chain_id;
    let mut nodes: Vec<(Address, String)> = detail
        .instances
        .iter()
        .filter_map(|p| Some((p.node?, format!("http://{}", p.node_endpoint.as_ref()?))))
        .collect();
    nodes.sort();
    nodes.dedup();
    if nodes.is_empty() {
        ctx.out.note(&format!(
            "no instance of '{app}' is placed on a node yet (`flux app status {app}` shows why)"
        ));
    }
    Ok(OwnerRead {
        app,
        owner,
        nodes,
        key,
        chain_id,
    })
}

/// The error for a node's refusal of a signed read of `what`.
fn refused(read: &OwnerRead, what: &str, node: &Address, error: ClientError) -> anyhow::Error {
    match (error.status(), error.code()) {
        (Some(403), Some("not_owner")) => anyhow!(
            "the node refused: only the owner of {} ({}) may read its {what}; you signed with {}",
            read.app,
            read.owner,
            read.key.address()
        ),
        (Some(401), code) => anyhow!(
            "node {node} refused the signature ({}): {error}",
            code.unwrap_or("unauthorized")
        ),
        _ => anyhow!("node {node}: {error}"),
    }
}

/// One log line as printed: node, instance and component, then the text.
fn log_line_text(line: &LogLine) -> String {
    let prefix = format!(
        "{} #{}/{}",
        crate::output::short(&line.node),
        line.instance,
        line.component
    );
    match &line.error {
        Some(error) => format!("{prefix} | (no output: {error})"),
        None => format!("{prefix} | {}", line.text),
    }
}

fn parse_log_line(text: &str) -> Option<LogLine> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// Past output of every hosting node, one node after the other.
fn show_logs(ctx: &Context, read: &OwnerRead, path: &str) -> Result<()> {
    let mut lines: Vec<LogLine> = Vec::new();
    let mut unreachable = Vec::new();
    for (node, url) in &read.nodes {
        let client = Client::with_timeout(url, Duration::from_millis(LOGS_TIMEOUT_MS))?;
        let body = client
            .get_signed(path, &read.key, &read.chain_id)
            .and_then(|response| {
                response.text().map_err(|e| ClientError::BadAnswer {
                    url: url.clone(),
                    reason: e.to_string(),
                })
            });
        match body {
            Ok(body) => lines.extend(body.lines().filter_map(parse_log_line)),
            Err(ClientError::Unreachable { reason, .. }) => {
                unreachable.push(format!("{node} ({reason})"));
            }
            Err(error) => return Err(refused(read, "logs", node, error)),
        }
    }
    for node in &unreachable {
        ctx.out.note(&format!("node {node} did not answer"));
    }
    ctx.out.show(&lines, |text| {
        for line in &lines {
            text.line(log_line_text(line));
        }
    });
    Ok(())
}

/// What a node's follow thread reports.
enum Followed {
    Line(LogLine),
    Failed(Address, ClientError),
    Ended,
}

/// New output of every hosting node at once, printed as it comes, until
/// Ctrl-C or until every node's stream ends.
fn follow_logs(ctx: &Context, read: &OwnerRead, path: &str) -> Result<()> {
    let (sender, receiver) = std::sync::mpsc::channel::<Followed>();
    for (node, url) in &read.nodes {
        let client = Client::streaming(url)?;
        let sender = sender.clone();
        let (node, path, key, chain_id) = (
            *node,
            path.to_string(),
            read.key.clone(),
            read.chain_id.clone(),
        );
        std::thread::spawn(move || {
            match client.get_signed(&path, &key, &chain_id) {
                Ok(response) => {
                    for text in std::io::BufReader::new(response).lines() {
                        let Ok(text) = text else { break };
                        if let Some(line) = parse_log_line(&text)
                            && sender.send(Followed::Line(line)).is_err()
                        {
                            return;
                        }
                    }
                }
                Err(error) => {
                    let _ = sender.send(Followed::Failed(node, error));
                }
            }
            let _ = sender.send(Followed::Ended);
        });
    }
    drop(sender);
    let mut open = read.nodes.len();
    let mut stdout = std::io::stdout().lock();
    while open > 0 {
        let Ok(event) = receiver.recv() else { break };
        match event {
            Followed::Line(line) => {
                let text = if ctx.out.is_json() {
                    serde_json::to_string(&line)?
                } else {
                    log_line_text(&line)
                };
                writeln!(stdout, "{text}")?;
                stdout.flush()?;
            }
            Followed::Failed(node, ClientError::Unreachable { reason, .. }) => {
                ctx.out
                    .note(&format!("node {node} did not answer ({reason})"));
            }
            Followed::Failed(node, error) => return Err(refused(read, "logs", &node, error)),
            Followed::Ended => open -= 1,
        }
    }
    Ok(())
}

/// One instance's reading, with the node that gave it.
#[derive(Debug, serde::Serialize)]
struct NodeInstanceStats {
    node: String,
    #[serde(flatten)]
    stats: InstanceStats,
}

fn show_stats(ctx: &Context, read: &OwnerRead) -> Result<()> {
    let mut instances: Vec<NodeInstanceStats> = Vec::new();
    let mut unreachable = Vec::new();
    for (node, url) in &read.nodes {
        let client = Client::with_timeout(url, Duration::from_millis(STATS_TIMEOUT_MS))?;
        let view = client
            .get_signed(
                &format!("/apps/{}/stats", read.app),
                &read.key,
                &read.chain_id,
            )
            .and_then(|response| {
                response
                    .json::<StatsView>()
                    .map_err(|e| ClientError::BadAnswer {
                        url: url.clone(),
                        reason: e.to_string(),
                    })
            });
        match view {
            Ok(view) => {
                instances.extend(view.instances.into_iter().map(|stats| NodeInstanceStats {
                    node: view.node.clone(),
                    stats,
                }))
            }
            Err(ClientError::Unreachable { reason, .. }) => {
                unreachable.push(format!("{node} ({reason})"));
            }
            Err(error) => return Err(refused(read, "stats", node, error)),
        }
    }
    instances.sort_by(|a, b| {
        (a.stats.instance, &a.stats.component).cmp(&(b.stats.instance, &b.stats.component))
    });
    let value = json!({
        "app": read.app,
        "instances": instances,
        "unreachable": unreachable,
    });
    ctx.out.show(&value, |text| {
        let rows: Vec<Vec<String>> = instances
            .iter()
            .map(|i| {
                let s = &i.stats;
                let (cpu, memory, rx, tx) = match &s.stats {
                    Some(stats) => (
                        format!("{:.1}%", stats.cpu_percent),
                        if stats.memory_limit_bytes > 0 {
                            format!(
                                "{} / {}",
                                bytes(stats.memory_bytes),
                                bytes(stats.memory_limit_bytes)
                            )
                        } else {
                            bytes(stats.memory_bytes)
                        },
                        bytes(stats.network_rx_bytes),
                        bytes(stats.network_tx_bytes),
                    ),
                    None => {
                        let why = s.error.clone().unwrap_or_else(|| "-".to_string());
                        (why, "-".into(), "-".into(), "-".into())
                    }
                };
                vec![
                    s.instance.to_string(),
                    s.component.clone(),
                    crate::output::short(&i.node),
                    cpu,
                    memory,
                    rx,
                    tx,
                ]
            })
            .collect();
        text.table(
            &[
                "INSTANCE",
                "COMPONENT",
                "NODE",
                "CPU",
                "MEMORY (USED / LIMIT)",
                "NET RX",
                "NET TX",
            ],
            &rows,
            "no instance reported by any node",
        );
        for node in &unreachable {
            text.line(format!("node {node} did not answer"));
        }
    });
    Ok(())
}

/// A byte count for people: B, KiB, MiB or GiB.
fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An app as `GET /apps/{name}` shows it: the record and where the ledger
/// placed its instances.
#[derive(Debug, serde::Deserialize)]
struct AppDetailView {
    #[serde(flatten)]
    record: AppRecord,
    placed: u32,
    instances: Vec<PlacementView>,
}

/// Where the ledger placed one instance.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct PlacementView {
    instance: u32,
    node: Option<Address>,
    node_endpoint: Option<String>,
    addresses: Vec<String>,
}

fn show_placements(text: &mut Text, detail: &AppDetailView) {
    let wanted = detail.record.spec.instances;
    let summary = if detail.placed < wanted {
        format!(
            "placed: {} of {wanted}; the others wait for a confirmed node with room that the app's rules allow",
            detail.placed
        )
    } else {
        format!("placed: {} of {wanted}", detail.placed)
    };
    text.line(summary);
    let rows: Vec<Vec<String>> = detail
        .instances
        .iter()
        .map(|p| {
            let endpoint = if p.addresses.is_empty() {
                p.node_endpoint.clone().unwrap_or_else(|| "-".to_string())
            } else {
                p.addresses.join(" ")
            };
            vec![
                p.instance.to_string(),
                p.node.map_or_else(|| "-".to_string(), |n| n.to_string()),
                endpoint,
            ]
        })
        .collect();
    text.table(&["INSTANCE", "NODE", "ENDPOINT"], &rows, "");
}

fn get_app(client: &Client, name: &str) -> Result<AppRecord> {
    get_app_as(client, name)
}

fn get_app_as<T: serde::de::DeserializeOwned>(client: &Client, name: &str) -> Result<T> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("'{name}' is not an app name (app names are letters and digits)");
    }
    client.get(&format!("/apps/{name}")).map_err(|e| {
        let e = anyhow!(e);
        if api_status(&e) == Some(404) {
            anyhow!(
                "no app named '{name}' on the node at {}; `flux app list` shows the registered apps",
                client.node_url()
            )
        } else {
            e
        }
    })
}

fn show_spec(text: &mut Text, spec: &AppSpec) {
    let owner = if spec.owner == UNSPECIFIED_OWNER {
        "the deploying key".to_string()
    } else {
        spec.owner.to_string()
    };
    text.fields(&[
        ("name", spec.name.clone()),
        ("owner", owner),
        ("instances", spec.instances.to_string()),
    ]);
    let rows: Vec<Vec<String>> = spec
        .components
        .iter()
        .map(|c| {
            let ports = c
                .ports
                .iter()
                .zip(&c.container_ports)
                .map(|(p, cp)| format!("{p}->{cp}"))
                .collect::<Vec<_>>()
                .join(",");
            vec![
                c.name.clone(),
                c.repotag.clone(),
                format!("{}", f64::from(c.cpu_tenths) / 10.0),
                format!("{} MB", c.ram_mb),
                format!("{} GB", c.hdd_gb),
                ports,
            ]
        })
        .collect();
    text.table(
        &["COMPONENT", "IMAGE", "CPU", "RAM", "HDD", "PORTS"],
        &rows,
        "no components",
    );
}

fn show_quote(text: &mut Text, spec: &AppSpec, quote: &Quote) {
    text.fields(&[
        ("app", spec.name.clone()),
        (
            "per instance",
            format!("{} FLUX per month", quote.per_instance_month),
        ),
        ("instances", spec.instances.to_string()),
        ("extras", format!("{} FLUX per month", quote.extras_month)),
        ("per month", format!("{} FLUX", quote.per_month)),
        (
            "total",
            format!("{} FLUX for {} month(s)", quote.total, quote.months),
        ),
    ]);
}
