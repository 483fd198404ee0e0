//! The BFT engine: commonware's simplex consensus over authenticated
//! peer-to-peer connections, driving the ledger-backed application.
//!
//! - `block.rs`: the block type consensus orders (codec with limits, digest, parent).
//! - `app.rs`: propose and verify on the ledger.
//! - `finalizer.rs`: finalized blocks into the store, then the next committee.
//! - `epochs.rs`: committees by epoch, on disk and as signing schemes.
//! - `gossip.rs`: mempool gossip and peer heartbeats.
//! - `engine.rs`: the wiring of one node on any runtime and transport.
//! - this file: configuration, message limits, and the production transport
//!   (a tokio runtime on its own thread with `lookup` p2p over TCP).

mod app;
pub(crate) mod block;
pub(crate) mod engine;
pub(crate) mod epochs;
mod finalizer;
pub(crate) mod gossip;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use commonware_consensus::marshal::standard::Standard;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::types::Epoch;
use commonware_cryptography::{ChaCha20Poly1305, ed25519};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::utils::mux::prefixed;
use commonware_p2p::{Address, AddressableManager as _, AddressableTrackedPeers};
use commonware_runtime::{Quota, Runner as _, Spawner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use flux_types::PublicKey;

pub use engine::{Channels, PeerTracker, Timeouts, channel};

use self::block::{ChainBlock, Digest};
use self::epochs::consensus_key;
use crate::committee::{COMMITTEE_SEATS_MAX, Eligibility, Member};
use crate::{ChainError, Node};

/// The standard peer-to-peer port.
pub const P2P_PORT_DEFAULT: u16 = 16125;
/// Most peers one node keeps in a peer set: the committee, bootstrap peers
/// and the registered nodes that may connect to it. Registered nodes beyond
/// it are not accepted (the committee always is).
pub const PEERS_MAX: usize = 256;
/// Messages per second one peer may send on a consensus channel.
const CONSENSUS_MESSAGES_PER_SECOND: u32 = 1_000;
/// Messages per second one peer may send on the block and backfill channels.
const BLOCK_MESSAGES_PER_SECOND: u32 = 1_000;
/// Messages per second one peer may send on the mempool channel.
const MEMPOOL_MESSAGES_PER_SECOND: u32 = 200;
/// Messages one peer may send at once, on any channel. Each channel's inbound
/// queue holds this many messages for every peer it may hear from, so this
/// bounds the memory a channel can take.
const BURST_MESSAGES: u32 = 64;

/// The largest message any node sends: a certificate of the largest
/// committee, a block of the largest size with its certificate, or a
/// gossip batch. Every node of a network must use the same value.
pub fn max_message_size() -> u32 {
    let seats = COMMITTEE_SEATS_MAX as u32;
    commonware_p2p::max_message_size(&[
        prefixed(commonware_consensus::simplex::max_payload_size::<
            Scheme,
            Digest,
        >(seats)),
        commonware_consensus::marshal::max_payload_size::<Standard<ChainBlock>, Scheme>(seats, &()),
        gossip::GOSSIP_BATCH_BYTES_MAX,
    ])
}

/// The per-peer rate of each channel, in the order of [`Channels`].
pub fn channel_quotas() -> [(u64, Quota); 6] {
    let burst = NZU32!(BURST_MESSAGES);
    let consensus = Quota::per_second(NZU32!(CONSENSUS_MESSAGES_PER_SECOND)).allow_burst(burst);
    let blocks = Quota::per_second(NZU32!(BLOCK_MESSAGES_PER_SECOND)).allow_burst(burst);
    let mempool = Quota::per_second(NZU32!(MEMPOOL_MESSAGES_PER_SECOND)).allow_burst(burst);
    [
        (channel::VOTES, consensus),
        (channel::CERTIFICATES, consensus),
        (channel::RESOLVER, consensus),
        (channel::BLOCKS, blocks),
        (channel::BACKFILL, blocks),
        (channel::MEMPOOL, mempool),
    ]
}

/// A peer to dial, known by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node key.
    pub key: PublicKey,
    /// Where it listens.
    pub address: SocketAddr,
}

