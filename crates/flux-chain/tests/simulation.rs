//! Validators on commonware's deterministic runtime and simulated network:
//! real consensus, real ledger, real stores, with latency, message loss and
//! an unclean restart. The same seed gives the same chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use commonware_consensus::types::Epoch;
use commonware_cryptography::ed25519;
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_p2p::{Manager as _, TrackedPeers};
use commonware_runtime::{
    Clock as _, Handle, Runner as _, Spawner as _, Supervisor as _, deterministic,
};
use commonware_utils::ordered::Set;
use commonware_utils::{NZUsize, probability};
use flux_chain::committee::{Eligibility, Member};
use flux_chain::consensus::{self, Channels, Options, PeerTracker, Timeouts};
use flux_chain::{Node, NodeConfig, TxStatus};
use flux_ledger::NodeStatus;
use flux_types::{
    Address, Amount, AppSpec, BenchmarkReport, Component, Genesis, GenesisAccount,
    GenesisValidator, Hash, Params, PublicKey, SecretKey, SignedTransaction, Target, TargetResults,
    Tier, Transaction, TxBody,
};

type Context = deterministic::Context;
type PeerKey = ed25519::PublicKey;

const CHAIN_ID: &str = "simulation";
const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
const BLOCK_INTERVAL_MS: u64 = 200;
/// Longest simulated time a scenario may take before it counts as stuck.
const SIMULATED_TIME_MAX: Duration = Duration::from_secs(900);
const FEE: Amount = Amount::flux(1);

fn key(name: &str) -> SecretKey {
    SecretKey::development(name)
}

fn genesis(validators: &[&str], epoch_length_blocks: u64) -> Genesis {
    let mut params = Params::devnet();
    params.block_interval_ms = BLOCK_INTERVAL_MS;
    params.epoch_length_blocks = epoch_length_blocks;
    Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: GENESIS_TIME_MS,
        params,
        accounts: ["alice", "owner"]
            .iter()
            .map(|name| GenesisAccount {
                address: key(name).address(),
                balance: Amount::flux(1_000_000),
            })
            .collect(),
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, name)| GenesisValidator {
                name: name.to_string(),
                public_key: key(name).public_key(),
                p2p_endpoint: format!("10.0.0.{}:16125", i + 1),
                api_endpoint: format!("10.0.0.{}:16127", i + 1),
            })
            .collect(),
    }
}

fn signed(from: &str, nonce: u64, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN_ID.into(),
        signer: key(from).public_key(),
        nonce,
        fee: FEE,
        body,
    }
    .sign(&key(from))
}

fn transfer(nonce: u64) -> SignedTransaction {
    signed(
        "alice",
        nonce,
        TxBody::Transfer {
            to: key("bob").address(),
            amount: Amount::units(1_000 + nonce),
        },
    )
}

fn peer_key(name: &str) -> PeerKey {
    consensus::peer_key(&key(name).public_key()).unwrap()
}

/// The simulated network's registry of peer sets: the committee is primary,
/// every other node secondary, so followers receive blocks too.
struct SimTracker {
    manager: simulated::Manager<PeerKey, Context>,
    everyone: Vec<PeerKey>,
}

impl PeerTracker for SimTracker {
    fn track(&mut self, epoch: Epoch, committee: &[Member], _registered: &[Member]) {
        let primary = Set::from_iter_dedup(
            committee
                .iter()
                .filter_map(|member| consensus::peer_key(&member.key)),
        );
        let secondary = Set::from_iter_dedup(
            self.everyone
                .iter()
                .filter(|key| primary.position(key).is_none())
                .cloned(),
        );
        // The registry is network-wide: the first node to enter an epoch
        // registers it, the others' identical requests are ignored.
        let _ = self
            .manager
            .track(epoch.get() + 1, TrackedPeers::new(primary, secondary));
    }
}

/// One simulated node: its store on disk and its running task.
struct SimNode {
    name: String,
    dir: PathBuf,
    genesis: Genesis,
    node: Node,
    task: Option<Handle<Result<(), flux_chain::ChainError>>>,
}

