//! The scheduler on its own, tested as Nomad tests its own: a harness loads
//! nodes and apps into a cluster, plans, and asserts on the plan and the
//! placements. Property tests then run random sequences of changes and check
//! the rules after every plan: no node over capacity, no app twice on a node,
//! no short app with a feasible node left, nothing moved without a reason,
//! and the same set of changes gives the same placements in any order.

use std::collections::{BTreeMap, BTreeSet};

use flux_ledger::scheduler::{AppInput, Cluster, Config, Move, NodeInput, Plan, Resources, plan};
use flux_types::{Address, SecretKey};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const CONFIG: Config = Config {
    candidates_per_instance: 2,
};

fn id(label: &str) -> Address {
    SecretKey::development(&format!("sched-{label}")).address()
}

fn res(cpu_tenths: u64, ram_mb: u64, disk_gb: u64) -> Resources {
    Resources {
        cpu_tenths,
        ram_mb,
        disk_gb,
    }
}

/// A node able to host `slots` instances of [`small`].
fn room(slots: u64) -> Resources {
    res(10 * slots, 1_000 * slots, 10 * slots)
}

/// One instance's demand in the tests, unless stated otherwise.
fn small() -> Resources {
    res(10, 1_000, 10)
}

/// The scenario harness: a cluster, the inputs given to it (for brute-force
/// checks), node labels, and the plans made so far.
struct Sim {
    cluster: Cluster,
    labels: BTreeMap<Address, String>,
    apps: BTreeMap<String, AppInput>,
    regions: BTreeMap<Address, String>,
    plans: Vec<Plan>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            cluster: Cluster::new(),
            labels: BTreeMap::new(),
            apps: BTreeMap::new(),
            regions: BTreeMap::new(),
            plans: Vec::new(),
        }
    }

    fn node(&mut self, label: &str, region: &str, capacity: Resources) {
        self.labels.insert(id(label), label.to_string());
        self.regions.insert(id(label), region.to_string());
        self.cluster
            .set_node(id(label), Some(NodeInput::new(capacity, region)));
    }

    fn lose(&mut self, label: &str) {
        self.cluster.set_node(id(label), None);
    }

    fn app(&mut self, key: &str, instances: u32, demand: Resources) {
        self.app_with(key, instances, demand, &[], &[]);
    }

    fn app_with(
        &mut self,
        key: &str,
        instances: u32,
        demand: Resources,
        geolocation: &[&str],
        pinned: &[&str],
    ) {
        let rules: Vec<String> = geolocation.iter().map(|r| r.to_string()).collect();
        let pinned: Vec<Address> = pinned.iter().map(|l| id(l)).collect();
        let input = AppInput::new(instances, demand, &rules, &pinned);
        self.apps.insert(key.to_string(), input.clone());
        self.cluster.set_app(key, Some(input));
    }

    fn remove(&mut self, key: &str) {
        self.apps.remove(key);
        self.cluster.set_app(key, None);
    }

    /// Plans, checks the rules, applies the plan and returns its moves as
    /// `(app, instance, from, to)` with node labels.
    fn plan(&mut self) -> Vec<(String, u32, String, String)> {
        let view = self.cluster.clone();
        let plan = plan(&self.cluster, &CONFIG);
        assert_same_placements(&self.cluster, &view, "the view is not modified");
        plan.cluster().check().expect("the plan keeps every rule");
        self.check_short_apps_have_no_room(plan.cluster());
        let moves = plan.moves().iter().map(|m| self.describe(m)).collect();
        self.cluster = plan.cluster().clone();
        self.plans.push(plan);
        moves
    }

    /// A short app must have no feasible node left: the scheduler would have used it.
    fn check_short_apps_have_no_room(&self, cluster: &Cluster) {
        for key in cluster.short_apps() {
            let slots = cluster.placements(key).expect("a short app exists");
            let hosted: BTreeSet<Address> = slots.iter().flatten().copied().collect();
            let input = &self.apps[&**key];
            for node in cluster.node_ids() {
                let capacity = cluster.node_capacity(&node).expect("a candidate");
                let used = cluster.node_used(&node).expect("a candidate");
                let feasible = !hosted.contains(&node)
                    && input.admits(&node, &self.regions[&node])
                    && used.plus(&input.demand).fits_within(&capacity);
                assert!(!feasible, "short app {key} could use node {node}");
            }
        }
    }

    fn label(&self, node: &Option<Address>) -> String {
        match node {
            Some(node) => self.labels[node].clone(),
            None => "-".to_string(),
        }
    }

    fn describe(&self, m: &Move) -> (String, u32, String, String) {
        (
            m.app.to_string(),
            m.instance,
            self.label(&m.from),
            self.label(&m.to),
        )
    }

    /// The node label of each instance of an app (`-`: not placed).
    fn placed(&self, key: &str) -> Vec<String> {
        self.cluster
            .placements(key)
            .unwrap_or_else(|| panic!("no app {key}"))
            .iter()
            .map(|n| self.label(n))
            .collect()
    }

    /// The instances on a node.
    fn on(&self, label: &str) -> Vec<(String, u32)> {
        self.cluster
            .node_instances(&id(label))
            .into_iter()
            .map(|(app, slot)| (app.to_string(), slot))
            .collect()
    }

    fn short(&self) -> Vec<String> {
        self.cluster.short_apps().map(|k| k.to_string()).collect()
    }
}

