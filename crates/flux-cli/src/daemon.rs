//! `flux node run`: one node process, configured by a TOML file, serving the
//! API until SIGINT or SIGTERM and then shutting down cleanly.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use flux_types::Genesis;
use serde::{Deserialize, Serialize};

use crate::keystore::read_key_file;

/// Largest genesis file read.
const GENESIS_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest configuration file read.
const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Default mempool limit, transactions.
pub(crate) const MEMPOOL_TXS_MAX_DEFAULT: usize = 50_000;
/// Default mempool limit, bytes.
pub(crate) const MEMPOOL_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// The help text of `flux node run`: the configuration format.
pub(crate) const CONFIG_HELP: &str = "\
Run a node in the foreground until SIGINT or SIGTERM, then shut down cleanly.

The configuration is a TOML file; relative paths are relative to the file's directory:

    data_dir = \"data\"                 # the node's database (created if missing)
    genesis = \"../genesis.json\"       # the network's genesis (JSON)
    node_key = \"node_key.json\"        # the node's own key (a keystore file, mode 0600)
    block_interval_ms = 1000          # optional; default: the genesis params
    log = \"info\"                      # optional; a tracing filter, RUST_LOG overrides it
    driver = \"auto\"                   # optional; how apps run: auto (Docker when an engine
                                      # answers, exec otherwise), docker or exec; FLUX_DRIVER
                                      # overrides it. Ports are published on the host of
                                      # [api] listen.

    [api]
    listen = \"127.0.0.1:16127\"        # address of the HTTP API and the dashboard
    connections_max = 512             # optional limits; these are the defaults
    body_bytes_max = 262144
    request_timeout_ms = 10000

    [mempool]
    txs_max = 50000                   # optional; a full mempool refuses new transactions
    bytes_max = 67108864

    [gateway]                         # optional; without it the node routes no app traffic
    listen = \"127.0.0.1:16180\"        # optional; default: port 16180 on the host of [api] listen
    connections_max = 10000           # optional limits; these are the defaults: client
    connections_per_ip_max = 256      # connections (HTTP and TCP), and from one IP
    request_header_size_bytes_max = 16384   # a larger request head gets 431
    header_read_timeout_ms = 10000    # to send a whole request head (slow clients)
    idle_timeout_ms = 60000           # a connection moving no byte is closed
    request_timeout_ms = 60000        # until the instance's response head, else 504
    tcp_forwarding = true             # published ports of apps placed elsewhere reach
                                      # them through this node's address
    workers = 0                       # HTTP threads; 0: one per CPU core

The gateway sends a request with Host: APP.DOMAIN (DOMAIN is the genesis
param network_domain, flux.localhost on a devnet), APP_PORT.DOMAIN or one of
an app's custom domains to a healthy instance of that app, on this node or
any other, as the finalized placements say.

    [benchmark]                       # optional; the node benchmarks itself
    period_s = 86400                  # how often it measures again; never sooner than
                                      # the ledger allows (benchmark_interval_blocks_min)
    measure = \"full\"                  # full: 5 s of CPU test, 256 MiB written; quick:
                                      # 0.2 s and 8 MiB (a devnet's small thresholds)
    enabled = true                    # false: only `flux node benchmark --submit`

    [p2p]                             # optional; without it the node validates alone
    listen = \"127.0.0.1:16125\"        # address of the peer-to-peer service
    bootstrap = [                     # optional; peers dialled besides the validators
      { key = \"<hex node key>\", address = \"10.0.0.5:16125\" },
    ]
    worker_threads = 2                # optional; threads of the consensus runtime

Once its key is a registered node, the node measures itself (CPU score, disk
write speed, memory, cores, disk of data_dir), logs each figure against its
tier's threshold and sends the report signed by its key (no fee); the ledger
confirms it when every figure passes, and only confirmed nodes get apps.

With [p2p] the node joins the network of its genesis: it dials the genesis
validators, the committee of each epoch and the bootstrap peers, and accepts
connections from registered nodes. It validates in the epochs whose committee
holds its key and follows the chain otherwise. `listen` may be 0.0.0.0:16125;
peer addresses are IP:PORT or names resolved when the node starts. A network
whose validators have private addresses (a devnet, a Docker network) accepts
private peers; on one machine (loopback) a peer's key, not its source
address, identifies it.

`flux devnet up` writes such a file for each of its nodes.";

/// The node's configuration file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeFileConfig {
    pub(crate) data_dir: PathBuf,
    pub(crate) genesis: PathBuf,
    pub(crate) node_key: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) block_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) log: Option<String>,
    /// How apps run: `auto` (Docker when an engine answers, exec otherwise), `docker` or `exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) driver: Option<String>,
    pub(crate) api: ApiSection,
    #[serde(default)]
    pub(crate) mempool: MempoolSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) p2p: Option<P2pSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<GatewaySection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) benchmark: Option<BenchmarkSection>,
}

