//! The gateway's configuration: where it listens, how it balances, and every limit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// The port of the HTTP gateway when none is configured.
pub const DEFAULT_HTTP_PORT: u16 = 16180;

/// The most retries a request may be given, whatever the configuration says.
pub const RETRIES_HARD_MAX: u32 = 8;

/// How a backend is chosen among the healthy ones of the same rank (local
/// instances always rank before remote ones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// The backend with the fewest requests (or TCP connections) in flight;
    /// ties go round-robin.
    LeastOutstanding,
}

/// Configuration of a [`Gateway`](crate::Gateway). Every limit is named here;
/// the crate documentation says what happens at each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address of the HTTP gateway (port 0 picks a free port).
    pub http_listen: SocketAddr,
    /// Address on which the TCP forwarders of apps' published ports listen;
    /// `None` means the IP of `http_listen`.
    pub tcp_listen_ip: Option<IpAddr>,
    /// Whether published ports are forwarded over TCP at all.
    pub tcp_forwarding: bool,
    /// Threads that serve HTTP, each with its own listener on `http_listen`
    /// (SO_REUSEPORT), its own connections and its own keep-alive
    /// connections to backends; 0 means one per CPU core. The gateway's
    /// traffic runs on these threads, never on the caller's runtime.
    pub workers: usize,
    /// How backends are chosen.
    pub balance: Balance,
    /// Most client connections open at once, HTTP and TCP together. At the
    /// limit new connections wait in the kernel's accept backlog.
    pub connections_max: usize,
    /// Most connections open at once from one client IP; beyond it a new
    /// connection from that IP is closed at once.
    pub connections_per_ip_max: usize,
    /// Most bytes of a request's head (request line and headers); a larger
    /// head is answered 431 and the connection closed.
    pub request_header_size_bytes_max: usize,
    /// Most bytes of a backend response's head; a larger one is answered 502.
    pub response_header_size_bytes_max: usize,
    /// Most header fields in a request or response head.
    pub headers_count_max: usize,
    /// Most time a client may take to send a complete request head, counted
    /// from when the gateway starts waiting for it (the connection opened or
    /// the previous response was sent), ms; then the connection is closed.
    /// This is what stops a slowloris client, and it is also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// A connection (client side, HTTP or TCP, upgraded or not) that moves no
    /// byte in either direction for this long is closed, ms.
    pub idle_timeout_ms: u64,
    /// Most time from a request's arrival until the backend's response head,
    /// retries included, ms; then the client gets 504.
    pub request_timeout_ms: u64,
    /// Most time to open a TCP connection to a backend, ms; a backend that
    /// takes longer counts as failed.
    pub connect_timeout_ms: u64,
    /// Most further backends tried after a failed attempt (at most
    /// [`RETRIES_HARD_MAX`]). Any request is retried when nothing reached the
    /// backend; idempotent requests without a body also when the backend
    /// failed after receiving it.
    pub retries_max: u32,
    /// How long a backend is left out after its first failure, ms; each
    /// further consecutive failure doubles it.
    pub ejection_base_ms: u64,
    /// The longest a backend is left out before it is probed again, ms.
    pub ejection_max_ms: u64,
    /// Interval between probes (a TCP connect) of backends in rotation, ms.
    pub probe_interval_ms: u64,
    /// Most probes in flight at once.
    pub probes_in_flight_max: usize,
    /// Most idle keep-alive connections kept per backend by each worker.
    pub pool_idle_per_backend_max: usize,
    /// An idle pooled connection older than this is closed instead of reused, ms.
    pub pool_idle_timeout_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            http_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_HTTP_PORT),
            tcp_listen_ip: None,
            tcp_forwarding: true,
            workers: 0,
            balance: Balance::RoundRobin,
            connections_max: 10_000,
            connections_per_ip_max: 256,
            request_header_size_bytes_max: 16 * 1024,
            response_header_size_bytes_max: 64 * 1024,
            headers_count_max: 100,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 60_000,
            connect_timeout_ms: 2_000,
            retries_max: 2,
            ejection_base_ms: 1_000,
            ejection_max_ms: 30_000,
            probe_interval_ms: 5_000,
            probes_in_flight_max: 64,
            pool_idle_per_backend_max: 64,
            pool_idle_timeout_ms: 30_000,
        }
    }
}

/// Smallest request-head cap hyper accepts for its read buffer.
const REQUEST_HEADER_SIZE_BYTES_MIN: usize = 1024;

impl GatewayConfig {
    /// Checks that every limit is usable.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let positive: [(&'static str, u64); 12] = [
            ("connections_max", self.connections_max as u64),
            ("connections_per_ip_max", self.connections_per_ip_max as u64),
            ("headers_count_max", self.headers_count_max as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("ejection_base_ms", self.ejection_base_ms),
            ("ejection_max_ms", self.ejection_max_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            ("probes_in_flight_max", self.probes_in_flight_max as u64),
            ("pool_idle_timeout_ms", self.pool_idle_timeout_ms),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(GatewayError::Config {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        for (field, value) in [
            (
                "request_header_size_bytes_max",
                self.request_header_size_bytes_max,
            ),
            (
                "response_header_size_bytes_max",
                self.response_header_size_bytes_max,
            ),
        ] {
            if value < REQUEST_HEADER_SIZE_BYTES_MIN {
                return Err(GatewayError::Config {
                    field,
                    message: format!("is {value}; give at least {REQUEST_HEADER_SIZE_BYTES_MIN}"),
                });
            }
        }
        if self.retries_max > RETRIES_HARD_MAX {
            return Err(GatewayError::Config {
                field: "retries_max",
                message: format!("is {}; give at most {RETRIES_HARD_MAX}", self.retries_max),
            });
        }
        if self.ejection_max_ms < self.ejection_base_ms {
            return Err(GatewayError::Config {
                field: "ejection_max_ms",
                message: format!(
                    "is {} but ejection_base_ms is {}; give at least ejection_base_ms",
                    self.ejection_max_ms, self.ejection_base_ms
                ),
            });
        }
        Ok(())
    }

    /// The number of HTTP worker threads.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The IP the TCP forwarders listen on.
    pub fn tcp_ip(&self) -> IpAddr {
        self.tcp_listen_ip.unwrap_or(self.http_listen.ip())
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn pool_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.pool_idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        GatewayConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let config = GatewayConfig {
            connections_max: 0,
            ..GatewayConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("connections_max"), "{error}");

        let config = GatewayConfig {
            retries_max: RETRIES_HARD_MAX + 1,
            ..GatewayConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("retries_max")
        );
    }

    #[test]
    fn missing_fields_take_defaults() {
        let config: GatewayConfig = serde_json::from_str(r#"{"retries_max": 1}"#).unwrap();
        assert_eq!(config.retries_max, 1);
        assert_eq!(
            config.connections_max,
            GatewayConfig::default().connections_max
        );
        assert!(serde_json::from_str::<GatewayConfig>(r#"{"retry": 1}"#).is_err());
    }
}
