//! The committee rule through whole blocks: confirmed nodes whose verified
//! work in the newest settled epoch passed the threshold, drawn by tier
//! weight up to `work.committee_seats_max`, with the genesis validators
//! while fewer than four qualify.

use std::collections::{BTreeMap, BTreeSet};

use flux_ledger::COMMITTEE_WORKERS_MIN;
use flux_types::{Address, Hash, Params, PublicKey, Target, TargetResults, Tier, TxBody};

use crate::harness::*;

/// Blocks per epoch: ten 2 s windows at 1 s blocks.
const EPOCH: u64 = 20;

fn params(seats: u32) -> Params {
    let mut params = Params::devnet();
    params.epoch_length_blocks = EPOCH;
    params.work.report_late_windows = 2;
    params.work.window_ms = 2_000;
    params.work.committee_seats_max = seats;
    params
}

/// `nodes` confirmed nodes of `tier(i)`, each of its own operator, and an
/// app with `instances` instances (one per node at most), run to the first
/// block of epoch 1.
fn network(nodes: usize, instances: u32, seats: u32, tier: impl Fn(usize) -> Tier) -> Chain {
    let names: Vec<&'static str> = (0..nodes).map(name).collect();
    let mut funded = vec![("alice", flux(100_000))];
    funded.extend(names.iter().map(|n| (operator(n), flux(10_000))));
    let mut steps = Vec::new();
    for (index, node) in names.iter().enumerate() {
        steps.push(tx(operator(node), register_node(node, tier(index))));
    }
    steps.push(block());
    for node in &names {
        steps.push(tx(node, benchmark(hardware(4, 8_000, 100))));
    }
    steps.push(block());
    steps.push(tx(
        "alice",
        register_app(
            app("web", "alice", instances, vec![component(10, 1_000, 10)]),
            1,
            flux(10_000),
        ),
    ));
    steps.push(block());
    let mut chain = check(genesis_with(params(seats), &funded), steps);
    chain.run_to_height(EPOCH);
    chain
}

fn name(index: usize) -> &'static str {
    ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"][index]
}

fn operator(node: &str) -> &'static str {
    match node {
        "w0" => "o0",
        "w1" => "o1",
        "w2" => "o2",
        "w3" => "o3",
        "w4" => "o4",
        "w5" => "o5",
        "w6" => "o6",
        _ => "o7",
    }
}

fn label(address: &Address) -> &'static str {
    (0..8)
        .map(name)
        .find(|n| addr(n) == *address)
        .expect("a test node")
}

/// Runs the chain to the end of `epoch`, every verifier reporting every
/// window it verifies: a node is up, an instance is up when `up(host,
/// window)` says so.
fn work_through(chain: &mut Chain, epoch: u64, up: &dyn Fn(&str, u64) -> bool) {
    let mut last = None;
    while chain.state.height() < (epoch + 1) * EPOCH {
        let window = chain.state.work_window();
        let mut steps = Vec::new();
        if last != Some(window) {
            last = Some(window);
            let window_epoch = chain
                .state
                .open_work_windows()
                .find(|(w, _)| *w == window)
                .map(|(_, e)| e)
                .expect("the block's window is open");
            let verifiers: BTreeSet<Address> = chain
                .state
                .work_targets(window_epoch)
                .into_iter()
                .flat_map(|(_, v)| v)
                .collect();
            for verifier in verifiers {
                let results = chain
                    .state
                    .targets_in(window_epoch, &verifier)
                    .into_iter()
                    .map(|target| {
                        let seen = match &target {
                            Target::Node { .. } => true,
                            Target::Instance { host, .. } => up(label(host), window),
                        };
                        TargetResults::from_bits(target, &[seen])
                    })
                    .collect();
                steps.push(tx(
                    label(&verifier),
                    TxBody::WorkReport {
                        epoch: window_epoch,
                        first_window: window,
                        windows: 1,
                        results,
                    },
                ));
            }
        }
        steps.push(block());
        chain.run_steps(steps);
    }
}

/// Runs empty blocks until every window of `epoch` has settled.
fn settle(chain: &mut Chain, epoch: u64) {
    while chain.state.open_work_windows().any(|(_, e)| e <= epoch) {
        chain.run_steps(vec![block()]);
    }
}

fn labels(nodes: &[&flux_ledger::NodeRecord]) -> Vec<&'static str> {
    nodes.iter().map(|n| label(&n.id)).collect()
}

fn genesis_key() -> PublicKey {
    key(VALIDATOR).public_key()
}