impl SimNode {
    fn open(name: &str, root: &Path, genesis: &Genesis) -> SimNode {
        let dir = root.join(name);
        let node = Node::open(NodeConfig {
            data_dir: dir.clone(),
            genesis: genesis.clone(),
            node_key: key(name),
            block_interval_ms: genesis.params.block_interval_ms,
            mempool_txs_max: 10_000,
            mempool_bytes_max: 16 << 20,
        })
        .expect("open the node");
        SimNode {
            name: name.to_string(),
            dir,
            genesis: genesis.clone(),
            node,
            task: None,
        }
    }

    async fn start(
        &mut self,
        context: &Context,
        oracle: &Oracle<PeerKey, Context>,
        everyone: &[PeerKey],
        eligibility: Eligibility,
    ) {
        let me = peer_key(&self.name);
        let control = oracle.control(me.clone());
        let mut registered = Vec::new();
        for (channel, quota) in consensus::channel_quotas() {
            // Registering again after a restart replaces the old channel.
            registered.push(control.register(channel, quota).await.expect("register"));
        }
        let mut registered = registered.into_iter();
        let mut next = || registered.next().unwrap();
        let channels = Channels {
            votes: next(),
            certificates: next(),
            resolver: next(),
            blocks: next(),
            backfill: next(),
            mempool: next(),
        };
        let tracker = SimTracker {
            manager: oracle.manager(),
            everyone: everyone.to_vec(),
        };
        let options = Options {
            partition_prefix: self.name.clone(),
            eligibility,
            p2p_port: 16125,
            timeouts: Some(Timeouts::for_block_interval(Duration::from_millis(
                self.genesis.params.block_interval_ms,
            ))),
        };
        let node = self.node.clone();
        let manager = oracle.manager();
        self.task = Some(
            context
                .child("node")
                .with_attribute("name", &self.name)
                .spawn(move |context| async move {
                    consensus::run(context, &node, options, channels, control, manager, tracker)
                        .await
                }),
        );
    }

    /// Kills the node's tasks without any shutdown, then reopens its store.
    fn crash(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.node.close();
        let root = self.dir.parent().unwrap().to_path_buf();
        *self = SimNode::open(&self.name.clone(), &root, &self.genesis.clone());
    }

    fn height(&self) -> u64 {
        self.node.status().height
    }

    fn block_root(&self, height: u64) -> Hash {
        self.node
            .block(height)
            .unwrap()
            .unwrap_or_else(|| panic!("{} has no block {height}", self.name))
            .header
            .state_root
    }

    fn committed_height(&self, tx: &Hash) -> Option<u64> {
        match self.node.tx_status(tx).unwrap() {
            TxStatus::Committed { receipt } => Some(receipt.height),
            _ => None,
        }
    }
}

/// A network with links of the given quality between all of `names`.
async fn network(
    context: &Context,
    names: &[&str],
    link: Link,
) -> (Oracle<PeerKey, Context>, Vec<PeerKey>) {
    let everyone: Vec<PeerKey> = names.iter().map(|n| peer_key(n)).collect();
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: consensus::max_message_size(),
            max_peers_per_set: NZUsize!(16),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(3),
        },
        everyone.clone(),
    )
    .await;
    network.start();
    for a in &everyone {
        for b in &everyone {
            if a != b {
                oracle
                    .add_link(a.clone(), b.clone(), link.clone())
                    .await
                    .unwrap();
            }
        }
    }
    (oracle, everyone)
}

fn runner(seed: u64) -> deterministic::Runner {
    // RUST_LOG=info shows what the nodes do (`cargo test -- --nocapture`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_start_time(UNIX_EPOCH + Duration::from_millis(GENESIS_TIME_MS))
            .with_timeout(Some(SIMULATED_TIME_MAX)),
    )
}

async fn wait_until(context: &Context, what: &str, mut condition: impl FnMut() -> bool) {
    let start = context.current();
    while !condition() {
        context.sleep(Duration::from_millis(100)).await;
        assert!(
            context.current().duration_since(start).unwrap() < SIMULATED_TIME_MAX,
            "waited too long for {what}"
        );
    }
}

