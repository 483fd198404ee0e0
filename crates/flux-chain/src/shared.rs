//! What the node handle and the application share: the store, the latest
//! finalized state, the mempool and the height watchers.
//!
//! Lock order, to rule out deadlocks: `pool` before `state`. The state is
//! swapped and the mempool pruned inside one `pool` critical section, so a
//! submission sees either the old state with the old mempool or the new state
//! with the pruned one, never a mix.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use flux_ledger::{State, TxError};
use flux_store::{Store, StoreError};
use flux_types::{Address, Block, Hash, SignedTransaction};
use tokio::sync::{Notify, watch};

use crate::mempool::{Inserted, Limits, Mempool};
use crate::rejections::{REJECTIONS_MAX, Rejections};
use crate::{ChainError, SubmitError, TxStatus};

/// The mempool and the memory of rejected transactions, under one lock.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) mempool: Mempool,
    pub(crate) rejections: Rejections,
}

/// The node's shared state.
pub(crate) struct Shared {
    pub(crate) store: Store,
    state: RwLock<State>,
    pool: Mutex<Pool>,
    /// Woken when transactions enter the mempool.
    arrivals: Notify,
    /// Dropped at shutdown, which releases every height waiter.
    height_sender: Mutex<Option<watch::Sender<u64>>>,
    height: watch::Receiver<u64>,
    stopping: AtomicBool,
    /// Peers heard from recently (0 without a network).
    peers: AtomicUsize,
    /// Highest finalized height seen on the network (0 if unknown).
    network_height: AtomicU64,
    /// Why the engine stopped, if it stopped on its own.
    failure: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(store: Store, state: State, limits: Limits) -> Shared {
        let (sender, height) = watch::channel(state.height());
        Shared {
            store,
            state: RwLock::new(state),
            pool: Mutex::new(Pool {
                mempool: Mempool::new(limits),
                rejections: Rejections::new(REJECTIONS_MAX),
            }),
            arrivals: Notify::new(),
            height_sender: Mutex::new(Some(sender)),
            height,
            stopping: AtomicBool::new(false),
            peers: AtomicUsize::new(0),
            network_height: AtomicU64::new(0),
            failure: Mutex::new(None),
        }
    }

