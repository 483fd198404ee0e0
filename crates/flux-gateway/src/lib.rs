//! Route requests for apps to healthy instances anywhere in the network.
//!
//! Every node runs a [`Gateway`]. It serves HTTP on its own port (16180 by
//! default) and sends a request with `Host: <app>.<network domain>`,
//! `<app>_<port>.<network domain>` or one of an app's custom domains to an
//! instance of that app, on this node or on any other; and it forwards each
//! app's published ports over TCP on the gateway's address, so that any
//! node's IP reaches any app.
//!
//! What it routes comes from a [`RouteTable`]: an immutable snapshot that the
//! node builds from finalized state ([`RouteTable::from_apps`]) and hands to
//! [`Gateway::update`] whenever that state changes. The swap is atomic. A
//! node does, after each finalized block that changed apps or placements:
//!
//! ```text
//! for each app with placements:
//!     instances = [Instance { node, ip: that node's host IP, local: node == this node }
//!                  for each node the app is placed on]
//! gateway.update(RouteTable::from_apps(network_domain, [(&spec, &instances[..]), ...])?)
//! ```
//!
//! and should do it before its agent starts this node's new instances: a
//! port that gains a local instance stops being forwarded here, which frees
//! it for the instance.
//!
//! How requests travel:
//! - bodies stream in both directions frame by frame, never buffered whole;
//!   path, query and end-to-end headers pass unchanged, hop-by-hop headers
//!   are dropped, and `X-Forwarded-For` (appended), `-Proto` and `-Host` are
//!   set;
//! - WebSocket and any other HTTP/1.1 Upgrade is tunnelled both ways;
//! - backends are chosen round-robin or least-outstanding
//!   ([`Balance`]), local instances first while any is healthy; connections
//!   to backends are kept alive and reused.
//!
//! Failures and what the client sees:
//! - a connect that fails goes to another backend, for any request; a
//!   request that failed after reaching a backend goes to another one only
//!   when it is idempotent and has no body; at most
//!   [`GatewayConfig::retries_max`] further backends are tried, then 502
//!   `instance_failed`;
//! - a backend that fails is ejected for a back-off period
//!   ([`GatewayConfig::ejection_base_ms`], doubling up to
//!   [`GatewayConfig::ejection_max_ms`]) and comes back when a probe (a TCP
//!   connect) succeeds; backends in rotation are probed every
//!   [`GatewayConfig::probe_interval_ms`];
//! - an unknown host gets 404 (`app_not_found`, `port_not_found`,
//!   `unknown_host`) and an app without a healthy instance 503
//!   `no_healthy_instance` with `Retry-After`, both as
//!   `application/problem+json`.
//!
//! Limits, and what happens at each:
//! - [`GatewayConfig::connections_max`] client connections (HTTP and TCP
//!   together): further ones wait in the kernel's accept backlog;
//! - [`GatewayConfig::connections_per_ip_max`] from one IP: further ones are
//!   closed at once;
//! - [`GatewayConfig::request_header_size_bytes_max`] and
//!   [`GatewayConfig::headers_count_max`]: a larger request head gets 431 and
//!   the connection is closed; a larger response head
//!   ([`GatewayConfig::response_header_size_bytes_max`]) gets 502;
//! - [`GatewayConfig::header_read_timeout_ms`]: a client that has not sent a
//!   whole request head by then is disconnected (a slowloris client holds a
//!   connection for this long at most);
//! - [`GatewayConfig::idle_timeout_ms`]: a connection, upgraded or TCP
//!   forwarded ones included, that moves no byte for this long is closed;
//! - [`GatewayConfig::request_timeout_ms`]: no response head by then, retries
//!   included, gets 504 `instance_timeout`;
//! - [`GatewayConfig::connect_timeout_ms`], [`GatewayConfig::pool_idle_per_backend_max`],
//!   [`GatewayConfig::pool_idle_timeout_ms`] and
//!   [`GatewayConfig::probes_in_flight_max`] bound the work done towards
//!   backends.
//!
//! The gateway never reads finalized state itself and never decides where
//! apps run: it routes to what the table says, and only its own view of
//! each backend's health (from traffic and probes) is its own.

mod backend;
mod body;
mod config;
mod conn;
mod error;
mod gateway;
mod problem;
mod proxy;
mod routes;
mod tcp;

pub use backend::BackendStatus;
pub use body::GatewayBody;
pub use config::{Balance, DEFAULT_HTTP_PORT, GatewayConfig, RETRIES_HARD_MAX};
pub use error::GatewayError;
pub use gateway::{Gateway, GatewayStats};
pub use problem::PROBLEM_CONTENT_TYPE;
pub use routes::{
    AppRoute, Backend, Instance, Miss, PortRoute, Route, RouteTable, RouteTableBuilder,
};
