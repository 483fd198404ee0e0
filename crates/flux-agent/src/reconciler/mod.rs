//! Drives this node's instances toward the desired set.
//!
//! - `state.rs`: the plan (pure: desired × actual × backoffs × now →
//!   actions), backoff bookkeeping and status, no IO.
//! - `actor.rs`: the async loop: list, plan, execute, publish status.
//! - `ingress.rs`: the [`Mailbox`] through which the node sets the desired
//!   set and reads status.

mod actor;
mod ingress;
mod state;

use std::sync::Arc;

pub use ingress::Mailbox;
pub use state::{Action, Backoff, Plan, ReconcilerState, plan};

use crate::driver::Driver;

/// Timing and limits of the reconciler.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// How often actual state is re-read when nothing else wakes the loop.
    pub interval_ms: u64,
    /// Delay before the first restart of a crashed instance; it doubles
    /// with each further restart.
    pub backoff_base_ms: u64,
    /// Longest delay between restarts.
    pub backoff_max_ms: u64,
    /// An instance that ran this long without ending forgets its earlier
    /// restarts.
    pub backoff_reset_after_ms: u64,
    /// Restarts after which an instance that keeps ending is reported
    /// `failed` rather than `restarting` (it is still retried).
    pub failed_after_restarts: u32,
    /// Most driver actions (start, destroy, ...) run at once.
    pub action_concurrency_max: usize,
    /// Longest any single driver action may take (an image pull included).
    pub action_timeout_ms: u64,
    /// Most instances in a desired set; a larger set is refused.
    pub instances_max: usize,
    /// How often running instances are probed.
    pub probe_interval_ms: u64,
    /// Longest wait for one probe.
    pub probe_timeout_ms: u64,
    /// Most probes at once.
    pub probe_concurrency_max: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            interval_ms: 2_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            backoff_reset_after_ms: 120_000,
            failed_after_restarts: 5,
            action_concurrency_max: 4,
            action_timeout_ms: 660_000,
            instances_max: 1_024,
            probe_interval_ms: 5_000,
            probe_timeout_ms: 2_000,
            probe_concurrency_max: 16,
        }
    }
}

/// Starts the reconciler (and its prober) for the node of `driver`.
///
/// It does nothing until the first [`Mailbox::set_desired`]: a node must
/// not tear down its instances just because it has not read its placements
/// yet. Stopping it ([`Mailbox::shutdown`], or dropping every mailbox)
/// leaves the instances running, to be adopted by the next reconciler.
pub fn spawn(driver: Arc<dyn Driver>, config: ReconcilerConfig) -> Mailbox {
    actor::spawn(driver, config)
}
