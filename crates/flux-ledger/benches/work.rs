//! Useful work at scale, on one core.
//!
//! A chain of 5,000 confirmed nodes run by 500 operators (10 nodes each) and
//! 2,000 apps of 5 instances (10,000 instances), so 15,000 targets with 3
//! verifiers each. It times `apply_block` on:
//!
//! 1. **the first block of an epoch**, which fixes the epoch's assignment
//!    (ring of every active node, a walk per target, one row per target);
//! 2. **a block of reports**: every node with targets reports every target
//!    it verifies for one window (one `WorkReport` per node, ~9 targets each);
//! 3. **the block that settles that window**: every target's tally read, the
//!    hosts credited, the tallies deleted;
//! 4. **an empty block** of the same chain, as the baseline (the state root
//!    rehashes every row at the end of every block);
//! 5. **the block that pays the epoch's rewards**: every node's work in the
//!    epoch read, weighted by tier, and its owner paid.
//!
//! It also times `State::targets_of` for every node. Run with
//! `cargo bench -p flux-ledger --bench work`; set `FLUX_BENCH_RUNS` to change
//! the number of runs (default 5).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports on standard output"
)]

use std::time::{Duration, Instant};

use flux_ledger::{BlockContext, State, apply_block, build_block};
use flux_types::{
    Amount, AppSpec, BenchmarkReport, Block, Component, Genesis, GenesisAccount, GenesisValidator,
    Params, SecretKey, SignedTransaction, TargetResults, Tier, Transaction, TxBody,
};

const OPERATORS: usize = 500;
const NODES_PER_OPERATOR: usize = 10;
const APPS: usize = 2_000;
const INSTANCES: u32 = 5;
const RUNS_DEFAULT: usize = 5;
const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
const CHAIN_ID: &str = "flux-bench";

struct Chain {
    state: State,
    validator: SecretKey,
}

impl Chain {
    fn sign(&self, key: &SecretKey, nonce: u64, body: TxBody) -> SignedTransaction {
        let fee = if matches!(
            body,
            TxBody::NodeBenchmark { .. } | TxBody::WorkReport { .. }
        ) {
            Amount::ZERO
        } else {
            self.state.params().tx_fee_min
        };
        Transaction {
            chain_id: CHAIN_ID.into(),
            signer: key.public_key(),
            nonce,
            fee,
            body,
        }
        .sign(key)
    }

    fn build(&self, txs: Vec<SignedTransaction>) -> Block {
        let count = txs.len();
        let ctx = BlockContext {
            timestamp_ms: self.state.time_ms() + 1_000,
            proposer: self.validator.public_key(),
        };
        let built = build_block(&self.state, &ctx, txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected.first());
        assert_eq!(built.block.txs.len(), count);
        built.block
    }

    /// Applies `block` `runs` times from the same state; keeps the result
    /// and returns the median CPU time.
    fn time(&mut self, block: &Block, runs: usize) -> Duration {
        let mut times = Vec::new();
        let mut next = None;
        for _ in 0..runs {
            let started = thread_cpu_time();
            let outcome = apply_block(&self.state, block).expect("a valid block");
            times.push(thread_cpu_time() - started);
            next = Some(outcome.state);
        }
        self.state = next.expect("at least one run");
        median(&mut times)
    }

    fn push(&mut self, txs: Vec<SignedTransaction>) {
        let block = self.build(txs);
        self.state = apply_block(&self.state, &block)
            .expect("a valid block")
            .state;
    }
}

fn app(index: usize, owner: &SecretKey) -> AppSpec {
    AppSpec {
        name: format!("app{index:06}"),
        description: String::new(),
        owner: owner.address(),
        instances: INSTANCES,
        contacts: vec![],
        geolocation: vec![],
        nodes: vec![],
        static_ip: false,
        components: vec![Component {
            name: "web".into(),
            description: String::new(),
            repotag: "flux-hello:latest".into(),
            ports: vec![31_000],
            container_ports: vec![8080],
            domains: vec![],
            environment: vec![],
            commands: vec![],
            container_data: String::new(),
            cpu_tenths: 1,
            ram_mb: 100,
            hdd_gb: 1,
            health_path: String::new(),
        }],
    }
}

