//! Persist Flux blocks and state in redb, one atomic commit per block.
//!
//! One file, `DIR/chain.redb`, holds everything a node has finalized: the
//! genesis, every block by height, an index from transaction hash to its
//! place in a block, every receipt, the ledger's state rows and the tip.
//! [`Store::commit_genesis`] and [`Store::commit_block`] each write all of it
//! in a single redb write transaction, committed with redb's default
//! durability (an fsync on commit). A process killed at any moment therefore
//! reopens at the previous block or at the new one, never between them.
//!
//! Architecture invariant: the store never interprets the state. It keeps the
//! rows that [`flux_ledger::Changes`] lists and hands them back to
//! [`State::restore`]; what they mean is the ledger's business.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use flux_ledger::{Changes, Receipt, RestoreError, State};
use flux_types::{Block, Genesis, Hash};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Name of the database file inside the data directory.
pub const DB_FILE_NAME: &str = "chain.redb";

/// Key-value rows of the ledger state: encoded key -> encoded value.
const STATE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state");
/// Finalized blocks by height (borsh).
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
/// Transaction hash -> (height, index in the block).
const TXS: TableDefinition<'_, &[u8; 32], (u64, u32)> = TableDefinition::new("txs");
/// Transaction hash -> receipt (JSON, the receipt's only stable encoding).
const RECEIPTS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("receipts");
/// Chain metadata: genesis, genesis hash, height and hash of the tip.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

const META_GENESIS: &str = "genesis";
const META_GENESIS_HASH: &str = "genesis_hash";
const META_HEIGHT: &str = "height";
const META_TIP_HASH: &str = "tip_hash";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk holding the database has no space left.
    #[error(
        "the disk holding {path} is full; free some space and restart the node (nothing was half-written)"
    )]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// Any other input/output failure.
    #[error(
        "input/output error on {path}: {source}; check the disk and the directory's permissions"
    )]
    Io {
        /// The database file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another process (or another node in this process) has the database open.
    #[error("{path} is already in use by another node; stop it or choose another data directory")]
    AlreadyOpen {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a different genesis.
    #[error(
        "the database in {path} belongs to the chain with genesis {stored}, but the configured genesis is {given}; \
         use the genesis this directory was created with, or another data directory"
    )]
    GenesisMismatch {
        /// The database file.
        path: PathBuf,
        /// Hash of the genesis in the database.
        stored: Hash,
        /// Hash of the genesis given.
        given: Hash,
    },
    /// A genesis is already stored.
    #[error("{path} already holds a chain; a genesis is committed only once")]
    AlreadyInitialized {
        /// The database file.
        path: PathBuf,
    },
    /// No genesis is stored yet.
    #[error("{path} holds no chain yet; commit the genesis first")]
    NotInitialized {
        /// The database file.
        path: PathBuf,
    },
    /// The block does not extend the stored tip.
    #[error("block {height} does not extend the stored tip (height {tip_height}, hash {tip_hash})")]
    NotNext {
        /// Height of the refused block.
        height: u64,
        /// Height of the stored tip.
        tip_height: u64,
        /// Hash of the stored tip.
        tip_hash: Hash,
    },
    /// Stored data cannot be read back.
    #[error(
        "the database {path} is corrupt: {reason}; restore the directory from a backup or start a new one"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Another failure of the database engine.
    #[error("database {path}: {reason}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The engine's message.
        reason: String,
    },
}

/// Where a committed transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

/// The last committed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Its height (0 when only the genesis is stored).
    pub height: u64,
    /// Its hash (zero when only the genesis is stored).
    pub hash: Hash,
}

