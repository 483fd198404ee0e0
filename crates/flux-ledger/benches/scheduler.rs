//! The scheduler at scale, on one core.
//!
//! Sets up 10,000 candidate nodes in 20 regions and 100,000 apps of 10
//! instances each (1,000,000 instances): most apps without rules, one in ten
//! allowed in Europe only, one in twenty denying a country, one in a hundred
//! pinned to 20 nodes. Demands and capacities vary so that the network ends
//! about two-thirds full. Then it times:
//!
//! 1. **placement of everything**: `plan` on the cluster holding every node
//!    and app and no placement yet, then applying the plan;
//! 2. **a lost node**: from the placed cluster, one node stops being a
//!    candidate and `plan` re-places its instances; repeated for
//!    `LOST_NODES` different nodes, each from the same placed cluster;
//! 3. **baseline**, same run: the same ring walk and capacity check over
//!    plain vectors (no persistent maps, no node index, no rules, no region
//!    preference), i.e. the floor of any first-fit placement of the same
//!    instances;
//! 4. **through the ledger**, for context: a chain where 10,000 nodes were
//!    registered and benchmarked, then one block registering 100,000 apps
//!    (1,000,000 instances) is applied with `apply_block` (signatures, every
//!    registration, the placement, the rows and the state root), and then a
//!    block holding one node's deregistration. The state root rehashes every
//!    row's leaf hash at the end of every block, so the second figure is
//!    dominated by the size of the state, not by the scheduler; a block with
//!    one transfer is timed as its baseline.
//!
//! Run with `cargo bench -p flux-ledger --bench scheduler`; set
//! `FLUX_BENCH_RUNS` to change the number of runs (default 5).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports on standard output"
)]

use std::time::{Duration, Instant};

use flux_ledger::scheduler::{AppInput, Cluster, Config, NodeInput, Resources, plan};
use flux_ledger::{BlockContext, State, apply_block, build_block};
use flux_types::{
    Address, Amount, AppSpec, BenchmarkReport, Block, Component, Genesis, GenesisAccount,
    GenesisValidator, Hash, Params, SecretKey, SignedTransaction, Tier, Transaction, TxBody,
};

const NODES: usize = 10_000;
const APPS: usize = 100_000;
const INSTANCES: u32 = 10;
const REGIONS: [&str; 20] = [
    "EU_DE", "EU_FR", "EU_CZ", "EU_NL", "EU_GB", "EU_PL", "EU_FI", "EU_ES", "NA_US", "NA_US_CA",
    "NA_US_TX", "NA_CA", "AS_JP", "AS_SG", "AS_KR", "AS_IN", "OC_AU", "SA_BR", "AF_ZA", "EU_IT",
];
const LOST_NODES: usize = 100;
const RUNS_DEFAULT: usize = 5;
const CONFIG: Config = Config {
    candidates_per_instance: 2,
};

/// A deterministic pseudo-random number from a label and an index.
fn pick(label: &str, index: usize, modulo: u64) -> u64 {
    let hash = Hash::digest(&[label.as_bytes(), &(index as u64).to_le_bytes()]);
    u64::from_le_bytes(hash.0[..8].try_into().expect("8 bytes")) % modulo
}

fn node_id(index: usize) -> Address {
    let hash = Hash::digest(&[b"bench-node", &(index as u64).to_le_bytes()]);
    Address(hash.0[..20].try_into().expect("20 bytes"))
}

fn nodes() -> Vec<(Address, NodeInput)> {
    (0..NODES)
        .map(|i| {
            let capacity = Resources {
                cpu_tenths: 600 + 100 * pick("cpu", i, 11),
                ram_mb: 128_000 + 16_000 * pick("ram", i, 9),
                disk_gb: 2_000 + 250 * pick("disk", i, 9),
            };
            let region = REGIONS[pick("region", i, REGIONS.len() as u64) as usize];
            (node_id(i), NodeInput::new(capacity, region))
        })
        .collect()
}