/// `[benchmark]`: how the node benchmarks itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BenchmarkSection {
    /// `false`: the node never benchmarks by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) enabled: Option<bool>,
    /// Seconds between benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) period_s: Option<u64>,
    /// How much to measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) measure: Option<Measure>,
}

/// How much a benchmark measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Measure {
    /// [`flux_benchmark::Options::new`]: 5 s of CPU test, 256 MiB written.
    Full,
    /// [`flux_benchmark::Options::quick`]: 0.2 s of CPU test, 8 MiB written.
    Quick,
}

impl BenchmarkSection {
    /// The node's benchmark options for `data_dir`; `None` when disabled.
    pub(crate) fn options(&self, data_dir: &Path) -> Result<Option<flux_node::BenchmarkOptions>> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let period = match self.period_s {
            Some(0) => bail!("[benchmark] period_s must be at least 1"),
            Some(seconds) => std::time::Duration::from_secs(seconds),
            None => flux_node::benchmark::PERIOD_DEFAULT,
        };
        let measure = match self.measure.unwrap_or(Measure::Full) {
            Measure::Full => flux_benchmark::Options::new(data_dir),
            Measure::Quick => flux_benchmark::Options::quick(data_dir),
        };
        Ok(Some(flux_node::BenchmarkOptions { period, measure }))
    }
}

/// `[gateway]`: where the node's gateway listens and its limits; an absent
/// key takes the default of [`flux_node::GatewayConfig`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewaySection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) connections_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) connections_per_ip_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_header_size_bytes_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) header_read_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) idle_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_forwarding: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) workers: Option<usize>,
}

impl GatewaySection {
    /// Where the gateway listens: `listen`, or the default port on the
    /// host of the API.
    pub(crate) fn listen_addr(&self, api_listen: SocketAddr) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::new(
            api_listen.ip(),
            flux_node::GATEWAY_HTTP_PORT_DEFAULT,
        ))
    }

    /// The gateway's configuration, checked.
    pub(crate) fn config(&self, api_listen: SocketAddr) -> Result<flux_node::GatewayConfig> {
        let defaults = flux_node::GatewayConfig::default();
        let config = flux_node::GatewayConfig {
            http_listen: self.listen_addr(api_listen),
            connections_max: self.connections_max.unwrap_or(defaults.connections_max),
            connections_per_ip_max: self
                .connections_per_ip_max
                .unwrap_or(defaults.connections_per_ip_max),
            request_header_size_bytes_max: self
                .request_header_size_bytes_max
                .unwrap_or(defaults.request_header_size_bytes_max),
            header_read_timeout_ms: self
                .header_read_timeout_ms
                .unwrap_or(defaults.header_read_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.unwrap_or(defaults.idle_timeout_ms),
            request_timeout_ms: self
                .request_timeout_ms
                .unwrap_or(defaults.request_timeout_ms),
            tcp_forwarding: self.tcp_forwarding.unwrap_or(defaults.tcp_forwarding),
            workers: self.workers.unwrap_or(defaults.workers),
            ..defaults
        };
        config.validate().map_err(|e| anyhow!("[gateway] {e}"))?;
        Ok(config)
    }
}

