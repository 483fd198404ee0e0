//! Useful work in the ledger: who verifies what each epoch, the reports of
//! what verifiers saw, and the per-node accounting they add up to.
//!
//! **Assignment.** At the end of the first block of epoch `e` (height
//! `e * epoch_length_blocks`) the ledger fixes the epoch's targets: every
//! active (confirmed) node, and every placed instance with its host. Each
//! target gets `work.verifiers_per_target` verifiers among the other active
//! nodes: the active nodes are ordered on a ring by `H(seed, node)`, with
//! `seed = H(e, hash of the last block of epoch e - 1)`, and a target's walk
//! starts at `H(seed, target) mod n`. The walk takes nodes of operators (owner
//! accounts) not yet taken and other than the host's, and fills up, when
//! fewer operators exist, with the nodes it skipped. The host itself is
//! never a verifier. The assignment stays fixed for the epoch, so that
//! reports and tallies refer to one verifier list; an instance placed during
//! the epoch is verified from the next one. Cost per epoch:
//! `O(n log n + t * V * WALK_PER_VERIFIER)` for `n` active nodes and `t`
//! targets; the rows written are one per target.
//!
//! **Windows.** Window `w` covers chain time `[w * window_ms, (w + 1) *
//! window_ms)`. The first block in a window opens it and records its epoch;
//! a window no block fell in is never opened, and nobody is accountable
//! for it. A window can be reported until `report_late_windows` windows
//! after its own; at the start of the first block past that it is settled.
//!
//! **Credit.** When window `w` of epoch `e` settles, every instance target of
//! `e` adds one assigned instance-window to its host, and one verified
//! instance-window when more than half of its verifiers reported it up.
//! Settling costs `O(t * log t)`.
//!
//! **Down windows.** A node's verdict in a window is *down* when more than
//! half of the verifiers of its node target reported it down, or when every
//! instance it hosts was so reported; *up* when it is not down and more than
//! half of the verifiers of its node target, or of one of its instances, saw
//! it up; otherwise *open*. Reports only add bits, so a majority once
//! reached is final: a verdict is decided *early*, at the start of the first
//! block after the reports that made it certain (down: a majority down;
//! up: its node target, if any, seen up by a majority and, if it hosts
//! instances, one of them too), and at the latest when the window settles.
//! A down verdict adds one to the node's count of consecutive down windows,
//! an up verdict sets it to zero, an open one (too few reports either way)
//! leaves it unchanged, so that missing reports neither fail a node over nor
//! forgive it. Windows are counted in order for each node: the early pass
//! stops at a node's first open window, and each node keeps the last window
//! it counted early, which its settlement then skips, so that no window
//! counts twice. Each block's early pass costs `O(W * t * log t)` for the
//! `W` open windows.
//!
//! Rows: per-node work by epoch (prefix 22), assignments by epoch and target
//! (23), tallies of reports by window and target (24, deleted when the window
//! settles), open windows (25), consecutive down windows by node and the
//! last window counted early (26, only while either is set).

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use flux_types::{Address, Hash, PublicKey, Target, TargetResults, codec};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::error::TxError;
use crate::exec::{Event, ReceiptDetail};
use crate::state::{Key, NodeRecord, NodeStatus, RestoreError, State};

/// Key prefix of a node's work in an epoch.
pub(crate) const PREFIX_NODE_WORK: u8 = 22;
/// Key prefix of a target's verifiers in an epoch.
pub(crate) const PREFIX_ASSIGNMENT: u8 = 23;
/// Key prefix of the reports of a target in a window.
pub(crate) const PREFIX_TALLY: u8 = 24;
/// Key prefix of an open window.
pub(crate) const PREFIX_WINDOW: u8 = 25;
/// Key prefix of a node's consecutive down windows.
pub(crate) const PREFIX_DOWN: u8 = 26;
/// Every key prefix of this module.
pub(crate) const PREFIXES: [u8; 5] = [
    PREFIX_NODE_WORK,
    PREFIX_ASSIGNMENT,
    PREFIX_TALLY,
    PREFIX_WINDOW,
    PREFIX_DOWN,
];

/// Fewest working nodes that make a committee without the genesis
/// validators: the smallest committee that tolerates one faulty member
/// (`3f + 1` with `f = 1`).
pub const COMMITTEE_WORKERS_MIN: usize = 4;

/// Ring positions a target's walk visits per verifier wanted while it looks
/// for distinct operators, before it fills up with the nodes it skipped.
/// Bounds the cost of a network where one operator runs most nodes.
const WALK_PER_VERIFIER: usize = 8;

/// A row of this module, before encoding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WorkKey {
    /// A node's work in an epoch.
    NodeWork(u64, Address),
    /// A target's verifiers in an epoch.
    Assignment(u64, Target),
    /// The reports of a target in a window.
    Tally(u64, Target),
    /// An open window and its epoch.
    Window(u64),
    /// A node's consecutive down windows.
    Down(Address),
}

