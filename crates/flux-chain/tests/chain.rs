//! A real node on a temporary directory: submission, finalization, receipts,
//! the mempool's limits and ordering, restarts and shutdown.
//!
//! Every wait is on a condition with a deadline, never a fixed sleep.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use flux_chain::{ChainError, Node, NodeConfig, SubmitError, TxStatus};
use flux_ledger::ReceiptDetail;
use flux_types::{
    Address, Amount, AppSpec, Component, Genesis, GenesisAccount, GenesisValidator, Hash, Params,
    SecretKey, SignedTransaction, Transaction, TxBody,
};

const CHAIN_ID: &str = "chain-test";
/// Fast blocks, so that the tests run in well under a second each.
const BLOCK_INTERVAL_MS: u64 = 50;
/// Longest wait for anything.
const DEADLINE: Duration = Duration::from_secs(30);
/// A fee above the minimum of every transaction used here.
const FEE: Amount = Amount::units(100_000);

fn key(label: &str) -> SecretKey {
    SecretKey::development(label)
}

fn address(label: &str) -> Address {
    key(label).address()
}

fn genesis_of(chain_id: &str) -> Genesis {
    Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 1_700_000_000_000,
        params: Params::devnet(),
        accounts: vec![
            GenesisAccount {
                address: address("alice"),
                balance: Amount::flux(1_000),
            },
            GenesisAccount {
                address: address("carol"),
                balance: Amount::flux(10),
            },
        ],
        validators: vec![GenesisValidator {
            name: "validator".into(),
            public_key: key("validator").public_key(),
            p2p_endpoint: "127.0.0.1:16125".into(),
            api_endpoint: "127.0.0.1:16127".into(),
        }],
    }
}

fn config(dir: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        genesis: genesis_of(CHAIN_ID),
        node_key: key("validator"),
        block_interval_ms: BLOCK_INTERVAL_MS,
        mempool_txs_max: 1_000,
        mempool_bytes_max: 1 << 20,
    }
}

fn signed(from: &str, nonce: u64, fee: Amount, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN_ID.into(),
        signer: key(from).public_key(),
        nonce,
        fee,
        body,
    }
    .sign(&key(from))
}

fn transfer(from: &str, nonce: u64, to: &str, amount: Amount) -> SignedTransaction {
    signed(
        from,
        nonce,
        FEE,
        TxBody::Transfer {
            to: address(to),
            amount,
        },
    )
}

fn app(owner: &str) -> AppSpec {
    AppSpec {
        name: "webapp".into(),
        description: "a test app".into(),
        owner: address(owner),
        instances: 3,
        contacts: vec![],
        geolocation: vec![],
        nodes: vec![],
        static_ip: false,
        components: vec![Component {
            name: "web".into(),
            description: String::new(),
            repotag: "nginx:1.25".into(),
            ports: vec![31_000],
            container_ports: vec![80],
            domains: vec![],
            environment: vec![],
            commands: vec![],
            container_data: "/data".into(),
            cpu_tenths: 10,
            ram_mb: 1_000,
            hdd_gb: 10,
            health_path: String::new(),
        }],
    }
}