fn apps(nodes: &[(Address, NodeInput)]) -> Vec<(String, AppInput)> {
    (0..APPS)
        .map(|i| {
            let demand = Resources {
                cpu_tenths: 1 + pick("app-cpu", i, 10),
                ram_mb: 100 * (1 + pick("app-ram", i, 10)),
                disk_gb: 1 + pick("app-disk", i, 10),
            };
            let kind = pick("app-kind", i, 100);
            let (rules, pinned): (Vec<String>, Vec<Address>) = match kind {
                0 => (
                    Vec::new(),
                    (0..20)
                        .map(|j| nodes[pick("pin", i * 20 + j, NODES as u64) as usize].0)
                        .collect(),
                ),
                1..=10 => (vec!["acEU".to_string()], Vec::new()),
                11..=15 => (vec!["a!cNA_US".to_string()], Vec::new()),
                _ => (Vec::new(), Vec::new()),
            };
            (
                format!("app{i:06}"),
                AppInput::new(INSTANCES, demand, &rules, &pinned),
            )
        })
        .collect()
}

fn main() {
    let runs = std::env::var("FLUX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS_DEFAULT);
    println!(
        "Scheduler: {} instances ({APPS} apps x {INSTANCES}) on {NODES} nodes, one core, {runs} runs",
        APPS as u64 * u64::from(INSTANCES)
    );
    let nodes = nodes();
    let apps = apps(&nodes);

    let mut load_times = Vec::new();
    let mut plan_times = Vec::new();
    let mut plan_cpu_times = Vec::new();
    let mut placed_cluster = None;
    for _ in 0..runs {
        let started = Instant::now();
        let mut cluster = Cluster::new();
        for (id, input) in &nodes {
            cluster.set_node(*id, Some(input.clone()));
        }
        for (key, input) in &apps {
            cluster.set_app(key, Some(input.clone()));
        }
        load_times.push(started.elapsed());
        let started = Instant::now();
        let cpu_started = thread_cpu_time();
        let planned = plan(&cluster, &CONFIG);
        let cluster = planned.into_cluster();
        plan_times.push(started.elapsed());
        plan_cpu_times.push(thread_cpu_time() - cpu_started);
        placed_cluster = Some(cluster);
    }
    let cluster = placed_cluster.expect("at least one run");
    let placed: usize = cluster
        .apps()
        .map(|(_, slots)| slots.iter().flatten().count())
        .sum();
    let short = cluster.short_apps().count();
    let (used, capacity) = nodes.iter().fold(
        (Resources::default(), Resources::default()),
        |(used, capacity), (id, input)| {
            (
                used.plus(&cluster.node_used(id).unwrap_or_default()),
                capacity.plus(&input.capacity),
            )
        },
    );
    println!(
        "placed {placed} instances, {short} apps short; network CPU {:.0} %, RAM {:.0} %, disk {:.0} % used",
        100.0 * used.cpu_tenths as f64 / capacity.cpu_tenths as f64,
        100.0 * used.ram_mb as f64 / capacity.ram_mb as f64,
        100.0 * used.disk_gb as f64 / capacity.disk_gb as f64,
    );
    let started = Instant::now();
    cluster.check().expect("the placement keeps every rule");
    println!(
        "checked every rule in {:.0} ms (not timed above)",
        ms(started.elapsed())
    );

    // A lost node, LOST_NODES times, each from the placed cluster.
    let mut lost_times = Vec::new();
    let mut moved_total = 0;
    for run in 0..runs.max(1) {
        for k in 0..LOST_NODES {
            let victim = nodes[pick("victim", k, NODES as u64) as usize].0;
            let hosted = cluster.node_instances(&victim).len();
            let mut lost = cluster.clone();
            let started = Instant::now();
            lost.set_node(victim, None);
            let planned = plan(&lost, &CONFIG);
            let moves = planned.moves();
            let elapsed = started.elapsed();
            lost_times.push(elapsed);
            if run == 0 {
                let moved = moves.iter().filter(|m| m.to.is_some()).count();
                assert_eq!(moves.len(), hosted, "one move per lost instance");
                moved_total += moved;
            }
        }
    }

    // Baseline: first fit along the same ring over plain vectors.
    let mut baseline_times = Vec::new();
    for _ in 0..runs {
        baseline_times.push(baseline(&nodes, &apps));
    }

    let load = median(&mut load_times);
    let placement = median(&mut plan_times);
    let placement_cpu = median(&mut plan_cpu_times);
    let lost = median(&mut lost_times);
    let base = median(&mut baseline_times);
    println!(
        "setting the inputs (nodes and apps into the cluster): median {:.0} ms",
        ms(load)
    );
    println!(
        "placing every instance (plan + apply): median {:.0} ms, min {:.0} ms, max {:.0} ms = {:.2} M instances/s",
        ms(placement),
        ms(plan_times[0]),
        ms(*plan_times.last().expect("a run")),
        placed as f64 / placement.as_secs_f64() / 1e6
    );
    println!(
        "placing every instance, CPU time of the thread: median {:.0} ms",
        ms(placement_cpu)
    );
    println!(
        "re-placing a lost node's instances: median {:.3} ms, max {:.3} ms over {} losses, {:.0} instances moved per loss",
        ms(lost),
        ms(*lost_times.last().expect("a run")),
        lost_times.len(),
        moved_total as f64 / LOST_NODES as f64
    );
    println!(
        "baseline, first fit over plain vectors: median {:.0} ms; scheduler / baseline = {:.1}",
        ms(base),
        placement.as_secs_f64() / base.as_secs_f64()
    );
    through_the_ledger(runs);
}

const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
const CHAIN_ID: &str = "flux-bench";
/// App owners; each registers `APPS / OWNERS` apps.
const OWNERS: usize = 100;

/// A chain under construction for the ledger figures.
struct Chain {
    state: State,
    validator: SecretKey,
    params: Params,
}

impl Chain {
    fn sign(&self, key: &SecretKey, nonce: u64, body: TxBody) -> SignedTransaction {
        let fee = if matches!(body, TxBody::NodeBenchmark { .. }) {
            Amount::ZERO
        } else {
            self.params.tx_fee_min
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

    fn context(&self) -> BlockContext {
        BlockContext {
            timestamp_ms: self.state.time_ms() + 1_000,
            proposer: self.validator.public_key(),
        }
    }

    /// Builds a block of `txs` (all must apply) without moving the chain.
    fn build(&self, txs: Vec<SignedTransaction>) -> Block {
        let count = txs.len();
        let built = build_block(&self.state, &self.context(), txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected.first());
        assert_eq!(built.block.txs.len(), count);
        built.block
    }

    fn push(&mut self, txs: Vec<SignedTransaction>) {
        let block = self.build(txs);
        self.state = apply_block(&self.state, &block)
            .expect("a valid block")
            .state;
    }
}

fn bench_app(index: usize, owner: Address) -> AppSpec {
    AppSpec {
        name: format!("app{index:06}"),
        description: String::new(),
        owner,
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
            cpu_tenths: 1 + pick("app-cpu", index, 10) as u32,
            ram_mb: 100 * (1 + pick("app-ram", index, 10) as u32),
            hdd_gb: 1 + pick("app-disk", index, 10) as u32,
            health_path: String::new(),
        }],
    }
}

/// The ledger figures: one block registering every app, then a lost node.
fn through_the_ledger(runs: usize) {
    println!();
    println!(
        "Through the ledger: {NODES} registered and benchmarked nodes, then one block of {APPS} app registrations"
    );
    let started = Instant::now();
    let operator = SecretKey::development("bench-operator");
    let owners: Vec<SecretKey> = (0..OWNERS)
        .map(|i| SecretKey::development(&format!("bench-owner{i}")))
        .collect();
    let node_keys: Vec<SecretKey> = (0..NODES)
        .map(|i| SecretKey::development(&format!("bench-node{i}")))
        .collect();
    let mut params = Params::devnet();
    params.block_txs_max = (APPS + NODES) as u32;
    let validator = SecretKey::development("bench-validator");
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: GENESIS_TIME_MS,
        params: params.clone(),
        accounts: std::iter::once(&operator)
            .chain(&owners)
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
    let mut chain = Chain {
        state,
        validator,
        params,
    };
    let registrations = node_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            chain.sign(
                &operator,
                i as u64,
                TxBody::NodeRegister {
                    node_key: key.public_key(),
                    tier: Tier::Stratus,
                    endpoint: format!("node{i}.example.net:16127"),
                    region: REGIONS[pick("region", i, REGIONS.len() as u64) as usize].into(),
                },
            )
        })
        .collect();
    chain.push(registrations);
    let benchmarks = node_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let report = BenchmarkReport {
                cores: 60 + 10 * pick("cpu", i, 11) as u32,
                ram_mb: 129_000 + 16_000 * pick("ram", i, 9),
                disk_gb: 2_020 + 250 * pick("disk", i, 9),
                cpu_score: 10_000,
                disk_write_mb_per_s: 1_000,
            };
            chain.sign(key, 0, TxBody::NodeBenchmark { report })
        })
        .collect();
    chain.push(benchmarks);
    let apps: Vec<SignedTransaction> = (0..APPS)
        .map(|i| {
            let owner = &owners[i % OWNERS];
            let spec = bench_app(i, owner.address());
            chain.sign(
                owner,
                (i / OWNERS) as u64,
                TxBody::AppRegister {
                    spec,
                    months: 1,
                    max_payment: Amount::flux(1_000),
                },
            )
        })
        .collect();
    let apps_block = chain.build(apps);
    println!(
        "set up {} nodes and signed {APPS} registrations in {:.1} s (not timed below)",
        NODES,
        started.elapsed().as_secs_f64()
    );

    let mut register_times = Vec::new();
    let mut placed_state = None;
    for _ in 0..runs.clamp(1, 3) {
        let started = thread_cpu_time();
        let outcome = apply_block(&chain.state, &apps_block).expect("a valid block");
        register_times.push(thread_cpu_time() - started);
        placed_state = Some(outcome.state);
    }
    chain.state = placed_state.expect("at least one run");
    let placed: u32 = chain
        .state
        .apps()
        .map(|a| {
            chain
                .state
                .app_placement(&a.spec.name)
                .expect("an app")
                .placed
        })
        .sum();
    assert_eq!(placed, APPS as u32 * INSTANCES, "every instance placed");

    // One node leaves: a block holding its deregistration, from the same state each time.
    let mut lost_times = Vec::new();
    let mut transfer_times = Vec::new();
    let mut moved = 0;
    for k in 0..LOST_NODES.min(20) {
        let victim = &node_keys[pick("victim", k, NODES as u64) as usize];
        let hosted = chain.state.instances_on(&victim.address()).len();
        let block = chain.build(vec![chain.sign(
            &operator,
            NODES as u64,
            TxBody::NodeDeregister {
                node: victim.address(),
            },
        )]);
        let started = thread_cpu_time();
        let outcome = apply_block(&chain.state, &block).expect("a valid block");
        lost_times.push(thread_cpu_time() - started);
        assert!(outcome.state.instances_on(&victim.address()).is_empty());
        moved += hosted;

        let block = chain.build(vec![chain.sign(
            &operator,
            NODES as u64,
            TxBody::Transfer {
                to: owners[0].address(),
                amount: Amount::flux(1),
            },
        )]);
        let started = thread_cpu_time();
        apply_block(&chain.state, &block).expect("a valid block");
        transfer_times.push(thread_cpu_time() - started);
    }
    let rows = chain.state.apps().count() * 2 + NODES * 2 + OWNERS + 2;
    println!(
        "apply_block of the {APPS} registrations, placement included, CPU time: median {:.0} ms",
        ms(median(&mut register_times))
    );
    println!(
        "apply_block of one node's deregistration ({:.0} instances moved), CPU time: median {:.1} ms over {} nodes",
        moved as f64 / lost_times.len() as f64,
        ms(median(&mut lost_times)),
        lost_times.len()
    );
    println!(
        "baseline, apply_block of one transfer on the same state (about {rows} rows in the state root), CPU time: median {:.1} ms",
        ms(median(&mut transfer_times))
    );
}