impl WorkKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            WorkKey::NodeWork(epoch, node) => {
                [&[PREFIX_NODE_WORK][..], &epoch.to_be_bytes(), &node.0].concat()
            }
            WorkKey::Assignment(epoch, target) => [
                &[PREFIX_ASSIGNMENT][..],
                &epoch.to_be_bytes(),
                &target.id_bytes(),
            ]
            .concat(),
            WorkKey::Tally(window, target) => [
                &[PREFIX_TALLY][..],
                &window.to_be_bytes(),
                &target.id_bytes(),
            ]
            .concat(),
            WorkKey::Window(window) => [&[PREFIX_WINDOW][..], &window.to_be_bytes()].concat(),
            WorkKey::Down(node) => [&[PREFIX_DOWN][..], &node.0].concat(),
        }
    }
}

/// A node's useful work in one epoch.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct NodeWork {
    /// Instance-windows of the instances it hosts that had verifiers.
    pub assigned_windows: u64,
    /// Of those, the ones a majority of the instance's verifiers saw up.
    pub verified_windows: u64,
}

impl NodeWork {
    /// The verified share of the assigned instance-windows, in thousandths;
    /// `None` when nothing was assigned.
    pub fn verified_permille(&self) -> Option<u64> {
        if self.assigned_windows == 0 {
            return None;
        }
        Some((u128::from(self.verified_windows) * 1_000 / u128::from(self.assigned_windows)) as u64)
    }

    /// Whether the verified share reaches `permille_min` thousandths of some
    /// assigned work (a node with nothing assigned does not pass).
    pub fn passes(&self, permille_min: u32) -> bool {
        self.assigned_windows > 0
            && u128::from(self.verified_windows) * 1_000
                >= u128::from(permille_min) * u128::from(self.assigned_windows)
    }
}

/// The reports of one target in one window: bit `i` stands for the target's
/// `i`-th verifier in the epoch's assignment.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
pub(crate) struct Tally {
    /// Verifiers that reported the window.
    reported: u32,
    /// Verifiers that saw the target up.
    up: u32,
}

/// A node's consecutive down windows and the last open window already
/// counted into them.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
pub(crate) struct DownCount {
    /// Consecutive down windows.
    windows: u64,
    /// The last window counted before it settled (`None` once it settled).
    through: Option<u64>,
}

/// A node's verdict in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Down,
    Up,
    Open,
}

/// One epoch's verifiers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Assignment {
    /// The verifiers of each target, in walk order.
    verifiers: OrdMap<Target, Vec<Address>>,
    /// The targets of each verifier, in target order.
    by_verifier: OrdMap<Address, Vec<Target>>,
}

impl Assignment {
    fn index(verifiers: OrdMap<Target, Vec<Address>>) -> Assignment {
        let mut by_verifier: BTreeMap<Address, Vec<Target>> = BTreeMap::new();
        for (target, list) in &verifiers {
            for verifier in list {
                by_verifier
                    .entry(*verifier)
                    .or_default()
                    .push(target.clone());
            }
        }
        Assignment {
            verifiers,
            by_verifier: by_verifier.into_iter().collect(),
        }
    }
}

/// What the ledger keeps for useful work.
#[derive(Clone, Debug, Default)]
pub(crate) struct Work {
    node_work: OrdMap<(u64, Address), NodeWork>,
    assignments: OrdMap<u64, Assignment>,
    /// Verifier lists read back by a restore, until [`rebuild`] indexes them.
    restored: BTreeMap<u64, OrdMap<Target, Vec<Address>>>,
    tallies: OrdMap<(u64, Target), Tally>,
    /// Open windows and the epoch of each.
    windows: OrdMap<u64, u64>,
    down: OrdMap<Address, DownCount>,
}

impl Work {
    /// The stored value of a row, `None` when it is deleted.
    pub(crate) fn row(&self, key: &WorkKey) -> Option<Vec<u8>> {
        match key {
            WorkKey::NodeWork(epoch, node) => {
                self.node_work.get(&(*epoch, *node)).map(codec::encode)
            }
            WorkKey::Assignment(epoch, target) => self
                .assignments
                .get(epoch)?
                .verifiers
                .get(target)
                .map(|list| codec::encode(&(target, list))),
            WorkKey::Tally(window, target) => self
                .tallies
                .get(&(*window, target.clone()))
                .map(|tally| codec::encode(&(target, tally))),
            WorkKey::Window(window) => self.windows.get(window).map(codec::encode),
            WorkKey::Down(node) => self.down.get(node).map(codec::encode),
        }
    }