/// The BFT engine paces blocks like the single validator: while idle, a
/// leader waits out the whole block interval after its parent; a transfer
/// goes out in a block the busy interval after the last one, well before.
#[test]
fn idle_leaders_wait_the_interval_and_a_transfer_does_not() {
    const IDLE_MS: u64 = 2_000;
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().to_path_buf();
    runner(11).start(|context| async move {
        let names = ["v0", "v1", "v2", "v3"];
        let mut genesis = genesis(&names, 100);
        genesis.params.block_interval_ms = IDLE_MS;
        genesis.params.block_interval_busy_ms = 50;
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(2),
            success_rate: probability!(1.0),
        };
        let (oracle, everyone) = network(&context, &names, link).await;
        let mut nodes: Vec<SimNode> = names
            .iter()
            .map(|name| SimNode::open(name, &root, &genesis))
            .collect();
        for node in &mut nodes {
            node.start(&context, &oracle, &everyone, Eligibility::Work)
                .await;
        }
        wait_until(&context, "height 3", || nodes[0].height() >= 3).await;
        let time = |height: u64| {
            nodes[0]
                .node
                .block(height)
                .unwrap()
                .unwrap()
                .header
                .timestamp_ms
        };
        for height in 2..=3 {
            let gap = time(height) - time(height - 1);
            assert!(gap >= IDLE_MS, "idle blocks {gap} ms apart");
        }
        let submitted = context.current();
        let hash = nodes[1].node.submit(transfer(0)).expect("submit");
        wait_until(&context, "the transfer committed", || {
            nodes[0].committed_height(&hash).is_some()
        })
        .await;
        let waited = context.current().duration_since(submitted).unwrap();
        assert!(
            waited < Duration::from_millis(IDLE_MS / 2),
            "the transfer took {waited:?}"
        );
        for node in &mut nodes {
            node.task.take().unwrap().abort();
            node.node.close();
        }
    });
}

/// Blocks per epoch in the lossy scenario.
const EPOCH_LENGTH: u64 = 20;

/// Four validators, lossy links, transfers sent to every node in turn, and
/// one validator killed mid-run and restarted three epochs later. Returns the state root every
/// node agrees on at `target`, and the runtime's audit digest.
fn lossy_network_with_a_crash(seed: u64, target: u64) -> (Hash, String) {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().to_path_buf();
    runner(seed).start(|context| async move {
        let names = ["v0", "v1", "v2", "v3"];
        let genesis = genesis(&names, EPOCH_LENGTH);
        let link = Link {
            latency: Duration::from_millis(40),
            jitter: Duration::from_millis(20),
            success_rate: probability!(0.95),
        };
        let (oracle, everyone) = network(&context, &names, link).await;
        let mut nodes: Vec<SimNode> = names
            .iter()
            .map(|name| SimNode::open(name, &root, &genesis))
            .collect();
        for node in &mut nodes {
            node.start(&context, &oracle, &everyone, Eligibility::Work)
                .await;
        }

        // Transfers to each running node in turn; gossip carries them to the proposers.
        let mut sent = Vec::new();
        for nonce in 0..24u64 {
            context.sleep(Duration::from_millis(250)).await;
            if nonce == 11 {
                // Unclean stop: the tasks die mid-flight, nothing is flushed on
                // purpose. It stays down for several epochs, so it must catch
                // up across epoch boundaries when it returns.
                nodes[2].crash();
                let down_at = nodes[0].height();
                wait_until(&context, "three epochs without node 2", || {
                    nodes[0].height() >= down_at + 3 * EPOCH_LENGTH
                })
                .await;
            }
            if nonce == 17 {
                nodes[2]
                    .start(&context, &oracle, &everyone, Eligibility::Work)
                    .await;
            }
            let node = nodes
                .iter()
                .cycle()
                .skip(nonce as usize % 4)
                .find(|node| node.task.is_some())
                .unwrap();
            sent.push(node.node.submit(transfer(nonce)).expect("submit"));
        }
        wait_until(&context, "every node at the target height", || {
            nodes.iter().all(|n| n.height() >= target)
        })
        .await;
        let roots: Vec<Hash> = nodes.iter().map(|n| n.block_root(target)).collect();
        assert!(
            roots.iter().all(|r| *r == roots[0]),
            "state roots differ at height {target}: {roots:?}"
        );
        // Every transfer sent to a running node is committed, on every node.
        wait_until(&context, "every transfer committed", || {
            sent.iter()
                .all(|tx| nodes.iter().all(|n| n.committed_height(tx).is_some()))
        })
        .await;
        for node in &mut nodes {
            node.task.take().unwrap().abort();
            node.node.close();
        }
        (roots[0], context.auditor().state())
    })
}

