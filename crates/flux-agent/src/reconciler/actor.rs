//! The reconciler's async loop: list, plan, execute, publish status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::driver::{Driver, Inventory};
use crate::error::AgentError;
use crate::prober::probe_board;
use crate::reconciler::ReconcilerConfig;
use crate::reconciler::ingress::{Mailbox, Shared, StopOnDrop};
use crate::reconciler::state::{Action, ReconcilerState, plan};
use crate::spec::InstanceSpec;
use crate::status::{Phase, StatusBoard};

/// Shortest wait between passes, so a backoff that just ran out does not
/// spin the loop.
const PASS_GAP_MIN_MS: u64 = 10;

struct Actor {
    driver: Arc<dyn Driver>,
    config: ReconcilerConfig,
    shared: Arc<Shared>,
    board: StatusBoard,
    state: ReconcilerState,
}

pub(super) fn spawn(driver: Arc<dyn Driver>, config: ReconcilerConfig) -> Mailbox {
    let shared = Arc::new(Shared {
        desired: watch::channel(None).0,
        wake: Notify::new(),
        stop: watch::channel(false).0,
        passes_started: AtomicU64::new(0),
        passes_finished: watch::channel(0).0,
        instances_max: config.instances_max,
    });
    let board = StatusBoard::default();
    info!(node = driver.node(), driver = %driver.kind(), "reconciler started");
    tokio::spawn(prober_loop(shared.clone(), board.clone(), config.clone()));
    let actor = Actor {
        driver: driver.clone(),
        config,
        shared: shared.clone(),
        board: board.clone(),
        state: ReconcilerState::default(),
    };
    // Subscribed before the first set can be sent, so none is missed.
    let desired_rx = shared.desired.subscribe();
    let stop_rx = shared.stop.subscribe();
    tokio::spawn(actor.run(desired_rx, stop_rx));
    Mailbox {
        _stop_on_drop: Arc::new(StopOnDrop(shared.clone())),
        shared,
        board,
        driver,
    }
}

impl Actor {
    async fn run(
        mut self,
        mut desired_rx: watch::Receiver<Option<Arc<Vec<InstanceSpec>>>>,
        mut stop_rx: watch::Receiver<bool>,
    ) {
        let interval = Duration::from_millis(self.config.interval_ms);
        let mut wait = interval;
        loop {
            if *stop_rx.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = stop_rx.changed() => continue,
                _ = desired_rx.changed() => {}
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            let desired = desired_rx.borrow_and_update().clone();
            self.shared.passes_started.fetch_add(1, Ordering::SeqCst);
            wait = match desired {
                Some(desired) => self.pass(&desired).await.min(interval),
                None => interval,
            };
            self.shared.passes_finished.send_modify(|n| *n += 1);
        }
        self.shared.passes_finished.send_replace(u64::MAX);
        info!(
            node = self.driver.node(),
            "reconciler stopped; instances keep running"
        );
    }

    /// One pass; returns how long until the next one is due.
    async fn pass(&mut self, desired: &[InstanceSpec]) -> Duration {
        let config = self.config.clone();
        let interval = Duration::from_millis(config.interval_ms);
        let Some(mut inventory) = self.list().await else {
            return interval;
        };
        let now = Instant::now();
        self.state.observe(desired, &inventory, now, &config);
        let plan = plan(desired, &inventory, self.state.backoffs(), now, &config);
        for (key, left) in &plan.waiting {
            debug!(%key, left_ms = left.as_millis(), "waiting for backoff");
        }
        if !plan.actions.is_empty() {
            self.execute(plan.actions.clone()).await;
            if let Some(fresh) = self.list().await {
                inventory = fresh;
            }
        }
        let now = Instant::now();
        let statuses = self
            .state
            .statuses(desired, &inventory, &plan.refused, now, &config);
        let next_retry = statuses
            .iter()
            .filter(|s| s.phase != Phase::Running)
            .filter_map(|s| s.retry_in_ms)
            .min()
            .map_or(interval, Duration::from_millis);
        self.board.publish(statuses);
        next_retry.max(Duration::from_millis(PASS_GAP_MIN_MS))
    }

    async fn list(&self) -> Option<Inventory> {
        let timeout = Duration::from_millis(self.config.action_timeout_ms);
        match tokio::time::timeout(timeout, self.driver.list()).await {
            Ok(Ok(inventory)) => Some(inventory),
            Ok(Err(e)) => {
                warn!(error = %e, "cannot list instances; will retry");
                None
            }
            Err(_) => {
                warn!(
                    timeout_ms = self.config.action_timeout_ms,
                    "listing instances timed out; will retry"
                );
                None
            }
        }
    }

    /// Runs the actions phase by phase, each phase at most
    /// `action_concurrency_max` at a time, and records starts for backoff.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut phases: Vec<Vec<Action>> = Vec::new();
        for action in actions {
            match phases.last_mut() {
                Some(phase) if phase[0].phase() == action.phase() => phase.push(action),
                _ => phases.push(vec![action]),
            }
        }
        let timeout_ms = self.config.action_timeout_ms;
        for phase in phases {
            let driver = self.driver.clone();
            let results: Vec<(Action, Option<String>)> = futures_util::stream::iter(phase)
                .map(|action| {
                    let driver = driver.clone();
                    async move {
                        info!(node = driver.node(), %action, "reconcile");
                        let outcome = tokio::time::timeout(
                            Duration::from_millis(timeout_ms),
                            run_action(driver.as_ref(), &action),
                        )
                        .await
                        .unwrap_or_else(|_| {
                            Err(AgentError::Timeout {
                                operation: action.to_string(),
                                timeout_ms,
                            })
                        });
                        let error = outcome.err().map(|e| {
                            warn!(%action, error = %e, "action failed");
                            e.to_string()
                        });
                        (action, error)
                    }
                })
                .buffer_unordered(self.config.action_concurrency_max.max(1))
                .collect()
                .await;
            let now = Instant::now();
            for (action, error) in results {
                self.state.record_attempt(&action, error, now);
            }
        }
    }
}

async fn run_action(driver: &dyn Driver, action: &Action) -> Result<(), AgentError> {
    match action {
        Action::Start(spec) => driver.start(spec).await.map(|_| ()),
        Action::Restart { id, .. } => driver.restart(id).await.map(|_| ()),
        Action::Replace { id, spec } => {
            driver.destroy(id).await?;
            driver.start(spec).await.map(|_| ())
        }
        Action::Destroy { id, .. } => driver.destroy(id).await,
        Action::RemoveVolume(key) => driver.remove_volume(key).await,
        Action::RemoveNetwork(app) => driver.remove_network(app).await,
    }
}

async fn prober_loop(shared: Arc<Shared>, board: StatusBoard, config: ReconcilerConfig) {
    let mut stop_rx = shared.stop.subscribe();
    let interval = Duration::from_millis(config.probe_interval_ms);
    let timeout = Duration::from_millis(config.probe_timeout_ms);
    loop {
        if *stop_rx.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = stop_rx.changed() => continue,
            () = tokio::time::sleep(interval) => {}
        }
        probe_board(&board, timeout, config.probe_concurrency_max).await;
    }
}
