//! App registration, pricing, updates with credit, removal and expiry.

use flux_ledger::{Event, ReceiptDetail, quote};
use flux_types::{AppSpec, Params};

use crate::harness::*;

fn month_ms() -> u64 {
    Params::devnet().month_ms
}

/// A component named `name` publishing `ports` (container ports 1, 2, …).
fn component_on(
    name: &str,
    ports: &[u16],
    cpu_tenths: u32,
    ram_mb: u32,
    hdd_gb: u32,
) -> flux_types::Component {
    let mut c = component(cpu_tenths, ram_mb, hdd_gb);
    c.name = name.into();
    c.ports = ports.to_vec();
    c.container_ports = (1..=ports.len() as u16).collect();
    c
}

#[test]
fn price_follows_the_flux_table() {
    let params = Params::mainnet();
    let one = |c| app("priced", "alice", 1, vec![c]);
    let pinned = {
        let mut spec = one(component(5, 300, 1));
        spec.nodes = vec![addr("n1")];
        spec
    };
    let static_ip = {
        let mut spec = one(component(5, 300, 1));
        spec.static_ip = true;
        spec
    };
    // (spec, months, per instance and month, extras per month, total), in FLUX.
    let cases: Vec<(AppSpec, u32, &str, &str, &str)> = vec![
        // 0.03 per 0.1 CPU, 0.01 per 100 MB, 0.004 per GB: 0.044, raised to the minimum.
        (one(component(1, 100, 1)), 1, "0.044", "0", "0.1"),
        (one(component(1, 100, 1)), 3, "0.044", "0", "0.3"),
        // 4 instances of 0.90 + 0.09 + 0.04.
        (app_4_12("priced", "alice"), 1, "1.03", "0", "4.12"),
        (app_4_12("priced", "alice"), 3, "1.03", "0", "12.36"),
        (app_4_12("priced", "alice"), 12, "1.03", "0", "49.44"),
        // Components add up: (0.15 + 0.03 + 0.004) + (0.30 + 0.10 + 0.08), times 3 instances.
        (
            app(
                "priced",
                "alice",
                3,
                vec![
                    component_on("web", &[31_000], 5, 300, 1),
                    component_on("db", &[31_001], 10, 1_000, 20),
                ],
            ),
            1,
            "0.664",
            "0",
            "1.992",
        ),
        // A port outside the standard range is an enterprise port: 2 FLUX per port, per app, per month.
        (
            one(component_on("web", &[80], 5, 300, 1)),
            1,
            "0.184",
            "2",
            "2.184",
        ),
        (
            one(component_on("web", &[80, 443, 40_000], 5, 300, 1)),
            2,
            "0.184",
            "6",
            "12.368",
        ),
        (
            app(
                "priced",
                "alice",
                2,
                vec![component_on("web", &[80], 5, 300, 1)],
            ),
            1,
            "0.184",
            "2",
            "2.368",
        ),
        // The edges of the standard range are standard.
        (
            one(component_on("web", &[31_000, 39_999], 5, 300, 1)),
            1,
            "0.184",
            "0",
            "0.184",
        ),
        (
            one(component_on("web", &[30_999], 5, 300, 1)),
            1,
            "0.184",
            "2",
            "2.184",
        ),
        (pinned, 1, "0.184", "6", "6.184"),
        (static_ip, 1, "0.184", "3", "3.184"),
    ];
    for (spec, months, per_instance, extras, total) in cases {
        spec.validate(&params.app_limits).expect("a valid spec");
        let q = quote(&params, &spec, months).unwrap();
        let what = format!(
            "{} instances, {:?}, {months} months",
            spec.instances, spec.components
        );
        assert_eq!(q.per_instance_month, amount(per_instance), "{what}");
        assert_eq!(q.extras_month, amount(extras), "{what}");
        assert_eq!(q.total, amount(total), "{what}");
        assert_eq!(
            q.per_month.checked_mul(u64::from(months)),
            Some(q.total),
            "{what}"
        );
        assert_eq!(q.months, months);
    }
}

#[test]
fn the_period_must_be_within_limits() {
    let params = Params::devnet();
    let spec = app_4_12("shop", "alice");
    for months in [0, 13] {
        let error = quote(&params, &spec, months).unwrap_err();
        assert_eq!(error.code(), "months_out_of_range");
        assert_eq!(
            error.to_string(),
            format!("the period must be between 1 and 12 months, got {months}")
        );
    }
    check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx("alice", register_app(spec.clone(), 0, flux(100))).fails("months_out_of_range"),
            tx("alice", register_app(spec, 13, flux(100))).fails("months_out_of_range"),
        ],
    );
}

