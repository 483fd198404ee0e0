//! Counters exported at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use flux_chain::ChainStatus;

/// The API's own counters. Routes are recorded by their template
/// (`/api/v1/blocks/{height}`), never by the raw path, so the number of
/// series is bounded by the number of routes times the statuses they return.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Open connections (held by the listener).
    pub(crate) connections_open: AtomicUsize,
    /// The connection cap, or 0 when the router is served without one.
    pub(crate) connections_max: AtomicUsize,
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn record(&self, route: &str, status: u16) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match requests.get_mut(&(route.to_string(), status)) {
            Some(count) => *count += 1,
            None => {
                requests.insert((route.to_string(), status), 1);
            }
        }
    }

    /// The text exposition of all metrics.
    pub(crate) fn render(&self, chain: &ChainStatus) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "flux_chain_height",
            "Height of the last finalized block.",
            chain.height,
        );
        gauge(
            &mut out,
            "flux_chain_time_ms",
            "Chain time of the last finalized block, ms since the Unix epoch.",
            chain.time_ms,
        );
        gauge(
            &mut out,
            "flux_mempool_txs",
            "Transactions waiting in the mempool.",
            chain.mempool_txs as u64,
        );
        gauge(
            &mut out,
            "flux_api_connections_open",
            "Open API connections.",
            self.connections_open.load(Ordering::Relaxed) as u64,
        );
        gauge(
            &mut out,
            "flux_api_connections_max",
            "Most API connections held open at once (0: no cap).",
            self.connections_max.load(Ordering::Relaxed) as u64,
        );
        let _ = writeln!(
            out,
            "# HELP flux_api_requests_total API requests answered, by route template and status.\n# TYPE flux_api_requests_total counter"
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for ((route, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "flux_api_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                escape_label(route)
            );
        }
        out
    }
}

/// Escapes a label value as the text format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_types::{Address, Hash};

    #[test]
    fn renders_counters_by_route_and_status() {
        let metrics = Metrics::default();
        metrics.record("/api/v1/status", 200);
        metrics.record("/api/v1/status", 200);
        metrics.record("unmatched", 404);
        let chain = ChainStatus {
            chain_id: "t".into(),
            genesis_hash: Hash::ZERO,
            height: 7,
            time_ms: 1,
            last_block_hash: Hash::ZERO,
            state_root: Hash::ZERO,
            mempool_txs: 3,
            node_id: Address([0; 20]),
            peers: 0,
        };
        let text = metrics.render(&chain);
        assert!(text.contains("\nflux_chain_height 7\n"), "{text}");
        assert!(text.contains("\nflux_mempool_txs 3\n"), "{text}");
        assert!(
            text.contains("flux_api_requests_total{route=\"/api/v1/status\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("flux_api_requests_total{route=\"unmatched\",status=\"404\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
