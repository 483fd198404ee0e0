//! An in-memory [`Driver`] for tests: instances are records, crashes and
//! failures are injected by hand, and every call is counted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::driver::{
    Driver, DriverKind, Instance, InstanceState, Inventory, LogChunk, LogChunks, LogOptions,
    LogStream, Stats,
};
use crate::error::AgentError;
use crate::spec::{InstanceKey, InstanceSpec};

/// Calls a [`MockDriver`] received, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MockCall {
    /// `start` of this key.
    Start(InstanceKey),
    /// `restart` of this id.
    Restart(String),
    /// `stop` of this id.
    Stop(String),
    /// `destroy` of this id.
    Destroy(String),
    /// `remove_volume` of this key.
    RemoveVolume(InstanceKey),
    /// `remove_network` of this app.
    RemoveNetwork(String),
}

#[derive(Debug)]
struct MockRecord {
    node: String,
    instance: Instance,
}

#[derive(Debug, Default)]
struct Engine {
    next_id: u64,
    records: BTreeMap<String, MockRecord>,
    /// (node, key) of volumes.
    volumes: BTreeSet<(String, InstanceKey)>,
    /// (node, app) of networks.
    networks: BTreeSet<(String, String)>,
    /// Errors the next `start` or `restart` calls return, oldest first.
    start_failures: VecDeque<String>,
    calls: Vec<(String, MockCall)>,
}

/// The test double of [`Driver`]. Several mock drivers made with
/// [`MockDriver::on_same_engine`] share one engine, as devnet nodes share
/// one Docker engine.
#[derive(Clone, Debug)]
pub struct MockDriver {
    node: String,
    engine: Arc<Mutex<Engine>>,
}

impl MockDriver {
    /// A mock driver for `node` on a fresh engine.
    pub fn new(node: &str) -> MockDriver {
        MockDriver {
            node: node.to_string(),
            engine: Arc::default(),
        }
    }

    /// A mock driver for `node` on the same engine as `other`.
    pub fn on_same_engine(other: &MockDriver, node: &str) -> MockDriver {
        MockDriver {
            node: node.to_string(),
            engine: other.engine.clone(),
        }
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().expect("mock engine lock")
    }

    /// Ends an instance as if its process exited with `code`.
    pub fn crash(&self, id: &str, code: i64) {
        let mut engine = self.engine();
        let record = engine.records.get_mut(id).expect("crash: unknown instance");
        record.instance.state = InstanceState::Exited { code };
    }

    /// Makes the next `start` or `restart` fail with `reason`.
    pub fn fail_next_start(&self, reason: &str) {
        self.engine().start_failures.push_back(reason.to_string());
    }

    /// Calls this node's driver received, in order.
    pub fn calls(&self) -> Vec<MockCall> {
        self.engine()
            .calls
            .iter()
            .filter(|(node, _)| *node == self.node)
            .map(|(_, call)| call.clone())
            .collect()
    }

    /// Forgets the recorded calls of every node.
    pub fn clear_calls(&self) {
        self.engine().calls.clear();
    }

    /// Every instance on the engine, of any node, as `(node, instance)`.
    pub fn all_instances(&self) -> Vec<(String, Instance)> {
        self.engine()
            .records
            .values()
            .map(|r| (r.node.clone(), r.instance.clone()))
            .collect()
    }

    fn call(&self, engine: &mut Engine, call: MockCall) {
        engine.calls.push((self.node.clone(), call));
    }

    fn own<'a>(&self, engine: &'a mut Engine, id: &str) -> Result<&'a mut MockRecord, AgentError> {
        match engine.records.get_mut(id) {
            Some(record) if record.node == self.node => Ok(record),
            _ => Err(AgentError::NotFound { id: id.to_string() }),
        }
    }
}

