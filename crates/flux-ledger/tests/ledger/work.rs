//! Useful work through whole blocks: each epoch's verifier assignment, the
//! `WorkReport` transaction and its refusals, and the credit of
//! instance-windows and down windows when a window settles.

use std::collections::BTreeSet;

use flux_ledger::{NodeWork, ReceiptDetail, State, apply_block};
use flux_types::{Address, AppSpec, Params, Target, TargetResults, Tier, TxBody};

use crate::harness::*;

/// Nodes and their operators: op1 runs two nodes.
const NODES: [(&str, &str); 5] = [
    ("n1", "op1"),
    ("n2", "op1"),
    ("n3", "op2"),
    ("n4", "op3"),
    ("n5", "op4"),
];

/// Blocks per epoch in these tests.
const EPOCH: u64 = 6;

/// Devnet params (1 s blocks, 2 s windows) with 6-block epochs and reports
/// late after two windows.
fn params() -> Params {
    let mut params = Params::devnet();
    params.epoch_length_blocks = EPOCH;
    params.work.report_late_windows = 2;
    params.work.window_ms = 2_000;
    params
}

fn web() -> AppSpec {
    app("web", "alice", 2, vec![component(10, 1_000, 10)])
}

/// Five confirmed nodes of four operators and a 2-instance app, run to the
/// first block of epoch 1 (which fixes its assignment).
fn network() -> Chain {
    let mut steps = Vec::new();
    for (node, owner) in NODES {
        steps.push(tx(owner, register_node(node, Tier::Cumulus)));
    }
    steps.push(block());
    for (node, _) in NODES {
        steps.push(tx(node, benchmark(hardware(4, 8_000, 100))));
    }
    steps.push(block());
    steps.push(tx("alice", register_app(web(), 1, flux(1_000))));
    steps.push(block());
    let mut chain = check(network_genesis(), steps);
    chain.run_to_height(EPOCH);
    chain
}

fn network_genesis() -> flux_types::Genesis {
    let mut funded = vec![("alice", flux(10_000))];
    funded.extend(["op1", "op2", "op3", "op4"].map(|op| (op, flux(10_000))));
    genesis_with(params(), &funded)
}

fn label(address: &Address) -> &'static str {
    NODES
        .iter()
        .find(|(node, _)| addr(node) == *address)
        .map(|(node, _)| *node)
        .expect("a test node")
}

fn owner(address: &Address) -> &'static str {
    NODES
        .iter()
        .find(|(node, _)| addr(node) == *address)
        .map(|(_, owner)| *owner)
        .expect("a test node")
}

fn instance(chain: &Chain, index: u32) -> Target {
    chain
        .state
        .work_targets(chain.state.epoch())
        .into_iter()
        .map(|(target, _)| target)
        .find(|t| matches!(t, Target::Instance { instance, .. } if *instance == index))
        .expect("the instance is a target")
}

fn node_target(node: &str) -> Target {
    Target::Node { node: addr(node) }
}

/// A report of `windows` windows from `first_window` in `epoch`.
fn report(epoch: u64, first_window: u64, results: Vec<(Target, Vec<bool>)>) -> TxBody {
    let windows = results.first().map_or(1, |(_, bits)| bits.len() as u32);
    TxBody::WorkReport {
        epoch,
        first_window,
        windows,
        results: results
            .into_iter()
            .map(|(target, bits)| TargetResults::from_bits(target, &bits))
            .collect(),
    }
}

/// The labels of a target's verifiers.
fn verifiers(chain: &Chain, target: &Target) -> Vec<&'static str> {
    chain.state.verifiers_of(target).iter().map(label).collect()
}

/// Runs blocks until `window` is settled, collecting every window that was
/// open in `epoch` meanwhile.
fn settle(chain: &mut Chain, window: u64, epoch: u64, seen: &mut BTreeSet<u64>) {
    loop {
        seen.extend(
            chain
                .state
                .open_work_windows()
                .filter(|(_, e)| *e == epoch)
                .map(|(w, _)| w),
        );
        if chain.state.open_work_windows().all(|(w, _)| w != window) {
            return;
        }
        chain.run_steps(vec![block()]);
    }
}

