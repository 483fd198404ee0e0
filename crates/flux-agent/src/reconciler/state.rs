//! The reconciler's logic: plain state and pure functions, no IO, no clock
//! (time comes in as `now`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use crate::driver::{Instance, Inventory};
use crate::reconciler::ReconcilerConfig;
use crate::spec::{InstanceKey, InstanceSpec};
use crate::status::{Health, InstanceStatus, Phase};

/// One step toward the desired set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create and start a missing instance.
    Start(InstanceSpec),
    /// Start an ended instance again.
    Restart {
        /// The instance.
        id: String,
        /// Its key.
        key: InstanceKey,
    },
    /// Destroy an instance with an outdated spec and start the new spec
    /// (its volume is kept).
    Replace {
        /// The outdated instance.
        id: String,
        /// The new spec.
        spec: InstanceSpec,
    },
    /// Destroy an instance that is not wanted (or a duplicate).
    Destroy {
        /// The instance.
        id: String,
        /// Its key.
        key: InstanceKey,
    },
    /// Remove the volume of an instance that is no longer wanted here.
    RemoveVolume(InstanceKey),
    /// Remove the network of an app that has no instance wanted here.
    RemoveNetwork(String),
}

impl Action {
    /// Actions run in phases, each finished before the next begins:
    /// destroys free names and ports, then instances start, then volumes
    /// and networks (which Docker refuses to remove while in use) go.
    pub fn phase(&self) -> u8 {
        match self {
            Action::Destroy { .. } => 0,
            Action::Start(_) | Action::Restart { .. } | Action::Replace { .. } => 1,
            Action::RemoveVolume(_) => 2,
            Action::RemoveNetwork(_) => 3,
        }
    }

    /// The instance an action restarts or starts, for backoff bookkeeping.
    pub fn started_key(&self) -> Option<InstanceKey> {
        match self {
            Action::Start(spec) | Action::Replace { spec, .. } => Some(spec.key()),
            Action::Restart { key, .. } => Some(key.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Start(spec) => write!(f, "start {}", spec.key()),
            Action::Restart { id, key } => write!(f, "restart {key} ({id})"),
            Action::Replace { id, spec } => write!(f, "replace {} ({id})", spec.key()),
            Action::Destroy { id, key } => write!(f, "destroy {key} ({id})"),
            Action::RemoveVolume(key) => write!(f, "remove volume {key}"),
            Action::RemoveNetwork(app) => write!(f, "remove network {app}"),
        }
    }
}

/// What to do now, and what waits for its backoff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions, ordered by [`Action::phase`].
    pub actions: Vec<Action>,
    /// Instances whose next start waits for their backoff, with the time left.
    pub waiting: BTreeMap<InstanceKey, Duration>,
    /// Wanted instances that cannot be run, with the reason (an invalid spec).
    pub refused: BTreeMap<InstanceKey, String>,
}

/// Restart bookkeeping of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Starts and restarts since it last ran steadily.
    pub attempts: u32,
    /// When the last one was made.
    pub last_attempt: Instant,
    /// Why the last one failed, if the driver refused it.
    pub last_error: Option<String>,
}

impl Backoff {
    /// Time to wait after the last attempt before the next:
    /// `base × 2^(attempts−1)`, at most `max`.
    pub fn delay(&self, config: &ReconcilerConfig) -> Duration {
        let exponent = self.attempts.saturating_sub(1).min(32);
        let delay_ms = config
            .backoff_base_ms
            .saturating_mul(1u64 << exponent)
            .min(config.backoff_max_ms);
        Duration::from_millis(delay_ms)
    }

    /// Time left before the next attempt may be made.
    pub fn remaining(&self, config: &ReconcilerConfig, now: Instant) -> Duration {
        (self.last_attempt + self.delay(config)).saturating_duration_since(now)
    }
}

