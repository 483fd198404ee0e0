//! Transactions waiting for a block: bounded, de-duplicated, ordered by nonce
//! per account, and handed to the block builder by fee.
//!
//! Plain state: no locks, no async, no clock. The node wraps it in a mutex
//! and decides when to admit (after the ledger's `check_tx`, or its signature
//! check in a batch and `check_tx_effect`) and when to prune (after every
//! finalized block).
//!
//! Invariant: every transaction held had its signature verified by this node
//! at admission. The block builder and the verifier of peers' blocks rely on
//! it to skip a second verification of exactly those bytes (a hash covers the
//! signature).
//!
//! Limits and what happens at them:
//! - `txs_max` transactions and `bytes_max` encoded bytes: a transaction that
//!   would cross either is refused with [`SubmitError::MempoolFull`]; the pool
//!   never grows past them and never evicts to make room.
//! - [`PENDING_BLOCKS_MAX`]: a transaction still waiting after that many
//!   blocks (typically because an earlier nonce of its account never arrived)
//!   is dropped, so a gap cannot hold space forever.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use flux_ledger::State;
use flux_types::{Address, Amount, Hash, SignedTransaction};

use crate::SubmitError;

/// Blocks a transaction may wait in the mempool before it is dropped.
pub(crate) const PENDING_BLOCKS_MAX: u64 = 600;

/// Bounds of the mempool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most transactions held.
    pub(crate) txs_max: usize,
    /// Most encoded bytes held.
    pub(crate) bytes_max: usize,
}

/// A waiting transaction.
#[derive(Clone, Debug)]
struct Entry {
    tx: SignedTransaction,
    sender: Address,
    nonce: u64,
    fee: Amount,
    size_bytes: usize,
    /// Admission order: the tie-break between equal fees, and the expiry queue's key.
    sequence: u64,
    /// Finalized height when it was admitted.
    admitted_height: u64,
}

/// What [`Mempool::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// Added.
    New,
    /// Took the place of a pending transaction with the same signer and
    /// nonce and a lower fee, which is no longer pending.
    Replaced(Hash),
}

/// A transaction dropped without being included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expired {
    pub(crate) hash: Hash,
    pub(crate) waited_blocks: u64,
}

/// The pool.
#[derive(Debug)]
pub(crate) struct Mempool {
    limits: Limits,
    txs: HashMap<Hash, Entry>,
    /// Per account, its pending transactions by nonce.
    accounts: HashMap<Address, BTreeMap<u64, Hash>>,
    /// Admission order, oldest first: for expiry.
    arrivals: BTreeMap<u64, Hash>,
    bytes: usize,
    next_sequence: u64,
}

impl Mempool {
    pub(crate) fn new(limits: Limits) -> Mempool {
        Mempool {
            limits,
            txs: HashMap::new(),
            accounts: HashMap::new(),
            arrivals: BTreeMap::new(),
            bytes: 0,
            next_sequence: 0,
        }
    }

    /// Transactions held.
    pub(crate) fn len(&self) -> usize {
        self.txs.len()
    }

