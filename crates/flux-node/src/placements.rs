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
        // An app whose image governance blocked runs nowhere: leaving it out
        // of the plan stops its instances on every node.
        if state.app_blocked(&app.spec.name).is_some() {
            continue;
        }
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

#[cfg(test)]
mod tests {
    use flux_ledger::{BlockContext, build_block};
    use flux_types::app::Component;
    use flux_types::{
        Amount, Genesis, GenesisAccount, GenesisValidator, Params, ProposalAction, SecretKey,
        SignedTransaction, Tier, Transaction, TxBody, VoteChoice,
    };

    use super::*;

    fn signed(state: &State, key: &SecretKey, nonce: u64, body: TxBody) -> SignedTransaction {
        Transaction {
            chain_id: state.chain_id().to_string(),
            signer: key.public_key(),
            nonce,
            fee: state.params().tx_fee_min,
            body,
        }
        .sign(key)
    }

    fn next(state: &State, txs: Vec<SignedTransaction>) -> State {
        let ctx = BlockContext {
            timestamp_ms: state.time_ms() + 1_000,
            proposer: SecretKey::development("validator").public_key(),
        };
        let built = build_block(state, &ctx, txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        built.outcome.state
    }

    #[test]
    fn an_app_with_a_blocked_image_is_placed_nowhere() {
        let owner = SecretKey::development("owner");
        let node = SecretKey::development("node");
        let mut params = Params::devnet();
        params.gov.voting_period_ms = 1_500;
        let genesis = Genesis {
            chain_id: "flux-test".into(),
            genesis_time_ms: 1_700_000_000_000,
            params,
            accounts: vec![GenesisAccount {
                address: owner.address(),
                balance: Amount::flux(1_000),
            }],
            validators: vec![GenesisValidator {
                name: "validator".into(),
                public_key: SecretKey::development("validator").public_key(),
                p2p_endpoint: "127.0.0.1:16125".into(),
                api_endpoint: "127.0.0.1:16127".into(),
            }],
        };
        let (state, _) = State::from_genesis(&genesis).unwrap();
        let spec = AppSpec {
            name: "shop".into(),
            description: String::new(),
            owner: owner.address(),
            instances: 1,
            contacts: vec![],
            geolocation: vec![],
            nodes: vec![],
            static_ip: false,
            components: vec![Component {
                name: "web".into(),
                description: String::new(),
                repotag: "nginx:1.25".into(),
                ports: vec![31_000],
                container_ports: vec![80],
                domains: vec![String::new()],
                environment: vec![],
                commands: vec![],
                container_data: String::new(),
                cpu_tenths: 1,
                ram_mb: 100,
                hdd_gb: 1,
                health_path: String::new(),
            }],
        };
        let txs = vec![
            signed(
                &state,
                &owner,
                0,
                TxBody::NodeRegister {
                    node_key: node.public_key(),
                    tier: Tier::Cumulus,
                    endpoint: "127.0.0.1:16127".into(),
                    region: "EU_CZ".into(),
                },
            ),
            signed(
                &state,
                &owner,
                1,
                TxBody::AppRegister {
                    spec,
                    months: 1,
                    max_payment: Amount::flux(1),
                },
            ),
            signed(
                &state,
                &owner,
                2,
                TxBody::GovPropose {
                    title: "no nginx".into(),
                    description: String::new(),
                    action: ProposalAction::ImagePolicy {
                        block: vec!["nginx".into()],
                        unblock: vec![],
                    },
                    deposit: state.params().gov.proposal_deposit,
                },
            ),
            signed(
                &state,
                &owner,
                3,
                TxBody::GovVote {
                    proposal: 1,
                    choice: VoteChoice::Yes,
                },
            ),
        ];
        let mut state = next(&state, txs);
        assert_eq!(node_instances(&state, &node.address()).len(), 1);
        // The vote closes at block 3 (1.5 s after block 1) and the policy applies two blocks later.
        for _ in 0..4 {
            state = next(&state, vec![]);
        }
        assert!(state.app_blocked("shop").is_some());
        assert!(node_instances(&state, &node.address()).is_empty());
    }
}
