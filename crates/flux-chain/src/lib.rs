//! Order Flux transactions into finalized blocks: mempool, block building and the consensus engine.
//!
//! [`Node`] is the handle the API and the CLI use; everything behind it
//! (mempool, producer, store) is private to this crate.

use std::path::PathBuf;
use std::sync::Arc;

use flux_ledger::{Receipt, State, TxError};
use flux_types::{Address, Block, Genesis, Hash, SecretKey, SignedTransaction};
use serde::{Deserialize, Serialize};

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Directory of the node's database.
    pub data_dir: PathBuf,
    /// The network's genesis.
    pub genesis: Genesis,
    /// The node's own key (proposer identity).
    pub node_key: SecretKey,
    /// Interval between blocks, ms.
    pub block_interval_ms: u64,
    /// Most transactions held in the mempool.
    pub mempool_txs_max: usize,
    /// Most bytes of transactions held in the mempool.
    pub mempool_bytes_max: usize,
}

/// Why a transaction was not accepted into the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The ledger refuses it.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Already in the mempool or already committed.
    #[error("transaction {0} was already submitted")]
    Duplicate(Hash),
    /// The mempool is at its limit.
    #[error("the mempool is full ({txs} transactions, {bytes} bytes); retry in a few seconds or raise the fee")]
    MempoolFull {
        /// Transactions held.
        txs: usize,
        /// Bytes held.
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

/// A running node: cheap to clone, shared by the API and the CLI.
#[derive(Clone)]
pub struct Node {
    inner: Arc<()>,
}

impl Node {
    /// Opens (or creates) the store in `config.data_dir`, restores the last
    /// committed state, and starts producing blocks.
    pub async fn start(config: NodeConfig) -> Result<Node, ChainError> {
        let _ = config;
        unimplemented!()
    }

    /// The latest finalized state (an O(1) snapshot).
    pub fn state(&self) -> State {
        unimplemented!()
    }

    /// Checks a transaction and adds it to the mempool; returns its hash.
    pub fn submit(&self, tx: SignedTransaction) -> Result<Hash, SubmitError> {
        let _ = tx;
        unimplemented!()
    }

    /// The next nonce for `address`, counting its transactions in the mempool.
    pub fn next_nonce(&self, address: &Address) -> u64 {
        let _ = address;
        unimplemented!()
    }

    /// Where a transaction is.
    pub fn tx_status(&self, hash: &Hash) -> Result<TxStatus, ChainError> {
        let _ = hash;
        unimplemented!()
    }

    /// A finalized block.
    pub fn block(&self, height: u64) -> Result<Option<Block>, ChainError> {
        let _ = height;
        unimplemented!()
    }

    /// The chain summary.
    pub fn status(&self) -> ChainStatus {
        unimplemented!()
    }

    /// Waits until a block at `height` or higher is finalized.
    pub async fn wait_for_height(&self, height: u64) {
        let _ = height;
        unimplemented!()
    }

    /// Stops producing blocks and closes the store cleanly.
    pub async fn shutdown(&self) {
        let _ = &self.inner;
        unimplemented!()
    }
}
