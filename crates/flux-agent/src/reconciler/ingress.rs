//! How the node talks to its reconciler.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, watch};

use crate::driver::Driver;
use crate::error::AgentError;
use crate::spec::InstanceSpec;
use crate::status::StatusBoard;

/// Shared between the mailbox and the loop.
#[derive(Debug)]
pub(super) struct Shared {
    /// The latest desired set; `None` until the node has sent one.
    pub(super) desired: watch::Sender<Option<Arc<Vec<InstanceSpec>>>>,
    /// Asks for a pass now.
    pub(super) wake: Notify,
    /// Set once to stop the loop.
    pub(super) stop: watch::Sender<bool>,
    /// Passes begun.
    pub(super) passes_started: AtomicU64,
    /// Passes finished.
    pub(super) passes_finished: watch::Sender<u64>,
    pub(super) instances_max: usize,
}

/// Stops the loop when the last mailbox is dropped.
#[derive(Debug)]
pub(super) struct StopOnDrop(pub(super) Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.send_replace(true);
    }
}

/// The handle to a running reconciler: cheap to clone. Dropping the last
/// clone stops the reconciler, as [`Mailbox::shutdown`] does.
#[derive(Clone)]
pub struct Mailbox {
    pub(super) shared: Arc<Shared>,
    pub(super) _stop_on_drop: Arc<StopOnDrop>,
    pub(super) board: StatusBoard,
    pub(super) driver: Arc<dyn Driver>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("node", &self.driver.node())
            .field("driver", &self.driver.kind())
            .finish()
    }
}

impl Mailbox {
    /// Replaces the desired set: every instance this node should run. Only
    /// the latest set matters, so sending is never blocked by a slow pass.
    ///
    /// Refused (and nothing changes) when the set is larger than the
    /// configured limit, names another node, or names one instance twice;
    /// a spec that is invalid on its own is not refused here but reported
    /// `failed` with the reason, so one bad app cannot stall the others.
    pub fn set_desired(&self, desired: Vec<InstanceSpec>) -> Result<(), AgentError> {
        if desired.len() > self.shared.instances_max {
            return Err(AgentError::InvalidSpec {
                key: "(desired set)".into(),
                reason: format!(
                    "{} instances is more than the limit of {} per node",
                    desired.len(),
                    self.shared.instances_max
                ),
            });
        }
        let mut keys = BTreeSet::new();
        for spec in &desired {
            if spec.node != self.driver.node() {
                return Err(AgentError::InvalidSpec {
                    key: spec.key().to_string(),
                    reason: format!(
                        "it is placed on node {}, but this reconciler runs node {}",
                        spec.node,
                        self.driver.node()
                    ),
                });
            }
            if !keys.insert(spec.key()) {
                return Err(AgentError::InvalidSpec {
                    key: spec.key().to_string(),
                    reason: "the desired set names this instance twice".into(),
                });
            }
        }
        if *self.shared.stop.borrow() {
            return Err(AgentError::Stopped);
        }
        self.shared.desired.send_replace(Some(Arc::new(desired)));
        Ok(())
    }

    /// Asks for a pass now rather than at the next interval.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Waits until a pass that began after this call has finished (so it
    /// saw everything sent before the call). Errors when the loop stopped.
    pub async fn reconciled(&self) -> Result<(), AgentError> {
        let target = self.shared.passes_started.load(Ordering::SeqCst) + 1;
        let mut finished = self.shared.passes_finished.subscribe();
        self.wake();
        let reached = finished.wait_for(|n| *n >= target).await.is_ok();
        // The loop marks every target reached when it stops.
        if !reached || *self.shared.stop.borrow() {
            return Err(AgentError::Stopped);
        }
        Ok(())
    }

    /// The status of every desired instance.
    pub fn status(&self) -> &StatusBoard {
        &self.board
    }

    /// The driver, for logs and stats.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// Stops the reconciler and its prober; instances keep running.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
    }
}