    /// Reads one stored row back; assignments are indexed by [`rebuild`].
    pub(crate) fn restore_row(
        &mut self,
        prefix: u8,
        rest: &[u8],
        value: &[u8],
    ) -> Result<(), RestoreError> {
        let corrupt = |what: &str| RestoreError(format!("bad {what} row"));
        let number = |bytes: &[u8]| -> Result<u64, RestoreError> {
            let head: [u8; 8] = bytes
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("work"))?;
            Ok(u64::from_be_bytes(head))
        };
        let address = |bytes: &[u8]| -> Result<Address, RestoreError> {
            Ok(Address(bytes.try_into().map_err(|_| corrupt("work"))?))
        };
        match prefix {
            PREFIX_NODE_WORK => {
                let record = codec::decode_trusted(value).map_err(|_| corrupt("node work"))?;
                self.node_work
                    .insert((number(rest)?, address(&rest[8..])?), record);
            }
            PREFIX_ASSIGNMENT => {
                let (target, list): (Target, Vec<Address>) =
                    codec::decode_trusted(value).map_err(|_| corrupt("assignment"))?;
                self.restored
                    .entry(number(rest)?)
                    .or_default()
                    .insert(target, list);
            }
            PREFIX_TALLY => {
                let (target, tally): (Target, Tally) =
                    codec::decode_trusted(value).map_err(|_| corrupt("tally"))?;
                self.tallies.insert((number(rest)?, target), tally);
            }
            PREFIX_WINDOW => {
                let epoch = codec::decode_trusted(value).map_err(|_| corrupt("window"))?;
                self.windows.insert(number(rest)?, epoch);
            }
            PREFIX_DOWN => {
                let count = codec::decode_trusted(value).map_err(|_| corrupt("down"))?;
                self.down.insert(address(rest)?, count);
            }
            other => return Err(RestoreError(format!("unknown key prefix {other}"))),
        }
        Ok(())
    }
}

/// Indexes the assignments read back by a restore.
pub(crate) fn rebuild(state: &mut State) {
    for (epoch, verifiers) in std::mem::take(&mut state.work.restored) {
        state
            .work
            .assignments
            .insert(epoch, Assignment::index(verifiers));
    }
}

/// The epoch of a height.
fn epoch_of(state: &State, height: u64) -> u64 {
    height / state.params().epoch_length_blocks
}

fn mark(state: &mut State, key: WorkKey) {
    state.dirty.insert(Key::Work(key));
}

/// Starts a block, after its height and time are set: settles the windows
/// past their lateness bound, opens the block's window and forgets the
/// assignments no open window needs.
pub(crate) fn begin_block(state: &mut State) -> Vec<Event> {
    let mut events = Vec::new();
    let params = state.params().work.clone();
    let current = state.time_ms() / params.window_ms;
    let epoch = epoch_of(state, state.height());
    let due: Vec<(u64, u64)> = state
        .work
        .windows
        .iter()
        .take_while(|(window, _)| window.saturating_add(params.report_late_windows) < current)
        .map(|(window, epoch)| (*window, *epoch))
        .collect();
    for (window, window_epoch) in due {
        settle(state, window, window_epoch, epoch, &mut events);
        state.work.windows.remove(&window);
        mark(state, WorkKey::Window(window));
    }
    if !state.work.windows.contains_key(&current) {
        state.work.windows.insert(current, epoch);
        mark(state, WorkKey::Window(current));
    }
    let stale: Vec<u64> = state
        .work
        .assignments
        .keys()
        .copied()
        .filter(|old| *old < epoch && !state.work.windows.values().any(|e| e == old))
        .collect();
    for old in stale {
        if let Some(assignment) = state.work.assignments.remove(&old) {
            for target in assignment.verifiers.keys() {
                mark(state, WorkKey::Assignment(old, target.clone()));
            }
        }
    }
    events
}

/// Ends a block, after placement: the first block of an epoch fixes the
/// epoch's assignment and forgets per-node work older than the history kept.
pub(crate) fn end_block(state: &mut State) {
    let height = state.height();
    if !height.is_multiple_of(state.params().epoch_length_blocks) {
        return;
    }
    let epoch = epoch_of(state, height);
    if state.work.assignments.contains_key(&epoch) {
        return;
    }
    let verifiers = assign(state, epoch, state.meta().parent_hash);
    for target in verifiers.keys() {
        mark(state, WorkKey::Assignment(epoch, target.clone()));
    }
    state
        .work
        .assignments
        .insert(epoch, Assignment::index(verifiers));
    let kept_from = (epoch + 1).saturating_sub(state.params().work.history_epochs);
    let old: Vec<(u64, Address)> = state
        .work
        .node_work
        .keys()
        .take_while(|(e, _)| *e < kept_from)
        .copied()
        .collect();
    for key in old {
        state.work.node_work.remove(&key);
        mark(state, WorkKey::NodeWork(key.0, key.1));
    }
}

/// The seed of an epoch's assignment: its number and the hash of the last
/// block of the epoch before (zero before the first block).
fn epoch_seed(epoch: u64, previous: Hash) -> Hash {
    Hash::digest(&[b"FLUX/work-seed/v1", &epoch.to_le_bytes(), &previous.0])
}

