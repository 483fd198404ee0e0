//! Signed transfers validated and applied per second, on one core.
//!
//! Pre-signs `BLOCKS` blocks of `TXS_PER_BLOCK` transfers from a set of
//! distinct funded accounts, then times `apply_block` on each block in turn:
//! header checks, the transaction root, batch verification of every
//! signature, every transfer (nonce, fee, balances), the rows for the store
//! and the state root. The whole chain of blocks is applied `RUNS` times from
//! the genesis state. As a baseline from the same run, the same signatures
//! are verified one by one, and in one batch per block, with nothing else.
//!
//! Two sets of senders are measured: 1,000 accounts sending five transfers
//! each per block, and one account per transfer of a block (5,000). Batch
//! verification combines the signatures of one key, so the second is the
//! harder case.
//!
//! Run with `cargo bench -p flux-ledger --bench transfers`; set
//! `FLUX_BENCH_RUNS` to change the number of runs.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports on standard output"
)]

use std::time::{Duration, Instant};

use flux_ledger::{BlockContext, State, apply_block, build_block};
use flux_types::{
    Amount, Block, Genesis, GenesisAccount, GenesisValidator, Params, SecretKey, SignedTransaction,
    Transaction, TxBody,
};

/// Senders per scenario: five transfers each per block, then one each.
const SCENARIOS: [usize; 2] = [1_000, TXS_PER_BLOCK];
const BLOCKS: usize = 10;
const TXS_PER_BLOCK: usize = 5_000;
const RUNS_DEFAULT: usize = 5;
const GENESIS_TIME_MS: u64 = 1_700_000_000_000;

fn main() {
    let runs = std::env::var("FLUX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS_DEFAULT);
    println!("Ledger: signed transfers validated and applied per second, one core");
    for accounts in SCENARIOS {
        scenario(accounts, runs);
    }
}

fn scenario(accounts: usize, runs: usize) {
    println!();
    println!(
        "setup: {accounts} funded accounts, {BLOCKS} blocks of {TXS_PER_BLOCK} transfers, {runs} runs"
    );
    let started = Instant::now();
    let (genesis_state, blocks) = setup(accounts);
    println!(
        "signed and built {} transfers in {:.1} s (not timed below)",
        BLOCKS * TXS_PER_BLOCK,
        started.elapsed().as_secs_f64()
    );

    // apply_block, every block in turn, from the genesis state, `runs` times.
    let mut block_rates = Vec::with_capacity(runs * BLOCKS);
    let mut run_rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut state = genesis_state.clone();
        let mut run_time = Duration::ZERO;
        for block in &blocks {
            let start = Instant::now();
            let outcome = apply_block(&state, block).expect("a valid block");
            let elapsed = start.elapsed();
            assert_eq!(outcome.receipts.len(), TXS_PER_BLOCK);
            run_time += elapsed;
            block_rates.push(rate(TXS_PER_BLOCK, elapsed));
            state = outcome.state;
        }
        assert_eq!(state.sum_of_accounts(), state.total_supply());
        run_rates.push(rate(BLOCKS * TXS_PER_BLOCK, run_time));
    }

    // Baselines over the same transactions: signatures alone.
    let signing: Vec<Vec<Vec<u8>>> = blocks
        .iter()
        .map(|b| b.txs.iter().map(|t| t.tx.signing_bytes()).collect())
        .collect();
    let mut single_rates = Vec::new();
    let mut batch_rates = Vec::new();
    for _ in 0..runs.clamp(1, 3) {
        for (block, bytes) in blocks.iter().zip(&signing) {
            let start = Instant::now();
            for (tx, message) in block.txs.iter().zip(bytes) {
                assert!(tx.tx.signer.verify(message, &tx.signature));
            }
            single_rates.push(rate(TXS_PER_BLOCK, start.elapsed()));

            let start = Instant::now();
            let items = block
                .txs
                .iter()
                .zip(bytes)
                .map(|(t, m)| (&t.tx.signer, m.as_slice(), &t.signature));
            assert!(flux_types::crypto::verify_batch(items));
            batch_rates.push(rate(TXS_PER_BLOCK, start.elapsed()));
        }
    }

    let apply = summary(&mut block_rates);
    let single = summary(&mut single_rates);
    let batch = summary(&mut batch_rates);
    let runs_summary = summary(&mut run_rates);
    println!(
        "apply_block (signatures included), per block: median {} transfers/s, min {}, max {} ({} blocks)",
        thousands(apply.median),
        thousands(apply.min),
        thousands(apply.max),
        block_rates.len()
    );
    println!(
        "apply_block, per run of {BLOCKS} blocks:          median {} transfers/s, min {}, max {}",
        thousands(runs_summary.median),
        thousands(runs_summary.min),
        thousands(runs_summary.max)
    );
    println!(
        "baseline, single signature verification alone: median {} signatures/s, min {}, max {}",
        thousands(single.median),
        thousands(single.min),
        thousands(single.max)
    );
    println!(
        "baseline, batch signature verification alone:  median {} signatures/s, min {}, max {}",
        thousands(batch.median),
        thousands(batch.min),
        thousands(batch.max)
    );
    println!(
        "ratio apply_block / single verification: {:.2}",
        apply.median / single.median
    );
    println!(
        "share of apply_block spent in batch verification: {:.0} %",
        100.0 * apply.median / batch.median
    );
}

