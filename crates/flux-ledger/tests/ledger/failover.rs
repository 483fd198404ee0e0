//! Failover through whole blocks: a node that a majority of its verifiers
//! reports down for `work.failover_down_windows` consecutive windows becomes
//! unreachable and its instances move in that block; a majority seeing it up
//! again confirms it; a minority changes nothing.

use flux_ledger::{Event, NodeStatus, State, apply_block};
use flux_types::{Address, AppSpec, Params, Target, TargetResults, Tier, TxBody};

use crate::harness::*;

/// Five nodes of four operators.
const NODES: [(&str, &str); 5] = [
    ("n1", "op1"),
    ("n2", "op1"),
    ("n3", "op2"),
    ("n4", "op3"),
    ("n5", "op4"),
];

/// Blocks per epoch: ten 2 s windows at 1 s blocks.
const EPOCH: u64 = 20;

/// Devnet params (1 s blocks, 2 s windows, failover after 3 down windows)
/// with 20-block epochs and reports late after two windows.
fn params() -> Params {
    let mut params = Params::devnet();
    params.epoch_length_blocks = EPOCH;
    params.work.report_late_windows = 2;
    params.work.window_ms = 2_000;
    assert_eq!(params.work.failover_down_windows, 3);
    params
}

fn web() -> AppSpec {
    app("web", "alice", 2, vec![component(10, 1_000, 10)])
}

fn network_genesis() -> flux_types::Genesis {
    let mut funded = vec![("alice", flux(10_000))];
    funded.extend(["op1", "op2", "op3", "op4"].map(|op| (op, flux(10_000))));
    genesis_with(params(), &funded)
}

/// Five confirmed nodes and a 2-instance app, run to the first block of
/// epoch 1 (which fixes its assignment).
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

fn label(address: &Address) -> &'static str {
    NODES
        .iter()
        .find(|(node, _)| addr(node) == *address)
        .map(|(node, _)| *node)
        .expect("a test node")
}

fn status(chain: &Chain, node: &str) -> NodeStatus {
    chain.state.node(&addr(node)).expect("registered").status
}

/// The node hosting instance `index` of `web`.
fn host_of(chain: &Chain, index: usize) -> &'static str {
    let placement = chain.state.app_placement("web").expect("the app exists");
    label(&placement.instances[index].expect("placed"))
}

/// Runs one block in which the first `count` verifiers of `node`'s node
/// target report the current window (once per window) with `up`.
fn report_node(chain: &mut Chain, node: &str, up: bool, count: usize, last: &mut Option<u64>) {
    let window = chain.state.work_window();
    let mut steps = Vec::new();
    if *last != Some(window) {
        let epoch = chain
            .state
            .open_work_windows()
            .find(|(w, _)| *w == window)
            .map(|(_, e)| e)
            .expect("the block's window is open");
        let target = Target::Node { node: addr(node) };
        for verifier in chain.state.verifiers_in(epoch, &target).iter().take(count) {
            steps.push(tx(
                label(verifier),
                TxBody::WorkReport {
                    epoch,
                    first_window: window,
                    windows: 1,
                    results: vec![TargetResults::from_bits(target.clone(), &[up])],
                },
            ));
        }
        *last = Some(window);
    }
    steps.push(block());
    chain.run_steps(steps);
}

