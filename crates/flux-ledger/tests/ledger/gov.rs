//! Governance: proposals, snapshotted voting power, outcomes and deposits,
//! and the activation of what passed at the promised height.

use flux_ledger::{
    Activation, DepositFate, Event, ProposalStatus, ReceiptDetail, Rejection, quote,
};
use flux_types::{Amount, Params, ProposalAction, Tier, VoteChoice};

use crate::harness::*;

use VoteChoice::{Abstain, No, Yes};

const VOTING_MS: u64 = 30_000;

fn deposit() -> Amount {
    Params::devnet().gov.proposal_deposit
}

/// Devnet params: 30 s of voting, quorum 30 %, an activation delay of 2 blocks.
fn gov_genesis(accounts: &[(&str, Amount)]) -> flux_types::Genesis {
    let params = Params::devnet();
    assert_eq!(params.gov.voting_period_ms, VOTING_MS);
    genesis_with(params, accounts)
}

fn text() -> ProposalAction {
    ProposalAction::Text
}

#[test]
fn a_price_change_takes_effect_exactly_at_its_activation_height() {
    let spec = app_4_12("shop", "carol");
    let old = quote(&Params::devnet(), &spec, 1).unwrap().total;
    assert_eq!(old, amount("4.12"));
    let mut chain = check(
        gov_genesis(&[("alice", flux(1_000_000)), ("carol", flux(100))]),
        vec![
            tx(
                "alice",
                propose(
                    "Cheaper CPU",
                    param_change(&[("app_prices.cpu_per_tenth", "0.02")]),
                    deposit(),
                ),
            ),
            block(),
            then(|chain| {
                let receipt = chain.last_receipt();
                assert!(
                    matches!(
                        receipt.detail,
                        ReceiptDetail::ProposalSubmitted { proposal: 1, .. }
                    ),
                    "{receipt:?}"
                );
                let proposal = chain.proposal(1);
                assert_eq!(proposal.status, ProposalStatus::Open);
                assert_eq!(proposal.voting_ends_ms, chain.state.time_ms() + VOTING_MS);
                assert_eq!(
                    chain.balance("alice"),
                    minus(flux(1_000_000), plus(deposit(), fee()))
                );
                assert_eq!(chain.balance("@deposits"), deposit());
            }),
            tx("alice", vote(1, Yes)),
            block(),
        ],
    );
    chain.close_vote(1, 5_000);
    let proposal = chain.proposal(1);
    assert_eq!(proposal.status, ProposalStatus::Passed);
    assert_eq!(proposal.deposit_fate, DepositFate::Returned);
    let closed = proposal.closed_height.unwrap();
    let height = chain.activation_height(1);
    assert_eq!(
        height,
        closed + Params::devnet().gov.activation_delay_blocks
    );
    assert_eq!(chain.balance("@deposits"), Amount::ZERO);

    // The block before the activation height still charges the old price;
    // the block at the activation height the new one: 4 × (0.60 + 0.09 + 0.04).
    let expected = amount("2.92");
    chain.run_to_height(height - 2);
    chain.run_steps(vec![
        tx("carol", register_app(spec.clone(), 1, expected))
            .fails_with("underpaid", "price is 4.12"),
        block(),
    ]);
    assert_eq!(chain.state.height(), height - 1);
    assert_eq!(chain.params().app_prices.cpu_per_tenth, units(3_000_000));
    assert_eq!(chain.state.param_since("app_prices.cpu_per_tenth"), 0);
    chain.run_steps(vec![tx("carol", register_app(spec, 1, expected)), block()]);
    assert_eq!(chain.state.height(), height);
    assert!(matches!(
        chain.last_receipt().detail,
        ReceiptDetail::AppRegistered { price, .. } if price == expected
    ));
    assert_eq!(chain.params().app_prices.cpu_per_tenth, units(2_000_000));
    assert_eq!(chain.state.param_since("app_prices.cpu_per_tenth"), height);
    assert_eq!(chain.state.param_since("app_prices.ram_per_100_mb"), 0);
    assert_eq!(
        chain.proposal(1).activation,
        Some(Activation::Applied { height })
    );
    assert!(chain.events.contains(&Event::ProposalActivated {
        proposal: 1,
        kind: "param_change".into()
    }));
}

