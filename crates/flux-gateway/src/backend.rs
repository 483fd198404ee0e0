//! Backends as the gateway sees them: health, requests in flight, pooled
//! connections, and how one is chosen.
//!
//! Health is a small state machine per backend address:
//!
//! ```text
//!            failure (connect refused or timed out, connection lost
//!            before a response, probe failed)
//!   in rotation ─────────────────────────────► ejected until T
//!        ▲                                        │      ▲
//!        │ probe succeeds (at or after T)         │      │ probe fails: ejected again,
//!        └────────────────────────────────────────┘      │ back-off doubled (capped)
//!                                                        └──────
//! ```
//!
//! An ejected backend gets no traffic at all until a probe (a TCP connect)
//! succeeds, so a dead instance costs clients nothing after the first failure.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::client::conn::http1::SendRequest;

use crate::body::OutBody;
use crate::config::{Balance, GatewayConfig, RETRIES_HARD_MAX};

/// Milliseconds on the gateway's own monotonic clock; 0 is never a time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

thread_local! {
    /// Index of the gateway worker running on this thread (0 elsewhere).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as gateway worker `index`.
pub(crate) fn set_worker(index: usize) {
    WORKER.with(|worker| worker.set(index));
}

/// An idle keep-alive connection to a backend.
struct IdleConnection {
    sender: SendRequest<OutBody>,
    since: Instant,
}

/// One backend address, shared by every route that lists it and kept across
/// route table swaps while any route lists it.
pub(crate) struct BackendState {
    pub(crate) addr: SocketAddr,
    pub(crate) local: bool,
    outstanding: AtomicUsize,
    /// 0 while in rotation; otherwise the clock time at which a probe may bring it back.
    ejected_until_ms: AtomicU64,
    /// Consecutive failures; sets the back-off.
    failures: AtomicU32,
    /// Clock time of the last probe started.
    probed_at_ms: AtomicU64,
    probing: AtomicBool,
    /// No route lists it any more: connections are not pooled.
    retired: AtomicBool,
    /// Idle connections, one pool per worker: a connection is driven by the
    /// worker that opened it, so only that worker reuses it.
    idle: Box<[Mutex<Vec<IdleConnection>>]>,
    pool_max: usize,
}

/// What a backend's health looks like from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    /// The backend.
    pub addr: SocketAddr,
    /// Whether it is on this gateway's node.
    pub local: bool,
    /// Whether it gets traffic (false while ejected).
    pub healthy: bool,
    /// Requests and TCP connections in flight to it.
    pub outstanding: usize,
    /// Idle pooled connections to it.
    pub idle_connections: usize,
}

impl BackendState {
    fn new(addr: SocketAddr, local: bool, pool_max: usize, workers: usize) -> BackendState {
        BackendState {
            addr,
            local,
            outstanding: AtomicUsize::new(0),
            ejected_until_ms: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            probed_at_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            pool_max,
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) == 0
    }

    /// When the ejection ends (clock ms), if ejected.
    pub(crate) fn ejected_until_ms(&self) -> Option<u64> {
        match self.ejected_until_ms.load(Ordering::Relaxed) {
            0 => None,
            until => Some(until),
        }
    }

    pub(crate) fn status(&self) -> BackendStatus {
        BackendStatus {
            addr: self.addr,
            local: self.local,
            healthy: self.is_healthy(),
            outstanding: self.outstanding.load(Ordering::Relaxed),
            idle_connections: self
                .idle
                .iter()
                .map(|pool| pool.lock().expect("pool lock").len())
                .sum(),
        }
    }

    /// Takes the backend out of rotation after a failure seen by traffic.
    /// Returns whether this call ejected it (a backend already ejected stays
    /// as it is: many requests failing at once count as one failure).
    pub(crate) fn record_failure(&self, clock: &Clock, config: &GatewayConfig) -> bool {
        let failures = self.failures.load(Ordering::Relaxed).saturating_add(1);
        let until = clock.now_ms() + back_off_ms(failures, config);
        let ejected = self
            .ejected_until_ms
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if ejected {
            self.failures.store(failures, Ordering::Relaxed);
            self.clear_pool();
            tracing::warn!(backend = %self.addr, back_off_ms = until - clock.now_ms(), "backend failed; out of rotation");
        }
        ejected
    }

    /// The outcome of a probe.
    pub(crate) fn record_probe(&self, ok: bool, clock: &Clock, config: &GatewayConfig) {
        self.probing.store(false, Ordering::Release);
        match (ok, self.is_healthy()) {
            (true, true) => {}
            (true, false) => {
                self.failures.store(0, Ordering::Relaxed);
                self.ejected_until_ms.store(0, Ordering::Release);
                tracing::info!(backend = %self.addr, "backend answers again; back in rotation");
            }
            (false, true) => {
                self.record_failure(clock, config);
            }
            (false, false) => {
                let failures = self.failures.load(Ordering::Relaxed).saturating_add(1);
                self.failures.store(failures, Ordering::Relaxed);
                let until = clock.now_ms() + back_off_ms(failures, config);
                self.ejected_until_ms.store(until, Ordering::Release);
                tracing::debug!(backend = %self.addr, failures, "backend still failing");
            }
        }
    }