/// Reports the host of instance 0 down by two of its three verifiers until
/// it fails over; returns the chain and that host.
fn fail_over() -> (Chain, &'static str) {
    let mut chain = network();
    let host = host_of(&chain, 0);
    let other = host_of(&chain, 1);
    assert_ne!(host, other);
    let mut last = None;
    let events_before = chain.events.len();
    let mut blocks = 0;
    while status(&chain, host) == NodeStatus::Confirmed {
        // Not before K down windows: still confirmed, still hosting.
        assert!(chain.state.node_down_windows(&addr(host)) < 3);
        assert_eq!(host_of(&chain, 0), host);
        report_node(&mut chain, host, false, 2, &mut last);
        blocks += 1;
        assert!(blocks < EPOCH - 1, "no failover within the epoch");
    }
    assert_eq!(status(&chain, host), NodeStatus::Unreachable);
    assert_eq!(chain.state.node_down_windows(&addr(host)), 3);
    let failed: Vec<&Event> = chain.events[events_before..]
        .iter()
        .filter(|e| matches!(e, Event::NodeUnreachable { .. }))
        .collect();
    assert!(
        matches!(failed[..], [Event::NodeUnreachable { node, down_windows: 3, .. }] if *node == addr(host)),
        "{failed:?}"
    );
    // In the same block: instance 0 is on another node, instance 1 stayed.
    let placement = chain.state.app_placement("web").expect("the app exists");
    assert_eq!(placement.placed, 2);
    assert!(!placement.instances.contains(&Some(addr(host))));
    assert_eq!(host_of(&chain, 1), other);
    assert!(chain.state.instances_on(&addr(host)).is_empty());
    (chain, host)
}

#[test]
fn k_down_windows_make_a_node_unreachable_and_move_its_instances_not_before() {
    let (chain, host) = fail_over();
    // Its benchmark still passes, yet it is no candidate and not pending.
    assert!(chain.state.node_benchmark(&addr(host)).unwrap().passed);
    assert_eq!(chain.state.node_pending_reason(&addr(host)), None);
    assert!(chain.state.node_resources(&addr(host)).is_none());
}

#[test]
fn a_minority_of_reports_fails_nothing_over_and_brings_nothing_back() {
    let mut chain = network();
    let host = host_of(&chain, 0);
    let mut last = None;
    // One verifier of three reports it down for twice K windows.
    let start = chain.state.work_window();
    while chain.state.work_window() < start + 7 {
        report_node(&mut chain, host, false, 1, &mut last);
    }
    chain.run_to_height(chain.state.height() + 6);
    assert_eq!(status(&chain, host), NodeStatus::Confirmed);
    assert_eq!(chain.state.node_down_windows(&addr(host)), 0);
    assert_eq!(host_of(&chain, 0), host);
    assert!(
        !chain
            .events
            .iter()
            .any(|e| matches!(e, Event::NodeUnreachable { .. }))
    );

    // Unreachable, one verifier of three seeing it up does not bring it back.
    let (mut chain, host) = fail_over();
    // The window of the failover was reported already.
    let mut last = Some(chain.state.work_window());
    for _ in 0..8 {
        report_node(&mut chain, host, true, 1, &mut last);
    }
    assert_eq!(status(&chain, host), NodeStatus::Unreachable);
}

#[test]
fn an_unreachable_node_stays_a_target_and_seen_up_again_gets_new_work() {
    let (mut chain, host) = fail_over();
    // The next epoch: still a node target, verifying nothing.
    chain.run_to_height(2 * EPOCH);
    assert_eq!(chain.state.epoch(), 2);
    let target = Target::Node { node: addr(host) };
    assert_eq!(chain.state.verifiers_of(&target).len(), 3);
    assert!(chain.state.targets_of(&addr(host)).is_empty());
    assert!(
        chain
            .state
            .work_targets(2)
            .iter()
            .all(|(t, verifiers)| !verifiers.contains(&addr(host))
                && !matches!(t, Target::Instance { host: h, .. } if *h == addr(host)))
    );
    // A majority sees it up: confirmed again once that window settles.
    let events_before = chain.events.len();
    let mut last = None;
    let mut blocks = 0;
    while status(&chain, host) == NodeStatus::Unreachable {
        report_node(&mut chain, host, true, 2, &mut last);
        blocks += 1;
        assert!(blocks < 10, "not back after {blocks} blocks");
    }
    assert_eq!(status(&chain, host), NodeStatus::Confirmed);
    assert_eq!(chain.state.node_down_windows(&addr(host)), 0);
    assert!(
        chain.events[events_before..]
            .iter()
            .any(|e| matches!(e, Event::NodeReachable { node, .. } if *node == addr(host)))
    );
    // Nothing moves back by itself; new work reaches it.
    assert!(chain.state.instances_on(&addr(host)).is_empty());
    chain.run_steps(vec![
        tx(
            "alice",
            register_app(
                app("wide", "alice", 5, vec![component(10, 1_000, 10)]),
                1,
                flux(1_000),
            ),
        ),
        block(),
    ]);
    assert_eq!(chain.state.instances_on(&addr(host)).len(), 1);
    // The same blocks replayed give the same state.
    let (mut replayed, _) = State::from_genesis(&network_genesis()).expect("a valid genesis");
    for block in &chain.blocks {
        replayed = apply_block(&replayed, block).expect("a valid block").state;
    }
    assert_same_state(&replayed, &chain.state);
}

