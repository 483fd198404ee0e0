//! Mempool gossip: transactions submitted to this node go to the
//! validators of the current epoch, in batches, on their own channel.
//!
//! Limits and what happens at them:
//! - outbound queue [`GOSSIP_QUEUE_TXS_MAX`]: a transaction that finds it
//!   full is kept in the local mempool but not gossiped (this node still
//!   includes it when it proposes);
//! - a batch holds at most [`GOSSIP_BATCH_TXS_MAX`] transactions and
//!   [`GOSSIP_BATCH_BYTES_MAX`] bytes; it leaves when full or after
//!   [`GOSSIP_FLUSH_MS`];
//! - a received batch is decoded with those limits; a peer that sends bytes
//!   that do not decode is blocked. Every transaction is checked by the
//!   ledger as if it were submitted here: gossip is never trusted, and an
//!   invalid or duplicate transaction is dropped without reply.
//!
//! Every node also sends an empty batch every [`HEARTBEAT_MS`] to all
//! connected peers; the peers heard from recently are the node's peer count.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use borsh::{BorshDeserialize, BorshSerialize};
use commonware_cryptography::ed25519;
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Spawner};
use flux_types::SignedTransaction;
use flux_types::codec::{self, Bounded, TX_SIZE_BYTES_MAX, decode_bounded};
use futures::StreamExt as _;
use futures::channel::mpsc;

use super::app::blocking;
use crate::SubmitError;
use crate::shared::Shared;

/// Transactions waiting to be gossiped.
pub(crate) const GOSSIP_QUEUE_TXS_MAX: usize = 16_384;
/// Most transactions in one batch.
pub(crate) const GOSSIP_BATCH_TXS_MAX: usize = 2_048;
/// Most encoded bytes of one batch.
pub(crate) const GOSSIP_BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Longest a transaction waits for its batch to fill.
const GOSSIP_FLUSH_MS: u64 = 10;
/// Interval between heartbeats.
const HEARTBEAT_MS: u64 = 1_000;
/// A peer not heard from for this long no longer counts as connected.
const PEER_SILENT_MS: u64 = 3 * HEARTBEAT_MS;

/// A batch of transactions on the wire.
#[derive(Debug, Default, BorshSerialize, BorshDeserialize)]
pub(crate) struct Batch {
    pub(crate) txs: Vec<SignedTransaction>,
}

impl Bounded for Batch {
    const WHAT: &'static str = "transaction batch";
    const SIZE_BYTES_MAX: usize = GOSSIP_BATCH_BYTES_MAX;

    fn check_limits(&self) -> Result<(), String> {
        codec::check_count("txs", &self.txs, GOSSIP_BATCH_TXS_MAX)?;
        for (index, tx) in self.txs.iter().enumerate() {
            if tx.size_bytes() > TX_SIZE_BYTES_MAX {
                return Err(format!(
                    "transaction {index} exceeds {TX_SIZE_BYTES_MAX} bytes"
                ));
            }
            tx.check_limits()
                .map_err(|e| format!("transaction {index}: {e}"))?;
        }
        Ok(())
    }
}

/// The queue of transactions to gossip; the node handle pushes into it.
pub(crate) fn queue() -> (
    mpsc::Sender<SignedTransaction>,
    mpsc::Receiver<SignedTransaction>,
) {
    mpsc::channel(GOSSIP_QUEUE_TXS_MAX)
}

/// The validators to gossip to, kept current by the epoch orchestrator.
pub(crate) type Validators = Arc<RwLock<Vec<ed25519::PublicKey>>>;