fn position(seed: &Hash, bytes: &[u8]) -> u64 {
    let digest = Hash::digest(&[&seed.0, bytes]);
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest.0[..8]);
    u64::from_le_bytes(head)
}

/// The verifiers of every target of `epoch`, from the active nodes and
/// placements in `state`.
fn assign(state: &State, epoch: u64, previous: Hash) -> OrdMap<Target, Vec<Address>> {
    let seed = epoch_seed(epoch, previous);
    let mut ring: Vec<(u64, Address, Address)> = state
        .nodes()
        .filter(|node| node.status == NodeStatus::Confirmed)
        .map(|node| (position(&seed, &node.id.0), node.id, node.owner))
        .collect();
    ring.sort_unstable();
    // An unreachable node verifies nothing but stays a target, so that its
    // verifiers can see it up again.
    let mut targets: Vec<Target> = state
        .nodes()
        .filter(|node| matches!(node.status, NodeStatus::Confirmed | NodeStatus::Unreachable))
        .map(|node| Target::Node { node: node.id })
        .collect();
    for (key, slots) in state.scheduler().apps() {
        let Some(record) = state.apps.get(&**key) else {
            continue;
        };
        for (instance, host) in slots.iter().enumerate() {
            if let Some(host) = host {
                targets.push(Target::Instance {
                    host: *host,
                    app: record.spec.name.clone(),
                    instance: instance as u32,
                });
            }
        }
    }
    let wanted = state.params().work.verifiers_per_target as usize;
    let mut out = OrdMap::new();
    for target in targets {
        let host = *target.host();
        let host_owner = state.node(&host).map(|node| node.owner);
        let start = position(&seed, &target.id_bytes());
        let chosen = walk(&ring, start, &host, host_owner, wanted);
        if !chosen.is_empty() {
            out.insert(target, chosen);
        }
    }
    out
}

/// Walks the ring from `start` for `wanted` verifiers other than `host`,
/// preferring operators not yet taken and other than the host's.
fn walk(
    ring: &[(u64, Address, Address)],
    start: u64,
    host: &Address,
    host_owner: Option<Address>,
    wanted: usize,
) -> Vec<Address> {
    let n = ring.len();
    if n == 0 {
        return Vec::new();
    }
    let first = (start % n as u64) as usize;
    let spread_limit = n.min(wanted.saturating_mul(WALK_PER_VERIFIER));
    let mut chosen: Vec<Address> = Vec::with_capacity(wanted);
    let mut owners: Vec<Address> = Vec::with_capacity(wanted);
    let mut skipped: Vec<Address> = Vec::new();
    for step in 0..spread_limit {
        if chosen.len() == wanted {
            return chosen;
        }
        let (_, node, owner) = &ring[(first + step) % n];
        if node == host {
            continue;
        }
        if Some(*owner) == host_owner || owners.contains(owner) {
            skipped.push(*node);
            continue;
        }
        chosen.push(*node);
        owners.push(*owner);
    }
    for node in skipped {
        if chosen.len() == wanted {
            return chosen;
        }
        chosen.push(node);
    }
    for step in spread_limit..n {
        if chosen.len() == wanted {
            break;
        }
        let (_, node, _) = &ring[(first + step) % n];
        if node != host {
            chosen.push(*node);
        }
    }
    chosen
}

/// Settles window `window` of epoch `window_epoch`: credits instance-windows
/// and counts down windows, then drops the window's tallies.
fn settle(
    state: &mut State,
    window: u64,
    window_epoch: u64,
    current_epoch: u64,
    events: &mut Vec<Event>,
) {
    let lowest = (
        window,
        Target::Node {
            node: Address([0; 20]),
        },
    );
    let tallies: BTreeMap<Target, Tally> = state
        .work
        .tallies
        .range(lowest..)
        .take_while(|((w, _), _)| *w == window)
        .map(|((_, target), tally)| (target.clone(), *tally))
        .collect();
    for target in tallies.keys() {
        state.work.tallies.remove(&(window, target.clone()));
        mark(state, WorkKey::Tally(window, target.clone()));
    }
    let Some(assignment) = state.work.assignments.get(&window_epoch).cloned() else {
        return;
    };
    let mut hosts: BTreeMap<Address, (u64, u64)> = BTreeMap::new();
    for (target, verifiers) in &assignment.verifiers {
        if let Target::Instance { host, .. } = target {
            let tally = tallies.get(target).copied().unwrap_or_default();
            let entry = hosts.entry(*host).or_default();
            entry.0 += 1;
            entry.1 += u64::from(majority(tally, verifiers.len()) == Some(true));
        }
    }
    let history = state.params().work.history_epochs;
    let kept = window_epoch + history > current_epoch;
    for (host, (assigned, verified)) in &hosts {
        if !kept || state.node(host).is_none() {
            continue;
        }
        let key = (window_epoch, *host);
        let mut work = state.work.node_work.get(&key).copied().unwrap_or_default();
        work.assigned_windows += assigned;
        work.verified_windows += verified;
        state.work.node_work.insert(key, work);
        mark(state, WorkKey::NodeWork(window_epoch, *host));
    }
    let verdicts = verdicts(
        &assignment,
        |target| tallies.get(target).copied().unwrap_or_default(),
        true,
    );
    for (node, verdict) in verdicts {
        let counted = state
            .work
            .down
            .get(&node)
            .and_then(|down| down.through)
            .is_some_and(|through| through >= window);
        if !counted {
            count(state, window, node, verdict, events);
        }
    }
    // The settled window is past every early count up to it.
    let done: Vec<Address> = state
        .work
        .down
        .iter()
        .filter(|(node, down)| {
            state.node(node).is_none() || down.through.is_some_and(|through| through <= window)
        })
        .map(|(node, _)| *node)
        .collect();
    for node in done {
        let mut down = state.work.down.get(&node).copied().unwrap_or_default();
        down.through = None;
        if state.node(&node).is_none() {
            down.windows = 0;
        }
        store_down(state, node, down);
    }
}

