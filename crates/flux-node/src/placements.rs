//! Which app instances this node should run, read from finalized state.
//!
//! The ledger places instances (on confirmed nodes with a passing
//! benchmark) at the end of every block; this module turns what it placed
//! on this node into the specs the agent runs. Every node that reads the
//! same finalized block sees the same placements.

use std::net::IpAddr;

use flux_agent::InstanceSpec;
use flux_ledger::State;
use flux_types::Address;

/// The specs the agent of `node` should run: every component of every
/// instance the ledger placed there, publishing its ports on `host_ip`.
///
/// The ledger's scheduler decides placements at the end of every block
/// ([`State::instances_on`]); a node only reads them. Each (app, slot) pair
/// becomes the specs of that instance's components, from the spec the slot
/// runs now ([`State::instance_spec`]: a rolling update reaches the slots one
/// at a time).
pub fn desired(state: &State, node: &Address, host_ip: IpAddr) -> Vec<InstanceSpec> {
    let node_name = node.to_string();
    state
        .instances_on(node)
        .into_iter()
        .flat_map(|(app, instance)| {
            // During a rolling update a slot runs the previous spec until
            // its switch time; the ledger says which.
            let spec = state.instance_spec(app, instance);
            InstanceSpec::for_app_instance(&node_name, spec, instance, host_ip)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use flux_types::app::Component;
    use flux_types::{
        Amount, AppSpec, BenchmarkReport, Params, ProposalAction, SecretKey, Tier, TxBody,
        VoteChoice,
    };

    use super::*;
    use crate::testkit::{self, next, signed};

    fn host() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn a_node_runs_what_the_ledger_placed_and_nothing_once_the_image_is_blocked() {
        let owner = SecretKey::development("owner");
        let node = SecretKey::development("node");
        let mut params = Params::devnet();
        params.gov.voting_period_ms = 1_500;
        let genesis = testkit::genesis(
            params,
            &owner,
            1_000,
            SecretKey::development("validator").public_key(),
        );
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
                &node,
                0,
                TxBody::NodeBenchmark {
                    report: BenchmarkReport {
                        cores: 4,
                        ram_mb: 8_192,
                        disk_gb: 100,
                        cpu_score: 1_000,
                        disk_write_mb_per_s: 100,
                    },
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
        // The node confirmed itself by its benchmark; the ledger placed the
        // app's one instance (one component) on it.
        assert_eq!(desired(&state, &node.address(), host()).len(), 1);
        assert_eq!(
            state.app_placement("shop").unwrap().instances,
            vec![Some(node.address())]
        );
        // The vote closes at block 3 (1.5 s after block 1) and the policy applies two blocks later.
        for _ in 0..4 {
            state = next(&state, vec![]);
        }
        assert!(state.app_blocked("shop").is_some());
        assert!(desired(&state, &node.address(), host()).is_empty());
        assert_eq!(state.app_placement("shop").unwrap().placed, 0);
    }
}