/// How a node takes part in the network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Where this node's peer-to-peer service listens.
    pub listen: SocketAddr,
    /// Peers dialled besides the genesis validators and the committee, for
    /// example validators a follower should reach first.
    pub bootstrap: Vec<Peer>,
    /// The port registered nodes serve peer-to-peer on, at the host of their
    /// registered endpoint.
    pub p2p_port: u16,
    /// Which registered nodes may validate; the same on every node.
    pub eligibility: Eligibility,
    /// Consensus timeouts; by default derived from the block interval.
    pub timeouts: Option<Timeouts>,
    /// Threads of the consensus runtime.
    pub worker_threads: usize,
}

impl NetworkConfig {
    /// A configuration listening on `listen`, with the defaults.
    pub fn new(listen: SocketAddr) -> NetworkConfig {
        NetworkConfig {
            listen,
            bootstrap: Vec::new(),
            p2p_port: P2P_PORT_DEFAULT,
            eligibility: Eligibility::Work,
            timeouts: None,
            worker_threads: 2,
        }
    }
}

/// How [`run`] drives a node on a runtime chosen by the caller.
#[derive(Clone, Debug)]
pub struct Options {
    /// Prefix of the runtime's storage partitions; distinct for nodes that
    /// share one runtime.
    pub partition_prefix: String,
    /// Which registered nodes may validate; the same on every node.
    pub eligibility: Eligibility,
    /// The port registered nodes serve peer-to-peer on.
    pub p2p_port: u16,
    /// Consensus timeouts; by default derived from the block interval.
    pub timeouts: Option<Timeouts>,
}

/// Runs the consensus of `node` (opened with [`Node::open`]) on the
/// caller's runtime and transport, until the runtime stops it or it fails.
/// Simulations use this with commonware's deterministic runtime and
/// simulated network; [`Node::start_network`] uses it with tokio and TCP.
pub async fn run<E, S, R, B, P, T>(
    context: E,
    node: &Node,
    options: Options,
    channels: Channels<S, R>,
    blocker: B,
    peer_provider: P,
    tracker: T,
) -> Result<(), ChainError>
where
    E: commonware_runtime::Spawner
        + commonware_runtime::Clock
        + commonware_runtime::Metrics
        + commonware_runtime::Storage
        + rand_core_010::CryptoRng,
    S: commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
    B: commonware_p2p::Blocker<PublicKey = ed25519::PublicKey>,
    P: commonware_p2p::Provider<PublicKey = ed25519::PublicKey>,
    T: PeerTracker,
{
    let settings = node.consensus_settings(options)?;
    engine::run(context, settings, channels, blocker, peer_provider, tracker).await
}

/// The committee recorded for `epoch` in a node's data directory, if the
/// node has reached that epoch.
pub fn recorded_committee(
    data_dir: &std::path::Path,
    epoch: u64,
) -> Result<Option<Vec<PublicKey>>, ChainError> {
    let committees =
        epochs::Committees::load(data_dir).map_err(|e| ChainError::Store(e.to_string()))?;
    Ok(committees
        .get(epoch)
        .map(|members| members.into_iter().map(|m| m.key).collect()))
}

/// The key a Flux secret key has in consensus and p2p.
pub(crate) fn signer_of(key: &flux_types::SecretKey) -> ed25519::PrivateKey {
    use commonware_codec::DecodeExt as _;
    ed25519::PrivateKey::decode(commonware_codec::Copying(&key.seed()))
        .expect("a 32-byte seed is a valid key")
}

/// The consensus key of a Flux public key.
pub fn peer_key(key: &PublicKey) -> Option<ed25519::PublicKey> {
    consensus_key(key)
}