/// Decides what to do: the wanted instances against what the driver has.
///
/// - A wanted instance that is missing is started; one that ended is
///   restarted once its backoff has passed; one with another spec hash is
///   replaced; duplicates are destroyed (the running one with the right
///   spec is kept). A running instance with the right hash is adopted as is.
/// - Instances not wanted are destroyed, their volumes removed, and the
///   network of an app with nothing wanted here removed.
/// - The inventory holds only this node's instances, so nothing here can
///   touch another node's.
pub fn plan(
    desired: &[InstanceSpec],
    inventory: &Inventory,
    backoffs: &BTreeMap<InstanceKey, Backoff>,
    now: Instant,
    config: &ReconcilerConfig,
) -> Plan {
    let mut plan = Plan::default();
    let mut wanted: BTreeMap<InstanceKey, &InstanceSpec> = BTreeMap::new();
    for spec in desired {
        match spec.validate() {
            Ok(()) => {
                wanted.entry(spec.key()).or_insert(spec);
            }
            Err(e) => {
                plan.refused.insert(spec.key(), e.to_string());
            }
        }
    }
    let mut found: BTreeMap<&InstanceKey, Vec<&Instance>> = BTreeMap::new();
    for instance in &inventory.instances {
        found.entry(&instance.key).or_default().push(instance);
    }
    let may_start = |key: &InstanceKey, plan: &mut Plan| match backoffs.get(key) {
        Some(backoff) => {
            let left = backoff.remaining(config, now);
            if left.is_zero() {
                true
            } else {
                plan.waiting.insert(key.clone(), left);
                false
            }
        }
        None => true,
    };

    for (key, spec) in &wanted {
        let hash = spec.spec_hash();
        let mut candidates = found.remove(key).unwrap_or_default();
        // Best first: the right spec before another, running before not.
        candidates.sort_by_key(|i| (i.spec_hash != hash, !i.state.is_up(), i.id.clone()));
        let mut candidates = candidates.into_iter();
        let Some(keep) = candidates.next() else {
            if may_start(key, &mut plan) {
                plan.actions.push(Action::Start((*spec).clone()));
            }
            continue;
        };
        for extra in candidates {
            plan.actions.push(Action::Destroy {
                id: extra.id.clone(),
                key: key.clone(),
            });
        }
        if keep.spec_hash != hash {
            plan.actions.push(Action::Replace {
                id: keep.id.clone(),
                spec: (*spec).clone(),
            });
        } else if !keep.state.is_up() && may_start(key, &mut plan) {
            plan.actions.push(Action::Restart {
                id: keep.id.clone(),
                key: key.clone(),
            });
        }
    }
    for instances in found.values() {
        for instance in instances {
            plan.actions.push(Action::Destroy {
                id: instance.id.clone(),
                key: instance.key.clone(),
            });
        }
    }
    for key in &inventory.volumes {
        if !wanted.contains_key(key) {
            plan.actions.push(Action::RemoveVolume(key.clone()));
        }
    }
    let wanted_apps: BTreeSet<&str> = wanted.keys().map(|k| k.app.as_str()).collect();
    for app in &inventory.networks {
        if !wanted_apps.contains(app.as_str()) {
            plan.actions.push(Action::RemoveNetwork(app.clone()));
        }
    }
    plan.actions.sort_by_key(Action::phase);
    plan
}

/// The reconciler's memory between passes: restart backoffs, and since
/// when each instance has been seen running.
#[derive(Clone, Debug, Default)]
pub struct ReconcilerState {
    backoffs: BTreeMap<InstanceKey, Backoff>,
    running_since: BTreeMap<InstanceKey, Instant>,
}

impl ReconcilerState {
    /// The backoffs, for [`plan`].
    pub fn backoffs(&self) -> &BTreeMap<InstanceKey, Backoff> {
        &self.backoffs
    }