#[test]
fn working_nodes_qualify_and_idle_failing_or_partial_ones_do_not() {
    // Six nodes, five instances: one node hosts nothing.
    let mut chain = network(6, 5, 7, |_| Tier::Cumulus);
    assert_eq!(chain.state.committee_epoch(), None);
    assert!(chain.state.committee_candidates().is_empty());
    let hosts: Vec<&str> = chain
        .state
        .app_placement("web")
        .unwrap()
        .instances
        .iter()
        .map(|h| label(&h.unwrap()))
        .collect();
    let idle = (0..6).map(name).find(|n| !hosts.contains(n)).unwrap();
    let (down, partial) = (hosts[0], hosts[1]);
    work_through(&mut chain, 1, &|host, window| {
        host != down && (host != partial || window % 2 == 0)
    });
    settle(&mut chain, 1);
    assert_eq!(chain.state.committee_epoch(), Some(1));
    let threshold = chain.params().work.verified_permille_min;
    assert!(!chain.state.node_work(&addr(down), 1).passes(threshold));
    let share = chain.state.node_work(&addr(partial), 1).verified_permille();
    assert!(share.is_some_and(|s| s < u64::from(threshold)), "{share:?}");
    let mut expected: Vec<&str> = hosts[2..].to_vec();
    expected.sort_by_key(|n| addr(n));
    assert_eq!(labels(&chain.state.committee_candidates()), expected);
    assert!(!expected.contains(&idle));
    // Three qualify, fewer than four: the genesis validator keeps its seat.
    assert_eq!(COMMITTEE_WORKERS_MIN, 4);
    let mut keys = vec![genesis_key()];
    keys.extend(expected.iter().map(|n| key(n).public_key()));
    assert_eq!(chain.state.next_committee(&[genesis_key()]), keys);
}

#[test]
fn four_working_nodes_take_every_seat_and_one_that_stops_loses_it_next_epoch() {
    let mut chain = network(5, 5, 7, |_| Tier::Cumulus);
    work_through(&mut chain, 1, &|_, _| true);
    settle(&mut chain, 1);
    let all: Vec<PublicKey> = {
        let mut names: Vec<&str> = (0..5).map(name).collect();
        names.sort_by_key(|n| addr(n));
        names.iter().map(|n| key(n).public_key()).collect()
    };
    assert_eq!(chain.state.next_committee(&[genesis_key()]), all);
    // w0's instance stops answering in epoch 2.
    work_through(&mut chain, 2, &|host, _| host != "w0");
    settle(&mut chain, 2);
    assert_eq!(chain.state.committee_epoch(), Some(2));
    let committee = chain.state.next_committee(&[genesis_key()]);
    assert_eq!(committee.len(), 4, "{committee:?}");
    assert!(!committee.contains(&key("w0").public_key()));
    assert!(!committee.contains(&genesis_key()));
}

#[test]
fn seats_are_capped_and_drawn_by_tier_weight_with_the_seed() {
    // Three Cumulus (weight 1) and three Stratus (weight 9) nodes, two seats.
    let tier = |index: usize| {
        if index < 3 {
            Tier::Cumulus
        } else {
            Tier::Stratus
        }
    };
    let mut chain = network(6, 6, 2, tier);
    work_through(&mut chain, 1, &|_, _| true);
    settle(&mut chain, 1);
    let state = &chain.state;
    assert_eq!(state.committee_candidates().len(), 6);
    let mut seats: BTreeMap<&str, u32> = BTreeMap::new();
    const DRAWS: u64 = 2_000;
    for draw in 0..DRAWS {
        let seed = Hash::digest(&[&draw.to_le_bytes()]);
        let drawn = state.draw_committee(&seed);
        assert_eq!(drawn.len(), 2);
        assert!(drawn[0].id < drawn[1].id, "distinct, by id");
        assert_eq!(
            labels(&drawn),
            labels(&state.draw_committee(&seed)),
            "same seed, same seats"
        );
        for node in drawn {
            *seats.entry(label(&node.id)).or_default() += 1;
        }
    }
    let stratus: u32 = ["w3", "w4", "w5"].iter().map(|n| seats[n]).sum();
    let cumulus: u32 = ["w0", "w1", "w2"]
        .iter()
        .map(|n| seats.get(n).copied().unwrap_or(0))
        .sum();
    assert_eq!(u64::from(stratus + cumulus), 2 * DRAWS);
    // Without replacement, the expected Stratus share of the seats is
    // (27/30 + 27/30 × 18/21 + 3/30 × 27/29) / 2 ≈ 0.882 (0.5 unweighted).
    let share = f64::from(stratus) / (2 * DRAWS) as f64;
    assert!((share - 0.882).abs() < 0.02, "{share} {seats:?}");
    assert!(cumulus > 0, "{seats:?}");
    // Different seeds give different committees.
    let committees: BTreeSet<Vec<&str>> = (0..20u64)
        .map(|draw| labels(&state.draw_committee(&Hash::digest(&[&draw.to_le_bytes()]))))
        .collect();
    assert!(committees.len() > 1);
    // The committee of the next epoch is seeded by the last block's hash, and
    // fewer than four seats bring the genesis validator back.
    let drawn = state.draw_committee(&state.last_block_hash());
    let mut keys = vec![genesis_key()];
    keys.extend(drawn.iter().map(|n| n.node_key));
    assert_eq!(state.next_committee(&[genesis_key()]), keys);
}
