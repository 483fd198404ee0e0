//! The node's useful work: it probes what the ledger assigned it to verify
//! and reports what it saw in signed `WorkReport` transactions.
//!
//! The loop follows finalized blocks. When a block opens a new probe window
//! (`work.window_ms` of chain time), the node probes each of its targets in
//! that window's epoch ([`State::targets_in`]), at most
//! [`PROBES_CONCURRENT_MAX`] at a time, each within [`PROBE_TIMEOUT`]:
//! - a node target: an HTTP GET of the node's API ([`NODE_STATUS_PATH`]) at
//!   its registered endpoint;
//! - an instance target: every component that publishes a port, at the IP
//!   of the hosting node's endpoint on the component's first published port
//!   (of the spec the slot runs, [`State::instance_spec`]): an HTTP GET of
//!   its health path when it names one, a TCP connect otherwise. An
//!   instance that publishes no port is judged by its host's API. An
//!   instance no longer placed on the target's host (removed, scaled down
//!   or moved) is not probed and not reported: its old host may forward
//!   that port elsewhere.
//!
//! The probes themselves are the agent's ([`flux_agent::prober::probe`]).
//! What was seen is kept per window and target, and turned into reports by
//! [`plan`] (pure) every [`BATCH_WINDOWS`] windows, or sooner when the
//! oldest window nears `work.report_late_windows`: one report per epoch and
//! run of consecutive open windows, split by `report_windows_max` and
//! `report_targets_max`. Each is signed by the node key with no fee and the
//! next nonce of the node's account counting its pending transactions, and
//! submitted to the local mempool; the loop follows it and logs a refusal
//! with its code (`work_duplicate` at debug level: the loop starts with the
//! window after the one in progress at start, which it may have reported
//! before a restart, so a duplicate is rare and harmless).
//!
//! A node still catching up (behind its peers, or with a last block older
//! than the lateness bound by its own clock) probes nothing and reports
//! nothing; a node with no targets (not confirmed, or alone) only follows
//! the chain.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use flux_chain::{SubmitError, TxStatus};
use flux_ledger::{ReceiptDetail, State};
use flux_types::{
    Amount, Hash, SecretKey, SignedTransaction, Target, TargetResults, Transaction, TxBody,
};
use futures_util::StreamExt;

/// The path of a node's API that a node probe reads.
pub const NODE_STATUS_PATH: &str = "/api/v1/status";
/// The longest one probe may take, connection and answer included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most probes in flight at once.
pub const PROBES_CONCURRENT_MAX: usize = 32;
/// Windows gathered before a report is sent (sooner when the oldest nears
/// the ledger's lateness bound).
pub const BATCH_WINDOWS: usize = 2;
/// Blocks a submitted report may stay pending before the loop stops
/// following it.
const PENDING_BLOCKS_MAX: u64 = 30;
/// The longest wait for one block.
const BLOCK_WAIT_MAX: Duration = Duration::from_secs(5);

/// What a verifier saw: per window, per target, whether it was up.
pub type Seen = BTreeMap<u64, BTreeMap<Target, bool>>;

/// One report to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The epoch whose assignment it follows.
    pub epoch: u64,
    /// The first window.
    pub first_window: u64,
    /// Consecutive windows covered.
    pub windows: u32,
    /// One bitmap per target.
    pub results: Vec<TargetResults>,
}

impl Report {
    /// The transaction body.
    pub fn body(self) -> TxBody {
        TxBody::WorkReport {
            epoch: self.epoch,
            first_window: self.first_window,
            windows: self.windows,
            results: self.results,
        }
    }
}