fn mv(app: &str, instance: u32, from: &str, to: &str) -> (String, u32, String, String) {
    (app.into(), instance, from.into(), to.into())
}

fn assert_same_placements(a: &Cluster, b: &Cluster, what: &str) {
    let left: Vec<_> = a.apps().map(|(k, s)| (k.clone(), s.to_vec())).collect();
    let right: Vec<_> = b.apps().map(|(k, s)| (k.clone(), s.to_vec())).collect();
    assert_eq!(left, right, "{what}");
}

#[test]
fn instances_go_to_distinct_nodes_and_prefer_new_regions() {
    let mut sim = Sim::new();
    sim.node("cz1", "EU_CZ", room(10));
    sim.node("cz2", "EU_CZ", room(10));
    sim.node("cz3", "EU_CZ", room(10));
    sim.node("de1", "EU_DE", room(10));
    sim.node("us1", "NA_US", room(10));
    sim.app("shop", 3, small());
    let moves = sim.plan();
    assert_eq!(moves.len(), 3, "{moves:?}");
    let placed = sim.placed("shop");
    let regions: BTreeSet<&str> = placed.iter().map(|l| &l[..2]).collect();
    assert_eq!(
        regions,
        BTreeSet::from(["cz", "de", "us"]),
        "three instances, three regions: {placed:?}"
    );
    assert!(sim.short().is_empty());

    // Five instances on five nodes: regions repeat only once all are used.
    sim.app("wide", 5, small());
    sim.plan();
    let wide: BTreeSet<String> = sim.placed("wide").into_iter().collect();
    assert_eq!(wide.len(), 5, "never two instances of an app on one node");

    // A sixth instance has no node left: the app is short, visibly.
    sim.app("wide", 6, small());
    let moves = sim.plan();
    assert!(moves.is_empty(), "nothing moves: {moves:?}");
    assert_eq!(sim.placed("wide")[5], "-");
    assert_eq!(sim.short(), vec!["wide"]);
}

#[test]
fn capacity_is_respected_and_a_shortfall_is_filled_when_room_appears() {
    let mut sim = Sim::new();
    sim.node("a", "EU_CZ", room(2));
    sim.node("b", "EU_DE", room(1));
    sim.app("one", 2, small());
    sim.app("two", 2, small());
    sim.plan();
    // Three slots of capacity for four instances: one is short.
    let placed: usize = ["one", "two"]
        .iter()
        .map(|k| sim.placed(k).iter().filter(|n| *n != "-").count())
        .sum();
    assert_eq!(placed, 3);
    assert_eq!(sim.short().len(), 1);
    assert_eq!(sim.cluster.node_used(&id("a")), Some(room(2)));

    // A new node: the short instance goes there, nothing else moves.
    sim.node("c", "NA_US", room(4));
    let moves = sim.plan();
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0].2, "-");
    assert_eq!(moves[0].3, "c");
    assert!(sim.short().is_empty());
}

