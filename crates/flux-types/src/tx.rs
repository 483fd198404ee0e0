//! Signed transactions.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::app::AppSpec;
use crate::benchmark::BenchmarkReport;
use crate::codec::{self, Bounded, check_len};
use crate::crypto::{Address, Hash, PublicKey, SecretKey, Signature};
use crate::gov::{ProposalAction, VoteChoice};
use crate::node::Tier;
use crate::work::TargetResults;

/// Longest chain id.
pub const CHAIN_ID_LEN_MAX: usize = 64;
/// Longest node endpoint or region text.
pub const ENDPOINT_LEN_MAX: usize = 260;
/// Domain separator of transaction signatures.
const TX_SIGNING_DOMAIN: &[u8] = b"FLUX/tx/v1";

/// What a transaction does.
///
/// The borsh tag of each variant is its position: new variants are appended,
/// never inserted or renumbered, so old transactions keep their meaning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TxBody {
    /// Tag 0: move FLUX to another account.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount moved.
        amount: Amount,
    },
    /// Tag 1: register a node, locking its tier's collateral from the signer.
    NodeRegister {
        /// The node's own key (its peer identity and benchmark signer).
        node_key: PublicKey,
        /// The tier claimed.
        tier: Tier,
        /// Where the node's API answers, `HOST:PORT`.
        endpoint: String,
        /// `CONTINENT_COUNTRY`, e.g. `EU_CZ`.
        region: String,
    },
    /// Tag 2: deregister a node owned by the signer, unlocking its collateral.
    NodeDeregister {
        /// The node's id (the address of its node key).
        node: Address,
    },
    /// Tag 3: register an app and pay for a period.
    AppRegister {
        /// The specification.
        spec: AppSpec,
        /// Months paid for.
        months: u32,
        /// The most the signer agrees to pay; the price is charged, never more.
        max_payment: Amount,
    },
    /// Tag 4: replace an app's specification and period, crediting the unused part.
    AppUpdate {
        /// The new specification (same name).
        spec: AppSpec,
        /// Months paid for from now.
        months: u32,
        /// The most the signer agrees to pay after the credit.
        max_payment: Amount,
    },
    /// Tag 5: remove an app owned by the signer. Unused time is not refunded.
    AppRemove {
        /// The app's name.
        name: String,
    },
    /// Tag 6: put a proposal to the vote, holding a deposit from the signer.
    GovPropose {
        /// One line saying what the proposal does.
        title: String,
        /// Why; free text.
        description: String,
        /// What happens when it passes.
        action: ProposalAction,
        /// Held until the vote ends; at least the network's `gov.proposal_deposit`.
        deposit: Amount,
    },
    /// Tag 7: vote on an open proposal, or change the signer's vote on it.
    GovVote {
        /// The proposal's id.
        proposal: u64,
        /// Yes, no or abstain.
        choice: VoteChoice,
    },
    /// Tag 8: a node's benchmark of its own hardware, signed by its node key.
    /// The ledger confirms the node for its tier when every figure meets the
    /// tier's threshold, and keeps or sets it pending otherwise.
    NodeBenchmark {
        /// What the node measured.
        report: BenchmarkReport,
    },
    /// Tag 9: a verifier's probe results, signed by its node key: for each
    /// target it verifies in `epoch`, one bit per window from
    /// `first_window` (up = 1). The ledger credits an instance-window to its
    /// host when a majority of the instance's verifiers saw it up.
    WorkReport {
        /// The epoch whose verifier assignment the report follows.
        epoch: u64,
        /// The first window reported.
        first_window: u64,
        /// How many consecutive windows are reported (at least 1).
        windows: u32,
        /// One bitmap per target, each target at most once.
        results: Vec<TargetResults>,
    },
}

impl TxBody {
    /// A short stable name of the kind of transaction.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::NodeRegister { .. } => "node_register",
            TxBody::NodeDeregister { .. } => "node_deregister",
            TxBody::AppRegister { .. } => "app_register",
            TxBody::AppUpdate { .. } => "app_update",
            TxBody::AppRemove { .. } => "app_remove",
            TxBody::GovPropose { .. } => "gov_propose",
            TxBody::GovVote { .. } => "gov_vote",
            TxBody::NodeBenchmark { .. } => "node_benchmark",
            TxBody::WorkReport { .. } => "work_report",
        }
    }
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// The network this transaction is for; a transaction signed for one
    /// network is invalid on every other.
    pub chain_id: String,
    /// Who signs and pays.
    pub signer: PublicKey,
    /// The signer's account nonce; each nonce is used exactly once, in order.
    pub nonce: u64,
    /// Fee paid to the block proposer.
    pub fee: Amount,
    /// What it does.
    pub body: TxBody,
}

