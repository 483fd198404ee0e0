//! The agent of a running node: follows finalized state and keeps this
//! node's instances running.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use flux_agent::{DockerConfig, DriverChoice, DriverKind, Mailbox, ReconcilerConfig};
use flux_types::Address;
use tokio::sync::watch;

use crate::error::NodeError;
use crate::placements;

/// Longest wait for the gateway to apply a block's routes before that
/// block's placements run anyway.
const ROUTES_WAIT_MS: u64 = 10_000;

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
    ///
    /// With `routes_applied` (the gateway's
    /// [`crate::NodeGateway::routes_applied`]), the placements of a block
    /// are handed over only once the gateway has applied that block's
    /// routes: a port the gateway forwarded here is free before a new
    /// instance of this node publishes it.
    pub async fn start(
        chain: flux_chain::Node,
        node_id: Address,
        options: AgentOptions,
        routes_applied: Option<watch::Receiver<u64>>,
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
        tokio::spawn(follow(
            chain,
            agent.clone(),
            options.host_ip,
            routes_applied,
        ));
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
/// finalized block whose placements differ, until the reconciler stops;
/// each one after the gateway's routes of its block are in force.
async fn follow(
    chain: flux_chain::Node,
    agent: Agent,
    host_ip: IpAddr,
    mut routes_applied: Option<watch::Receiver<u64>>,
) {
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
            wait_for_routes(&mut routes_applied, height).await;
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

/// Waits until the gateway has applied the routes of `height`. A gateway
/// that stopped following the chain is not waited for again; one that takes
/// longer than [`ROUTES_WAIT_MS`] is logged and not waited for this time.
async fn wait_for_routes(routes_applied: &mut Option<watch::Receiver<u64>>, height: u64) {
    let Some(applied) = routes_applied else {
        return;
    };
    let waited = tokio::time::timeout(
        Duration::from_millis(ROUTES_WAIT_MS),
        applied.wait_for(|applied| *applied >= height),
    )
    .await
    .map(|in_force| in_force.map(|_| ()));
    match waited {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            tracing::warn!("the gateway stopped following the chain; instances start without it");
            *routes_applied = None;
        }
        Err(_) => tracing::warn!(
            height,
            "the gateway has not applied this block's routes yet; starting its instances anyway"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn placements_wait_for_the_gateways_routes_of_their_block() {
        // The gateway applied height 4; the agent holds the placements of 5.
        let (applied, receiver) = watch::channel(4);
        let waiting = tokio::spawn(async move {
            let mut routes = Some(receiver);
            wait_for_routes(&mut routes, 5).await;
            routes
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "went ahead of the gateway");
        applied.send_replace(5);
        let mut routes = waiting.await.unwrap();
        assert!(routes.is_some());

        // A gateway that is slow is waited for a bounded time, and again at
        // the next block.
        let started = tokio::time::Instant::now();
        wait_for_routes(&mut routes, 6).await;
        assert_eq!(started.elapsed(), Duration::from_millis(ROUTES_WAIT_MS));
        assert!(routes.is_some());

        // A gateway that stopped following is not waited for, then or again.
        drop(applied);
        let started = tokio::time::Instant::now();
        wait_for_routes(&mut routes, 7).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(routes.is_none());

        // No gateway: no wait.
        wait_for_routes(&mut None, 8).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