/// The node's database. Shared by reference between the block producer (the
/// only writer) and readers; redb lets reads proceed while a block commits.
pub struct Store {
    path: PathBuf,
    /// `None` once closed: the database file is unlocked when it is dropped.
    db: RwLock<Option<Database>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens `dir/chain.redb`, creating the directory and the file if needed.
    /// Refuses a database that was created with another genesis.
    pub fn open(dir: &Path, genesis: &Genesis) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE_NAME);
        std::fs::create_dir_all(dir).map_err(|source| io_error(&path, source))?;
        let db = Database::create(&path).map_err(|e| classify(&path, e))?;
        let store = Store {
            path,
            db: RwLock::new(Some(db)),
        };
        // Create every table up front so that readers never meet a missing one.
        store.write(|txn, path| {
            txn.open_table(STATE).map_err(|e| classify(path, e))?;
            txn.open_table(BLOCKS).map_err(|e| classify(path, e))?;
            txn.open_table(TXS).map_err(|e| classify(path, e))?;
            txn.open_table(RECEIPTS).map_err(|e| classify(path, e))?;
            txn.open_table(META).map_err(|e| classify(path, e))?;
            Ok(())
        })?;
        if let Some(stored) = store.genesis_hash()? {
            let given = genesis.hash();
            if stored != given {
                return Err(StoreError::GenesisMismatch {
                    path: store.path.clone(),
                    stored,
                    given,
                });
            }
        }
        tracing::debug!(path = %store.path.display(), "store opened");
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hash of the stored genesis, if any.
    pub fn genesis_hash(&self) -> Result<Option<Hash>, StoreError> {
        self.read(|txn, path| {
            let meta = txn.open_table(META).map_err(|e| classify(path, e))?;
            let value = meta.get(META_GENESIS_HASH).map_err(|e| classify(path, e))?;
            value
                .map(|v| hash_from(path, "genesis hash", v.value()))
                .transpose()
        })
    }

    /// The stored genesis, if any.
    pub fn genesis(&self) -> Result<Option<Genesis>, StoreError> {
        self.read(|txn, path| {
            let meta = txn.open_table(META).map_err(|e| classify(path, e))?;
            let value = meta.get(META_GENESIS).map_err(|e| classify(path, e))?;
            value
                .map(|v| decode(path, "genesis", v.value()))
                .transpose()
        })
    }

    /// The last committed block; `None` when no genesis is stored.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        self.read(|txn, path| {
            let meta = txn.open_table(META).map_err(|e| classify(path, e))?;
            read_tip(&meta, path)
        })
    }

    /// Stores the genesis and the state rows it creates, in one transaction.
    pub fn commit_genesis(&self, genesis: &Genesis, changes: &Changes) -> Result<(), StoreError> {
        self.write(|txn, path| {
            let mut meta = txn.open_table(META).map_err(|e| classify(path, e))?;
            if meta
                .get(META_GENESIS_HASH)
                .map_err(|e| classify(path, e))?
                .is_some()
            {
                return Err(StoreError::AlreadyInitialized {
                    path: path.to_path_buf(),
                });
            }
            let put = |meta: &mut redb::Table<'_, &str, &[u8]>, key: &str, value: &[u8]| {
                meta.insert(key, value)
                    .map(|_| ())
                    .map_err(|e| classify(path, e))
            };
            put(&mut meta, META_GENESIS, &flux_types::codec::encode(genesis))?;
            put(&mut meta, META_GENESIS_HASH, &genesis.hash().0)?;
            put(&mut meta, META_HEIGHT, &0u64.to_le_bytes())?;
            put(&mut meta, META_TIP_HASH, &Hash::ZERO.0)?;
            let mut state = txn.open_table(STATE).map_err(|e| classify(path, e))?;
            write_rows(&mut state, changes, path)
        })?;
        tracing::info!(genesis = %genesis.hash(), chain_id = %genesis.chain_id, "genesis committed");
        Ok(())
    }

    /// Stores a finalized block with its receipts and state changes, in one
    /// transaction. The block must extend the stored tip.
    ///
    /// # Panics
    ///
    /// If `receipts` does not hold one receipt per transaction of `block`:
    /// that is a bug of the caller, not a condition to recover from.
    pub fn commit_block(
        &self,
        block: &Block,
        receipts: &[Receipt],
        changes: &Changes,
    ) -> Result<(), StoreError> {
        assert_eq!(
            receipts.len(),
            block.txs.len(),
            "one receipt per transaction"
        );
        let height = block.height();
        let hash = block.hash();
        self.write(|txn, path| {
            let mut meta = txn.open_table(META).map_err(|e| classify(path, e))?;
            let tip = read_tip(&meta, path)?.ok_or_else(|| StoreError::NotInitialized {
                path: path.to_path_buf(),
            })?;
            if height != tip.height + 1 || block.header.parent != tip.hash {
                return Err(StoreError::NotNext {
                    height,
                    tip_height: tip.height,
                    tip_hash: tip.hash,
                });
            }
            meta.insert(META_HEIGHT, height.to_le_bytes().as_slice())
                .map_err(|e| classify(path, e))?;
            meta.insert(META_TIP_HASH, hash.0.as_slice())
                .map_err(|e| classify(path, e))?;
            let mut blocks = txn.open_table(BLOCKS).map_err(|e| classify(path, e))?;
            blocks
                .insert(height, flux_types::codec::encode(block).as_slice())
                .map_err(|e| classify(path, e))?;
            let mut txs = txn.open_table(TXS).map_err(|e| classify(path, e))?;
            let mut stored_receipts = txn.open_table(RECEIPTS).map_err(|e| classify(path, e))?;
            for receipt in receipts {
                let json = serde_json::to_vec(receipt).expect("receipts serialize to JSON");
                txs.insert(&receipt.tx_hash.0, (receipt.height, receipt.index))
                    .map_err(|e| classify(path, e))?;
                stored_receipts
                    .insert(&receipt.tx_hash.0, json.as_slice())
                    .map_err(|e| classify(path, e))?;
            }
            let mut state = txn.open_table(STATE).map_err(|e| classify(path, e))?;
            write_rows(&mut state, changes, path)
        })?;
        tracing::debug!(height, hash = %hash, txs = block.txs.len(), "block committed");
        Ok(())
    }

    /// Rebuilds the state of the last committed block; `None` when no genesis
    /// is stored.
    pub fn load(&self) -> Result<Option<State>, StoreError> {
        self.read(|txn, path| {
            let meta = txn.open_table(META).map_err(|e| classify(path, e))?;
            let Some(tip) = read_tip(&meta, path)? else {
                return Ok(None);
            };
            let table = txn.open_table(STATE).map_err(|e| classify(path, e))?;
            let mut rows = Vec::with_capacity(
                usize::try_from(redb::ReadableTableMetadata::len(&table).unwrap_or(0)).unwrap_or(0),
            );
            for row in table.iter().map_err(|e| classify(path, e))? {
                let (key, value) = row.map_err(|e| classify(path, e))?;
                rows.push((key.value().to_vec(), value.value().to_vec()));
            }
            let state = State::restore(rows, tip.hash)
                .map_err(|RestoreError(reason)| corrupt(path, reason))?;
            if state.height() != tip.height {
                return Err(corrupt(
                    path,
                    format!(
                        "state is at height {} but the tip is at {}",
                        state.height(),
                        tip.height
                    ),
                ));
            }
            Ok(Some(state))
        })
    }

    /// A finalized block.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.read(|txn, path| {
            let blocks = txn.open_table(BLOCKS).map_err(|e| classify(path, e))?;
            let value = blocks.get(height).map_err(|e| classify(path, e))?;
            value.map(|v| decode(path, "block", v.value())).transpose()
        })
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        self.read(|txn, path| {
            let txs = txn.open_table(TXS).map_err(|e| classify(path, e))?;
            let value = txs.get(&hash.0).map_err(|e| classify(path, e))?;
            Ok(value.map(|v| {
                let (height, index) = v.value();
                TxLocation { height, index }
            }))
        })
    }

    /// The receipt of a committed transaction.
    pub fn receipt(&self, hash: &Hash) -> Result<Option<Receipt>, StoreError> {
        self.read(|txn, path| {
            let receipts = txn.open_table(RECEIPTS).map_err(|e| classify(path, e))?;
            let value = receipts.get(&hash.0).map_err(|e| classify(path, e))?;
            value
                .map(|v| {
                    serde_json::from_slice(v.value())
                        .map_err(|e| corrupt(path, format!("receipt {hash}: {e}")))
                })
                .transpose()
        })
    }

    /// Closes the database, waiting for reads and writes in progress. Every
    /// later call returns [`StoreError::Closed`]. Closing twice is harmless.
    pub fn close(&self) {
        let db = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if db.is_some() {
            drop(db);
            tracing::debug!(path = %self.path.display(), "store closed");
        }
    }

    /// Whether [`Store::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        let txn = db.begin_read().map_err(|e| classify(&self.path, e))?;
        f(&txn, &self.path)
    }

    /// Runs `f` in one write transaction and commits it; on any error nothing
    /// is written.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        let txn = db.begin_write().map_err(|e| classify(&self.path, e))?;
        match f(&txn, &self.path) {
            Ok(value) => {
                txn.commit().map_err(|e| classify(&self.path, e))?;
                Ok(value)
            }
            Err(error) => {
                if let Err(abort) = txn.abort() {
                    tracing::warn!(error = %abort, "aborting a store transaction failed");
                }
                Err(error)
            }
        }
    }
}

