//! Node benchmarks: a node's signed report of its own hardware, checked
//! against the thresholds of its tier.
//!
//! A `NodeBenchmark` transaction is signed by the node's own key (its signer
//! is the node). Every figure is compared with the tier's threshold in the
//! params in force; the node is confirmed when all of them pass and pending
//! otherwise, and the record keeps each figure against its threshold. The
//! report also gives the node's capacity to the scheduler. A node benchmarks
//! at most once every `benchmark_interval_blocks_min` blocks, and pays no
//! minimum fee for it, so that a node needs no funded account to stay
//! confirmed.

use borsh::{BorshDeserialize, BorshSerialize};
use flux_types::{Address, BenchmarkReport, FigureCheck, Tier};
use serde::{Deserialize, Serialize};

use crate::error::TxError;
use crate::exec::ReceiptDetail;
use crate::state::{NodeStatus, State};

/// The last benchmark of a node, as the ledger judged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct BenchmarkRecord {
    /// What the node measured.
    pub report: BenchmarkReport,
    /// The tier it was judged for.
    pub tier: Tier,
    /// Each figure against the tier's threshold at the time.
    pub checks: Vec<FigureCheck>,
    /// Whether every figure met its threshold.
    pub passed: bool,
    /// Height of the block that recorded it.
    pub height: u64,
    /// Chain time of that block, ms.
    pub time_ms: u64,
}

impl BenchmarkRecord {
    /// The figures below their thresholds.
    pub fn shortfalls(&self) -> Vec<FigureCheck> {
        self.checks
            .iter()
            .filter(|c| !c.passed())
            .copied()
            .collect()
    }
}

/// Why a node is pending rather than confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PendingReason {
    /// The node has not submitted a benchmark yet.
    NoBenchmark,
    /// The node's last benchmark fell short of its tier's thresholds.
    BelowThresholds {
        /// The figures that fell short, each against its threshold.
        shortfalls: Vec<FigureCheck>,
    },
}

/// Judges a benchmark signed by `signer` against the state, changing
/// nothing: the record to write, or why it is refused.
pub(crate) fn judge(
    state: &State,
    signer: &Address,
    report: &BenchmarkReport,
    now_ms: u64,
) -> Result<BenchmarkRecord, TxError> {
    let node = state
        .node(signer)
        .ok_or(TxError::BenchmarkSignerNotNode { signer: *signer })?;
    if let Some(last) = state.node_benchmark(signer) {
        let next_height = last
            .height
            .saturating_add(state.params().benchmark_interval_blocks_min);
        if state.height() < next_height {
            return Err(TxError::BenchmarkTooSoon {
                node: *signer,
                last_height: last.height,
                next_height,
            });
        }
    }
    let checks = report.check(state.params().tier(node.tier));
    Ok(BenchmarkRecord {
        report: *report,
        tier: node.tier,
        passed: checks.iter().all(FigureCheck::passed),
        checks,
        height: state.height(),
        time_ms: now_ms,
    })
}

/// Writes a judged benchmark: the record, and the node's status.
pub(crate) fn record(state: &mut State, id: Address, record: BenchmarkRecord) -> ReceiptDetail {
    let mut node = state
        .node(&id)
        .cloned()
        .expect("a benchmark is judged for a registered node");
    // A passing benchmark does not make an unreachable node reachable: only
    // its verifiers seeing it up again does.
    let status = match (record.passed, node.status) {
        (true, NodeStatus::Unreachable) => NodeStatus::Unreachable,
        (true, _) => NodeStatus::Confirmed,
        (false, _) => NodeStatus::Pending,
    };
    let shortfalls = record.shortfalls();
    state.put_benchmark(id, record);
    if node.status != status {
        node.status = status;
        state.put_node(node);
    }
    ReceiptDetail::NodeBenchmarked {
        node: id,
        status,
        shortfalls,
    }
}

impl State {
    /// A node's last benchmark.
    pub fn node_benchmark(&self, id: &Address) -> Option<&BenchmarkRecord> {
        self.placement.benchmarks.get(id)
    }

    /// Why a node is pending; `None` when it is confirmed or unknown.
    pub fn node_pending_reason(&self, id: &Address) -> Option<PendingReason> {
        let node = self.node(id)?;
        if node.status != NodeStatus::Pending {
            return None;
        }
        Some(match self.node_benchmark(id) {
            None => PendingReason::NoBenchmark,
            Some(record) => PendingReason::BelowThresholds {
                shortfalls: record.shortfalls(),
            },
        })
    }
}