#[test]
fn registering_charges_the_price_not_the_maximum() {
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 2, flux(50)),
            ),
            block(),
        ],
    );
    let price = amount("8.24");
    assert_eq!(
        chain.balance("alice"),
        minus(minus(flux(100), price), fee())
    );
    assert_eq!(chain.balance("@pool"), price);
    let block_time = chain.state.time_ms();
    let record = chain.state.app("shop").expect("registered");
    assert_eq!(record.spec, app_4_12("shop", "alice"));
    assert_eq!(record.period_start_ms, block_time);
    assert_eq!(record.expires_at_ms, block_time + 2 * month_ms());
    assert_eq!(record.paid, price);
    assert_eq!(record.months, 2);
    assert_eq!((record.registered_height, record.updated_height), (1, 1));
    assert_eq!(
        chain.last_receipt().detail,
        ReceiptDetail::AppRegistered {
            app: "shop".into(),
            price,
            expires_at_ms: block_time + 2 * month_ms()
        }
    );
}

#[test]
fn an_underpaid_registration_states_the_price() {
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, amount("3")),
            )
            .fails_with("underpaid", "price is 4.12 FLUX for 1 month, you paid 3.00"),
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 3, amount("12.35")),
            )
            .fails_with(
                "underpaid",
                "price is 12.36 FLUX for 3 months, you paid 12.35",
            ),
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, amount("4.12")),
            ),
            block(),
        ],
    );
    assert_eq!(chain.balance("alice"), minus(amount("95.88"), fee()));
}

#[test]
fn an_invalid_spec_is_refused_naming_the_field() {
    let with = |change: fn(&mut AppSpec)| {
        let mut spec = app("shop", "alice", 1, vec![component(5, 300, 1)]);
        change(&mut spec);
        register_app(spec, 1, flux(50))
    };
    type Change = fn(&mut AppSpec);
    let cases: Vec<(Change, &str)> = vec![
        (|s| s.components[0].cpu_tenths = 0, "compose[0].cpu"),
        (|s| s.components[0].cpu_tenths = 151, "compose[0].cpu"),
        (|s| s.components[0].ram_mb = 150, "compose[0].ram"),
        (|s| s.components[0].hdd_gb = 0, "compose[0].hdd"),
        (|s| s.components[0].ports = vec![16_127], "compose[0].ports"),
        (
            |s| s.components[0].repotag = "nginx".into(),
            "compose[0].repotag",
        ),
        (
            |s| s.components[0].environment = vec!["NOVALUE".into()],
            "compose[0].environmentParameters[0]",
        ),
        (
            |s| s.components[0].container_data = "data".into(),
            "compose[0].containerData",
        ),
        (|s| s.instances = 0, "instances"),
        (|s| s.instances = 101, "instances"),
        (|s| s.name = "ab".into(), "name"),
        (|s| s.name = "fluxshop".into(), "name"),
        (|s| s.name = "my-shop".into(), "name"),
        (|s| s.geolocation = vec!["acXX".into()], "geolocation[0]"),
        (|s| s.components.clear(), "compose"),
        (
            |s| {
                let mut second = s.components[0].clone();
                second.name = "db".into();
                second.ports = vec![31_001];
                second.cpu_tenths = 150;
                s.components.push(second);
            },
            "cpu",
        ),
    ];
    let steps = cases
        .into_iter()
        .map(|(change, field)| {
            tx("alice", with(change)).fails_with(
                "invalid_spec",
                &format!("invalid app specification: {field}: "),
            )
        })
        .collect();
    let chain = check(genesis(&[("alice", flux(100))]), steps);
    assert_eq!(chain.state.apps().count(), 0);
}

#[test]
fn names_and_owners_are_checked() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(100))]),
        vec![
            // The spec names bob as the owner but alice signs.
            tx("alice", register_app(app_4_12("shop", "bob"), 1, flux(10)))
                .fails_with("owner_mismatch", "sign with the owner's key"),
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            ),
            tx("bob", register_app(app_4_12("shop", "bob"), 1, flux(10))).fails("app_exists"),
            block(),
            tx("bob", register_app(app_4_12("shop", "bob"), 1, flux(10)))
                .fails_with("app_exists", "'shop' already exists"),
            // A name is a host name: case does not make it another app.
            tx("bob", register_app(app_4_12("Shop", "bob"), 1, flux(10))).fails("app_exists"),
            tx("bob", register_app(app_4_12("shop2", "bob"), 1, flux(10))),
            block(),
        ],
    );
    assert_eq!(chain.state.apps().count(), 2);
    assert_eq!(
        chain.state.app("SHOP").map(|a| a.spec.owner),
        Some(addr("alice"))
    );
}

