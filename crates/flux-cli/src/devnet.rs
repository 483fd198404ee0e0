//! `flux devnet`: a local development network of node processes.
//!
//! Layout of a devnet directory:
//!
//! ```text
//! DIR/genesis.json          written last: its presence means the devnet is complete
//! DIR/node-I/config.toml    the node's configuration (see `flux node run --help`)
//! DIR/node-I/node_key.json  the node's own key, mode 0600
//! DIR/node-I/data/          the node's database
//! DIR/node-I/node.log       what the node process writes
//! DIR/node-I/pid            the node's process id while `up` runs it
//! DIR/node-I/restart        a request to `up` to start the node again
//! DIR/up.pid                the process id of `up` while it runs
//! ```
//!
//! Node I listens on its own loopback address, 127.0.0.(I+1) by default,
//! with the standard ports (API 16127, peer-to-peer 16125), as separate
//! machines would. Every node is a genesis validator; the nodes find each
//! other through the genesis, which lists their keys and addresses.
//!
//! `up` runs each node as a child process (`flux node run --config …`) in
//! its own process group, so that the parent decides the order of shutdown;
//! on Linux a child also receives SIGTERM if the parent dies without
//! cleaning up. Running `up` again on the same directory resumes the devnet.
//!
//! A node that exits while the devnet runs (killed, crashed) is reported and
//! the others carry on; `restart NODE` asks the running `up` to start it
//! again, as its child like the others, so that Ctrl-C stops it too. `up`
//! ends with an error once every node is gone.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};
use flux_types::{Amount, Genesis, GenesisAccount, GenesisValidator, Params, SecretKey};
use serde::Serialize;

use crate::client::Client;
use crate::daemon::{
    ApiSection, BenchmarkSection, Measure, MempoolSection, NodeFileConfig, P2pSection, read_genesis,
};
use crate::keystore::{Ensured, KeyFile, create_private_dir, write_key_file};
use crate::{Context, DEFAULT_NODE_URL};

/// The devnet's chain id.
const CHAIN_ID: &str = "flux-devnet";
/// Default API port of every node.
const API_PORT_DEFAULT: u16 = 16127;
/// Gateway port of every node.
const GATEWAY_PORT: u16 = flux_node::GATEWAY_HTTP_PORT_DEFAULT;
/// Peer-to-peer port of every node.
const P2P_PORT: u16 = flux_chain::consensus::P2P_PORT_DEFAULT;
/// Nodes of a new devnet unless `--nodes` says otherwise.
const NODES_DEFAULT: usize = 4;
/// Development keys funded in every devnet, at least.
const DEV_KEYS_MIN: usize = 4;
/// Balance of each development key.
const DEV_KEY_BALANCE: Amount = Amount::flux(1_000_000);
/// Most nodes a devnet may have (one loopback address each).
const NODES_MAX: usize = 64;
/// Time a stopping node gets before it is killed.
const STOP_TIMEOUT_MS: u64 = 30_000;
/// Interval between checks of the children and the signals.
const POLL_INTERVAL_MS: u64 = 100;
/// Lines of a node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

#[derive(Debug, Subcommand)]
pub(crate) enum DevnetCommand {
    /// Start a local devnet (or resume the one in --dir) in the foreground until Ctrl-C
    Up(UpArgs),
    /// Write a devnet's genesis, keys and node configurations without starting it
    Init(InitArgs),
    /// Show each node of a devnet: height, last block and peers
    Status {
        /// The devnet's directory [default: HOME/devnet]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Start again a node of the running devnet that exited (killed, crashed)
    Restart {
        /// The node: its name (node-2) or its index (2)
        node: String,
        /// The devnet's directory [default: HOME/devnet]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Seconds to wait for the node's API to answer
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout_secs: u64,
    },
}

#[derive(Debug, Clone, Args)]
pub(crate) struct InitArgs {
    /// Number of nodes, all validators [default: 4]
    #[arg(long)]
    nodes: Option<usize>,
    /// The devnet's directory [default: HOME/devnet]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// API address of node 0; node I listens on this address plus I [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    api_host: Option<Ipv4Addr>,
    /// API port of every node [default: 16127]
    #[arg(long, value_name = "PORT")]
    api_port: Option<u16>,
    /// Interval between blocks [default: the devnet params, 1000]
    #[arg(long, value_name = "MS")]
    block_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    init: InitArgs,
    /// Seconds to wait for every node's API to answer
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    start_timeout_secs: u64,
}

pub(crate) fn run(ctx: &Context, command: DevnetCommand) -> Result<()> {
    match command {
        DevnetCommand::Up(args) => up(ctx, &args),
        DevnetCommand::Init(args) => {
            let (devnet, created) = Devnet::open_or_create(ctx, &args)?;
            let value = devnet.summary(!created, &[]);
            ctx.out.show(&value, |text| {
                let verb = if created { "wrote" } else { "found" };
                text.line(format!(
                    "{verb} a devnet of {} node(s) in {}",
                    devnet.nodes.len(),
                    devnet.dir.display()
                ));
                for node in &devnet.nodes {
                    text.line(format!("  {}", node.config_path.display()));
                }
                text.line("start it with `flux devnet up` (same --dir), or run each node with `flux node run --config FILE`");
            });
            Ok(())
        }
        DevnetCommand::Status { dir } => status(ctx, dir),
        DevnetCommand::Restart {
            node,
            dir,
            timeout_secs,
        } => restart(ctx, dir, &node, timeout_secs),
    }
}

/// A devnet on disk.
struct Devnet {
    dir: PathBuf,
    genesis: Genesis,
    nodes: Vec<DevnetNode>,
    dev_keys: Vec<(String, SecretKey)>,
}

struct DevnetNode {
    name: String,
    dir: PathBuf,
    config_path: PathBuf,
    config: NodeFileConfig,
}

impl DevnetNode {
    fn api_url(&self) -> String {
        format!("http://{}", self.config.api.listen)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("pid")
    }

