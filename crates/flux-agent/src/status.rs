//! Per-instance status, written by the reconciler and the prober, read by
//! the API.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::spec::{InstanceKey, PortMapping};

/// Where an instance stands, from the reconciler's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Wanted, not yet started.
    Pending,
    /// Running with the wanted spec.
    Running,
    /// Ended; waiting out its backoff before the next restart.
    Restarting,
    /// Cannot be run as things stand (bad spec, missing image, or it keeps
    /// crashing); the reconciler keeps retrying at its longest backoff.
    Failed,
}

/// The prober's latest verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "health", rename_all = "lowercase")]
pub enum Health {
    /// Not probed yet, or nothing to probe (no published port).
    #[default]
    Unknown,
    /// The probe succeeded.
    Healthy,
    /// The probe failed.
    Unhealthy {
        /// What the probe saw. Serialized as `health_reason`: the status it
        /// is flattened into has a `reason` of its own (why it is not
        /// running).
        #[serde(rename = "health_reason")]
        reason: String,
    },
}

/// One instance's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Which instance.
    #[serde(flatten)]
    pub key: InstanceKey,
    /// The node it runs on.
    pub node: String,
    /// Where it stands.
    pub phase: Phase,
    /// Why it is not running (exit code, start error), when it is not.
    pub reason: Option<String>,
    /// The driver's id of its current instance, if there is one.
    pub instance_id: Option<String>,
    /// The host address its ports are published on.
    pub host_ip: IpAddr,
    /// Its published ports.
    pub ports: Vec<PortMapping>,
    /// Restarts since it last ran steadily.
    pub restarts: u32,
    /// Time until the next restart attempt, while restarting or failed.
    pub retry_in_ms: Option<u64>,
    /// HTTP path the prober requests (empty: a TCP connect).
    pub health_path: String,
    /// The prober's latest verdict.
    #[serde(flatten)]
    pub health: Health,
}

#[derive(Debug, Default)]
struct Board {
    statuses: BTreeMap<InstanceKey, InstanceStatus>,
    health: BTreeMap<InstanceKey, Health>,
}

/// The shared status map: the reconciler publishes a complete set after
/// each pass, the prober adds health, readers take snapshots.
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    inner: Arc<RwLock<Board>>,
}

impl StatusBoard {
    /// Every instance this node is meant to run, in key order.
    pub fn snapshot(&self) -> Vec<InstanceStatus> {
        let board = self.inner.read().expect("status board lock");
        board
            .statuses
            .values()
            .map(|status| {
                let mut status = status.clone();
                status.health = board.health.get(&status.key).cloned().unwrap_or_default();
                status
            })
            .collect()
    }

    /// One instance's status.
    pub fn get(&self, key: &InstanceKey) -> Option<InstanceStatus> {
        self.snapshot().into_iter().find(|s| &s.key == key)
    }

    /// The statuses of one app's instances.
    pub fn app(&self, app: &str) -> Vec<InstanceStatus> {
        self.snapshot()
            .into_iter()
            .filter(|s| s.key.app == app)
            .collect()
    }

    /// Replaces the statuses with a complete new set; health verdicts of
    /// instances no longer present are dropped, and so is the verdict of an
    /// instance that is no longer running.
    pub(crate) fn publish(&self, statuses: Vec<InstanceStatus>) {
        let mut board = self.inner.write().expect("status board lock");
        let statuses: BTreeMap<InstanceKey, InstanceStatus> =
            statuses.into_iter().map(|s| (s.key.clone(), s)).collect();
        board
            .health
            .retain(|key, _| statuses.get(key).is_some_and(|s| s.phase == Phase::Running));
        board.statuses = statuses;
    }

    /// Records a probe verdict for an instance that is still running.
    pub(crate) fn set_health(&self, key: &InstanceKey, health: Health) {
        let mut board = self.inner.write().expect("status board lock");
        if board
            .statuses
            .get(key)
            .is_some_and(|s| s.phase == Phase::Running)
        {
            board.health.insert(key.clone(), health);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_has_one_reason_and_one_health_reason() {
        let status = InstanceStatus {
            key: InstanceKey {
                app: "web".into(),
                component: "api".into(),
                instance: 0,
            },
            node: "flux1node".into(),
            phase: Phase::Running,
            reason: None,
            instance_id: Some("c0ffee".into()),
            host_ip: IpAddr::from([127, 0, 0, 1]),
            ports: Vec::new(),
            restarts: 0,
            retry_in_ms: None,
            health_path: "/health".into(),
            health: Health::Unhealthy {
                reason: "connection refused".into(),
            },
        };
        let text = serde_json::to_string(&status).unwrap();
        assert_eq!(text.matches("\"reason\"").count(), 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["health"], "unhealthy");
        assert_eq!(value["health_reason"], "connection refused");
        assert_eq!(value["reason"], serde_json::Value::Null);
        let back: InstanceStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status);
    }
}