#[test]
fn a_lost_node_moves_only_its_own_instances() {
    let mut sim = Sim::new();
    for (label, region) in [
        ("n1", "EU_CZ"),
        ("n2", "EU_DE"),
        ("n3", "NA_US"),
        ("n4", "AS_JP"),
    ] {
        sim.node(label, region, room(10));
    }
    sim.app("alpha", 2, small());
    sim.app("beta", 3, small());
    sim.app("gamma", 1, small());
    sim.plan();
    let before: BTreeMap<&str, Vec<String>> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(|k| (k, sim.placed(k)))
        .collect();
    let victim = before["beta"][1].clone();
    let hosted = sim.on(&victim);
    sim.lose(&victim);
    let moves = sim.plan();
    assert_eq!(
        moves.len(),
        hosted.len(),
        "one move per instance of the lost node: {moves:?}"
    );
    for (app, slot, from, to) in &moves {
        assert_eq!(*from, victim);
        assert_ne!(*to, "-", "there is room elsewhere");
        assert!(hosted.contains(&(app.clone(), *slot)));
    }
    for (key, old) in &before {
        for (slot, (was, now)) in old.iter().zip(sim.placed(key)).enumerate() {
            if *was != victim {
                assert_eq!(*was, now, "{key} instance {slot} moved without reason");
            }
        }
    }
    assert!(sim.on(&victim).is_empty());
}

#[test]
fn a_shrunk_node_sheds_instances_until_they_fit() {
    let mut sim = Sim::new();
    sim.node("big", "EU_CZ", room(3));
    sim.app("a1", 1, small());
    sim.app("a2", 1, small());
    sim.app("a3", 1, small());
    sim.plan();
    assert_eq!(sim.on("big").len(), 3);
    sim.node("other", "EU_DE", room(3));
    sim.plan();
    assert!(sim.on("other").is_empty(), "nothing rebalances");
    // The node now has room for one: two instances move, one stays.
    sim.node("big", "EU_CZ", room(1));
    let moves = sim.plan();
    assert_eq!(moves.len(), 2, "{moves:?}");
    for (app, slot, from, to) in &moves {
        assert_eq!(
            (*slot, from.as_str(), to.as_str()),
            (0, "big", "other"),
            "{app}"
        );
    }
    assert_eq!(sim.on("big").len(), 1);
}

#[test]
fn an_updated_app_keeps_what_still_fits() {
    let mut sim = Sim::new();
    sim.node("n1", "EU_CZ", room(2));
    sim.node("n2", "EU_DE", room(2));
    sim.node("n3", "NA_US", room(1));
    sim.app("web", 3, small());
    sim.plan();
    let placed = sim.placed("web");

    // Fewer instances: the highest slot goes, the others stay.
    sim.app("web", 2, small());
    let moves = sim.plan();
    assert_eq!(moves, vec![mv("web", 2, &placed[2], "-")]);
    assert_eq!(sim.placed("web"), placed[..2].to_vec());

    // Twice the demand: only nodes with room for it keep their instance.
    sim.app("web", 2, res(20, 2_000, 20));
    sim.plan();
    for node in sim.placed("web") {
        assert!(node == "n1" || node == "n2", "{node} cannot hold 2 units");
    }

    // Geolocation now denies the Czech node: its instance leaves.
    sim.app_with("web", 2, res(20, 2_000, 20), &["a!cEU_CZ"], &[]);
    sim.plan();
    assert!(!sim.placed("web").contains(&"n1".to_string()));
    assert_eq!(sim.short(), vec!["web"], "n3 is too small, n1 is denied");
}

#[test]
fn geolocation_allows_and_denies_by_region_prefix() {
    let mut sim = Sim::new();
    for (label, region) in [
        ("cz", "EU_CZ"),
        ("de", "EU_DE"),
        ("us", "NA_US"),
        ("ca", "NA_US_CA"),
        ("jp", "AS_JP"),
    ] {
        sim.node(label, region, room(10));
    }
    sim.app_with("eu", 5, small(), &["acEU"], &[]);
    sim.app_with("notus", 5, small(), &["a!cNA_US"], &[]);
    sim.app_with("czca", 5, small(), &["acEU_CZ", "acNA_US_CA"], &[]);
    sim.app_with("euminus", 5, small(), &["acEU", "a!cEU_DE"], &[]);
    sim.plan();
    let set =
        |k: &str| -> BTreeSet<String> { sim.placed(k).into_iter().filter(|n| n != "-").collect() };
    assert_eq!(set("eu"), BTreeSet::from(["cz".into(), "de".into()]));
    assert_eq!(
        set("notus"),
        BTreeSet::from(["cz".into(), "de".into(), "jp".into()])
    );
    assert_eq!(set("czca"), BTreeSet::from(["cz".into(), "ca".into()]));
    assert_eq!(set("euminus"), BTreeSet::from(["cz".into()]));
    assert_eq!(sim.short(), vec!["czca", "eu", "euminus", "notus"]);
}

