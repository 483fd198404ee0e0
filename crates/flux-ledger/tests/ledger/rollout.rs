//! Rolling updates: an update that changes what an app runs switches its
//! instance slots one `update_roll_interval_ms` apart in chain time, so that
//! the app never has zero instances running. (The harness also restores
//! every block from its stored rows and applies the next block to the
//! restored copy, so a rollout that did not survive a restore, or whose end
//! were not found again, would fail every test here.)

use flux_ledger::{Rollout, RolloutProgress, State, apply_block};
use flux_types::{AppSpec, Genesis, Params, Tier};

use crate::harness::*;

/// Chain time between two slots' switches in these tests.
const ROLL_MS: u64 = 5_000;

/// A devnet genesis whose blocks are 1 ms apart unless the clock is
/// advanced, so a test can put a block at any chain time.
fn rolling_genesis() -> Genesis {
    let mut params = Params::devnet();
    params.block_interval_ms = 1;
    params.block_interval_busy_ms = 1;
    params.scheduler.update_roll_interval_ms = ROLL_MS;
    genesis_with(params, &[("olga", flux(10_000)), ("alice", flux(10_000))])
}

/// Three confirmed nodes.
fn three_nodes() -> Vec<Step> {
    let mut steps = Vec::new();
    for node in ["n1", "n2", "n3"] {
        steps.push(tx("olga", register_node(node, Tier::Cumulus)));
    }
    steps.push(block());
    for node in ["n1", "n2", "n3"] {
        steps.push(tx(node, benchmark(hardware(4, 8_000, 100))));
    }
    steps.push(block());
    steps
}

/// The app `web` with `instances` instances greeting with `greeting`.
fn web(instances: u32, greeting: &str) -> AppSpec {
    let mut component = component(10, 1_000, 10);
    component.environment = vec![format!("GREETING={greeting}")];
    app("web", "alice", instances, vec![component])
}

/// The greeting each slot of `web` runs now.
fn greetings(chain: &Chain) -> Vec<String> {
    let record = chain.state.app("web").expect("the app exists");
    (0..record.spec.instances)
        .map(|slot| {
            let spec = chain.state.instance_spec(record, slot);
            spec.components[0].environment[0]
                .trim_start_matches("GREETING=")
                .to_string()
        })
        .collect()
}

fn rollout(chain: &Chain) -> Option<Rollout> {
    chain
        .state
        .app("web")
        .expect("the app exists")
        .rollout
        .clone()
}

/// Builds one block at exactly chain time `at_ms`.
fn block_at(chain: &mut Chain, at_ms: u64) {
    chain.run_steps(vec![advance_to(chain, at_ms), block()]);
    assert_eq!(chain.state.time_ms(), at_ms);
}

/// Moves the clock so that the next block (1 ms later) is at `at_ms`.
fn advance_to(chain: &Chain, at_ms: u64) -> Step {
    assert!(chain.clock_ms < at_ms, "the clock is already at {at_ms}");
    advance(at_ms - 1 - chain.clock_ms)
}

/// Deploys `web` v1 with three instances on three nodes, then updates it to
/// v2; returns the chain and the update block's time.
fn updated_to_v2() -> (Chain, u64) {
    let mut chain = check(rolling_genesis(), three_nodes());
    chain.run_steps(vec![
        tx("alice", register_app(web(3, "v1"), 1, flux(1_000))),
        block(),
    ]);
    assert_eq!(chain.state.app_placement("web").unwrap().placed, 3);
    assert_eq!(greetings(&chain), ["v1", "v1", "v1"]);
    chain.run_steps(vec![
        tx("alice", update_app(web(3, "v2"), 1, flux(1_000))),
        block(),
    ]);
    let started_ms = chain.state.time_ms();
    (chain, started_ms)
}

#[test]
fn each_slot_switches_exactly_at_its_promised_chain_time_then_the_rollout_ends() {
    let (mut chain, t) = updated_to_v2();
    assert_eq!(
        rollout(&chain),
        Some(Rollout {
            previous: web(3, "v1"),
            started_ms: t,
            interval_ms: ROLL_MS,
            switched_before: 0,
        })
    );
    // Slot 0 switches in the update's own block; the others keep running v1.
    assert_eq!(greetings(&chain), ["v2", "v1", "v1"]);
    assert_eq!(
        chain.state.rollout_progress("WEB"),
        Some(RolloutProgress {
            updated: 1,
            of: 3,
            next_switch_ms: t + ROLL_MS,
        })
    );
    block_at(&mut chain, t + ROLL_MS - 1);
    assert_eq!(greetings(&chain), ["v2", "v1", "v1"]);
    block_at(&mut chain, t + ROLL_MS);
    assert_eq!(greetings(&chain), ["v2", "v2", "v1"]);
    assert_eq!(chain.state.rollout_progress("web").unwrap().updated, 2);
    block_at(&mut chain, t + 2 * ROLL_MS - 1);
    assert_eq!(greetings(&chain), ["v2", "v2", "v1"]);
    assert!(rollout(&chain).is_some());
    block_at(&mut chain, t + 2 * ROLL_MS);
    assert_eq!(greetings(&chain), ["v2", "v2", "v2"]);
    assert_eq!(rollout(&chain), None, "dropped with the last switch");
    assert_eq!(chain.state.rollout_progress("web"), None);
    // Placement never moved: the same nodes run the same slots throughout.
    assert_eq!(chain.state.app_placement("web").unwrap().placed, 3);
}

