//! The store against real files: round trips, restarts, a foreign genesis, and
//! a writer process killed with SIGKILL while it commits.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use flux_ledger::{BlockContext, Built, State, build_block};
use flux_store::{Store, StoreError, Tip};
use flux_types::{
    Amount, Genesis, GenesisAccount, GenesisValidator, Params, SecretKey, SignedTransaction,
    Transaction, TxBody,
};

const CHAIN_ID: &str = "store-it";
/// Set in the child process of the crash test: the directory it writes to.
const CRASH_CHILD_DIR: &str = "FLUX_STORE_CRASH_CHILD_DIR";
/// What the child prints after each commit.
const COMMITTED: &str = "committed";

fn genesis(chain_id: &str) -> Genesis {
    Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 1_700_000_000_000,
        params: Params::devnet(),
        accounts: (0..4)
            .map(|i| GenesisAccount {
                address: SecretKey::development(&format!("user{i}")).address(),
                balance: Amount::flux(1_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "v0".into(),
            public_key: proposer().public_key(),
            p2p_endpoint: "127.0.0.1:16125".into(),
            api_endpoint: "127.0.0.1:16127".into(),
        }],
    }
}

fn proposer() -> SecretKey {
    SecretKey::development("validator")
}

/// One transfer from each of the four users, with nonces taken from `state`.
fn transfers(state: &State) -> Vec<SignedTransaction> {
    (0..4)
        .map(|i| {
            let key = SecretKey::development(&format!("user{i}"));
            Transaction {
                chain_id: CHAIN_ID.into(),
                signer: key.public_key(),
                nonce: state.account(&key.address()).nonce,
                fee: Amount::units(10_000),
                body: TxBody::Transfer {
                    to: SecretKey::development(&format!("user{}", (i + 1) % 4)).address(),
                    amount: Amount::units(1_000 + i),
                },
            }
            .sign(&key)
        })
        .collect()
}

fn next(state: &State) -> Built {
    let ctx = BlockContext {
        timestamp_ms: state.time_ms() + 1_000,
        proposer: proposer().public_key(),
    };
    let built = build_block(state, &ctx, transfers(state));
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    built
}

/// Opens `dir` and commits the genesis if the store is new; returns the stored state.
fn open_or_init(dir: &Path) -> (Store, State) {
    let genesis = genesis(CHAIN_ID);
    let store = Store::open(dir, &genesis).unwrap();
    let state = match store.load().unwrap() {
        Some(state) => state,
        None => {
            let (state, changes) = State::from_genesis(&genesis).unwrap();
            store.commit_genesis(&genesis, &changes).unwrap();
            state
        }
    };
    (store, state)
}

fn commit(store: &Store, built: &Built) {
    store
        .commit_block(
            &built.block,
            &built.outcome.receipts,
            &built.outcome.changes,
        )
        .unwrap();
}

#[test]
fn blocks_receipts_and_state_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut state) = open_or_init(dir.path());
    let mut blocks = Vec::new();
    for _ in 0..5 {
        let built = next(&state);
        commit(&store, &built);
        state = built.outcome.state.clone();
        blocks.push(built);
    }
    for built in &blocks {
        assert_eq!(
            store.block(built.block.height()).unwrap().as_ref(),
            Some(&built.block)
        );
        for receipt in &built.outcome.receipts {
            assert_eq!(
                store.receipt(&receipt.tx_hash).unwrap().as_ref(),
                Some(receipt)
            );
            let location = store.tx_location(&receipt.tx_hash).unwrap().unwrap();
            assert_eq!(
                (location.height, location.index),
                (receipt.height, receipt.index)
            );
        }
    }
    assert_eq!(store.block(6).unwrap(), None);
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.state_root(), state.state_root());
    assert_eq!(loaded.height(), 5);
}

#[test]
fn a_restart_resumes_at_the_last_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let (store, mut state) = open_or_init(dir.path());
        for _ in 0..3 {
            let built = next(&state);
            commit(&store, &built);
            state = built.outcome.state;
        }
        // A block built but never committed must leave no trace.
        let _lost = next(&state);
        state
    };
    let (store, state) = open_or_init(dir.path());
    assert_eq!(state.height(), 3);
    assert_eq!(state.state_root(), expected.state_root());
    assert_eq!(state.last_block_hash(), expected.last_block_hash());
    assert_eq!(
        store.tip().unwrap(),
        Some(Tip {
            height: 3,
            hash: expected.last_block_hash()
        })
    );
    // And the chain goes on from there: the restored state builds the same next block.
    let resumed = next(&state);
    let uninterrupted = next(&expected);
    assert_eq!(resumed.block, uninterrupted.block);
    commit(&store, &resumed);
    assert_eq!(store.tip().unwrap().unwrap().height, 4);
}

#[test]
fn another_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_or_init(dir.path()));
    let other = genesis("another-chain");
    let error = Store::open(dir.path(), &other).unwrap_err();
    match &error {
        StoreError::GenesisMismatch { stored, given, .. } => {
            assert_eq!(*stored, genesis(CHAIN_ID).hash());
            assert_eq!(*given, other.hash());
        }
        other => panic!("expected a genesis mismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("genesis") && message.contains("data directory"),
        "{message}"
    );
}

/// Not a test on its own: the body of the child process of the crash test,
/// which commits blocks as fast as it can until it is killed.
#[test]
fn crash_child_commits_forever() {
    let Ok(dir) = std::env::var(CRASH_CHILD_DIR) else {
        return;
    };
    let (store, mut state) = open_or_init(Path::new(&dir));
    loop {
        let built = next(&state);
        commit(&store, &built);
        state = built.outcome.state;
        #[allow(
            clippy::print_stdout,
            reason = "the child reports progress to its parent on stdout"
        )]
        {
            println!("{COMMITTED} {}", state.height());
        }
    }
}

#[test]
fn sigkill_during_commits_leaves_a_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut previous_height = 0;
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_commits_forever",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The child reports each committed height; wait for a few, then kill it mid-flight.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut committed = 0;
        while committed < 3 {
            let line = lines
                .next()
                .expect("the writer process stopped reporting")
                .unwrap();
            if line.starts_with(COMMITTED) {
                committed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(3 + 7 * round));
        child.kill().unwrap();
        child.wait().unwrap();

        let (store, state) = open_or_init(dir.path());
        let tip = store.tip().unwrap().unwrap();
        assert!(
            tip.height >= previous_height,
            "round {round}: height went back from {previous_height} to {}",
            tip.height
        );
        assert_eq!(state.height(), tip.height);
        if tip.height > 0 {
            let block = store
                .block(tip.height)
                .unwrap()
                .expect("the tip's block is stored");
            assert_eq!(block.hash(), tip.hash);
            assert_eq!(
                block.header.state_root,
                state.state_root(),
                "round {round}: the state is not the tip block's"
            );
            for tx in &block.txs {
                assert!(
                    store.receipt(&tx.hash()).unwrap().is_some(),
                    "round {round}: a receipt of the tip block is missing"
                );
            }
        }
        assert_eq!(store.block(tip.height + 1).unwrap(), None);
        previous_height = tip.height;
    }
    assert!(
        previous_height >= 9,
        "each round committed at least three blocks"
    );
}