    /// Encoded bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn contains(&self, hash: &Hash) -> bool {
        self.txs.contains_key(hash)
    }

    /// Adds a transaction that the ledger has accepted against the latest
    /// state, admitted at finalized height `height`.
    ///
    /// A second transaction with the same signer and nonce replaces the
    /// pending one only if it pays a strictly higher fee; otherwise it is
    /// refused as a duplicate of the pending one.
    #[cfg(test)]
    pub(crate) fn insert(
        &mut self,
        tx: SignedTransaction,
        height: u64,
    ) -> Result<Inserted, SubmitError> {
        let hash = tx.hash();
        self.insert_hashed(tx, hash, height)
    }

    /// [`Mempool::insert`] of a transaction whose hash the caller computed.
    pub(crate) fn insert_hashed(
        &mut self,
        tx: SignedTransaction,
        hash: Hash,
        height: u64,
    ) -> Result<Inserted, SubmitError> {
        debug_assert_eq!(hash, tx.hash());
        if self.txs.contains_key(&hash) {
            return Err(SubmitError::Duplicate(hash));
        }
        let sender = tx.tx.sender();
        let nonce = tx.tx.nonce;
        let size_bytes = tx.size_bytes();
        let same_nonce = self
            .accounts
            .get(&sender)
            .and_then(|queue| queue.get(&nonce))
            .copied();
        let (freed_txs, freed_bytes) = match same_nonce {
            Some(pending) => {
                let entry = &self.txs[&pending];
                if tx.tx.fee <= entry.fee {
                    return Err(SubmitError::Duplicate(pending));
                }
                (1, entry.size_bytes)
            }
            None => (0, 0),
        };
        let txs_after = self.txs.len() - freed_txs + 1;
        let bytes_after = self.bytes - freed_bytes + size_bytes;
        if txs_after > self.limits.txs_max || bytes_after > self.limits.bytes_max {
            return Err(SubmitError::MempoolFull {
                txs: self.limits.txs_max,
                bytes: self.limits.bytes_max,
            });
        }
        if let Some(pending) = same_nonce {
            self.remove(&pending);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.accounts.entry(sender).or_default().insert(nonce, hash);
        self.arrivals.insert(sequence, hash);
        self.bytes += size_bytes;
        let fee = tx.tx.fee;
        self.txs.insert(
            hash,
            Entry {
                tx,
                sender,
                nonce,
                fee,
                size_bytes,
                sequence,
                admitted_height: height,
            },
        );
        Ok(same_nonce.map_or(Inserted::New, Inserted::Replaced))
    }

    /// Removes a transaction; returns whether it was held.
    pub(crate) fn remove(&mut self, hash: &Hash) -> bool {
        let Some(entry) = self.txs.remove(hash) else {
            return false;
        };
        self.bytes -= entry.size_bytes;
        self.arrivals.remove(&entry.sequence);
        if let Some(queue) = self.accounts.get_mut(&entry.sender) {
            queue.remove(&entry.nonce);
            if queue.is_empty() {
                self.accounts.remove(&entry.sender);
            }
        }
        true
    }

    /// Removes the transactions of `sender` whose nonce is below `next_nonce`
    /// (they were included, or can never be); returns their hashes.
    pub(crate) fn remove_used(&mut self, sender: &Address, next_nonce: u64) -> Vec<Hash> {
        let used: Vec<Hash> = match self.accounts.get(sender) {
            Some(queue) => queue.range(..next_nonce).map(|(_, hash)| *hash).collect(),
            None => return Vec::new(),
        };
        for hash in &used {
            self.remove(hash);
        }
        used
    }

    /// Drops what has waited more than [`PENDING_BLOCKS_MAX`] blocks at finalized height `height`.
    pub(crate) fn expire(&mut self, height: u64) -> Vec<Expired> {
        let mut expired = Vec::new();
        while let Some((_, hash)) = self.arrivals.first_key_value() {
            let waited_blocks = height.saturating_sub(self.txs[hash].admitted_height);
            if waited_blocks <= PENDING_BLOCKS_MAX {
                break;
            }
            let hash = *hash;
            self.remove(&hash);
            expired.push(Expired {
                hash,
                waited_blocks,
            });
        }
        expired
    }

    /// The next nonce of `sender` counting its pending transactions that
    /// follow `committed_nonce` without a gap.
    pub(crate) fn next_nonce(&self, sender: &Address, committed_nonce: u64) -> u64 {
        let mut next = committed_nonce;
        if let Some(queue) = self.accounts.get(sender) {
            for nonce in queue.range(committed_nonce..).map(|(nonce, _)| *nonce) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Whether a block on top of `state` could include a held transaction:
    /// some account's next nonce in `state` is pending. Stops at the first.
    pub(crate) fn has_includable(&self, state: &State) -> bool {
        self.accounts
            .iter()
            .any(|(sender, queue)| queue.contains_key(&state.account(sender).nonce))
    }

    /// Transactions for a block on top of `state`: highest fee first across
    /// accounts (ties in admission order), each account strictly in nonce
    /// order from its next nonce in `state`, at most `txs_max` transactions
    /// and `bytes_max` encoded bytes.
    pub(crate) fn candidates(
        &self,
        state: &State,
        txs_max: usize,
        bytes_max: usize,
    ) -> Vec<SignedTransaction> {
        // The heap holds at most one transaction per account: the next one it may include.
        let mut heads = BinaryHeap::with_capacity(self.accounts.len());
        for (sender, queue) in &self.accounts {
            let next = state.account(sender).nonce;
            if let Some(hash) = queue.get(&next) {
                heads.push(self.head(hash));
            }
        }
        let mut chosen = Vec::new();
        let mut bytes = 0;
        while let Some(Head { hash, .. }) = heads.pop() {
            if chosen.len() >= txs_max {
                break;
            }
            let entry = &self.txs[&hash];
            if bytes + entry.size_bytes > bytes_max {
                // Its successors cannot go before it; other accounts may still fit.
                continue;
            }
            bytes += entry.size_bytes;
            chosen.push(entry.tx.clone());
            if let Some(next) = self.accounts[&entry.sender].get(&(entry.nonce + 1)) {
                heads.push(self.head(next));
            }
        }
        chosen
    }

    fn head(&self, hash: &Hash) -> Head {
        let entry = &self.txs[hash];
        Head {
            fee: entry.fee,
            sequence: Reverse(entry.sequence),
            hash: *hash,
        }
    }
}

/// An account's next includable transaction, ordered by fee then age.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    fee: Amount,
    sequence: Reverse<u64>,
    hash: Hash,
}

#[cfg(test)]
mod tests {
    use flux_types::{
        Genesis, GenesisAccount, GenesisValidator, Params, SecretKey, Transaction, TxBody,
    };

    use super::*;

    const CHAIN_ID: &str = "mempool-test";

    fn state() -> State {
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 1_700_000_000_000,
            params: Params::devnet(),
            accounts: ["a", "b", "c"]
                .iter()
                .map(|name| GenesisAccount {
                    address: SecretKey::development(name).address(),
                    balance: Amount::flux(100),
                })
                .collect(),
            validators: vec![GenesisValidator {
                name: "v".into(),
                public_key: SecretKey::development("v").public_key(),
                p2p_endpoint: "127.0.0.1:16125".into(),
                api_endpoint: "127.0.0.1:16127".into(),
            }],
        };
        State::from_genesis(&genesis).unwrap().0
    }

    fn tx(signer: &str, nonce: u64, fee_units: u64) -> SignedTransaction {
        let key = SecretKey::development(signer);
        Transaction {
            chain_id: CHAIN_ID.into(),
            signer: key.public_key(),
            nonce,
            fee: Amount::units(fee_units),
            body: TxBody::Transfer {
                to: SecretKey::development("z").address(),
                amount: Amount::units(1),
            },
        }
        .sign(&key)
    }

    fn pool(txs_max: usize) -> Mempool {
        Mempool::new(Limits {
            txs_max,
            bytes_max: usize::MAX,
        })
    }

    /// (signer, nonce, fee) of each candidate.
    fn picked(pool: &Mempool, txs_max: usize) -> Vec<(String, u64, u64)> {
        let names: HashMap<Address, &str> = ["a", "b", "c"]
            .iter()
            .map(|n| (SecretKey::development(n).address(), *n))
            .collect();
        pool.candidates(&state(), txs_max, usize::MAX)
            .into_iter()
            .map(|t| {
                (
                    names[&t.tx.sender()].to_string(),
                    t.tx.nonce,
                    t.tx.fee.as_units(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_transaction_twice_is_a_duplicate() {
        let mut pool = pool(10);
        let t = tx("a", 0, 10);
        assert_eq!(pool.insert(t.clone(), 0), Ok(Inserted::New));
        assert_eq!(
            pool.insert(t.clone(), 0),
            Err(SubmitError::Duplicate(t.hash()))
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn the_count_limit_is_enforced_and_named() {
        let mut pool = pool(2);
        pool.insert(tx("a", 0, 10), 0).unwrap();
        pool.insert(tx("a", 1, 10), 0).unwrap();
        let full = pool.insert(tx("b", 0, 1_000), 0).unwrap_err();
        assert_eq!(
            full,
            SubmitError::MempoolFull {
                txs: 2,
                bytes: usize::MAX
            }
        );
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn the_byte_limit_is_enforced() {
        let size = tx("a", 0, 10).size_bytes();
        let mut pool = Mempool::new(Limits {
            txs_max: 100,
            bytes_max: 2 * size + size / 2,
        });
        pool.insert(tx("a", 0, 10), 0).unwrap();
        pool.insert(tx("a", 1, 10), 0).unwrap();
        assert!(matches!(
            pool.insert(tx("a", 2, 10), 0),
            Err(SubmitError::MempoolFull { txs: 100, .. })
        ));
        assert_eq!(pool.bytes(), 2 * size);
        pool.remove(&tx("a", 0, 10).hash());
        assert_eq!(pool.bytes(), size);
        pool.insert(tx("a", 2, 10), 0).unwrap();
    }

    #[test]
    fn a_higher_fee_replaces_the_same_nonce_and_a_lower_one_does_not() {
        let mut pool = pool(1);
        let first = tx("a", 0, 10);
        pool.insert(first.clone(), 0).unwrap();
        assert_eq!(
            pool.insert(tx("a", 0, 10), 0),
            Err(SubmitError::Duplicate(first.hash()))
        );
        assert_eq!(
            pool.insert(tx("a", 0, 5), 0),
            Err(SubmitError::Duplicate(first.hash()))
        );
        // Replacing does not need a free slot: the pool is full at one transaction.
        assert_eq!(
            pool.insert(tx("a", 0, 20), 0),
            Ok(Inserted::Replaced(first.hash()))
        );
        assert!(!pool.contains(&first.hash()));
        assert_eq!(picked(&pool, 10), vec![("a".into(), 0, 20)]);
    }

    #[test]
    fn only_a_next_nonce_makes_a_transaction_includable() {
        let mut pool = pool(10);
        assert!(!pool.has_includable(&state()));
        // A gap: nonce 1 waits for nonce 0, so no block can take it yet.
        pool.insert(tx("a", 1, 10), 0).unwrap();
        assert!(!pool.has_includable(&state()));
        pool.insert(tx("a", 0, 10), 0).unwrap();
        assert!(pool.has_includable(&state()));
    }

    #[test]
    fn candidates_go_by_fee_across_accounts_and_by_nonce_within_one() {
        let mut pool = pool(100);
        // a's second transaction pays the most, but cannot go before its first.
        pool.insert(tx("a", 1, 900), 0).unwrap();
        pool.insert(tx("a", 0, 10), 0).unwrap();
        pool.insert(tx("b", 0, 50), 0).unwrap();
        pool.insert(tx("b", 1, 40), 0).unwrap();
        pool.insert(tx("c", 0, 30), 0).unwrap();
        assert_eq!(
            picked(&pool, 100),
            vec![
                ("b".into(), 0, 50),
                ("b".into(), 1, 40),
                ("c".into(), 0, 30),
                ("a".into(), 0, 10),
                ("a".into(), 1, 900)
            ]
        );
        assert_eq!(
            picked(&pool, 2),
            vec![("b".into(), 0, 50), ("b".into(), 1, 40)]
        );
    }

    #[test]
    fn equal_fees_go_in_admission_order() {
        let mut pool = pool(100);
        pool.insert(tx("c", 0, 10), 0).unwrap();
        pool.insert(tx("a", 0, 10), 0).unwrap();
        pool.insert(tx("b", 0, 10), 0).unwrap();
        let order: Vec<String> = picked(&pool, 100)
            .into_iter()
            .map(|(name, ..)| name)
            .collect();
        assert_eq!(order, ["c", "a", "b"]);
    }

    #[test]
    fn a_gap_holds_back_the_account_only() {
        let mut pool = pool(100);
        pool.insert(tx("a", 1, 10), 0).unwrap();
        pool.insert(tx("b", 0, 10), 0).unwrap();
        assert_eq!(picked(&pool, 100), vec![("b".into(), 0, 10)]);
        let a = SecretKey::development("a").address();
        assert_eq!(pool.next_nonce(&a, 0), 0);
        pool.insert(tx("a", 0, 10), 0).unwrap();
        assert_eq!(pool.next_nonce(&a, 0), 2);
        assert_eq!(pool.next_nonce(&a, 1), 2);
        assert_eq!(pool.next_nonce(&a, 5), 5);
    }

    #[test]
    fn the_byte_budget_of_a_block_skips_what_does_not_fit() {
        let mut pool = pool(100);
        pool.insert(tx("a", 0, 10), 0).unwrap();
        pool.insert(tx("b", 0, 5), 0).unwrap();
        let size = tx("a", 0, 10).size_bytes();
        assert_eq!(pool.candidates(&state(), 100, size).len(), 1);
        assert_eq!(pool.candidates(&state(), 100, size - 1).len(), 0);
    }

    #[test]
    fn used_nonces_are_pruned() {
        let mut pool = pool(100);
        for nonce in 0..4 {
            pool.insert(tx("a", nonce, 10), 0).unwrap();
        }
        let a = SecretKey::development("a").address();
        let used = pool.remove_used(&a, 2);
        assert_eq!(used, vec![tx("a", 0, 10).hash(), tx("a", 1, 10).hash()]);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.next_nonce(&a, 2), 4);
        assert!(
            pool.remove_used(&SecretKey::development("b").address(), 10)
                .is_empty()
        );
    }

    #[test]
    fn old_transactions_expire_oldest_first() {
        let mut pool = pool(100);
        pool.insert(tx("a", 5, 10), 1).unwrap();
        pool.insert(tx("b", 5, 10), 3).unwrap();
        assert!(pool.expire(1 + PENDING_BLOCKS_MAX).is_empty());
        let expired = pool.expire(2 + PENDING_BLOCKS_MAX);
        assert_eq!(
            expired,
            vec![Expired {
                hash: tx("a", 5, 10).hash(),
                waited_blocks: PENDING_BLOCKS_MAX + 1
            }]
        );
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.expire(10 + PENDING_BLOCKS_MAX).len(), 1);
        assert_eq!((pool.len(), pool.bytes()), (0, 0));
    }
}
