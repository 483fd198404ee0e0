//! Placement in the ledger: the scheduler's inputs derived from the state,
//! the plan applied at the end of every block, the rows that keep it, and
//! the getters that say where instances run.
//!
//! Writers of the state report which nodes and apps they touched; at the end
//! of the block [`end_block`] derives the scheduler's input for those alone
//! (a node is a candidate while it is confirmed with a passing benchmark; its
//! capacity is its benchmark's cores, RAM and disk minus the reserve in
//! `params.scheduler`), runs [`scheduler::plan`] and keeps the result. Each
//! app's placement is one row (prefix 20: the node of each instance), each
//! node's benchmark one row (prefix 21). After a restart the scheduler's
//! indexes are rebuilt from those rows.

use std::collections::{BTreeMap, BTreeSet};

use flux_types::params::SchedulerParams;
use flux_types::{Address, codec};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::benchmark::BenchmarkRecord;
use crate::exec::Event;
use crate::scheduler::{self, AppInput, AppKey, Cluster, Config, NodeInput, Resources};
use crate::state::{AppRecord, Key, NodeStatus, RestoreError, State, app_key};

/// Key prefix of an app's placement row.
pub(crate) const PREFIX_PLACEMENT: u8 = 20;
/// Key prefix of a node's benchmark row.
pub(crate) const PREFIX_BENCHMARK: u8 = 21;
/// Every key prefix of this module.
pub(crate) const PREFIXES: [u8; 2] = [PREFIX_PLACEMENT, PREFIX_BENCHMARK];

/// A row of this module, before encoding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PlacementKey {
    /// The node of each instance of an app, by [`app_key`].
    App(String),
    /// A node's last benchmark.
    Benchmark(Address),
}

impl PlacementKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            PlacementKey::App(name) => [&[PREFIX_PLACEMENT][..], name.as_bytes()].concat(),
            PlacementKey::Benchmark(id) => [&[PREFIX_BENCHMARK][..], &id.0].concat(),
        }
    }
}

/// What the ledger keeps for placement.
#[derive(Clone, Debug, Default)]
pub(crate) struct Placement {
    /// The scheduler's view: candidate nodes, apps and placements.
    pub(crate) cluster: Cluster,
    /// The last benchmark of every node that sent one.
    pub(crate) benchmarks: OrdMap<Address, BenchmarkRecord>,
    /// Nodes and apps written in this block, for the scheduler at its end.
    nodes_changed: BTreeSet<Address>,
    apps_changed: BTreeSet<String>,
    /// The scheduler params the candidates' capacities were derived with.
    derived_with: Option<SchedulerParams>,
    /// Placement rows read back by a restore, until the cluster is rebuilt.
    restored: BTreeMap<String, Vec<Option<Address>>>,
}

/// Where the instances of an app run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPlacement {
    /// Instances the app's specification asks for.
    pub wanted: u32,
    /// Instances placed on a node.
    pub placed: u32,
    /// The node of each instance, by instance index; `None`: not placed
    /// (no feasible node, or the app is blocked).
    pub instances: Vec<Option<Address>>,
}

/// A node's capacity for instances and what its instances use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    /// What instances may use in total: the benchmark's figures minus the reserve.
    pub capacity: Resources,
    /// What the instances placed on the node use.
    pub used: Resources,
}

impl Placement {
    /// The stored value of a row, `None` when it is deleted.
    pub(crate) fn row(&self, key: &PlacementKey) -> Option<Vec<u8>> {
        match key {
            PlacementKey::App(name) => self
                .cluster
                .placements(name)
                .map(|slots| codec::encode(&slots.to_vec())),
            PlacementKey::Benchmark(id) => self.benchmarks.get(id).map(codec::encode),
        }
    }

    /// Reads one stored row back; the cluster is rebuilt by [`rebuild`].
    pub(crate) fn restore_row(
        &mut self,
        prefix: u8,
        rest: &[u8],
        value: &[u8],
    ) -> Result<(), RestoreError> {
        let corrupt = |what: &str, e: codec::CodecError| RestoreError(format!("{what}: {e}"));
        match prefix {
            PREFIX_PLACEMENT => {
                let name = String::from_utf8(rest.to_vec())
                    .map_err(|_| RestoreError("bad placement key".into()))?;
                let slots = codec::decode_trusted(value).map_err(|e| corrupt("placement", e))?;
                self.restored.insert(name, slots);
            }
            PREFIX_BENCHMARK => {
                let id = Address(
                    rest.try_into()
                        .map_err(|_| RestoreError("bad benchmark key".into()))?,
                );
                let record = codec::decode_trusted(value).map_err(|e| corrupt("benchmark", e))?;
                self.benchmarks.insert(id, record);
            }
            other => return Err(RestoreError(format!("unknown key prefix {other}"))),
        }
        Ok(())
    }

    /// A node was registered, changed or removed in this block.
    pub(crate) fn node_changed(&mut self, id: Address) {
        self.nodes_changed.insert(id);
    }

    /// An app was registered, changed or removed in this block.
    pub(crate) fn app_changed(&mut self, key: &str) {
        self.apps_changed.insert(key.to_string());
    }
}

/// The scheduler's input for a node: a candidate while it is confirmed with
/// a passing benchmark.
fn node_input(state: &State, id: &Address) -> Option<NodeInput> {
    let node = state.node(id)?;
    let record = state.placement.benchmarks.get(id)?;
    if node.status != NodeStatus::Confirmed || !record.passed {
        return None;
    }
    let reserve = &state.params().scheduler;
    let report = &record.report;
    let capacity = Resources {
        cpu_tenths: u64::from(report.cores)
            .saturating_mul(10)
            .saturating_sub(reserve.reserve_cpu_tenths),
        ram_mb: report.ram_mb.saturating_sub(reserve.reserve_ram_mb),
        disk_gb: report.disk_gb.saturating_sub(reserve.reserve_disk_gb),
    };
    Some(NodeInput::new(capacity, &node.region))
}