#[test]
fn out_of_range_and_malformed_proposals_are_refused_at_proposal_time() {
    let mut params = Params::devnet();
    params.gov.open_proposals_max = 1;
    let refused = |action: ProposalAction, code: &'static str, message: &str| {
        tx("alice", propose("change", action, deposit())).fails_with(code, message)
    };
    let chain = check(
        genesis_with(params, &[("alice", flux(1_000))]),
        vec![
            refused(
                param_change(&[("gov.quorum_percent", "0")]),
                "param_out_of_range",
                "1 to 100",
            ),
            refused(
                param_change(&[("app_prices.cpu_per_tenth", "5000")]),
                "param_out_of_range",
                "0.00 to 1000.00",
            ),
            refused(
                param_change(&[("app_prices.gpu", "1")]),
                "unknown_param",
                "flux chain params",
            ),
            refused(
                param_change(&[("block_txs_max", "soon")]),
                "malformed_param_value",
                "a whole number",
            ),
            refused(
                param_change(&[("tx_fee_min", "1"), ("tx_fee_min", "2")]),
                "duplicate_param",
                "twice",
            ),
            refused(
                param_change(&[("app_limits.instances_min", "500")]),
                "inconsistent_params",
                "instances_max",
            ),
            refused(param_change(&[]), "empty_param_change", "KEY=VALUE"),
            refused(image_policy(&[], &[]), "invalid_proposal", "names no image"),
            refused(
                image_policy(&["Bad Image"], &[]),
                "invalid_proposal",
                "not an image",
            ),
            refused(
                image_policy(&["nginx"], &["nginx"]),
                "invalid_proposal",
                "twice",
            ),
            refused(image_policy(&[], &["nginx"]), "image_not_blocked", "nginx"),
            refused(
                ProposalAction::TreasurySpend {
                    to: addr("alice"),
                    amount: flux(1),
                },
                "treasury_insufficient",
                "holds 0.00 FLUX",
            ),
            refused(
                ProposalAction::TreasurySpend {
                    to: addr("@pool"),
                    amount: flux(0),
                },
                "zero_amount",
                "greater than zero",
            ),
            tx("alice", propose(" ", text(), deposit())).fails_with("invalid_proposal", "title"),
            tx(
                "alice",
                propose("cheap", text(), minus(deposit(), units(1))),
            )
            .fails_with("deposit_too_low", "at least 10.00 FLUX"),
            tx("alice", propose("rich", text(), flux(2_000))).fails("insufficient_funds"),
            tx("alice", propose("first", text(), deposit())),
            tx("alice", propose("second", text(), deposit()))
                .fails_with("too_many_open_proposals", "1 proposals are open"),
            block(),
        ],
    );
    assert_eq!(chain.state.proposals().count(), 1);
    assert_eq!(
        chain.balance("alice"),
        minus(flux(1_000), plus(deposit(), fee()))
    );
}

#[test]
fn vote_power_is_taken_at_the_start_and_moving_coins_changes_nothing() {
    let mut params = Params::devnet();
    params.gov.collateral_weight_milli = 2_000;
    params.gov.balance_weight_milli = 500;
    let collateral = params.tier(Tier::Cumulus).collateral;
    let chain = check(
        genesis_with(
            params,
            &[
                ("alice", flux(600)),
                ("bob", flux(400)),
                ("carol", flux(100)),
                ("@treasury", flux(1_000)),
            ],
        ),
        vec![
            tx("bob", register_node("n1", Tier::Cumulus)),
            block(),
            tx("carol", propose("snapshot", text(), deposit())),
            // After the start: coins and collateral move, a new account appears.
            tx("alice", transfer("bob", flux(500))),
            tx("bob", deregister_node("n1")),
            tx("alice", transfer("dave", flux(50))),
            block(),
            tx("bob", vote(1, No)),
            tx("alice", vote(1, Yes)),
            tx("dave", vote(1, Yes)).fails_with("no_voting_power", "no voting power"),
            block(),
            then(move |chain| {
                // bob: (400 − 10 collateral − fee) × 0.5 + 10 × 2; alice: (600 − 0) × 0.5.
                let bob_liquid = minus(minus(flux(400), collateral), fee());
                let bob = plus(units(bob_liquid.as_units() / 2), flux(20));
                let alice = flux(300);
                assert_eq!(chain.state.voting_power(1, &addr("bob")), Some(bob));
                assert_eq!(chain.state.voting_power(1, &addr("alice")), Some(alice));
                assert_eq!(
                    chain.state.voting_power(1, &addr("dave")),
                    Some(Amount::ZERO)
                );
                let tally = &chain.proposal(1).tally;
                assert_eq!((tally.yes, tally.no, tally.voters), (alice, bob, 2));
                // Everyone's power at the start, module accounts left out.
                let carol = units(minus(minus(flux(100), deposit()), fee()).as_units() / 2);
                let validator = units(fee().as_units() / 2);
                let total = chain.proposal(1).total_power;
                assert_eq!(total, plus(plus(plus(alice, bob), carol), validator));
                assert_eq!(chain.state.vote(1, &addr("bob")).unwrap().power, bob);
            }),
        ],
    );
    assert!(
        chain.rows_with_prefix(13) > 0,
        "changes during the vote are recorded"
    );
    let mut chain = chain;
    chain.close_vote(1, 10_000);
    assert_eq!(chain.proposal(1).status, ProposalStatus::Passed);
    assert_eq!(chain.rows_with_prefix(13), 0, "snapshots end with the vote");
}

