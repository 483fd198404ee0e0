//! Block building and verification, determinism, genesis and restore.

use std::collections::BTreeMap;

use flux_ledger::{
    BlockContext, BlockError, State, TxError, apply_block, apply_block_with, build_block,
    build_block_verified, check_tx, check_tx_effect, signatures_valid,
};
use flux_types::block::tx_root;
use flux_types::{Block, Genesis, Hash, Params, Tier};

use crate::harness::*;

/// A chain with some history, and a valid next block of five transfers.
fn chain_and_next_block() -> (Chain, Block) {
    let chain = check(
        genesis(&[
            ("alice", flux(100)),
            ("bob", flux(100)),
            ("carol", flux(100)),
        ]),
        vec![
            tx("alice", transfer("bob", flux(1))),
            block(),
            tx("bob", register_node("n1", Tier::Cumulus)),
            block(),
        ],
    );
    let candidates = vec![
        signed("alice", 1, transfer("dave", flux(1))),
        signed("bob", 1, transfer("dave", flux(2))),
        signed("carol", 0, transfer("dave", flux(3))),
        signed("carol", 1, transfer("alice", flux(4))),
        signed("alice", 2, transfer("carol", flux(5))),
    ];
    let built = build_block(&chain.state, &chain.context(), candidates);
    assert!(built.rejected.is_empty());
    assert_eq!(built.block.txs.len(), 5);
    (chain, built.block)
}

fn refix_tx_root(block: &mut Block) {
    block.header.tx_root = tx_root(&block.txs);
}

#[test]
fn apply_block_refuses_every_kind_of_bad_block() {
    let (chain, good) = chain_and_next_block();
    let state = &chain.state;
    let root = state.state_root();
    type Tamper = Box<dyn Fn(&mut Block)>;
    let cases: Vec<(&str, Tamper, BlockError)> = vec![
        (
            "height skips",
            Box::new(|b: &mut Block| b.header.height += 1),
            BlockError::WrongHeight { current: 2, got: 4 },
        ),
        (
            "height repeats",
            Box::new(|b: &mut Block| b.header.height -= 1),
            BlockError::WrongHeight { current: 2, got: 2 },
        ),
        (
            "another parent",
            Box::new(|b: &mut Block| b.header.parent = Hash([7; 32])),
            BlockError::WrongParent,
        ),
        (
            "same time as the parent",
            Box::new(|b: &mut Block| b.header.timestamp_ms = GENESIS_TIME_MS + 2_000),
            BlockError::TimeNotIncreasing {
                previous: GENESIS_TIME_MS + 2_000,
                got: GENESIS_TIME_MS + 2_000,
            },
        ),
        (
            "time going back",
            Box::new(|b: &mut Block| b.header.timestamp_ms = GENESIS_TIME_MS),
            BlockError::TimeNotIncreasing {
                previous: GENESIS_TIME_MS + 2_000,
                got: GENESIS_TIME_MS,
            },
        ),
        (
            "tx root of other transactions",
            Box::new(|b: &mut Block| b.header.tx_root = Hash([1; 32])),
            BlockError::TxRootMismatch,
        ),
        (
            "a transaction dropped",
            Box::new(|b: &mut Block| drop(b.txs.pop())),
            BlockError::TxRootMismatch,
        ),
        (
            "transactions swapped",
            Box::new(|b: &mut Block| b.txs.swap(0, 1)),
            BlockError::TxRootMismatch,
        ),
        (
            "a signature tampered with",
            Box::new(|b: &mut Block| {
                b.txs[3].signature.0[10] ^= 1;
                refix_tx_root(b);
            }),
            BlockError::InvalidTx {
                index: 3,
                error: TxError::InvalidSignature {
                    signer: addr("carol"),
                },
            },
        ),
        (
            "an amount changed after signing",
            Box::new(|b: &mut Block| {
                b.txs[2].tx.body = transfer("dave", flux(30));
                refix_tx_root(b);
            }),
            BlockError::InvalidTx {
                index: 2,
                error: TxError::InvalidSignature {
                    signer: addr("carol"),
                },
            },
        ),
        (
            "a transaction that does not apply",
            Box::new(|b: &mut Block| {
                b.txs.push(signed("dave", 0, transfer("alice", flux(7))));
                refix_tx_root(b);
            }),
            BlockError::InvalidTx {
                index: 5,
                error: TxError::InsufficientFunds {
                    account: addr("dave"),
                    available: flux(6),
                    needed: plus(flux(7), fee()),
                },
            },
        ),
        (
            "a replayed transaction",
            Box::new(|b: &mut Block| {
                b.txs.push(chain_tx0());
                refix_tx_root(b);
            }),
            BlockError::InvalidTx {
                index: 5,
                error: TxError::NonceUsed {
                    account: addr("alice"),
                    expected: 3,
                    got: 0,
                },
            },
        ),
        (
            "a wrong state root",
            Box::new(|b: &mut Block| b.header.state_root = Hash([9; 32])),
            BlockError::StateRootMismatch {
                expected: Hash([9; 32]),
                computed: good.header.state_root,
            },
        ),
        (
            "fees redirected to another proposer",
            Box::new(|b: &mut Block| b.header.proposer = key("mallory").public_key()),
            BlockError::StateRootMismatch {
                expected: good.header.state_root,
                computed: Hash::ZERO,
            },
        ),
    ];
    for (what, tamper, expected) in cases {
        let mut bad = good.clone();
        tamper(&mut bad);
        let error = apply_block(state, &bad).expect_err(what);
        match (&error, &expected) {
            // The computed root of a redirected block is not known in advance.
            (
                BlockError::StateRootMismatch {
                    expected: e,
                    computed,
                },
                BlockError::StateRootMismatch {
                    expected: want,
                    computed: Hash::ZERO,
                },
            ) => {
                assert_eq!(e, want, "{what}");
                assert_ne!(computed, want, "{what}");
            }
            _ => assert_eq!(error, expected, "{what}"),
        }
        assert!(!error.to_string().is_empty());
        assert_eq!(
            state.state_root(),
            root,
            "{what}: a refused block changes nothing"
        );
    }
    let outcome = apply_block(state, &good).expect("the untouched block is valid");
    assert_eq!(outcome.state.state_root(), good.header.state_root);
    assert_eq!(outcome.state.last_block_hash(), good.hash());
}

