//! Run this node's share of the apps: drivers, reconciler, prober.
//!
//! The node turns its finalized placements into [`InstanceSpec`]s and hands
//! them to a [`reconciler`] through its [`Mailbox`]; the reconciler makes a
//! [`Driver`] run exactly those instances (create, restart with backoff,
//! replace a changed spec, remove what is no longer wanted, adopt what
//! already runs after a restart) and publishes each instance's status on a
//! [`StatusBoard`] that the API reads.
//!
//! Module map:
//! - `spec`: [`InstanceSpec`], its labels and spec hash.
//! - `driver`: the [`Driver`] trait and its lifecycle; `docker` (bollard),
//!   `exec` (child processes) and `mock` (the test double).
//! - `reconciler`: config (`mod.rs`), the pure plan and backoff (`state.rs`),
//!   the loop (`actor.rs`), the mailbox (`ingress.rs`).
//! - `status`: the shared status board.
//! - `prober`: health probes of running instances.
//!
//! Nothing here reads chain state: the node decides what should run, the
//! agent makes it so.

pub mod driver;
mod error;
pub mod prober;
pub mod reconciler;
pub mod spec;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;

pub use driver::docker::{DockerConfig, DockerDriver};
pub use driver::exec::{ExecConfig, ExecDriver};
pub use driver::mock::MockDriver;
pub use driver::{
    Driver, DriverKind, Instance, InstanceState, Inventory, LogChunk, LogOptions, LogStream, Stats,
};
pub use error::AgentError;
pub use reconciler::{Mailbox, ReconcilerConfig};
pub use spec::{InstanceKey, InstanceSpec, PortMapping};
pub use status::{Health, InstanceStatus, Phase, StatusBoard};

/// Which driver a node wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverChoice {
    /// Docker when an engine answers, exec otherwise.
    Auto,
    /// Docker only; no engine is an error.
    Docker,
    /// Exec only.
    Exec,
}

/// Picks and opens the node's driver: with [`DriverChoice::Auto`], Docker
/// when an engine answers and exec (state under `exec_state_dir`)
/// otherwise. The reason for falling back is logged; the caller says which
/// driver it got through [`Driver::kind`].
pub async fn open_driver(
    node: &str,
    choice: DriverChoice,
    docker: DockerConfig,
    exec_state_dir: PathBuf,
) -> Result<Arc<dyn Driver>, AgentError> {
    if choice != DriverChoice::Exec {
        match DockerDriver::connect(node, docker).await {
            Ok(driver) => return Ok(Arc::new(driver)),
            Err(e @ AgentError::NoDockerEngine { .. }) if choice == DriverChoice::Auto => {
                tracing::warn!(node, reason = %e, "no Docker engine; using the exec driver");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Arc::new(ExecDriver::new(
        node,
        ExecConfig::new(exec_state_dir),
    )?))
}