#[test]
fn an_unreachable_node_that_passes_a_benchmark_stays_unreachable() {
    let (mut chain, host) = fail_over();
    chain.run_to_height(chain.state.height() + 5);
    chain.run_steps(vec![tx(host, benchmark(hardware(4, 8_000, 100))), block()]);
    assert_eq!(status(&chain, host), NodeStatus::Unreachable);
    assert!(chain.state.instances_on(&addr(host)).is_empty());
    // A failing one makes it pending.
    chain.run_to_height(chain.state.height() + 5);
    chain.run_steps(vec![tx(host, benchmark(hardware(1, 100, 1))), block()]);
    assert_eq!(status(&chain, host), NodeStatus::Pending);
}

/// Runs blocks until a window is reported by the first `count` verifiers of
/// `node` with `up`.
fn report_window(chain: &mut Chain, node: &str, up: bool, count: usize, last: &mut Option<u64>) {
    let before = *last;
    while *last == before {
        report_node(chain, node, up, count, last);
    }
}

#[test]
fn a_failover_is_decided_by_the_reports_before_their_windows_settle_and_counted_once() {
    let (mut chain, host) = fail_over();
    let window = chain
        .events
        .iter()
        .find_map(|e| match e {
            Event::NodeUnreachable { window, .. } => Some(*window),
            _ => None,
        })
        .expect("a failover");
    // Decided early: the window that made it is not settled yet.
    assert!(chain.state.open_work_windows().any(|(w, _)| w == window));
    // Settling the windows counted already adds nothing.
    while chain.state.open_work_windows().any(|(w, _)| w <= window) {
        chain.run_steps(vec![block()]);
    }
    assert_eq!(chain.state.node_down_windows(&addr(host)), 3);
    assert_eq!(status(&chain, host), NodeStatus::Unreachable);
    let (mut replayed, _) = State::from_genesis(&network_genesis()).expect("a valid genesis");
    for block in &chain.blocks {
        replayed = apply_block(&replayed, block).expect("a valid block").state;
    }
    assert_same_state(&replayed, &chain.state);
}

#[test]
fn a_window_without_a_majority_neither_resets_nor_adds_to_the_down_count() {
    let mut chain = network();
    let host = host_of(&chain, 0);
    let mut last = None;
    report_window(&mut chain, host, false, 2, &mut last);
    report_window(&mut chain, host, false, 2, &mut last);
    assert_eq!(chain.state.node_down_windows(&addr(host)), 2);
    // One verifier of three: no majority either way.
    report_window(&mut chain, host, false, 1, &mut last);
    let open = last.expect("reported");
    assert_eq!(chain.state.node_down_windows(&addr(host)), 2);
    // A majority down in the window after it waits for it to settle.
    report_window(&mut chain, host, false, 2, &mut last);
    assert_eq!(chain.state.node_down_windows(&addr(host)), 2);
    assert_eq!(status(&chain, host), NodeStatus::Confirmed);
    let mut blocks = 0;
    while status(&chain, host) == NodeStatus::Confirmed {
        chain.run_steps(vec![block()]);
        blocks += 1;
        assert!(blocks < 8, "no failover after {blocks} blocks");
    }
    // The open window settled unchanged, the one after it made three.
    assert!(chain.state.open_work_windows().all(|(w, _)| w > open));
    assert_eq!(chain.state.node_down_windows(&addr(host)), 3);
    assert!(chain.events.iter().any(
        |e| matches!(e, Event::NodeUnreachable { node, window, down_windows: 3 } if *node == addr(host) && *window == open + 1)
    ));
    assert!(chain.state.instances_on(&addr(host)).is_empty());
}