/// Runs `future` with the test's deadline.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `node` until `condition` holds.
async fn until(node: &Node, what: &str, condition: impl Fn(&Node) -> bool) {
    within(what, async {
        while !condition(node) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Waits until `hash` leaves the mempool and returns where it went.
async fn settled(node: &Node, hash: Hash) -> TxStatus {
    until(node, "the transaction to settle", |node| {
        node.tx_status(&hash).unwrap() != TxStatus::Pending
    })
    .await;
    node.tx_status(&hash).unwrap()
}

async fn committed(node: &Node, hash: Hash) -> flux_ledger::Receipt {
    match settled(node, hash).await {
        TxStatus::Committed { receipt } => receipt,
        other => panic!("expected {hash} to be committed, got {other:?}"),
    }
}

fn refused(node: &Node, tx: SignedTransaction) -> SubmitError {
    node.submit(tx)
        .expect_err("the transaction should have been refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_is_finalized_and_its_receipt_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    let tx = transfer("alice", 0, "bob", Amount::flux(7));
    let hash = node.submit(tx.clone()).unwrap();
    assert_eq!(hash, tx.hash());
    assert_eq!(node.next_nonce(&address("alice")), 1);
    let receipt = committed(&node, hash).await;
    assert_eq!(
        receipt.detail,
        ReceiptDetail::Transfer {
            to: address("bob"),
            amount: Amount::flux(7)
        }
    );
    assert_eq!(receipt.fee, FEE);
    let block = node
        .block(receipt.height)
        .unwrap()
        .expect("the receipt's block is stored");
    assert_eq!(block.txs[receipt.index as usize], tx);
    let state = node.state();
    assert!(state.height() >= receipt.height);
    assert_eq!(state.account(&address("bob")).balance, Amount::flux(7));
    assert_eq!(state.account(&address("alice")).nonce, 1);
    assert_eq!(
        state.account(&key("validator").address()).balance,
        FEE,
        "the fee goes to the proposer"
    );
    let status = node.status();
    assert_eq!(
        (status.chain_id.as_str(), status.genesis_hash),
        (CHAIN_ID, genesis_of(CHAIN_ID).hash())
    );
    assert_eq!(status.node_id, key("validator").address());
    assert_eq!(status.mempool_txs, 0);
    assert_eq!(node.next_nonce(&address("alice")), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_blocks_advance_chain_time_and_wait_for_height_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    within("height 3", node.wait_for_height(3)).await;
    let first = node.block(1).unwrap().unwrap();
    let third = node.block(3).unwrap().unwrap();
    assert!(third.txs.is_empty());
    assert!(third.header.timestamp_ms > first.header.timestamp_ms);
    assert_eq!(node.block(0).unwrap(), None, "the genesis is not a block");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chain_waits_the_full_interval_and_a_transaction_goes_out_at_once() {
    const IDLE_MS: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.genesis.params.block_interval_ms = IDLE_MS;
    config.genesis.params.block_interval_busy_ms = 50;
    config.block_interval_ms = IDLE_MS;
    let node = Node::start(config).await.unwrap();
    // Idle: the second block comes a whole interval after the first.
    within("height 2", node.wait_for_height(2)).await;
    let first = node.block(1).unwrap().unwrap();
    let second = node.block(2).unwrap().unwrap();
    assert!(second.txs.is_empty());
    let gap = second.header.timestamp_ms - first.header.timestamp_ms;
    assert!(gap >= IDLE_MS, "idle blocks {gap} ms apart");
    // Busy: a transfer submitted just after a block does not wait out the
    // idle interval (generous bound for a loaded machine, well under it).
    let submitted = std::time::Instant::now();
    let hash = node
        .submit(transfer("alice", 0, "bob", Amount::flux(1)))
        .unwrap();
    let receipt = committed(&node, hash).await;
    let waited = submitted.elapsed();
    assert!(
        waited < Duration::from_millis(IDLE_MS / 2),
        "the transfer took {waited:?}"
    );
    let block = node.block(receipt.height).unwrap().unwrap();
    let parent = node.block(receipt.height - 1).unwrap().unwrap();
    assert!(
        block.header.timestamp_ms - parent.header.timestamp_ms < IDLE_MS / 2,
        "a busy block came {} ms after its parent",
        block.header.timestamp_ms - parent.header.timestamp_ms
    );
    // Idle again: the next block waits the full interval once more.
    within("the next block", node.wait_for_height(receipt.height + 1)).await;
    let next = node.block(receipt.height + 1).unwrap().unwrap();
    assert!(next.header.timestamp_ms - block.header.timestamp_ms >= IDLE_MS);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_transactions_are_refused_at_submit_with_the_ledger_code() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    let mut forged = transfer("alice", 0, "bob", Amount::flux(1));
    forged.tx.body = TxBody::Transfer {
        to: address("mallory"),
        amount: Amount::flux(1),
    };
    let cases = [
        ("invalid_signature", forged),
        (
            "fee_too_low",
            signed(
                "alice",
                0,
                Amount::ZERO,
                TxBody::Transfer {
                    to: address("bob"),
                    amount: Amount::flux(1),
                },
            ),
        ),
        (
            "insufficient_funds",
            transfer("bob", 0, "alice", Amount::flux(1)),
        ),
        (
            "nonce_gap",
            transfer("alice", 1_000, "bob", Amount::flux(1)),
        ),
        ("zero_amount", transfer("alice", 0, "bob", Amount::ZERO)),
        (
            "wrong_chain",
            Transaction {
                chain_id: "other-chain".into(),
                signer: key("alice").public_key(),
                nonce: 0,
                fee: FEE,
                body: TxBody::Transfer {
                    to: address("bob"),
                    amount: Amount::flux(1),
                },
            }
            .sign(&key("alice")),
        ),
        (
            "underpaid",
            signed(
                "alice",
                0,
                FEE,
                TxBody::AppRegister {
                    spec: app("alice"),
                    months: 1,
                    max_payment: Amount::units(1),
                },
            ),
        ),
    ];
    for (code, tx) in cases {
        let error = refused(&node, tx.clone());
        assert!(
            matches!(error, SubmitError::Invalid(_)),
            "{code}: {error:?}"
        );
        assert_eq!(error.code(), code, "{error}");
        assert_eq!(
            node.tx_status(&tx.hash()).unwrap(),
            TxStatus::Unknown,
            "{code}: a refused transaction leaves no trace"
        );
    }
    let underpaid = refused(
        &node,
        signed(
            "alice",
            0,
            FEE,
            TxBody::AppRegister {
                spec: app("alice"),
                months: 1,
                max_payment: Amount::units(1),
            },
        ),
    );
    assert!(
        underpaid.to_string().starts_with("price is "),
        "{underpaid}"
    );
    // Nothing reached the state either.
    within("two blocks", node.wait_for_height(2)).await;
    assert_eq!(node.state().account(&address("alice")).nonce, 0);
    assert!(node.state().app("webapp").is_none());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_refused_pending_or_committed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    // Nonce 1 waits for nonce 0, so it stays pending for sure.
    let waiting = transfer("alice", 1, "bob", Amount::flux(1));
    let hash = node.submit(waiting.clone()).unwrap();
    assert_eq!(
        refused(&node, waiting.clone()),
        SubmitError::Duplicate(hash)
    );
    assert_eq!(refused(&node, waiting.clone()).code(), "duplicate_tx");
    // Same signer and nonce: a lower or equal fee is refused in favour of the pending one.
    let cheaper = signed(
        "alice",
        1,
        Amount::units(50_000),
        TxBody::Transfer {
            to: address("carol"),
            amount: Amount::flux(1),
        },
    );
    assert_eq!(refused(&node, cheaper), SubmitError::Duplicate(hash));
    assert_eq!(node.tx_status(&hash).unwrap(), TxStatus::Pending);

    let first = node
        .submit(transfer("alice", 0, "bob", Amount::flux(1)))
        .unwrap();
    committed(&node, first).await;
    committed(&node, hash).await;
    assert_eq!(
        refused(&node, waiting),
        SubmitError::Duplicate(hash),
        "a committed transaction is a duplicate too"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_fee_replaces_a_pending_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    let original = node
        .submit(transfer("alice", 1, "bob", Amount::flux(1)))
        .unwrap();
    let replacement = node
        .submit(signed(
            "alice",
            1,
            Amount::units(200_000),
            TxBody::Transfer {
                to: address("carol"),
                amount: Amount::flux(2),
            },
        ))
        .unwrap();
    match node.tx_status(&original).unwrap() {
        TxStatus::Rejected { code, message } => {
            assert_eq!(code, "replaced");
            assert!(message.contains(&replacement.to_string()), "{message}");
        }
        other => panic!("expected the original to be replaced, got {other:?}"),
    }
    node.submit(transfer("alice", 0, "bob", Amount::flux(1)))
        .unwrap();
    committed(&node, replacement).await;
    assert_eq!(
        node.state().account(&address("carol")).balance,
        Amount::flux(12)
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mempool_refuses_and_names_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let size = transfer("alice", 0, "bob", Amount::flux(1)).size_bytes();
    // By count: transactions behind a missing nonce stay in the mempool, so it fills for sure.
    let node = Node::start(NodeConfig {
        mempool_txs_max: 3,
        ..config(dir.path())
    })
    .await
    .unwrap();
    for nonce in 1..=3 {
        node.submit(transfer("alice", nonce, "bob", Amount::flux(1)))
            .unwrap();
    }
    let full = refused(&node, transfer("alice", 4, "bob", Amount::flux(1)));
    assert_eq!(
        full,
        SubmitError::MempoolFull {
            txs: 3,
            bytes: 1 << 20
        }
    );
    assert_eq!(full.code(), "mempool_full");
    assert!(full.to_string().contains("3 transactions"), "{full}");
    assert_eq!(node.status().mempool_txs, 3);
    // Another account cannot squeeze in either.
    assert!(matches!(
        refused(&node, transfer("carol", 0, "bob", Amount::flux(1))),
        SubmitError::MempoolFull { .. }
    ));
    node.shutdown().await;

    // By bytes.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig {
        mempool_bytes_max: 2 * size + size / 2,
        ..config(dir.path())
    })
    .await
    .unwrap();
    node.submit(transfer("alice", 1, "bob", Amount::flux(1)))
        .unwrap();
    node.submit(transfer("alice", 2, "bob", Amount::flux(1)))
        .unwrap();
    let full = refused(&node, transfer("alice", 3, "bob", Amount::flux(1)));
    assert_eq!(
        full,
        SubmitError::MempoolFull {
            txs: 1_000,
            bytes: 2 * size + size / 2
        }
    );
    assert!(
        full.to_string()
            .contains(&format!("{} bytes", 2 * size + size / 2)),
        "{full}"
    );
    assert_eq!(node.status().mempool_txs, 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_admitted_transaction_by_transaction_up_to_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig {
        mempool_txs_max: 4,
        ..config(dir.path())
    })
    .await
    .unwrap();
    let first = transfer("alice", 0, "bob", Amount::flux(1));
    let second = transfer("alice", 1, "bob", Amount::flux(2));
    let mut forged = transfer("carol", 0, "bob", Amount::flux(1));
    forged.tx.body = TxBody::Transfer {
        to: address("mallory"),
        amount: Amount::flux(9),
    };
    let overspend = transfer("carol", 0, "bob", Amount::flux(1_000));
    // Held back by a missing nonce, so they stay and fill the mempool.
    let waiting: Vec<SignedTransaction> = (5..8)
        .map(|nonce| transfer("alice", nonce, "bob", Amount::flux(1)))
        .collect();
    let mut batch = vec![
        first.clone(),
        forged.clone(),
        second.clone(),
        first.clone(),
        overspend,
    ];
    batch.extend(waiting.iter().cloned());
    let codes: Vec<Result<Hash, &str>> = node
        .submit_batch(batch)
        .into_iter()
        .map(|result| result.map_err(|error| error.code()))
        .collect();
    assert_eq!(
        codes,
        vec![
            Ok(first.hash()),
            Err("invalid_signature"),
            Ok(second.hash()),
            Err("duplicate_tx"),
            Err("insufficient_funds"),
            Ok(waiting[0].hash()),
            Ok(waiting[1].hash()),
            Err("mempool_full"),
        ]
    );
    committed(&node, second.hash()).await;
    // Checked against the latest state, like a single submission.
    let codes: Vec<Result<Hash, &str>> = node
        .submit_batch(vec![
            first.clone(),
            transfer("alice", 0, "carol", Amount::flux(1)),
        ])
        .into_iter()
        .map(|result| result.map_err(|error| error.code()))
        .collect();
    assert_eq!(codes, vec![Err("duplicate_tx"), Err("nonce_used")]);
    assert!(node.submit_batch(Vec::new()).is_empty());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_applied_in_order_whatever_the_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    let second = node
        .submit(transfer("alice", 1, "bob", Amount::flux(2)))
        .unwrap();
    assert_eq!(
        node.next_nonce(&address("alice")),
        0,
        "nonce 0 is still missing"
    );
    within("two blocks", node.wait_for_height(2)).await;
    assert_eq!(
        node.tx_status(&second).unwrap(),
        TxStatus::Pending,
        "nonce 1 waits for nonce 0"
    );
    let first = node
        .submit(transfer("alice", 0, "bob", Amount::flux(1)))
        .unwrap();
    assert_eq!(node.next_nonce(&address("alice")), 2);
    let first_receipt = committed(&node, first).await;
    let second_receipt = committed(&node, second).await;
    assert!(
        (first_receipt.height, first_receipt.index) < (second_receipt.height, second_receipt.index),
        "nonce 0 goes first: {first_receipt:?} {second_receipt:?}"
    );
    assert_eq!(node.state().account(&address("alice")).nonce, 2);
    assert_eq!(
        node.state().account(&address("bob")).balance,
        Amount::flux(3)
    );
    assert_eq!(node.next_nonce(&address("alice")), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_no_longer_applies_at_build_time_is_rejected_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    // Each alone is affordable for carol (10 FLUX); together they are not.
    // Nonce 1 is submitted first so that both land in the same block.
    let second = node
        .submit(transfer("carol", 1, "bob", Amount::flux(6)))
        .unwrap();
    let first = node
        .submit(transfer("carol", 0, "bob", Amount::flux(6)))
        .unwrap();
    committed(&node, first).await;
    match settled(&node, second).await {
        TxStatus::Rejected { code, message } => {
            assert_eq!(code, "insufficient_funds");
            assert!(message.contains("insufficient funds"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(node.state().account(&address("carol")).nonce, 1);
    assert_eq!(
        node.status().mempool_txs,
        0,
        "the rejected transaction left the mempool"
    );
    assert_eq!(node.next_nonce(&address("carol")), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_at_the_same_height_and_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    let hash = node
        .submit(transfer("alice", 0, "bob", Amount::flux(5)))
        .unwrap();
    let receipt = committed(&node, hash).await;
    within("two more blocks", node.wait_for_height(receipt.height + 2)).await;
    node.shutdown().await;
    let stopped = node.status();
    assert!(
        matches!(node.block(1), Err(ChainError::Store(_))),
        "the store is closed after shutdown"
    );

    // What is on disk is exactly what the node reported when it stopped.
    {
        let store = flux_store::Store::open(dir.path(), &genesis_of(CHAIN_ID)).unwrap();
        let stored = store.load().unwrap().unwrap();
        assert_eq!(
            (
                stored.height(),
                stored.state_root(),
                stored.last_block_hash()
            ),
            (stopped.height, stopped.state_root, stopped.last_block_hash)
        );
    }

    let node = Node::start(config(dir.path())).await.unwrap();
    let resumed = node.status();
    assert!(resumed.height >= stopped.height);
    let tip = node.block(stopped.height).unwrap().unwrap();
    assert_eq!(tip.hash(), stopped.last_block_hash);
    assert_eq!(tip.header.state_root, stopped.state_root);
    // It keeps producing on top of the old tip.
    within("new blocks", node.wait_for_height(stopped.height + 2)).await;
    let next = node.block(stopped.height + 1).unwrap().unwrap();
    assert_eq!(next.header.parent, stopped.last_block_hash);
    assert_eq!(
        node.tx_status(&hash).unwrap(),
        TxStatus::Committed { receipt }
    );
    assert_eq!(
        node.state().account(&address("bob")).balance,
        Amount::flux(5)
    );
    assert_eq!(node.next_nonce(&address("alice")), 1);
    let later = node
        .submit(transfer("alice", 1, "bob", Amount::flux(1)))
        .unwrap();
    committed(&node, later).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_genesis_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    node.shutdown().await;
    let error = Node::start(NodeConfig {
        genesis: genesis_of("another-chain"),
        ..config(dir.path())
    })
    .await
    .err()
    .expect("a foreign genesis must be refused");
    assert!(matches!(error, ChainError::Genesis(_)), "{error:?}");
    assert!(error.to_string().contains("genesis"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    let error = Node::start(config(dir.path()))
        .await
        .err()
        .expect("the directory is in use");
    assert!(matches!(error, ChainError::Store(_)), "{error:?}");
    assert!(error.to_string().contains("already in use"), "{error}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_work_and_releases_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    within("the first block", node.wait_for_height(1)).await;
    let waiter = tokio::spawn({
        let node = node.clone();
        async move { node.wait_for_height(u64::MAX).await }
    });
    node.shutdown().await;
    within("the waiter to be released", waiter).await.unwrap();
    let error = refused(&node, transfer("alice", 0, "bob", Amount::flux(1)));
    assert_eq!(error, SubmitError::ShuttingDown);
    assert_eq!(error.code(), "shutting_down");
    // Waiting after shutdown returns at once instead of hanging.
    within("a wait after shutdown", node.wait_for_height(u64::MAX)).await;
    // Shutting down twice is harmless.
    node.shutdown().await;
}