/// The genesis state and `BLOCKS` valid blocks of transfers on top of it.
fn setup(accounts: usize) -> (State, Vec<Block>) {
    let keys: Vec<SecretKey> = (0..accounts)
        .map(|i| SecretKey::development(&format!("bench{i}")))
        .collect();
    let validator = SecretKey::development("bench-validator");
    let mut params = Params::devnet();
    params.block_txs_max = params.block_txs_max.max(TXS_PER_BLOCK as u32);
    let genesis = Genesis {
        chain_id: "flux-bench".into(),
        genesis_time_ms: GENESIS_TIME_MS,
        params,
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount::flux(1_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "bench".into(),
            public_key: validator.public_key(),
            p2p_endpoint: "127.0.0.1:16128".into(),
            api_endpoint: "127.0.0.1:16127".into(),
        }],
    };
    let (genesis_state, _) = State::from_genesis(&genesis).expect("a valid genesis");
    let fee = genesis.params.tx_fee_min;
    let per_account = (TXS_PER_BLOCK / accounts) as u64;
    let mut state = genesis_state.clone();
    let mut blocks = Vec::with_capacity(BLOCKS);
    for height in 0..BLOCKS {
        let txs: Vec<SignedTransaction> = (0..TXS_PER_BLOCK)
            .map(|i| {
                let from = i % accounts;
                let to = (from * 7 + i / accounts + 1) % accounts;
                Transaction {
                    chain_id: genesis.chain_id.clone(),
                    signer: keys[from].public_key(),
                    nonce: height as u64 * per_account + (i / accounts) as u64,
                    fee,
                    body: TxBody::Transfer {
                        to: keys[to].address(),
                        amount: Amount::units(1 + i as u64),
                    },
                }
                .sign(&keys[from])
            })
            .collect();
        let ctx = BlockContext {
            timestamp_ms: GENESIS_TIME_MS + (height as u64 + 1) * 1_000,
            proposer: validator.public_key(),
        };
        let built = build_block(&state, &ctx, txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected.first());
        assert_eq!(built.block.txs.len(), TXS_PER_BLOCK);
        state = built.outcome.state;
        blocks.push(built.block);
    }
    (genesis_state, blocks)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

fn summary(values: &mut [f64]) -> Summary {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Summary {
        median,
        min: values[0],
        max: values[n - 1],
    }
}

/// `31234.5` as `31,235`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
