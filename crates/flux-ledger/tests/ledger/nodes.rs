//! Node registration (collateral per tier) and deregistration.

use flux_ledger::{NodeStatus, ReceiptDetail};
use flux_types::{PublicKey, Tier, TxBody};

use crate::harness::*;

#[test]
fn registering_locks_the_collateral_of_each_tier_from_params() {
    let chain = check(
        genesis(&[("olga", flux(1_000))]),
        vec![
            tx("olga", register_node("n1", Tier::Cumulus)),
            tx("olga", register_node("n2", Tier::Nimbus)),
            tx(
                "olga",
                register_node_at("n3", Tier::Stratus, "[2001:db8::1]:16127", "NA_US_CA"),
            ),
            block(),
        ],
    );
    let params = chain.params();
    let collateral = |tier| params.tier(tier).collateral;
    let total = [Tier::Cumulus, Tier::Nimbus, Tier::Stratus]
        .into_iter()
        .fold(flux(0), |sum, tier| plus(sum, collateral(tier)));
    assert_eq!(total, flux(10 + 125 + 400), "the devnet collateral");
    let olga = chain.account("olga");
    assert_eq!(olga.locked, total);
    assert_eq!(olga.balance, minus(minus(flux(1_000), total), fees(3)));

    let node = chain.state.node(&addr("n3")).expect("registered");
    assert_eq!(node.id, addr("n3"));
    assert_eq!(node.owner, addr("olga"));
    assert_eq!(node.node_key, key("n3").public_key());
    assert_eq!(node.tier, Tier::Stratus);
    assert_eq!(node.collateral, collateral(Tier::Stratus));
    assert_eq!(node.endpoint, "[2001:db8::1]:16127");
    assert_eq!(node.region, "NA_US_CA");
    assert_eq!(node.status, NodeStatus::Pending);
    assert_eq!(node.registered_height, 1);
    assert_eq!(chain.state.nodes().count(), 3);
    assert_eq!(
        chain.receipts[1].detail,
        ReceiptDetail::NodeRegistered {
            node: addr("n2"),
            collateral: collateral(Tier::Nimbus)
        }
    );
}

#[test]
fn mainnet_collateral_follows_the_design_table() {
    let mut params = flux_types::Params::mainnet();
    params.tx_fee_min = fee();
    let chain = check(
        genesis_with(params, &[("olga", flux(60_000))]),
        vec![
            tx("olga", register_node("n1", Tier::Cumulus)),
            tx("olga", register_node("n2", Tier::Nimbus)),
            tx("olga", register_node("n3", Tier::Stratus)),
            tx("olga", register_node("n4", Tier::Stratus)).fails_with(
                "insufficient_collateral",
                "registering a stratus node locks 40000.00 FLUX",
            ),
            block(),
        ],
    );
    assert_eq!(chain.account("olga").locked, flux(1_000 + 12_500 + 40_000));
}

#[test]
fn refused_registrations_name_the_reason() {
    let chain = check(
        genesis(&[("olga", flux(100)), ("poor", flux(10))]),
        vec![
            tx("olga", register_node("n1", Tier::Cumulus)),
            tx("olga", register_node("n1", Tier::Cumulus)).fails("node_exists"),
            block(),
            tx("olga", register_node("n1", Tier::Nimbus)).fails("node_exists"),
            tx("poor", register_node("n1", Tier::Cumulus)).fails("node_exists"),
            tx(
                "olga",
                register_node_at("n2", Tier::Cumulus, "203.0.113.7", "EU_CZ"),
            )
            .fails_with("invalid_node_info", "has no port"),
            tx(
                "olga",
                register_node_at("n2", Tier::Cumulus, "bad host:80", "EU_CZ"),
            )
            .fails_with("invalid_node_info", "invalid host"),
            tx(
                "olga",
                register_node_at("n2", Tier::Cumulus, "203.0.113.7:16127", "XX_CZ"),
            )
            .fails_with("invalid_node_info", "unknown continent"),
            tx(
                "olga",
                register_node_at("n2", Tier::Cumulus, "203.0.113.7:16127", "Europe"),
            )
            .fails_with("invalid_node_info", "region 'Europe'"),
            tx("olga", register_node("n2", Tier::Stratus)).fails_with(
                "insufficient_collateral",
                "registering a stratus node locks 400.00 FLUX",
            ),
            // Ten FLUX is the collateral but the fee comes on top.
            tx("poor", register_node("n3", Tier::Cumulus)).fails("insufficient_collateral"),
            tx(
                "olga",
                TxBody::NodeRegister {
                    node_key: not_a_key(),
                    tier: Tier::Cumulus,
                    endpoint: "203.0.113.7:16127".into(),
                    region: "EU_CZ".into(),
                },
            )
            .fails_with("invalid_node_info", "node key"),
            block(),
        ],
    );
    assert_eq!(chain.state.nodes().count(), 1);
    assert_eq!(chain.account("poor").locked, flux(0));
}

