//! What can stop a node.

/// Why a node failed to start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The chain could not start (store, genesis, network).
    #[error("the node failed to start: {0}")]
    Chain(#[from] flux_chain::ChainError),
    /// The API could not be served.
    #[error("the API failed: {0}")]
    Api(#[from] flux_api::ApiError),
    /// The agent's driver could not be opened.
    #[error("the agent could not start: {0}")]
    Agent(#[from] flux_agent::AgentError),
    /// The gateway could not start (its listener, its configuration).
    #[error("the gateway could not start: {0}")]
    Gateway(#[from] flux_gateway::GatewayError),
    /// The gateway's routes could not be built from the state.
    #[error("the gateway's routes cannot be built: {0}")]
    GatewayRoutes(String),
    /// The consensus engine stopped by itself.
    #[error("the consensus engine stopped: {0}")]
    Engine(String),
}