/// Whether more than half of a target's `verifiers` saw it up
/// (`Some(true)`), down (`Some(false)`), or neither (`None`).
fn majority(tally: Tally, verifiers: usize) -> Option<bool> {
    let up = tally.up.count_ones() as usize;
    let down = (tally.reported & !tally.up).count_ones() as usize;
    if 2 * up > verifiers {
        Some(true)
    } else if 2 * down > verifiers {
        Some(false)
    } else {
        None
    }
}

/// The verdict of every node judged in a window of the epoch of
/// `assignment`, from the tallies `tally_of` gives: final when `settled`,
/// otherwise only what no later report can change.
fn verdicts(
    assignment: &Assignment,
    tally_of: impl Fn(&Target) -> Tally,
    settled: bool,
) -> BTreeMap<Address, Verdict> {
    /// Per node: its node target's majority (`None` without a node
    /// target), its instances, those seen down and those seen up.
    #[derive(Default)]
    struct Seen {
        node: Option<Option<bool>>,
        instances: u64,
        down: u64,
        up: u64,
    }
    let mut seen: BTreeMap<Address, Seen> = BTreeMap::new();
    for (target, verifiers) in &assignment.verifiers {
        let verdict = majority(tally_of(target), verifiers.len());
        let entry = seen.entry(*target.host()).or_default();
        match target {
            Target::Node { .. } => entry.node = Some(verdict),
            Target::Instance { .. } => {
                entry.instances += 1;
                entry.down += u64::from(verdict == Some(false));
                entry.up += u64::from(verdict == Some(true));
            }
        }
    }
    seen.into_iter()
        .map(|(node, seen)| {
            let node_up = seen.node == Some(Some(true));
            let down = seen.node == Some(Some(false))
                || (seen.instances > 0 && seen.down == seen.instances);
            let up = if settled {
                node_up || seen.up > 0
            } else {
                // Certain only when neither way to down remains open.
                (node_up || (seen.node.is_none() && seen.up > 0))
                    && (seen.instances == 0 || seen.up > 0)
            };
            let verdict = if down {
                Verdict::Down
            } else if up {
                Verdict::Up
            } else {
                Verdict::Open
            };
            (node, verdict)
        })
        .collect()
}

/// Ends a block's transactions, before placement: counts the verdicts that
/// the reports so far make certain, in window order for each node, up to its
/// first open window, so that a node failed over loses its instances in the
/// block whose reports decided it.
pub(crate) fn decide_early(state: &mut State) -> Vec<Event> {
    let mut events = Vec::new();
    let windows: Vec<(u64, BTreeMap<Address, Verdict>)> = state
        .work
        .windows
        .iter()
        .filter_map(|(window, epoch)| {
            let assignment = state.work.assignments.get(epoch)?;
            let tally_of = |target: &Target| {
                state
                    .work
                    .tallies
                    .get(&(*window, target.clone()))
                    .copied()
                    .unwrap_or_default()
            };
            Some((*window, verdicts(assignment, tally_of, false)))
        })
        .collect();
    let nodes: std::collections::BTreeSet<Address> = windows
        .iter()
        .flat_map(|(_, verdicts)| verdicts.keys().copied())
        .collect();
    for node in nodes {
        let through = state.work.down.get(&node).and_then(|down| down.through);
        for (window, verdicts) in &windows {
            if through.is_some_and(|through| *window <= through) {
                continue;
            }
            match verdicts.get(&node) {
                None => continue,
                Some(Verdict::Open) => break,
                Some(verdict) => count(state, *window, node, *verdict, &mut events),
            }
        }
    }
    events
}

