//! The application a consensus engine drives: it builds proposals from the
//! mempool, checks blocks with the ledger, and persists finalized ones.
//!
//! The engine decides which block comes next and when it is final; the
//! application decides what is valid. The single-validator engine
//! ([`crate::solo`]) calls the three steps in a row on every tick; a BFT
//! engine calls `propose` when its node leads a view, `verify` on a
//! proposal from another validator, and `finalized` when a block gathers a
//! finalization certificate. Blocks are finalized in height order.
//!
//! Proposals and verified blocks that are not finalized yet are kept (with
//! their outcome) so that a later block may build on them and so that
//! finalizing one does not execute it again. At most [`UNFINALIZED_BLOCKS_MAX`]
//! are kept; the oldest goes first.
//!
//! The wall clock is read by the engine and passed in as `now_ms`: the
//! application, like the ledger, never reads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flux_ledger::{
    BlockContext, BlockError, Outcome, State, TxError, apply_block_with, build_block_verified,
};
use flux_store::StoreError;
use flux_types::codec::{BLOCK_SIZE_BYTES_MAX, BLOCK_TXS_MAX};
use flux_types::{Block, Hash, PublicKey};
use tokio::sync::Notify;

use crate::shared::Shared;

/// Unfinalized blocks (own proposals and verified ones) kept with their outcome.
pub(crate) const UNFINALIZED_BLOCKS_MAX: usize = 64;
/// How far ahead of this node's clock a block's time may be, ms.
pub(crate) const BLOCK_TIME_AHEAD_MS_MAX: u64 = 5_000;
/// Room left in a block's byte budget for its header and length prefixes.
const BLOCK_HEADER_BYTES_RESERVE: usize = 4 * 1024;
/// Most encoded transaction bytes put into one block, so that every block
/// decodes within [`BLOCK_SIZE_BYTES_MAX`] on every peer.
pub(crate) const BLOCK_TXS_BYTES_MAX: usize = BLOCK_SIZE_BYTES_MAX - BLOCK_HEADER_BYTES_RESERVE;

/// Why a step of the application failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplicationError {
    /// The parent is neither the finalized tip nor a kept unfinalized block.
    #[error("parent block {0} is neither finalized nor verified by this node")]
    UnknownParent(Hash),
    /// A finalized block that does not extend the finalized tip.
    #[error("block {height} does not extend the finalized tip at height {tip_height}")]
    NotNext {
        /// The block's height.
        height: u64,
        /// The finalized height.
        tip_height: u64,
    },
    /// A block time too far ahead of this node's clock.
    #[error(
        "block time {timestamp_ms} ms is more than {BLOCK_TIME_AHEAD_MS_MAX} ms ahead of this node's clock ({now_ms} ms)"
    )]
    FromTheFuture {
        /// The block's time.
        timestamp_ms: u64,
        /// This node's clock.
        now_ms: u64,
    },
    /// The ledger refuses the block.
    #[error(transparent)]
    Invalid(#[from] BlockError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a consensus engine drives.
pub(crate) trait Application: Send + Sync + 'static {
    /// Height and hash of the last finalized block (zero hash at genesis).
    fn last_finalized(&self) -> (u64, Hash);

    /// Builds a block on `parent` (the finalized tip or a kept unfinalized
    /// block) with the best transactions of the mempool, timed at `now_ms`
    /// or just after the parent, whichever is later.
    fn propose(&self, parent: Hash, now_ms: u64) -> Result<Block, ApplicationError>;

    /// Checks a proposed block: its parent is known, its time is not ahead
    /// of `now_ms` by more than [`BLOCK_TIME_AHEAD_MS_MAX`], and the ledger
    /// accepts it. An own proposal passes without being executed again.
    fn verify(&self, block: &Block, now_ms: u64) -> Result<(), ApplicationError>;

    /// Persists a finalized block and makes its state the node's latest. A
    /// block at or below the finalized height is accepted without effect if
    /// it is the one stored there (engines may deliver a block twice).
    fn finalized(&self, block: Block) -> Result<(), ApplicationError>;

    /// Whether the mempool holds a transaction a block on `parent` could
    /// include (false if `parent` is unknown).
    fn has_work(&self, parent: Hash) -> bool;

    /// Notified when transactions enter the mempool.
    fn arrivals(&self) -> &Notify;
}