#[test]
fn pinned_apps_use_only_their_nodes() {
    let mut sim = Sim::new();
    for label in ["p1", "p2", "p3", "free"] {
        sim.node(label, "EU_CZ", room(10));
    }
    sim.app_with("pinned", 2, small(), &[], &["p1", "p2", "p3"]);
    sim.plan();
    assert!(!sim.placed("pinned").contains(&"free".to_string()));
    // Pinned and denied by region at once: no node is left.
    sim.app_with("nowhere", 1, small(), &["acNA"], &["p1"]);
    sim.plan();
    assert_eq!(sim.placed("nowhere"), vec!["-"]);
    // A pinned node that is not (yet) a candidate fills the slot when it comes.
    sim.app_with("later", 1, small(), &[], &["future"]);
    sim.plan();
    assert_eq!(sim.placed("later"), vec!["-"]);
    sim.node("future", "EU_CZ", room(1));
    let moves = sim.plan();
    assert_eq!(moves, vec![mv("later", 0, "-", "future")]);
}

#[test]
fn a_removed_app_frees_room_for_a_short_one() {
    let mut sim = Sim::new();
    sim.node("only", "EU_CZ", room(1));
    sim.app("first", 1, small());
    sim.plan();
    sim.app("second", 1, small());
    sim.plan();
    assert_eq!(sim.short(), vec!["second"]);
    sim.remove("first");
    let moves = sim.plan();
    assert_eq!(
        moves,
        vec![mv("first", 0, "only", "-"), mv("second", 0, "-", "only")]
    );
    assert!(sim.cluster.placements("first").is_none());
    assert!(sim.short().is_empty());
    assert_eq!(sim.plans.last().unwrap().touched.len(), 2);
}

#[test]
fn a_plan_with_nothing_changed_is_empty() {
    let mut sim = Sim::new();
    sim.node("n", "EU_CZ", room(1));
    sim.app("a", 2, small());
    sim.plan();
    assert!(!sim.cluster.has_changes());
    // Setting the same inputs again is not a change.
    sim.node("n", "EU_CZ", room(1));
    sim.app("a", 2, small());
    assert!(!sim.cluster.has_changes());
    let moves = sim.plan();
    assert!(moves.is_empty());
    assert!(sim.plans.last().unwrap().touched.is_empty());
}

#[test]
fn restore_rebuilds_the_same_cluster_and_refuses_broken_placements() {
    let mut sim = Sim::new();
    let nodes = [("n1", "EU_CZ"), ("n2", "EU_DE"), ("n3", "NA_US")];
    for (label, region) in nodes {
        sim.node(label, region, room(2));
    }
    sim.app("a", 2, small());
    sim.app("b", 3, small());
    sim.app("c", 3, small());
    sim.plan();
    let node_inputs = || nodes.map(|(l, r)| (id(l), NodeInput::new(room(2), r)));
    let app_inputs = |sim: &Sim| -> Vec<_> {
        ["a", "b", "c"]
            .into_iter()
            .map(|k| {
                (
                    k.into(),
                    sim.apps[k].clone(),
                    sim.cluster.placements(k).unwrap().to_vec(),
                )
            })
            .collect()
    };
    let restored = Cluster::restore(node_inputs(), app_inputs(&sim)).expect("restores");
    restored.check().unwrap();
    assert_same_placements(&restored, &sim.cluster, "restored");
    assert_eq!(
        restored.short_apps().collect::<Vec<_>>(),
        sim.cluster.short_apps().collect::<Vec<_>>()
    );
    // The same app twice on one node is refused.
    let mut broken = app_inputs(&sim);
    broken[0].2 = vec![Some(id("n1")), Some(id("n1"))];
    assert!(Cluster::restore(node_inputs(), broken).is_err());
}

// Property tests.

const REGIONS: [&str; 4] = ["EU_CZ", "EU_DE", "NA_US", "NA_US_CA"];
const RULES: [&[&str]; 5] = [&[], &[], &["acEU"], &["a!cNA_US"], &["acNA", "a!cNA_US_CA"]];

