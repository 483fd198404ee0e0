//! Placement of app instances on nodes: pure, deterministic and incremental.
//!
//! The scheduler is business logic only. [`plan`] reads an immutable
//! [`Cluster`] (the candidate nodes with their capacity and region, the apps
//! with their demand and rules, the current placements, and what changed
//! since the last plan) and returns a [`Plan`]: the instance moves and the
//! cluster after them. The ledger keeps a `Cluster` inside its state, tells
//! it what a block changed, and applies the plan at the end of the block, so
//! every node derives the same placements from the same finalized blocks.
//!
//! An instance of an app is all of its components together on one node;
//! instance `i` of an app is slot `i` of its placement.
//!
//! # The rule
//!
//! - **Feasible node** for an app: a candidate (confirmed) node that does not
//!   host the app yet, whose region passes the app's geolocation rules (if
//!   there are `ac` rules, one of them matches; no `a!c` rule matches), that
//!   is among the app's pinned nodes if it pins any, and whose free capacity
//!   (capacity minus what is placed there) covers one instance of the app in
//!   CPU, RAM and disk.
//! - **Choice.** Nodes are ordered on a ring by id; each app starts at a point
//!   of the ring derived from its name. To fill `m` empty slots the scheduler
//!   walks the ring from that point and takes the first
//!   `m × candidates_per_instance` feasible nodes (fewer if the ring has
//!   fewer). Slots are filled in index order, each with the best remaining
//!   candidate: first a node in a region the app does not use yet, then the
//!   node whose fullest resource is least full after the placement, then the
//!   earliest on the ring.
//! - **Stability.** A placed instance stays where it is until its node stops
//!   being a candidate, no longer has room for it (its capacity shrank, or
//!   the app grew), no longer passes the app's rules, or the app no longer
//!   wants that many instances (the highest slots go first). A node with too
//!   little room for what it hosts sheds instances in a fixed order (by a
//!   hash of the app's key, then slot, last first) until the rest fits.
//!   Nothing is ever moved to balance load.
//! - **Shortfall.** When no feasible node is left, slots stay empty and the
//!   app is listed as short ([`Cluster::short_apps`]). Short apps are tried
//!   again whenever a node gains free capacity.
//! - **Order.** Within one plan, everything that frees capacity (removed and
//!   changed apps, lost and shrunk nodes) happens before anything is placed,
//!   and apps are placed in the order of their keys. The outcome depends on
//!   the set of changes, never on the order in which they were made.
//!
//! # Cost
//!
//! A plan touches only what changed: the apps that were added, changed or
//! removed, the instances of nodes that were lost or shrank, and, when some
//! node gained free capacity, the short apps (tried against the nodes that
//! gained only: every other node was already found infeasible for them). The
//! walk for one app stops after `m × candidates_per_instance` feasible
//! nodes, so placing an app costs about that many node visits while the
//! network has room, and a walk of the whole ring when it has none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flux_types::{Address, AppSpec, Hash};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

/// The key of an app: its name in lower case.
pub type AppKey = Arc<str>;

/// An amount of each resource the scheduler counts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Resources {
    /// CPU, tenths of a core.
    pub cpu_tenths: u64,
    /// Memory, MB.
    pub ram_mb: u64,
    /// Disk, GB.
    pub disk_gb: u64,
}

impl Resources {
    /// Whether every resource of `self` is at most that of `capacity`.
    pub fn fits_within(&self, capacity: &Resources) -> bool {
        self.cpu_tenths <= capacity.cpu_tenths
            && self.ram_mb <= capacity.ram_mb
            && self.disk_gb <= capacity.disk_gb
    }

    /// Sum, saturating.
    pub fn plus(&self, other: &Resources) -> Resources {
        Resources {
            cpu_tenths: self.cpu_tenths.saturating_add(other.cpu_tenths),
            ram_mb: self.ram_mb.saturating_add(other.ram_mb),
            disk_gb: self.disk_gb.saturating_add(other.disk_gb),
        }
    }

    /// Difference, saturating at zero.
    pub fn minus(&self, other: &Resources) -> Resources {
        Resources {
            cpu_tenths: self.cpu_tenths.saturating_sub(other.cpu_tenths),
            ram_mb: self.ram_mb.saturating_sub(other.ram_mb),
            disk_gb: self.disk_gb.saturating_sub(other.disk_gb),
        }
    }

