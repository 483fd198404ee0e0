//! Node benchmarks and placement through whole blocks: a node is confirmed by
//! a benchmark signed with its own key, the scheduler places apps on
//! confirmed nodes at the end of every block, and placements follow nodes
//! and apps as they come, change and go. (The scheduler's own rules are
//! tested on their own in `scheduler.rs`.)

use flux_ledger::scheduler::Resources;
use flux_ledger::{AppPlacement, NodeResources, NodeStatus, PendingReason, ReceiptDetail};
use flux_types::{
    Address, AppSpec, BenchmarkReport, Figure, FigureCheck, Params, Tier, VoteChoice,
};

use crate::harness::*;

/// Funds for the operator and the app owner.
fn funded() -> Vec<(&'static str, flux_types::Amount)> {
    vec![("olga", flux(10_000)), ("alice", flux(10_000))]
}

/// Registers and confirms a node in `region` with 4 cores, 8 GB and 100 GB.
fn node_in(node: &'static str, region: &str) -> Vec<Step> {
    vec![
        tx(
            "olga",
            register_node_at(node, Tier::Cumulus, "203.0.113.7:16127", region),
        ),
        block(),
        tx(node, benchmark(hardware(4, 8_000, 100))),
    ]
}

/// An app of `instances` instances of one component (1 core, 1 GB, 10 GB).
fn web(name: &str, instances: u32) -> AppSpec {
    app(name, "alice", instances, vec![component(10, 1_000, 10)])
}

fn deploy(spec: AppSpec) -> Step {
    tx("alice", register_app(spec, 1, flux(1_000)))
}

fn placement(chain: &Chain, name: &str) -> AppPlacement {
    chain.state.app_placement(name).expect("the app exists")
}

/// The node ids an app runs on.
fn nodes_of(chain: &Chain, name: &str) -> Vec<Address> {
    placement(chain, name)
        .instances
        .into_iter()
        .flatten()
        .collect()
}

fn resources(cpu_tenths: u64, ram_mb: u64, disk_gb: u64) -> Resources {
    Resources {
        cpu_tenths,
        ram_mb,
        disk_gb,
    }
}

fn steps(groups: Vec<Vec<Step>>) -> Vec<Step> {
    groups.into_iter().flatten().collect()
}

#[test]
fn a_passing_benchmark_signed_by_the_node_confirms_it_without_fees() {
    let chain = check(
        genesis(&funded()),
        steps(vec![
            node_in("n1", "EU_CZ"),
            vec![
                then(|c| {
                    assert_eq!(
                        c.state.node_pending_reason(&addr("n1")),
                        Some(PendingReason::NoBenchmark)
                    )
                }),
                block(),
            ],
        ]),
    );
    let node = chain.state.node(&addr("n1")).unwrap();
    assert_eq!(node.status, NodeStatus::Confirmed);
    assert_eq!(chain.state.node_pending_reason(&addr("n1")), None);
    let record = chain.state.node_benchmark(&addr("n1")).unwrap();
    assert!(record.passed);
    assert_eq!(record.report, hardware(4, 8_000, 100));
    assert_eq!(record.tier, Tier::Cumulus);
    assert_eq!(record.height, 2);
    assert_eq!(record.checks.len(), Figure::ALL.len());
    assert_eq!(
        chain.last_receipt().detail,
        ReceiptDetail::NodeBenchmarked {
            node: addr("n1"),
            status: NodeStatus::Confirmed,
            shortfalls: vec![],
        }
    );
    assert_eq!(chain.last_receipt().fee, flux(0), "a benchmark pays no fee");
    assert_eq!(chain.balance("n1"), flux(0), "the node key holds nothing");
    assert_eq!(chain.account("n1").nonce, 1);
    // Capacity: the benchmark's figures minus the devnet reserve.
    let reserve = &chain.params().scheduler;
    assert_eq!(
        chain.state.node_resources(&addr("n1")),
        Some(NodeResources {
            capacity: resources(
                40 - reserve.reserve_cpu_tenths,
                8_000 - reserve.reserve_ram_mb,
                100 - reserve.reserve_disk_gb
            ),
            used: resources(0, 0, 0),
        })
    );
}