/// The reports of everything in `seen` that can be reported: windows open
/// in `open` (window to epoch), targets assigned to this verifier in the
/// window's epoch (`assigned`, by epoch).
///
/// Windows group into runs of consecutive windows of one epoch, at most
/// `windows_max` long, never across an epoch boundary. In a run, a target
/// is reported over each stretch of consecutive windows in which it was
/// probed (usually the whole run); targets with the same stretch share
/// reports of at most `targets_max` targets. Nothing unprobed is reported,
/// and no (window, target) twice.
pub fn plan(
    seen: &Seen,
    open: &BTreeMap<u64, u64>,
    assigned: &BTreeMap<u64, BTreeSet<Target>>,
    windows_max: u32,
    targets_max: u32,
) -> Vec<Report> {
    let windows_max = windows_max.max(1) as usize;
    let targets_max = targets_max.max(1) as usize;
    let mut runs: Vec<(u64, Vec<u64>)> = Vec::new();
    for window in seen.keys() {
        let Some(epoch) = open.get(window) else {
            continue;
        };
        match runs.last_mut() {
            Some((run_epoch, windows))
                if run_epoch == epoch
                    && windows.len() < windows_max
                    && windows.last().is_some_and(|last| last + 1 == *window) =>
            {
                windows.push(*window);
            }
            _ => runs.push((*epoch, vec![*window])),
        }
    }
    let mut reports = Vec::new();
    for (epoch, windows) in runs {
        let Some(targets) = assigned.get(&epoch) else {
            continue;
        };
        // Per stretch (first window, bits): the targets probed over it.
        let mut stretches: BTreeMap<(u64, usize), Vec<TargetResults>> = BTreeMap::new();
        for target in targets {
            let mut first = 0;
            let mut bits: Vec<bool> = Vec::new();
            for window in &windows {
                match seen.get(window).and_then(|row| row.get(target)) {
                    Some(up) => {
                        if bits.is_empty() {
                            first = *window;
                        }
                        bits.push(*up);
                    }
                    None if !bits.is_empty() => {
                        stretches
                            .entry((first, bits.len()))
                            .or_default()
                            .push(TargetResults::from_bits(target.clone(), &bits));
                        bits.clear();
                    }
                    None => {}
                }
            }
            if !bits.is_empty() {
                stretches
                    .entry((first, bits.len()))
                    .or_default()
                    .push(TargetResults::from_bits(target.clone(), &bits));
            }
        }
        for ((first_window, windows), results) in stretches {
            for chunk in results.chunks(targets_max) {
                reports.push(Report {
                    epoch,
                    first_window,
                    windows: windows as u32,
                    results: chunk.to_vec(),
                });
            }
        }
    }
    reports
}

/// Whether the windows seen should be reported now, in a chain at window
/// `current`: once [`BATCH_WINDOWS`] of them are open, or when the oldest
/// open one is at most one window from its lateness bound.
pub fn report_due(seen: &Seen, open: &BTreeMap<u64, u64>, current: u64, late_windows: u64) -> bool {
    let mut ready = seen.keys().filter(|window| open.contains_key(window));
    let Some(oldest) = ready.next() else {
        return false;
    };
    1 + ready.count() >= BATCH_WINDOWS || oldest.saturating_add(late_windows) <= current + 1
}

/// Whether a state whose last block is at chain time `chain_time_ms` is
/// recent enough to probe and report by, at wall time `now_ms`: its window
/// could still be reported (within `report_late_windows` windows). A node
/// that restarts far behind learns how far only once it hears its peers;
/// until its state is this recent, what it would report is late anyway.
pub fn caught_up(chain_time_ms: u64, now_ms: u64, work: &flux_types::params::WorkParams) -> bool {
    let reach = work.window_ms.saturating_mul(work.report_late_windows);
    now_ms.saturating_sub(chain_time_ms) <= reach
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// One check of a probe: an HTTP GET of `path` at `host:port`, or a TCP
/// connect when `path` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// An IP or a name.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The HTTP path; empty for a TCP connect.
    pub path: String,
}

/// The checks that probe `target` in `state`: `None` when there is nothing
/// to probe (the instance is no longer placed on the target's host, or the
/// host is gone). Every check must pass for the target to be up.
pub fn checks(state: &State, target: &Target) -> Option<Vec<Check>> {
    let host = state.node(target.host())?;
    let (host_name, api_port) = split_endpoint(&host.endpoint)?;
    let api = Check {
        host: host_name.clone(),
        port: api_port,
        path: NODE_STATUS_PATH.into(),
    };
    match target {
        Target::Node { .. } => Some(vec![api]),
        Target::Instance {
            host: node,
            app,
            instance,
        } => {
            let placement = state.app_placement(app)?;
            if placement.instances.get(*instance as usize) != Some(&Some(*node)) {
                return None;
            }
            let record = state.app(app)?;
            let spec = state.instance_spec(record, *instance);
            let checks: Vec<Check> = spec
                .components
                .iter()
                .filter_map(|component| {
                    Some(Check {
                        host: host_name.clone(),
                        port: *component.ports.first()?,
                        path: component.health_path.clone(),
                    })
                })
                .collect();
            Some(if checks.is_empty() { vec![api] } else { checks })
        }
    }
}

