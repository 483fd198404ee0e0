//! The node's gateway: every app reachable by name through this node.
//!
//! [`route_table`] turns finalized state into the gateway's routes, as a
//! pure function of the state: every app that governance has not blocked,
//! with each instance the ledger placed, served at the IP of the hosting
//! node's registered endpoint on the component's published port; the
//! instances on this node are marked local, so the gateway tries them
//! first and leaves their ports to them instead of forwarding them.
//!
//! [`NodeGateway::start`] opens the gateway with the table of the state in
//! force, then swaps in a new table after every finalized block that
//! changes it (apps, placements, node endpoints, the blocklist). After each
//! block it publishes the height whose routes are in force
//! ([`NodeGateway::routes_applied`]): the agent waits for it before it
//! runs that block's placements, so that a port that gains an instance on
//! this node is no longer forwarded here when the instance publishes it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use flux_gateway::{Gateway, GatewayConfig, GatewayError, Instance, RouteTable};
use flux_ledger::State;
use flux_types::Address;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::NodeError;

/// Longest wait for the next block before the state is read again anyway.
const FOLLOW_WAIT_MS: u64 = 5_000;

/// Pause after a height that did not move (the chain may be stopping).
const STALL_PAUSE_MS: u64 = 200;

/// The routes of every app in `state`, as seen by the gateway of
/// `this_node`.
///
/// An app without a placed instance keeps its name (the gateway answers
/// 503 for it, not 404); a blocked app has no route. An instance whose
/// node has no readable endpoint is left out and logged.
pub fn route_table(state: &State, this_node: &Address) -> Result<RouteTable, GatewayError> {
    let mut builder = RouteTable::builder(&state.params().network_domain)?;
    for app in state.apps() {
        if state.app_blocked(&app.spec.name).is_some() {
            continue;
        }
        let placed = state
            .app_placement(&app.spec.name)
            .map(|placement| placement.instances)
            .unwrap_or_default();
        let instances: Vec<Instance> = placed
            .iter()
            .flatten()
            .filter_map(|node| {
                let record = state.node(node)?;
                let Some(ip) = endpoint_ip(&record.endpoint) else {
                    tracing::warn!(
                        app = %app.spec.name,
                        %node,
                        endpoint = %record.endpoint,
                        "the node's endpoint names no reachable host; its instance gets no traffic"
                    );
                    return None;
                };
                Some(Instance {
                    node: *node,
                    ip,
                    local: node == this_node,
                })
            })
            .collect();
        builder.app(&app.spec, &instances);
    }
    Ok(builder.build())
}

/// The IP of a node endpoint `HOST:PORT` (an IP, `[IPv6]`, or a name
/// resolved now).
fn endpoint_ip(endpoint: &str) -> Option<IpAddr> {
    if let Ok(addr) = endpoint.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let (host, _port) = endpoint.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .ok()?
        .next()
        .map(|addr| addr.ip())
}

/// The gateway of a running node and the task that feeds it routes.
#[derive(Debug)]
pub struct NodeGateway {
    gateway: Arc<Gateway>,
    follower: JoinHandle<()>,
    applied: watch::Receiver<u64>,
}

impl NodeGateway {
    /// Opens the gateway with the routes of the finalized state, and keeps
    /// them equal to that state after every finalized block.
    pub async fn start(
        chain: flux_chain::Node,
        node_id: Address,
        config: GatewayConfig,
    ) -> Result<NodeGateway, NodeError> {
        let state = chain.state();
        let height = state.height();
        let table = build(state, node_id)
            .await
            .ok_or_else(|| NodeError::GatewayRoutes("the route builder stopped".into()))?
            .map_err(|e| NodeError::GatewayRoutes(e.to_string()))?;
        let gateway = Arc::new(Gateway::start(config, table.clone()).await?);
        let (applied_tx, applied) = watch::channel(height);
        let follower = tokio::spawn(follow(
            chain,
            Arc::clone(&gateway),
            node_id,
            height,
            table,
            applied_tx,
        ));
        Ok(NodeGateway {
            gateway,
            follower,
            applied,
        })
    }

    /// The height whose routes are in force: TCP forwarders of ports that
    /// gained an instance on this node by that height are closed, their
    /// ports free. It closes when the gateway stops following the chain.
    pub fn routes_applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// The address the HTTP gateway listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.gateway.http_addr()
    }

    /// The running gateway: its routes, backends and counters.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Stops following the chain, then stops the gateway and closes its
    /// connections.
    pub async fn shutdown(self) {
        self.follower.abort();
        let _ = self.follower.await;
        if let Ok(gateway) = Arc::try_unwrap(self.gateway) {
            gateway.shutdown().await;
        }
    }
}

/// The route table of `state`, computed off the runtime's async threads;
/// `None` if that task failed.
async fn build(state: State, node_id: Address) -> Option<Result<RouteTable, GatewayError>> {
    match tokio::task::spawn_blocking(move || route_table(&state, &node_id)).await {
        Ok(table) => Some(table),
        Err(error) => {
            tracing::error!(%error, "computing the gateway's routes failed");
            None
        }
    }
}