/// Counts `node`'s verdict in `window` into its consecutive down windows,
/// marks the window counted and moves the node between confirmed and
/// unreachable.
fn count(state: &mut State, window: u64, node: Address, verdict: Verdict, events: &mut Vec<Event>) {
    if state.node(&node).is_none() {
        return;
    }
    let mut down = state.work.down.get(&node).copied().unwrap_or_default();
    down.windows = match verdict {
        Verdict::Down => down.windows + 1,
        Verdict::Up => 0,
        Verdict::Open => down.windows,
    };
    down.through = Some(window);
    let failover_after = state.params().work.failover_down_windows;
    failover(
        state,
        window,
        node,
        verdict,
        down.windows,
        failover_after,
        events,
    );
    store_down(state, node, down);
}

/// Writes a node's down count, deleting the row when nothing is left in it.
fn store_down(state: &mut State, node: Address, down: DownCount) {
    let before = state.work.down.get(&node).copied();
    let after = (down != DownCount::default()).then_some(down);
    if before != after {
        match after {
            Some(down) => state.work.down.insert(node, down),
            None => state.work.down.remove(&node),
        };
        mark(state, WorkKey::Down(node));
    }
}

/// Moves a node between confirmed and unreachable after its verdict in
/// `window` was counted: down for `failover_after` consecutive windows makes
/// a confirmed node unreachable (its instances are placed elsewhere at the
/// end of the block); an up verdict makes an unreachable node confirmed
/// again.
fn failover(
    state: &mut State,
    window: u64,
    node: Address,
    verdict: Verdict,
    down_windows: u64,
    failover_after: u64,
    events: &mut Vec<Event>,
) {
    let Some(record) = state.node(&node) else {
        return;
    };
    let status = match record.status {
        NodeStatus::Confirmed if verdict == Verdict::Down && down_windows >= failover_after => {
            events.push(Event::NodeUnreachable {
                node,
                window,
                down_windows,
            });
            NodeStatus::Unreachable
        }
        NodeStatus::Unreachable if verdict == Verdict::Up => {
            events.push(Event::NodeReachable { node, window });
            NodeStatus::Confirmed
        }
        _ => return,
    };
    let mut record = record.clone();
    record.status = status;
    state.put_node(record);
}

/// A report to record: for each target, the signer's position among its
/// verifiers and its bitmap.
pub(crate) struct Judged {
    first_window: u64,
    windows: u32,
    entries: Vec<(Target, u32, TargetResults)>,
}

/// Judges a work report signed by `signer` against the state, changing
/// nothing: what to record, or why it is refused.
pub(crate) fn judge(
    state: &State,
    signer: &Address,
    epoch: u64,
    first_window: u64,
    windows: u32,
    results: &[TargetResults],
    now_ms: u64,
) -> Result<Judged, TxError> {
    let params = &state.params().work;
    if windows == 0 || results.is_empty() {
        return Err(TxError::WorkReportMalformed(
            "a work report covers at least one window and one target".into(),
        ));
    }
    if windows > params.report_windows_max {
        return Err(TxError::WorkReportTooLarge {
            what: "windows",
            max: u64::from(params.report_windows_max),
            got: u64::from(windows),
        });
    }
    if results.len() > params.report_targets_max as usize {
        return Err(TxError::WorkReportTooLarge {
            what: "targets",
            max: u64::from(params.report_targets_max),
            got: results.len() as u64,
        });
    }
    for (index, result) in results.iter().enumerate() {
        result
            .check_shape(windows)
            .map_err(TxError::WorkReportMalformed)?;
        if results[..index].iter().any(|r| r.target == result.target) {
            return Err(TxError::WorkReportMalformed(format!(
                "{} is named twice; report each target once",
                result.target
            )));
        }
    }
    if state.node(signer).is_none() {
        return Err(TxError::WorkSignerNotNode { signer: *signer });
    }
    let last_window = first_window
        .checked_add(u64::from(windows) - 1)
        .ok_or_else(|| TxError::WorkReportMalformed("the windows overflow".into()))?;
    let current = now_ms / params.window_ms;
    if last_window > current {
        return Err(TxError::WorkWindowInFuture {
            window: last_window,
            current,
        });
    }
    if first_window.saturating_add(params.report_late_windows) < current {
        return Err(TxError::WorkReportLate {
            window: first_window,
            oldest: current.saturating_sub(params.report_late_windows),
        });
    }
    for window in first_window..=last_window {
        if state.work.windows.get(&window) != Some(&epoch) {
            return Err(TxError::WorkWindowNotInEpoch { window, epoch });
        }
    }
    let assignment = state.work.assignments.get(&epoch);
    let mut entries = Vec::with_capacity(results.len());
    for result in results {
        let target = &result.target;
        if target.host() == signer {
            return Err(TxError::WorkSelfReport {
                target: target.clone(),
            });
        }
        let position = assignment
            .and_then(|a| a.verifiers.get(target))
            .and_then(|list| list.iter().position(|v| v == signer))
            .ok_or_else(|| TxError::WorkNotVerifier {
                node: *signer,
                target: target.clone(),
                epoch,
            })? as u32;
        for window in first_window..=last_window {
            let tally = state.work.tallies.get(&(window, target.clone()));
            if tally.is_some_and(|t| t.reported & (1 << position) != 0) {
                return Err(TxError::WorkDuplicate {
                    target: target.clone(),
                    window,
                });
            }
        }
        entries.push((target.clone(), position, result.clone()));
    }
    Ok(Judged {
        first_window,
        windows,
        entries,
    })
}

