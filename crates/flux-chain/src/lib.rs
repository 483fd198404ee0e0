//! Order Flux transactions into finalized blocks: mempool, block building and the consensus engine.
//!
//! [`Node`] is the handle the API and the CLI use; everything behind it
//! (mempool, producer, store) is private to this crate.
//!
//! Module map:
//! - `mempool`: waiting transactions, bounded, nonce-ordered, fee-prioritised (plain state).
//! - `rejections`: why recent transactions were dropped (bounded, plain state).
//! - `shared`: the store, the latest finalized state and the mempool, shared by the handle and the application.
//! - `application`: the `Application` interface a consensus engine
//!   drives (`propose`, `verify`, `finalized`) and its ledger-backed implementation.
//! - `solo`: the single-validator engine (`mod.rs` config, `actor.rs` loop, `ingress.rs` mailbox).
//! - `committee`: who validates an epoch, a pure function of genesis and state.
//! - `consensus`: the BFT engine (commonware simplex, marshal and p2p) driving the same application.

mod application;
pub mod committee;
pub mod consensus;
mod mempool;
mod rejections;
mod shared;
mod solo;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flux_ledger::{Receipt, State, TxError};
use flux_store::{Store, StoreError};
use flux_types::{Address, Block, Genesis, Hash, SecretKey, SignedTransaction};
use serde::{Deserialize, Serialize};

use crate::application::Ledger;
use crate::shared::Shared;

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Directory of the node's database.
    pub data_dir: PathBuf,
    /// The network's genesis.
    pub genesis: Genesis,
    /// The node's own key (proposer identity).
    pub node_key: SecretKey,
    /// Interval between blocks while no transaction waits, ms (at least 1);
    /// empty blocks are produced too. When transactions wait, blocks follow
    /// each other after the genesis's `block_interval_busy_ms` (at most this).
    pub block_interval_ms: u64,
    /// Most transactions held in the mempool; beyond it submissions are refused.
    pub mempool_txs_max: usize,
    /// Most encoded bytes of transactions held in the mempool; beyond it submissions are refused.
    pub mempool_bytes_max: usize,
}

/// Why a transaction was not accepted into the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The ledger refuses it.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Already in the mempool or already committed; or another transaction
    /// with the same signer and nonce and at least the same fee is pending
    /// (the hash is then the pending one's: a replacement must pay more).
    #[error("transaction {0} was already submitted")]
    Duplicate(Hash),
    /// The mempool is at one of its limits; it never grows past them.
    #[error(
        "the mempool is full (limits: {txs} transactions, {bytes} bytes); retry in a few seconds"
    )]
    MempoolFull {
        /// The most transactions it holds (`mempool_txs_max`).
        txs: usize,
        /// The most bytes it holds (`mempool_bytes_max`).
        bytes: usize,
    },
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl SubmitError {
    /// Stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::Invalid(e) => e.code(),
            SubmitError::Duplicate(_) => "duplicate_tx",
            SubmitError::MempoolFull { .. } => "mempool_full",
            SubmitError::ShuttingDown => "shutting_down",
        }
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// In the mempool.
    Pending,
    /// In a finalized block.
    Committed {
        /// Its receipt.
        receipt: Receipt,
    },
    /// Dropped when its block was built: it no longer applied.
    Rejected {
        /// Stable code.
        code: String,
        /// Message.
        message: String,
    },
    /// Never seen (or dropped long ago).
    Unknown,
}

/// A summary of the chain as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    /// Network id.
    pub chain_id: String,
    /// Hash of the genesis.
    pub genesis_hash: Hash,
    /// Last finalized height.
    pub height: u64,
    /// Its chain time, ms.
    pub time_ms: u64,
    /// Its hash.
    pub last_block_hash: Hash,
    /// State root after it.
    pub state_root: Hash,
    /// Transactions waiting.
    pub mempool_txs: usize,
    /// This node's id.
    pub node_id: Address,
    /// Peers heard from in the last few seconds (0 for a single validator).
    #[serde(default)]
    pub peers: usize,
}

/// The validators of one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committee {
    /// The epoch.
    pub epoch: u64,
    /// Its members' node keys, in seat order.
    pub members: Vec<flux_types::PublicKey>,
}