#[derive(Clone, Debug)]
enum Change {
    /// Node `n` becomes a candidate with room for `slots` small instances, in region `r`.
    Node { n: usize, slots: u64, region: usize },
    /// Node `n` stops being a candidate.
    Lose { n: usize },
    /// App `a` wants `instances` of `size` units, with rule set `rules` and maybe pinned nodes.
    App {
        a: usize,
        instances: u32,
        size: u64,
        rules: usize,
        pinned: Vec<usize>,
    },
    /// App `a` is removed.
    Remove { a: usize },
    /// Plan and apply.
    Plan,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..8usize, 0..6u64, 0..REGIONS.len()).prop_map(|(n, slots, region)| Change::Node { n, slots, region }),
        1 => (0..8usize).prop_map(|n| Change::Lose { n }),
        4 => (0..10usize, 1..5u32, 1..3u64, 0..RULES.len(), prop::collection::vec(0..8usize, 0..3))
            .prop_map(|(a, instances, size, rules, pinned)| Change::App { a, instances, size, rules, pinned }),
        1 => (0..10usize).prop_map(|a| Change::Remove { a }),
        2 => Just(Change::Plan),
    ]
}

fn node_label(n: usize) -> String {
    format!("node{n}")
}

fn app_key(a: usize) -> String {
    format!("app{a}")
}

/// Applies one change to the harness (not planning).
fn apply(sim: &mut Sim, change: &Change) {
    match change {
        Change::Node { n, slots, region } => {
            sim.node(&node_label(*n), REGIONS[*region], room(*slots));
        }
        Change::Lose { n } => sim.lose(&node_label(*n)),
        Change::App {
            a,
            instances,
            size,
            rules,
            pinned,
        } => {
            let pinned: Vec<String> = pinned.iter().map(|n| node_label(*n)).collect();
            let pinned: Vec<&str> = pinned.iter().map(String::as_str).collect();
            sim.app_with(
                &app_key(*a),
                *instances,
                res(10 * size, 1_000 * size, 10 * size),
                RULES[*rules],
                &pinned,
            );
        }
        Change::Remove { a } => sim.remove(&app_key(*a)),
        Change::Plan => {}
    }
}

/// Every instance that left a node did so because its app or its node changed.
fn assert_moves_have_reasons(changes: &[Change], moves: &[Move]) {
    let changed_apps: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::App { a, .. } | Change::Remove { a } => Some(app_key(*a)),
            _ => None,
        })
        .collect();
    let changed_nodes: BTreeSet<Address> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Node { n, .. } | Change::Lose { n } => Some(id(&node_label(*n))),
            _ => None,
        })
        .collect();
    for m in moves {
        if let Some(from) = m.from {
            assert!(
                changed_apps.contains(&*m.app) || changed_nodes.contains(&from),
                "instance {} of {} left {from} though neither changed",
                m.instance,
                m.app
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// After every plan: no node over capacity, no app twice on a node, the
    /// indexes agree, a short app has no feasible node, and every instance
    /// that left a node did so because its app or its node changed.
    #[test]
    fn every_plan_keeps_the_rules(changes in prop::collection::vec(change(), 1..60)) {
        let mut sim = Sim::new();
        let mut since_plan = Vec::new();
        for change in changes.iter().chain([&Change::Plan]) {
            apply(&mut sim, change);
            if matches!(change, Change::Plan) {
                let before = sim.plans.len();
                sim.plan();
                assert_eq!(sim.plans.len(), before + 1);
                assert_moves_have_reasons(&since_plan, &sim.plans[before].moves());
                since_plan.clear();
            } else {
                since_plan.push(change.clone());
            }
        }
    }

    /// The same nodes and apps, set in any order, give the same placements.
    #[test]
    fn placement_does_not_depend_on_insertion_order(
        nodes in prop::collection::btree_map(0..12usize, (0..6u64, 0..REGIONS.len()), 1..12),
        apps in prop::collection::btree_map(0..20usize, (1..5u32, 1..3u64, 0..RULES.len()), 1..20),
        seed in any::<u64>(),
    ) {
        let mut changes: Vec<Change> = nodes
            .iter()
            .map(|(n, (slots, region))| Change::Node { n: *n, slots: *slots, region: *region })
            .chain(apps.iter().map(|(a, (instances, size, rules))| Change::App {
                a: *a,
                instances: *instances,
                size: *size,
                rules: *rules,
                pinned: Vec::new(),
            }))
            .collect();
        let placements = |changes: &[Change]| -> Vec<(String, Vec<Option<Address>>)> {
            let mut sim = Sim::new();
            for change in changes {
                apply(&mut sim, change);
            }
            sim.plan();
            sim.cluster
                .apps()
                .map(|(k, s)| (k.to_string(), s.to_vec()))
                .collect()
        };
        let forward = placements(&changes);
        changes.reverse();
        prop_assert_eq!(&forward, &placements(&changes));
        // A shuffle from the seed (xorshift).
        let mut state = seed | 1;
        for i in (1..changes.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            changes.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&forward, &placements(&changes));
    }
}