#[test]
fn each_target_gets_distinct_verifiers_never_its_host_spread_across_operators() {
    let chain = network();
    let state = &chain.state;
    assert_eq!(state.epoch(), 1);
    let targets = state.work_targets(1);
    // Five node targets and two instances.
    assert_eq!(targets.len(), 7, "{targets:?}");
    for (target, verifiers) in &targets {
        assert_eq!(verifiers.len(), 3, "{target}");
        assert!(
            !verifiers.contains(target.host()),
            "{target}: host verifies"
        );
        let distinct: BTreeSet<_> = verifiers.iter().collect();
        assert_eq!(distinct.len(), 3, "{target}");
        // Four operators: the three others than the host's always suffice.
        let owners: BTreeSet<&str> = verifiers.iter().map(owner).collect();
        assert_eq!(owners.len(), 3, "{target}: operators {owners:?}");
        assert!(!owners.contains(owner(target.host())), "{target}");
        assert_eq!(&state.verifiers_of(target), verifiers);
    }
    // targets_of is the reverse of verifiers_of.
    for (node, _) in NODES {
        let expected: Vec<Target> = targets
            .iter()
            .filter(|(_, v)| v.contains(&addr(node)))
            .map(|(t, _)| t.clone())
            .collect();
        assert_eq!(state.targets_of(&addr(node)), expected, "{node}");
    }
    // The same blocks give the same assignment on another chain.
    assert_eq!(network().state.work_targets(1), targets);
}

#[test]
fn the_assignment_rotates_each_epoch() {
    let mut chain = network();
    let first = chain.state.work_targets(1);
    chain.run_to_height(2 * EPOCH);
    let second = chain.state.work_targets(2);
    assert_eq!(
        first.iter().map(|(t, _)| t).collect::<Vec<_>>(),
        second.iter().map(|(t, _)| t).collect::<Vec<_>>(),
        "same targets"
    );
    assert_ne!(first, second, "the verifiers rotate");
    for (target, verifiers) in &second {
        assert!(!verifiers.contains(target.host()));
    }
}

#[test]
fn small_networks_fill_up_with_the_operators_they_have() {
    let mut funded = vec![("op1", flux(10_000))];
    funded.push(("op2", flux(10_000)));
    let mut steps = Vec::new();
    for (node, owner) in [("m1", "op1"), ("m2", "op1"), ("m3", "op2")] {
        steps.push(tx(owner, register_node(node, Tier::Cumulus)));
    }
    steps.push(block());
    for node in ["m1", "m2", "m3"] {
        steps.push(tx(node, benchmark(hardware(4, 8_000, 100))));
    }
    steps.push(block());
    let mut chain = check(genesis_with(params(), &funded), steps);
    chain.run_to_height(EPOCH);
    // Three nodes: each is verified by the two others, whatever their operator.
    for node in ["m1", "m2", "m3"] {
        let verifiers: BTreeSet<Address> = chain
            .state
            .verifiers_of(&node_target(node))
            .into_iter()
            .collect();
        let others: BTreeSet<Address> = ["m1", "m2", "m3"]
            .into_iter()
            .filter(|other| *other != node)
            .map(addr)
            .collect();
        assert_eq!(verifiers, others, "{node}");
    }
}