    /// The share of `capacity` taken by the fullest resource, as a fraction
    /// `(numerator, denominator)`. A resource with no capacity counts as full
    /// when anything of it is used.
    fn fullest_share(&self, capacity: &Resources) -> (u64, u64) {
        let pairs = [
            (self.cpu_tenths, capacity.cpu_tenths),
            (self.ram_mb, capacity.ram_mb),
            (self.disk_gb, capacity.disk_gb),
        ];
        let mut best = (0, 1);
        for (used, total) in pairs {
            let share = match (used, total) {
                (0, _) => (0, 1),
                (_, 0) => (1, 1),
                share => share,
            };
            if fraction_less(best, share) {
                best = share;
            }
        }
        best
    }
}

/// `a < b` for fractions `(numerator, denominator)` with positive denominators.
fn fraction_less(a: (u64, u64), b: (u64, u64)) -> bool {
    fraction_cmp(a, b).is_lt()
}

/// Compares fractions `(numerator, denominator)` with positive denominators.
fn fraction_cmp(a: (u64, u64), b: (u64, u64)) -> std::cmp::Ordering {
    (u128::from(a.0) * u128::from(b.1)).cmp(&(u128::from(b.0) * u128::from(a.1)))
}

/// What the scheduler knows of a candidate node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInput {
    /// What instances may use on the node in total.
    pub capacity: Resources,
    /// `CONTINENT_COUNTRY[_REGION]`.
    pub region: Arc<str>,
}

impl NodeInput {
    /// A node with `capacity` in `region`.
    pub fn new(capacity: Resources, region: &str) -> NodeInput {
        NodeInput {
            capacity,
            region: Arc::from(region),
        }
    }
}

/// What the scheduler knows of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppInput {
    /// Instances wanted.
    pub instances: u32,
    /// What one instance (all components together) uses.
    pub demand: Resources,
    /// Bodies of the `ac` rules (`EU`, `EU_CZ`): a node must match one, if any.
    pub allow: Vec<String>,
    /// Bodies of the `a!c` rules: a node must match none.
    pub deny: Vec<String>,
    /// The nodes the app is pinned to, sorted (empty: any node).
    pub pinned: Vec<Address>,
}

impl AppInput {
    /// An app with `instances` of `demand`, its geolocation rules as written
    /// in a spec (`acEU_CZ`, `a!cNA`) and its pinned nodes. A rule that is
    /// neither form is ignored: specs are validated before they get here.
    pub fn new(
        instances: u32,
        demand: Resources,
        geolocation: &[String],
        pinned: &[Address],
    ) -> AppInput {
        let mut allow = Vec::new();
        let mut deny = Vec::new();
        for rule in geolocation {
            if let Some(body) = rule.strip_prefix("a!c") {
                deny.push(body.to_string());
            } else if let Some(body) = rule.strip_prefix("ac") {
                allow.push(body.to_string());
            }
        }
        allow.sort();
        allow.dedup();
        deny.sort();
        deny.dedup();
        let mut pinned = pinned.to_vec();
        pinned.sort();
        pinned.dedup();
        AppInput {
            instances,
            demand,
            allow,
            deny,
            pinned,
        }
    }

    /// The scheduler's view of an app specification.
    pub fn from_spec(spec: &AppSpec) -> AppInput {
        let demand = Resources {
            cpu_tenths: spec
                .components
                .iter()
                .map(|c| u64::from(c.cpu_tenths))
                .sum(),
            ram_mb: spec.components.iter().map(|c| u64::from(c.ram_mb)).sum(),
            disk_gb: spec.components.iter().map(|c| u64::from(c.hdd_gb)).sum(),
        };
        AppInput::new(spec.instances, demand, &spec.geolocation, &spec.nodes)
    }

    /// Whether a node with this id and region passes the app's rules
    /// (capacity aside).
    pub fn admits(&self, id: &Address, region: &str) -> bool {
        (self.pinned.is_empty() || self.pinned.binary_search(id).is_ok())
            && (self.allow.is_empty() || self.allow.iter().any(|r| rule_matches(r, region)))
            && !self.deny.iter().any(|r| rule_matches(r, region))
    }
}

/// Whether a rule body (`EU`, `EU_CZ`, `NA_US_CA`) covers a region: the rule's
/// parts are the first parts of the region's.
fn rule_matches(rule: &str, region: &str) -> bool {
    region
        .strip_prefix(rule)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
}

/// Tunables of the scheduler, from the network's params.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Feasible nodes considered per empty slot (at least 1).
    pub candidates_per_instance: u32,
}

/// A node id as the scheduler's maps hold it: ordered exactly as the
/// address's bytes, but compared as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NodeKey(u64, u64, u32);

impl NodeKey {
    fn of(id: &Address) -> NodeKey {
        let b = &id.0;
        NodeKey(
            u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
        )
    }