/// Alice's first transaction of the scenario above.
fn chain_tx0() -> flux_types::SignedTransaction {
    signed("alice", 0, transfer("bob", flux(1)))
}

#[test]
fn apply_block_refuses_too_many_transactions() {
    let mut params = Params::devnet();
    params.block_txs_max = 3;
    let chain = check(genesis_with(params, &[("alice", flux(100))]), vec![]);
    let candidates: Vec<_> = (0..5)
        .map(|n| signed("alice", n, transfer("bob", flux(1))))
        .collect();
    let built = build_block(&chain.state, &chain.context(), candidates.clone());
    assert_eq!(
        built.block.txs,
        candidates[..3].to_vec(),
        "the builder stops at the limit"
    );
    assert!(
        built.rejected.is_empty(),
        "the rest wait for the next block"
    );
    let mut bad = built.block.clone();
    bad.txs = candidates.clone();
    refix_tx_root(&mut bad);
    assert_eq!(
        apply_block(&chain.state, &bad).unwrap_err(),
        BlockError::TooManyTxs { max: 3, got: 5 }
    );
}

#[test]
fn build_block_leaves_out_failing_candidates_and_says_why() {
    let chain = check(genesis(&[("alice", flux(100)), ("bob", flux(100))]), vec![]);
    let ok_first = signed("alice", 0, transfer("bob", flux(1)));
    let overspend = signed("alice", 1, transfer("bob", flux(1_000)));
    let ok_second = signed("alice", 1, transfer("carol", flux(2)));
    let mut forged = signed("bob", 0, transfer("carol", flux(1)));
    forged.tx.body = transfer("mallory", flux(90));
    let gap = signed("bob", 5, transfer("carol", flux(1)));
    let replay = ok_first.clone();
    let candidates = vec![
        ok_first.clone(),
        overspend.clone(),
        forged.clone(),
        ok_second.clone(),
        gap.clone(),
        replay.clone(),
    ];
    let built = build_block(&chain.state, &chain.context(), candidates);
    assert_eq!(built.block.txs, vec![ok_first, ok_second]);
    let rejected: Vec<_> = built
        .rejected
        .iter()
        .map(|(hash, error)| (*hash, error.code()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (overspend.hash(), "insufficient_funds"),
            (forged.hash(), "invalid_signature"),
            (gap.hash(), "nonce_gap"),
            (replay.hash(), "nonce_used"),
        ]
    );
    let receipts: Vec<_> = built
        .outcome
        .receipts
        .iter()
        .map(|r| (r.index, r.tx_hash))
        .collect();
    assert_eq!(
        receipts,
        vec![
            (0, built.block.txs[0].hash()),
            (1, built.block.txs[1].hash())
        ]
    );
    let applied = apply_block(&chain.state, &built.block).expect("the built block is valid");
    assert_same_state(&applied.state, &built.outcome.state);
    assert_eq!(applied.state.account(&addr("carol")).balance, flux(2));
}