/// First fit along the same ring over plain vectors: the floor of placing
/// the same instances, without persistent maps, indexes or rules.
fn baseline(nodes: &[(Address, NodeInput)], apps: &[(String, AppInput)]) -> Duration {
    let mut ring: Vec<(Address, Resources)> =
        nodes.iter().map(|(id, n)| (*id, n.capacity)).collect();
    ring.sort_by_key(|(id, _)| *id);
    let starts: Vec<usize> = apps
        .iter()
        .map(|(key, _)| {
            let hash = Hash::digest(&[b"FLUX/placement-ring/v1", key.as_bytes()]);
            let start = Address(hash.0[..20].try_into().expect("20 bytes"));
            ring.partition_point(|(id, _)| *id < start)
        })
        .collect();
    let started = Instant::now();
    let mut used = vec![Resources::default(); ring.len()];
    let mut slots: Vec<Vec<u32>> = Vec::with_capacity(apps.len());
    for ((_, app), start) in apps.iter().zip(&starts) {
        let mut mine = Vec::with_capacity(app.instances as usize);
        for step in 0..ring.len() {
            if mine.len() == app.instances as usize {
                break;
            }
            let index = (start + step) % ring.len();
            let after = used[index].plus(&app.demand);
            if after.fits_within(&ring[index].1) {
                used[index] = after;
                mine.push(index as u32);
            }
        }
        slots.push(mine);
    }
    let elapsed = started.elapsed();
    assert_eq!(slots.len(), apps.len());
    elapsed
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