/// Failure of the node itself (store, genesis), not of a user's input.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// Genesis is invalid or does not match the stored chain.
    #[error("genesis: {0}")]
    Genesis(String),
}

impl From<StoreError> for ChainError {
    fn from(error: StoreError) -> ChainError {
        match error {
            StoreError::GenesisMismatch { .. } => ChainError::Genesis(error.to_string()),
            other => ChainError::Store(other.to_string()),
        }
    }
}

/// A running node: cheap to clone, shared by the API and the CLI.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    ledger: Arc<Ledger>,
    engine: Engine,
    node_id: Address,
    node_key: SecretKey,
    genesis: Arc<Genesis>,
    data_dir: PathBuf,
    block_interval_ms: u64,
    /// Shortest interval between blocks when transactions wait, ms.
    block_interval_busy_ms: u64,
    /// Where submitted transactions go to be gossiped (network engines only).
    gossip: Option<Mutex<futures::channel::mpsc::Sender<SignedTransaction>>>,
    /// The other end, until the engine takes it.
    gossip_queue: Mutex<Option<futures::channel::mpsc::Receiver<SignedTransaction>>>,
}

/// What decides finality.
enum Engine {
    /// The single-validator loop.
    Solo(solo::Mailbox),
    /// The BFT engine on its own thread.
    Network(std::sync::OnceLock<consensus::Running>),
    /// A BFT engine the caller drives with [`consensus::run`].
    External,
}

