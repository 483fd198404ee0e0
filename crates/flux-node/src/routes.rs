//! What a node serves about its own instances, beside the chain's API.
//!
//! `GET /api/v1/instances[?app=NAME]`: the status of every instance this
//! node runs (or of one app's), as its reconciler and prober last saw it.
//! Public, like placements: it says where an app runs and whether it is up,
//! nothing an owner keeps secret.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use flux_agent::InstanceStatus;
use serde::{Deserialize, Serialize};

use crate::agent::Agent;

/// `?app=NAME`.
#[derive(Debug, Deserialize)]
struct InstancesQuery {
    app: Option<String>,
}

/// The answer of `GET /api/v1/instances`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstancesView {
    /// The node that answered.
    pub node: String,
    /// How it runs apps: `docker` or `exec`.
    pub driver: String,
    /// Its instances, by app, component and instance.
    pub instances: Vec<InstanceStatus>,
}

/// The routes of the agent.
pub fn router(agent: Agent) -> Router {
    Router::new()
        .route("/api/v1/instances", get(instances))
        .with_state(agent)
}

async fn instances(
    State(agent): State<Agent>,
    Query(query): Query<InstancesQuery>,
) -> Json<InstancesView> {
    let board = agent.mailbox().status();
    let instances = match &query.app {
        Some(app) => board.app(&app.to_lowercase()),
        None => board.snapshot(),
    };
    Json(InstancesView {
        node: agent.node_id().to_string(),
        driver: agent.driver_kind().to_string(),
        instances,
    })
}