#[test]
fn same_seed_same_chain_despite_loss_and_a_crash() {
    let (root, audit) = lossy_network_with_a_crash(7, 120);
    let (again_root, again_audit) = lossy_network_with_a_crash(7, 120);
    assert_eq!(root, again_root, "same seed, different state root");
    assert_eq!(audit, again_audit, "same seed, different execution");
    // Another seed schedules differently and still agrees across nodes.
    let (other_root, _) = lossy_network_with_a_crash(8, 120);
    assert_ne!(other_root, Hash::ZERO);
}

fn proposers_in(node: &SimNode, heights: std::ops::RangeInclusive<u64>) -> Vec<PublicKey> {
    heights
        .map(|h| node.node.block(h).unwrap().unwrap().header.proposer)
        .collect()
}

/// A node's first benchmark, signed by its own key (no fee), with figures
/// that meet every devnet tier: it confirms a registered node.
fn benchmark(name: &str) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN_ID.into(),
        signer: key(name).public_key(),
        nonce: 0,
        fee: Amount::ZERO,
        body: TxBody::NodeBenchmark {
            report: BenchmarkReport {
                cores: 4,
                ram_mb: 8_000,
                disk_gb: 100,
                cpu_score: 1_000,
                disk_write_mb_per_s: 200,
            },
        },
    }
    .sign(&key(name))
}

/// An app of one small instance pinned to `node`.
fn pinned_app(name: &str, node: &str) -> TxBody {
    TxBody::AppRegister {
        spec: AppSpec {
            name: name.into(),
            description: String::new(),
            owner: key("alice").address(),
            instances: 1,
            contacts: vec![],
            geolocation: vec![],
            nodes: vec![key(node).address()],
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
        },
        months: 1,
        max_payment: Amount::flux(1_000),
    }
}

/// The verifiers' side of useful work, played by the test on `node`: every
/// 100 ms each confirmed node among `names` with nothing in the mempool
/// reports the windows that are over and that it has not reported, in one
/// report of consecutive windows of one epoch; an instance is seen up
/// unless its host is in `down`, a node always.
fn spawn_verifiers(
    context: &Context,
    node: Node,
    names: &'static [&'static str],
    down: Arc<Mutex<BTreeSet<Address>>>,
) -> Handle<()> {
    context.child("verifiers").spawn(move |context| async move {
        let mut reported: BTreeMap<Address, u64> = BTreeMap::new();
        loop {
            context.sleep(Duration::from_millis(100)).await;
            let state = node.state();
            let current = state.work_window();
            let over: Vec<(u64, u64)> = state
                .open_work_windows()
                .filter(|(window, _)| *window < current)
                .collect();
            for name in names {
                let id = key(name).address();
                if state
                    .node(&id)
                    .is_none_or(|n| n.status != NodeStatus::Confirmed)
                    || node.next_nonce(&id) != state.account(&id).nonce
                {
                    continue;
                }
                let after = reported.get(&id).copied();
                let run: Vec<(u64, u64)> = over
                    .iter()
                    .filter(|(window, _)| after.is_none_or(|last| *window > last))
                    .copied()
                    .collect();
                let Some(&(first, epoch)) = run.first() else {
                    continue;
                };
                let windows = run
                    .iter()
                    .enumerate()
                    .take_while(|(i, (w, e))| *w == first + *i as u64 && *e == epoch)
                    .count();
                reported.insert(id, first + windows as u64 - 1);
                let targets = state.targets_in(epoch, &id);
                if targets.is_empty() {
                    continue;
                }
                let down = down.lock().unwrap().clone();
                let results = targets
                    .into_iter()
                    .map(|target| {
                        let up = match &target {
                            Target::Instance { host, .. } => !down.contains(host),
                            Target::Node { .. } => true,
                        };
                        TargetResults::from_bits(target, &vec![up; windows])
                    })
                    .collect();
                let report = Transaction {
                    chain_id: CHAIN_ID.into(),
                    signer: key(name).public_key(),
                    nonce: state.account(&id).nonce,
                    fee: Amount::ZERO,
                    body: TxBody::WorkReport {
                        epoch,
                        first_window: first,
                        windows: windows as u32,
                        results,
                    },
                }
                .sign(&key(name));
                let _ = node.submit(report);
            }
        }
    })
}

