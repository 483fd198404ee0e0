//! The node benchmarks itself: once the chain runs and the node is
//! registered, and again every period.
//!
//! The loop reads finalized state to decide when a benchmark is due
//! ([`due`]): never while the node is not registered (it waits for the next
//! block instead), at start, then whenever the last recorded benchmark is a
//! period old, and never before the ledger allows the next one
//! (`params.benchmark_interval_blocks_min` blocks after the last). It
//! measures with `flux-benchmark` on a blocking thread, logs each figure
//! against its tier's threshold, and submits a `NodeBenchmark` transaction
//! signed with the node key (fee 0, the next nonce of the node's account) to
//! the local mempool. The ledger confirms the node when every figure passes.

use std::time::Duration;

use flux_chain::{SubmitError, TxStatus};
use flux_ledger::{ReceiptDetail, State, TxError};
use flux_types::{
    Address, Amount, BenchmarkReport, FigureCheck, SecretKey, SignedTransaction, Transaction,
    TxBody,
};

/// How often the node measures itself by default: once a day.
pub const PERIOD_DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the loop waits after a failed measurement or submission.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest the loop sleeps before looking at the state again.
const RECHECK_MAX: Duration = Duration::from_secs(60);
/// Blocks a submitted benchmark may stay pending before the loop looks again.
const PENDING_BLOCKS_MAX: u64 = 30;
/// The longest wait for one block.
const BLOCK_WAIT_MAX: Duration = Duration::from_secs(5);

/// How the node benchmarks itself.
#[derive(Clone, Debug)]
pub struct BenchmarkOptions {
    /// How often the node measures itself again. The ledger's
    /// `benchmark_interval_blocks_min` is a floor: a shorter period waits
    /// for it.
    pub period: Duration,
    /// What to measure: the data directory, the CPU test's duration and the
    /// size of the disk test.
    pub measure: flux_benchmark::Options,
}

impl BenchmarkOptions {
    /// Full measurements of `data_dir` (5 s of CPU test, 256 MiB written)
    /// once a day.
    pub fn new(data_dir: impl Into<std::path::PathBuf>) -> BenchmarkOptions {
        BenchmarkOptions {
            period: PERIOD_DEFAULT,
            measure: flux_benchmark::Options::new(data_dir),
        }
    }
}

/// When the next benchmark is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The node is not registered: look again after the next block.
    Unregistered,
    /// Measure and submit now.
    Now,
    /// The ledger refuses a benchmark before this height.
    AtHeight(u64),
    /// The period runs out at this chain time, ms.
    AtTime(u64),
}

/// When `node` should benchmark next, as `state` says: now when it has no
/// benchmark yet, or (once the ledger's interval has passed) when this is
/// the first since the node started or the last is `period` old.
pub fn due(state: &State, node: &Address, period: Duration, at_start: bool) -> Due {
    if state.node(node).is_none() {
        return Due::Unregistered;
    }
    let Some(last) = state.node_benchmark(node) else {
        return Due::Now;
    };
    let allowed = last
        .height
        .saturating_add(state.params().benchmark_interval_blocks_min);
    if state.height() < allowed {
        return Due::AtHeight(allowed);
    }
    if at_start {
        return Due::Now;
    }
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    let next_ms = last.time_ms.saturating_add(period_ms);
    if state.time_ms() >= next_ms {
        Due::Now
    } else {
        Due::AtTime(next_ms)
    }
}

/// The `NodeBenchmark` transaction of `report`, signed by the node key with
/// no fee.
pub fn benchmark_tx(
    state: &State,
    key: &SecretKey,
    nonce: u64,
    report: BenchmarkReport,
) -> SignedTransaction {
    Transaction {
        chain_id: state.chain_id().to_string(),
        signer: key.public_key(),
        nonce,
        fee: Amount::ZERO,
        body: TxBody::NodeBenchmark { report },
    }
    .sign(key)
}