#[test]
fn a_majority_up_credits_the_host_and_a_minority_does_not() {
    let mut chain = network();
    let window = chain.state.work_window();
    let credited = instance(&chain, 0);
    let refused = instance(&chain, 1);
    let [a, b, c] = verifiers(&chain, &credited)[..] else {
        panic!("three verifiers")
    };
    let [x, y, z] = verifiers(&chain, &refused)[..] else {
        panic!("three verifiers")
    };
    let mut steps = vec![
        tx(a, report(1, window, vec![(credited.clone(), vec![true])])),
        tx(b, report(1, window, vec![(credited.clone(), vec![true])])),
        tx(c, report(1, window, vec![(credited.clone(), vec![false])])),
    ];
    // One verifier of three saw the other instance up: a minority.
    steps.push(tx(
        x,
        report(1, window, vec![(refused.clone(), vec![true])]),
    ));
    steps.push(tx(
        y,
        report(1, window, vec![(refused.clone(), vec![false])]),
    ));
    let _ = z;
    steps.push(block());
    chain.run_steps(steps);
    assert!(matches!(
        chain.last_receipt().detail,
        ReceiptDetail::WorkReported {
            epoch: 1,
            windows: 1,
            targets: 1,
            ..
        }
    ));
    let mut seen = BTreeSet::new();
    settle(&mut chain, window, 1, &mut seen);
    // Every settled window of epoch 1 counts as assigned to the hosts.
    let settled: u64 = seen
        .iter()
        .filter(|w| chain.state.open_work_windows().all(|(open, _)| open != **w))
        .count() as u64;
    assert!(settled >= 1);
    let hosted = |host: &Address| {
        [&credited, &refused]
            .iter()
            .filter(|t| t.host() == host)
            .count() as u64
    };
    for host in [credited.host(), refused.host()] {
        let work = chain.state.node_work(host, 1);
        let verified = u64::from(credited.host() == host);
        assert_eq!(
            work,
            NodeWork {
                assigned_windows: settled * hosted(host),
                verified_windows: verified,
            },
            "{}",
            label(host)
        );
    }
    // A node that hosts nothing has no instance-window assigned.
    for (node, _) in NODES {
        if addr(node) != *credited.host() && addr(node) != *refused.host() {
            assert_eq!(chain.state.node_work(&addr(node), 1), NodeWork::default());
        }
    }
    assert_eq!(
        chain.rows_with_prefix(24),
        0,
        "tallies are gone once settled"
    );
    assert!(chain.rows_with_prefix(22) > 0, "node work is stored");
    assert!(chain.rows_with_prefix(23) > 0, "assignments are stored");
}

#[test]
fn forged_self_serving_unassigned_late_duplicate_and_malformed_reports_are_refused() {
    let mut chain = network();
    let window = chain.state.work_window();
    let target = instance(&chain, 0);
    let host = label(target.host());
    let assigned = verifiers(&chain, &target);
    let outsider = NODES
        .iter()
        .map(|(node, _)| *node)
        .find(|node| *node != host && !assigned.contains(node))
        .expect("five nodes, three verifiers and a host leave one out");
    let verifier = assigned[0];
    let up = |target: &Target| report(1, window, vec![(target.clone(), vec![true])]);
    chain.run_steps(vec![
        // Signed by another key than the claimed signer's.
        tx(verifier, up(&target))
            .signed_by(outsider)
            .fails("invalid_signature"),
        tx(host, up(&target)).fails("work_self_report"),
        tx(host, up(&node_target(host))).fails("work_self_report"),
        tx(outsider, up(&target)).fails_with("work_not_verifier", "is not a verifier"),
        tx("alice", up(&target)).fails("work_signer_not_node"),
        tx(
            verifier,
            report(1, window + 1, vec![(target.clone(), vec![true])]),
        )
        .fails("work_window_in_future"),
        tx(
            verifier,
            report(2, window, vec![(target.clone(), vec![true])]),
        )
        .fails("work_window_not_in_epoch"),
        tx(
            verifier,
            TxBody::WorkReport {
                epoch: 1,
                first_window: window,
                windows: 1,
                results: vec![TargetResults {
                    target: target.clone(),
                    up: vec![1, 0],
                }],
            },
        )
        .fails("work_report_malformed"),
        tx(
            verifier,
            TxBody::WorkReport {
                epoch: 1,
                first_window: window,
                windows: 1,
                results: vec![],
            },
        )
        .fails("work_report_malformed"),
        tx(
            verifier,
            report(
                1,
                window,
                vec![(target.clone(), vec![true]), (target.clone(), vec![true])],
            ),
        )
        .fails("work_report_malformed"),
        tx(
            verifier,
            report(1, window, vec![(target.clone(), vec![true; 65])]),
        )
        .fails_with("work_report_too_large", "65"),
        tx(verifier, up(&target)),
        tx(verifier, up(&target)).fails("work_duplicate"),
        block(),
        tx(verifier, up(&target)).fails("work_duplicate"),
        block(),
    ]);
    let mut seen = BTreeSet::new();
    settle(&mut chain, window, 1, &mut seen);
    let other = assigned[1];
    chain.run_steps(vec![
        tx(other, up(&target)).fails_with("work_report_late", "settled"),
        block(),
    ]);
}