/// Runs the gossip loop until the network closes.
pub(crate) async fn run<E, S, R, B>(
    context: E,
    shared: Arc<Shared>,
    me: ed25519::PublicKey,
    validators: Validators,
    mut outbound: mpsc::Receiver<SignedTransaction>,
    (mut sender, mut receiver): (S, R),
    mut blocker: B,
) where
    E: Clock + Spawner,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    let mut pending: Vec<SignedTransaction> = Vec::new();
    let mut pending_bytes = 0;
    let mut heard: BTreeMap<ed25519::PublicKey, SystemTime> = BTreeMap::new();
    let mut next_heartbeat = context.current();
    loop {
        let flush_at = if pending.is_empty() {
            next_heartbeat
        } else {
            next_heartbeat.min(context.current() + Duration::from_millis(GOSSIP_FLUSH_MS))
        };
        commonware_macros::select! {
            tx = outbound.next() => {
                // The node handle holds the other end for as long as it runs.
                let Some(tx) = tx else { return };
                let size = tx.size_bytes() + 8;
                if pending.len() + 1 > GOSSIP_BATCH_TXS_MAX
                    || pending_bytes + size > GOSSIP_BATCH_BYTES_MAX - 64
                {
                    send_batch(&mut sender, &me, &validators, std::mem::take(&mut pending));
                    pending_bytes = 0;
                }
                pending_bytes += size;
                pending.push(tx);
            },
            message = receiver.recv() => {
                let Ok((peer, bytes)) = message else {
                    tracing::debug!("the gossip channel closed");
                    return;
                };
                heard.insert(peer.clone(), context.current());
                let batch: Batch = match decode_bounded(bytes.as_ref()) {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%peer, %error, "blocking a peer that sent an undecodable transaction batch");
                        blocker.block(peer);
                        continue;
                    }
                };
                if batch.txs.is_empty() {
                    continue;
                }
                let shared = shared.clone();
                let admitted = blocking(&context, move || admit(&shared, batch.txs)).await;
                if let Some((new, refused)) = admitted
                    && refused > 0
                {
                    tracing::debug!(%peer, new, refused, "gossiped transactions refused");
                }
            },
            _ = context.sleep_until(flush_at) => {
                if !pending.is_empty() {
                    send_batch(&mut sender, &me, &validators, std::mem::take(&mut pending));
                    pending_bytes = 0;
                }
                let now = context.current();
                if now >= next_heartbeat {
                    let empty = codec::encode(&Batch::default());
                    let _ = sender.send(Recipients::All, empty, false);
                    next_heartbeat = now + Duration::from_millis(HEARTBEAT_MS);
                    heard.retain(|_, at| {
                        now.duration_since(*at)
                            .map_or(true, |silent| silent.as_millis() < u128::from(PEER_SILENT_MS))
                    });
                    shared.set_peers(heard.len());
                }
            },
        }
    }
}

fn send_batch<S: Sender<PublicKey = ed25519::PublicKey>>(
    sender: &mut S,
    me: &ed25519::PublicKey,
    validators: &Validators,
    txs: Vec<SignedTransaction>,
) {
    let recipients: Vec<ed25519::PublicKey> = validators
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|key| *key != me)
        .cloned()
        .collect();
    if recipients.is_empty() {
        return;
    }
    let count = txs.len();
    let bytes = codec::encode(&Batch { txs });
    let sent = sender.send(Recipients::Some(recipients), bytes, false);
    tracing::trace!(count, peers = sent.len(), "gossiped transactions");
}

/// Admits gossiped transactions as if submitted here; returns how many were
/// new and how many were refused (duplicates are neither).
fn admit(shared: &Shared, txs: Vec<SignedTransaction>) -> (usize, usize) {
    let mut new = 0;
    let mut refused = 0;
    // One batch verification of the signatures: a peer's batch is as
    // untrusted as a client's, and checked as fully.
    for result in shared.submit_batch(txs) {
        match result {
            Ok(_) => new += 1,
            Err(SubmitError::Duplicate(_)) => {}
            Err(_) => refused += 1,
        }
    }
    (new, refused)
}

#[cfg(test)]
mod tests {
    use flux_types::{Amount, SecretKey, Transaction, TxBody};

    use super::*;

    fn tx(nonce: u64) -> SignedTransaction {
        let key = SecretKey::development("a");
        Transaction {
            chain_id: "gossip-test".into(),
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

    #[test]
    fn batches_decode_within_their_limits() {
        let batch = Batch {
            txs: (0..3).map(tx).collect(),
        };
        let bytes = codec::encode(&batch);
        let decoded: Batch = decode_bounded(&bytes).unwrap();
        assert_eq!(decoded.txs, batch.txs);
        let too_many = Batch {
            txs: vec![tx(0); GOSSIP_BATCH_TXS_MAX + 1],
        };
        assert!(decode_bounded::<Batch>(&codec::encode(&too_many)).is_err());
        assert!(decode_bounded::<Batch>(&[1, 2, 3]).is_err());
    }
}