fn write_rows(
    table: &mut redb::Table<'_, &[u8], &[u8]>,
    changes: &Changes,
    path: &Path,
) -> Result<(), StoreError> {
    for (key, value) in &changes.rows {
        match value {
            Some(value) => table.insert(key.as_slice(), value.as_slice()).map(|_| ()),
            None => table.remove(key.as_slice()).map(|_| ()),
        }
        .map_err(|e| classify(path, e))?;
    }
    Ok(())
}

fn read_tip(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
) -> Result<Option<Tip>, StoreError> {
    let Some(height) = meta.get(META_HEIGHT).map_err(|e| classify(path, e))? else {
        return Ok(None);
    };
    let height = u64::from_le_bytes(
        height
            .value()
            .try_into()
            .map_err(|_| corrupt(path, "stored height is not 8 bytes".into()))?,
    );
    let hash = meta
        .get(META_TIP_HASH)
        .map_err(|e| classify(path, e))?
        .ok_or_else(|| corrupt(path, "tip hash missing".into()))?;
    let hash = hash_from(path, "tip hash", hash.value())?;
    Ok(Some(Tip { height, hash }))
}

fn hash_from(path: &Path, what: &str, bytes: &[u8]) -> Result<Hash, StoreError> {
    Ok(Hash(bytes.try_into().map_err(|_| {
        corrupt(path, format!("stored {what} is not 32 bytes"))
    })?))
}