/// A block executed but not finalized.
struct Unfinalized {
    height: u64,
    outcome: Outcome,
    /// Mempool transactions the builder left out, with the reason (own proposals only).
    rejected: Vec<(Hash, TxError)>,
}

/// The application backed by the ledger, the mempool and the store.
pub(crate) struct Ledger {
    shared: Arc<Shared>,
    proposer: PublicKey,
    unfinalized: Mutex<HashMap<Hash, Unfinalized>>,
}

impl Ledger {
    pub(crate) fn new(shared: Arc<Shared>, proposer: PublicKey) -> Ledger {
        Ledger {
            shared,
            proposer,
            unfinalized: Mutex::new(HashMap::new()),
        }
    }

    fn unfinalized(&self) -> MutexGuard<'_, HashMap<Hash, Unfinalized>> {
        self.unfinalized
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The state after `parent`.
    fn state_after(&self, parent: Hash) -> Result<State, ApplicationError> {
        self.state_of(parent)
            .ok_or(ApplicationError::UnknownParent(parent))
    }

    /// The state after block `hash`, if it is a kept unfinalized block or
    /// the finalized tip. The kept blocks are asked first: finalizing swaps
    /// the state before it drops kept blocks, so a block being finalized
    /// meanwhile is found in one place or the other.
    pub(crate) fn state_of(&self, hash: Hash) -> Option<State> {
        if let Some(kept) = self.unfinalized().get(&hash) {
            return Some(kept.outcome.state.clone());
        }
        let finalized = self.shared.state();
        (finalized.last_block_hash() == hash).then_some(finalized)
    }

    /// The latest finalized state.
    pub(crate) fn finalized_state(&self) -> State {
        self.shared.state()
    }

    /// The shared node state.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn keep(&self, hash: Hash, kept: Unfinalized) {
        let mut unfinalized = self.unfinalized();
        while unfinalized.len() >= UNFINALIZED_BLOCKS_MAX {
            let oldest = unfinalized
                .iter()
                .min_by_key(|(_, kept)| kept.height)
                .map(|(hash, _)| *hash);
            match oldest {
                Some(oldest) => unfinalized.remove(&oldest),
                None => break,
            };
        }
        unfinalized.insert(hash, kept);
    }
}

impl Application for Ledger {
    fn last_finalized(&self) -> (u64, Hash) {
        let state = self.shared.state();
        (state.height(), state.last_block_hash())
    }

    fn has_work(&self, parent: Hash) -> bool {
        self.state_of(parent)
            .is_some_and(|state| self.shared.has_includable(&state))
    }

    fn arrivals(&self) -> &Notify {
        self.shared.arrivals()
    }

    fn propose(&self, parent: Hash, now_ms: u64) -> Result<Block, ApplicationError> {
        let state = self.state_after(parent)?;
        let txs_max = (state.params().block_txs_max as usize).min(BLOCK_TXS_MAX);
        let candidates =
            self.shared
                .pool()
                .mempool
                .candidates(&state, txs_max, BLOCK_TXS_BYTES_MAX);
        let timestamp_ms = now_ms.max(state.time_ms() + 1);
        // Every candidate's signature was verified when the mempool admitted it.
        let built = build_block_verified(
            &state,
            &BlockContext {
                timestamp_ms,
                proposer: self.proposer,
            },
            candidates,
        );
        let block = built.block;
        self.keep(
            block.hash(),
            Unfinalized {
                height: block.height(),
                outcome: built.outcome,
                rejected: built.rejected,
            },
        );
        Ok(block)
    }

    fn verify(&self, block: &Block, now_ms: u64) -> Result<(), ApplicationError> {
        let hash = block.hash();
        if self.unfinalized().contains_key(&hash) {
            return Ok(());
        }
        let timestamp_ms = block.header.timestamp_ms;
        if timestamp_ms > now_ms.saturating_add(BLOCK_TIME_AHEAD_MS_MAX) {
            return Err(ApplicationError::FromTheFuture {
                timestamp_ms,
                now_ms,
            });
        }
        let state = self.state_after(block.header.parent)?;
        let outcome = apply_block_with(&state, block, |hash| self.shared.pending(hash))?;
        self.keep(
            hash,
            Unfinalized {
                height: block.height(),
                outcome,
                rejected: Vec::new(),
            },
        );
        Ok(())
    }

