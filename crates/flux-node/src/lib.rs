//! Run a Flux node: chain, API, agent and gateway together.
//!
//! [`run`] starts the chain (the BFT engine when a network is configured,
//! the single-validator loop otherwise), the gateway that routes requests
//! for apps to their instances, the agent that keeps this node's
//! placed instances running, the loop that benchmarks the node, the loop
//! that verifies other nodes' work, and the HTTP API, and stops them in
//! reverse order when the caller's shutdown future completes or the
//! consensus engine fails.
//!
//! - `placements`: the instances the ledger placed on this node, as the
//!   specs the agent runs (pure).
//! - `agent`: the driver, the reconciler, and the loop that feeds it after
//!   every finalized block, once the gateway has applied that block's routes.
//! - `benchmark`: the loop that benchmarks this node once it is registered
//!   and every period after, and submits the report signed by its key.
//! - `work`: the loop that probes what the ledger assigned this node to
//!   verify each probe window and reports it in signed work reports.
//! - `gateway`: the gateway's routes from finalized state (pure), and the
//!   loop that swaps them in after every finalized block.
//! - `routes`: the API routes about this node's own instances: their
//!   status (public), logs and stats (signed by the app's owner).

pub mod agent;
pub mod benchmark;
mod error;
pub mod gateway;
pub mod placements;
pub mod routes;
#[cfg(test)]
mod testkit;
pub mod work;

use std::future::Future;
use std::time::Duration;

pub use agent::{Agent, AgentOptions};
pub use benchmark::BenchmarkOptions;
pub use error::NodeError;
pub use flux_gateway::{DEFAULT_HTTP_PORT as GATEWAY_HTTP_PORT_DEFAULT, GatewayConfig};
pub use gateway::NodeGateway;

/// How often the node checks that its consensus engine still runs.
const ENGINE_CHECK_MS: u64 = 500;

/// Everything a node runs.
#[derive(Debug)]
pub struct NodeOptions {
    /// The chain: store, genesis, key, mempool.
    pub chain: flux_chain::NodeConfig,
    /// The peer-to-peer network; `None` validates alone.
    pub network: Option<flux_chain::consensus::NetworkConfig>,
    /// The HTTP API.
    pub api: flux_api::ApiConfig,
    /// The agent; `None` runs no apps.
    pub agent: Option<AgentOptions>,
    /// The gateway; `None` routes no app traffic.
    pub gateway: Option<GatewayConfig>,
    /// The node's own benchmarks; `None` never benchmarks automatically.
    pub benchmark: Option<BenchmarkOptions>,
}

/// Runs a node until `shutdown` completes (or the consensus engine fails),
/// then stops the API, the gateway, the agent and the chain, in that order. Running
/// instances are left running for the next start to adopt.
pub async fn run(
    options: NodeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let node_id = options.chain.node_key.address();
    let node_key = options.chain.node_key.clone();
    let listen = options.api.listen;
    let node = match options.network {
        Some(network) => {
            let p2p = network.listen;
            let node = flux_chain::Node::start_network(options.chain, network).await?;
            tracing::info!(api = %listen, %p2p, node = %node_id, "chain started");
            node
        }
        None => {
            let node = flux_chain::Node::start(options.chain).await?;
            tracing::info!(api = %listen, node = %node_id, "chain started");
            node
        }
    };
    // The gateway starts first: it takes its routes from the state in
    // force, so that ports of instances placed here are left free for them;
    // after each block, the agent waits for the gateway's routes of that
    // block before it starts the instances newly placed here.
    let gateway = match options.gateway {
        Some(config) => match NodeGateway::start(node.clone(), node_id, config).await {
            Ok(gateway) => Some(gateway),
            Err(error) => {
                node.shutdown().await;
                return Err(error);
            }
        },
        None => None,
    };
    let agent = match options.agent {
        Some(agent_options) => match Agent::start(
            node.clone(),
            node_id,
            agent_options,
            gateway.as_ref().map(NodeGateway::routes_applied),
        )
        .await
        {
            Ok(agent) => Some(agent),
            Err(error) => {
                if let Some(gateway) = gateway {
                    gateway.shutdown().await;
                }
                node.shutdown().await;
                return Err(error);
            }
        },
        None => None,
    };
    let work = tokio::spawn(work::run(node.clone(), node_key.clone()));
    let benchmark = options
        .benchmark
        .map(|benchmark| tokio::spawn(benchmark::run(node.clone(), node_key, benchmark)));
    let watched = node.clone();
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    let stop = async move {
        let engine_failed = async {
            loop {
                if let Some(failure) = watched.failure() {
                    return failure;
                }
                tokio::time::sleep(Duration::from_millis(ENGINE_CHECK_MS)).await;
            }
        };
        tokio::select! {
            () = shutdown => {}
            failure = engine_failed => {
                let _ = failed_tx.send(failure);
            }
        }
    };
    let extra = agent
        .clone()
        .map(|agent| routes::router(agent, node.clone()))
        .unwrap_or_default();
    let served = flux_api::serve_with(node.clone(), options.api, extra, stop).await;
    if let Some(gateway) = gateway {
        gateway.shutdown().await;
    }
    if let Some(benchmark) = &benchmark {
        benchmark.abort();
    }
    work.abort();
    if let Some(agent) = &agent {
        agent.shutdown();
    }
    node.shutdown().await;
    tracing::info!("node stopped");
    if let Ok(failure) = failed_rx.await {
        return Err(NodeError::Engine(failure));
    }
    served.map_err(NodeError::from)
}