fn decode<T: borsh::BorshDeserialize>(
    path: &Path,
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    flux_types::codec::decode_trusted(bytes).map_err(|e| corrupt(path, format!("{what}: {e}")))
}

fn corrupt(path: &Path, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_error(path: &Path, source: io::Error) -> StoreError {
    if is_disk_full(&source) {
        StoreError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn is_disk_full(error: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    error.kind() == io::ErrorKind::StorageFull
        || error.kind() == io::ErrorKind::QuotaExceeded
        || error.raw_os_error() == Some(ENOSPC)
}

/// Turns any redb error into a [`StoreError`] that says what to do.
fn classify(path: &Path, error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(source) => io_error(path, source),
        redb::Error::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
            path: path.to_path_buf(),
        },
        redb::Error::Corrupted(reason) => corrupt(path, reason),
        redb::Error::DatabaseClosed => StoreError::Closed,
        redb::Error::PreviousIo => StoreError::Database {
            path: path.to_path_buf(),
            reason: "an earlier input/output error left the database unusable; restart the node"
                .into(),
        },
        other => StoreError::Database {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use flux_ledger::BlockContext;
    use flux_types::{
        Amount, GenesisAccount, GenesisValidator, Params, SecretKey, SignedTransaction,
        Transaction, TxBody,
    };

    use super::*;

    fn genesis(chain_id: &str) -> Genesis {
        let validator = SecretKey::development("validator");
        Genesis {
            chain_id: chain_id.into(),
            genesis_time_ms: 1_700_000_000_000,
            params: Params::devnet(),
            accounts: vec![GenesisAccount {
                address: SecretKey::development("alice").address(),
                balance: Amount::flux(1_000),
            }],
            validators: vec![GenesisValidator {
                name: "v0".into(),
                public_key: validator.public_key(),
                p2p_endpoint: "127.0.0.1:16125".into(),
                api_endpoint: "127.0.0.1:16127".into(),
            }],
        }
    }

    fn transfer(chain_id: &str, nonce: u64) -> SignedTransaction {
        let alice = SecretKey::development("alice");
        Transaction {
            chain_id: chain_id.into(),
            signer: alice.public_key(),
            nonce,
            fee: Amount::units(10_000),
            body: TxBody::Transfer {
                to: SecretKey::development("bob").address(),
                amount: Amount::flux(1),
            },
        }
        .sign(&alice)
    }

    fn opened(dir: &Path) -> (Store, Genesis, State) {
        let genesis = genesis("store-test");
        let store = Store::open(dir, &genesis).unwrap();
        let (state, changes) = State::from_genesis(&genesis).unwrap();
        store.commit_genesis(&genesis, &changes).unwrap();
        (store, genesis, state)
    }

    fn next_block(state: &State, txs: Vec<SignedTransaction>) -> flux_ledger::Built {
        let ctx = BlockContext {
            timestamp_ms: state.time_ms() + 1_000,
            proposer: SecretKey::development("validator").public_key(),
        };
        flux_ledger::build_block(state, &ctx, txs)
    }

    #[test]
    fn a_fresh_store_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &genesis("store-test")).unwrap();
        assert_eq!(store.tip().unwrap(), None);
        assert!(store.load().unwrap().is_none());
        assert!(store.genesis().unwrap().is_none());
        assert!(store.block(1).unwrap().is_none());
    }

    #[test]
    fn genesis_is_committed_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, genesis, state) = opened(dir.path());
        assert_eq!(store.genesis().unwrap(), Some(genesis.clone()));
        assert_eq!(
            store.tip().unwrap(),
            Some(Tip {
                height: 0,
                hash: Hash::ZERO
            })
        );
        assert_eq!(
            store.load().unwrap().unwrap().state_root(),
            state.state_root()
        );
        let (_, changes) = State::from_genesis(&genesis).unwrap();
        assert!(matches!(
            store.commit_genesis(&genesis, &changes),
            Err(StoreError::AlreadyInitialized { .. })
        ));
    }

    #[test]
    fn a_block_commits_with_its_index_and_receipts() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, state) = opened(dir.path());
        let built = next_block(
            &state,
            vec![transfer("store-test", 0), transfer("store-test", 1)],
        );
        assert!(built.rejected.is_empty());
        store
            .commit_block(
                &built.block,
                &built.outcome.receipts,
                &built.outcome.changes,
            )
            .unwrap();
        assert_eq!(
            store.tip().unwrap(),
            Some(Tip {
                height: 1,
                hash: built.block.hash()
            })
        );
        assert_eq!(store.block(1).unwrap(), Some(built.block.clone()));
        let second = built.block.txs[1].hash();
        assert_eq!(
            store.tx_location(&second).unwrap(),
            Some(TxLocation {
                height: 1,
                index: 1
            })
        );
        assert_eq!(
            store.receipt(&second).unwrap(),
            Some(built.outcome.receipts[1].clone())
        );
        assert_eq!(store.receipt(&Hash::ZERO).unwrap(), None);
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.state_root(), built.outcome.state.state_root());
        assert_eq!(loaded.last_block_hash(), built.block.hash());
    }

    #[test]
    fn a_block_that_does_not_extend_the_tip_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, state) = opened(dir.path());
        let first = next_block(&state, vec![transfer("store-test", 0)]);
        let second = next_block(&first.outcome.state, vec![]);
        let refused = store.commit_block(
            &second.block,
            &second.outcome.receipts,
            &second.outcome.changes,
        );
        assert!(
            matches!(
                refused,
                Err(StoreError::NotNext {
                    height: 2,
                    tip_height: 0,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(store.tip().unwrap().unwrap().height, 0);
        store
            .commit_block(
                &first.block,
                &first.outcome.receipts,
                &first.outcome.changes,
            )
            .unwrap();
        // The same block again is not next either.
        assert!(matches!(
            store.commit_block(
                &first.block,
                &first.outcome.receipts,
                &first.outcome.changes
            ),
            Err(StoreError::NotNext { .. })
        ));
    }

    #[test]
    fn a_block_before_the_genesis_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = genesis("store-test");
        let store = Store::open(dir.path(), &genesis).unwrap();
        let (state, _) = State::from_genesis(&genesis).unwrap();
        let built = next_block(&state, vec![]);
        assert!(matches!(
            store.commit_block(
                &built.block,
                &built.outcome.receipts,
                &built.outcome.changes
            ),
            Err(StoreError::NotInitialized { .. })
        ));
    }

    #[test]
    fn deleted_rows_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, _) = opened(dir.path());
        let key = vec![2u8; 21];
        let present = |store: &Store| {
            store
                .read(|txn, path| {
                    let table = txn.open_table(STATE).map_err(|e| classify(path, e))?;
                    Ok(table
                        .get(key.as_slice())
                        .map_err(|e| classify(path, e))?
                        .is_some())
                })
                .unwrap()
        };
        let apply = |changes: Changes| {
            store
                .write(|txn, path| {
                    write_rows(
                        &mut txn.open_table(STATE).map_err(|e| classify(path, e))?,
                        &changes,
                        path,
                    )
                })
                .unwrap();
        };
        apply(Changes {
            rows: vec![(key.clone(), Some(vec![1, 2, 3]))],
        });
        assert!(present(&store));
        apply(Changes {
            rows: vec![(key.clone(), None)],
        });
        assert!(!present(&store));
    }

    #[test]
    fn a_closed_store_refuses_everything_and_frees_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, genesis, _) = opened(dir.path());
        assert!(matches!(
            Store::open(dir.path(), &genesis),
            Err(StoreError::AlreadyOpen { .. })
        ));
        store.close();
        store.close();
        assert!(store.is_closed());
        assert!(matches!(store.tip(), Err(StoreError::Closed)));
        assert!(matches!(store.block(0), Err(StoreError::Closed)));
        let reopened = Store::open(dir.path(), &genesis).unwrap();
        assert_eq!(reopened.tip().unwrap().unwrap().height, 0);
    }

    #[test]
    fn disk_full_is_recognised() {
        let path = Path::new("/data/chain.redb");
        let full = io_error(path, io::Error::from_raw_os_error(28));
        assert!(matches!(full, StoreError::DiskFull { .. }));
        assert!(full.to_string().contains("full"), "{full}");
        let denied = io_error(path, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(denied, StoreError::Io { .. }));
    }
}