/// The scheduler's input for an app; a blocked app wants no instance.
fn app_input(state: &State, key: &str) -> Option<AppInput> {
    let record = state.apps.get(key)?;
    let mut input = AppInput::from_spec(&record.spec);
    if state.app_blocked(key).is_some() {
        input.instances = 0;
    }
    Some(input)
}

fn config(state: &State) -> Config {
    Config {
        candidates_per_instance: state.params().scheduler.candidates_per_instance,
    }
}

/// Places what the block changed: derives the scheduler's input for every
/// node and app written in the block (every node when the scheduler params
/// changed, every app whose image was blocked or unblocked), plans, and
/// marks the placement rows that changed.
pub(crate) fn end_block(state: &mut State, events: &[Event]) {
    // A blocked app wants no instance; an unblocked one wants its own again.
    for event in events {
        if let Event::AppBlocked { app, .. } | Event::AppUnblocked { app } = event {
            state.placement.app_changed(&app_key(app));
        }
    }
    let params = state.params().scheduler.clone();
    if state.placement.derived_with.as_ref() != Some(&params) {
        let all: Vec<Address> = state.nodes.keys().copied().collect();
        state.placement.nodes_changed.extend(all);
        state.placement.derived_with = Some(params);
    }
    for id in std::mem::take(&mut state.placement.nodes_changed) {
        let input = node_input(state, &id);
        state.placement.cluster.set_node(id, input);
    }
    for key in std::mem::take(&mut state.placement.apps_changed) {
        let input = app_input(state, &key);
        state.placement.cluster.set_app(&key, input);
    }
    if !state.placement.cluster.has_changes() {
        return;
    }
    let plan = scheduler::plan(&state.placement.cluster, &config(state));
    for app in &plan.touched {
        state
            .dirty
            .insert(Key::Placement(PlacementKey::App(app.to_string())));
    }
    state.placement.cluster = plan.into_cluster();
}

/// Rebuilds the scheduler's view after a restore, from the stored
/// placements, nodes, benchmarks and apps.
pub(crate) fn rebuild(state: &mut State) -> Result<(), RestoreError> {
    let mut slots = std::mem::take(&mut state.placement.restored);
    let nodes: Vec<(Address, NodeInput)> = state
        .nodes
        .keys()
        .filter_map(|id| Some((*id, node_input(state, id)?)))
        .collect();
    let mut apps: Vec<(AppKey, AppInput, Vec<Option<Address>>)> = Vec::new();
    for key in state.apps.keys() {
        let input = app_input(state, key).expect("the app exists");
        let placed = slots
            .remove(key)
            .ok_or_else(|| RestoreError(format!("app '{key}' has no placement row")))?;
        apps.push((AppKey::from(key.as_str()), input, placed));
    }
    if let Some(key) = slots.keys().next() {
        return Err(RestoreError(format!(
            "placement row of '{key}', which is not an app"
        )));
    }
    if let Some(id) = state
        .placement
        .benchmarks
        .keys()
        .find(|id| state.node(id).is_none())
    {
        return Err(RestoreError(format!(
            "benchmark row of {id}, which is not a node"
        )));
    }
    state.placement.cluster = Cluster::restore(nodes, apps)
        .map_err(|e| RestoreError(format!("stored placements: {e}")))?;
    state.placement.derived_with = Some(state.params().scheduler.clone());
    Ok(())
}

impl State {
    /// Where the instances of an app run, by its name in any case.
    pub fn app_placement(&self, name: &str) -> Option<AppPlacement> {
        let key = app_key(name);
        let record = self.apps.get(&key)?;
        let instances = self
            .placement
            .cluster
            .placements(&key)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        Some(AppPlacement {
            wanted: record.spec.instances,
            placed: instances.iter().flatten().count() as u32,
            instances,
        })
    }

    /// The instances a node should run: each app with the index of its
    /// instance there, in a fixed order. This is what a node's agent runs.
    pub fn instances_on(&self, node: &Address) -> Vec<(&AppRecord, u32)> {
        self.placement
            .cluster
            .node_instances(node)
            .into_iter()
            .filter_map(|(key, instance)| Some((self.apps.get(&**key)?, instance)))
            .collect()
    }

    /// A candidate node's capacity for instances and what they use.
    pub fn node_resources(&self, node: &Address) -> Option<NodeResources> {
        let cluster = &self.placement.cluster;
        Some(NodeResources {
            capacity: cluster.node_capacity(node)?,
            used: cluster.node_used(node)?,
        })
    }

    /// Apps with fewer instances placed than they want (blocked apps aside),
    /// by name.
    pub fn short_apps(&self) -> impl Iterator<Item = &AppRecord> {
        self.placement
            .cluster
            .short_apps()
            .filter_map(|key| self.apps.get(&**key))
    }

    /// The scheduler's view of the network, read-only.
    pub fn scheduler(&self) -> &Cluster {
        &self.placement.cluster
    }

    pub(crate) fn put_benchmark(&mut self, id: Address, record: BenchmarkRecord) {
        self.placement.benchmarks.insert(id, record);
        self.placement.node_changed(id);
        self.dirty
            .insert(Key::Placement(PlacementKey::Benchmark(id)));
    }

    /// Forgets a node's benchmark (the node left).
    pub(crate) fn remove_benchmark(&mut self, id: &Address) {
        if self.placement.benchmarks.remove(id).is_some() {
            self.dirty
                .insert(Key::Placement(PlacementKey::Benchmark(*id)));
        }
    }
}