fn main() {
    let runs = std::env::var("FLUX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS_DEFAULT)
        .max(1);
    let started = Instant::now();
    let operators: Vec<SecretKey> = (0..OPERATORS)
        .map(|i| SecretKey::development(&format!("bench-operator{i}")))
        .collect();
    let nodes: Vec<SecretKey> = (0..OPERATORS * NODES_PER_OPERATOR)
        .map(|i| SecretKey::development(&format!("bench-node{i}")))
        .collect();
    let owner = SecretKey::development("bench-owner");
    let mut params = Params::devnet();
    params.block_txs_max = 20_000;
    let validator = SecretKey::development("bench-validator");
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: GENESIS_TIME_MS,
        params: params.clone(),
        accounts: operators
            .iter()
            .chain([&owner])
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount::flux(10_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "bench".into(),
            public_key: validator.public_key(),
            p2p_endpoint: "127.0.0.1:16128".into(),
            api_endpoint: "127.0.0.1:16127".into(),
        }],
    };
    let (state, _) = State::from_genesis(&genesis).expect("a valid genesis");
    let mut chain = Chain { state, validator };
    let registrations = nodes
        .iter()
        .enumerate()
        .map(|(i, key)| {
            chain.sign(
                &operators[i / NODES_PER_OPERATOR],
                (i % NODES_PER_OPERATOR) as u64,
                TxBody::NodeRegister {
                    node_key: key.public_key(),
                    tier: Tier::Stratus,
                    endpoint: format!("node{i}.example.net:16127"),
                    region: "EU_CZ".into(),
                },
            )
        })
        .collect();
    chain.push(registrations);
    let report = BenchmarkReport {
        cores: 64,
        ram_mb: 256_000,
        disk_gb: 4_000,
        cpu_score: 10_000,
        disk_write_mb_per_s: 1_000,
    };
    let benchmarks = nodes
        .iter()
        .map(|key| chain.sign(key, 0, TxBody::NodeBenchmark { report }))
        .collect();
    chain.push(benchmarks);
    let apps = (0..APPS)
        .map(|i| {
            chain.sign(
                &owner,
                i as u64,
                TxBody::AppRegister {
                    spec: app(i, &owner),
                    months: 1,
                    max_payment: Amount::flux(1_000),
                },
            )
        })
        .collect();
    chain.push(apps);
    let epoch_length = chain.state.params().epoch_length_blocks;
    while chain.state.height() + 1 < epoch_length {
        chain.push(Vec::new());
    }
    println!(
        "set up {} nodes of {OPERATORS} operators and {APPS} apps of {INSTANCES} instances in {:.1} s (not timed)",
        nodes.len(),
        started.elapsed().as_secs_f64()
    );

    let epoch_block = chain.build(Vec::new());
    let assignment = chain.time(&epoch_block, runs);
    let epoch = chain.state.epoch();
    let targets = chain.state.work_targets(epoch);
    let pairs: usize = targets.iter().map(|(_, v)| v.len()).sum();
    println!(
        "first block of epoch {epoch}, fixing the assignment of {} targets ({pairs} verifier pairs): median {:.1} ms",
        targets.len(),
        ms(assignment)
    );

    let started = thread_cpu_time();
    let lists: Vec<_> = nodes
        .iter()
        .map(|key| chain.state.targets_of(&key.address()))
        .collect();
    let lookups = thread_cpu_time() - started;
    let most = lists.iter().map(Vec::len).max().unwrap_or(0);
    println!(
        "targets_of for all {} nodes: {:.2} ms in total (at most {most} targets per node)",
        nodes.len(),
        ms(lookups)
    );

    let window = chain.state.work_window();
    let reports: Vec<SignedTransaction> = nodes
        .iter()
        .zip(&lists)
        .filter(|(_, targets)| !targets.is_empty())
        .map(|(key, targets)| {
            let results = targets
                .iter()
                .map(|t| TargetResults::from_bits(t.clone(), &[true]))
                .collect();
            let nonce = chain.state.account(&key.address()).nonce;
            chain.sign(
                key,
                nonce,
                TxBody::WorkReport {
                    epoch,
                    first_window: window,
                    windows: 1,
                    results,
                },
            )
        })
        .collect();
    let reporters = reports.len();
    let report_block = chain.build(reports);
    let reported = chain.time(&report_block, runs);
    println!(
        "a block of {reporters} work reports (one window, every target): median {:.1} ms",
        ms(reported)
    );

    let late = chain.state.params().work.report_late_windows;
    let window_ms = chain.state.params().work.window_ms;
    while (chain.state.time_ms() + 1_000) / window_ms <= window + late {
        chain.push(Vec::new());
    }
    let settle_block = chain.build(Vec::new());
    let settled = chain.time(&settle_block, runs);
    let host = targets
        .iter()
        .find_map(|(t, _)| matches!(t, flux_types::Target::Instance { .. }).then(|| *t.host()))
        .expect("an instance target");
    assert!(chain.state.node_work(&host, epoch).verified_windows >= 1);
    println!(
        "the block that settles the window: median {:.1} ms",
        ms(settled)
    );

    let empty_block = chain.build(Vec::new());
    let empty = chain.time(&empty_block, runs);
    println!("an empty block, baseline: median {:.1} ms", ms(empty));

    let paying_block = loop {
        let block = chain.build(Vec::new());
        let next = apply_block(&chain.state, &block)
            .expect("a valid block")
            .state;
        if next.rewards_summary().unpaid_epoch > epoch {
            break block;
        }
        chain.state = next;
    };
    let paying = chain.time(&paying_block, runs);
    assert!(chain.state.node_reward_in(&host, epoch) > Amount::ZERO);
    println!(
        "the block that pays epoch {epoch}'s rewards to {} nodes: median {:.1} ms",
        chain.state.nodes().count(),
        ms(paying)
    );
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// CPU time consumed by this thread: unlike wall time, it does not count
/// time the thread waited while other processes used the core.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to write into.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
