//! Issuance and rewards through whole blocks: issuance in proportion to the
//! chain time since the parent block, the yearly reduction, and each epoch's
//! payment by tier weight × verified instance-windows, with the treasury's
//! share and what rounding leaves carried over.

use std::collections::BTreeSet;

use flux_ledger::{State, apply_block, reward_pool_address, scheduled_issuance};
use flux_types::{Address, Amount, Params, Target, TargetResults, Tier, TxBody};

use crate::harness::*;

/// Blocks per epoch in these tests.
const EPOCH: u64 = 6;

/// Nodes, their tiers and their operators: one of each tier, so that each
/// hosts one instance of a 3-instance app and is verified by the two others.
const NODES: [(&str, Tier, &str); 3] = [
    ("c1", Tier::Cumulus, "op1"),
    ("n1", Tier::Nimbus, "op2"),
    ("s1", Tier::Stratus, "op3"),
];

/// Devnet params (1 s blocks, 2 s windows, 14 FLUX per 30 s) with 6-block
/// epochs and reports late after two windows.
fn params() -> Params {
    let mut params = Params::devnet();
    params.epoch_length_blocks = EPOCH;
    params.work.report_late_windows = 2;
    params.work.window_ms = 2_000;
    params
}

/// 14 FLUX per 30 s, in base units per ms × 1000 ms, rounded down.
const PER_SECOND_YEAR_ONE: u64 = 46_666_666;

fn funded() -> Vec<(&'static str, Amount)> {
    let mut funded = vec![("alice", flux(10_000))];
    funded.extend(["op1", "op2", "op3"].map(|op| (op, flux(10_000))));
    funded
}

fn network_genesis() -> flux_types::Genesis {
    genesis_issuing(params(), &funded())
}

/// The three nodes confirmed and a 3-instance app placed, run to the first
/// block of epoch 1 (which fixes its assignment).
fn network() -> Chain {
    let mut steps = Vec::new();
    for (node, tier, owner) in NODES {
        steps.push(tx(owner, register_node(node, tier)));
    }
    steps.push(block());
    for (node, _, _) in NODES {
        steps.push(tx(node, benchmark(hardware(4, 8_000, 100))));
    }
    steps.push(block());
    let web = app("web", "alice", 3, vec![component(10, 1_000, 10)]);
    steps.push(tx("alice", register_app(web, 1, flux(1_000))));
    steps.push(block());
    let mut chain = check(network_genesis(), steps);
    chain.run_to_height(EPOCH);
    chain
}

fn label(address: &Address) -> &'static str {
    NODES
        .iter()
        .find(|(node, _, _)| addr(node) == *address)
        .map(|(node, _, _)| *node)
        .expect("a test node")
}

fn pool(chain: &Chain) -> Amount {
    chain.state.account(&reward_pool_address()).balance
}

/// Runs the blocks of epoch `epoch` (and the next, until every window of
/// `epoch` is reported): every verifier reports every instance of `epoch`
/// once per window, up unless `down(host label, window index)` says
/// otherwise. Returns when the next block would be the first of epoch
/// `epoch + 1`... or later, once every window of `epoch` was reported.
fn work_through(chain: &mut Chain, epoch: u64, down: impl Fn(&str, usize) -> bool) {
    let instances: Vec<(Target, Vec<Address>)> = chain
        .state
        .work_targets(epoch)
        .into_iter()
        .filter(|(target, _)| matches!(target, Target::Instance { .. }))
        .collect();
    assert_eq!(instances.len(), 3, "three instances are verified");
    let mut reported = BTreeSet::new();
    loop {
        let windows: Vec<u64> = chain
            .state
            .open_work_windows()
            .filter(|(w, e)| *e == epoch && !reported.contains(w))
            .map(|(w, _)| w)
            .collect();
        if windows.is_empty() && chain.state.epoch() > epoch {
            return;
        }
        let mut steps = Vec::new();
        for window in windows {
            let index = reported.len();
            reported.insert(window);
            for (target, verifiers) in &instances {
                let up = !down(label(target.host()), index);
                for verifier in verifiers {
                    let body = TxBody::WorkReport {
                        epoch,
                        first_window: window,
                        windows: 1,
                        results: vec![TargetResults::from_bits(target.clone(), &[up])],
                    };
                    steps.push(tx(label(verifier), body));
                }
            }
        }
        steps.push(block());
        chain.run_steps(steps);
    }
}

/// Runs blocks until epoch `epoch` is paid; returns the state before the
/// paying block.
fn run_until_paid(chain: &mut Chain, epoch: u64) -> State {
    loop {
        let before = chain.state.clone();
        chain.run_steps(vec![block()]);
        if chain.state.rewards_summary().unpaid_epoch > epoch {
            return before;
        }
    }
}

/// The owner balances of the nodes.
fn owner_balances(chain: &Chain) -> Vec<Amount> {
    NODES
        .iter()
        .map(|(_, _, owner)| chain.balance(owner))
        .collect()
}