#[test]
fn an_app_costs_what_the_signer_can_pay() {
    check(
        genesis(&[("alice", flux(4))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            )
            .fails_with("insufficient_funds", "needs 4.1201 FLUX"),
        ],
    );
}

#[test]
fn an_update_credits_the_unused_part_exactly() {
    // Registered for two months, updated half a month later: three quarters
    // of the 8.24 paid are unused.
    let half_month = month_ms() / 2;
    let bigger = app("shop", "alice", 8, vec![component(30, 900, 10)]);
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 2, flux(10)),
            ),
            block(),
            advance(half_month - 1_000),
            tx("alice", update_app(bigger.clone(), 1, amount("2.05")))
                .fails_with("underpaid", "price is 2.06 FLUX for 1 month, you paid 2.05"),
            tx("alice", update_app(bigger.clone(), 1, amount("2.06"))),
            block(),
        ],
    );
    let now = chain.state.time_ms();
    assert_eq!(now, chain.blocks[0].header.timestamp_ms + half_month);
    assert_eq!(
        chain.last_receipt().detail,
        ReceiptDetail::AppUpdated {
            app: "shop".into(),
            price: amount("8.24"),
            credit: amount("6.18"),
            charged: amount("2.06"),
            expires_at_ms: now + month_ms(),
        }
    );
    assert_eq!(
        chain.balance("alice"),
        minus(minus(flux(100), amount("10.30")), fees(2))
    );
    assert_eq!(chain.balance("@pool"), amount("10.30"));
    let record = chain.state.app("shop").unwrap();
    assert_eq!(record.spec, bigger);
    assert_eq!(
        (record.period_start_ms, record.expires_at_ms),
        (now, now + month_ms())
    );
    assert_eq!((record.months, record.paid), (1, amount("8.24")));
    assert_eq!((record.registered_height, record.updated_height), (1, 2));
}

#[test]
fn an_update_credit_is_rounded_down_to_the_unit() {
    let elapsed = month_ms() / 3 + 7;
    let spec = app_4_12("shop", "alice");
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx("alice", register_app(spec.clone(), 1, flux(10))),
            block(),
            advance(elapsed - 1_000),
            tx("alice", update_app(spec, 1, flux(10))),
            block(),
        ],
    );
    let paid = 412_000_000u128;
    let period = u128::from(month_ms());
    let remaining = period - u128::from(elapsed);
    let credit = (paid * remaining / period) as u64;
    let ReceiptDetail::AppUpdated {
        credit: got,
        charged,
        ..
    } = &chain.last_receipt().detail
    else {
        panic!("an update receipt");
    };
    assert_eq!(got.as_units(), credit);
    assert_eq!(charged.as_units(), 412_000_000 - credit);
    assert_eq!(
        chain.balance("@pool").as_units(),
        412_000_000 + 412_000_000 - credit
    );
}

#[test]
fn a_credit_above_the_new_price_charges_nothing() {
    let small = app("shop", "alice", 1, vec![component(1, 100, 1)]);
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 2, flux(10)),
            ),
            block(),
            tx("alice", update_app(small.clone(), 1, flux(0))),
            block(),
        ],
    );
    let ReceiptDetail::AppUpdated { price, charged, .. } = &chain.last_receipt().detail else {
        panic!("an update receipt");
    };
    assert_eq!((*price, *charged), (amount("0.1"), flux(0)));
    assert_eq!(
        chain.balance("alice"),
        minus(minus(flux(100), amount("8.24")), fees(2))
    );
    // The next credit is based on the value of the new period.
    assert_eq!(chain.state.app("shop").unwrap().paid, amount("0.1"));
}

