//! Blocks.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::codec::{self, Bounded};
use crate::crypto::{Hash, PublicKey};
use crate::tx::SignedTransaction;

/// Domain separator of block hashes.
const BLOCK_HASH_DOMAIN: &[u8] = b"FLUX/block/v1";

/// A block's header: everything a light client needs to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    /// Height; the genesis state is height 0 and the first block is height 1.
    pub height: u64,
    /// Hash of the previous block (zero for the first block).
    pub parent: Hash,
    /// Chain time in milliseconds since the Unix epoch; strictly increasing.
    pub timestamp_ms: u64,
    /// The validator that proposed the block (receives the fees).
    pub proposer: PublicKey,
    /// Commitment to the transactions, see [`tx_root`].
    pub tx_root: Hash,
    /// State root after applying this block.
    pub state_root: Hash,
}

impl BlockHeader {
    /// The block's id.
    pub fn hash(&self) -> Hash {
        Hash::digest(&[BLOCK_HASH_DOMAIN, &codec::encode(self)])
    }
}

/// A block: a header and its transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, applied in order.
    pub txs: Vec<SignedTransaction>,
}

impl Block {
    /// The block's id (the hash of its header).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The height.
    pub fn height(&self) -> u64 {
        self.header.height
    }
}

/// The commitment to a block's transactions: SHA-256 over their hashes in order.
pub fn tx_root(txs: &[SignedTransaction]) -> Hash {
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    tx_root_of_hashes(&hashes)
}

/// [`tx_root`] from precomputed transaction hashes.
pub fn tx_root_of_hashes(hashes: &[Hash]) -> Hash {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(hashes.len() + 1);
    parts.push(b"FLUX/txs/v1");
    for hash in hashes {
        parts.push(&hash.0);
    }
    Hash::digest(&parts)
}

impl Bounded for Block {
    const WHAT: &'static str = "block";
    const SIZE_BYTES_MAX: usize = codec::BLOCK_SIZE_BYTES_MAX;

    fn check_limits(&self) -> Result<(), String> {
        codec::check_count("txs", &self.txs, codec::BLOCK_TXS_MAX)?;
        for (index, tx) in self.txs.iter().enumerate() {
            if tx.size_bytes() > codec::TX_SIZE_BYTES_MAX {
                return Err(format!(
                    "transaction {index} exceeds {} bytes",
                    codec::TX_SIZE_BYTES_MAX
                ));
            }
            tx.check_limits()
                .map_err(|e| format!("transaction {index}: {e}"))?;
        }
        Ok(())
    }
}