    /// Takes in what the driver reports: an instance running for
    /// `backoff_reset_after_ms` forgets its restarts; bookkeeping of
    /// instances no longer wanted is dropped.
    pub fn observe(
        &mut self,
        desired: &[InstanceSpec],
        inventory: &Inventory,
        now: Instant,
        config: &ReconcilerConfig,
    ) {
        let wanted: BTreeMap<InstanceKey, String> =
            desired.iter().map(|s| (s.key(), s.spec_hash())).collect();
        let running: BTreeSet<&InstanceKey> = inventory
            .instances
            .iter()
            .filter(|i| i.state.is_up() && wanted.get(&i.key) == Some(&i.spec_hash))
            .map(|i| &i.key)
            .collect();
        self.running_since.retain(|key, _| running.contains(key));
        for key in running {
            let since = *self.running_since.entry(key.clone()).or_insert(now);
            if now.saturating_duration_since(since)
                >= Duration::from_millis(config.backoff_reset_after_ms)
            {
                self.backoffs.remove(key);
            }
        }
        self.backoffs.retain(|key, _| wanted.contains_key(key));
    }

    /// Records a start or restart made at `now` (`error` when the driver
    /// refused it). A replacement starts a fresh count: it is a new spec.
    pub fn record_attempt(&mut self, action: &Action, error: Option<String>, now: Instant) {
        let Some(key) = action.started_key() else {
            return;
        };
        if matches!(action, Action::Replace { .. }) {
            self.backoffs.remove(&key);
        }
        let backoff = self.backoffs.entry(key).or_insert(Backoff {
            attempts: 0,
            last_attempt: now,
            last_error: None,
        });
        backoff.attempts = backoff.attempts.saturating_add(1);
        backoff.last_attempt = now;
        backoff.last_error = error;
    }

