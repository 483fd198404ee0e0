//! The interface between the reconciler and whatever runs instances.

pub mod docker;
pub mod exec;
pub mod mock;

use std::collections::BTreeSet;
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::spec::{InstanceKey, InstanceSpec};

/// Most log lines one [`Driver::logs`] call returns before following.
pub const LOG_TAIL_LINES_MAX: u32 = 10_000;
/// Lines returned when a caller does not say how many.
pub const LOG_TAIL_LINES_DEFAULT: u32 = 1_000;
/// Largest single [`LogChunk`], in bytes; longer output arrives in several chunks.
pub const LOG_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// Which implementation a driver is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Containers on a Docker engine.
    Docker,
    /// Child processes of the node.
    Exec,
    /// The in-memory test double.
    Mock,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::Docker => "docker",
            DriverKind::Exec => "exec",
            DriverKind::Mock => "mock",
        })
    }
}

/// What an instance is doing, as its driver sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum InstanceState {
    /// Created but never started (a start that failed half way leaves this).
    Created,
    /// Running.
    Running,
    /// The runtime itself is restarting it.
    Restarting,
    /// It ended with this exit code (137 when killed by SIGKILL).
    Exited {
        /// Exit code; 128 + signal number when a signal ended it.
        code: i64,
    },
    /// The runtime cannot run it any more.
    Failed {
        /// What the runtime reported.
        reason: String,
    },
}

impl InstanceState {
    /// Whether the instance is up (running, or being restarted by its runtime).
    pub fn is_up(&self) -> bool {
        matches!(self, InstanceState::Running | InstanceState::Restarting)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceState::Created => f.write_str("created"),
            InstanceState::Running => f.write_str("running"),
            InstanceState::Restarting => f.write_str("restarting"),
            InstanceState::Exited { code } => write!(f, "exited with code {code}"),
            InstanceState::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// One instance the driver runs (or ran) for this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Driver-specific id (the container id for Docker); stable across
    /// [`Driver::restart`].
    pub id: String,
    /// Which instance it is, read back from its labels.
    pub key: InstanceKey,
    /// The [`InstanceSpec::spec_hash`] it was created from.
    pub spec_hash: String,
    /// What it is doing.
    pub state: InstanceState,
}

/// Everything a driver holds for this node: instances, and the volumes and
/// networks that outlive them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Instances, running or not.
    pub instances: Vec<Instance>,
    /// Instances that have a persistent volume.
    pub volumes: BTreeSet<InstanceKey>,
    /// Apps that have a private network.
    pub networks: BTreeSet<String>,
}

/// Which output a log chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Standard output and error interleaved (the exec driver keeps one file).
    Output,
}

/// A piece of an instance's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    /// Which output.
    pub stream: LogStream,
    /// The bytes, at most [`LOG_CHUNK_BYTES_MAX`].
    pub data: Vec<u8>,
}

/// A stream of log chunks; with `follow` it ends when the instance stops or
/// the receiver drops it.
pub type LogChunks = Pin<Box<dyn Stream<Item = Result<LogChunk, AgentError>> + Send>>;

/// What [`Driver::logs`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and send new output as it comes.
    pub follow: bool,
    /// How many of the last lines to send first, at most [`LOG_TAIL_LINES_MAX`].
    pub tail_lines: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            follow: false,
            tail_lines: LOG_TAIL_LINES_DEFAULT,
        }
    }
}

/// A point-in-time resource reading of one instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// CPU use in percent of one core over the last sampling interval.
    pub cpu_percent: f64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
    /// Memory limit, in bytes (0: none known).
    pub memory_limit_bytes: u64,
    /// Bytes received over the network.
    pub network_rx_bytes: u64,
    /// Bytes sent over the network.
    pub network_tx_bytes: u64,
}

/// Runs instances for one node.
///
/// A driver only ever sees, changes or removes what carries its own node id:
/// several devnet nodes share one Docker engine, and each must leave the
/// others' containers alone. After the node restarts, [`Driver::list`] is how
/// it recovers its instances: whatever runs with its labels is adopted.
///
/// Lifecycle of one instance:
///
/// ```text
///                 start(spec)
///    (absent) ─────────────────────► Running ◄──────────────┐
///       ▲                              │   │                │
///       │                      stop(id)│   │ process ends,  │ restart(id)
///       │                              ▼   ▼ killed, OOM    │
///       │                         Exited(code) / Failed ────┘
///       │   destroy(id)                │
///       └──────────────────────────────┘   (destroy works from any state)
///
///    Created: a start that failed after the instance was created; restart(id)
///             tries again, destroy(id) removes it.
///    Restarting: the runtime itself is restarting it (the agent does not ask
///             runtimes to restart anything; it restarts with its own backoff).
/// ```
///
/// Volumes and networks outlive instances: an instance recreated with a new
/// spec keeps its volume; [`Driver::remove_volume`] and
/// [`Driver::remove_network`] are called once the reconciler no longer wants
/// them. Every operation is idempotent: removing what is already gone succeeds.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Which implementation this is.
    fn kind(&self) -> DriverKind;

    /// The node whose instances this driver runs.
    fn node(&self) -> &str;

    /// Creates and starts an instance (with its network and volume, when
    /// missing). The image is used when present and pulled when missing.
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, AgentError>;

    /// Starts a stopped instance again, keeping its id, volume and spec.
    async fn restart(&self, id: &str) -> Result<Instance, AgentError>;

    /// The current state of one instance.
    async fn inspect(&self, id: &str) -> Result<Instance, AgentError>;

    /// Stops an instance (SIGTERM, then SIGKILL after the driver's grace
    /// period), keeping it for a later restart or destroy.
    async fn stop(&self, id: &str) -> Result<(), AgentError>;

    /// Stops an instance if needed and removes it; its volume stays.
    async fn destroy(&self, id: &str) -> Result<(), AgentError>;

    /// Every instance, volume and network of this node, and nothing of any
    /// other node.
    async fn list(&self) -> Result<Inventory, AgentError>;

    /// The instance's output.
    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogChunks, AgentError>;

    /// A resource reading of a running instance.
    async fn stats(&self, id: &str) -> Result<Stats, AgentError>;

    /// Removes an instance's persistent volume (after its instance is gone).
    async fn remove_volume(&self, key: &InstanceKey) -> Result<(), AgentError>;

    /// Removes an app's private network (after all its instances are gone).
    async fn remove_network(&self, app: &str) -> Result<(), AgentError>;
}