/// Writes a judged report into the tallies of its windows.
pub(crate) fn record(
    state: &mut State,
    node: Address,
    epoch: u64,
    judged: Judged,
) -> ReceiptDetail {
    let targets = judged.entries.len() as u32;
    for (target, position, results) in judged.entries {
        let bit = 1u32 << position;
        for index in 0..judged.windows {
            let window = judged.first_window + u64::from(index);
            let key = (window, target.clone());
            let mut tally = state.work.tallies.get(&key).copied().unwrap_or_default();
            tally.reported |= bit;
            if results.is_up(index) {
                tally.up |= bit;
            }
            state.work.tallies.insert(key, tally);
            mark(state, WorkKey::Tally(window, target.clone()));
        }
    }
    ReceiptDetail::WorkReported {
        node,
        epoch,
        first_window: judged.first_window,
        windows: judged.windows,
        targets,
    }
}

impl State {
    /// The epoch of the last applied block.
    pub fn epoch(&self) -> u64 {
        epoch_of(self, self.height())
    }

    /// The probe window of the last applied block's time.
    pub fn work_window(&self) -> u64 {
        self.time_ms() / self.params().work.window_ms
    }

    /// The verifiers of `target` in the current epoch (empty when it has none).
    pub fn verifiers_of(&self, target: &Target) -> Vec<Address> {
        self.verifiers_in(self.epoch(), target)
    }

    /// The verifiers of `target` in `epoch`, while the ledger keeps that
    /// epoch's assignment (until its last window settles).
    pub fn verifiers_in(&self, epoch: u64, target: &Target) -> Vec<Address> {
        self.work
            .assignments
            .get(&epoch)
            .and_then(|a| a.verifiers.get(target))
            .cloned()
            .unwrap_or_default()
    }

    /// What `verifier` must probe in the current epoch, in target order.
    pub fn targets_of(&self, verifier: &Address) -> Vec<Target> {
        self.targets_in(self.epoch(), verifier)
    }

    /// What `verifier` must probe in `epoch`.
    pub fn targets_in(&self, epoch: u64, verifier: &Address) -> Vec<Target> {
        self.work
            .assignments
            .get(&epoch)
            .and_then(|a| a.by_verifier.get(verifier))
            .cloned()
            .unwrap_or_default()
    }