    /// The status of every wanted instance, given the latest inventory.
    pub fn statuses(
        &self,
        desired: &[InstanceSpec],
        inventory: &Inventory,
        refused: &BTreeMap<InstanceKey, String>,
        now: Instant,
        config: &ReconcilerConfig,
    ) -> Vec<InstanceStatus> {
        let mut by_key: BTreeMap<&InstanceKey, Vec<&Instance>> = BTreeMap::new();
        for instance in &inventory.instances {
            by_key.entry(&instance.key).or_default().push(instance);
        }
        let mut seen = BTreeSet::new();
        let mut statuses = Vec::with_capacity(desired.len());
        for spec in desired {
            let key = spec.key();
            if !seen.insert(key.clone()) {
                continue;
            }
            let hash = spec.spec_hash();
            let instances = by_key.get(&key).map(Vec::as_slice).unwrap_or_default();
            let current = instances
                .iter()
                .find(|i| i.spec_hash == hash && i.state.is_up())
                .or_else(|| instances.iter().find(|i| i.spec_hash == hash))
                .or_else(|| instances.first());
            let backoff = self.backoffs.get(&key);
            let restarts = backoff.map_or(0, |b| b.attempts.saturating_sub(1));
            let retry_in_ms = backoff
                .map(|b| u64::try_from(b.remaining(config, now).as_millis()).unwrap_or(u64::MAX));
            let (phase, reason) = if let Some(reason) = refused.get(&key) {
                (Phase::Failed, Some(reason.clone()))
            } else {
                match current {
                    Some(i) if i.spec_hash == hash && i.state.is_up() => (Phase::Running, None),
                    _ => {
                        let reason = backoff
                            .and_then(|b| b.last_error.clone())
                            .or_else(|| current.map(|i| i.state.to_string()));
                        let failing = backoff.is_some_and(|b| {
                            b.last_error.is_some() || restarts >= config.failed_after_restarts
                        });
                        match (current, backoff) {
                            (_, Some(_)) if failing => (Phase::Failed, reason),
                            (Some(_), Some(_)) => (Phase::Restarting, reason),
                            _ => (Phase::Pending, reason),
                        }
                    }
                }
            };
            statuses.push(InstanceStatus {
                node: spec.node.clone(),
                phase,
                retry_in_ms: if phase == Phase::Running {
                    None
                } else {
                    retry_in_ms
                },
                reason,
                instance_id: current.map(|i| i.id.clone()),
                host_ip: spec.host_ip,
                ports: spec.ports.clone(),
                restarts,
                health_path: spec.health_path.clone(),
                health: Health::Unknown,
                key,
            });
        }
        statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::mock::MockDriver;
    use crate::driver::{Driver, InstanceState};
    use crate::spec::tests::spec;

    fn config() -> ReconcilerConfig {
        ReconcilerConfig {
            backoff_base_ms: 1_000,
            backoff_max_ms: 8_000,
            backoff_reset_after_ms: 30_000,
            failed_after_restarts: 3,
            ..ReconcilerConfig::default()
        }
    }

    /// Plans against what `driver` holds and renders the actions as text,
    /// so a test reads as "given this, the reconciler does that".
    async fn check(
        driver: &MockDriver,
        desired: &[InstanceSpec],
        state: &ReconcilerState,
        now: Instant,
        expected: &[&str],
    ) -> Plan {
        let inventory = driver.list().await.unwrap();
        let plan = plan(desired, &inventory, state.backoffs(), now, &config());
        let rendered: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
        assert_eq!(rendered, expected, "plan for {desired:?}");
        plan
    }

    /// Runs a plan's actions on the mock and records attempts, as the actor does.
    async fn execute(driver: &MockDriver, state: &mut ReconcilerState, plan: &Plan, now: Instant) {
        for action in &plan.actions {
            let error = match action {
                Action::Start(spec) => driver.start(spec).await.err(),
                Action::Restart { id, .. } => driver.restart(id).await.err(),
                Action::Replace { id, spec } => {
                    driver.destroy(id).await.unwrap();
                    driver.start(spec).await.err()
                }
                Action::Destroy { id, .. } => driver.destroy(id).await.err(),
                Action::RemoveVolume(key) => driver.remove_volume(key).await.err(),
                Action::RemoveNetwork(app) => driver.remove_network(app).await.err(),
            };
            state.record_attempt(action, error.map(|e| e.to_string()), now);
        }
    }

    fn id_of(driver: &MockDriver, component: &str) -> String {
        driver
            .all_instances()
            .into_iter()
            .find(|(_, i)| i.key.component == component)
            .map(|(_, i)| i.id)
            .unwrap()
    }

    #[tokio::test]
    async fn missing_instances_start_and_converge() {
        let driver = MockDriver::new("n1");
        let mut state = ReconcilerState::default();
        let now = Instant::now();
        let desired = [spec("n1", "hello", "web", 0), spec("n1", "hello", "api", 0)];
        let plan = check(
            &driver,
            &desired,
            &state,
            now,
            &["start hello/api#0", "start hello/web#0"],
        )
        .await;
        execute(&driver, &mut state, &plan, now).await;
        check(&driver, &desired, &state, now, &[]).await;
    }

    #[tokio::test]
    async fn crashed_instances_restart_with_growing_bounded_backoff() {
        let driver = MockDriver::new("n1");
        let mut state = ReconcilerState::default();
        let start = Instant::now();
        let desired = [spec("n1", "hello", "web", 0)];
        let plan = check(&driver, &desired, &state, start, &["start hello/web#0"]).await;
        execute(&driver, &mut state, &plan, start).await;
        let id = id_of(&driver, "web");

        // Each crash waits twice as long as the one before, up to the maximum.
        let mut now = start;
        for expected_delay_ms in [1_000, 2_000, 4_000, 8_000, 8_000] {
            driver.crash(&id, 137);
            let plan = check(&driver, &desired, &state, now, &[]).await;
            assert_eq!(
                plan.waiting[&desired[0].key()],
                Duration::from_millis(expected_delay_ms)
            );
            now += Duration::from_millis(expected_delay_ms);
            let restart = format!("restart hello/web#0 ({id})");
            let plan = check(&driver, &desired, &state, now, &[restart.as_str()]).await;
            execute(&driver, &mut state, &plan, now).await;
        }

        // Running steadily for the reset period forgets the restarts.
        let inventory = driver.list().await.unwrap();
        state.observe(&desired, &inventory, now, &config());
        now += Duration::from_secs(30);
        state.observe(&desired, &inventory, now, &config());
        driver.crash(&id, 1);
        let restart = format!("restart hello/web#0 ({id})");
        check(&driver, &desired, &state, now, &[restart.as_str()]).await;
    }

    #[tokio::test]
    async fn a_running_instance_with_the_same_spec_is_adopted() {
        let driver = MockDriver::new("n1");
        let desired = [spec("n1", "hello", "web", 0)];
        driver.start(&desired[0]).await.unwrap();
        // A fresh reconciler (no memory) finds it and leaves it alone.
        check(
            &driver,
            &desired,
            &ReconcilerState::default(),
            Instant::now(),
            &[],
        )
        .await;
    }

    #[tokio::test]
    async fn a_changed_spec_is_replaced() {
        let driver = MockDriver::new("n1");
        let old = spec("n1", "hello", "web", 0);
        driver.start(&old).await.unwrap();
        let id = id_of(&driver, "web");
        let mut new = old.clone();
        new.env.push("VERSION=2".into());
        let expected = format!("replace hello/web#0 ({id})");
        check(
            &driver,
            &[new],
            &ReconcilerState::default(),
            Instant::now(),
            &[expected.as_str()],
        )
        .await;
    }

    #[tokio::test]
    async fn duplicates_keep_the_running_one() {
        let driver = MockDriver::new("n1");
        let desired = [spec("n1", "hello", "web", 0)];
        driver.start(&desired[0]).await.unwrap();
        driver.start(&desired[0]).await.unwrap();
        let ids: Vec<String> = driver
            .all_instances()
            .into_iter()
            .map(|(_, i)| i.id)
            .collect();
        driver.crash(&ids[0], 1);
        let expected = format!("destroy hello/web#0 ({})", ids[0]);
        check(
            &driver,
            &desired,
            &ReconcilerState::default(),
            Instant::now(),
            &[expected.as_str()],
        )
        .await;
    }

    #[tokio::test]
    async fn removing_an_app_removes_instances_then_volumes_then_network() {
        let driver = MockDriver::new("n1");
        let mut state = ReconcilerState::default();
        let now = Instant::now();
        let web = spec("n1", "hello", "web", 0);
        let other = spec("n1", "other", "web", 0);
        driver.start(&web).await.unwrap();
        driver.start(&other).await.unwrap();
        let id = id_of(&driver, "web");
        let plan = check(
            &driver,
            std::slice::from_ref(&other),
            &state,
            now,
            &[
                &format!("destroy hello/web#0 ({id})"),
                "remove volume hello/web#0",
                "remove network hello",
            ],
        )
        .await;
        execute(&driver, &mut state, &plan, now).await;
        let inventory = driver.list().await.unwrap();
        assert_eq!(inventory.instances.len(), 1);
        assert_eq!(inventory.networks, BTreeSet::from(["other".to_string()]));
        assert_eq!(inventory.volumes, BTreeSet::from([other.key()]));
    }

    #[tokio::test]
    async fn an_instance_moved_away_loses_its_volume_but_the_app_keeps_its_network() {
        let driver = MockDriver::new("n1");
        let now = Instant::now();
        let first = spec("n1", "hello", "web", 0);
        let second = spec("n1", "hello", "web", 1);
        driver.start(&first).await.unwrap();
        driver.start(&second).await.unwrap();
        let id = driver
            .all_instances()
            .into_iter()
            .find(|(_, i)| i.key == first.key())
            .unwrap()
            .1
            .id;
        check(
            &driver,
            &[second],
            &ReconcilerState::default(),
            now,
            &[
                &format!("destroy hello/web#0 ({id})"),
                "remove volume hello/web#0",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn another_nodes_instances_are_never_touched() {
        let a = MockDriver::new("a");
        let b = MockDriver::on_same_engine(&a, "b");
        b.start(&spec("b", "hello", "web", 0)).await.unwrap();
        // Node a wants nothing: its plan is empty, b's instance is not its business.
        check(&a, &[], &ReconcilerState::default(), Instant::now(), &[]).await;
        assert!(a.calls().is_empty());
        assert_eq!(b.list().await.unwrap().instances.len(), 1);
    }

    #[tokio::test]
    async fn start_errors_back_off_and_report_failed_with_the_reason() {
        let driver = MockDriver::new("n1");
        let mut state = ReconcilerState::default();
        let now = Instant::now();
        let desired = [spec("n1", "hello", "web", 0)];
        driver.fail_next_start("image flux-hello:latest is not present");
        let plan = check(&driver, &desired, &state, now, &["start hello/web#0"]).await;
        execute(&driver, &mut state, &plan, now).await;
        let inventory = driver.list().await.unwrap();
        let statuses = state.statuses(&desired, &inventory, &BTreeMap::new(), now, &config());
        assert_eq!(statuses[0].phase, Phase::Failed);
        assert!(
            statuses[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("not present"),
            "{:?}",
            statuses[0].reason
        );
        assert_eq!(statuses[0].retry_in_ms, Some(1_000));
        // The half-created instance is restarted after the backoff.
        check(&driver, &desired, &state, now, &[]).await;
        let id = id_of(&driver, "web");
        let later = now + Duration::from_secs(1);
        let plan = check(
            &driver,
            &desired,
            &state,
            later,
            &[&format!("restart hello/web#0 ({id})")],
        )
        .await;
        execute(&driver, &mut state, &plan, later).await;
        let inventory = driver.list().await.unwrap();
        let statuses = state.statuses(&desired, &inventory, &BTreeMap::new(), later, &config());
        assert_eq!(statuses[0].phase, Phase::Running);
        assert_eq!(statuses[0].restarts, 1);
    }

    #[tokio::test]
    async fn status_moves_from_restarting_to_failed_after_repeated_crashes() {
        let driver = MockDriver::new("n1");
        let mut state = ReconcilerState::default();
        let mut now = Instant::now();
        let desired = [spec("n1", "hello", "web", 0)];
        let plan = check(&driver, &desired, &state, now, &["start hello/web#0"]).await;
        execute(&driver, &mut state, &plan, now).await;
        let id = id_of(&driver, "web");
        let mut phases = vec![];
        for _ in 0..4 {
            driver.crash(&id, 2);
            let inventory = driver.list().await.unwrap();
            let status = &state.statuses(&desired, &inventory, &BTreeMap::new(), now, &config())[0];
            phases.push(status.phase);
            assert_eq!(status.reason.as_deref(), Some("exited with code 2"));
            now += Duration::from_secs(60);
            let next = super::plan(&desired, &inventory, state.backoffs(), now, &config());
            execute(&driver, &mut state, &next, now).await;
        }
        assert_eq!(
            phases,
            [
                Phase::Restarting,
                Phase::Restarting,
                Phase::Restarting,
                Phase::Failed
            ]
        );
    }

    #[tokio::test]
    async fn invalid_specs_are_refused_not_run() {
        let driver = MockDriver::new("n1");
        let mut bad = spec("n1", "hello", "web", 0);
        bad.env = vec!["NOEQUALS".into()];
        let inventory = driver.list().await.unwrap();
        let plan = plan(
            std::slice::from_ref(&bad),
            &inventory,
            &BTreeMap::new(),
            Instant::now(),
            &config(),
        );
        assert!(plan.actions.is_empty());
        let state = ReconcilerState::default();
        let statuses = state.statuses(&[bad], &inventory, &plan.refused, Instant::now(), &config());
        assert_eq!(statuses[0].phase, Phase::Failed);
        assert!(statuses[0].reason.as_deref().unwrap().contains("KEY=VALUE"));
    }

    #[test]
    fn states_that_count_as_up() {
        assert!(InstanceState::Running.is_up());
        assert!(!InstanceState::Exited { code: 0 }.is_up());
        assert!(!InstanceState::Created.is_up());
    }
}
