//! Which app instances this node should run, read from finalized state.
//!
//! The answer is a pure function of the state: every node that reads the
//! same finalized block derives the same placements, so no two nodes ever
//! claim one instance and no instance is left without a node while one
//! fits.

use std::net::IpAddr;

use flux_agent::InstanceSpec;
use flux_ledger::scheduler::{self, AppInput, Cluster, NodeInput, Resources};
use flux_ledger::{NodeStatus, State};
use flux_types::{Address, AppSpec};

/// Nodes the scheduler weighs per empty slot.
const CANDIDATES_PER_INSTANCE: u32 = 2;

/// What a node offers until a benchmark says more: the smallest production
/// tier (2 cores, 8 GB, 220 GB), or its own tier's thresholds if larger.
const CAPACITY_FLOOR: Resources = Resources {
    cpu_tenths: 20,
    ram_mb: 8_192,
    disk_gb: 220,
};

/// One instance of an app placed on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The app's specification in force.
    pub spec: AppSpec,
    /// The instance's slot.
    pub instance: u32,
}

/// The placements of every app in `state`, as a cluster.
///
/// Candidates are the registered nodes: confirmed ones, or, while no node
/// is confirmed (a network whose nodes have not benchmarked yet), every
/// registered node. A node offers its tier's thresholds as capacity, at
/// least [`CAPACITY_FLOOR`].
pub fn cluster(state: &State) -> Cluster {
    let params = state.params();
    let any_confirmed = state.nodes().any(|n| n.status == NodeStatus::Confirmed);
    let mut cluster = Cluster::new();
    for node in state.nodes() {
        if any_confirmed && node.status != NodeStatus::Confirmed {
            continue;
        }
        let tier = params.tier(node.tier);
        let capacity = Resources {
            cpu_tenths: (u64::from(tier.cores_min) * 10).max(CAPACITY_FLOOR.cpu_tenths),
            ram_mb: tier.ram_mb_min.max(CAPACITY_FLOOR.ram_mb),
            disk_gb: tier.disk_gb_min.max(CAPACITY_FLOOR.disk_gb),
        };
        cluster.set_node(node.id, Some(NodeInput::new(capacity, &node.region)));
    }
    for app in state.apps() {
        let key = app.spec.name.to_lowercase();
        cluster.set_app(&key, Some(AppInput::from_spec(&app.spec)));
    }
    let config = scheduler::Config {
        candidates_per_instance: CANDIDATES_PER_INSTANCE,
    };
    scheduler::plan(&cluster, &config).into_cluster()
}

/// Every instance placed on `node`, in app-name then slot order.
pub fn node_instances(state: &State, node: &Address) -> Vec<Placed> {
    let cluster = cluster(state);
    let mut placed: Vec<Placed> = cluster
        .node_instances(node)
        .into_iter()
        .filter_map(|(app, instance)| {
            state.app(app).map(|record| Placed {
                spec: record.spec.clone(),
                instance,
            })
        })
        .collect();
    placed.sort_by(|a, b| (&a.spec.name, a.instance).cmp(&(&b.spec.name, b.instance)));
    placed
}

/// The specs the agent of `node` should run: every component of every
/// instance placed there, publishing its ports on `host_ip`.
pub fn desired(state: &State, node: &Address, host_ip: IpAddr) -> Vec<InstanceSpec> {
    let node_name = node.to_string();
    node_instances(state, node)
        .iter()
        .flat_map(|placed| {
            InstanceSpec::for_app_instance(&node_name, &placed.spec, placed.instance, host_ip)
        })
        .collect()
}