/// Keeps `lookup` tracking the committee (dialled) and registered nodes
/// (accepted) of each epoch, plus the bootstrap peers.
struct LookupTracker {
    oracle: lookup::Oracle<ed25519::PublicKey>,
    me: ed25519::PublicKey,
    bootstrap: Vec<Peer>,
}

impl LookupTracker {
    fn address(member: &Member) -> Option<SocketAddr> {
        let endpoint = member.p2p_endpoint.as_deref()?;
        let address = resolve(endpoint);
        if address.is_none() {
            tracing::warn!(endpoint, key = %member.key, "peer endpoint is neither IP:PORT nor a name that resolves; not dialling it");
        }
        address
    }

    fn bootstrap_map(&self, extra: &[Member]) -> Vec<(ed25519::PublicKey, Address)> {
        let mut peers = Vec::new();
        for peer in &self.bootstrap {
            if let Some(key) = consensus_key(&peer.key) {
                peers.push((key, Address::Symmetric(peer.address)));
            }
        }
        for member in extra {
            if let (Some(key), Some(address)) = (consensus_key(&member.key), Self::address(member))
            {
                peers.push((key, Address::Symmetric(address)));
            }
        }
        peers
    }
}

impl PeerTracker for LookupTracker {
    fn track(&mut self, epoch: Epoch, committee: &[Member], registered: &[Member]) {
        let mut primary = self.bootstrap_map(committee);
        primary.retain(|(key, _)| *key != self.me);
        primary.truncate(PEERS_MAX - 1);
        let room = PEERS_MAX - 1 - primary.len();
        let secondary: Vec<(ed25519::PublicKey, Address)> = registered
            .iter()
            .filter_map(|member| {
                let key = consensus_key(&member.key)?;
                let address = Self::address(member)?;
                (key != self.me && !primary.iter().any(|(k, _)| *k == key))
                    .then_some((key, Address::Symmetric(address)))
            })
            .take(room)
            .collect();
        // Index 0 is the bootstrap set; epoch e is tracked at e + 1.
        let _ = self.oracle.track(
            epoch.get() + 1,
            AddressableTrackedPeers::new(
                Map::from_iter_dedup(primary),
                Map::from_iter_dedup(secondary),
            ),
        );
    }
}