/// 32 bytes that are not a point of the curve.
fn not_a_key() -> PublicKey {
    (0u8..=255)
        .map(|b| PublicKey([b; 32]))
        .find(|key| !key.is_valid())
        .expect("half of all encodings are not points")
}

#[test]
fn locked_collateral_cannot_be_spent() {
    let chain = check(
        genesis(&[("olga", flux(15))]),
        vec![
            tx("olga", register_node("n1", Tier::Cumulus)),
            block(),
            tx("olga", transfer("bob", flux(5))).fails("insufficient_funds"),
            tx("olga", transfer("bob", minus(flux(5), fees(2)))),
            block(),
        ],
    );
    assert_eq!(chain.account("olga").balance, flux(0));
    assert_eq!(chain.account("olga").locked, flux(10));
}

#[test]
fn deregistering_unlocks_the_collateral_for_the_owner_only() {
    let chain = check(
        genesis(&[("olga", flux(200)), ("mallory", flux(10))]),
        vec![
            tx("olga", register_node("n1", Tier::Nimbus)),
            tx("olga", register_node("n2", Tier::Cumulus)),
            block(),
            tx("mallory", deregister_node("n1")).fails_with("not_node_owner", "only its owner"),
            tx("olga", deregister_node("n9")).fails("node_not_found"),
            tx("olga", deregister_node("n1")),
            tx("olga", deregister_node("n1")).fails("node_not_found"),
            block(),
        ],
    );
    let olga = chain.account("olga");
    assert_eq!(olga.locked, flux(10));
    assert_eq!(olga.balance, minus(flux(190), fees(3)));
    assert!(chain.state.node(&addr("n1")).is_none());
    assert!(chain.state.node(&addr("n2")).is_some());
    assert_eq!(
        chain.last_receipt().detail,
        ReceiptDetail::NodeDeregistered {
            node: addr("n1"),
            unlocked: flux(125)
        }
    );
}

#[test]
fn a_node_can_register_again_after_leaving() {
    let chain = check(
        genesis(&[("olga", flux(200)), ("other", flux(200))]),
        vec![
            tx("olga", register_node("n1", Tier::Nimbus)),
            block(),
            tx("olga", deregister_node("n1")),
            tx("other", register_node("n1", Tier::Cumulus)),
            block(),
        ],
    );
    let node = chain.state.node(&addr("n1")).unwrap();
    assert_eq!(
        (node.owner, node.tier, node.registered_height),
        (addr("other"), Tier::Cumulus, 2)
    );
    assert_eq!(chain.account("olga").locked, flux(0));
    assert_eq!(chain.account("other").locked, flux(10));
}

#[test]
fn deregistering_pays_the_fee_from_the_unlocked_collateral() {
    // Everything liquid went into the collateral and the fee: leaving must
    // still be possible.
    let chain = check(
        genesis(&[("olga", plus(flux(10), fees(1)))]),
        vec![
            tx("olga", register_node("n1", Tier::Cumulus)),
            block(),
            then(|c| assert_eq!(c.balance("olga"), flux(0))),
            tx("olga", deregister_node("n1")),
            block(),
        ],
    );
    assert_eq!(chain.account("olga").locked, flux(0));
    assert_eq!(chain.balance("olga"), minus(flux(10), fee()));
}
