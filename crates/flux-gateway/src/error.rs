//! The crate's one error type.

use std::io;
use std::net::SocketAddr;

/// Why the gateway could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A configuration value is unusable.
    #[error("gateway configuration: {field} {message}")]
    Config {
        /// The offending field of [`GatewayConfig`](crate::GatewayConfig).
        field: &'static str,
        /// What is wrong and what to give instead.
        message: String,
    },
    /// The network domain is not a domain name.
    #[error(
        "network domain '{domain}' is not a domain name ({reason}); give lowercase labels of \
         letters, digits and '-' separated by dots, e.g. flux.localhost"
    )]
    InvalidDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The worker threads could not be started.
    #[error("cannot start the gateway's worker threads: {0}")]
    Start(#[source] io::Error),
    /// The HTTP listener could not be opened.
    #[error("cannot listen on {addr}: {source}; free the address or configure another http_listen")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's reason.
        source: io::Error,
    },
}