/// `[p2p]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct P2pSection {
    pub(crate) listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) bootstrap: Vec<BootstrapPeer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) worker_threads: Option<usize>,
}

/// A peer named in `[p2p] bootstrap`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BootstrapPeer {
    pub(crate) key: flux_types::PublicKey,
    pub(crate) address: SocketAddr,
}

/// `[api]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSection {
    pub(crate) listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) connections_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_bytes_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_timeout_ms: Option<u64>,
}

/// `[mempool]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MempoolSection {
    #[serde(default = "mempool_txs_max_default")]
    pub(crate) txs_max: usize,
    #[serde(default = "mempool_bytes_max_default")]
    pub(crate) bytes_max: usize,
}

impl Default for MempoolSection {
    fn default() -> MempoolSection {
        MempoolSection {
            txs_max: MEMPOOL_TXS_MAX_DEFAULT,
            bytes_max: MEMPOOL_BYTES_MAX_DEFAULT,
        }
    }
}

fn mempool_txs_max_default() -> usize {
    MEMPOOL_TXS_MAX_DEFAULT
}

fn mempool_bytes_max_default() -> usize {
    MEMPOOL_BYTES_MAX_DEFAULT
}

impl NodeFileConfig {
    /// Reads a configuration file.
    pub(crate) fn read(path: &Path) -> Result<NodeFileConfig> {
        let text = read_limited(path, CONFIG_FILE_BYTES_MAX, "node configuration")?;
        toml::from_str(&text)
            .map_err(|e| anyhow!("{} is not a valid node configuration: {e}", path.display()))
    }

    /// `path` resolved against the directory of the configuration file.
    pub(crate) fn resolve(config_path: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            config_path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(path)
        }
    }
}