    fn address(&self) -> Address {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&self.0.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.1.to_be_bytes());
        bytes[16..].copy_from_slice(&self.2.to_be_bytes());
        Address(bytes)
    }
}

#[derive(Clone, Debug)]
struct NodeEntry {
    /// `None` once the node stopped being a candidate; the entry goes at the next plan.
    input: Option<NodeInput>,
    /// What the instances placed here use.
    used: Resources,
    /// Every instance placed here, in no particular order: nothing that
    /// decides a placement depends on this order.
    instances: Vec<Instance>,
}

/// An instance as a node lists it. Ordered by a hash of the app's key
/// first, then the key and slot: the order in which an overfull node sheds
/// instances (last first).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Instance {
    order: u64,
    app: AppKey,
    slot: u32,
}

impl NodeEntry {
    fn add(&mut self, instance: Instance, demand: &Resources) {
        self.used = self.used.plus(demand);
        self.instances.push(instance);
    }

    fn take(&mut self, instance: &Instance, charged: &Resources) {
        self.used = self.used.minus(charged);
        if let Some(at) = self.instances.iter().position(|i| i == instance) {
            self.instances.swap_remove(at);
        }
    }

    /// The instances in their order.
    fn sorted(&self) -> Vec<&Instance> {
        let mut sorted: Vec<&Instance> = self.instances.iter().collect();
        sorted.sort();
        sorted
    }
}

#[derive(Clone, Debug)]
struct AppEntry {
    /// `None` once the app is gone; the entry goes at the next plan.
    input: Option<AppInput>,
    /// The demand counted on the nodes of its instances.
    charged: Resources,
    /// The node of each instance; `None`: not placed.
    slots: Vec<Option<Address>>,
    /// Where the app's walk of the ring starts.
    start: NodeKey,
    /// The app's place in node indexes.
    order: u64,
}

impl AppEntry {
    fn instance(&self, key: &AppKey, slot: u32) -> Instance {
        Instance {
            order: self.order,
            app: key.clone(),
            slot,
        }
    }
}

/// The scheduler's whole view: candidate nodes, apps, placements, and what
/// changed since the last plan. Cloning costs O(1).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    nodes: OrdMap<NodeKey, Arc<NodeEntry>>,
    /// Candidate nodes by region, for apps with `ac` rules.
    regions: OrdMap<Arc<str>, OrdSet<NodeKey>>,
    apps: OrdMap<AppKey, Arc<AppEntry>>,
    /// Apps with at least one empty slot.
    short: OrdSet<AppKey>,
    dirty_nodes: OrdSet<NodeKey>,
    dirty_apps: OrdSet<AppKey>,
}

/// One instance changing node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Move {
    /// The app's key.
    pub app: AppKey,
    /// The instance (slot).
    pub instance: u32,
    /// Where it was (`None`: not placed).
    pub from: Option<Address>,
    /// Where it is now (`None`: not placed any more).
    pub to: Option<Address>,
}

/// What [`plan`] decided: the cluster after it, and what changed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every app whose placement record changed (moves, a new number of
    /// slots, or removal), in key order.
    pub touched: Vec<AppKey>,
    before: Cluster,
    next: Cluster,
}

impl Plan {
    /// The cluster with the plan applied.
    pub fn cluster(&self) -> &Cluster {
        &self.next
    }

    /// The cluster with the plan applied.
    pub fn into_cluster(self) -> Cluster {
        self.next
    }

    /// Every instance whose node changed, by app and slot.
    pub fn moves(&self) -> Vec<Move> {
        let mut moves = Vec::new();
        for app in &self.touched {
            let before = self.before.placements(app).unwrap_or_default();
            let after = self.next.placements(app).unwrap_or_default();
            for slot in 0..before.len().max(after.len()) {
                let from = before.get(slot).copied().flatten();
                let to = after.get(slot).copied().flatten();
                if from != to {
                    moves.push(Move {
                        app: app.clone(),
                        instance: slot as u32,
                        from,
                        to,
                    });
                }
            }
        }
        moves
    }
}

/// Plans the placement of everything that changed in `view` since its last
/// plan. `view` is not modified.
pub fn plan(view: &Cluster, config: &Config) -> Plan {
    let mut next = view.clone();
    let mut work = Work::default();
    next.run(config, &mut work);
    Plan {
        touched: work.touched.into_iter().collect(),
        before: view.clone(),
        next,
    }
}