#[test]
fn a_failing_benchmark_keeps_the_node_pending_and_says_which_figures_fell_short() {
    let mut params = Params::mainnet();
    params.tx_fee_min = fee();
    let weak = BenchmarkReport {
        cores: 4,
        ram_mb: 16_000,
        disk_gb: 500,
        cpu_score: 700,
        disk_write_mb_per_s: 150,
    };
    let chain = check(
        genesis_with(params, &[("olga", flux(20_000))]),
        vec![
            tx("olga", register_node("n1", Tier::Nimbus)),
            block(),
            tx("n1", benchmark(weak)),
            block(),
        ],
    );
    let shortfalls = vec![
        FigureCheck {
            figure: Figure::RamMb,
            measured: 16_000,
            required: 32_000,
        },
        FigureCheck {
            figure: Figure::DiskWriteMbPerS,
            measured: 150,
            required: 180,
        },
    ];
    assert_eq!(
        chain.last_receipt().detail,
        ReceiptDetail::NodeBenchmarked {
            node: addr("n1"),
            status: NodeStatus::Pending,
            shortfalls: shortfalls.clone(),
        }
    );
    assert_eq!(
        chain.state.node(&addr("n1")).unwrap().status,
        NodeStatus::Pending
    );
    assert_eq!(
        chain.state.node_pending_reason(&addr("n1")),
        Some(PendingReason::BelowThresholds { shortfalls })
    );
    let record = chain.state.node_benchmark(&addr("n1")).unwrap();
    assert!(!record.passed);
    assert_eq!(
        record.checks.iter().filter(|c| c.passed()).count(),
        3,
        "cores, disk and CPU pass: {:?}",
        record.checks
    );
    assert_eq!(
        chain.state.node_resources(&addr("n1")),
        None,
        "a pending node is no candidate"
    );
}

#[test]
fn only_a_registered_node_signs_a_benchmark_and_not_too_often() {
    let interval = Params::devnet().benchmark_interval_blocks_min;
    let mut steps = steps(vec![
        vec![
            tx("olga", benchmark(hardware(4, 8_000, 100)))
                .fails_with("benchmark_signer_not_node", "not a registered node"),
            tx("stranger", benchmark(hardware(4, 8_000, 100))).fails("benchmark_signer_not_node"),
        ],
        node_in("n1", "EU_CZ"),
        vec![
            block(),
            // Height 3: the last benchmark was at height 2.
            tx("n1", benchmark(hardware(8, 16_000, 200))).fails_with(
                "benchmark_too_soon",
                &format!("accepted from height {}", 2 + interval),
            ),
        ],
    ]);
    for _ in 0..interval - 1 {
        steps.push(block());
    }
    steps.push(tx("n1", benchmark(hardware(8, 16_000, 200))));
    steps.push(block());
    let chain = check(genesis(&funded()), steps);
    let record = chain.state.node_benchmark(&addr("n1")).unwrap();
    assert_eq!(
        record.report.cores, 8,
        "the re-benchmark replaced the record"
    );
    assert_eq!(record.height, 2 + interval);
}

#[test]
fn apps_are_placed_on_confirmed_nodes_in_distinct_regions() {
    let chain = check(
        genesis(&funded()),
        steps(vec![
            node_in("n1", "EU_CZ"),
            node_in("n2", "EU_DE"),
            node_in("n3", "NA_US"),
            vec![
                tx(
                    "olga",
                    register_node_at("idle", Tier::Cumulus, "203.0.113.9:16127", "AS_JP"),
                ),
                deploy(web("shop", 3)),
                block(),
            ],
        ]),
    );
    let shop = placement(&chain, "shop");
    assert_eq!((shop.wanted, shop.placed), (3, 3));
    let mut on: Vec<Address> = nodes_of(&chain, "shop");
    on.sort();
    let mut expected = vec![addr("n1"), addr("n2"), addr("n3")];
    expected.sort();
    assert_eq!(
        on, expected,
        "one instance per node, the pending node has none"
    );
    for (index, node) in shop.instances.iter().enumerate() {
        let node = node.expect("placed");
        let hosted = chain.state.instances_on(&node);
        assert_eq!(hosted.len(), 1);
        assert_eq!(hosted[0].0.spec.name, "shop");
        assert_eq!(
            hosted[0].1, index as u32,
            "the node knows which instance it runs"
        );
        assert_eq!(
            chain.state.node_resources(&node).unwrap().used,
            resources(10, 1_000, 10)
        );
    }
    assert!(chain.state.instances_on(&addr("idle")).is_empty());
    assert_eq!(chain.state.short_apps().count(), 0);
    // Names are case-blind here too.
    assert_eq!(chain.state.app_placement("SHOP"), Some(shop));
}