/// Runs the benchmark loop of the node whose key is `key` until the chain
/// fails (the caller aborts it on shutdown).
pub async fn run(chain: flux_chain::Node, key: SecretKey, options: BenchmarkOptions) {
    let id = key.address();
    let mut at_start = true;
    let mut told_unregistered = false;
    loop {
        if chain.failure().is_some() {
            return;
        }
        let state = chain.state();
        let height = state.height();
        // A node still catching up sees an old state: wait until it follows.
        if chain.network_height() > height.saturating_add(1) {
            wait_for_block(&chain, height).await;
            continue;
        }
        match due(&state, &id, options.period, at_start) {
            Due::Unregistered => {
                if !told_unregistered {
                    tracing::info!(node = %id, "not a registered node; it benchmarks once registered");
                    told_unregistered = true;
                }
                wait_for_block(&chain, height).await;
            }
            Due::AtHeight(allowed) => {
                tracing::debug!(
                    height,
                    allowed,
                    "the next benchmark waits for the ledger's interval"
                );
                wait_for_block(&chain, allowed.saturating_sub(1).max(height)).await;
            }
            Due::AtTime(next_ms) => {
                let left = Duration::from_millis(next_ms.saturating_sub(state.time_ms()));
                tokio::time::sleep(left.min(RECHECK_MAX)).await;
            }
            Due::Now => {
                if benchmark_once(&chain, &key, &options, &state).await {
                    at_start = false;
                } else {
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }
}

/// Measures, logs and submits one benchmark, and waits for its outcome;
/// `false` when it failed and should be retried later.
async fn benchmark_once(
    chain: &flux_chain::Node,
    key: &SecretKey,
    options: &BenchmarkOptions,
    state: &State,
) -> bool {
    let id = key.address();
    let measure = options.measure.clone();
    let measured = tokio::task::spawn_blocking(move || flux_benchmark::measure(&measure)).await;
    let report = match measured {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => {
            tracing::warn!(%error, "the benchmark could not measure this machine");
            return false;
        }
        Err(error) => {
            tracing::warn!(%error, "the benchmark task failed");
            return false;
        }
    };
    // The state may have moved on while measuring.
    let state = if chain.state().height() > state.height() {
        chain.state()
    } else {
        state.clone()
    };
    let Some(node) = state.node(&id) else {
        return true;
    };
    let checks = report.check(state.params().tier(node.tier));
    let figures = checks
        .iter()
        .map(FigureCheck::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if checks.iter().all(FigureCheck::passed) {
        tracing::info!(tier = %node.tier, "benchmark passes every threshold: {figures}");
    } else {
        let short: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed())
            .map(|c| c.figure.to_string())
            .collect();
        tracing::warn!(
            tier = %node.tier,
            "benchmark falls short in {}: {figures}",
            short.join(", ")
        );
    }
    let tx = benchmark_tx(&state, key, chain.next_nonce(&id), report);
    let hash = match chain.submit(tx) {
        Ok(hash) => hash,
        Err(SubmitError::Invalid(error @ TxError::BenchmarkTooSoon { .. })) => {
            tracing::debug!(%error, "benchmark not sent: the last one stands");
            return true;
        }
        Err(SubmitError::ShuttingDown) => return true,
        Err(error) => {
            tracing::warn!(%error, code = error.code(), "the benchmark was not accepted");
            return false;
        }
    };
    let submitted_at = chain.state().height();
    loop {
        match chain.tx_status(&hash) {
            Ok(TxStatus::Committed { receipt }) => {
                if let ReceiptDetail::NodeBenchmarked { status, .. } = receipt.detail {
                    tracing::info!(tx = %hash, height = receipt.height, ?status, "benchmark recorded");
                }
                return true;
            }
            Ok(TxStatus::Rejected { code, message }) => {
                if code == "benchmark_too_soon" {
                    tracing::debug!(tx = %hash, %message, "benchmark refused: the last one stands");
                    return true;
                }
                tracing::warn!(tx = %hash, %code, %message, "the benchmark was rejected");
                return false;
            }
            Ok(TxStatus::Pending | TxStatus::Unknown) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot read the benchmark's status");
                return false;
            }
        }
        let height = chain.state().height();
        if height >= submitted_at.saturating_add(PENDING_BLOCKS_MAX) || chain.failure().is_some() {
            tracing::warn!(tx = %hash, "the benchmark is still not in a block");
            return true;
        }
        wait_for_block(chain, height).await;
    }
}

/// Waits until a block above `height` is finalized, at most
/// [`BLOCK_WAIT_MAX`].
async fn wait_for_block(chain: &flux_chain::Node, height: u64) {
    tokio::select! {
        () = chain.wait_for_height(height.saturating_add(1)) => {}
        () = tokio::time::sleep(BLOCK_WAIT_MAX) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use flux_types::{Params, Tier};

    use super::*;
    use crate::testkit::{self, next, signed};

    fn register(state: &State, owner: &SecretKey, node: &SecretKey) -> SignedTransaction {
        signed(
            state,
            owner,
            0,
            TxBody::NodeRegister {
                node_key: node.public_key(),
                tier: Tier::Cumulus,
                endpoint: "127.0.0.1:16127".into(),
                region: "EU_CZ".into(),
            },
        )
    }

    const REPORT: BenchmarkReport = BenchmarkReport {
        cores: 2,
        ram_mb: 4_096,
        disk_gb: 50,
        cpu_score: 500,
        disk_write_mb_per_s: 100,
    };

    #[test]
    fn a_benchmark_is_due_once_registered_at_start_then_each_period_never_before_the_interval() {
        let owner = SecretKey::development("owner");
        let node = SecretKey::development("node");
        let id = node.address();
        let day = Duration::from_secs(86_400);
        let (state, _) = State::from_genesis(&testkit::genesis(
            Params::devnet(),
            &owner,
            1_000,
            SecretKey::development("validator").public_key(),
        ))
        .unwrap();
        assert_eq!(due(&state, &id, day, true), Due::Unregistered);
        let state = next(&state, vec![register(&state, &owner, &node)]);
        assert_eq!(due(&state, &id, day, false), Due::Now, "no benchmark yet");
        let state = next(&state, vec![benchmark_tx(&state, &node, 0, REPORT)]);
        let recorded = state.node_benchmark(&id).unwrap().clone();
        let interval = state.params().benchmark_interval_blocks_min;
        // Right after one, even a restart waits for the ledger's interval.
        assert_eq!(
            due(&state, &id, Duration::ZERO, true),
            Due::AtHeight(recorded.height + interval)
        );
        let mut state = state;
        while state.height() < recorded.height + interval {
            state = next(&state, vec![]);
        }
        assert_eq!(due(&state, &id, day, true), Due::Now, "at start");
        assert_eq!(
            due(&state, &id, day, false),
            Due::AtTime(recorded.time_ms + 86_400_000)
        );
        assert_eq!(due(&state, &id, Duration::from_secs(1), false), Due::Now);
    }

    /// A single-validator chain whose validator is also a registered node:
    /// the loop benchmarks it as soon as it is registered, and the ledger
    /// confirms it, with no other step.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_confirms_itself_once_registered() {
        let owner = SecretKey::development("owner");
        let node_key = SecretKey::development("validator");
        let id = node_key.address();
        let dir = tempfile::tempdir().unwrap();
        let chain = flux_chain::Node::start(flux_chain::NodeConfig {
            data_dir: dir.path().join("data"),
            genesis: testkit::genesis(Params::devnet(), &owner, 1_000, node_key.public_key()),
            node_key: node_key.clone(),
            block_interval_ms: 50,
            mempool_txs_max: 100,
            mempool_bytes_max: 1 << 20,
        })
        .await
        .unwrap();
        let options = BenchmarkOptions {
            period: PERIOD_DEFAULT,
            measure: flux_benchmark::Options::quick(dir.path()),
        };
        let task = tokio::spawn(run(chain.clone(), node_key.clone(), options));
        // Unregistered, the loop only waits.
        chain.wait_for_height(chain.state().height() + 3).await;
        assert!(chain.state().node_benchmark(&id).is_none());
        chain
            .submit(register(&chain.state(), &owner, &node_key))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let state = loop {
            let state = chain.state();
            if state
                .node(&id)
                .is_some_and(|n| n.status == flux_ledger::NodeStatus::Confirmed)
            {
                break state;
            }
            assert!(Instant::now() < deadline, "the node did not confirm itself");
            chain.wait_for_height(state.height() + 1).await;
        };
        let record = state.node_benchmark(&id).unwrap();
        assert!(record.passed, "{record:?}");
        assert!(record.report.cpu_score > 0 && record.report.disk_write_mb_per_s > 0);
        task.abort();
        chain.shutdown().await;
    }
}