#[test]
fn an_update_during_a_rollout_switches_the_updated_slots_at_once_and_rolls_the_rest() {
    let (mut chain, t) = updated_to_v2();
    block_at(&mut chain, t + ROLL_MS);
    assert_eq!(greetings(&chain), ["v2", "v2", "v1"]);
    // v3 while slot 2 still runs v1: the slots on v2 (no longer in force)
    // switch at once, slot 2 keeps serving v1 for one more interval.
    let t3 = t + ROLL_MS + 500;
    chain.run_steps(vec![
        advance_to(&chain, t3),
        tx("alice", update_app(web(3, "v3"), 1, flux(1_000))),
        block(),
    ]);
    assert_eq!(chain.state.time_ms(), t3);
    assert_eq!(
        rollout(&chain),
        Some(Rollout {
            previous: web(3, "v1"),
            started_ms: t3,
            interval_ms: ROLL_MS,
            switched_before: 2,
        })
    );
    assert_eq!(greetings(&chain), ["v3", "v3", "v1"]);
    assert_eq!(
        chain.state.rollout_progress("web"),
        Some(RolloutProgress {
            updated: 2,
            of: 3,
            next_switch_ms: t3 + ROLL_MS,
        })
    );
    block_at(&mut chain, t3 + ROLL_MS - 1);
    assert_eq!(greetings(&chain), ["v3", "v3", "v1"]);
    block_at(&mut chain, t3 + ROLL_MS);
    assert_eq!(greetings(&chain), ["v3", "v3", "v3"]);
    assert_eq!(rollout(&chain), None);
}

#[test]
fn an_update_back_to_the_previous_spec_ends_the_rollout() {
    let (mut chain, _) = updated_to_v2();
    assert_eq!(greetings(&chain), ["v2", "v1", "v1"]);
    chain.run_steps(vec![
        tx("alice", update_app(web(3, "v1"), 1, flux(1_000))),
        block(),
    ]);
    assert_eq!(rollout(&chain), None);
    assert_eq!(greetings(&chain), ["v1", "v1", "v1"]);
}

#[test]
fn an_update_that_changes_nothing_that_runs_starts_no_rollout_and_keeps_a_running_one() {
    let mut chain = check(rolling_genesis(), three_nodes());
    chain.run_steps(vec![
        tx("alice", register_app(web(2, "v1"), 1, flux(1_000))),
        block(),
    ]);
    // More instances and another description: no instance changes.
    let mut described = web(3, "v1");
    described.description = "now three".into();
    chain.run_steps(vec![
        tx("alice", update_app(described, 1, flux(1_000))),
        block(),
    ]);
    assert_eq!(rollout(&chain), None);
    assert_eq!(greetings(&chain), ["v1", "v1", "v1"]);

    chain.run_steps(vec![
        tx("alice", update_app(web(3, "v2"), 1, flux(1_000))),
        block(),
    ]);
    let started = rollout(&chain).expect("a rollout");
    // Growing mid-rollout: the new slot runs v2 at once, and the rollout
    // (three slots) goes on as it was.
    chain.run_steps(vec![
        tx("alice", update_app(web(4, "v2"), 1, flux(1_000))),
        block(),
    ]);
    assert_eq!(rollout(&chain), Some(started.clone()));
    assert_eq!(greetings(&chain), ["v2", "v1", "v1", "v2"]);
    // Shrinking to two: slot 2 goes, and the rollout ends with slot 1.
    chain.run_steps(vec![
        tx("alice", update_app(web(2, "v2"), 1, flux(1_000))),
        block(),
    ]);
    assert_eq!(greetings(&chain), ["v2", "v1"]);
    block_at(&mut chain, started.started_ms + ROLL_MS);
    assert_eq!(greetings(&chain), ["v2", "v2"]);
    assert_eq!(rollout(&chain), None);
}

#[test]
fn slots_the_previous_spec_did_not_have_run_the_new_spec_at_once() {
    let mut chain = check(rolling_genesis(), three_nodes());
    chain.run_steps(vec![
        tx("alice", register_app(web(1, "v1"), 1, flux(1_000))),
        block(),
        tx("alice", update_app(web(3, "v2"), 1, flux(1_000))),
        block(),
    ]);
    // One slot to switch, in the update's own block: nothing is left to roll.
    assert_eq!(greetings(&chain), ["v2", "v2", "v2"]);
    assert_eq!(rollout(&chain), None);
}

#[test]
fn replaying_the_blocks_of_a_rollout_gives_the_same_state_roots() {
    let (mut chain, t) = updated_to_v2();
    block_at(&mut chain, t + ROLL_MS + 10);
    chain.run_steps(vec![
        tx("alice", update_app(web(3, "v3"), 1, flux(1_000))),
        block(),
    ]);
    block_at(&mut chain, t + 3 * ROLL_MS);
    assert_eq!(rollout(&chain), None);
    let (mut replayed, _) = State::from_genesis(&rolling_genesis()).unwrap();
    for block in &chain.blocks {
        replayed = apply_block(&replayed, block)
            .expect("the chain's own blocks apply")
            .state;
        assert_eq!(replayed.state_root(), block.header.state_root);
    }
    assert_same_state(&replayed, &chain.state);
}