/// Under the rule of real networks, a seat needs verified work. The genesis
/// validators also run as confirmed nodes that verify; apps are pinned to
/// n4 and n5. n4 registers (no seat), is confirmed by its benchmark (still
/// no seat: no verified work yet), then takes a seat once an epoch of its
/// verified work has settled. Later n5 registers and is confirmed while n4's
/// instance stops answering: at one boundary n5 holds a seat and n4 none.
/// The chain finalizes throughout, and all six nodes (followers included)
/// agree.
#[test]
fn validators_join_and_leave_by_their_verified_work() {
    const EPOCH: u64 = 10;
    static NAMES: [&str; 6] = ["v0", "v1", "v2", "v3", "n4", "n5"];
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().to_path_buf();
    runner(11).start(|context| async move {
        let validators = ["v0", "v1", "v2", "v3"];
        let mut genesis = genesis(&validators, EPOCH);
        // Short windows that settle within an epoch.
        genesis.params.work.window_ms = 400;
        genesis.params.work.report_late_windows = 3;
        let link = Link {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            success_rate: probability!(0.99),
        };
        let (oracle, everyone) = network(&context, &NAMES, link).await;
        let mut nodes: Vec<SimNode> = NAMES
            .iter()
            .map(|name| SimNode::open(name, &root, &genesis))
            .collect();
        for node in &mut nodes {
            node.start(&context, &oracle, &everyone, Eligibility::Work)
                .await;
        }
        let register = |nonce: u64, name: &str| {
            signed(
                "owner",
                nonce,
                TxBody::NodeRegister {
                    node_key: key(name).public_key(),
                    tier: Tier::Cumulus,
                    endpoint: format!("10.0.1.{nonce}:16127"),
                    region: "EU_CZ".into(),
                },
            )
        };
        let epoch_of = |height: u64| height / EPOCH;
        let first_of = |epoch: u64| epoch * EPOCH;
        let last_of = |epoch: u64| (epoch + 1) * EPOCH - 1;
        let committee = |dir: &Path, epoch: u64| {
            consensus::recorded_committee(dir, epoch)
                .unwrap()
                .unwrap_or_else(|| panic!("no committee recorded for epoch {epoch}"))
        };

        // The genesis validators as confirmed nodes, and the two apps.
        let mut setup: Vec<Hash> = Vec::new();
        for (nonce, name) in validators.iter().enumerate() {
            setup.push(nodes[0].node.submit(register(nonce as u64, name)).unwrap());
        }
        setup.push(
            nodes[0]
                .node
                .submit(signed("alice", 0, pinned_app("four", "n4")))
                .unwrap(),
        );
        setup.push(
            nodes[0]
                .node
                .submit(signed("alice", 1, pinned_app("five", "n5")))
                .unwrap(),
        );
        wait_until(&context, "the setup", || {
            setup
                .iter()
                .all(|tx| nodes[0].committed_height(tx).is_some())
        })
        .await;
        let benchmarks: Vec<Hash> = validators
            .iter()
            .map(|name| nodes[0].node.submit(benchmark(name)).unwrap())
            .collect();
        wait_until(&context, "the validators' benchmarks", || {
            benchmarks
                .iter()
                .all(|tx| nodes[0].committed_height(tx).is_some())
        })
        .await;
        let down = Arc::new(Mutex::new(BTreeSet::new()));
        let verifiers = spawn_verifiers(&context, nodes[0].node.clone(), &NAMES, down.clone());

        let registers = nodes[0].node.submit(register(4, "n4")).unwrap();
        wait_until(&context, "n4's registration", || {
            nodes[0].committed_height(&registers).is_some()
        })
        .await;
        // A whole epoch with n4 registered but not confirmed: no seat yet.
        let registered_epoch = epoch_of(nodes[0].committed_height(&registers).unwrap()) + 1;
        wait_until(&context, "the epoch after n4's registration", || {
            nodes[0].height() >= first_of(registered_epoch)
        })
        .await;
        let joins = nodes[0].node.submit(benchmark("n4")).unwrap();
        wait_until(&context, "n4's benchmark", || {
            nodes[0].committed_height(&joins).is_some()
        })
        .await;
        let confirmed_epoch = epoch_of(nodes[0].committed_height(&joins).unwrap()) + 1;
        let n4 = key("n4").public_key();
        let n5 = key("n5").public_key();
        let mut n4_epoch = confirmed_epoch;
        wait_until(&context, "a seat for n4", || {
            let current = epoch_of(nodes[0].height());
            while n4_epoch <= current {
                if committee(&nodes[0].dir, n4_epoch).contains(&n4) {
                    return true;
                }
                n4_epoch += 1;
            }
            false
        })
        .await;

        // n5 joins, and n4's instance stops answering.
        let n5_registers = nodes[1].node.submit(register(5, "n5")).unwrap();
        wait_until(&context, "n5's registration", || {
            nodes[0].committed_height(&n5_registers).is_some()
        })
        .await;
        let n5_joins = nodes[1].node.submit(benchmark("n5")).unwrap();
        wait_until(&context, "n5's benchmark", || {
            nodes[0].committed_height(&n5_joins).is_some()
        })
        .await;
        down.lock().unwrap().insert(key("n4").address());
        let stopped_epoch = epoch_of(nodes[0].height());
        let mut swap_epoch = stopped_epoch;
        wait_until(&context, "n5 seated without n4", || {
            let current = epoch_of(nodes[0].height());
            while swap_epoch <= current {
                let members = committee(&nodes[0].dir, swap_epoch);
                if members.contains(&n5) && !members.contains(&n4) {
                    return true;
                }
                swap_epoch += 1;
            }
            false
        })
        .await;
        let end = last_of(swap_epoch + 1);
        wait_until(&context, "every node past the swap", || {
            nodes.iter().all(|n| n.height() >= end)
        })
        .await;
        verifiers.abort();

        let genesis_keys: Vec<PublicKey> = validators.iter().map(|n| key(n).public_key()).collect();
        let with = |extra: &str| {
            let mut keys = genesis_keys.clone();
            keys.push(key(extra).public_key());
            keys
        };
        let dir = &nodes[0].dir;
        assert!(registered_epoch < confirmed_epoch && confirmed_epoch < n4_epoch);
        assert_eq!(committee(dir, registered_epoch), genesis_keys);
        // Confirmed, but without verified work: no seat.
        assert_eq!(committee(dir, confirmed_epoch), genesis_keys);
        assert_eq!(committee(dir, n4_epoch), with("n4"));
        assert_eq!(committee(dir, swap_epoch), with("n5"));
        // Every node, followers included, recorded the same committees.
        for node in &nodes {
            for epoch in 0..=swap_epoch {
                assert_eq!(
                    consensus::recorded_committee(&node.dir, epoch).unwrap(),
                    Some(committee(dir, epoch)),
                    "{} disagrees on epoch {epoch}",
                    node.name
                );
            }
        }
        // The new validators actually lead views, and the one that left does not.
        let in_n4_epoch = proposers_in(&nodes[0], first_of(n4_epoch)..=last_of(n4_epoch));
        assert!(
            in_n4_epoch.contains(&n4),
            "n4 never proposed in epoch {n4_epoch}"
        );
        let after_swap = proposers_in(&nodes[0], first_of(swap_epoch)..=end);
        assert!(after_swap.contains(&n5), "n5 never proposed after joining");
        assert!(
            !after_swap.contains(&n4),
            "n4 proposed after losing its seat"
        );
        let roots: Vec<Hash> = nodes.iter().map(|n| n.block_root(end)).collect();
        assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
        // Node::committee (what the API shows) is the recorded committee of
        // the next block's epoch.
        for node in &nodes {
            let current = node.node.committee().unwrap();
            assert_eq!(current.epoch, epoch_of(node.height() + 1), "{}", node.name);
            assert_eq!(current.members, committee(&node.dir, current.epoch));
        }
        for node in &mut nodes {
            node.task.take().unwrap().abort();
            node.node.close();
        }
    });
}
