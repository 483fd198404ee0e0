//! The block the consensus engine orders: a Flux [`Block`] with the codec,
//! digest and parent link that commonware's marshal needs.
//!
//! On the wire a block is a length-prefixed borsh encoding. Decoding takes
//! the length limit of [`BLOCK_SIZE_BYTES_MAX`], the per-field limits of
//! [`decode_bounded`], requires the canonical encoding (re-encoding gives
//! the same bytes) and checks the transaction root: the digest covers only
//! the header, so without that check a peer could swap the transactions
//! under a valid header.
//!
//! The consensus anchor is a synthetic block at height 0 whose digest is the
//! zero hash, which is what the ledger calls the parent of the first block.

use std::sync::Arc;

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, RangeCfg, Read, Write};
use commonware_consensus::types::Height;
use commonware_consensus::{Block, BoundedBlock, Heightable};
use commonware_cryptography::{Digestible, sha256};
use flux_types::block::tx_root;
use flux_types::codec::{BLOCK_SIZE_BYTES_MAX, decode_bounded, encode};
use flux_types::{BlockHeader, Hash, PublicKey};

/// The digest consensus votes on: the block hash.
pub(crate) type Digest = sha256::Digest;

/// Converts a Flux hash to a consensus digest.
pub(crate) fn digest_of(hash: Hash) -> Digest {
    sha256::Digest(hash.0)
}

/// A Flux block with its encoding and hash computed once.
#[derive(Clone, Debug)]
pub(crate) struct ChainBlock {
    block: Arc<flux_types::Block>,
    /// The borsh encoding of `block`.
    bytes: Arc<Vec<u8>>,
    /// The hash of the header; zero for the anchor.
    hash: Hash,
}

impl PartialEq for ChainBlock {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ChainBlock {}

impl ChainBlock {
    /// Wraps a block.
    pub(crate) fn new(block: flux_types::Block) -> ChainBlock {
        let bytes = encode(&block);
        let hash = if block.header.height == 0 {
            Hash::ZERO
        } else {
            block.hash()
        };
        ChainBlock {
            block: Arc::new(block),
            bytes: Arc::new(bytes),
            hash,
        }
    }

    /// The anchor at height 0: the genesis state, before any block.
    pub(crate) fn anchor(genesis_time_ms: u64, state_root: Hash) -> ChainBlock {
        ChainBlock::new(flux_types::Block {
            header: BlockHeader {
                height: 0,
                parent: Hash::ZERO,
                timestamp_ms: genesis_time_ms,
                proposer: PublicKey([0; 32]),
                tx_root: tx_root(&[]),
                state_root,
            },
            txs: Vec::new(),
        })
    }

    /// The Flux block.
    pub(crate) fn block(&self) -> &flux_types::Block {
        &self.block
    }

    /// The block hash (zero for the anchor).
    pub(crate) fn hash(&self) -> Hash {
        self.hash
    }
}

impl Write for ChainBlock {
    fn write(&self, buf: &mut impl BufMut) {
        self.bytes.as_ref().write(buf);
    }
}

impl EncodeSize for ChainBlock {
    fn encode_size(&self) -> usize {
        self.bytes.as_ref().encode_size()
    }
}

impl Read for ChainBlock {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::new(..=BLOCK_SIZE_BYTES_MAX), ()))?;
        let block: flux_types::Block =
            decode_bounded(&bytes).map_err(|e| Error::Wrapped("flux block", Box::new(e)))?;
        if encode(&block) != bytes {
            return Err(Error::Invalid("flux block", "not the canonical encoding"));
        }
        if block.header.tx_root != tx_root(&block.txs) {
            return Err(Error::Invalid(
                "flux block",
                "tx_root does not commit to the transactions",
            ));
        }
        let hash = if block.header.height == 0 {
            Hash::ZERO
        } else {
            block.hash()
        };
        Ok(ChainBlock {
            block: Arc::new(block),
            bytes: Arc::new(bytes),
            hash,
        })
    }
}

impl Digestible for ChainBlock {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        digest_of(self.hash)
    }
}

impl Heightable for ChainBlock {
    fn height(&self) -> Height {
        Height::new(self.block.header.height)
    }
}

impl Block for ChainBlock {
    fn parent(&self) -> Digest {
        digest_of(self.block.header.parent)
    }
}

impl BoundedBlock for ChainBlock {
    fn max_encode_size(_: &()) -> usize {
        // The length prefix is a varint of at most 5 bytes for a 32-bit length.
        5 + BLOCK_SIZE_BYTES_MAX
    }
}

#[cfg(test)]
mod tests {
    use commonware_codec::{Decode as _, Encode as _};
    use flux_types::{Amount, SecretKey, Transaction, TxBody};

    use super::*;

    fn transfer(nonce: u64) -> flux_types::SignedTransaction {
        let key = SecretKey::development("a");
        Transaction {
            chain_id: "block-test".into(),
            signer: key.public_key(),
            nonce,
            fee: Amount::units(1),
            body: TxBody::Transfer {
                to: SecretKey::development("b").address(),
                amount: Amount::units(1),
            },
        }
        .sign(&key)
    }

    fn block(txs: Vec<flux_types::SignedTransaction>) -> flux_types::Block {
        flux_types::Block {
            header: BlockHeader {
                height: 3,
                parent: Hash([7; 32]),
                timestamp_ms: 5,
                proposer: SecretKey::development("p").public_key(),
                tx_root: tx_root(&txs),
                state_root: Hash([9; 32]),
            },
            txs,
        }
    }

    #[test]
    fn round_trips_with_its_hash_as_digest() {
        let original = ChainBlock::new(block(vec![transfer(0), transfer(1)]));
        let bytes = original.encode();
        assert_eq!(bytes.len(), original.encode_size());
        let decoded = ChainBlock::decode_cfg(bytes, &()).unwrap();
        assert_eq!(decoded, original);
        assert_eq!(decoded.digest(), digest_of(original.block().hash()));
        assert_eq!(decoded.parent(), digest_of(Hash([7; 32])));
        assert_eq!(decoded.height(), Height::new(3));
        let anchor = ChainBlock::anchor(1, Hash([1; 32]));
        assert_eq!(anchor.digest(), digest_of(Hash::ZERO));
        assert_eq!(anchor.height(), Height::zero());
    }

    #[test]
    fn refuses_swapped_transactions_and_trailing_bytes() {
        let mut swapped = block(vec![transfer(0)]);
        swapped.txs = vec![transfer(1)];
        let bytes = ChainBlock::new(swapped).encode();
        assert!(ChainBlock::decode_cfg(bytes, &()).is_err());

        let good = encode(&block(vec![transfer(0)]));
        let mut padded = good.clone();
        padded.push(0);
        let mut wire = Vec::new();
        padded.write(&mut wire);
        assert!(ChainBlock::decode_cfg(commonware_codec::Copying(&wire), &()).is_err());

        // A length prefix beyond the block limit is refused before reading.
        let mut huge = Vec::new();
        (BLOCK_SIZE_BYTES_MAX + 1).write(&mut huge);
        assert!(ChainBlock::decode_cfg(commonware_codec::Copying(&huge), &()).is_err());
    }
}