    /// Every target of `epoch` with its verifiers, in target order.
    pub fn work_targets(&self, epoch: u64) -> Vec<(Target, Vec<Address>)> {
        self.work
            .assignments
            .get(&epoch)
            .map(|a| {
                a.verifiers
                    .iter()
                    .map(|(t, v)| (t.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A node's work in `epoch` (zero when nothing was settled for it, or
    /// when the epoch is older than the history kept).
    pub fn node_work(&self, id: &Address, epoch: u64) -> NodeWork {
        self.work
            .node_work
            .get(&(epoch, *id))
            .copied()
            .unwrap_or_default()
    }

    /// The consecutive windows in which a majority of a node's verifiers
    /// reported it down (windows without a majority either way skipped).
    pub fn node_down_windows(&self, id: &Address) -> u64 {
        self.work.down.get(id).map_or(0, |down| down.windows)
    }

    /// The epoch whose work elects the next committee: the newest epoch
    /// whose windows have all settled and in which some instance-window was
    /// assigned (`None` when the history kept has none).
    pub fn committee_epoch(&self) -> Option<u64> {
        // Windows open in epoch order, so every window of an epoch before
        // the first open window's has settled.
        let unsettled = self
            .work
            .windows
            .values()
            .next()
            .copied()
            .unwrap_or(u64::MAX);
        self.work
            .node_work
            .range(..(unsettled, Address([0; 20])))
            .next_back()
            .map(|((epoch, _), _)| *epoch)
    }

    /// The nodes that qualify for a seat, by id: confirmed (neither pending
    /// nor unreachable) and with a verified share of their work in
    /// [`State::committee_epoch`] of at least `work.verified_permille_min`.
    pub fn committee_candidates(&self) -> Vec<&NodeRecord> {
        let Some(epoch) = self.committee_epoch() else {
            return Vec::new();
        };
        let permille_min = self.params().work.verified_permille_min;
        self.nodes()
            .filter(|node| node.status == NodeStatus::Confirmed)
            .filter(|node| self.node_work(&node.id, epoch).passes(permille_min))
            .collect()
    }

    /// The working nodes drawn for the next committee with `seed`: every
    /// candidate while there are at most `work.committee_seats_max`,
    /// otherwise that many drawn one after another without replacement,
    /// each with a chance proportional to its tier's weight
    /// (`tiers[..].reward_weight_milli`). Ordered by id.
    pub fn draw_committee(&self, seed: &Hash) -> Vec<&NodeRecord> {
        let mut pool: Vec<(&NodeRecord, u128)> = self
            .committee_candidates()
            .into_iter()
            .map(|node| {
                let weight = self.params().tier(node.tier).reward_weight_milli;
                (node, u128::from(weight))
            })
            .collect();
        let seats = (self.params().work.committee_seats_max as usize)
            .min(flux_types::params::COMMITTEE_SEATS_HARD_MAX as usize);
        if pool.len() <= seats {
            return pool.into_iter().map(|(node, _)| node).collect();
        }
        let mut drawn = Vec::with_capacity(seats);
        for seat in 0..seats as u64 {
            let total: u128 = pool.iter().map(|(_, weight)| weight).sum();
            if total == 0 {
                break;
            }
            let digest = Hash::digest(&[b"FLUX/committee/v1", &seed.0, &seat.to_le_bytes()]);
            let mut head = [0u8; 16];
            head.copy_from_slice(&digest.0[..16]);
            let mut point = u128::from_le_bytes(head) % total;
            let index = pool
                .iter()
                .position(|(_, weight)| {
                    if point < *weight {
                        return true;
                    }
                    point -= weight;
                    false
                })
                .expect("the point lies below the total weight");
            drawn.push(pool.remove(index).0);
        }
        drawn.sort_by_key(|node| node.id);
        drawn
    }

    /// The committee of the epoch after this state's, when this state is
    /// the last block of an epoch: the working nodes drawn with the hash of
    /// that block as seed ([`State::draw_committee`]); while fewer than
    /// [`COMMITTEE_WORKERS_MIN`] are drawn, the genesis validators first, in
    /// genesis order, then those nodes. No key twice, at most
    /// `COMMITTEE_SEATS_HARD_MAX` seats.
    pub fn next_committee(&self, genesis_validators: &[PublicKey]) -> Vec<PublicKey> {
        let drawn = self.draw_committee(&self.last_block_hash());
        let mut keys: Vec<PublicKey> = Vec::with_capacity(drawn.len());
        if drawn.len() < COMMITTEE_WORKERS_MIN {
            keys.extend(genesis_validators.iter().copied());
        }
        keys.extend(drawn.into_iter().map(|node| node.node_key));
        let mut seen = std::collections::BTreeSet::new();
        keys.retain(|key| seen.insert(*key));
        keys.truncate(flux_types::params::COMMITTEE_SEATS_HARD_MAX as usize);
        keys
    }

    /// The windows still open for reports, each with its epoch.
    pub fn open_work_windows(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.work.windows.iter().map(|(w, e)| (*w, *e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn address(index: usize) -> Address {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
        Address(bytes)
    }

    proptest! {
        /// Whatever the ring: verifiers are distinct, never the host, as many
        /// as wanted while enough other nodes exist, and of distinct operators
        /// other than the host's whenever the walk's reach holds enough.
        #[test]
        fn the_walk_never_picks_the_host_and_spreads_operators(
            owners in proptest::collection::vec(0usize..6, 1..40),
            wanted in 1usize..6,
            host in 0usize..40,
            start in any::<u64>(),
        ) {
            let ring: Vec<(u64, Address, Address)> = owners
                .iter()
                .enumerate()
                .map(|(index, owner)| (index as u64, address(index), address(1_000 + owner)))
                .collect();
            let n = ring.len();
            let host_index = host % n;
            let host = ring[host_index].1;
            let host_owner = ring[host_index].2;
            let chosen = walk(&ring, start, &host, Some(host_owner), wanted);
            prop_assert!(!chosen.contains(&host));
            let distinct: BTreeSet<_> = chosen.iter().collect();
            prop_assert_eq!(distinct.len(), chosen.len());
            prop_assert_eq!(chosen.len(), wanted.min(n - 1));
            let first = (start % n as u64) as usize;
            let reach: BTreeSet<Address> = (0..n.min(wanted * WALK_PER_VERIFIER))
                .map(|step| ring[(first + step) % n].2)
                .filter(|owner| *owner != host_owner)
                .collect();
            if reach.len() >= wanted {
                let owner_of = |id: &Address| ring.iter().find(|r| r.1 == *id).map(|r| r.2);
                let operators: BTreeSet<_> = chosen.iter().map(owner_of).collect();
                prop_assert_eq!(operators.len(), wanted);
                prop_assert!(!operators.contains(&Some(host_owner)));
            }
        }
    }

    #[test]
    fn verified_share_is_in_thousandths_and_nothing_assigned_never_passes() {
        let work = NodeWork {
            assigned_windows: 3,
            verified_windows: 2,
        };
        assert_eq!(work.verified_permille(), Some(666));
        assert!(work.passes(666));
        assert!(!work.passes(667));
        assert_eq!(NodeWork::default().verified_permille(), None);
        assert!(!NodeWork::default().passes(0));
    }
}
