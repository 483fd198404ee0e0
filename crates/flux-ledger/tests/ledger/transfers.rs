//! Transfers, nonces, fees and signatures.

use flux_ledger::{NONCE_AHEAD_MAX, ReceiptDetail, check_tx};
use flux_types::{SignedTransaction, Transaction};

use crate::harness::*;

#[test]
fn transfer_moves_the_amount_and_pays_the_fee_to_the_proposer() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(1))]),
        vec![tx("alice", transfer("bob", flux(5))), block()],
    );
    assert_eq!(chain.balance("alice"), minus(flux(95), fee()));
    assert_eq!(chain.balance("bob"), flux(6));
    assert_eq!(chain.balance(VALIDATOR), fee());
    assert_eq!(chain.account("alice").nonce, 1);
    assert_eq!(chain.account("bob").nonce, 0);
    let receipt = chain.last_receipt();
    assert_eq!(receipt.fee, fee());
    assert_eq!((receipt.height, receipt.index), (1, 0));
    assert_eq!(receipt.tx_hash, chain.blocks[0].txs[0].hash());
    assert_eq!(
        receipt.detail,
        ReceiptDetail::Transfer {
            to: addr("bob"),
            amount: flux(5)
        }
    );
}

#[test]
fn a_new_account_can_receive_and_then_spend() {
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx("alice", transfer("carol", flux(10))),
            // Carol's account exists only once the first transfer is applied in this block.
            tx("carol", transfer("alice", flux(1))),
            block(),
            tx("carol", transfer("dave", flux(2))),
            block(),
        ],
    );
    assert_eq!(chain.balance("carol"), minus(flux(7), fees(2)));
    assert_eq!(chain.balance("dave"), flux(2));
    assert_eq!(chain.account("carol").nonce, 2);
}

#[test]
fn refused_transfers_name_the_reason() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(1))]),
        vec![
            // The fee comes on top of the amount.
            tx("alice", transfer("bob", flux(100))).fails_with(
                "insufficient_funds",
                "has 100.00 FLUX available but needs 100.0001 FLUX",
            ),
            tx("alice", transfer("bob", flux(0))).fails("zero_amount"),
            tx("nobody", transfer("bob", flux(1))).fails("insufficient_funds"),
            tx("alice", transfer("bob", flux(1)))
                .nonce(1)
                .fails_with("nonce_gap", "next nonce 0"),
            tx("alice", transfer("bob", flux(1)))
                .chain("flux-mainnet")
                .fails_with("wrong_chain", "flux-mainnet"),
            tx("alice", transfer("bob", flux(1)))
                .fee(minus(fee(), units(1)))
                .fails_with("fee_too_low", "0.0001 FLUX"),
            tx("alice", transfer("bob", flux(1)))
                .signed_by("mallory")
                .fails("invalid_signature"),
            tx("alice", transfer("@treasury", flux(1))).fails("module_account"),
            tx("alice", transfer("@pool", flux(1))).fails("module_account"),
            // Exactly everything, fee included, is fine.
            tx("alice", transfer("bob", minus(flux(100), fee()))),
            block(),
            tx("alice", transfer("bob", units(1))).fails("insufficient_funds"),
            tx("bob", transfer("alice", flux(1))).nonce(0),
            block(),
            tx("bob", transfer("alice", flux(1)))
                .nonce(0)
                .fails_with("nonce_used", "nonce 0 was already used"),
            tx("bob", transfer("alice", flux(1)))
                .nonce(2)
                .fails("nonce_gap"),
        ],
    );
    assert_eq!(chain.balance("alice"), flux(1));
    assert_eq!(chain.balance("bob"), minus(flux(100), fees(2)));
    assert_eq!(chain.balance(VALIDATOR), fees(2));
}

#[test]
fn nonces_are_used_in_order_within_a_block() {
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx("alice", transfer("bob", flux(1))),
            tx("alice", transfer("bob", flux(2))),
            tx("alice", transfer("bob", flux(3)))
                .nonce(1)
                .fails("nonce_used"),
            tx("alice", transfer("bob", flux(3))),
            block(),
        ],
    );
    assert_eq!(chain.balance("bob"), flux(6));
    assert_eq!(chain.account("alice").nonce, 3);
}

#[test]
fn fees_go_to_the_proposer_in_full() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(100))]),
        vec![
            tx("alice", transfer("bob", flux(1))).fee(flux(2)),
            tx("bob", transfer("alice", flux(1))),
            block(),
            tx("alice", transfer("alice", flux(50))),
            block(),
        ],
    );
    assert_eq!(chain.balance(VALIDATOR), plus(flux(2), fees(2)));
    // A transfer to oneself costs only the fee.
    assert_eq!(chain.balance("alice"), minus(flux(98), fee()));
    let paid: Vec<_> = chain.receipts.iter().map(|r| r.fee).collect();
    assert_eq!(paid, vec![flux(2), fee(), fee()]);
}

#[test]
fn the_proposer_can_spend_its_fees_in_the_same_block() {
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx(VALIDATOR, transfer("bob", amount("0.5"))).fails("insufficient_funds"),
            tx("alice", transfer("bob", flux(1))).fee(flux(1)),
            // The fee of its own transaction comes back to the proposer.
            tx(VALIDATOR, transfer("bob", amount("0.5"))),
            block(),
        ],
    );
    assert_eq!(chain.balance(VALIDATOR), amount("0.5"));
    assert_eq!(chain.balance("bob"), amount("1.5"));
}

#[test]
fn admission_accepts_nonces_a_little_ahead_and_changes_nothing() {
    let chain = check(genesis(&[("alice", flux(100))]), vec![]);
    let sign = |nonce: u64| {
        let tx = Transaction {
            chain_id: CHAIN_ID.into(),
            signer: key("alice").public_key(),
            nonce,
            fee: fee(),
            body: transfer("bob", flux(1)),
        };
        tx.sign(&key("alice"))
    };
    let root = chain.state.state_root();
    assert_eq!(check_tx(&chain.state, &sign(0)), Ok(()));
    assert_eq!(check_tx(&chain.state, &sign(NONCE_AHEAD_MAX - 1)), Ok(()));
    assert_eq!(
        check_tx(&chain.state, &sign(NONCE_AHEAD_MAX))
            .unwrap_err()
            .code(),
        "nonce_gap"
    );
    assert_eq!(chain.state.state_root(), root);
    assert_eq!(chain.state.account(&addr("alice")).nonce, 0);
    // A signature over other bytes is refused before anything else.
    let mut forged: SignedTransaction = sign(0);
    forged.tx.body = transfer("bob", flux(99));
    assert_eq!(
        check_tx(&chain.state, &forged).unwrap_err().code(),
        "invalid_signature"
    );
}

#[test]
fn a_fee_per_byte_prices_the_size() {
    let mut params = flux_types::Params::devnet();
    params.tx_fee_per_byte = units(10);
    let probe = signed("alice", 0, transfer("bob", flux(1)));
    let min = plus(fee(), units(10 * probe.size_bytes() as u64));
    assert_eq!(flux_ledger::min_fee(&params, &probe), min);
    let chain = check(
        genesis_with(params, &[("alice", flux(100))]),
        vec![
            tx("alice", transfer("bob", flux(1)))
                .fee(minus(min, units(1)))
                .fails_with(
                    "fee_too_low",
                    &format!("the minimum for this transaction is {min} FLUX"),
                ),
            tx("alice", transfer("bob", flux(1))).fee(min),
            block(),
        ],
    );
    assert_eq!(chain.balance(VALIDATOR), min);
}