#[test]
fn issuance_follows_the_chain_time_since_the_parent_block() {
    let mut chain = check(genesis_issuing(params(), &funded()), vec![]);
    let supply = chain.state.total_supply();
    // Blocks 1 s, 1.5 s, 4 s and 1.2 s apart.
    let mut issued = Vec::new();
    for extra in [0, 500, 3_000, 200] {
        let before = pool(&chain);
        chain.run_steps(vec![advance(extra), block()]);
        issued.push(minus(pool(&chain), before).as_units());
    }
    // In proportion to the time since the parent, within a base unit of
    // rounding (the schedule is cut at whole units of its running total).
    let expected = [1_000u128, 1_500, 4_000, 1_200].map(|ms| 1_400_000_000u128 * ms / 30_000);
    for (got, want) in issued.iter().zip(expected) {
        assert!(u128::from(*got).abs_diff(want) <= 1, "{got} vs {want}");
    }
    // The running total has no drift: it is the schedule at 7.7 s.
    let total: u64 = issued.iter().sum();
    assert_eq!(total, 1_400_000_000 * 7_700 / 30_000);
    assert_eq!(chain.state.rewards_summary().issued, units(total));
    assert_eq!(chain.state.total_supply(), plus(supply, units(total)));
    // Nobody did any work: everything is still in the pool.
    assert_eq!(pool(&chain), units(total));
}

#[test]
fn issuance_drops_ten_percent_each_year_compounded() {
    let mut params = params();
    params.rewards.year_ms = 86_400_000;
    let mut chain = check(genesis_issuing(params.clone(), &funded()), vec![]);
    let year = params.rewards.year_ms;
    let block_ms = params.block_interval_ms;
    let mut per_second = Vec::new();
    for years in 0..3 {
        // A block 1 s into year `years`, then one 1 s later.
        let target = years * year + block_ms;
        let elapsed = chain.clock_ms - GENESIS_TIME_MS;
        chain.run_steps(vec![advance(target - elapsed - block_ms), block()]);
        let before = pool(&chain);
        chain.run_steps(vec![block()]);
        per_second.push(minus(pool(&chain), before).as_units());
    }
    // 14 FLUX per 30 s, then 12.6, then 11.34.
    assert!(per_second[0].abs_diff(PER_SECOND_YEAR_ONE) <= 1);
    assert_eq!(per_second[1], 42_000_000);
    assert_eq!(per_second[2], 37_800_000);
    // The whole of year one, exactly: 14 FLUX × 2880 periods.
    assert_eq!(
        scheduled_issuance(&params.rewards, year),
        u128::from(flux(14 * 2_880).as_units())
    );
    assert_eq!(
        chain.state.rewards_summary().issued.as_units() as u128,
        scheduled_issuance(&params.rewards, chain.clock_ms - GENESIS_TIME_MS)
    );
}

#[test]
fn an_epoch_pays_tier_weight_times_verified_work_and_the_treasury_share_exactly() {
    let mut chain = network();
    // The Stratus node's instance is seen down in the first window.
    work_through(&mut chain, 1, |host, window| host == "s1" && window == 0);
    let before = run_until_paid(&mut chain, 1);
    // The paying block settled the last windows of epoch 1: its work is final.
    let weights: Vec<u128> = NODES
        .iter()
        .map(|(node, tier, _)| {
            let work = chain.state.node_work(&addr(node), 1);
            assert!(work.assigned_windows >= 2, "{node}: {work:?}");
            let weight_milli = u128::from(params().tier(*tier).reward_weight_milli);
            weight_milli * u128::from(work.verified_windows)
        })
        .collect();
    let verified: Vec<u64> = NODES
        .iter()
        .map(|(node, _, _)| chain.state.node_work(&addr(node), 1).verified_windows)
        .collect();
    assert_eq!(verified[0], verified[1]);
    assert_eq!(verified[2] + 1, verified[0], "s1 lost one window");
    // What epoch 1 pays: the pool less what later epochs have earmarked
    // (epoch 0's issuance and the app payment carried over: nobody worked).
    let summary = before.rewards_summary();
    let later: u64 = summary.pools.range(2..).map(|(_, a)| a.as_units()).sum();
    let pool_before = before.account(&reward_pool_address()).balance.as_units();
    let available = u128::from(pool_before - later);
    let to_treasury = available * 35_714 / 1_000_000;
    let to_nodes = available - to_treasury;
    let total_weight: u128 = weights.iter().sum();
    let owners_before: Vec<Amount> = NODES
        .iter()
        .map(|(_, _, owner)| before.account(&addr(owner)).balance)
        .collect();
    let mut paid = 0u128;
    for (((node, _, _), weight), (got, was)) in NODES
        .iter()
        .zip(&weights)
        .zip(owner_balances(&chain).into_iter().zip(owners_before))
    {
        let share = to_nodes * weight / total_weight;
        assert_eq!(u128::from(minus(got, was).as_units()), share, "{node}");
        assert_eq!(
            u128::from(chain.state.node_reward_in(&addr(node), 1).as_units()),
            share
        );
        let record = chain.state.node_rewards(&addr(node));
        assert_eq!(u128::from(record.total.as_units()), share);
        assert_eq!(record.last_epoch, Some(1));
        paid += share;
    }
    // The Stratus node earns 9 / 3.5 / 1 against the others, less its lost window.
    assert!(
        chain.state.node_rewards(&addr("s1")).total > chain.state.node_rewards(&addr("n1")).total
    );
    assert_eq!(
        u128::from(
            minus(
                chain.balance("@treasury"),
                before.account(&addr("@treasury")).balance
            )
            .as_units()
        ),
        to_treasury
    );
    // The pool keeps what rounding left, plus the paying block's issuance.
    let issued_now = minus(chain.state.rewards_summary().issued, summary.issued).as_units();
    let left = available - to_treasury - paid;
    assert!(
        left < NODES.len() as u128,
        "rounding leaves less than a unit per node"
    );
    assert_eq!(
        u128::from(pool(&chain).as_units()),
        u128::from(later) + u128::from(issued_now) + left
    );
}