#[async_trait]
impl Driver for MockDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Mock
    }

    fn node(&self) -> &str {
        &self.node
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, AgentError> {
        spec.validate()?;
        let mut engine = self.engine();
        self.call(&mut engine, MockCall::Start(spec.key()));
        engine
            .networks
            .insert((self.node.clone(), spec.app.clone()));
        if spec.data_path.is_some() {
            engine.volumes.insert((self.node.clone(), spec.key()));
        }
        engine.next_id += 1;
        let id = format!("mock-{}", engine.next_id);
        let failure = engine.start_failures.pop_front();
        let instance = Instance {
            id: id.clone(),
            key: spec.key(),
            spec_hash: spec.spec_hash(),
            state: if failure.is_some() {
                InstanceState::Created
            } else {
                InstanceState::Running
            },
        };
        engine.records.insert(
            id,
            MockRecord {
                node: self.node.clone(),
                instance: instance.clone(),
            },
        );
        match failure {
            Some(reason) => Err(AgentError::Docker {
                operation: format!("start {}", spec.key()),
                reason,
            }),
            None => Ok(instance),
        }
    }

    async fn restart(&self, id: &str) -> Result<Instance, AgentError> {
        let mut engine = self.engine();
        self.call(&mut engine, MockCall::Restart(id.to_string()));
        let failure = engine.start_failures.pop_front();
        let record = self.own(&mut engine, id)?;
        if let Some(reason) = failure {
            return Err(AgentError::Docker {
                operation: format!("restart {id}"),
                reason,
            });
        }
        record.instance.state = InstanceState::Running;
        Ok(record.instance.clone())
    }

    async fn inspect(&self, id: &str) -> Result<Instance, AgentError> {
        let mut engine = self.engine();
        Ok(self.own(&mut engine, id)?.instance.clone())
    }

    async fn stop(&self, id: &str) -> Result<(), AgentError> {
        let mut engine = self.engine();
        self.call(&mut engine, MockCall::Stop(id.to_string()));
        let record = self.own(&mut engine, id)?;
        if record.instance.state.is_up() {
            record.instance.state = InstanceState::Exited { code: 143 };
        }
        Ok(())
    }

    async fn destroy(&self, id: &str) -> Result<(), AgentError> {
        let mut engine = self.engine();
        self.call(&mut engine, MockCall::Destroy(id.to_string()));
        if self.own(&mut engine, id).is_ok() {
            engine.records.remove(id);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Inventory, AgentError> {
        let engine = self.engine();
        Ok(Inventory {
            instances: engine
                .records
                .values()
                .filter(|r| r.node == self.node)
                .map(|r| r.instance.clone())
                .collect(),
            volumes: engine
                .volumes
                .iter()
                .filter(|(node, _)| *node == self.node)
                .map(|(_, key)| key.clone())
                .collect(),
            networks: engine
                .networks
                .iter()
                .filter(|(node, _)| *node == self.node)
                .map(|(_, app)| app.clone())
                .collect(),
        })
    }

    async fn logs(&self, id: &str, _options: LogOptions) -> Result<LogChunks, AgentError> {
        let mut engine = self.engine();
        let record = self.own(&mut engine, id)?;
        let chunk = LogChunk {
            stream: LogStream::Stdout,
            data: format!("{} started\n", record.instance.key).into_bytes(),
        };
        Ok(Box::pin(futures_util::stream::iter([Ok(chunk)])))
    }

    async fn stats(&self, id: &str) -> Result<Stats, AgentError> {
        let mut engine = self.engine();
        self.own(&mut engine, id)?;
        Ok(Stats::default())
    }

    async fn remove_volume(&self, key: &InstanceKey) -> Result<(), AgentError> {
        let mut engine = self.engine();
        self.call(&mut engine, MockCall::RemoveVolume(key.clone()));
        engine.volumes.remove(&(self.node.clone(), key.clone()));
        Ok(())
    }

    async fn remove_network(&self, app: &str) -> Result<(), AgentError> {
        let mut engine = self.engine();
        self.call(&mut engine, MockCall::RemoveNetwork(app.to_string()));
        engine
            .networks
            .remove(&(self.node.clone(), app.to_string()));
        Ok(())
    }
}
