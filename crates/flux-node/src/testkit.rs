//! What the node's unit tests share: a genesis, signed transactions and
//! blocks built on a ledger state.

use flux_ledger::{BlockContext, State, build_block};
use flux_types::{
    Amount, Genesis, GenesisAccount, GenesisValidator, Params, PublicKey, SecretKey,
    SignedTransaction, Transaction, TxBody,
};

/// A genesis with one funded account (`owner`, `flux` FLUX) and one
/// validator.
pub(crate) fn genesis(
    params: Params,
    owner: &SecretKey,
    flux: u64,
    validator: PublicKey,
) -> Genesis {
    Genesis {
        chain_id: "flux-test".into(),
        genesis_time_ms: 1_700_000_000_000,
        params,
        accounts: vec![GenesisAccount {
            address: owner.address(),
            balance: Amount::flux(flux),
        }],
        validators: vec![GenesisValidator {
            name: "validator".into(),
            public_key: validator,
            p2p_endpoint: "127.0.0.1:16125".into(),
            api_endpoint: "127.0.0.1:16127".into(),
        }],
    }
}

/// `body` signed by `key` with `nonce`, at the minimum fee (none for a
/// benchmark: the node key holds nothing).
pub(crate) fn signed(
    state: &State,
    key: &SecretKey,
    nonce: u64,
    body: TxBody,
) -> SignedTransaction {
    let fee = match body {
        TxBody::NodeBenchmark { .. } => Amount::ZERO,
        _ => state.params().tx_fee_min,
    };
    Transaction {
        chain_id: state.chain_id().to_string(),
        signer: key.public_key(),
        nonce,
        fee,
        body,
    }
    .sign(key)
}

/// The state after a block holding `txs`, one second after `state`; every
/// transaction must be accepted.
pub(crate) fn next(state: &State, txs: Vec<SignedTransaction>) -> State {
    let ctx = BlockContext {
        timestamp_ms: state.time_ms() + 1_000,
        proposer: SecretKey::development("validator").public_key(),
    };
    let built = build_block(state, &ctx, txs);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    built.outcome.state
}