/// Swaps in the routes of each new finalized state that changes them, and
/// publishes each height once its routes are in force (or kept, when they
/// cannot be built).
async fn follow(
    chain: flux_chain::Node,
    gateway: Arc<Gateway>,
    node_id: Address,
    mut height: u64,
    mut last: RouteTable,
    applied: watch::Sender<u64>,
) {
    loop {
        tokio::select! {
            () = chain.wait_for_height(height + 1) => {}
            () = tokio::time::sleep(Duration::from_millis(FOLLOW_WAIT_MS)) => {}
        }
        if chain.failure().is_some() {
            return;
        }
        let state = chain.state();
        if state.height() == height {
            // No new block: the chain may be stopping; do not spin.
            tokio::time::sleep(Duration::from_millis(STALL_PAUSE_MS)).await;
            continue;
        }
        height = state.height();
        match build(state, node_id).await {
            None => return,
            Some(Err(error)) => {
                tracing::error!(height, %error, "the gateway's routes cannot be built; keeping the last ones");
            }
            Some(Ok(table)) if table != last => {
                tracing::info!(
                    height,
                    apps = table.apps().count(),
                    "gateway routes changed"
                );
                // Ports that gained a local instance are free when this returns.
                gateway.update_and_release(table.clone()).await;
                last = table;
            }
            // Ports that could not be forwarded yet (a leaving local
            // instance still held one) are tried again at every block.
            Some(Ok(_)) => gateway.retry_forwarding(),
        }
        applied.send_replace(height);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use flux_gateway::Miss;
    use flux_types::app::Component;
    use flux_types::{
        Amount, AppSpec, BenchmarkReport, Params, ProposalAction, SecretKey, SignedTransaction,
        Tier, TxBody, VoteChoice,
    };

    use super::*;
    use crate::testkit::{self, next, signed};

    fn spec(
        owner: Address,
        name: &str,
        repotag: &str,
        instances: u32,
        ports: Vec<u16>,
        domains: Vec<&str>,
    ) -> AppSpec {
        AppSpec {
            name: name.into(),
            description: String::new(),
            owner,
            instances,
            contacts: vec![],
            geolocation: vec![],
            nodes: vec![],
            static_ip: false,
            components: vec![Component {
                name: "web".into(),
                description: String::new(),
                repotag: repotag.into(),
                container_ports: ports.iter().map(|_| 8080).collect(),
                ports,
                domains: domains.into_iter().map(String::from).collect(),
                environment: vec![],
                commands: vec![],
                container_data: String::new(),
                cpu_tenths: 1,
                ram_mb: 100,
                hdd_gb: 1,
                health_path: String::new(),
            }],
        }
    }

    /// A state with `node_count` registered, confirmed nodes (on 127.0.0.2
    /// and up) and
    /// two apps: `shop` (2 instances, a custom domain) and `blog` (1
    /// instance, another image); `extra` transactions of the owner follow,
    /// from nonce `node_count + 2`.
    fn network(
        node_count: usize,
        extra: impl Fn(&State, u64) -> Vec<SignedTransaction>,
    ) -> (State, Vec<SecretKey>) {
        let owner = SecretKey::development("owner");
        let nodes: Vec<SecretKey> = (0..node_count)
            .map(|i| SecretKey::development(&format!("node{i}")))
            .collect();
        let mut params = Params::devnet();
        params.gov.voting_period_ms = 1_500;
        let genesis = testkit::genesis(
            params,
            &owner,
            10_000,
            SecretKey::development("validator").public_key(),
        );
        let (state, _) = State::from_genesis(&genesis).unwrap();
        let mut txs: Vec<SignedTransaction> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                signed(
                    &state,
                    &owner,
                    i as u64,
                    TxBody::NodeRegister {
                        node_key: node.public_key(),
                        tier: Tier::Cumulus,
                        endpoint: format!("127.0.0.{}:16127", i + 2),
                        region: "EU_CZ".into(),
                    },
                )
            })
            .collect();
        let apps = [
            spec(
                owner.address(),
                "shop",
                "flux-hello:latest",
                2,
                vec![31000, 31001],
                vec!["shop.example", ""],
            ),
            spec(
                owner.address(),
                "blog",
                "nginx:1.25",
                1,
                vec![32000],
                vec![""],
            ),
        ];
        for (i, spec) in apps.into_iter().enumerate() {
            txs.push(signed(
                &state,
                &owner,
                (node_count + i) as u64,
                TxBody::AppRegister {
                    spec,
                    months: 1,
                    max_payment: Amount::flux(10),
                },
            ));
        }
        txs.extend(extra(&state, (node_count + 2) as u64));
        let state = next(&state, txs);
        // Each node confirms itself with a passing benchmark; the ledger
        // places the apps at the end of that block.
        let benchmarks = nodes
            .iter()
            .map(|node| {
                signed(
                    &state,
                    node,
                    0,
                    TxBody::NodeBenchmark {
                        report: BenchmarkReport {
                            cores: 4,
                            ram_mb: 8_000,
                            disk_gb: 100,
                            cpu_score: 1_000,
                            disk_write_mb_per_s: 200,
                        },
                    },
                )
            })
            .collect();
        let state = next(&state, benchmarks);
        (state, nodes)
    }

    fn ip_of(state: &State, node: &Address) -> IpAddr {
        endpoint_ip(&state.node(node).unwrap().endpoint).unwrap()
    }

    #[test]
    fn every_placed_instance_is_a_backend_and_local_ones_come_first() {
        let (state, nodes) = network(4, |_, _| vec![]);
        let placed: Vec<Address> = state
            .app_placement("shop")
            .unwrap()
            .instances
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(placed.len(), 2, "the ledger placed both instances");
        let local = placed[1];
        let table = route_table(&state, &local).unwrap();
        assert_eq!(table.domain(), "flux.localhost");

        let route = table.resolve("Shop.flux.localhost:16180").unwrap();
        assert_eq!(route.app.name, "shop");
        assert_eq!(route.port.port, 31000);
        let backends: Vec<(SocketAddr, bool)> = route
            .port
            .backends
            .iter()
            .map(|b| (b.addr, b.local))
            .collect();
        assert_eq!(
            backends,
            vec![
                (SocketAddr::new(ip_of(&state, &local), 31000), true),
                (SocketAddr::new(ip_of(&state, &placed[0]), 31000), false),
            ]
        );
        // The second port, by name; the custom domain.
        let second = table.resolve("shop_31001.flux.localhost").unwrap();
        assert_eq!(second.port.backends.len(), 2);
        assert_eq!(table.resolve("shop.example").unwrap().port.port, 31000);
        // One instance of blog, remote from every node but its own.
        let blog = table.resolve("blog.flux.localhost").unwrap();
        assert_eq!(blog.port.backends.len(), 1);
        assert_eq!(
            table.resolve("nope.flux.localhost").unwrap_err(),
            Miss::UnknownApp("nope".into())
        );

        // A node that hosts nothing sees every backend as remote.
        let hosting: Vec<Address> = state
            .apps()
            .filter_map(|a| state.app_placement(&a.spec.name))
            .flat_map(|p| p.instances.into_iter().flatten())
            .collect();
        let idle = nodes
            .iter()
            .map(|k| k.address())
            .find(|a| !hosting.contains(a))
            .expect("three instances leave one of four nodes idle");
        let table = route_table(&state, &idle).unwrap();
        let backends: Vec<_> = table
            .apps()
            .flat_map(|a| &a.ports)
            .flat_map(|p| &p.backends)
            .collect();
        assert_eq!(
            backends.len(),
            2 * 2 + 1,
            "shop: two ports of two instances; blog: one"
        );
        assert!(backends.iter().all(|b| !b.local));
    }

    #[test]
    fn an_app_without_instances_keeps_its_name_and_a_blocked_app_has_none() {
        // No node: both apps are known, with no backend (the gateway answers 503).
        let (state, _) = network(0, |_, _| vec![]);
        let table = route_table(&state, &SecretKey::development("any").address()).unwrap();
        let shop = table.resolve("shop.flux.localhost").unwrap();
        assert!(shop.port.backends.is_empty());

        // Governance blocks blog's image: blog loses its routes, shop keeps them.
        let owner = SecretKey::development("owner");
        let (mut state, nodes) = network(3, |state, nonce| {
            vec![
                signed(
                    state,
                    &owner,
                    nonce,
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
                    state,
                    &owner,
                    nonce + 1,
                    TxBody::GovVote {
                        proposal: 1,
                        choice: VoteChoice::Yes,
                    },
                ),
            ]
        });
        let node = nodes[0].address();
        assert!(
            route_table(&state, &node)
                .unwrap()
                .resolve("blog.flux.localhost")
                .is_ok()
        );
        for _ in 0..4 {
            state = next(&state, vec![]);
        }
        assert!(state.app_blocked("blog").is_some());
        let table = route_table(&state, &node).unwrap();
        assert_eq!(
            table.resolve("blog.flux.localhost").unwrap_err(),
            Miss::UnknownApp("blog".into())
        );
        assert_eq!(
            table
                .resolve("shop.flux.localhost")
                .unwrap()
                .port
                .backends
                .len(),
            2
        );
    }

    #[test]
    fn endpoints_give_ips() {
        assert_eq!(
            endpoint_ip("127.0.42.3:16127"),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 42, 3)))
        );
        assert_eq!(endpoint_ip("[::1]:16127"), Some("::1".parse().unwrap()));
        assert_eq!(
            endpoint_ip("localhost:16127").map(|ip| ip.is_loopback()),
            Some(true)
        );
        assert_eq!(endpoint_ip("no port"), None);
    }
}