impl Node {
    /// Opens (or creates) the store in `config.data_dir`, restores the last
    /// committed state (committing the genesis on first start), and starts
    /// producing blocks on the current tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Node, ChainError> {
        let block_interval_ms = config.block_interval_ms;
        let node = tokio::task::spawn_blocking(move || Node::open_with(config, EngineKind::Solo))
            .await
            .map_err(|e| ChainError::Store(format!("opening the store failed: {e}")))??;
        if let Engine::Solo(_) = node.inner.engine {
            tracing::info!(block_interval_ms, "single-validator engine");
        }
        Ok(node)
    }

    /// Opens (or creates) the store like [`Node::start`] and starts the BFT
    /// engine: simplex consensus among the epoch's committee, peer-to-peer
    /// on `network.listen`, on a runtime of its own threads. Works for a
    /// validator and for a follower alike: the committee decides which.
    pub async fn start_network(
        config: NodeConfig,
        network: consensus::NetworkConfig,
    ) -> Result<Node, ChainError> {
        let node =
            tokio::task::spawn_blocking(move || Node::open_with(config, EngineKind::Network))
                .await
                .map_err(|e| ChainError::Store(format!("opening the store failed: {e}")))??;
        let running = consensus::start(node.clone(), network)?;
        if let Engine::Network(slot) = &node.inner.engine {
            let _ = slot.set(running);
        }
        Ok(node)
    }

    /// Opens (or creates) the store without starting an engine: the caller
    /// drives consensus with [`consensus::run`] on a runtime of its choice
    /// (a simulation, typically), and calls [`Node::close`] when done.
    pub fn open(config: NodeConfig) -> Result<Node, ChainError> {
        Node::open_with(config, EngineKind::External)
    }

    fn open_with(config: NodeConfig, kind: EngineKind) -> Result<Node, ChainError> {
        config
            .genesis
            .validate()
            .map_err(|e| ChainError::Genesis(format!("invalid genesis: {e}")))?;
        let NodeConfig {
            data_dir,
            genesis,
            node_key,
            block_interval_ms,
            mempool_txs_max,
            mempool_bytes_max,
        } = config;
        let proposer = node_key.public_key();
        if kind == EngineKind::Solo && !genesis.validators.iter().any(|v| v.public_key == proposer)
        {
            tracing::warn!(node_key = %proposer, "this node's key is not a genesis validator; it produces blocks alone all the same");
        }
        // The node's own interval may be shorter than the genesis's.
        let block_interval_busy_ms = genesis
            .params
            .block_interval_busy_ms
            .min(block_interval_ms)
            .max(1);
        let (store, state) = open(&data_dir, &genesis)?;
        tracing::info!(height = state.height(), state_root = %state.state_root(), path = %store.path().display(), "chain loaded");
        let limits = mempool::Limits {
            txs_max: mempool_txs_max,
            bytes_max: mempool_bytes_max,
        };
        let shared = Arc::new(Shared::new(store, state, limits));
        let ledger = Arc::new(Ledger::new(shared.clone(), proposer));
        let (engine, gossip, gossip_queue) = match kind {
            EngineKind::Solo => (
                Engine::Solo(solo::start(
                    solo::Config {
                        block_interval_ms,
                        block_interval_busy_ms,
                    },
                    ledger.clone(),
                )),
                None,
                None,
            ),
            EngineKind::Network | EngineKind::External => {
                let (sender, receiver) = consensus::gossip::queue();
                let engine = if kind == EngineKind::Network {
                    Engine::Network(std::sync::OnceLock::new())
                } else {
                    Engine::External
                };
                (engine, Some(Mutex::new(sender)), Some(receiver))
            }
        };
        Ok(Node {
            inner: Arc::new(Inner {
                shared,
                ledger,
                engine,
                node_id: proposer.address(),
                node_key,
                genesis: Arc::new(genesis),
                data_dir,
                block_interval_ms,
                block_interval_busy_ms,
                gossip,
                gossip_queue: Mutex::new(gossip_queue),
            }),
        })
    }

    /// What the consensus engine needs from this node; the gossip queue can
    /// be taken once.
    pub(crate) fn consensus_settings(
        &self,
        options: consensus::Options,
    ) -> Result<consensus::engine::Settings, ChainError> {
        let gossip = self
            .inner
            .gossip_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                ChainError::Store(
                    "this node runs the single-validator engine, or its consensus already started"
                        .into(),
                )
            })?;
        let block_interval = Duration::from_millis(self.inner.block_interval_ms.max(1));
        Ok(consensus::engine::Settings {
            ledger: self.inner.ledger.clone(),
            genesis: self.inner.genesis.clone(),
            signer: consensus::signer_of(&self.inner.node_key),
            committees_dir: self.inner.data_dir.clone(),
            partition_prefix: options.partition_prefix,
            eligibility: options.eligibility,
            p2p_port: options.p2p_port,
            timeouts: options
                .timeouts
                .unwrap_or_else(|| consensus::Timeouts::for_block_interval(block_interval)),
            block_interval,
            block_interval_busy: Duration::from_millis(self.inner.block_interval_busy_ms),
            gossip,
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The latest finalized state (an O(1) snapshot).
    pub fn state(&self) -> State {
        self.inner.shared.state()
    }

    /// Checks a transaction and adds it to the mempool; returns its hash.
    pub fn submit(&self, tx: SignedTransaction) -> Result<Hash, SubmitError> {
        let Some(gossip) = &self.inner.gossip else {
            return self.inner.shared.submit(tx);
        };
        let hash = self.inner.shared.submit(tx.clone())?;
        let mut gossip = gossip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = gossip.try_send(tx)
            && error.is_full()
        {
            // It stays in this node's mempool: it is included when this node proposes.
            tracing::debug!(tx = %hash, "the gossip queue is full; the transaction waits for this node's turn to propose");
        }
        Ok(hash)
    }

    /// Checks many transactions and adds those that pass to the mempool, as
    /// [`Node::submit`] does one by one but with their signatures verified in
    /// one batch; one result per transaction, in order.
    pub fn submit_batch(&self, txs: Vec<SignedTransaction>) -> Vec<Result<Hash, SubmitError>> {
        let Some(gossip) = &self.inner.gossip else {
            return self.inner.shared.submit_batch(txs);
        };
        let results = self.inner.shared.submit_batch(txs.clone());
        let mut gossip = gossip.lock().unwrap_or_else(PoisonError::into_inner);
        for (tx, result) in txs.into_iter().zip(&results) {
            let Ok(hash) = result else { continue };
            if let Err(error) = gossip.try_send(tx)
                && error.is_full()
            {
                tracing::debug!(tx = %hash, "the gossip queue is full; the transaction waits for this node's turn to propose");
            }
        }
        results
    }

    /// Peers heard from in the last few seconds (0 for a single validator).
    pub fn peers(&self) -> usize {
        self.inner.shared.peers()
    }

    /// The highest finalized height this node knows the network has
    /// reached; above [`ChainStatus::height`] while it catches up.
    pub fn network_height(&self) -> u64 {
        self.inner.shared.network_height()
    }

    /// Why the consensus engine stopped on its own, if it did (the node
    /// then still serves reads but no longer follows the chain).
    pub fn failure(&self) -> Option<String> {
        self.inner.shared.failure()
    }

    /// The next nonce for `address`, counting its transactions in the mempool.
    pub fn next_nonce(&self, address: &Address) -> u64 {
        self.inner.shared.next_nonce(address)
    }

    /// Where a transaction is.
    pub fn tx_status(&self, hash: &Hash) -> Result<TxStatus, ChainError> {
        self.inner.shared.tx_status(hash)
    }

    /// A finalized block.
    pub fn block(&self, height: u64) -> Result<Option<Block>, ChainError> {
        Ok(self.inner.shared.store.block(height)?)
    }

    /// The genesis of this node's chain.
    pub fn genesis(&self) -> &Genesis {
        &self.inner.genesis
    }

    /// The committee that finalizes the next block: its epoch (the epoch of
    /// height `last + 1`) and its members' node keys. A single-validator
    /// node's committee is its genesis validators; a network node's is the
    /// one it recorded on entering the epoch (empty until it has).
    pub fn committee(&self) -> Result<Committee, ChainError> {
        let state = self.state();
        let epoch = (state.height() + 1) / state.params().epoch_length_blocks.max(1);
        let members = match &self.inner.engine {
            Engine::Solo(_) => self
                .inner
                .genesis
                .validators
                .iter()
                .map(|v| v.public_key)
                .collect(),
            Engine::Network(_) | Engine::External => {
                consensus::recorded_committee(&self.inner.data_dir, epoch)?.unwrap_or_default()
            }
        };
        Ok(Committee { epoch, members })
    }

    /// The chain summary.
    pub fn status(&self) -> ChainStatus {
        let state = self.state();
        ChainStatus {
            chain_id: state.chain_id().to_string(),
            genesis_hash: state.genesis_hash(),
            height: state.height(),
            time_ms: state.time_ms(),
            last_block_hash: state.last_block_hash(),
            state_root: state.state_root(),
            mempool_txs: self.inner.shared.mempool_txs(),
            node_id: self.inner.node_id,
            peers: self.inner.shared.peers(),
        }
    }

    /// Waits until a block at `height` or higher is finalized; returns early
    /// if the node shuts down first.
    pub async fn wait_for_height(&self, height: u64) {
        let mut finalized = self.inner.shared.height();
        // An error means the node shut down: there is nothing left to wait for.
        let _ = finalized.wait_for(|finalized| *finalized >= height).await;
    }

    /// Stops producing blocks after the one in progress and closes the store
    /// cleanly. New submissions are refused from the start; calling it again
    /// is harmless.
    pub async fn shutdown(&self) {
        self.inner.shared.stop_accepting();
        if let Engine::Solo(mailbox) = &self.inner.engine {
            mailbox.stop().await;
        }
        let node = self.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || node.close()).await {
            tracing::error!(%error, "closing the store failed");
        }
        tracing::info!("node shut down");
    }

    /// Stops a network engine (waiting for its thread) and closes the store,
    /// without an async runtime. For a node opened with [`Node::open`] the
    /// caller stops its engine first. Calling it again is harmless.
    pub fn close(&self) {
        self.inner.shared.stop_accepting();
        if let Engine::Network(running) = &self.inner.engine
            && let Some(running) = running.get()
        {
            running.stop();
        }
        self.inner.shared.close();
    }
}

/// Which engine a node is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EngineKind {
    Solo,
    Network,
    External,
}

/// Opens the store and loads its state, committing the genesis on first start.
fn open(data_dir: &std::path::Path, genesis: &Genesis) -> Result<(Store, State), ChainError> {
    let store = Store::open(data_dir, genesis)?;
    let state = match store.load()? {
        Some(state) => state,
        None => {
            let (state, changes) =
                State::from_genesis(genesis).map_err(|e| ChainError::Genesis(e.to_string()))?;
            store.commit_genesis(genesis, &changes)?;
            state
        }
    };
    if state.genesis_hash() != genesis.hash() {
        return Err(ChainError::Genesis(format!(
            "the stored state belongs to genesis {} but the configured genesis is {}",
            state.genesis_hash(),
            genesis.hash()
        )));
    }
    Ok((store, state))
}