#[test]
fn only_the_owner_updates_or_removes() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            ),
            block(),
            tx("bob", update_app(app_4_12("shop", "bob"), 1, flux(10)))
                .fails_with("not_app_owner", "only its owner can change it"),
            tx("bob", update_app(app_4_12("shop", "alice"), 1, flux(10))).fails("owner_mismatch"),
            tx("bob", remove_app("shop")).fails("not_app_owner"),
            tx("alice", update_app(app_4_12("other", "alice"), 1, flux(10))).fails("app_not_found"),
            tx("alice", remove_app("other")).fails_with("app_not_found", "no app named 'other'"),
            tx(
                "alice",
                update_app(
                    app("shop", "alice", 1, vec![component(0, 100, 1)]),
                    1,
                    flux(10),
                ),
            )
            .fails_with("invalid_spec", "compose[0].cpu"),
            block(),
        ],
    );
    assert_eq!(
        chain.state.app("shop").unwrap().spec,
        app_4_12("shop", "alice")
    );
}

#[test]
fn removing_an_app_refunds_nothing_and_frees_the_name() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            ),
            block(),
            tx("alice", remove_app("shop")),
            tx("alice", remove_app("shop")).fails("app_not_found"),
            block(),
            then(|c| {
                assert!(c.state.app("shop").is_none());
                assert_eq!(
                    c.last_receipt().detail,
                    ReceiptDetail::AppRemoved { app: "shop".into() }
                );
                assert_eq!(c.balance("alice"), minus(amount("95.88"), fees(2)));
                assert_eq!(c.balance("@pool"), amount("4.12"));
            }),
            tx("bob", register_app(app_4_12("shop", "bob"), 1, flux(10))),
            block(),
        ],
    );
    assert_eq!(chain.state.app("shop").unwrap().spec.owner, addr("bob"));
    assert!(chain.events.is_empty(), "a removal is not an expiry");
}

#[test]
fn an_app_expires_by_chain_time_and_nothing_else_changes() {
    // One-millisecond blocks, so that blocks land exactly around the expiry.
    let mut params = Params::devnet();
    params.block_interval_ms = 1;
    params.block_interval_busy_ms = 1;
    let month = params.month_ms;
    let mut chain = check(
        genesis_with(params, &[("alice", flux(100)), ("bob", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            ),
            tx(
                "bob",
                register_app(
                    app("late", "bob", 1, vec![component(1, 100, 1)]),
                    2,
                    flux(10),
                ),
            ),
            block(),
            // The block one millisecond before the expiry keeps it.
            advance(month - 2),
            block(),
            then(|c| {
                assert!(c.state.app("shop").is_some());
                assert!(c.events.is_empty());
            }),
        ],
    );
    let expires = chain.state.app("shop").unwrap().expires_at_ms;
    assert_eq!(expires, chain.state.time_ms() + 1);
    let before = chain.state.clone();
    chain.run_steps(vec![block()]);
    assert_eq!(chain.state.time_ms(), expires);
    assert_eq!(
        chain.events,
        vec![Event::AppExpired {
            app: "shop".into(),
            owner: addr("alice")
        }]
    );
    assert!(chain.state.app("shop").is_none());
    assert!(chain.state.app("late").is_some());
    assert_eq!(
        chain.state.accounts().collect::<Vec<_>>(),
        before.accounts().collect::<Vec<_>>()
    );
    assert_eq!(
        chain.state.nodes().collect::<Vec<_>>(),
        before.nodes().collect::<Vec<_>>()
    );
    assert_eq!(chain.state.total_supply(), before.total_supply());
}

#[test]
fn an_expired_name_can_be_registered_again() {
    let chain = check(
        genesis(&[("alice", flux(100)), ("bob", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            ),
            block(),
            advance(month_ms()),
            tx("bob", register_app(app_4_12("shop", "bob"), 1, flux(10))),
            tx("alice", remove_app("shop")).fails("not_app_owner"),
            block(),
        ],
    );
    assert_eq!(chain.events.len(), 1);
    assert_eq!(chain.state.app("shop").unwrap().spec.owner, addr("bob"));
}

#[test]
fn an_update_moves_the_expiry() {
    let chain = check(
        genesis(&[("alice", flux(100))]),
        vec![
            tx(
                "alice",
                register_app(app_4_12("shop", "alice"), 1, flux(10)),
            ),
            block(),
            advance(month_ms() / 2),
            tx("alice", update_app(app_4_12("shop", "alice"), 2, flux(10))),
            block(),
            // Past the first expiry, before the second.
            advance(month_ms()),
            block(),
        ],
    );
    assert!(chain.events.is_empty());
    assert!(chain.state.app("shop").is_some());
}
