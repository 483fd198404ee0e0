//! Serve the Flux HTTP API, its OpenAPI document and the web dashboard.
//!
//! Everything is JSON under `/api/v1`; every error is
//! `application/problem+json` with a stable `code` (see [`Problem`]). The
//! OpenAPI document is at `/api/v1/openapi.json`, Prometheus metrics at
//! `/metrics`, and the dashboard at `/`.
//!
//! Limits, and what happens at each:
//! - connections: at most [`ApiConfig::connections_max`] open at once; further
//!   connections wait in the kernel's accept backlog until one closes. A
//!   connection that moves no bytes for twice the request timeout is closed.
//! - request bodies: at most [`ApiConfig::body_bytes_max`] bytes; a larger
//!   body is answered 413 `body_too_large`.
//! - time: a request not answered within [`ApiConfig::request_timeout_ms`]
//!   (reading its body included) is answered 408 `request_timeout`.
//! - lists: at most 1000 items per page; `after` and `limit` page through.
//! - transaction batches: at most 500 transactions; more is answered 400
//!   `too_many_txs`.
//!
//! The API never holds keys: writes are transactions signed by the client.

mod extract;
mod listener;
mod metrics;
mod middleware;
mod problem;
mod routes;
mod schema;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use flux_chain::Node;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use problem::{PROBLEM_CONTENT_TYPE, Problem};

use crate::listener::LimitedListener;
use crate::metrics::Metrics;

/// The API's default port.
pub const DEFAULT_PORT: u16 = 16127;

/// How the API server runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most connections open at once.
    pub connections_max: usize,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Longest time to answer one request, reading its body included, in ms.
    pub request_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            connections_max: 512,
            // The largest transaction (64 KiB) is 128 KiB in hex; twice that
            // leaves room for JSON around it and for large app specifications.
            body_bytes_max: 256 * 1024,
            request_timeout_ms: 10_000,
        }
    }
}

impl ApiConfig {
    /// Checks that every limit is usable.
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |what: &str| {
            Err(ApiError::InvalidConfig(format!(
                "{what} must be at least 1"
            )))
        };
        if self.connections_max == 0 {
            return bad("connections_max");
        }
        if self.body_bytes_max == 0 {
            return bad("body_bytes_max");
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms");
        }
        Ok(())
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long a connection may move no bytes before it is closed: longer
    /// than any request may take, so only idle connections are cut.
    fn idle_timeout(&self) -> Duration {
        self.request_timeout().saturating_mul(2)
    }
}

/// Why the API server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Another process listens on the address.
    #[error(
        "address {0} is in use; stop the process that holds it or choose another listen address"
    )]
    AddressInUse(SocketAddr),
    /// The address cannot be listened on for another reason.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A limit in [`ApiConfig`] is unusable.
    #[error("invalid API configuration: {0}")]
    InvalidConfig(String),
    /// The server failed while running.
    #[error("the API server failed: {0}")]
    Serve(io::Error),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) node: Node,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) openapi_json: Bytes,
    pub(crate) body_bytes_max: usize,
    pub(crate) request_timeout: Duration,
}

/// The API's routes with the default body limit and request timeout.
///
/// The connection cap belongs to the listener, so it applies only through
/// [`serve`] and [`serve_listener`].
pub fn router(node: Node) -> Router {
    build_router(node, &ApiConfig::default(), Arc::new(Metrics::default()))
}

fn build_router(node: Node, config: &ApiConfig, metrics: Arc<Metrics>) -> Router {
    let state = AppState {
        node,
        metrics,
        openapi_json: Bytes::from(schema::openapi_json()),
        body_bytes_max: config.body_bytes_max,
        request_timeout: config.request_timeout(),
    };
    Router::new()
        .route("/", get(routes::dashboard))
        .route("/metrics", get(routes::metrics))
        .route("/api/v1/openapi.json", get(routes::openapi))
        .route("/api/v1/status", get(routes::status))
        .route("/api/v1/params", get(routes::params))
        .route("/api/v1/blocks/{height}", get(routes::block))
        .route("/api/v1/transactions", post(routes::submit))
        .route("/api/v1/transactions/batch", post(routes::submit_batch))
        .route("/api/v1/transactions/{hash}", get(routes::transaction))
        .route("/api/v1/accounts/{address}", get(routes::account))
        .route("/api/v1/nodes", get(routes::nodes))
        .route("/api/v1/nodes/{id}", get(routes::node))
        .route("/api/v1/committee", get(routes::committee))
        .route("/api/v1/supply", get(routes::supply))
        .route("/api/v1/apps", get(routes::apps))
        .route(
            "/api/v1/apps/quote",
            post(routes::quote).get(routes::app_named_quote),
        )
        .route("/api/v1/apps/{name}", get(routes::app))
        .route("/api/v1/gov/proposals", get(routes::proposals))
        .route("/api/v1/gov/proposals/{id}", get(routes::proposal))
        .route(
            "/api/v1/gov/proposals/{id}/votes",
            get(routes::proposal_votes),
        )
        .route("/api/v1/gov/params", get(routes::gov_params))
        .route("/api/v1/gov/blocklist", get(routes::blocklist))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(DefaultBodyLimit::max(config.body_bytes_max))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Binds `config.listen` and serves the API until `shutdown` completes, then
/// lets open requests finish.
pub async fn serve(
    node: Node,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    serve_with(node, config, Router::new(), shutdown).await
}

/// [`serve`] with `extra` routes merged in: what the node process serves
/// besides the chain (its agent's instances, logs and stats). They must not
/// overlap the API's own routes.
pub async fn serve_with(
    node: Node,
    config: ApiConfig,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen).await.map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            ApiError::AddressInUse(config.listen)
        } else {
            ApiError::Bind {
                address: config.listen,
                source,
            }
        }
    })?;
    serve_listener_with(node, config, listener, extra, shutdown).await
}

/// Serves the API on a listener bound by the caller (for example on port 0,
/// to let the system pick a free port); `config.listen` is ignored.
pub async fn serve_listener(
    node: Node,
    config: ApiConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    serve_listener_with(node, config, listener, Router::new(), shutdown).await
}

async fn serve_listener_with(
    node: Node,
    config: ApiConfig,
    listener: TcpListener,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    config.validate()?;
    let local = listener.local_addr().map_err(ApiError::Serve)?;
    let metrics = Arc::new(Metrics::default());
    metrics
        .connections_max
        .store(config.connections_max, Ordering::Relaxed);
    let app = extra.merge(build_router(node, &config, Arc::clone(&metrics)));
    let listener = LimitedListener::new(
        listener,
        config.connections_max,
        config.idle_timeout(),
        metrics,
    );
    tracing::info!(
        address = %local,
        connections_max = config.connections_max,
        body_bytes_max = config.body_bytes_max,
        request_timeout_ms = config.request_timeout_ms,
        "API listening on http://{local}"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ApiError::Serve)?;
    tracing::info!(address = %local, "API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_on_the_default_port() {
        let config = ApiConfig::default();
        config.validate().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:16127");
        assert!(config.body_bytes_max > 2 * flux_types::codec::TX_SIZE_BYTES_MAX);
    }

    #[test]
    fn zero_limits_are_refused() {
        let config = ApiConfig {
            connections_max: 0,
            ..ApiConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("connections_max")
        );
    }

    #[test]
    fn address_in_use_names_the_address() {
        let error = ApiError::AddressInUse("127.0.0.1:16127".parse().unwrap());
        assert!(
            error
                .to_string()
                .starts_with("address 127.0.0.1:16127 is in use")
        );
    }
}