/// The consensus thread of a node started with [`Node::start_network`].
pub(crate) struct Running {
    stop: Mutex<Option<futures::channel::oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Running {
    /// Stops the consensus runtime and waits for its thread.
    pub(crate) fn stop(&self) {
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(());
        }
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// Starts the consensus of `node` on a tokio runtime of its own thread,
/// with storage under `DATA_DIR/consensus` and `lookup` p2p over TCP.
pub(crate) fn start(node: Node, config: NetworkConfig) -> Result<Running, ChainError> {
    let settings = node.consensus_settings(Options {
        partition_prefix: "flux".into(),
        eligibility: config.eligibility,
        p2p_port: config.p2p_port,
        timeouts: config.timeouts,
    })?;
    let storage = node.data_dir().join("consensus");
    let signer = settings.signer.clone();
    let genesis = settings.genesis.clone();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let shared = node.shared().clone();
    let watcher = shared.clone();
    let thread = std::thread::Builder::new()
        .name("flux-consensus".into())
        .spawn(move || {
            let runtime = commonware_runtime::tokio::Config::new()
                .with_worker_threads(config.worker_threads.max(1))
                .with_storage_directory(storage)
                .with_catch_panics(false);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
                    let namespace = format!("FLUX/p2p/v1/{}/{}", genesis.chain_id, genesis.hash());
                    let handshake = Cups::<_, ChaCha20Poly1305>::new(
                        Sake {
                            signer: signer.clone(),
                            synchrony_bound: Duration::from_secs(5),
                            max_handshake_age: Duration::from_secs(10),
                            version: sake::Version::V1,
                        },
                        cups::Version::V1,
                    );
                    let mut p2p = lookup::Config::recommended(
                        handshake,
                        namespace.as_bytes(),
                        config.listen,
                        NZUsize!(PEERS_MAX),
                        max_message_size(),
                        NZUsize!(4096),
                    );
                    let ip = config.listen.ip();
                    // Where the genesis validators are tells what network this is
                    // when the node listens on an unspecified address.
                    let validators: Vec<IpAddr> = genesis
                        .validators
                        .iter()
                        .filter_map(|v| resolve(&v.p2p_endpoint))
                        .map(|a| a.ip())
                        .collect();
                    let all = |test: fn(IpAddr) -> bool| {
                        !validators.is_empty() && validators.iter().all(|ip| test(*ip))
                    };
                    if is_private(ip) || all(is_private) {
                        // A devnet or a private network: peers have private addresses.
                        let local = lookup::Config::local(
                            p2p.handshake.clone(),
                            namespace.as_bytes(),
                            config.listen,
                            NZUsize!(PEERS_MAX),
                            max_message_size(),
                            NZUsize!(4096),
                        );
                        p2p = local;
                        p2p.block_duration = Duration::from_secs(60);
                    }
                    if ip.is_loopback() || all(|ip| ip.is_loopback()) {
                        // On one machine every connection comes from 127.0.0.1
                        // whatever loopback address the peer listens on; the
                        // handshake still authenticates the peer's key.
                        p2p.bypass_ip_check = true;
                    }
                    let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
                    let mut registered = Vec::new();
                    for quota in channel_quotas() {
                        registered.push(network.register(quota.0, quota.1));
                    }
                    let mut registered = registered.into_iter();
                    let mut next = || registered.next().expect("six channels");
                    let channels = Channels {
                        votes: next(),
                        certificates: next(),
                        resolver: next(),
                        blocks: next(),
                        backfill: next(),
                        mempool: next(),
                    };
                    network.start();
                    let tracker = LookupTracker {
                        oracle: oracle.clone(),
                        me: commonware_cryptography::Signer::public_key(&signer),
                        bootstrap: config.bootstrap.clone(),
                    };
                    let validators: Vec<Member> = genesis
                        .validators
                        .iter()
                        .map(|v| Member {
                            key: v.public_key,
                            p2p_endpoint: Some(v.p2p_endpoint.clone()),
                        })
                        .collect();
                    let mut bootstrap = tracker.bootstrap_map(&validators);
                    bootstrap.retain(|(key, _)| *key != tracker.me);
                    let _ = oracle.track(0, Map::from_iter_dedup(bootstrap));
                    tracing::info!(listen = %config.listen, "peer-to-peer started");
                    let blocker = oracle.clone();
                    let node = context.child("node").spawn(move |context| {
                        engine::run(context, settings, channels, blocker, oracle, tracker)
                    });
                    commonware_macros::select! {
                        _ = stopped => {},
                        outcome = node => match outcome {
                            Ok(Ok(())) => shared.fail("consensus stopped".into()),
                            Ok(Err(error)) => shared.fail(error.to_string()),
                            Err(error) => shared.fail(format!("consensus failed: {error}")),
                        },
                    }
                })
            }));
            if outcome.is_err() {
                watcher.fail("consensus panicked".into());
            }
        })
        .map_err(|e| ChainError::Store(format!("cannot start the consensus thread: {e}")))?;
    Ok(Running {
        stop: Mutex::new(Some(stop)),
        thread: Mutex::new(Some(thread)),
    })
}

/// `IP:PORT`, or `NAME:PORT` resolved once (the first address wins): the
/// peer must then connect from that address.
fn resolve(endpoint: &str) -> Option<SocketAddr> {
    if let Ok(address) = endpoint.parse() {
        return Some(address);
    }
    use std::net::ToSocketAddrs as _;
    endpoint.to_socket_addrs().ok()?.next()
}

/// Loopback, RFC 1918 and unique-local addresses.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    }
}