    /// The latest finalized state.
    pub(crate) fn state(&self) -> State {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What block producers wait on for transactions to arrive: every
    /// submission that adds to the mempool wakes the waiters registered
    /// (`Notified::enable`) before it.
    pub(crate) fn arrivals(&self) -> &Notify {
        &self.arrivals
    }

    /// Whether the mempool holds a transaction a block on top of `state`
    /// could include (the next nonce of its signer there).
    pub(crate) fn has_includable(&self, state: &State) -> bool {
        self.pool().mempool.has_includable(state)
    }

    /// Transactions in the mempool.
    pub(crate) fn mempool_txs(&self) -> usize {
        self.pool().mempool.len()
    }

    /// Transactions and encoded bytes in the mempool.
    pub(crate) fn mempool_usage(&self) -> (usize, usize) {
        let pool = self.pool();
        (pool.mempool.len(), pool.mempool.bytes())
    }

    /// Admits a transaction: not a duplicate, accepted by the ledger against
    /// the latest state, and room in the mempool.
    pub(crate) fn submit(&self, tx: SignedTransaction) -> Result<Hash, SubmitError> {
        self.submit_batch(vec![tx])
            .pop()
            .unwrap_or(Err(SubmitError::ShuttingDown))
    }

    /// Admits many transactions as [`Shared::submit`] admits one, in order,
    /// with their signatures verified in one batch; one result per
    /// transaction.
    pub(crate) fn submit_batch(
        &self,
        txs: Vec<SignedTransaction>,
    ) -> Vec<Result<Hash, SubmitError>> {
        if self.is_stopping() {
            return txs.iter().map(|_| Err(SubmitError::ShuttingDown)).collect();
        }
        let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
        let mut results: Vec<Result<Hash, SubmitError>> = hashes.iter().map(|h| Ok(*h)).collect();
        {
            let pool = self.pool();
            for (result, hash) in results.iter_mut().zip(&hashes) {
                if pool.mempool.contains(hash) {
                    *result = Err(SubmitError::Duplicate(*hash));
                }
            }
        }
        // Only a transaction whose nonce is used can be committed already: the
        // store is asked about those alone (the ledger check below refuses
        // them anyway; the store tells a duplicate from a replay).
        let checked = self.state();
        for ((result, hash), tx) in results.iter_mut().zip(&hashes).zip(&txs) {
            if result.is_err() || tx.tx.nonce >= checked.account(&tx.tx.sender()).nonce {
                continue;
            }
            match self.store.tx_location(hash) {
                Ok(Some(_)) => *result = Err(SubmitError::Duplicate(*hash)),
                Ok(None) => {}
                Err(StoreError::Closed) => *result = Err(SubmitError::ShuttingDown),
                // The ledger check below refuses a committed transaction anyway (its nonce is used).
                Err(error) => {
                    tracing::warn!(%error, tx = %hash, "cannot look up a submitted transaction in the store")
                }
            }
        }
        // The signature checks are the expensive part: run them, in one
        // batch, without holding the lock.
        let (indices, unchecked): (Vec<usize>, Vec<SignedTransaction>) = txs
            .iter()
            .enumerate()
            .filter(|(index, _)| results[*index].is_ok())
            .map(|(index, tx)| (index, tx.clone()))
            .unzip();
        let valid = flux_ledger::signatures_valid(&unchecked);
        for ((index, tx), signature_ok) in indices.iter().zip(&unchecked).zip(valid) {
            let verdict = if signature_ok {
                flux_ledger::check_tx_effect(&checked, tx)
            } else {
                Err(TxError::InvalidSignature {
                    signer: tx.tx.sender(),
                })
            };
            if let Err(error) = verdict {
                results[*index] = Err(error.into());
            }
        }
        let mut pool = self.pool();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        // A block finalized meanwhile: check the effects again against it.
        let recheck = (state.height() != checked.height()).then_some(&*state);
        let height = state.height();
        let mut added = false;
        for ((tx, result), hash) in txs.into_iter().zip(results.iter_mut()).zip(hashes) {
            if result.is_err() {
                continue;
            }
            if let Some(state) = recheck
                && let Err(error) = flux_ledger::check_tx_effect(state, &tx)
            {
                // The block just finalized may be the one that holds it.
                let committed = matches!(error, TxError::NonceUsed { .. })
                    && matches!(self.store.tx_location(&hash), Ok(Some(_)));
                *result = Err(if committed {
                    SubmitError::Duplicate(hash)
                } else {
                    error.into()
                });
                continue;
            }
            match pool.mempool.insert_hashed(tx, hash, height) {
                Ok(Inserted::New) => added = true,
                Ok(Inserted::Replaced(old)) => {
                    added = true;
                    pool.rejections.record(
                        old,
                        "replaced",
                        format!(
                            "replaced by transaction {hash}, which has the same nonce and a higher fee"
                        ),
                    );
                }
                Err(error) => *result = Err(error),
            }
        }
        drop(state);
        drop(pool);
        if added {
            self.arrivals.notify_waiters();
        }
        results
    }

    /// Whether this node admitted `hash` and it is still pending: its
    /// signature was verified here (see [`Mempool`]).
    pub(crate) fn pending(&self, hash: &Hash) -> bool {
        self.pool().mempool.contains(hash)
    }

    /// The next nonce of `address`, counting its pending transactions.
    pub(crate) fn next_nonce(&self, address: &Address) -> u64 {
        let pool = self.pool();
        let committed = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .account(address)
            .nonce;
        pool.mempool.next_nonce(address, committed)
    }

    /// Where a transaction is. The mempool is asked first and the store
    /// second: a block is stored before its transactions leave the mempool,
    /// so a transaction being finalized is never missed in between; a
    /// rejection is recorded in the same step that drops it from the mempool.
    pub(crate) fn tx_status(&self, hash: &Hash) -> Result<TxStatus, ChainError> {
        if self.pool().mempool.contains(hash) {
            return Ok(TxStatus::Pending);
        }
        if let Some(receipt) = self.store.receipt(hash).map_err(ChainError::from)? {
            return Ok(TxStatus::Committed { receipt });
        }
        Ok(match self.pool().rejections.get(hash) {
            Some(rejection) => TxStatus::Rejected {
                code: rejection.code.clone(),
                message: rejection.message.clone(),
            },
            None => TxStatus::Unknown,
        })
    }

    /// Makes a stored block's state the latest: swaps the state, drops the
    /// included, rejected and expired transactions from the mempool, and
    /// wakes the height waiters.
    pub(crate) fn advance(&self, block: &Block, state: State, rejected: &[(Hash, TxError)]) {
        let height = state.height();
        {
            let mut pool = self.pool();
            let senders: std::collections::BTreeSet<Address> =
                block.txs.iter().map(|tx| tx.tx.sender()).collect();
            let nonces: Vec<(Address, u64)> = senders
                .into_iter()
                .map(|sender| (sender, state.account(&sender).nonce))
                .collect();
            *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
            let Pool {
                mempool,
                rejections,
            } = &mut *pool;
            for (hash, error) in rejected {
                // A transaction refused only because an earlier nonce of its
                // signer was refused in the same block waits for the gap to
                // be filled (or expires), as one that arrived early does.
                if matches!(error, TxError::NonceGap { .. }) {
                    continue;
                }
                rejections.record(*hash, error.code(), error.to_string());
                mempool.remove(hash);
            }
            for (sender, next_nonce) in nonces {
                mempool.remove_used(&sender, next_nonce);
            }
            for expired in mempool.expire(height) {
                rejections.record(
                    expired.hash,
                    "expired",
                    format!(
                        "the transaction waited {} blocks without being included, usually because an earlier nonce of its signer is missing; \
                         send the missing transactions, then submit it again",
                        expired.waited_blocks
                    ),
                );
            }
        }
        if let Some(sender) = &*self
            .height_sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            sender.send_replace(height);
        }
    }