    fn finalized(&self, block: Block) -> Result<(), ApplicationError> {
        let finalized = self.shared.state();
        let height = block.height();
        if height <= finalized.height() {
            // Delivered again (an engine replays what it finalized before a
            // restart): it must be the block already stored at that height.
            let hash = block.hash();
            let stored = if height == finalized.height() {
                Some(finalized.last_block_hash())
            } else {
                self.shared.store.block(height)?.map(|b| b.hash())
            };
            assert_eq!(
                stored,
                Some(hash),
                "two different blocks finalized at height {height}: safety is broken, stopping"
            );
            return Ok(());
        }
        if height != finalized.height() + 1 || block.header.parent != finalized.last_block_hash() {
            return Err(ApplicationError::NotNext {
                height,
                tip_height: finalized.height(),
            });
        }
        let hash = block.hash();
        let kept = self.unfinalized().remove(&hash);
        let Unfinalized {
            outcome, rejected, ..
        } = match kept {
            Some(kept) => kept,
            // Finalized without having been verified here (a certificate from peers).
            None => Unfinalized {
                height,
                outcome: apply_block_with(&finalized, &block, |hash| self.shared.pending(hash))?,
                rejected: Vec::new(),
            },
        };
        self.shared
            .store
            .commit_block(&block, &outcome.receipts, &outcome.changes)?;
        for event in &outcome.events {
            tracing::info!(height, ?event, "ledger event");
        }
        let txs = block.txs.len();
        self.shared.advance(&block, outcome.state, &rejected);
        // Anything kept at or below this height lost its chance.
        self.unfinalized().retain(|_, kept| kept.height > height);
        if txs > 0 || !rejected.is_empty() {
            let (mempool_txs, mempool_bytes) = self.shared.mempool_usage();
            tracing::info!(height, %hash, txs, rejected = rejected.len(), mempool_txs, mempool_bytes, "block finalized");
        } else {
            tracing::debug!(height, %hash, "empty block finalized");
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! A test double of the application, for engines.

    use std::sync::Mutex;

    use flux_types::BlockHeader;

    use super::*;

    /// An application that chains empty blocks and records every call.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub(crate) calls: Mutex<Vec<String>>,
        pub(crate) finalized: Mutex<(u64, Hash)>,
        /// `finalized` fails at this height.
        pub(crate) fail_at: Option<u64>,
        /// What `has_work` answers.
        pub(crate) work: std::sync::atomic::AtomicBool,
        pub(crate) arrivals: Notify,
    }

    impl Application for Recorder {
        fn last_finalized(&self) -> (u64, Hash) {
            *self.finalized.lock().unwrap()
        }

        fn propose(&self, parent: Hash, now_ms: u64) -> Result<Block, ApplicationError> {
            let (height, _) = self.last_finalized();
            self.calls
                .lock()
                .unwrap()
                .push(format!("propose {}", height + 1));
            let header = BlockHeader {
                height: height + 1,
                parent,
                timestamp_ms: now_ms,
                proposer: flux_types::SecretKey::development("recorder").public_key(),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
            };
            Ok(Block {
                header,
                txs: Vec::new(),
            })
        }

        fn verify(&self, block: &Block, _now_ms: u64) -> Result<(), ApplicationError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("verify {}", block.height()));
            Ok(())
        }

        fn finalized(&self, block: Block) -> Result<(), ApplicationError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("finalized {}", block.height()));
            if self.fail_at == Some(block.height()) {
                return Err(ApplicationError::Store(StoreError::Closed));
            }
            *self.finalized.lock().unwrap() = (block.height(), block.hash());
            Ok(())
        }

        fn has_work(&self, _parent: Hash) -> bool {
            self.work.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn arrivals(&self) -> &Notify {
            &self.arrivals
        }
    }
}