#[test]
fn quorum_missed_burns_the_deposit_and_a_vote_against_returns_it() {
    let supply = flux(1_000 + 300 + 200);
    let mut chain = check(
        gov_genesis(&[
            ("alice", flux(1_000)),
            ("bob", flux(300)),
            ("carol", flux(200)),
        ]),
        vec![
            tx("bob", propose("ignored", text(), deposit())),
            tx("carol", propose("opposed", text(), deposit())),
            tx("alice", propose("abstained", text(), deposit())),
            block(),
            // bob alone is below 30 % of the power.
            tx("bob", vote(1, Yes)),
            tx("alice", vote(2, No)),
            tx("carol", vote(2, Yes)),
            tx("alice", vote(3, Abstain)),
            block(),
        ],
    );
    chain.close_vote(1, 10_000);
    let ignored = chain.proposal(1);
    assert_eq!(ignored.status, ProposalStatus::Rejected);
    assert_eq!(ignored.rejection, Some(Rejection::QuorumMissed));
    assert_eq!(ignored.deposit_fate, DepositFate::Burned);
    assert!(!ignored.quorum_reached());
    assert_eq!(chain.state.total_supply(), minus(supply, deposit()));
    assert_eq!(
        chain.balance("bob"),
        minus(flux(300), plus(deposit(), fees(2)))
    );

    let opposed = chain.proposal(2);
    assert_eq!(opposed.rejection, Some(Rejection::NotEnoughYes));
    assert_eq!(opposed.deposit_fate, DepositFate::Returned);
    assert_eq!(chain.balance("carol"), minus(flux(200), fees(2)));

    // Abstaining counts toward quorum; yes does not outweigh no (0 = 0).
    let abstained = chain.proposal(3);
    assert_eq!(abstained.rejection, Some(Rejection::NotEnoughYes));
    assert_eq!(abstained.deposit_fate, DepositFate::Returned);
    assert_eq!(chain.balance("@deposits"), Amount::ZERO);
    assert!(chain.events.iter().any(|e| matches!(
        e,
        Event::ProposalClosed {
            proposal: 1,
            deposit_fate: DepositFate::Burned,
            ..
        }
    )));
}

#[test]
fn votes_change_until_the_end_and_not_after() {
    let mut chain = check(
        gov_genesis(&[("alice", flux(1_000)), ("bob", flux(100))]),
        vec![
            tx("bob", propose("change my mind", text(), deposit())),
            block(),
            tx("alice", vote(1, No)),
            block(),
            tx("alice", vote(1, Yes)),
            block(),
            then(|chain| {
                let tally = &chain.proposal(1).tally;
                // The power of the first vote, from before its fee, is kept.
                assert_eq!(
                    (tally.yes, tally.no, tally.voters),
                    (flux(1_000), Amount::ZERO, 1)
                );
                assert!(matches!(
                    chain.last_receipt().detail,
                    ReceiptDetail::Voted {
                        changed_from: Some(No),
                        choice: Yes,
                        ..
                    }
                ));
            }),
            tx("alice", vote(2, Yes)).fails_with("proposal_not_found", "flux gov list"),
        ],
    );
    chain.close_vote(1, 10_000);
    assert_eq!(chain.proposal(1).status, ProposalStatus::Passed);
    chain.run_steps(vec![
        tx("alice", vote(1, No)).fails_with("voting_closed", "closed"),
        block(),
    ]);
}