    fn restart_path(&self) -> PathBuf {
        self.dir.join("restart")
    }
}

#[derive(Serialize)]
struct NodeSummary {
    name: String,
    api: String,
    dashboard: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    p2p: Option<SocketAddr>,
    /// The gateway's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    config: PathBuf,
    log: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
}

#[derive(Serialize)]
struct KeySummary {
    name: String,
    address: String,
}

#[derive(Serialize)]
struct Summary {
    dir: PathBuf,
    chain_id: String,
    network_domain: String,
    resumed: bool,
    nodes: Vec<NodeSummary>,
    dev_keys: Vec<KeySummary>,
}

fn default_dir(ctx: &Context) -> PathBuf {
    ctx.home.join("devnet")
}

fn dev_key_name(index: usize) -> String {
    format!("dev{index}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Devnet {
    /// Loads the devnet in `args.dir`, or creates one there if the directory
    /// holds none. Installs the development keys in the keystore either way.
    fn open_or_create(ctx: &Context, args: &InitArgs) -> Result<(Devnet, bool)> {
        let dir = args.dir.clone().unwrap_or_else(|| default_dir(ctx));
        let (devnet, created) = if dir.join("genesis.json").exists() {
            let devnet = Devnet::open(&dir)?;
            devnet.check_flags(args)?;
            (devnet, false)
        } else {
            (Devnet::create(ctx, &dir, args)?, true)
        };
        let keystore = ctx.keystore();
        for (name, key) in &devnet.dev_keys {
            if keystore.ensure(name, key)? == Ensured::Created && !ctx.out.is_json() {
                ctx.out.note(&format!(
                    "added development key {name} ({}) to {}",
                    key.address(),
                    keystore.dir().display()
                ));
            }
        }
        Ok((devnet, created))
    }

    fn open(dir: &Path) -> Result<Devnet> {
        let genesis = read_genesis(&dir.join("genesis.json"))?;
        let mut nodes = Vec::new();
        for index in 0..NODES_MAX {
            let node_dir = dir.join(format!("node-{index}"));
            let config_path = node_dir.join("config.toml");
            if !config_path.exists() {
                break;
            }
            let config = NodeFileConfig::read(&config_path)?;
            nodes.push(DevnetNode {
                name: format!("node-{index}"),
                dir: node_dir,
                config_path,
                config,
            });
        }
        if nodes.is_empty() {
            bail!(
                "{} has a genesis but no node-0/config.toml; remove the directory to start a new devnet",
                dir.display()
            );
        }
        let mut dev_keys = Vec::new();
        for index in 0..NODES_MAX.max(DEV_KEYS_MIN) {
            let name = dev_key_name(index);
            let key = SecretKey::development(&name);
            if !genesis.accounts.iter().any(|a| a.address == key.address()) {
                break;
            }
            dev_keys.push((name, key));
        }
        Ok(Devnet {
            dir: dir.to_path_buf(),
            genesis,
            nodes,
            dev_keys,
        })
    }

    /// Refuses flags that contradict the devnet being resumed, rather than
    /// silently ignoring them.
    fn check_flags(&self, args: &InitArgs) -> Result<()> {
        let again =
            "drop the flag to resume it as it is, or pass a new --dir to start another devnet";
        if let Some(nodes) = args.nodes
            && nodes != self.nodes.len()
        {
            bail!(
                "the devnet in {} has {} node(s), not {nodes}; {again}",
                self.dir.display(),
                self.nodes.len()
            );
        }
        let listen = self.nodes[0].config.api.listen;
        if let Some(host) = args.api_host
            && listen.ip() != std::net::IpAddr::V4(host)
        {
            bail!(
                "the devnet in {} serves its API at {listen}, not on {host}; {again}",
                self.dir.display()
            );
        }
        if let Some(port) = args.api_port
            && listen.port() != port
        {
            bail!(
                "the devnet in {} serves its API at {listen}, not on port {port}; {again}",
                self.dir.display()
            );
        }
        if let Some(interval) = args.block_interval_ms
            && interval != self.genesis.params.block_interval_ms
        {
            bail!(
                "the devnet in {} makes a block every {} ms, not {interval}; {again}",
                self.dir.display(),
                self.genesis.params.block_interval_ms
            );
        }
        Ok(())
    }

    fn create(ctx: &Context, dir: &Path, args: &InitArgs) -> Result<Devnet> {
        let count = args.nodes.unwrap_or(NODES_DEFAULT);
        if count == 0 || count > NODES_MAX {
            bail!("a devnet has 1 to {NODES_MAX} nodes, not {count}");
        }
        if let Ok(mut entries) = fs::read_dir(dir)
            && entries.next().is_some()
        {
            bail!(
                "{} exists and is not empty, but holds no devnet (no genesis.json); remove it or choose another --dir",
                dir.display()
            );
        }
        let base = args.api_host.unwrap_or(Ipv4Addr::new(127, 0, 0, 1));
        let port = args.api_port.unwrap_or(API_PORT_DEFAULT);
        let mut params = Params::devnet();
        if let Some(interval) = args.block_interval_ms {
            if interval == 0 {
                bail!("--block-interval-ms must be at least 1");
            }
            params.block_interval_ms = interval;
            params.block_interval_busy_ms = params.block_interval_busy_ms.min(interval);
        }

        let dev_keys: Vec<(String, SecretKey)> = (0..count.max(DEV_KEYS_MIN))
            .map(|i| {
                let name = dev_key_name(i);
                let key = SecretKey::development(&name);
                (name, key)
            })
            .collect();
        // Check the keystore before writing anything, so a conflict leaves no half-made devnet.
        let keystore = ctx.keystore();
        for (name, key) in &dev_keys {
            keystore.check_ensure(name, key)?;
        }

        create_private_dir(dir)?;
        let mut nodes = Vec::with_capacity(count);
        let mut validators = Vec::with_capacity(count);
        for index in 0..count {
            let host = u32::from(base)
                .checked_add(index as u32)
                .map(Ipv4Addr::from)
                .ok_or_else(|| anyhow!("--api-host {base} leaves no address for node {index}"))?;
            let name = format!("node-{index}");
            let node_dir = dir.join(&name);
            create_private_dir(&node_dir)?;
            let node_key = SecretKey::generate();
            write_key_file(
                &node_dir.join("node_key.json"),
                &KeyFile::new(&name, &node_key),
            )?;
            let config = NodeFileConfig {
                data_dir: PathBuf::from("data"),
                genesis: PathBuf::from("../genesis.json"),
                node_key: PathBuf::from("node_key.json"),
                block_interval_ms: None,
                log: Some("info".to_string()),
                driver: None,
                api: ApiSection {
                    listen: SocketAddr::from((host, port)),
                    connections_max: None,
                    body_bytes_max: None,
                    request_timeout_ms: None,
                },
                mempool: MempoolSection::default(),
                p2p: Some(P2pSection {
                    listen: SocketAddr::from((host, P2P_PORT)),
                    bootstrap: Vec::new(),
                    worker_threads: None,
                }),
                // One HTTP thread: a devnet runs several nodes on one machine.
                // TCP forwarding as on any node: an app's published ports
                // answer on every node's address, like separate machines.
                gateway: Some(crate::daemon::GatewaySection {
                    listen: Some(SocketAddr::from((host, GATEWAY_PORT))),
                    workers: Some(1),
                    tcp_forwarding: Some(true),
                    ..crate::daemon::GatewaySection::default()
                }),
                // A devnet's thresholds are small: a quick measurement
                // confirms its nodes within a block or two of registering.
                benchmark: Some(BenchmarkSection {
                    measure: Some(Measure::Quick),
                    ..BenchmarkSection::default()
                }),
            };
            let config_path = node_dir.join("config.toml");
            let text = format!(
                "# Node {index} of the devnet in this directory; see `flux node run --help`.\n{}",
                toml::to_string(&config)?
            );
            write_new(&config_path, &text)?;
            validators.push(GenesisValidator {
                name: name.clone(),
                public_key: node_key.public_key(),
                p2p_endpoint: SocketAddr::from((host, P2P_PORT)).to_string(),
                api_endpoint: config.api.listen.to_string(),
            });
            nodes.push(DevnetNode {
                name,
                dir: node_dir,
                config_path,
                config,
            });
        }
        let genesis = Genesis {
            chain_id: CHAIN_ID.to_string(),
            genesis_time_ms: now_ms(),
            params,
            accounts: dev_keys
                .iter()
                .map(|(_, key)| GenesisAccount {
                    address: key.address(),
                    balance: DEV_KEY_BALANCE,
                })
                .collect(),
            validators,
        };
        genesis
            .validate()
            .map_err(|e| anyhow!("the devnet genesis is invalid: {e}"))?;
        // Written last, through a rename: a genesis on disk means a complete devnet.
        let genesis_path = dir.join("genesis.json");
        let partial = dir.join("genesis.json.partial");
        let _ = fs::remove_file(&partial);
        write_new(&partial, &(serde_json::to_string_pretty(&genesis)? + "\n"))?;
        fs::rename(&partial, &genesis_path)
            .with_context(|| format!("cannot write {}", genesis_path.display()))?;
        Ok(Devnet {
            dir: dir.to_path_buf(),
            genesis,
            nodes,
            dev_keys,
        })
    }

    fn summary(&self, resumed: bool, pids: &[u32]) -> Summary {
        Summary {
            dir: self.dir.clone(),
            chain_id: self.genesis.chain_id.clone(),
            network_domain: self.genesis.params.network_domain.clone(),
            resumed,
            nodes: self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, node)| NodeSummary {
                    name: node.name.clone(),
                    api: format!("{}/api/v1", node.api_url()),
                    dashboard: format!("{}/", node.api_url()),
                    p2p: node.config.p2p.as_ref().map(|p2p| p2p.listen),
                    gateway: node.config.gateway.as_ref().map(|gateway| {
                        format!("http://{}/", gateway.listen_addr(node.config.api.listen))
                    }),
                    config: node.config_path.clone(),
                    log: node.log_path(),
                    pid: pids.get(i).copied(),
                })
                .collect(),
            dev_keys: self
                .dev_keys
                .iter()
                .map(|(name, key)| KeySummary {
                    name: name.clone(),
                    address: key.address().to_string(),
                })
                .collect(),
        }
    }
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Counts SIGINT and SIGTERM received by this process.
struct Signals(Arc<AtomicUsize>);

impl Signals {
    /// Handles SIGINT and SIGTERM on a background thread from now on.
    fn install() -> Result<Signals> {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        std::thread::Builder::new()
            .name("flux-signals".into())
            .spawn(move || {
                use tokio::signal::unix::{SignalKind, signal};
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let handlers = signal(SignalKind::interrupt())
                        .and_then(|i| signal(SignalKind::terminate()).map(|t| (i, t)));
                    let (mut interrupt, mut terminate) = match handlers {
                        Ok(handlers) => handlers,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    loop {
                        tokio::select! {
                            _ = interrupt.recv() => {}
                            _ = terminate.recv() => {}
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                });
            })
            .context("cannot start the signal handler")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the signal handler did not start"))?
            .context("cannot handle SIGINT and SIGTERM")?;
        Ok(Signals(count))
    }

    fn received(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A node process of the devnet.
struct Running {
    name: String,
    api: String,
    log: PathBuf,
    pid_path: PathBuf,
    child: Child,
}

/// The node processes; any still running when this is dropped are killed.
struct Children {
    running: Vec<Running>,
}

impl Children {
    /// Starts `node` and records its process id in its pid file.
    fn spawn(&mut self, node: &DevnetNode) -> Result<u32> {
        let child = spawn_node(node)?;
        let pid = child.id();
        fs::write(node.pid_path(), format!("{pid}\n"))
            .with_context(|| format!("cannot write {}", node.pid_path().display()))?;
        self.running.push(Running {
            name: node.name.clone(),
            api: node.api_url(),
            log: node.log_path(),
            pid_path: node.pid_path(),
            child,
        });
        Ok(pid)
    }

    fn is_running(&self, name: &str) -> bool {
        self.running.iter().any(|r| r.name == name)
    }

    /// Asks every node to stop (SIGTERM), waits for them, and kills those
    /// that take too long or when a second signal arrives.
    fn stop(&mut self, signals: &Signals, out: &crate::output::Output) {
        let received = signals.received();
        for running in &self.running {
            terminate(&running.child);
        }
        let spinner = out.spinner("stopping the devnet");
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            self.running.retain_mut(|running| {
                let exited = !matches!(running.child.try_wait(), Ok(None));
                if exited {
                    let _ = fs::remove_file(&running.pid_path);
                }
                !exited
            });
            if self.running.is_empty() {
                break;
            }
            if Instant::now() >= deadline || signals.received() > received {
                for running in &mut self.running {
                    spinner.set_message(format!("killing {}", running.name));
                    let _ = running.child.kill();
                    let _ = running.child.wait();
                    let _ = fs::remove_file(&running.pid_path);
                }
                self.running.clear();
                break;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// The first node that has exited, with its status.
    fn exited(&mut self) -> Option<(Running, ExitStatus)> {
        let position = self
            .running
            .iter_mut()
            .position(|running| !matches!(running.child.try_wait(), Ok(None)))?;
        let mut running = self.running.remove(position);
        let _ = fs::remove_file(&running.pid_path);
        let status = running.child.wait().ok()?;
        Some((running, status))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for running in &mut self.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
            let _ = fs::remove_file(&running.pid_path);
        }
    }
}

/// `DIR/up.pid` while `up` runs; removed when it ends.
struct UpPidFile(PathBuf);

impl UpPidFile {
    fn write(dir: &Path) -> Result<UpPidFile> {
        let path = dir.join("up.pid");
        fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(UpPidFile(path))
    }
}

impl Drop for UpPidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The process id in a pid file, if that process is alive.
fn live_pid(path: &Path) -> Option<u32> {
    let pid: libc::pid_t = fs::read_to_string(path).ok()?.trim().parse().ok()?;
    if pid <= 0 {
        return None;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A zombie has exited: it only waits for its parent to reap it.
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s == "Z"))
        })
        .unwrap_or(false);
    (alive && !zombie).then(|| pid.unsigned_abs())
}

fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the id of a child this process spawned and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

fn spawn_node(node: &DevnetNode) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find the flux executable")?;
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.log_path())
        .with_context(|| format!("cannot open {}", node.log_path().display()))?;
    let _ = writeln!(
        log,
        "--- flux devnet up: starting {} at {} ---",
        node.name,
        crate::output::utc(now_ms())
    );
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("run")
        .arg("--config")
        .arg(&node.config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the terminal reaches only this
        // process, which then stops the nodes in order.
        .process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (prctl, getppid).
        unsafe {
            command.pre_exec(move || {
                // Stop the node if this process dies without stopping it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("the devnet process exited"));
                }
                Ok(())
            });
        }
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", node.name))
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

fn exited_error(running: &Running, status: ExitStatus) -> anyhow::Error {
    anyhow!(
        "{} exited ({status}); last lines of {}:\n{}",
        running.name,
        running.log.display(),
        log_tail(&running.log)
    )
}

fn up(ctx: &Context, args: &UpArgs) -> Result<()> {
    let signals = Signals::install()?;
    let (devnet, created) = Devnet::open_or_create(ctx, &args.init)?;
    for node in &devnet.nodes {
        if Client::with_timeout(&node.api_url(), Duration::from_millis(500))?
            .status()
            .is_ok()
        {
            bail!(
                "a node already answers at {}; is this devnet already running? (`flux devnet status --dir {}`)",
                node.api_url(),
                devnet.dir.display()
            );
        }
    }
    let _up_pid = UpPidFile::write(&devnet.dir)?;
    for node in &devnet.nodes {
        // A request left by a `restart` while no devnet ran.
        let _ = fs::remove_file(node.restart_path());
    }
    let mut children = Children {
        running: Vec::new(),
    };
    let mut pids = Vec::new();
    for node in &devnet.nodes {
        pids.push(children.spawn(node)?);
    }
    let waited = wait_until_ready(
        ctx,
        &devnet,
        &mut children,
        &signals,
        args.start_timeout_secs,
    );
    if let Err(error) = waited {
        children.stop(&signals, &ctx.out);
        return Err(error);
    }
    if signals.received() > 0 {
        children.stop(&signals, &ctx.out);
        return Ok(());
    }
    if let Err(error) =
        register_nodes(ctx, &devnet, &signals).and_then(|()| wait_confirmed(ctx, &devnet, &signals))
    {
        children.stop(&signals, &ctx.out);
        return Err(error);
    }
    let summary = devnet.summary(!created, &pids);
    ctx.out.show(&summary, |text| show_up(ctx, text, &summary));
    if !ctx.out.is_json() {
        let driver = crate::daemon::driver_in_use(devnet.nodes[0].config.driver.as_deref());
        ctx.out.note(&if driver == "docker" {
            "apps run with: docker".to_string()
        } else {
            "apps run with: exec (no Docker engine)".to_string()
        });
    }

    let result = supervise(ctx, &devnet, &mut children, &signals);
    children.stop(&signals, &ctx.out);
    if result.is_ok() && !ctx.out.is_json() {
        ctx.out.note(&format!(
            "devnet stopped; `{} devnet up{}` resumes it",
            flux_prefix(ctx),
            dir_flag(ctx, &devnet.dir)
        ));
    }
    result
}

/// Runs until Ctrl-C: reports the nodes that exit, starts again those that
/// `restart` asks for, and fails once no node is left.
fn supervise(
    ctx: &Context,
    devnet: &Devnet,
    children: &mut Children,
    signals: &Signals,
) -> Result<()> {
    loop {
        if signals.received() > 0 {
            return Ok(());
        }
        while let Some((running, status)) = children.exited() {
            ctx.out.note(&format!(
                "{} at {} exited ({status}); log: {}; the other nodes carry on; `{} devnet restart {}{}` starts it again",
                running.name,
                running.api,
                running.log.display(),
                flux_prefix(ctx),
                running.name,
                dir_flag(ctx, &devnet.dir)
            ));
        }
        for node in &devnet.nodes {
            // A node not yet reaped keeps its request for the next round.
            if !node.restart_path().exists() || children.is_running(&node.name) {
                continue;
            }
            let _ = fs::remove_file(node.restart_path());
            match children.spawn(node) {
                Ok(pid) => ctx.out.note(&format!(
                    "{} restarted at {} (pid {pid}); log: {}",
                    node.name,
                    node.api_url(),
                    node.log_path().display()
                )),
                Err(error) => ctx
                    .out
                    .note(&format!("{} did not restart: {error:#}", node.name)),
            }
        }
        if children.running.is_empty() {
            bail!(
                "every node of the devnet has exited; their logs are in {}",
                devnet.dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

fn wait_until_ready(
    ctx: &Context,
    devnet: &Devnet,
    children: &mut Children,
    signals: &Signals,
    timeout_secs: u64,
) -> Result<()> {
    let spinner = ctx.out.spinner(format!(
        "starting {} node(s) of the devnet in {}",
        devnet.nodes.len(),
        devnet.dir.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    for node in &devnet.nodes {
        spinner.set_message(format!("waiting for {} at {}", node.name, node.api_url()));
        let client = Client::with_timeout(&node.api_url(), Duration::from_millis(1_000))?;
        loop {
            if signals.received() > 0 {
                return Ok(());
            }
            if let Some((running, status)) = children.exited() {
                return Err(exited_error(&running, status));
            }
            if client.status().is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer at {} within {timeout_secs} s; last lines of {}:\n{}",
                    node.name,
                    node.api_url(),
                    node.log_path().display(),
                    log_tail(&node.log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS * 2));
        }
    }
    // Answering is not enough: the nodes must also have found each other
    // and finalize blocks together.
    let first = &devnet.nodes[0];
    let client = Client::with_timeout(&first.api_url(), Duration::from_millis(1_000))?;
    let start_height = client.status().map(|s| s.height).unwrap_or(0);
    spinner.set_message(format!(
        "waiting for the {} node(s) to finalize a block",
        devnet.nodes.len()
    ));
    loop {
        if signals.received() > 0 {
            return Ok(());
        }
        if let Some((running, status)) = children.exited() {
            return Err(exited_error(&running, status));
        }
        if client
            .status()
            .is_ok_and(|status| status.height > start_height)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = devnet
                .nodes
                .iter()
                .map(|node| {
                    format!(
                        "last lines of {}:\n{}",
                        node.log_path().display(),
                        log_tail(&node.log_path())
                    )
                })
                .collect();
            bail!(
                "the devnet finalized no block within {timeout_secs} s (height {start_height}); {}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS * 2));
    }
}

/// Region every devnet node registers in.
const DEVNET_REGION: &str = "EU_CZ";

/// Makes every node of the devnet a host: a node not yet registered is
/// registered (Cumulus, its API address as endpoint) with the collateral of
/// development key I for node I. Runs on every start, so a devnet whose
/// registrations were interrupted completes them.
fn register_nodes(ctx: &Context, devnet: &Devnet, signals: &Signals) -> Result<()> {
    let first = &devnet.nodes[0];
    let client = Client::with_timeout(&first.api_url(), Duration::from_millis(5_000))?;
    let mut pending = Vec::new();
    for (index, node) in devnet.nodes.iter().enumerate() {
        let key_path = NodeFileConfig::resolve(&node.config_path, &node.config.node_key);
        let node_key = crate::keystore::read_key_file(&key_path)?.secret()?;
        let id = node_key.address();
        match client.get_value(&format!("/nodes/{id}")) {
            Ok(_) => continue,
            Err(error) if error.status() == Some(404) => {}
            Err(error) => return Err(anyhow!("cannot read node {id}: {error}")),
        }
        let (_, owner) = devnet
            .dev_keys
            .get(index)
            .ok_or_else(|| anyhow!("no development key funds {}", node.name))?;
        let prepared = crate::submit::prepare(&client, owner)?;
        let body = flux_types::TxBody::NodeRegister {
            node_key: node_key.public_key(),
            tier: flux_types::Tier::Cumulus,
            endpoint: node.config.api.listen.to_string(),
            region: DEVNET_REGION.to_string(),
        };
        let signed = prepared.sign(owner, body, None);
        match client.submit(&signed) {
            Ok(hash) => pending.push((node.name.clone(), hash)),
            // Registered meanwhile (a block the first node had not seen yet).
            Err(crate::client::ClientError::Api { code, .. }) if code == "node_exists" => {}
            Err(error) => return Err(anyhow!("cannot register {}: {error}", node.name)),
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let spinner = ctx
        .out
        .spinner(format!("registering {} node(s) as hosts", pending.len()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some((name, hash)) = pending.first().cloned() {
        if signals.received() > 0 {
            return Ok(());
        }
        let status = client.tx_status(&hash)?;
        match status.status.as_str() {
            "committed" => {
                pending.remove(0);
            }
            "rejected" => bail!(
                "registering {name} was rejected: {}",
                status.message.unwrap_or_else(|| "no reason given".into())
            ),
            other => {
                if Instant::now() >= deadline {
                    bail!("registering {name}: transaction {hash} is still {other} after 60 s");
                }
                spinner.set_message(format!("registering {name} ({other})"));
                std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
            }
        }
    }
    Ok(())
}

/// How long `devnet up` waits for its nodes to confirm themselves.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until every node of the devnet is confirmed: each benchmarks
/// itself once registered, and only confirmed nodes get apps. A node whose
/// configuration turns its benchmarks off is not waited for.
fn wait_confirmed(ctx: &Context, devnet: &Devnet, signals: &Signals) -> Result<()> {
    let client = Client::with_timeout(&devnet.nodes[0].api_url(), Duration::from_millis(5_000))?;
    let mut ids = Vec::with_capacity(devnet.nodes.len());
    for node in &devnet.nodes {
        if node.config.benchmark.as_ref().and_then(|b| b.enabled) == Some(false) {
            continue;
        }
        let key_path = NodeFileConfig::resolve(&node.config_path, &node.config.node_key);
        ids.push((
            node.name.clone(),
            crate::keystore::read_key_file(&key_path)?.address,
        ));
    }
    let mut spinner = None;
    let deadline = Instant::now() + CONFIRM_TIMEOUT;
    while let Some((name, id)) = ids.first().cloned() {
        if signals.received() > 0 {
            return Ok(());
        }
        let node = client
            .get_value(&format!("/nodes/{id}"))
            .map_err(|e| anyhow!("cannot read node {id}: {e}"))?;
        if node["status"] == "confirmed" {
            ids.remove(0);
            continue;
        }
        if Instant::now() >= deadline {
            bail!(
                "{name} is not confirmed {} s after registering: {}; see its log",
                CONFIRM_TIMEOUT.as_secs(),
                node["pending_reason"]
            );
        }
        spinner
            .get_or_insert_with(|| ctx.out.spinner("waiting for the nodes' benchmarks"))
            .set_message(format!("waiting for the benchmark of {name}"));
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    Ok(())
}

/// `flux`, with ` --home HOME` when the home is not the default one.
fn flux_prefix(ctx: &Context) -> String {
    if ctx.home_given {
        format!("flux --home {}", ctx.home.display())
    } else {
        "flux".to_string()
    }
}

/// ` --dir DIR` when the devnet is not in the default place.
fn dir_flag(ctx: &Context, dir: &Path) -> String {
    if dir == default_dir(ctx) {
        String::new()
    } else {
        format!(" --dir {}", dir.display())
    }
}

fn show_up(ctx: &Context, text: &mut crate::output::Text, summary: &Summary) {
    let state = if summary.resumed {
        "resumed"
    } else {
        "started"
    };
    text.line(format!(
        "Flux devnet {state}: chain {}, {} node(s), data in {}",
        summary.chain_id,
        summary.nodes.len(),
        summary.dir.display()
    ));
    text.blank();
    for node in &summary.nodes {
        let mut fields = vec![
            ("  API", node.api.clone()),
            ("  dashboard", node.dashboard.clone()),
        ];
        if let Some(p2p) = node.p2p {
            fields.push(("  peer-to-peer", p2p.to_string()));
        }
        if let Some(gateway) = &node.gateway {
            fields.push((
                "  gateway",
                format!("{gateway} (Host: APP.{})", summary.network_domain),
            ));
        }
        fields.push(("  log", node.log.display().to_string()));
        text.line(format!("{}:", node.name)).fields(&fields);
    }
    text.blank();
    text.line("Development keys (well known to everyone: never give them real value):");
    let rows: Vec<Vec<String>> = summary
        .dev_keys
        .iter()
        .map(|k| vec![format!("  {}", k.name), k.address.clone()])
        .collect();
    text.table(&["  KEY", "ADDRESS"], &rows, "  none");
    text.blank();
    let mut flux = flux_prefix(ctx);
    if let Some(node) = summary.nodes.first() {
        let url = node.api.trim_end_matches("/api/v1");
        if url != DEFAULT_NODE_URL {
            flux.push_str(&format!(" --node {url}"));
        }
    }
    text.line("Try, in another terminal (from the repository root for the example spec):");
    for example in [
        "chain status",
        "wallet balance dev0",
        "keys new alice",
        "wallet send --from dev0 --to alice 100",
        "app price examples/hello.json",
        "app deploy examples/hello.json --from dev0",
        "app list",
    ] {
        text.line(format!("  {flux} {example}"));
    }
    if let Some(gateway) = summary.nodes.first().and_then(|n| n.gateway.as_ref()) {
        text.line(format!(
            "  curl -H 'Host: hello.{}' {gateway}",
            summary.network_domain
        ));
    }
    text.blank();
    text.line(format!(
        "Ctrl-C stops the devnet; `{} devnet up{}` resumes it.",
        flux_prefix(ctx),
        dir_flag(ctx, &summary.dir)
    ));
}

#[derive(Serialize)]
struct NodeStatus {
    name: String,
    api: String,
    up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_block_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mempool_txs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn status(ctx: &Context, dir: Option<PathBuf>) -> Result<()> {
    let dir = dir.unwrap_or_else(|| default_dir(ctx));
    if !dir.join("genesis.json").exists() {
        bail!(
            "no devnet in {}; start one with `{} devnet up{}`",
            dir.display(),
            flux_prefix(ctx),
            dir_flag(ctx, &dir)
        );
    }
    let devnet = Devnet::open(&dir)?;
    let mut statuses = Vec::new();
    for node in &devnet.nodes {
        let client = Client::with_timeout(&node.api_url(), Duration::from_millis(2_000))?;
        let status = match client.status() {
            Ok(status) => NodeStatus {
                name: node.name.clone(),
                api: node.api_url(),
                up: true,
                height: Some(status.height),
                last_block_hash: Some(status.last_block_hash.to_string()),
                mempool_txs: Some(status.mempool_txs),
                peers: Some(status.peers),
                error: None,
            },
            Err(error) => NodeStatus {
                name: node.name.clone(),
                api: node.api_url(),
                up: false,
                height: None,
                last_block_hash: None,
                mempool_txs: None,
                peers: None,
                error: Some(error.to_string()),
            },
        };
        statuses.push(status);
    }
    ctx.out.show(&statuses, |text| {
        let rows: Vec<Vec<String>> = statuses
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.api.clone(),
                    if s.up { "up" } else { "down" }.to_string(),
                    s.height
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s.last_block_hash
                        .as_deref()
                        .map(crate::output::short)
                        .unwrap_or_else(|| "-".into()),
                    s.mempool_txs
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s.peers.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        text.table(
            &[
                "NODE",
                "API",
                "STATE",
                "HEIGHT",
                "LAST BLOCK",
                "MEMPOOL",
                "PEERS",
            ],
            &rows,
            "no nodes",
        );
    });
    Ok(())
}

/// Asks the running `up` of the devnet in `dir` to start `name` again and
/// waits for its API.
fn restart(ctx: &Context, dir: Option<PathBuf>, name: &str, timeout_secs: u64) -> Result<()> {
    let dir = dir.unwrap_or_else(|| default_dir(ctx));
    if !dir.join("genesis.json").exists() {
        bail!(
            "no devnet in {}; start one with `{} devnet up{}`",
            dir.display(),
            flux_prefix(ctx),
            dir_flag(ctx, &dir)
        );
    }
    let devnet = Devnet::open(&dir)?;
    let wanted = match name.parse::<usize>() {
        Ok(index) => format!("node-{index}"),
        Err(_) => name.to_string(),
    };
    let Some(node) = devnet.nodes.iter().find(|node| node.name == wanted) else {
        let names: Vec<&str> = devnet.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "no node {name} in the devnet in {}; its nodes: {}",
            dir.display(),
            names.join(", ")
        );
    };
    if live_pid(&dir.join("up.pid")).is_none() {
        bail!(
            "no `flux devnet up` runs the devnet in {}; `{} devnet up{}` starts every node",
            dir.display(),
            flux_prefix(ctx),
            dir_flag(ctx, &dir)
        );
    }
    if let Some(pid) = live_pid(&node.pid_path()) {
        bail!(
            "{} is running (pid {pid}, API {}); kill it first to restart it",
            node.name,
            node.api_url()
        );
    }
    let client = Client::with_timeout(&node.api_url(), Duration::from_millis(1_000))?;
    if client.status().is_ok() {
        bail!("a node already answers at {}", node.api_url());
    }
    write_new(&node.restart_path(), "")
        .with_context(|| format!("cannot ask the devnet to restart {}", node.name))?;
    let spinner = ctx
        .out
        .spinner(format!("restarting {} at {}", node.name, node.api_url()));
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let status = loop {
        if let Ok(status) = client.status() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = fs::remove_file(node.restart_path());
            bail!(
                "{} did not answer at {} within {timeout_secs} s; last lines of {}:\n{}",
                node.name,
                node.api_url(),
                node.log_path().display(),
                log_tail(&node.log_path())
            );
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS * 2));
    };
    drop(spinner);
    let pid = live_pid(&node.pid_path());
    let value = serde_json::json!({
        "name": node.name,
        "api": node.api_url(),
        "pid": pid,
        "height": status.height,
        "log": node.log_path(),
    });
    ctx.out.show(&value, |text| {
        text.line(format!(
            "{} is back at {} (height {}, catching up); log: {}",
            node.name,
            node.api_url(),
            status.height,
            node.log_path().display()
        ));
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_the_well_known_ones() {
        assert_eq!(dev_key_name(0), "dev0");
        assert_eq!(
            SecretKey::development(&dev_key_name(3)).address(),
            SecretKey::development("dev3").address()
        );
    }

    #[test]
    fn a_pid_file_names_a_live_process_or_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pid");
        assert_eq!(live_pid(&path), None, "no file");
        fs::write(&path, format!("{}\n", std::process::id())).expect("write");
        assert_eq!(live_pid(&path), Some(std::process::id()));
        let mut child = Command::new("true").spawn().expect("spawn true");
        fs::write(&path, child.id().to_string()).expect("write");
        // Exited but not reaped: a zombie is not alive.
        let deadline = Instant::now() + Duration::from_secs(10);
        while live_pid(&path).is_some() {
            assert!(
                Instant::now() < deadline,
                "the zombie still counts as alive"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait().expect("reap");
        assert_eq!(live_pid(&path), None, "a reaped process");
        fs::write(&path, "garbage").expect("write");
        assert_eq!(live_pid(&path), None);
    }
}