#[test]
fn a_shortfall_is_visible_and_filled_when_a_node_is_confirmed() {
    let chain = check(
        genesis(&funded()),
        steps(vec![
            node_in("n1", "EU_CZ"),
            node_in("n2", "EU_DE"),
            vec![deploy(web("shop", 3)), block()],
            vec![then(|c| {
                let shop = placement(c, "shop");
                assert_eq!((shop.wanted, shop.placed), (3, 2));
                assert_eq!(shop.instances[2], None, "the last instance waits");
                let short: Vec<&str> = c.state.short_apps().map(|a| a.spec.name.as_str()).collect();
                assert_eq!(short, vec!["shop"]);
            })],
            node_in("n3", "NA_US"),
            vec![block()],
        ]),
    );
    let shop = placement(&chain, "shop");
    assert_eq!((shop.wanted, shop.placed), (3, 3));
    assert_eq!(shop.instances[2], Some(addr("n3")));
    assert_eq!(chain.state.short_apps().count(), 0);
}

#[test]
fn a_node_that_leaves_or_fails_its_benchmark_hands_its_instances_over() {
    let mut steps = steps(vec![
        node_in("n1", "EU_CZ"),
        node_in("n2", "EU_DE"),
        node_in("n3", "NA_US"),
        vec![deploy(web("shop", 2)), deploy(web("blog", 1)), block()],
    ]);
    steps.push(then(|c| {
        assert_eq!(placement(c, "shop").placed, 2);
        assert_eq!(placement(c, "blog").placed, 1);
    }));
    let chain = check(genesis(&funded()), steps);
    // Whichever node runs the blog leaves; the blog moves, the shop stays
    // where it can.
    let blog_node = nodes_of(&chain, "blog")[0];
    let label = ["n1", "n2", "n3"]
        .into_iter()
        .find(|l| addr(l) == blog_node)
        .unwrap();
    let shop_before = placement(&chain, "shop").instances;
    let mut chain = chain;
    chain.run_steps(vec![tx("olga", deregister_node(label)), block()]);
    let blog_after = nodes_of(&chain, "blog");
    assert_eq!(blog_after.len(), 1);
    assert_ne!(blog_after[0], blog_node);
    let shop_after = placement(&chain, "shop").instances;
    for (before, after) in shop_before.iter().zip(&shop_after) {
        if *before != Some(blog_node) {
            assert_eq!(before, after, "an instance moved without reason");
        }
    }
    assert!(
        chain.state.node_benchmark(&blog_node).is_none(),
        "its record went with it"
    );

    // A node whose benchmark now falls short is no candidate either.
    let blog_node = nodes_of(&chain, "blog")[0];
    let label = ["n1", "n2", "n3"]
        .into_iter()
        .find(|l| addr(l) == blog_node)
        .unwrap();
    let interval = chain.params().benchmark_interval_blocks_min;
    let mut steps: Vec<Step> = (0..interval).map(|_| block()).collect();
    steps.push(tx(label, benchmark(hardware(0, 8_000, 100))));
    steps.push(block());
    chain.run_steps(steps);
    assert_eq!(
        chain.state.node(&blog_node).unwrap().status,
        NodeStatus::Pending
    );
    assert!(chain.state.instances_on(&blog_node).is_empty());
    assert_eq!(placement(&chain, "blog").placed, 1, "the blog moved again");
    assert_eq!(
        placement(&chain, "shop").placed,
        1,
        "two instances, one node left"
    );
}

#[test]
fn removed_updated_and_expired_apps_give_their_room_back() {
    // One node with room for three instances.
    let small_node = vec![
        tx(
            "olga",
            register_node_at("n1", Tier::Cumulus, "203.0.113.7:16127", "EU_CZ"),
        ),
        block(),
        tx("n1", benchmark(hardware(4, 3_100, 31))),
    ];
    let chain = check(
        genesis(&funded()),
        steps(vec![
            small_node,
            node_in("n2", "EU_DE"),
            vec![
                deploy(web("alpha", 2)),
                deploy(web("beta", 1)),
                deploy(app("gamma", "alice", 1, vec![component(10, 1_000, 10)])),
                block(),
                tx("alice", update_app(web("alpha", 1), 1, flux(1_000))),
                tx("alice", remove_app("beta")),
                block(),
            ],
        ]),
    );
    assert_eq!(placement(&chain, "alpha").instances.len(), 1);
    assert!(chain.state.app_placement("beta").is_none());
    let used: u64 = ["n1", "n2"]
        .iter()
        .map(|n| {
            chain
                .state
                .node_resources(&addr(n))
                .unwrap()
                .used
                .cpu_tenths
        })
        .sum();
    assert_eq!(used, 20, "alpha's one instance and gamma's");
    // Expiry removes the app and its placement.
    let mut chain = chain;
    chain.run_steps(vec![advance(2 * chain.params().month_ms), block()]);
    assert!(chain.state.app_placement("alpha").is_none());
    for n in ["n1", "n2"] {
        assert!(chain.state.instances_on(&addr(n)).is_empty());
        assert_eq!(
            chain.state.node_resources(&addr(n)).unwrap().used,
            resources(0, 0, 0)
        );
    }
}