/// Bookkeeping of one plan.
#[derive(Default)]
struct Work {
    /// Apps whose record changed.
    touched: BTreeSet<AppKey>,
    /// Nodes that gained free capacity or became candidates.
    gained: BTreeSet<NodeKey>,
    /// Apps to place with a walk of the whole ring.
    place: BTreeSet<AppKey>,
    /// Scratch space of one app's placement, reused from app to app.
    candidates: Vec<Candidate>,
    hosted: Vec<NodeKey>,
    /// Regions by the address of their shared name: equality is all that is asked of it.
    regions_used: Vec<*const u8>,
    empty: Vec<u32>,
}

/// A feasible node found by a walk.
#[derive(Debug)]
struct Candidate {
    key: NodeKey,
    /// The address of the region's shared name.
    region: *const u8,
    /// Position in the walk.
    rank: usize,
    /// The fullest share after placing one instance there.
    share: (u64, u64),
}

/// Where an app's walk of the ring starts, and its place in node indexes.
fn ring_point(app: &str) -> (NodeKey, u64) {
    let hash = Hash::digest(&[b"FLUX/placement-ring/v1", app.as_bytes()]);
    let mut start = [0u8; 20];
    start.copy_from_slice(&hash.0[..20]);
    let mut order = [0u8; 8];
    order.copy_from_slice(&hash.0[20..28]);
    (NodeKey::of(&Address(start)), u64::from_be_bytes(order))
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Sets what the scheduler knows of a node; `None` when it is not (or no
    /// longer) a candidate: its instances move at the next plan.
    pub fn set_node(&mut self, id: Address, mut input: Option<NodeInput>) {
        let key = NodeKey::of(&id);
        // Every node of a region shares one copy of its name, so that
        // placement compares regions by pointer.
        if let Some(new) = &mut input
            && let Some((region, _)) = self.regions.get_key_value(&*new.region)
        {
            new.region = region.clone();
        }
        let old_region = match self.nodes.get(&key) {
            Some(entry) if entry.input == input => return,
            Some(entry) => entry.input.as_ref().map(|i| i.region.clone()),
            None if input.is_none() => return,
            None => None,
        };
        if let Some(region) = old_region
            && let Some(set) = self.regions.get_mut(&region)
        {
            set.remove(&key);
            if set.is_empty() {
                self.regions.remove(&region);
            }
        }
        if let Some(new) = &input {
            self.regions
                .entry(new.region.clone())
                .or_default()
                .insert(key);
        }
        match self.nodes.get_mut(&key) {
            Some(entry) => Arc::make_mut(entry).input = input,
            None => {
                self.nodes.insert(
                    key,
                    Arc::new(NodeEntry {
                        input,
                        used: Resources::default(),
                        instances: Vec::new(),
                    }),
                );
            }
        }
        self.dirty_nodes.insert(key);
    }

    /// Sets what the scheduler knows of an app; `None` when it is gone.
    pub fn set_app(&mut self, key: &str, input: Option<AppInput>) {
        match self.apps.get_mut(key) {
            Some(entry) if entry.input == input => return,
            Some(entry) => Arc::make_mut(entry).input = input,
            None if input.is_none() => return,
            None => {
                let (start, order) = ring_point(key);
                self.apps.insert(
                    Arc::from(key),
                    Arc::new(AppEntry {
                        input,
                        charged: Resources::default(),
                        slots: Vec::new(),
                        start,
                        order,
                    }),
                );
            }
        }
        let key = self
            .apps
            .get_key_value(key)
            .map(|(k, _)| k.clone())
            .expect("the app entry exists");
        self.dirty_apps.insert(key);
    }

    /// Whether something changed since the last plan.
    pub fn has_changes(&self) -> bool {
        !self.dirty_nodes.is_empty() || !self.dirty_apps.is_empty()
    }

    /// The node of each instance of an app (`None`: not placed), by key.
    pub fn placements(&self, app: &str) -> Option<&[Option<Address>]> {
        self.apps.get(app).map(|e| e.slots.as_slice())
    }

    /// How many instances an app wants.
    pub fn wanted(&self, app: &str) -> Option<u32> {
        self.apps
            .get(app)
            .and_then(|e| e.input.as_ref())
            .map(|i| i.instances)
    }

    /// Every app with a placement record, in key order, with its slots.
    pub fn apps(&self) -> impl Iterator<Item = (&AppKey, &[Option<Address>])> {
        self.apps.iter().map(|(k, e)| (k, e.slots.as_slice()))
    }

    /// `(app, instance)` of every instance placed on a node, in a fixed
    /// order (by a hash of the app's key, then slot).
    pub fn node_instances(&self, id: &Address) -> Vec<(&AppKey, u32)> {
        self.nodes
            .get(&NodeKey::of(id))
            .map(|e| e.sorted().into_iter().map(|i| (&i.app, i.slot)).collect())
            .unwrap_or_default()
    }

    /// What the instances placed on a node use.
    pub fn node_used(&self, id: &Address) -> Option<Resources> {
        self.nodes.get(&NodeKey::of(id)).map(|e| e.used)
    }

    /// What instances may use on a node, if it is a candidate.
    pub fn node_capacity(&self, id: &Address) -> Option<Resources> {
        self.nodes
            .get(&NodeKey::of(id))
            .and_then(|e| e.input.as_ref())
            .map(|i| i.capacity)
    }

    /// Candidate nodes, in id order.
    pub fn node_ids(&self) -> impl Iterator<Item = Address> + '_ {
        self.nodes.keys().map(NodeKey::address)
    }

    /// Apps with at least one instance not placed, in key order.
    pub fn short_apps(&self) -> impl Iterator<Item = &AppKey> {
        self.short.iter()
    }

    /// Rebuilds a cluster from its inputs and stored placements (as after a
    /// plan: nothing pending). Fails when the placements break a rule of the
    /// scheduler: a node over capacity, an app twice on a node, an instance
    /// on a node that is not a candidate or that the app's rules refuse.
    pub fn restore(
        nodes: impl IntoIterator<Item = (Address, NodeInput)>,
        apps: impl IntoIterator<Item = (AppKey, AppInput, Vec<Option<Address>>)>,
    ) -> Result<Cluster, String> {
        let mut cluster = Cluster::new();
        for (id, input) in nodes {
            cluster.set_node(id, Some(input));
        }
        for (key, input, slots) in apps {
            if slots.len() != input.instances as usize {
                return Err(format!(
                    "app '{key}' has {} slots for {} instances",
                    slots.len(),
                    input.instances
                ));
            }
            let (start, order) = ring_point(&key);
            let entry = AppEntry {
                charged: input.demand,
                input: Some(input),
                slots,
                start,
                order,
            };
            let input = entry.input.as_ref().expect("set above");
            for (slot, node) in entry.slots.iter().enumerate() {
                let Some(node) = node else { continue };
                if entry.slots[..slot].contains(&Some(*node)) {
                    return Err(format!("'{key}' has two instances on {node}"));
                }
                let Some(node_entry) = cluster.nodes.get_mut(&NodeKey::of(node)) else {
                    return Err(format!(
                        "instance {slot} of '{key}' is on {node}, which is not a candidate node"
                    ));
                };
                let node_entry = Arc::make_mut(node_entry);
                let region = node_entry.input.as_ref().map_or("", |i| &i.region);
                if !input.admits(node, region) {
                    return Err(format!(
                        "instance {slot} of '{key}' is on {node}, which its rules refuse"
                    ));
                }
                node_entry.add(entry.instance(&key, slot as u32), &input.demand);
            }
            if entry.slots.iter().any(Option::is_none) {
                cluster.short.insert(key.clone());
            }
            cluster.apps.insert(key, Arc::new(entry));
        }
        for (key, entry) in &cluster.nodes {
            let capacity = entry.input.as_ref().map(|i| i.capacity).unwrap_or_default();
            if !entry.used.fits_within(&capacity) {
                return Err(format!("node {} is over capacity", key.address()));
            }
        }
        cluster.dirty_nodes = OrdSet::new();
        cluster.dirty_apps = OrdSet::new();
        Ok(cluster)
    }

    /// Checks every rule the scheduler maintains, for tests: no node over
    /// capacity, no app twice on a node, the per-node index and usage agree
    /// with the slots, every instance on a candidate its app's rules admit,
    /// and the short list is exactly the apps with an empty slot.
    pub fn check(&self) -> Result<(), String> {
        let mut used: BTreeMap<NodeKey, Resources> = BTreeMap::new();
        let mut instances: BTreeMap<NodeKey, Vec<Instance>> = BTreeMap::new();
        for (key, entry) in &self.apps {
            let Some(input) = &entry.input else {
                return Err(format!("app '{key}' is gone but still has an entry"));
            };
            if entry.slots.len() != input.instances as usize {
                return Err(format!("app '{key}' has the wrong number of slots"));
            }
            if (entry.start, entry.order) != ring_point(key) {
                return Err(format!("app '{key}' has the wrong ring point"));
            }
            for (slot, node) in entry.slots.iter().enumerate() {
                let Some(node) = node else { continue };
                if entry.slots[..slot].contains(&Some(*node)) {
                    return Err(format!("app '{key}' has two instances on {node}"));
                }
                let node_key = NodeKey::of(node);
                let Some(node_input) = self.nodes.get(&node_key).and_then(|e| e.input.as_ref())
                else {
                    return Err(format!("app '{key}' is on {node}, not a candidate"));
                };
                if !input.admits(node, &node_input.region) {
                    return Err(format!("app '{key}' is on {node}, which its rules refuse"));
                }
                let total = used.entry(node_key).or_default();
                *total = total.plus(&input.demand);
                instances
                    .entry(node_key)
                    .or_default()
                    .push(entry.instance(key, slot as u32));
            }
            let short = entry.slots.iter().any(Option::is_none);
            if short != self.short.contains(key) {
                return Err(format!("app '{key}' is misfiled in the short list"));
            }
        }
        for (key, entry) in &self.nodes {
            let id = key.address();
            let Some(input) = &entry.input else {
                return Err(format!("node {id} is gone but still has an entry"));
            };
            let expected = used.remove(key).unwrap_or_default();
            if entry.used != expected {
                return Err(format!(
                    "node {id} counts {:?}, its instances use {expected:?}",
                    entry.used
                ));
            }
            if !entry.used.fits_within(&input.capacity) {
                return Err(format!("node {id} is over capacity"));
            }
            let mut listed = instances.remove(key).unwrap_or_default();
            listed.sort();
            if listed.iter().collect::<Vec<_>>() != entry.sorted() {
                return Err(format!("node {id} lists the wrong instances"));
            }
            let indexed = self
                .regions
                .get_key_value(&input.region)
                .is_some_and(|(name, set)| Arc::ptr_eq(name, &input.region) && set.contains(key));
            if !indexed {
                return Err(format!("node {id} is missing from its region"));
            }
        }
        if let Some(key) = used.keys().next() {
            return Err(format!("instances on unknown node {}", key.address()));
        }
        let in_regions: usize = self.regions.values().map(OrdSet::len).sum();
        if in_regions != self.nodes.len() {
            return Err("the region index lists nodes that are not candidates".into());
        }
        if !self.short.iter().all(|k| self.apps.contains_key(k)) {
            return Err("the short list names an unknown app".into());
        }
        Ok(())
    }

    fn run(&mut self, config: &Config, work: &mut Work) {
        let apps = std::mem::take(&mut self.dirty_apps);
        let nodes = std::mem::take(&mut self.dirty_nodes);
        // Everything that frees capacity first: apps, then nodes.
        for key in &apps {
            self.reconcile_app(key, work);
        }
        for key in &nodes {
            self.reconcile_node(key, work);
        }
        let retry: Vec<AppKey> = if work.gained.is_empty() {
            Vec::new()
        } else {
            self.short
                .iter()
                .filter(|k| !work.place.contains(*k))
                .cloned()
                .collect()
        };
        let full = std::mem::take(&mut work.place);
        let mut all: Vec<(AppKey, bool)> = full
            .into_iter()
            .map(|k| (k, true))
            .chain(retry.into_iter().map(|k| (k, false)))
            .collect();
        all.sort();
        let gained = std::mem::take(&mut work.gained);
        for (key, whole_ring) in all {
            let only = if whole_ring { None } else { Some(&gained) };
            self.place(&key, only, config, work);
        }
    }

    /// Brings an added, changed or removed app's slots in line with its
    /// input, freeing what it no longer may hold.
    fn reconcile_app(&mut self, key: &AppKey, work: &mut Work) {
        let Some(entry) = self.apps.get(key).cloned() else {
            return;
        };
        work.touched.insert(key.clone());
        let Some(input) = &entry.input else {
            for (slot, node) in entry.slots.iter().enumerate() {
                if let Some(node) = node {
                    let node = NodeKey::of(node);
                    self.release(&node, &entry, key, slot as u32);
                    work.gained.insert(node);
                }
            }
            self.apps.remove(key);
            self.short.remove(key);
            return;
        };
        let mut slots = entry.slots.clone();
        for (slot, place) in slots.iter_mut().enumerate() {
            let Some(id) = *place else { continue };
            let node = NodeKey::of(&id);
            work.gained.insert(node);
            let keep = (slot as u32) < input.instances
                && self.nodes.get(&node).is_some_and(|n| {
                    n.input.as_ref().is_some_and(|i| {
                        input.admits(&id, &i.region)
                            && n.used
                                .minus(&entry.charged)
                                .plus(&input.demand)
                                .fits_within(&i.capacity)
                    })
                });
            if keep {
                let n = Arc::make_mut(self.nodes.get_mut(&node).expect("checked above"));
                n.used = n.used.minus(&entry.charged).plus(&input.demand);
            } else {
                self.release(&node, &entry, key, slot as u32);
                *place = None;
            }
        }
        slots.resize(input.instances as usize, None);
        let demand = input.demand;
        let entry = Arc::make_mut(self.apps.get_mut(key).expect("checked above"));
        entry.slots = slots;
        entry.charged = demand;
        work.place.insert(key.clone());
    }

    /// Moves instances off a node that stopped being a candidate, no longer
    /// passes their apps' rules, or no longer has room for them.
    fn reconcile_node(&mut self, key: &NodeKey, work: &mut Work) {
        let Some(entry) = self.nodes.get(key).cloned() else {
            return;
        };
        let Some(input) = &entry.input else {
            for instance in &entry.instances {
                self.evict(key, instance, work);
            }
            self.nodes.remove(key);
            return;
        };
        work.gained.insert(*key);
        let id = key.address();
        for instance in &entry.instances {
            let admitted = self
                .apps
                .get(&instance.app)
                .and_then(|a| a.input.as_ref())
                .is_some_and(|a| a.admits(&id, &input.region));
            if !admitted {
                self.evict(key, instance, work);
            }
        }
        // Over capacity: the instances last in the node's index go first.
        loop {
            let node = self.nodes.get(key).expect("the node is a candidate");
            if node.used.fits_within(&input.capacity) {
                break;
            }
            let last = node
                .instances
                .iter()
                .max()
                .cloned()
                .expect("a node over capacity hosts something");
            self.evict(key, &last, work);
        }
    }

    /// Takes one instance off a node, leaving its slot empty for placement.
    fn evict(&mut self, node: &NodeKey, instance: &Instance, work: &mut Work) {
        let Some(app) = self.apps.get_mut(&instance.app) else {
            return;
        };
        let app = Arc::make_mut(app);
        app.slots[instance.slot as usize] = None;
        let charged = app.charged;
        if let Some(entry) = self.nodes.get_mut(node) {
            Arc::make_mut(entry).take(instance, &charged);
        }
        work.touched.insert(instance.app.clone());
        work.place.insert(instance.app.clone());
    }

    /// Takes an instance of `app` off a node's books.
    fn release(&mut self, node: &NodeKey, app: &AppEntry, key: &AppKey, slot: u32) {
        if let Some(entry) = self.nodes.get_mut(node) {
            Arc::make_mut(entry).take(&app.instance(key, slot), &app.charged);
        }
    }

    /// Fills the empty slots of an app. `only`: consider these nodes alone
    /// (every other node is known to be infeasible for the app).
    fn place(
        &mut self,
        key: &AppKey,
        only: Option<&BTreeSet<NodeKey>>,
        config: &Config,
        work: &mut Work,
    ) {
        let Some(entry) = self.apps.get(key).cloned() else {
            return;
        };
        let Some(input) = &entry.input else {
            return;
        };
        work.empty.clear();
        work.empty
            .extend((0..entry.slots.len() as u32).filter(|s| entry.slots[*s as usize].is_none()));
        if work.empty.is_empty() {
            self.short.remove(key);
            return;
        }
        work.hosted.clear();
        work.hosted
            .extend(entry.slots.iter().flatten().map(NodeKey::of));
        work.regions_used.clear();
        for node in &work.hosted {
            if let Some(i) = self.nodes.get(node).and_then(|n| n.input.as_ref()) {
                work.regions_used.push(i.region.as_ptr());
            }
        }
        let wanted = work
            .empty
            .len()
            .saturating_mul(config.candidates_per_instance.max(1) as usize);
        work.candidates.clear();
        self.walk(&entry, input, only, wanted, work);
        let mut slots = entry.slots.clone();
        let demand = input.demand;
        let order = entry.order;
        // The map's copy must be the only one left, or updating it below copies it.
        drop(entry);
        let mut filled = 0;
        for index in 0..work.empty.len() {
            let slot = work.empty[index];
            let regions_used = &work.regions_used;
            let new_region = |c: &Candidate| !regions_used.contains(&c.region);
            let best = work
                .candidates
                .iter()
                .enumerate()
                .min_by(|(_, a), (_, b)| {
                    new_region(b)
                        .cmp(&new_region(a))
                        .then_with(|| fraction_cmp(a.share, b.share))
                        .then(a.rank.cmp(&b.rank))
                })
                .map(|(i, _)| i);
            let Some(best) = best else { break };
            let chosen = work.candidates.swap_remove(best);
            let node = Arc::make_mut(self.nodes.get_mut(&chosen.key).expect("a candidate"));
            node.add(
                Instance {
                    order,
                    app: key.clone(),
                    slot,
                },
                &demand,
            );
            slots[slot as usize] = Some(chosen.key.address());
            work.regions_used.push(chosen.region);
            filled += 1;
        }
        if filled > 0 {
            work.touched.insert(key.clone());
            Arc::make_mut(self.apps.get_mut(key).expect("checked above")).slots = slots;
        }
        if filled < work.empty.len() {
            self.short.insert(key.clone());
        } else {
            self.short.remove(key);
        }
    }

    /// Collects into `work.candidates` the first `wanted` feasible nodes for
    /// an app, in ring order from the app's start.
    fn walk(
        &self,
        app: &AppEntry,
        input: &AppInput,
        only: Option<&BTreeSet<NodeKey>>,
        wanted: usize,
        work: &mut Work,
    ) {
        let start = app.start;
        let hosted = &work.hosted;
        let found = &mut work.candidates;
        let mut rank = 0usize;
        // Returns true when enough candidates were found.
        let mut visit = |key: &NodeKey, node: &NodeEntry| -> bool {
            rank += 1;
            let Some(node_input) = &node.input else {
                return false;
            };
            let after = node.used.plus(&input.demand);
            if !after.fits_within(&node_input.capacity) || hosted.contains(key) {
                return false;
            }
            let ruled =
                !input.pinned.is_empty() || !input.allow.is_empty() || !input.deny.is_empty();
            if ruled && !input.admits(&key.address(), &node_input.region) {
                return false;
            }
            found.push(Candidate {
                key: *key,
                region: node_input.region.as_ptr(),
                rank,
                share: after.fullest_share(&node_input.capacity),
            });
            found.len() >= wanted
        };
        let by_key = |keys: &mut dyn Iterator<Item = NodeKey>,
                      visit: &mut dyn FnMut(&NodeKey, &NodeEntry) -> bool| {
            for key in keys {
                if let Some(node) = self.nodes.get(&key)
                    && visit(&key, node)
                {
                    return;
                }
            }
        };
        if let Some(only) = only {
            let mut keys = only.range(start..).chain(only.range(..start)).copied();
            by_key(&mut keys, &mut visit);
        } else if !input.pinned.is_empty() {
            let pinned: Vec<NodeKey> = input.pinned.iter().map(NodeKey::of).collect();
            let split = pinned.partition_point(|key| *key < start);
            let mut keys = pinned[split..].iter().chain(&pinned[..split]).copied();
            by_key(&mut keys, &mut visit);
        } else if !input.allow.is_empty() {
            let mut keys = self.allowed_keys(input, start);
            by_key(&mut keys, &mut visit);
        } else {
            for (key, node) in self.nodes.range(start..).chain(self.nodes.range(..start)) {
                if visit(key, node) {
                    break;
                }
            }
        }
    }

    /// The candidate nodes in regions an app's `ac` rules allow, in ring
    /// order from `start`: a merge of the regions' own orders.
    fn allowed_keys(&self, input: &AppInput, start: NodeKey) -> MergedRing<'_> {
        let mut regions: Vec<&Arc<str>> = Vec::new();
        for rule in &input.allow {
            let upper = format!("{rule}~");
            let range = (
                std::ops::Bound::Included(rule.as_str()),
                std::ops::Bound::Excluded(upper.as_str()),
            );
            for (region, _) in self.regions.range::<_, str>(range) {
                if rule_matches(rule, region) && !regions.contains(&region) {
                    regions.push(region);
                }
            }
        }
        let sources = regions
            .into_iter()
            .filter_map(|r| self.regions.get(r))
            .map(|set| {
                let mut iter: Box<dyn Iterator<Item = &NodeKey> + '_> =
                    Box::new(set.range(start..).chain(set.range(..start)));
                let head = iter.next().copied();
                (head, iter)
            })
            .collect();
        MergedRing { start, sources }
    }
}

/// One region's ring: its next key, and the rest.
type RingSource<'a> = (Option<NodeKey>, Box<dyn Iterator<Item = &'a NodeKey> + 'a>);

/// Several rings of node keys merged into one ring order.
struct MergedRing<'a> {
    start: NodeKey,
    sources: Vec<RingSource<'a>>,
}

impl Iterator for MergedRing<'_> {
    type Item = NodeKey;

    fn next(&mut self) -> Option<NodeKey> {
        let start = self.start;
        // Ring order from `start`: keys at or after it first, then the ones before.
        let position = |key: &NodeKey| (*key < start, *key);
        let (index, _) = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, (head, _))| head.map(|h| (i, position(&h))))
            .min_by_key(|(_, p)| *p)?;
        let (head, iter) = &mut self.sources[index];
        let key = *head;
        *head = iter.next().copied();
        key
    }
}