#[test]
fn signatures_verified_elsewhere_are_trusted_only_by_their_exact_hash() {
    let chain = check(genesis(&[("alice", flux(100)), ("bob", flux(100))]), vec![]);
    let good = signed("alice", 0, transfer("bob", flux(1)));
    let mut forged = signed("bob", 0, transfer("carol", flux(1)));
    forged.tx.body = transfer("mallory", flux(90));

    // Many at once, one alone, and the effect check without the signature.
    assert_eq!(
        signatures_valid(&[good.clone(), forged.clone(), good.clone()]),
        vec![true, false, true]
    );
    assert_eq!(signatures_valid(std::slice::from_ref(&forged)), vec![false]);
    assert_eq!(
        check_tx(&chain.state, &forged).unwrap_err().code(),
        "invalid_signature"
    );
    check_tx_effect(&chain.state, &forged).expect("everything but the signature holds");

    // A builder told its candidates are verified does not check them again.
    let built = build_block_verified(
        &chain.state,
        &chain.context(),
        vec![good.clone(), forged.clone()],
    );
    assert_eq!(built.block.txs, vec![good.clone(), forged.clone()]);
    assert!(built.rejected.is_empty());

    // A verifier checks every signature it has not verified itself...
    let block = built.block;
    let index_of_forged = BlockError::InvalidTx {
        index: 1,
        error: TxError::InvalidSignature {
            signer: addr("bob"),
        },
    };
    assert_eq!(
        apply_block(&chain.state, &block).unwrap_err(),
        index_of_forged
    );
    let good_hash = good.hash();
    assert_eq!(
        apply_block_with(&chain.state, &block, |hash| *hash == good_hash).unwrap_err(),
        index_of_forged
    );
    // ...and the signature of a transaction it did verify is not checked
    // again (the hash covers the signature: other bytes, another hash).
    let forged_hash = forged.hash();
    let applied = apply_block_with(&chain.state, &block, |hash| *hash == forged_hash)
        .expect("the only unverified signature is valid");
    assert_same_state(&applied.state, &built.outcome.state);
}

#[test]
fn build_block_keeps_time_moving_forward() {
    let chain = check(genesis(&[("alice", flux(100))]), vec![block()]);
    let ctx = BlockContext {
        timestamp_ms: chain.state.time_ms() - 5,
        proposer: key(VALIDATOR).public_key(),
    };
    let built = build_block(&chain.state, &ctx, vec![]);
    assert_eq!(built.block.header.timestamp_ms, chain.state.time_ms() + 1);
    apply_block(&chain.state, &built.block).expect("valid");
}

/// A scenario that touches every kind of state: accounts, nodes, apps,
/// deletions and an expiry.
fn busy_scenario() -> Vec<Step> {
    let month = Params::devnet().month_ms;
    vec![
        tx("alice", transfer("bob", flux(30))),
        tx("alice", register_node("n1", Tier::Nimbus)),
        tx("bob", register_node("n2", Tier::Cumulus)),
        tx("bob", register_app(app_4_12("shop", "bob"), 1, flux(5))),
        tx(
            "alice",
            register_app(app_4_12("blog", "alice"), 3, flux(15)),
        ),
        block(),
        tx("bob", deregister_node("n2")),
        tx(
            "alice",
            update_app(
                app("blog", "alice", 1, vec![component(1, 100, 1)]),
                2,
                flux(1),
            ),
        ),
        tx("carol", transfer("alice", flux(1))).fails("insufficient_funds"),
        block(),
        advance(month),
        block(),
        tx(
            "alice",
            register_app(
                app("cafe", "alice", 1, vec![component(1, 100, 1)]),
                1,
                flux(1),
            ),
        ),
        tx("alice", remove_app("cafe")),
        tx("bob", transfer("carol", flux(3))),
        block(),
    ]
}

#[test]
fn the_same_blocks_give_the_same_state_root() {
    let funded = [("alice", flux(1_000)), ("bob", flux(50))];
    let first = check(genesis(&funded), busy_scenario());
    let second = check(genesis(&funded), busy_scenario());
    assert_eq!(first.blocks, second.blocks);
    assert_eq!(first.state.state_root(), second.state.state_root());
    assert_eq!(first.events.len(), 1, "the shop expired");

    // A node that only sees the blocks reaches the same roots at every height.
    let (mut state, _) = State::from_genesis(&genesis(&funded)).unwrap();
    for block in &first.blocks {
        state = apply_block(&state, block).expect("valid").state;
        assert_eq!(state.state_root(), block.header.state_root);
    }
    assert_same_state(&state, &first.state);

    // Another genesis gives other roots.
    let other = check(
        genesis(&[("alice", flux(1_000)), ("bob", flux(51))]),
        busy_scenario(),
    );
    assert_ne!(other.state.state_root(), first.state.state_root());
}