#[test]
fn a_node_reported_down_by_a_majority_counts_consecutive_down_windows() {
    let mut chain = network();
    let first = chain.state.work_window();
    let target = node_target("n3");
    let [a, b, c] = verifiers(&chain, &target)[..] else {
        panic!("three verifiers")
    };
    // Three windows open in epoch 1.
    while chain.state.work_window() < first + 2 {
        chain.run_steps(vec![block()]);
    }
    assert_eq!(chain.state.epoch(), 1);
    let down = || report(1, first, vec![(node_target("n3"), vec![false; 3])]);
    chain.run_steps(vec![
        tx(a, down()),
        tx(b, down()),
        // The third saw it up: two of three is still a majority.
        tx(
            c,
            report(1, first, vec![(node_target("n3"), vec![true; 3])]),
        ),
        block(),
    ]);
    // Decided in the block of the reports, before any window settled.
    assert!(chain.state.open_work_windows().any(|(w, _)| w == first));
    assert_eq!(chain.state.node_down_windows(&addr("n3")), 3);
    // Settling the same windows counts nothing twice.
    let mut seen = BTreeSet::new();
    settle(&mut chain, first + 2, 1, &mut seen);
    assert_eq!(chain.state.node_down_windows(&addr("n3")), 3);
    assert_eq!(chain.state.node_down_windows(&addr("n1")), 0);
    assert_eq!(chain.rows_with_prefix(26), 1);
    // Epoch 2's windows are open. One verifier of three sees n3 up in the
    // first (no majority: it stays open), two see it up in the second.
    let open: Vec<(u64, u64)> = chain.state.open_work_windows().collect();
    assert!(open.contains(&(first + 3, 2)) && open.contains(&(first + 4, 2)));
    let [a, b, _] = chain.state.verifiers_in(2, &target)[..] else {
        panic!("three verifiers")
    };
    chain.run_steps(vec![
        tx(
            label(&a),
            report(2, first + 3, vec![(node_target("n3"), vec![true, true])]),
        ),
        tx(
            label(&b),
            report(2, first + 4, vec![(node_target("n3"), vec![true])]),
        ),
        block(),
    ]);
    // Windows count in order: the open window holds the next one back.
    assert_eq!(chain.state.node_down_windows(&addr("n3")), 3);
    // It settles without a majority, leaving the count; the up window
    // behind it counts in the same block, before it settles itself.
    settle(&mut chain, first + 3, 2, &mut seen);
    assert!(chain.state.open_work_windows().any(|(w, _)| w == first + 4));
    assert_eq!(chain.state.node_down_windows(&addr("n3")), 0);
    settle(&mut chain, first + 4, 2, &mut seen);
    assert_eq!(chain.state.node_down_windows(&addr("n3")), 0);
    assert_eq!(chain.rows_with_prefix(26), 0);
}

#[test]
fn replaying_the_blocks_gives_the_same_state_root_and_work() {
    let mut chain = network();
    let window = chain.state.work_window();
    let target = instance(&chain, 0);
    let reporters = verifiers(&chain, &target);
    let steps = reporters
        .iter()
        .map(|v| tx(v, report(1, window, vec![(target.clone(), vec![true])])))
        .chain([block()])
        .collect();
    chain.run_steps(steps);
    let mut seen = BTreeSet::new();
    settle(&mut chain, window, 1, &mut seen);
    assert!(chain.state.node_work(target.host(), 1).verified_windows >= 1);
    let (mut replayed, _) = State::from_genesis(&network_genesis()).expect("a valid genesis");
    for block in &chain.blocks {
        replayed = apply_block(&replayed, block).expect("a valid block").state;
    }
    assert_same_state(&replayed, &chain.state);
    assert_eq!(
        replayed.node_work(target.host(), 1),
        chain.state.node_work(target.host(), 1)
    );
}
