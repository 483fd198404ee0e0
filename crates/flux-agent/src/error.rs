//! The crate's one error type.

/// What can go wrong while running instances.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No Docker engine answers: the socket is missing, refuses connections
    /// or the engine does not reply. A node falls back to the exec driver.
    #[error(
        "no Docker engine answers at {endpoint}: {reason}; start Docker (or set DOCKER_HOST), or run the node with the exec driver"
    )]
    NoDockerEngine {
        /// Where the engine was looked for.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// An image is not present locally and could not be pulled.
    #[error(
        "image {image} is not present on this node and could not be pulled: {reason}; build or load it locally (docker build / docker load), or make its registry reachable"
    )]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// Why the pull failed.
        reason: String,
    },
    /// A spec the driver refuses to run.
    #[error("instance {key} has an invalid spec: {reason}")]
    InvalidSpec {
        /// The instance, as `app/component#index`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The exec driver runs commands; a spec without one cannot run there.
    #[error(
        "instance {key} has no command, and the exec driver runs a component's command (image-only components need Docker)"
    )]
    NoCommand {
        /// The instance, as `app/component#index`.
        key: String,
    },
    /// The driver knows no instance with this id (or it belongs to another node).
    #[error("no instance {id} on this node")]
    NotFound {
        /// The instance id.
        id: String,
    },
    /// The Docker engine refused or failed a request.
    #[error("Docker engine: {operation} failed: {reason}")]
    Docker {
        /// What the driver was doing.
        operation: String,
        /// The engine's answer.
        reason: String,
    },
    /// A file or process operation of the exec driver failed.
    #[error("{operation} failed: {source}")]
    Io {
        /// What the driver was doing.
        operation: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A request to the engine (or a process) took longer than its limit.
    #[error("{operation} did not finish within {timeout_ms} ms")]
    Timeout {
        /// What the driver was doing.
        operation: String,
        /// The limit.
        timeout_ms: u64,
    },
    /// The reconciler has stopped; its handle can no longer send it work.
    #[error("the reconciler has stopped")]
    Stopped,
}

impl AgentError {
    pub(crate) fn io(operation: impl Into<String>, source: std::io::Error) -> AgentError {
        AgentError::Io {
            operation: operation.into(),
            source,
        }
    }
}
