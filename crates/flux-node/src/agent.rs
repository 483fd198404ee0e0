//! The agent of a running node: follows finalized state and keeps this
//! node's instances running.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use flux_agent::{DockerConfig, DriverChoice, DriverKind, Mailbox, ReconcilerConfig};
use flux_types::Address;

use crate::error::NodeError;
use crate::placements;

/// How the node runs its apps.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Docker, exec, or Docker when an engine answers.
    pub driver: DriverChoice,
    /// The address instances publish their ports on (the node's own host).
    pub host_ip: IpAddr,
    /// Where the exec driver keeps its records.
    pub exec_state_dir: PathBuf,
    /// Timing and limits of the reconciler.
    pub reconciler: ReconcilerConfig,
}

/// The running agent.
#[derive(Clone, Debug)]
pub struct Agent {
    mailbox: Mailbox,
    node_id: Address,
}

impl Agent {
    /// Opens the driver and starts the reconciler for `node_id`, then keeps
    /// its desired set equal to this node's placements: once now, and after
    /// every finalized block that changes them.
    pub async fn start(
        chain: flux_chain::Node,
        node_id: Address,
        options: AgentOptions,
    ) -> Result<Agent, NodeError> {
        let driver = flux_agent::open_driver(
            &node_id.to_string(),
            options.driver.clone(),
            DockerConfig::default(),
            options.exec_state_dir.clone(),
        )
        .await?;
        let kind = driver.kind();
        match kind {
            DriverKind::Docker => tracing::info!(driver = %kind, "apps run with: docker"),
            _ => tracing::info!(driver = %kind, "apps run with: exec (no Docker engine)"),
        }
        let mailbox = flux_agent::reconciler::spawn(driver, options.reconciler.clone());
        let agent = Agent { mailbox, node_id };
        tokio::spawn(follow(chain, agent.clone(), options.host_ip));
        Ok(agent)
    }

    /// The reconciler's handle: status, logs and stats.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The node this agent runs.
    pub fn node_id(&self) -> Address {
        self.node_id
    }

    /// Which driver runs the apps.
    pub fn driver_kind(&self) -> DriverKind {
        self.mailbox.driver().kind()
    }

    /// Stops the reconciler; the instances keep running, to be adopted by
    /// the next start.
    pub fn shutdown(&self) {
        self.mailbox.shutdown();
    }
}

/// Sets the desired set from the finalized state, then again after every
/// finalized block whose placements differ, until the reconciler stops.
async fn follow(chain: flux_chain::Node, agent: Agent, host_ip: IpAddr) {
    let mut last: Option<Vec<flux_agent::InstanceSpec>> = None;
    loop {
        let state = chain.state();
        let height = state.height();
        // Computing placements is pure but not free: keep it off the
        // runtime's async threads.
        let node_id = agent.node_id;
        let desired = match tokio::task::spawn_blocking(move || {
            placements::desired(&state, &node_id, host_ip)
        })
        .await
        {
            Ok(desired) => desired,
            Err(error) => {
                tracing::error!(%error, "computing this node's placements failed");
                return;
            }
        };
        if last.as_ref() != Some(&desired) {
            tracing::info!(
                height,
                instances = desired.len(),
                "desired instances changed"
            );
            match agent.mailbox.set_desired(desired.clone()) {
                Ok(()) => {
                    agent.mailbox.wake();
                    last = Some(desired);
                }
                Err(flux_agent::AgentError::Stopped) => return,
                Err(error) => tracing::error!(%error, "the reconciler refused the desired set"),
            }
        }
        tokio::select! {
            () = chain.wait_for_height(height + 1) => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        if chain.failure().is_some() {
            return;
        }
        if chain.state().height() == height {
            // No new block: the chain may be stopping; do not spin.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