#[test]
fn a_blocked_image_is_refused_at_deploy_and_flags_running_apps() {
    let mut running = app("shop", "bob", 1, vec![component(5, 300, 1)]);
    running.components[0].repotag = "docker.io/library/nginx:1.25".into();
    let price = amount("0.184");
    let mut chain = check(
        gov_genesis(&[("alice", flux(1_000)), ("bob", flux(100))]),
        vec![
            tx("bob", register_app(running.clone(), 1, price)),
            tx(
                "alice",
                propose("no nginx", image_policy(&["library/nginx"], &[]), deposit()),
            ),
            block(),
            tx("alice", vote(1, Yes)),
            block(),
        ],
    );
    chain.close_vote(1, 10_000);
    let height = chain.activation_height(1);
    chain.run_to_height(height - 1);
    assert!(chain.state.app_blocked("shop").is_none());
    chain.run_steps(vec![block()]);
    let blocked = chain.state.app_blocked("SHOP").expect("the app is flagged");
    assert_eq!(blocked.entry, "nginx");
    assert_eq!(blocked.since_height, height);
    assert!(chain.events.contains(&Event::AppBlocked {
        app: "shop".into(),
        image: "docker.io/library/nginx:1.25".into(),
        entry: "nginx".into(),
    }));
    assert_eq!(
        chain.state.image_blocked("nginx:1.27").as_deref(),
        Some("nginx")
    );

    let mut fresh = app("blog", "bob", 1, vec![component(5, 300, 1)]);
    fresh.components[0].repotag = "nginx:1.26".into();
    let mut other = fresh.clone();
    other.components[0].repotag = "caddy:2".into();
    let mut moved = running.clone();
    moved.components[0].repotag = "caddy:2".into();
    chain.run_steps(vec![
        tx("bob", register_app(fresh, 1, price)).fails_with(
            "image_blocked",
            "image nginx:1.26 is on the network's blocklist",
        ),
        tx("bob", update_app(running, 1, price)).fails("image_blocked"),
        tx("bob", register_app(other, 1, price)),
        // Moving off the blocked image clears the flag.
        tx("bob", update_app(moved, 1, price)),
        tx(
            "alice",
            propose("again", image_policy(&["nginx"], &[]), deposit()),
        )
        .fails("image_already_blocked"),
        block(),
    ]);
    assert!(chain.state.app_blocked("shop").is_none());
    assert_eq!(chain.state.blocked_apps().count(), 0);

    // Unblocking takes it off the list.
    chain.run_steps(vec![
        tx(
            "alice",
            propose("nginx is fine", image_policy(&[], &["nginx"]), deposit()),
        ),
        block(),
        tx("alice", vote(2, Yes)),
        block(),
    ]);
    chain.close_vote(2, 10_000);
    let height = chain.activation_height(2);
    chain.run_to_height(height);
    assert_eq!(chain.state.blocked_images().count(), 0);
    assert_eq!(chain.state.image_blocked("nginx:1.25"), None);
}

#[test]
fn the_treasury_is_never_overdrawn() {
    let spend = |amount: Amount| ProposalAction::TreasurySpend {
        to: addr("carol"),
        amount,
    };
    let mut chain = check(
        gov_genesis(&[("alice", flux(1_000)), ("@treasury", flux(100))]),
        vec![
            tx("alice", propose("too much", spend(flux(150)), deposit()))
                .fails_with("treasury_insufficient", "holds 100.00 FLUX"),
            tx("alice", propose("first", spend(flux(60)), deposit())),
            tx("alice", propose("second", spend(flux(60)), deposit())),
            block(),
            tx("alice", vote(1, Yes)),
            tx("alice", vote(2, Yes)),
            block(),
        ],
    );
    chain.close_vote(2, 10_000);
    chain.run_to_height(chain.activation_height(2));
    let height = chain.activation_height(1);
    assert_eq!(
        chain.proposal(1).activation,
        Some(Activation::Applied { height })
    );
    let failed = chain.proposal(2).activation.clone();
    assert!(
        matches!(&failed, Some(Activation::Failed { reason, .. }) if reason.contains("holds 40.00 FLUX")),
        "{failed:?}"
    );
    assert!(
        chain
            .events
            .iter()
            .any(|e| matches!(e, Event::ProposalActivationFailed { proposal: 2, .. }))
    );
    assert_eq!(chain.balance("@treasury"), flux(40));
    assert_eq!(chain.balance("carol"), flux(60));
}

#[test]
fn governance_params_govern_themselves() {
    let mut chain = check(
        gov_genesis(&[("alice", flux(1_000))]),
        vec![
            tx(
                "alice",
                propose(
                    "longer votes, bigger deposits",
                    param_change(&[
                        ("gov.voting_period_ms", "60000"),
                        ("gov.proposal_deposit", "20"),
                    ]),
                    deposit(),
                ),
            ),
            block(),
            tx("alice", vote(1, Yes)),
            block(),
        ],
    );
    chain.close_vote(1, 10_000);
    chain.run_to_height(chain.activation_height(1));
    assert_eq!(chain.params().gov.voting_period_ms, 60_000);
    chain.run_steps(vec![
        tx("alice", propose("cheap", text(), deposit())).fails("deposit_too_low"),
        tx("alice", propose("priced", text(), flux(20))),
        block(),
    ]);
    let proposal = chain.proposal(2);
    assert_eq!(proposal.voting_ends_ms - proposal.voting_starts_ms, 60_000);
}