    /// Whether a probe is due now; if so, marks one as started.
    pub(crate) fn start_probe_if_due(&self, now_ms: u64, config: &GatewayConfig) -> bool {
        let due = match self.ejected_until_ms() {
            Some(until) => now_ms >= until,
            None => now_ms >= self.probed_at_ms.load(Ordering::Relaxed) + config.probe_interval_ms,
        };
        if !due || self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.probed_at_ms.store(now_ms, Ordering::Relaxed);
        true
    }

    /// Gives back a probe marked started that will not run.
    pub(crate) fn cancel_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// An idle pooled connection, if one is open and young enough.
    pub(crate) fn take_idle(&self, config: &GatewayConfig) -> Option<SendRequest<OutBody>> {
        let mut idle = self.pool().lock().expect("pool lock");
        while let Some(connection) = idle.pop() {
            if connection.sender.is_closed()
                || connection.since.elapsed() > config.pool_idle_timeout()
            {
                continue;
            }
            return Some(connection.sender);
        }
        None
    }

    /// Keeps a connection whose last response is complete, within the pool's cap.
    pub(crate) fn put_idle(&self, sender: SendRequest<OutBody>) {
        if self.retired.load(Ordering::Relaxed) || sender.is_closed() || !self.is_healthy() {
            return;
        }
        let mut idle = self.pool().lock().expect("pool lock");
        if idle.len() < self.pool_max {
            idle.push(IdleConnection {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections that are closed or too old.
    pub(crate) fn reap_idle(&self, config: &GatewayConfig) {
        let timeout = config.pool_idle_timeout();
        for pool in &self.idle {
            pool.lock()
                .expect("pool lock")
                .retain(|c| !c.sender.is_closed() && c.since.elapsed() <= timeout);
        }
    }

    fn clear_pool(&self) {
        for pool in &self.idle {
            pool.lock().expect("pool lock").clear();
        }
    }

    /// This worker's pool.
    fn pool(&self) -> &Mutex<Vec<IdleConnection>> {
        let worker = WORKER.with(Cell::get);
        &self.idle[worker.min(self.idle.len() - 1)]
    }
}

fn back_off_ms(failures: u32, config: &GatewayConfig) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    config
        .ejection_base_ms
        .saturating_mul(1u64 << doublings)
        .min(config.ejection_max_ms)
}

/// Counts one request or TCP connection in flight to a backend while it lives.
pub(crate) struct Outstanding(pub(crate) Arc<BackendState>);

impl Outstanding {
    pub(crate) fn new(backend: Arc<BackendState>) -> Outstanding {
        backend.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(backend)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The backends of one port of one app, local ones first.
pub(crate) struct Group {
    backends: Vec<Arc<BackendState>>,
    local_count: usize,
    next: AtomicUsize,
}

/// Backends already tried for one request, by index in their group.
#[derive(Debug, Default)]
pub(crate) struct Tried {
    indices: [usize; RETRIES_HARD_MAX as usize + 1],
    len: usize,
}

impl Tried {
    pub(crate) fn push(&mut self, index: usize) {
        if self.len < self.indices.len() {
            self.indices[self.len] = index;
            self.len += 1;
        }
    }

    fn contains(&self, index: usize) -> bool {
        self.indices[..self.len].contains(&index)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Group {
    /// Chooses a healthy backend not tried yet: among the local ones if any
    /// is healthy, otherwise among the remote ones.
    pub(crate) fn pick(
        &self,
        balance: Balance,
        tried: &Tried,
    ) -> Option<(usize, &Arc<BackendState>)> {
        let (local, _) = self.backends.split_at(self.local_count);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        self.pick_in(0, local, balance, tried, start)
            .or_else(|| {
                self.pick_in(
                    self.local_count,
                    &self.backends[self.local_count..],
                    balance,
                    tried,
                    start,
                )
            })
            .map(|index| (index, &self.backends[index]))
    }

    fn pick_in(
        &self,
        offset: usize,
        tier: &[Arc<BackendState>],
        balance: Balance,
        tried: &Tried,
        start: usize,
    ) -> Option<usize> {
        let n = tier.len();
        let mut best: Option<(usize, usize)> = None;
        for step in 0..n {
            let i = (start + step) % n;
            let backend = &tier[i];
            if !backend.is_healthy() || tried.contains(offset + i) {
                continue;
            }
            match balance {
                Balance::RoundRobin => return Some(offset + i),
                Balance::LeastOutstanding => {
                    let load = backend.outstanding.load(Ordering::Relaxed);
                    if best.is_none_or(|(_, least)| load < least) {
                        best = Some((offset + i, load));
                    }
                }
            }
        }
        best.map(|(index, _)| index)
    }

    /// When the earliest ejection of the group ends, clock ms.
    pub(crate) fn earliest_return_ms(&self) -> Option<u64> {
        self.backends
            .iter()
            .filter_map(|b| b.ejected_until_ms())
            .min()
    }
}

/// Every backend address known to the gateway, so that health and pooled
/// connections survive route table swaps.
#[derive(Default)]
pub(crate) struct Registry {
    backends: HashMap<SocketAddr, Arc<BackendState>>,
}

impl Registry {
    /// Builds the groups of a new route table, reusing the state of
    /// addresses already known, and forgets addresses no route lists.
    pub(crate) fn groups(
        &mut self,
        table: &crate::routes::RouteTable,
        config: &GatewayConfig,
    ) -> Vec<Group> {
        let mut groups: Vec<Option<Group>> = (0..table.slots()).map(|_| None).collect();
        let mut kept = HashMap::with_capacity(self.backends.len());
        for port in table.ports() {
            let backends: Vec<Arc<BackendState>> = port
                .backends
                .iter()
                .map(|backend| {
                    let state = self
                        .backends
                        .get(&backend.addr)
                        .filter(|state| state.local == backend.local)
                        .cloned()
                        .unwrap_or_else(|| {
                            Arc::new(BackendState::new(
                                backend.addr,
                                backend.local,
                                config.pool_idle_per_backend_max,
                                config.workers,
                            ))
                        });
                    kept.insert(backend.addr, Arc::clone(&state));
                    state
                })
                .collect();
            let local_count = port.backends.iter().take_while(|b| b.local).count();
            groups[port.slot] = Some(Group {
                backends,
                local_count,
                next: AtomicUsize::new(0),
            });
        }
        for (addr, state) in &self.backends {
            if !kept.contains_key(addr) {
                state.retired.store(true, Ordering::Relaxed);
                state.clear_pool();
            }
        }
        self.backends = kept;
        groups
            .into_iter()
            .map(|group| group.expect("every slot has a port"))
            .collect()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<BackendState>> {
        self.backends.values()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn group(local: usize, remote: usize) -> Group {
        let backends = (0..local + remote)
            .map(|i| {
                Arc::new(BackendState::new(
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1000 + i as u16),
                    i < local,
                    4,
                    1,
                ))
            })
            .collect();
        Group {
            backends,
            local_count: local,
            next: AtomicUsize::new(0),
        }
    }

    fn picks(group: &Group, balance: Balance, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| group.pick(balance, &Tried::default()).unwrap().0)
            .collect()
    }

    #[test]
    fn round_robin_prefers_local_then_spreads() {
        let group = group(2, 2);
        assert_eq!(picks(&group, Balance::RoundRobin, 4), vec![0, 1, 0, 1]);
        let clock = Clock::new();
        let config = GatewayConfig::default();
        group.backends[0].record_failure(&clock, &config);
        group.backends[1].record_failure(&clock, &config);
        let mut remote = picks(&group, Balance::RoundRobin, 4);
        remote.sort();
        assert_eq!(remote, vec![2, 2, 3, 3]);
        group.backends[2].record_failure(&clock, &config);
        group.backends[3].record_failure(&clock, &config);
        assert!(group.pick(Balance::RoundRobin, &Tried::default()).is_none());
        group.backends[1].record_probe(true, &clock, &config);
        assert_eq!(picks(&group, Balance::RoundRobin, 2), vec![1, 1]);
    }

    #[test]
    fn tried_backends_are_skipped() {
        let group = group(0, 3);
        let mut tried = Tried::default();
        for _ in 0..3 {
            let (index, _) = group.pick(Balance::RoundRobin, &tried).unwrap();
            tried.push(index);
        }
        assert!(group.pick(Balance::RoundRobin, &tried).is_none());
    }

    #[test]
    fn least_outstanding_avoids_busy_backends() {
        let group = group(0, 3);
        let _busy = [
            Outstanding::new(Arc::clone(&group.backends[0])),
            Outstanding::new(Arc::clone(&group.backends[0])),
            Outstanding::new(Arc::clone(&group.backends[2])),
        ];
        assert_eq!(picks(&group, Balance::LeastOutstanding, 3), vec![1, 1, 1]);
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let config = GatewayConfig {
            ejection_base_ms: 100,
            ejection_max_ms: 1000,
            ..GatewayConfig::default()
        };
        let got: Vec<u64> = (1..=6).map(|f| back_off_ms(f, &config)).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(back_off_ms(u32::MAX, &config), 1000);
    }

    #[test]
    fn concurrent_failures_count_once() {
        let group = group(0, 1);
        let clock = Clock::new();
        let config = GatewayConfig::default();
        assert!(group.backends[0].record_failure(&clock, &config));
        assert!(!group.backends[0].record_failure(&clock, &config));
        assert_eq!(group.backends[0].failures.load(Ordering::Relaxed), 1);
    }
}