#[test]
fn a_restored_state_is_the_same_state() {
    let funded = [("alice", flux(1_000)), ("bob", flux(50))];
    let chain = check(genesis(&funded), busy_scenario());
    // Accumulate every row from genesis on, as a store would.
    let (mut state, changes) = State::from_genesis(&genesis(&funded)).unwrap();
    let mut store = BTreeMap::new();
    store_rows(&mut store, &changes);
    let mut deleted = 0;
    for block in &chain.blocks {
        let outcome = apply_block(&state, block).unwrap();
        deleted += outcome
            .changes
            .rows
            .iter()
            // Probe windows (prefix 25) are deleted as they settle.
            .filter(|(key, value)| value.is_none() && key.first() != Some(&25))
            .count();
        store_rows(&mut store, &outcome.changes);
        state = outcome.state;
    }
    assert_eq!(
        deleted, 4,
        "a node, an expired app and its placement, and an app removed in the block that registered it"
    );
    let tip = chain.blocks.last().unwrap().hash();
    let restored = State::restore(store.clone(), tip).expect("restores");
    assert_same_state(&restored, &chain.state);
    assert_eq!(restored.sum_of_accounts(), restored.total_supply());
    assert!(restored.app("shop").is_none());
    assert!(restored.node(&addr("n1")).is_some());

    // The restored state goes on exactly like the original.
    let next = vec![signed("alice", 6, transfer("bob", flux(1)))];
    let ctx = BlockContext {
        timestamp_ms: chain.state.time_ms() + 3 * Params::devnet().month_ms,
        proposer: key(VALIDATOR).public_key(),
    };
    let original = build_block(&chain.state, &ctx, next.clone());
    let again = build_block(&restored, &ctx, next);
    assert!(original.rejected.is_empty(), "{:?}", original.rejected);
    assert_eq!(original.block, again.block);
    assert_eq!(original.outcome.events, again.outcome.events);
    assert_eq!(
        original.outcome.events.len(),
        1,
        "the updated blog would have expired"
    );
}

#[test]
fn restore_refuses_corrupt_rows() {
    let (_, changes) = State::from_genesis(&genesis(&[("alice", flux(1))])).unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = changes
        .rows
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()))
        .collect();
    assert!(State::restore(rows.clone(), Hash::ZERO).is_ok());
    let without_meta: Vec<_> = rows
        .iter()
        .filter(|(k, _)| k != &vec![0])
        .cloned()
        .collect();
    assert!(
        State::restore(without_meta, Hash::ZERO)
            .unwrap_err()
            .to_string()
            .contains("metadata")
    );
    let mut garbage = rows.clone();
    garbage
        .iter_mut()
        .find(|(k, _)| k[0] == 2)
        .unwrap()
        .1
        .push(0);
    assert!(State::restore(garbage, Hash::ZERO).is_err());
    let mut unknown = rows.clone();
    unknown.push((vec![99, 1], vec![]));
    assert!(State::restore(unknown, Hash::ZERO).is_err());
    let mut short_key = rows;
    short_key.push((vec![2, 1, 2, 3], vec![]));
    assert!(State::restore(short_key, Hash::ZERO).is_err());
}

#[test]
fn a_bad_genesis_is_refused() {
    let twice: Genesis = genesis(&[("alice", flux(1)), ("alice", flux(2))]);
    assert!(
        State::from_genesis(&twice)
            .unwrap_err()
            .to_string()
            .contains("listed twice")
    );
    let mut no_validator = genesis(&[("alice", flux(1))]);
    no_validator.validators.clear();
    assert!(State::from_genesis(&no_validator).is_err());
    let mut bad_chain = genesis(&[("alice", flux(1))]);
    bad_chain.chain_id = "flux test".into();
    assert!(State::from_genesis(&bad_chain).is_err());
}

#[test]
fn the_genesis_state_holds_the_genesis() {
    let g = genesis(&[("alice", flux(7)), ("bob", flux(3))]);
    let (state, _) = State::from_genesis(&g).unwrap();
    assert_eq!(state.height(), 0);
    assert_eq!(state.time_ms(), GENESIS_TIME_MS);
    assert_eq!(state.chain_id(), CHAIN_ID);
    assert_eq!(state.genesis_hash(), g.hash());
    assert_eq!(state.last_block_hash(), Hash::ZERO);
    assert_eq!(state.total_supply(), flux(10));
    assert_eq!(state.sum_of_accounts(), flux(10));
    assert_eq!(state.account(&addr("alice")).balance, flux(7));
    assert_eq!(state.params(), &g.params);
}