#[test]
fn geolocation_and_pinned_nodes_come_from_the_spec() {
    let mut europe = web("europe", 3);
    europe.geolocation = vec!["acEU".into()];
    let mut pinned = web("pinned", 1);
    pinned.nodes = vec![addr("n3")];
    let chain = check(
        genesis(&funded()),
        steps(vec![
            node_in("n1", "EU_CZ"),
            node_in("n2", "EU_DE"),
            node_in("n3", "NA_US"),
            vec![deploy(europe), deploy(pinned), block()],
        ]),
    );
    let europe = placement(&chain, "europe");
    assert_eq!((europe.wanted, europe.placed), (3, 2));
    assert!(!europe.instances.contains(&Some(addr("n3"))));
    assert_eq!(
        placement(&chain, "pinned").instances,
        vec![Some(addr("n3"))]
    );
}

/// Passes proposal `id` (alice holds nearly all voting power) and runs to
/// the height at which it takes effect.
fn pass(chain: &mut Chain, id: u64) {
    chain.run_steps(vec![tx("alice", vote(id, VoteChoice::Yes)), block()]);
    chain.close_vote(id, 5_000);
    let height = chain.activation_height(id);
    chain.run_to_height(height);
}

#[test]
fn a_larger_reserve_voted_by_governance_shrinks_every_node() {
    let mut chain = check(
        genesis(&[("olga", flux(10_000)), ("alice", flux(1_000_000))]),
        steps(vec![
            node_in("n1", "EU_CZ"),
            vec![
                // Three cores: room on a 4-core node while the reserve is 0.1 core.
                deploy(app("big", "alice", 1, vec![component(30, 1_000, 10)])),
                deploy(app("small", "alice", 1, vec![component(5, 1_000, 10)])),
                block(),
            ],
        ]),
    );
    assert_eq!(placement(&chain, "big").placed, 1);
    assert_eq!(placement(&chain, "small").placed, 1);
    let deposit = chain.params().gov.proposal_deposit;
    chain.run_steps(vec![
        tx(
            "alice",
            propose(
                "Keep two cores for the system",
                param_change(&[("scheduler.reserve_cpu_tenths", "20")]),
                deposit,
            ),
        ),
        block(),
    ]);
    pass(&mut chain, 1);
    assert_eq!(chain.params().scheduler.reserve_cpu_tenths, 20);
    // 40 − 20 tenths left: the big app no longer fits, the small one stays.
    let node = chain.state.node_resources(&addr("n1")).unwrap();
    assert_eq!(node.capacity.cpu_tenths, 20);
    assert_eq!(node.used.cpu_tenths, 5);
    assert_eq!(placement(&chain, "big").placed, 0);
    assert_eq!(placement(&chain, "small").placed, 1);
    let short: Vec<&str> = chain
        .state
        .short_apps()
        .map(|a| a.spec.name.as_str())
        .collect();
    assert_eq!(short, vec!["big"]);
}

#[test]
fn a_blocked_image_takes_its_apps_off_every_node_until_it_is_unblocked() {
    let mut chain = check(
        genesis(&[("olga", flux(10_000)), ("alice", flux(1_000_000))]),
        steps(vec![
            node_in("n1", "EU_CZ"),
            node_in("n2", "EU_DE"),
            vec![deploy(web("shop", 2)), block()],
        ]),
    );
    assert_eq!(placement(&chain, "shop").placed, 2);
    let deposit = chain.params().gov.proposal_deposit;
    chain.run_steps(vec![
        tx(
            "alice",
            propose("Block nginx", image_policy(&["nginx"], &[]), deposit),
        ),
        block(),
    ]);
    pass(&mut chain, 1);
    assert!(chain.state.app_blocked("shop").is_some());
    let shop = placement(&chain, "shop");
    assert_eq!(
        (shop.wanted, shop.placed),
        (2, 0),
        "a blocked app runs nowhere: {shop:?}"
    );
    assert!(chain.state.instances_on(&addr("n1")).is_empty());
    assert_eq!(chain.state.short_apps().count(), 0, "blocked is not short");

    chain.run_steps(vec![
        tx(
            "alice",
            propose("Unblock nginx", image_policy(&[], &["nginx"]), deposit),
        ),
        block(),
    ]);
    pass(&mut chain, 2);
    assert!(chain.state.app_blocked("shop").is_none());
    assert_eq!(placement(&chain, "shop").placed, 2);
}