/// The host and port of an endpoint `HOST:PORT` (`[IPv6]:PORT` too).
fn split_endpoint(endpoint: &str) -> Option<(String, u16)> {
    if let Ok(address) = endpoint.parse::<SocketAddr>() {
        return Some((address.ip().to_string(), address.port()));
    }
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// Runs one check within `timeout`; `Err` says why the target is down.
async fn run_check(check: &Check, timeout: Duration) -> Result<(), String> {
    let ip = match check.host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let resolved = tokio::time::timeout(
                timeout,
                tokio::net::lookup_host((check.host.as_str(), check.port)),
            )
            .await
            .map_err(|_| format!("{} did not resolve in time", check.host))?
            .map_err(|e| format!("cannot resolve {}: {e}", check.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", check.host))?;
            resolved.ip()
        }
    };
    match flux_agent::prober::probe(ip, check.port, &check.path, timeout).await {
        flux_agent::Health::Healthy => Ok(()),
        flux_agent::Health::Unhealthy { reason } => Err(reason),
        other => Err(format!("{other:?}")),
    }
}

/// Probes every target with its checks, at most [`PROBES_CONCURRENT_MAX`]
/// at a time: up when every check passed.
pub async fn probe_all(
    probes: Vec<(Target, Vec<Check>)>,
    timeout: Duration,
) -> BTreeMap<Target, bool> {
    futures_util::stream::iter(probes)
        .map(|(target, checks)| async move {
            let mut up = true;
            for check in &checks {
                if let Err(reason) = run_check(check, timeout).await {
                    tracing::debug!(%target, %reason, "probe failed");
                    up = false;
                    break;
                }
            }
            (target, up)
        })
        .buffer_unordered(PROBES_CONCURRENT_MAX)
        .collect()
        .await
}

/// The `WorkReport` transaction of `report`, signed by the node key with no fee.
pub fn report_tx(state: &State, key: &SecretKey, nonce: u64, report: Report) -> SignedTransaction {
    Transaction {
        chain_id: state.chain_id().to_string(),
        signer: key.public_key(),
        nonce,
        fee: Amount::ZERO,
        body: report.body(),
    }
    .sign(key)
}

/// A submitted report the loop follows.
struct Submitted {
    hash: Hash,
    first_window: u64,
    windows: u32,
    height: u64,
}

/// Runs the work loop of the node whose key is `key` until the chain fails
/// (the caller aborts it on shutdown).
pub async fn run(chain: flux_chain::Node, key: SecretKey) {
    let id = key.address();
    let mut seen: Seen = BTreeMap::new();
    let mut probed: Option<u64> = None;
    let mut submitted: Vec<Submitted> = Vec::new();
    loop {
        if chain.failure().is_some() {
            return;
        }
        let state = chain.state();
        let height = state.height();
        // A node still catching up sees an old state: it neither probes nor reports.
        if chain.network_height() > height.saturating_add(1)
            || !caught_up(state.time_ms(), wall_clock_ms(), &state.params().work)
        {
            seen.clear();
            wait_for_block(&chain, height).await;
            continue;
        }
        follow(&chain, &mut submitted, height);
        let window = state.work_window();
        let open: BTreeMap<u64, u64> = state.open_work_windows().collect();
        // The first window is the one after the state found at start: the
        // window in progress may have been reported before a restart.
        let last = *probed.get_or_insert(window);
        if window > last
            && let Some(epoch) = open.get(&window)
        {
            probed = Some(window);
            let probes: Vec<(Target, Vec<Check>)> = state
                .targets_in(*epoch, &id)
                .into_iter()
                .filter_map(|target| {
                    let checks = checks(&state, &target)?;
                    Some((target, checks))
                })
                .collect();
            if !probes.is_empty() {
                let results = probe_all(probes, PROBE_TIMEOUT).await;
                let down = results.values().filter(|up| !**up).count();
                tracing::debug!(window, targets = results.len(), down, "probed");
                seen.insert(window, results);
            }
        }
        // Reports are judged against the latest state.
        let state = chain.state();
        let open: BTreeMap<u64, u64> = state.open_work_windows().collect();
        seen.retain(|window, _| open.contains_key(window));
        let params = &state.params().work;
        if report_due(
            &seen,
            &open,
            state.work_window(),
            params.report_late_windows,
        ) {
            let epochs: BTreeSet<u64> = seen.keys().filter_map(|w| open.get(w).copied()).collect();
            let assigned: BTreeMap<u64, BTreeSet<Target>> = epochs
                .into_iter()
                .map(|epoch| (epoch, state.targets_in(epoch, &id).into_iter().collect()))
                .collect();
            let reports = plan(
                &seen,
                &open,
                &assigned,
                params.report_windows_max,
                params.report_targets_max,
            );
            seen.clear();
            for report in reports {
                if let Some(sent) = submit(&chain, &state, &key, report) {
                    submitted.push(sent);
                }
            }
        }
        wait_for_block(&chain, state.height()).await;
    }
}

/// Submits one report to the local mempool; `None` when it was refused.
fn submit(
    chain: &flux_chain::Node,
    state: &State,
    key: &SecretKey,
    report: Report,
) -> Option<Submitted> {
    let (first_window, windows, targets) =
        (report.first_window, report.windows, report.results.len());
    let tx = report_tx(state, key, chain.next_nonce(&key.address()), report);
    match chain.submit(tx) {
        Ok(hash) => {
            tracing::debug!(tx = %hash, first_window, windows, targets, "work report submitted");
            Some(Submitted {
                hash,
                first_window,
                windows,
                height: state.height(),
            })
        }
        Err(SubmitError::ShuttingDown) => None,
        Err(error) => {
            let code = error.code();
            if code == "work_duplicate" {
                tracing::debug!(%error, first_window, windows, "work report not sent: already reported");
            } else {
                tracing::warn!(%error, code, first_window, windows, "the work report was refused");
            }
            None
        }
    }
}

/// Looks at the submitted reports: logs the refused ones with their code,
/// and forgets those committed, refused or pending too long.
fn follow(chain: &flux_chain::Node, submitted: &mut Vec<Submitted>, height: u64) {
    submitted.retain(|sent| {
        match chain.tx_status(&sent.hash) {
            Ok(TxStatus::Committed { receipt }) => {
                if let ReceiptDetail::WorkReported { targets, .. } = receipt.detail {
                    tracing::debug!(tx = %sent.hash, height = receipt.height, targets, "work report recorded");
                }
                false
            }
            Ok(TxStatus::Rejected { code, message }) => {
                if code == "work_duplicate" {
                    tracing::debug!(tx = %sent.hash, %message, "work report refused: already reported");
                } else {
                    tracing::warn!(
                        tx = %sent.hash,
                        %code,
                        %message,
                        first_window = sent.first_window,
                        windows = sent.windows,
                        "the work report was refused"
                    );
                }
                false
            }
            Ok(TxStatus::Pending | TxStatus::Unknown) => {
                if height >= sent.height.saturating_add(PENDING_BLOCKS_MAX) {
                    tracing::warn!(tx = %sent.hash, "the work report is still not in a block");
                    return false;
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read a work report's status");
                false
            }
        }
    });
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

    use flux_types::app::Component;
    use flux_types::{Address, AppSpec, BenchmarkReport, Params, Tier};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::testkit::{self, signed};

    fn node(index: u8) -> Target {
        Target::Node {
            node: Address([index; 20]),
        }
    }

    fn row(entries: &[(Target, bool)]) -> BTreeMap<Target, bool> {
        entries.iter().cloned().collect()
    }

    /// Every (window, target, up) a list of reports carries.
    fn reported(reports: &[Report]) -> Vec<(u64, Target, bool)> {
        let mut out = Vec::new();
        for report in reports {
            for results in &report.results {
                results.check_shape(report.windows).unwrap();
                for index in 0..report.windows {
                    out.push((
                        report.first_window + u64::from(index),
                        results.target.clone(),
                        results.is_up(index),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn reports_cover_what_was_seen_once_within_limits_and_never_across_epochs() {
        let (a, b, c) = (node(1), node(2), node(3));
        let mut seen: Seen = BTreeMap::new();
        for window in 10..=16 {
            // `b` was not probed in window 12; `c` is assigned in no epoch.
            let mut entries = vec![(a.clone(), window % 2 == 0), (c.clone(), true)];
            if window != 12 {
                entries.push((b.clone(), true));
            }
            seen.insert(window, row(&entries));
        }
        // Window 14 was never opened (no block fell in it); 15 and 16 are
        // in the next epoch.
        let open: BTreeMap<u64, u64> = [(10, 1), (11, 1), (12, 1), (13, 1), (15, 2), (16, 2)]
            .into_iter()
            .collect();
        let both: BTreeSet<Target> = [a.clone(), b.clone()].into_iter().collect();
        let assigned: BTreeMap<u64, BTreeSet<Target>> =
            [(1, both.clone()), (2, both)].into_iter().collect();
        let reports = plan(&seen, &open, &assigned, 3, 256);
        for report in &reports {
            assert!(report.windows <= 3);
            let epochs: BTreeSet<u64> = (0..report.windows)
                .map(|i| open[&(report.first_window + u64::from(i))])
                .collect();
            assert_eq!(epochs, BTreeSet::from([report.epoch]), "{report:?}");
        }
        let mut expected = Vec::new();
        for window in [10, 11, 12, 13, 15, 16] {
            expected.push((window, a.clone(), window % 2 == 0));
            if window != 12 {
                expected.push((window, b.clone(), true));
            }
        }
        expected.sort();
        assert_eq!(reported(&reports), expected);
        // Runs: 10-12 (three windows at most), 13, 15-16; `b` splits the
        // first run around window 12.
        let shapes: BTreeSet<(u64, u64, u32, usize)> = reports
            .iter()
            .map(|r| (r.epoch, r.first_window, r.windows, r.results.len()))
            .collect();
        assert_eq!(
            shapes,
            BTreeSet::from([(1, 10, 3, 1), (1, 10, 2, 1), (1, 13, 1, 2), (2, 15, 2, 2)])
        );
        // One target per report, runs as long as the epochs allow: `a` over
        // 10-13 and 15-16, `b` over 10-11, 13 and 15-16.
        let single = plan(&seen, &open, &assigned, 64, 1);
        assert!(single.iter().all(|r| r.results.len() == 1));
        assert_eq!(reported(&single), expected);
        assert_eq!(single.len(), 5);
    }

    #[test]
    fn a_report_is_due_after_a_batch_or_near_the_lateness_bound() {
        let open: BTreeMap<u64, u64> = [(10, 1), (11, 1), (12, 1)].into_iter().collect();
        let one: Seen = [(12, row(&[(node(1), true)]))].into_iter().collect();
        assert!(!report_due(&one, &open, 12, 5));
        let two: Seen = [(11, row(&[(node(1), true)])), (12, row(&[(node(1), true)]))]
            .into_iter()
            .collect();
        assert!(report_due(&two, &open, 12, 5));
        let old: Seen = [(10, row(&[(node(1), true)]))].into_iter().collect();
        assert!(!report_due(&old, &open, 13, 5));
        assert!(report_due(&old, &open, 14, 5));
        // A window not open counts for nothing.
        let closed: Seen = [(9, row(&[(node(1), true)])), (10, row(&[(node(1), true)]))]
            .into_iter()
            .collect();
        assert!(!report_due(&closed, &open, 10, 5));
    }

    #[test]
    fn a_state_older_than_the_lateness_bound_is_not_caught_up() {
        let work = Params::devnet().work;
        let reach = work.window_ms * work.report_late_windows;
        let now = 1_700_000_000_000;
        assert!(caught_up(now, now, &work));
        assert!(caught_up(now + 500, now, &work), "a clock a little behind");
        assert!(caught_up(now - reach, now, &work));
        assert!(!caught_up(now - reach - 1, now, &work));
    }

    /// Answers every connection with `answer` (nothing: a bare TCP accept).
    fn serve(listener: TcpListener, answer: &'static str) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    let _ = socket.read(&mut buffer).await;
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        })
    }

    /// A listener on a free port of the standard app range.
    async fn standard_port_listener() -> (TcpListener, u16) {
        let start = 31_000 + (std::process::id() % 8_000) as u16;
        for offset in 0..1_000u16 {
            let port = 31_000 + (start - 31_000 + offset) % 9_000;
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
                return (listener, port);
            }
        }
        panic!("no free port in 31000-39999");
    }

    async fn wait_until(
        chain: &flux_chain::Node,
        what: &str,
        mut done: impl FnMut(&State) -> bool,
    ) -> State {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = chain.state();
            if done(&state) {
                return state;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            chain.wait_for_height(state.height() + 1).await;
        }
    }

    /// A single-validator chain with two confirmed nodes, each hosting one
    /// instance of an app: the validator's node runs the work loop, probes
    /// the other node's API and its instance's port, and its reports credit
    /// the other node with verified instance-windows; once the instance's
    /// port closes, the same reports make the node count as down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_of_a_live_instance_credit_its_host_and_a_dead_one_counts_down() {
        let owner = SecretKey::development("owner");
        let me = SecretKey::development("validator");
        let other = SecretKey::development("other");
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_port = api.local_addr().unwrap().port();
        let api_server = serve(api, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        let (app_listener, app_port) = standard_port_listener().await;
        let app_server = serve(app_listener, "");
        let mut params = Params::devnet();
        params.work.window_ms = 500;
        params.epoch_length_blocks = 40;
        let genesis = testkit::genesis(params, &owner, 10_000, me.public_key());
        let dir = tempfile::tempdir().unwrap();
        let chain = flux_chain::Node::start(flux_chain::NodeConfig {
            data_dir: dir.path().join("data"),
            genesis,
            node_key: me.clone(),
            block_interval_ms: 100,
            mempool_txs_max: 1_000,
            mempool_bytes_max: 1 << 22,
        })
        .await
        .unwrap();
        let state = chain.state();
        for (nonce, (key, endpoint)) in [
            (&me, "127.0.0.1:16127".to_string()),
            (&other, format!("127.0.0.1:{api_port}")),
        ]
        .into_iter()
        .enumerate()
        {
            let register = TxBody::NodeRegister {
                node_key: key.public_key(),
                tier: Tier::Cumulus,
                endpoint,
                region: "EU_CZ".into(),
            };
            chain
                .submit(signed(&state, &owner, nonce as u64, register))
                .unwrap();
        }
        wait_until(&chain, "the registrations", |s| {
            s.node(&other.address()).is_some()
        })
        .await;
        let state = chain.state();
        let report = BenchmarkReport {
            cores: 4,
            ram_mb: 8_192,
            disk_gb: 100,
            cpu_score: 1_000,
            disk_write_mb_per_s: 100,
        };
        for key in [&me, &other] {
            chain
                .submit(signed(&state, key, 0, TxBody::NodeBenchmark { report }))
                .unwrap();
        }
        let spec = AppSpec {
            name: "probed".into(),
            description: String::new(),
            owner: owner.address(),
            instances: 2,
            contacts: vec![],
            geolocation: vec![],
            nodes: vec![],
            static_ip: false,
            components: vec![Component {
                name: "web".into(),
                description: String::new(),
                repotag: "flux-hello:latest".into(),
                ports: vec![app_port],
                container_ports: vec![8080],
                domains: vec![String::new()],
                environment: vec![],
                commands: vec![],
                container_data: String::new(),
                cpu_tenths: 1,
                ram_mb: 100,
                hdd_gb: 1,
                health_path: String::new(),
            }],
        };
        let register_app = TxBody::AppRegister {
            spec,
            months: 1,
            max_payment: Amount::flux(1_000),
        };
        chain
            .submit(signed(&state, &owner, 2, register_app))
            .unwrap();
        let task = tokio::spawn(run(chain.clone(), me.clone()));
        // The next epoch assigns the validator's node to verify the other
        // node and the instance it hosts.
        let state = wait_until(&chain, "an assignment", |s| {
            !s.targets_of(&me.address()).is_empty()
        })
        .await;
        let targets = state.targets_of(&me.address());
        assert!(
            targets.contains(&Target::Node {
                node: other.address()
            }),
            "{targets:?}"
        );
        let hosted = targets
            .iter()
            .find(|t| matches!(t, Target::Instance { host, .. } if *host == other.address()))
            .cloned();
        assert!(
            hosted.is_some(),
            "no instance of the other node to verify: {targets:?}"
        );
        let epoch = state.epoch();
        let state = wait_until(&chain, "verified windows", |s| {
            s.node_work(&other.address(), epoch).verified_windows >= 2
        })
        .await;
        let work = state.node_work(&other.address(), epoch);
        assert_eq!(state.node_down_windows(&other.address()), 0);
        assert!(work.verified_windows <= work.assigned_windows, "{work:?}");
        // The instance's port closes: the reports now say it is down, and
        // with its only instance down the node counts as down.
        app_server.abort();
        let _ = app_server.await;
        wait_until(&chain, "down windows", |s| {
            s.node_down_windows(&other.address()) >= 2
        })
        .await;
        task.abort();
        api_server.abort();
        chain.shutdown().await;
    }
}