#[test]
fn without_verified_work_nothing_is_paid_and_the_pool_carries_over() {
    let mut chain = network();
    let owners = owner_balances(&chain);
    let treasury = chain.balance("@treasury");
    // Epoch 1 passes with no report at all.
    let before = run_until_paid(&mut chain, 1);
    assert_eq!(owner_balances(&chain), owners);
    assert_eq!(chain.balance("@treasury"), treasury);
    for (node, _, _) in NODES {
        assert_eq!(chain.state.node_rewards(&addr(node)).total, Amount::ZERO);
    }
    // Everything stays in the pool: the pool grew by the paying block's issuance alone.
    let issued_now = minus(
        chain.state.rewards_summary().issued,
        before.rewards_summary().issued,
    );
    assert_eq!(
        pool(&chain),
        plus(before.account(&reward_pool_address()).balance, issued_now)
    );
    // Epoch 2 has work: it pays what epochs 0 and 1 left too.
    let carried = pool(&chain);
    chain.run_to_height(2 * EPOCH);
    work_through(&mut chain, 2, |_, _| false);
    let before = run_until_paid(&mut chain, 2);
    let later: u64 = before
        .rewards_summary()
        .pools
        .range(3..)
        .map(|(_, a)| a.as_units())
        .sum();
    let available = before.account(&reward_pool_address()).balance.as_units() - later;
    assert!(
        available > carried.as_units(),
        "the carried pool is paid with epoch 2's"
    );
    let paid: u64 = NODES
        .iter()
        .map(|(node, _, _)| chain.state.node_reward_in(&addr(node), 2).as_units())
        .sum();
    let to_treasury = minus(chain.balance("@treasury"), treasury).as_units();
    assert_eq!(
        to_treasury,
        (u128::from(available) * 35_714 / 1_000_000) as u64
    );
    assert!(
        available - to_treasury - paid < NODES.len() as u64,
        "only rounding stays"
    );
}

#[test]
fn supply_is_genesis_plus_issued_over_several_epochs_and_replays_to_the_same_root() {
    let mut chain = network();
    let genesis_supply = chain.state.rewards_summary().genesis_supply;
    for epoch in 1..4 {
        work_through(&mut chain, epoch, |host, window| {
            host == "c1" && window == epoch as usize
        });
        let summary = chain.state.rewards_summary();
        assert_eq!(
            chain.state.total_supply(),
            plus(genesis_supply, summary.issued)
        );
        assert_eq!(chain.state.sum_of_accounts(), chain.state.total_supply());
        assert_eq!(
            u128::from(summary.issued.as_units()),
            scheduled_issuance(&params().rewards, chain.clock_ms - GENESIS_TIME_MS)
        );
    }
    run_until_paid(&mut chain, 3);
    let summary = chain.state.rewards_summary().clone();
    assert!(summary.paid_to_nodes > Amount::ZERO);
    let earned: u64 = NODES
        .iter()
        .map(|(node, _, _)| chain.state.node_rewards(&addr(node)).total.as_units())
        .sum();
    assert_eq!(earned, summary.paid_to_nodes.as_units());
    let (mut replayed, _) = State::from_genesis(&network_genesis()).expect("a valid genesis");
    for block in &chain.blocks {
        replayed = apply_block(&replayed, block).expect("a valid block").state;
    }
    assert_eq!(replayed.state_root(), chain.state.state_root());
    assert_eq!(replayed.rewards_summary(), &summary);
    for (node, _, _) in NODES {
        assert_eq!(
            replayed.node_rewards(&addr(node)),
            chain.state.node_rewards(&addr(node))
        );
    }
}