impl Transaction {
    /// The bytes that are signed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = TX_SIGNING_DOMAIN.to_vec();
        bytes.extend(codec::encode(self));
        bytes
    }

    /// Signs with `key`, which must match `signer`.
    pub fn sign(self, key: &SecretKey) -> SignedTransaction {
        debug_assert_eq!(
            key.public_key(),
            self.signer,
            "signing key must match the signer"
        );
        let signature = key.sign(&self.signing_bytes());
        SignedTransaction {
            tx: self,
            signature,
        }
    }

    /// The address of the signer.
    pub fn sender(&self) -> Address {
        self.signer.address()
    }
}

/// A transaction with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// The signer's signature over [`Transaction::signing_bytes`].
    pub signature: Signature,
}

impl SignedTransaction {
    /// The transaction's id: SHA-256 of its encoding.
    pub fn hash(&self) -> Hash {
        Hash::digest(&[&codec::encode(self)])
    }

    /// The encoded bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        borsh::object_length(self).unwrap_or(usize::MAX)
    }

    /// Whether the signature is valid for the signer.
    pub fn verify_signature(&self) -> bool {
        self.tx
            .signer
            .verify(&self.tx.signing_bytes(), &self.signature)
    }
}

impl Bounded for SignedTransaction {
    const WHAT: &'static str = "transaction";
    const SIZE_BYTES_MAX: usize = codec::TX_SIZE_BYTES_MAX;

    fn check_limits(&self) -> Result<(), String> {
        check_len("chain_id", &self.tx.chain_id, CHAIN_ID_LEN_MAX)?;
        match &self.tx.body {
            TxBody::NodeRegister {
                endpoint, region, ..
            } => {
                check_len("endpoint", endpoint, ENDPOINT_LEN_MAX)?;
                check_len("region", region, ENDPOINT_LEN_MAX)
            }
            TxBody::AppRegister { spec, .. } | TxBody::AppUpdate { spec, .. } => {
                spec.check_decode_limits()
            }
            TxBody::AppRemove { name } => check_len("name", name, crate::app::NAME_LEN_HARD_MAX),
            TxBody::GovPropose {
                title,
                description,
                action,
                ..
            } => crate::gov::check_proposal_limits(title, description, action),
            TxBody::WorkReport {
                windows, results, ..
            } => crate::work::check_report_limits(*windows, results),
            TxBody::Transfer { .. }
            | TxBody::NodeDeregister { .. }
            | TxBody::NodeBenchmark { .. }
            | TxBody::GovVote { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecError, decode_bounded};

    fn transfer(key: &SecretKey, chain_id: &str) -> SignedTransaction {
        Transaction {
            chain_id: chain_id.into(),
            signer: key.public_key(),
            nonce: 7,
            fee: Amount::units(10_000),
            body: TxBody::Transfer {
                to: SecretKey::development("b").address(),
                amount: Amount::flux(3),
            },
        }
        .sign(key)
    }

    #[test]
    fn round_trips_and_verifies() {
        let key = SecretKey::development("a");
        let signed = transfer(&key, "flux-devnet");
        assert!(signed.verify_signature());
        let decoded: SignedTransaction = decode_bounded(&signed.to_bytes()).unwrap();
        assert_eq!(decoded, signed);
        assert_eq!(decoded.hash(), signed.hash());
    }

    #[test]
    fn chain_id_is_signed() {
        let key = SecretKey::development("a");
        let mut signed = transfer(&key, "flux-devnet");
        signed.tx.chain_id = "flux-mainnet".into();
        assert!(
            !signed.verify_signature(),
            "a signature must not carry over to another chain"
        );
    }

    #[test]
    fn decoding_refuses_garbage_and_oversize() {
        let key = SecretKey::development("a");
        let mut bytes = transfer(&key, "x").to_bytes();
        bytes.push(0);
        assert!(matches!(
            decode_bounded::<SignedTransaction>(&bytes),
            Err(CodecError::Malformed { .. })
        ));
        let huge = vec![0u8; codec::TX_SIZE_BYTES_MAX + 1];
        assert!(matches!(
            decode_bounded::<SignedTransaction>(&huge),
            Err(CodecError::TooLarge { .. })
        ));
        // A length prefix claiming 4 GB of chain id must fail fast, not allocate.
        let mut lying = vec![0xff, 0xff, 0xff, 0xff];
        lying.extend([0u8; 64]);
        assert!(decode_bounded::<SignedTransaction>(&lying).is_err());
    }
}
