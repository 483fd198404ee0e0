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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::mock::{MockCall, MockDriver};
    use crate::spec::tests::spec;

    fn config() -> ReconcilerConfig {
        ReconcilerConfig {
            interval_ms: 50,
            backoff_base_ms: 10,
            backoff_max_ms: 100,
            ..ReconcilerConfig::default()
        }
    }

    #[tokio::test]
    async fn the_loop_waits_for_a_desired_set_then_converges_and_restarts() {
        let mock = MockDriver::new("n1");
        let stale = spec("n1", "old", "web", 0);
        mock.start(&stale).await.unwrap();
        mock.clear_calls();
        let mailbox = spawn(Arc::new(mock.clone()), config());

        // Before the first desired set nothing is touched, not even what looks stale.
        mailbox.reconciled().await.unwrap();
        mailbox.reconciled().await.unwrap();
        assert!(mock.calls().is_empty());

        let desired = vec![spec("n1", "hello", "web", 0)];
        mailbox.set_desired(desired.clone()).unwrap();
        mailbox.reconciled().await.unwrap();
        let statuses = mailbox.status().snapshot();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].phase, Phase::Running);
        assert!(mock.calls().contains(&MockCall::Start(desired[0].key())));
        assert!(
            mock.calls()
                .contains(&MockCall::RemoveNetwork("old".into()))
        );

        // A crash is restarted after its backoff.
        let id = statuses[0].instance_id.clone().unwrap();
        mock.crash(&id, 137);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            mailbox.reconciled().await.unwrap();
            let status = mailbox.status().snapshot().remove(0);
            if status.phase == Phase::Running && status.restarts == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "not restarted: {status:?}");
        }
        assert!(mock.calls().contains(&MockCall::Restart(id)));
    }

    #[tokio::test]
    async fn set_desired_refuses_other_nodes_duplicates_and_a_stopped_loop() {
        let mailbox = spawn(Arc::new(MockDriver::new("n1")), config());
        let error = mailbox
            .set_desired(vec![spec("n2", "hello", "web", 0)])
            .unwrap_err();
        assert!(error.to_string().contains("node n2"), "{error}");
        let twice = vec![spec("n1", "hello", "web", 0), spec("n1", "hello", "web", 0)];
        assert!(mailbox.set_desired(twice).is_err());
        mailbox.shutdown();
        assert!(matches!(
            mailbox.set_desired(vec![]),
            Err(AgentError::Stopped)
        ));
        assert!(matches!(
            mailbox.reconciled().await,
            Err(AgentError::Stopped)
        ));
    }
}