fn read_limited(path: &Path, bytes_max: u64, what: &str) -> Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?
        .len();
    if size > bytes_max {
        bail!(
            "{} is {size} bytes, more than the {bytes_max} allowed for a {what}",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// Reads and checks a genesis file.
pub(crate) fn read_genesis(path: &Path) -> Result<Genesis> {
    let text = read_limited(path, GENESIS_FILE_BYTES_MAX, "genesis")?;
    let genesis: Genesis = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not a valid genesis: {e}", path.display()))?;
    genesis
        .validate()
        .map_err(|e| anyhow!("{} is not a valid genesis: {e}", path.display()))?;
    Ok(genesis)
}

/// Runs the node described by the configuration file at `config_path`.
pub(crate) fn run(config_path: &Path) -> Result<()> {
    let config = NodeFileConfig::read(config_path)?;
    init_logging(config.log.as_deref());
    let genesis = read_genesis(&NodeFileConfig::resolve(config_path, &config.genesis))?;
    let key_path = NodeFileConfig::resolve(config_path, &config.node_key);
    let node_key = read_key_file(&key_path)
        .with_context(|| "cannot load the node key".to_string())?
        .secret()?;
    let data_dir = NodeFileConfig::resolve(config_path, &config.data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let node_config = flux_chain::NodeConfig {
        data_dir,
        block_interval_ms: config
            .block_interval_ms
            .unwrap_or(genesis.params.block_interval_ms),
        genesis,
        node_key,
        mempool_txs_max: config.mempool.txs_max,
        mempool_bytes_max: config.mempool.bytes_max,
    };
    let mut api = flux_api::ApiConfig {
        listen: config.api.listen,
        ..flux_api::ApiConfig::default()
    };
    if let Some(value) = config.api.connections_max {
        api.connections_max = value;
    }
    if let Some(value) = config.api.body_bytes_max {
        api.body_bytes_max = value;
    }
    if let Some(value) = config.api.request_timeout_ms {
        api.request_timeout_ms = value;
    }
    let agent = flux_node::AgentOptions {
        driver: match driver_setting(config.driver.as_deref()).as_deref() {
            None | Some("auto") => flux_agent::DriverChoice::Auto,
            Some("docker") => flux_agent::DriverChoice::Docker,
            Some("exec") => flux_agent::DriverChoice::Exec,
            Some(other) => bail!(
                "{}: driver = \"{other}\" is not one of auto, docker, exec",
                config_path.display()
            ),
        },
        host_ip: config.api.listen.ip(),
        exec_state_dir: node_config.data_dir.join("exec"),
        reconciler: flux_agent::ReconcilerConfig::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("flux-node")
        .build()
        .context("cannot start the async runtime")?;
    let benchmark = config
        .benchmark
        .clone()
        .unwrap_or_default()
        .options(&node_config.data_dir)
        .with_context(|| config_path.display().to_string())?;
    let gateway = config
        .gateway
        .as_ref()
        .map(|gateway| gateway.config(config.api.listen))
        .transpose()
        .with_context(|| config_path.display().to_string())?;
    let network = config.p2p.as_ref().map(network_config);
    let options = flux_node::NodeOptions {
        chain: node_config,
        network,
        api,
        agent: Some(agent),
        gateway,
        benchmark,
    };
    runtime.block_on(serve(options))
}

/// The driver setting: `FLUX_DRIVER` when set (so a whole devnet can be
/// forced onto one driver), the configuration's otherwise.
pub(crate) fn driver_setting(configured: Option<&str>) -> Option<String> {
    std::env::var("FLUX_DRIVER")
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| configured.map(str::to_string))
}

/// Which driver a node with this setting gets on this machine: `docker`
/// when an engine answers (and the setting allows it), `exec` otherwise.
pub(crate) fn driver_in_use(configured: Option<&str>) -> &'static str {
    if driver_setting(configured).as_deref() == Some("exec") {
        return "exec";
    }
    let probe = async {
        flux_agent::DockerDriver::connect("probe", flux_agent::DockerConfig::default())
            .await
            .is_ok()
    };
    let docker = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|runtime| runtime.block_on(probe))
        .unwrap_or(false);
    if docker { "docker" } else { "exec" }
}

/// The network settings of a `[p2p]` section.
fn network_config(p2p: &P2pSection) -> flux_chain::consensus::NetworkConfig {
    let mut network = flux_chain::consensus::NetworkConfig::new(p2p.listen);
    network.bootstrap = p2p
        .bootstrap
        .iter()
        .map(|peer| flux_chain::consensus::Peer {
            key: peer.key,
            address: peer.address,
        })
        .collect();
    if let Some(threads) = p2p.worker_threads {
        network.worker_threads = threads.max(1);
    }
    network
}

async fn serve(options: flux_node::NodeOptions) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    // Install the handlers first, so that a signal during start-up is not lost.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    };
    flux_node::run(options, shutdown)
        .await
        .map_err(|e| anyhow!("{e}"))
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.is_empty())
        .or_else(|| filter.map(str::to_string))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_section_defaults_to_port_16180_on_the_api_host() {
        let text = "data_dir = \"data\"\ngenesis = \"g.json\"\nnode_key = \"k.json\"\n\n[api]\nlisten = \"127.0.42.3:16127\"\n";
        let config: NodeFileConfig = toml::from_str(text).unwrap();
        assert!(config.gateway.is_none());
        let config: NodeFileConfig =
            toml::from_str(&format!("{text}\n[gateway]\nidle_timeout_ms = 5000\n")).unwrap();
        let section = config.gateway.as_ref().unwrap();
        let gateway = section.config(config.api.listen).unwrap();
        assert_eq!(gateway.http_listen.to_string(), "127.0.42.3:16180");
        assert_eq!(gateway.idle_timeout_ms, 5_000);
        assert_eq!(
            gateway.connections_max,
            flux_node::GatewayConfig::default().connections_max
        );
        let again: NodeFileConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again.gateway.unwrap().idle_timeout_ms, Some(5_000));
        let zero: NodeFileConfig =
            toml::from_str(&format!("{text}\n[gateway]\nconnections_max = 0\n")).unwrap();
        let error = zero.gateway.unwrap().config(config.api.listen).unwrap_err();
        assert!(error.to_string().contains("connections_max"), "{error}");
        assert!(
            toml::from_str::<NodeFileConfig>(&format!("{text}\n[gateway]\nport = 1\n")).is_err()
        );
    }

    #[test]
    fn config_round_trips_and_refuses_typos() {
        let text = r#"
data_dir = "data"
genesis = "../genesis.json"
node_key = "node_key.json"

[api]
listen = "127.0.0.1:16127"
"#;
        let config: NodeFileConfig = toml::from_str(text).unwrap();
        assert_eq!(config.mempool.txs_max, MEMPOOL_TXS_MAX_DEFAULT);
        let again: NodeFileConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again.api.listen, config.api.listen);
        let typo = text.replace("data_dir", "datadir");
        assert!(toml::from_str::<NodeFileConfig>(&typo).is_err());
        assert!(config.p2p.is_none());
        let options = config.benchmark.clone().unwrap_or_default();
        let options = options.options(Path::new("/d")).unwrap().unwrap();
        assert_eq!(options.period, flux_node::benchmark::PERIOD_DEFAULT);
        assert_eq!(options.measure, flux_benchmark::Options::new("/d"));
        let quick: NodeFileConfig = toml::from_str(&format!(
            "{text}\n[benchmark]\nperiod_s = 60\nmeasure = \"quick\"\n"
        ))
        .unwrap();
        let section = quick.benchmark.as_ref().unwrap();
        let options = section.options(Path::new("/d")).unwrap().unwrap();
        assert_eq!(options.period, std::time::Duration::from_secs(60));
        assert_eq!(options.measure, flux_benchmark::Options::quick("/d"));
        let again: NodeFileConfig = toml::from_str(&toml::to_string(&quick).unwrap()).unwrap();
        assert_eq!(again.benchmark.unwrap().measure, Some(Measure::Quick));
        for bad in ["measure = \"slow\"", "every = 1"] {
            let config = format!("{text}\n[benchmark]\n{bad}\n");
            assert!(toml::from_str::<NodeFileConfig>(&config).is_err(), "{bad}");
        }
        let zero: NodeFileConfig =
            toml::from_str(&format!("{text}\n[benchmark]\nperiod_s = 0\n")).unwrap();
        let error = zero
            .benchmark
            .unwrap()
            .options(Path::new("/d"))
            .unwrap_err();
        assert!(error.to_string().contains("period_s"), "{error}");
        let off: NodeFileConfig =
            toml::from_str(&format!("{text}\n[benchmark]\nenabled = false\n")).unwrap();
        assert!(
            off.benchmark
                .unwrap()
                .options(Path::new("/d"))
                .unwrap()
                .is_none()
        );
        let key = flux_types::SecretKey::development("peer").public_key();
        let with_p2p = format!(
            "{text}\n[p2p]\nlisten = \"127.0.0.1:16125\"\nbootstrap = [{{ key = \"{key}\", address = \"127.0.0.2:16125\" }}]\n"
        );
        let config: NodeFileConfig = toml::from_str(&with_p2p).unwrap();
        let p2p = config.p2p.as_ref().unwrap();
        assert_eq!(p2p.bootstrap[0].key, key);
        let network = network_config(p2p);
        assert_eq!(network.bootstrap[0].address.to_string(), "127.0.0.2:16125");
        let again: NodeFileConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again.p2p.unwrap().listen, p2p.listen);
        assert_eq!(
            NodeFileConfig::resolve(Path::new("/a/b/config.toml"), Path::new("data")),
            PathBuf::from("/a/b/data")
        );
    }
}