    /// A receiver of the finalized height; it closes at shutdown.
    pub(crate) fn height(&self) -> watch::Receiver<u64> {
        self.height.clone()
    }

    /// Peers heard from recently.
    pub(crate) fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    pub(crate) fn set_peers(&self, peers: usize) {
        self.peers.store(peers, Ordering::Relaxed);
    }

    /// Highest finalized height seen on the network, at least this node's.
    pub(crate) fn network_height(&self) -> u64 {
        self.network_height
            .load(Ordering::Relaxed)
            .max(*self.height.borrow())
    }

    pub(crate) fn observe_network_height(&self, height: u64) {
        self.network_height.fetch_max(height, Ordering::Relaxed);
    }

    /// Records that the engine stopped on its own (the first reason wins).
    pub(crate) fn fail(&self, reason: String) {
        if self.is_stopping() {
            return;
        }
        tracing::error!(%reason, "the consensus engine stopped");
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason);
    }

    /// Why the engine stopped on its own, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Refuses new transactions from now on.
    pub(crate) fn stop_accepting(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Closes the store and releases the height waiters.
    pub(crate) fn close(&self) {
        self.store.close();
        self.height_sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[cfg(test)]
mod tests {
    use flux_ledger::{BlockContext, build_block};
    use flux_types::{
        Amount, Genesis, GenesisAccount, GenesisValidator, Params, SecretKey, Transaction, TxBody,
    };

    use super::*;

    #[test]
    fn a_transaction_behind_a_refused_nonce_waits_for_the_gap_to_fill() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let alice = SecretKey::development("alice");
        let validator = SecretKey::development("validator");
        let genesis = Genesis {
            chain_id: "flux-test".into(),
            genesis_time_ms: 1_700_000_000_000,
            params: Params::devnet(),
            accounts: vec![GenesisAccount {
                address: alice.address(),
                balance: Amount::flux(100),
            }],
            validators: vec![GenesisValidator {
                name: "validator".into(),
                public_key: validator.public_key(),
                p2p_endpoint: "127.0.0.1:16125".into(),
                api_endpoint: "127.0.0.1:16127".into(),
            }],
        };
        let (store, state) = crate::open(dir.path(), &genesis).expect("open the store");
        let shared = Shared::new(
            store,
            state.clone(),
            Limits {
                txs_max: 100,
                bytes_max: 1 << 20,
            },
        );
        let transfer = |nonce: u64, flux: u64| {
            Transaction {
                chain_id: genesis.chain_id.clone(),
                signer: alice.public_key(),
                nonce,
                fee: genesis.params.tx_fee_min,
                body: TxBody::Transfer {
                    to: validator.address(),
                    amount: Amount::flux(flux),
                },
            }
            .sign(&alice)
        };
        let first = shared.submit(transfer(0, 1)).expect("admit nonce 0");
        let second = shared.submit(transfer(1, 1)).expect("admit nonce 1");
        assert_eq!(shared.next_nonce(&alice.address()), 2);

        // A block refused the first (as a late report would be) and so the
        // second for its gap.
        let built = build_block(
            &state,
            &BlockContext {
                timestamp_ms: state.time_ms() + 1_000,
                proposer: validator.public_key(),
            },
            Vec::new(),
        );
        let refused = [
            (
                first,
                TxError::FeeTooLow {
                    min: genesis.params.tx_fee_min,
                    got: Amount::ZERO,
                },
            ),
            (
                second,
                TxError::NonceGap {
                    account: alice.address(),
                    expected: 0,
                    got: 1,
                },
            ),
        ];
        shared.advance(&built.block, built.outcome.state, &refused);

        assert!(matches!(
            shared.tx_status(&first),
            Ok(TxStatus::Rejected { .. })
        ));
        assert!(matches!(shared.tx_status(&second), Ok(TxStatus::Pending)));
        // The next transaction fills the gap, and the waiting one follows it.
        assert_eq!(shared.next_nonce(&alice.address()), 0);
        shared.submit(transfer(0, 2)).expect("fill the gap");
        assert_eq!(shared.next_nonce(&alice.address()), 2);
    }
}
