//! The ledger state: accounts, nodes, apps and chain metadata.
//!
//! Collections are persistent maps (`imbl`), so cloning a state to execute a
//! proposal speculatively costs O(1) and leaves the committed state untouched.
//! Every write goes through a method that also records the key in the dirty
//! set, from which [`Changes`] (what the store must write) and the state root
//! are computed at the end of a block.

use std::collections::BTreeSet;

use borsh::{BorshDeserialize, BorshSerialize};
use flux_types::{Address, Amount, AppSpec, Genesis, Hash, Params, PublicKey, Tier};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::error::GenesisError;
use crate::gov::{GovKey, GovState, Holdings};
use crate::rollout::Rollout;

/// An account.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct Account {
    /// Liquid balance.
    pub balance: Amount,
    /// Collateral locked by registered nodes.
    pub locked: Amount,
    /// Next nonce.
    pub nonce: u64,
}

/// Where a node is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Registered, collateral locked, waiting for a passing benchmark.
    Pending,
    /// Benchmark passed for its tier.
    Confirmed,
    /// Confirmed, but a majority of its verifiers saw it down for
    /// `work.failover_down_windows` consecutive windows: it hosts and
    /// verifies nothing until a majority sees it up again.
    Unreachable,
}

/// A registered node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct NodeRecord {
    /// The node's id: the address of its node key.
    pub id: Address,
    /// The account that locked the collateral.
    pub owner: Address,
    /// The node's own key.
    pub node_key: PublicKey,
    /// Tier.
    pub tier: Tier,
    /// API endpoint `HOST:PORT`.
    pub endpoint: String,
    /// `CONTINENT_COUNTRY`.
    pub region: String,
    /// Collateral locked.
    pub collateral: Amount,
    /// Status.
    pub status: NodeStatus,
    /// Height of registration.
    pub registered_height: u64,
}

/// A registered app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct AppRecord {
    /// The specification in force.
    pub spec: AppSpec,
    /// Height of first registration.
    pub registered_height: u64,
    /// Height of the last registration or update.
    pub updated_height: u64,
    /// Chain time at which the current paid period started.
    pub period_start_ms: u64,
    /// Chain time at which the app expires.
    pub expires_at_ms: u64,
    /// The price of the current period (before any credit): the base of the
    /// credit for its unused part when the app is updated.
    pub paid: Amount,
    /// Months of the current period.
    pub months: u32,
    /// The rolling update in progress, if any: which instances still run
    /// the spec from before the last update (see [`State::instance_spec`]).
    #[serde(default)]
    pub rollout: Option<Rollout>,
}

impl AppRecord {
    /// When the rolling update in progress ends, as the rollout index keys it.
    fn rollout_end(&self) -> Option<u64> {
        let rollout = self.rollout.as_ref()?;
        Some(rollout.finish_ms(self.spec.instances))
    }
}

/// Chain metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Meta {
    /// Network id.
    pub chain_id: String,
    /// Hash of the genesis.
    pub genesis_hash: Hash,
    /// Height of the last applied block (0 = genesis).
    pub height: u64,
    /// Chain time of the last applied block.
    pub time_ms: u64,
    /// Hash of the parent of the last applied block. (The last block's own
    /// hash cannot be part of the state it commits to; see [`State::last_block_hash`].)
    pub parent_hash: Hash,
    /// Total supply (genesis plus issued, minus burned).
    pub total_supply: Amount,
}

/// Key-value rows the store must write for one block: `None` deletes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// `(key, value)` rows; keys are prefixed by collection.
    pub rows: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Why stored rows could not be turned back into a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored state is corrupt: {0}")]
pub struct RestoreError(pub String);

/// The whole ledger state.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) meta: Meta,
    pub(crate) params: Params,
    pub(crate) accounts: OrdMap<Address, Account>,
    pub(crate) nodes: OrdMap<Address, NodeRecord>,
    /// Apps by [`app_key`] of their name.
    pub(crate) apps: OrdMap<String, AppRecord>,
    /// `(expires_at_ms, app_key)` of every app, to expire apps without scanning all of them.
    pub(crate) expiry: OrdMap<(u64, String), ()>,
    /// `(end_ms, app_key)` of every app with a rolling update in progress,
    /// to end rollouts without scanning all apps.
    pub(crate) rollouts: OrdMap<(u64, String), ()>,
    /// Leaf hash per stored key, for the state root.
    pub(crate) leaves: OrdMap<Vec<u8>, Hash>,
    pub(crate) state_root: Hash,
    /// Hash of the last applied block: outside the state root, set after the block is built.
    pub(crate) tip: Hash,
    pub(crate) dirty: BTreeSet<Key>,
    /// Placements and node benchmarks.
    pub(crate) placement: crate::placement::Placement,
    /// Proposals, votes, snapshots, param history and the image blocklist.
    pub(crate) gov: GovState,
    /// Verifier assignments, work reports and per-node work.
    pub(crate) work: crate::work::Work,
    /// Issuance totals and node rewards.
    pub(crate) rewards: crate::rewards::Rewards,
}

/// A key of the state, before encoding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Meta,
    Params,
    Account(Address),
    Node(Address),
    /// By [`app_key`].
    App(String),
    /// Governance rows, prefixes 10 to 19.
    Gov(GovKey),
    /// Placement and benchmark rows, prefixes 20 and 21.
    Placement(crate::placement::PlacementKey),
    /// Useful-work rows, prefixes 22 to 26.
    Work(crate::work::WorkKey),
    /// Rewards rows, prefixes 30 to 32.
    Rewards(crate::rewards::RewardsKey),
}

const PREFIX_META: u8 = 0;
const PREFIX_PARAMS: u8 = 1;
const PREFIX_ACCOUNT: u8 = 2;
const PREFIX_NODE: u8 = 3;
const PREFIX_APP: u8 = 4;

impl Key {
    fn encode(&self) -> Vec<u8> {
        match self {
            Key::Meta => vec![PREFIX_META],
            Key::Params => vec![PREFIX_PARAMS],
            Key::Account(a) => [&[PREFIX_ACCOUNT][..], &a.0].concat(),
            Key::Node(a) => [&[PREFIX_NODE][..], &a.0].concat(),
            Key::App(name) => [&[PREFIX_APP][..], name.as_bytes()].concat(),
            Key::Placement(key) => key.encode(),
            Key::Gov(key) => key.encode(),
            Key::Work(key) => key.encode(),
            Key::Rewards(key) => key.encode(),
        }
    }
}

/// The key of an app name. A name is also a host name under the network
/// domain, where case does not count, so `Shop` and `shop` are one app.
pub(crate) fn app_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    flux_types::codec::encode(value)
}

fn leaf_hash(key: &[u8], value: &[u8]) -> Hash {
    Hash::digest(&[
        b"FLUX/state-leaf/v1",
        &(key.len() as u32).to_le_bytes(),
        key,
        value,
    ])
}

/// The treasury's module account.
pub fn treasury_address() -> Address {
    Address::module("treasury")
}

/// The module account that collects app payments for node rewards.
pub fn reward_pool_address() -> Address {
    Address::module("reward-pool")
}

/// The module account that holds the deposits of open proposals.
pub fn gov_deposits_address() -> Address {
    Address::module("gov-deposits")
}

/// Every module account: no key is behind them, they never vote, and only
/// the ledger moves their coins.
pub fn module_accounts() -> &'static [Address] {
    static MODULES: std::sync::LazyLock<[Address; 3]> = std::sync::LazyLock::new(|| {
        [
            treasury_address(),
            reward_pool_address(),
            gov_deposits_address(),
        ]
    });
    &*MODULES
}

/// Whether `address` is a module account.
pub fn is_module_account(address: &Address) -> bool {
    module_accounts().contains(address)
}

impl State {
    /// The state at height 0 described by `genesis`, with the rows to store.
    pub fn from_genesis(genesis: &Genesis) -> Result<(State, Changes), GenesisError> {
        genesis.validate().map_err(GenesisError)?;
        let mut total = Amount::ZERO;
        let mut accounts = OrdMap::new();
        for entry in &genesis.accounts {
            total = total
                .checked_add(entry.balance)
                .ok_or_else(|| GenesisError("supply overflows".into()))?;
            accounts.insert(
                entry.address,
                Account {
                    balance: entry.balance,
                    locked: Amount::ZERO,
                    nonce: 0,
                },
            );
        }
        let mut state = State {
            meta: Meta {
                chain_id: genesis.chain_id.clone(),
                genesis_hash: genesis.hash(),
                height: 0,
                time_ms: genesis.genesis_time_ms,
                parent_hash: Hash::ZERO,
                total_supply: total,
            },
            params: genesis.params.clone(),
            accounts,
            nodes: OrdMap::new(),
            apps: OrdMap::new(),
            expiry: OrdMap::new(),
            rollouts: OrdMap::new(),
            leaves: OrdMap::new(),
            state_root: Hash::ZERO,
            tip: Hash::ZERO,
            dirty: BTreeSet::new(),
            placement: Default::default(),
            gov: GovState::default(),
            work: Default::default(),
            rewards: crate::rewards::Rewards::genesis(genesis.genesis_time_ms, total),
        };
        state.gov.rebuild(state.accounts.values());
        state.dirty.insert(Key::Meta);
        state.dirty.insert(Key::Params);
        state
            .dirty
            .insert(Key::Rewards(crate::rewards::RewardsKey::Summary));
        let keys: Vec<Address> = state.accounts.keys().copied().collect();
        state.dirty.extend(keys.into_iter().map(Key::Account));
        let changes = state.finish();
        Ok((state, changes))
    }

    /// Rebuilds a state from the rows a store holds (every row ever written by
    /// [`Changes`], minus deletions) and the hash of the last stored block
    /// (zero when only the genesis is stored).
    pub fn restore(
        rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        tip: Hash,
    ) -> Result<State, RestoreError> {
        let corrupt =
            |what: &str, e: flux_types::codec::CodecError| RestoreError(format!("{what}: {e}"));
        let mut meta = None;
        let mut params = None;
        let mut accounts = OrdMap::new();
        let mut nodes = OrdMap::new();
        let mut apps = OrdMap::new();
        let mut expiry = OrdMap::new();
        let mut rollouts = OrdMap::new();
        let mut leaves = OrdMap::new();
        let mut placement = crate::placement::Placement::default();
        let mut gov = GovState::default();
        let mut work = crate::work::Work::default();
        let mut rewards = crate::rewards::Rewards::default();
        for (key, value) in rows {
            let Some((&prefix, rest)) = key.split_first() else {
                return Err(RestoreError("empty key".into()));
            };
            let address = || -> Result<Address, RestoreError> {
                Ok(Address(
                    rest.try_into()
                        .map_err(|_| RestoreError("bad address key".into()))?,
                ))
            };
            match prefix {
                PREFIX_META => {
                    meta = Some(
                        flux_types::codec::decode_trusted::<Meta>(&value)
                            .map_err(|e| corrupt("meta", e))?,
                    )
                }
                PREFIX_PARAMS => {
                    params = Some(
                        flux_types::codec::decode_trusted::<Params>(&value)
                            .map_err(|e| corrupt("params", e))?,
                    )
                }
                PREFIX_ACCOUNT => {
                    accounts.insert(
                        address()?,
                        flux_types::codec::decode_trusted(&value)
                            .map_err(|e| corrupt("account", e))?,
                    );
                }
                PREFIX_NODE => {
                    nodes.insert(
                        address()?,
                        flux_types::codec::decode_trusted(&value)
                            .map_err(|e| corrupt("node", e))?,
                    );
                }
                PREFIX_APP => {
                    let name = String::from_utf8(rest.to_vec())
                        .map_err(|_| RestoreError("bad app key".into()))?;
                    let record: AppRecord =
                        flux_types::codec::decode_trusted(&value).map_err(|e| corrupt("app", e))?;
                    if app_key(&record.spec.name) != name {
                        return Err(RestoreError(format!(
                            "app row '{name}' holds app '{}'",
                            record.spec.name
                        )));
                    }
                    expiry.insert((record.expires_at_ms, name.clone()), ());
                    if let Some(end) = record.rollout_end() {
                        rollouts.insert((end, name.clone()), ());
                    }
                    apps.insert(name, record);
                }
                prefix if crate::gov::PREFIXES.contains(&prefix) => {
                    gov.restore_row(prefix, rest, &value)?;
                }
                prefix if crate::placement::PREFIXES.contains(&prefix) => {
                    placement.restore_row(prefix, rest, &value)?;
                }
                prefix if crate::work::PREFIXES.contains(&prefix) => {
                    work.restore_row(prefix, rest, &value)?;
                }
                prefix if crate::rewards::PREFIXES.contains(&prefix) => {
                    rewards.restore_row(prefix, rest, &value)?;
                }
                other => return Err(RestoreError(format!("unknown key prefix {other}"))),
            }
            leaves.insert(key.clone(), leaf_hash(&key, &value));
        }
        let meta = meta.ok_or_else(|| RestoreError("no chain metadata".into()))?;
        let params = params.ok_or_else(|| RestoreError("no params".into()))?;
        let mut state = State {
            meta,
            params,
            accounts,
            nodes,
            apps,
            expiry,
            rollouts,
            leaves,
            state_root: Hash::ZERO,
            tip,
            dirty: BTreeSet::new(),
            placement,
            gov,
            work,
            rewards,
        };
        state.gov.rebuild(state.accounts.values());
        crate::placement::rebuild(&mut state)?;
        crate::work::rebuild(&mut state);
        state.state_root = state.compute_root();
        Ok(state)
    }

    /// Records pending writes into leaf hashes and returns the rows to store.
    /// Called once at the end of every block (and at genesis).
    pub(crate) fn finish(&mut self) -> Changes {
        let mut rows = Vec::with_capacity(self.dirty.len());
        for key in std::mem::take(&mut self.dirty) {
            let value = match &key {
                Key::Meta => Some(encode(&self.meta)),
                Key::Params => Some(encode(&self.params)),
                Key::Account(a) => self.accounts.get(a).map(encode),
                Key::Node(a) => self.nodes.get(a).map(encode),
                Key::App(name) => self.apps.get(name).map(encode),
                Key::Placement(key) => self.placement.row(key),
                Key::Gov(key) => self.gov.row(key),
                Key::Work(key) => self.work.row(key),
                Key::Rewards(key) => self.rewards.row(key),
            };
            let encoded_key = key.encode();
            match &value {
                Some(v) => {
                    self.leaves
                        .insert(encoded_key.clone(), leaf_hash(&encoded_key, v));
                }
                None => {
                    self.leaves.remove(&encoded_key);
                }
            }
            rows.push((encoded_key, value));
        }
        self.state_root = self.compute_root();
        Changes { rows }
    }

    fn compute_root(&self) -> Hash {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"FLUX/state-root/v1");
        for leaf in self.leaves.values() {
            hasher.update(leaf.0);
        }
        Hash(hasher.finalize().into())
    }

    /// Network id.
    pub fn chain_id(&self) -> &str {
        &self.meta.chain_id
    }

    /// Hash of the genesis this chain started from.
    pub fn genesis_hash(&self) -> Hash {
        self.meta.genesis_hash
    }

    /// Height of the last applied block.
    pub fn height(&self) -> u64 {
        self.meta.height
    }

    /// Chain time of the last applied block, ms.
    pub fn time_ms(&self) -> u64 {
        self.meta.time_ms
    }

    /// Hash of the last applied block (zero at genesis): the parent of the next block.
    pub fn last_block_hash(&self) -> Hash {
        self.tip
    }

    /// The state root after the last applied block.
    pub fn state_root(&self) -> Hash {
        self.state_root
    }

    /// Chain metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The parameters in force.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Total supply.
    pub fn total_supply(&self) -> Amount {
        self.meta.total_supply
    }

    /// An account (zero if it never received anything).
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).cloned().unwrap_or_default()
    }

    /// All accounts with a record, by address.
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.accounts.iter()
    }

    /// A node by id.
    pub fn node(&self, id: &Address) -> Option<&NodeRecord> {
        self.nodes.get(id)
    }

    /// All nodes, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    /// An app by name, in any case.
    pub fn app(&self, name: &str) -> Option<&AppRecord> {
        self.apps.get(&app_key(name))
    }

    /// All apps, by name.
    pub fn apps(&self) -> impl Iterator<Item = &AppRecord> {
        self.apps.values()
    }

    /// Sum of every balance and every lock; equals [`State::total_supply`]
    /// unless there is a bug.
    pub fn sum_of_accounts(&self) -> Amount {
        self.accounts.values().fold(Amount::ZERO, |sum, a| {
            sum.checked_add(a.balance)
                .and_then(|s| s.checked_add(a.locked))
                .expect("supply overflow")
        })
    }

    // Writers: every mutation goes through these so that the dirty set is complete.

    pub(crate) fn put_account(&mut self, address: Address, account: Account) {
        let after = Holdings::of(&account);
        let before = self
            .accounts
            .insert(address, account)
            .map(|old| Holdings::of(&old))
            .unwrap_or_default();
        self.gov
            .account_changed(address, before, after, &mut self.dirty);
        self.dirty.insert(Key::Account(address));
    }

    pub(crate) fn put_node(&mut self, node: NodeRecord) {
        self.dirty.insert(Key::Node(node.id));
        self.placement.node_changed(node.id);
        self.nodes.insert(node.id, node);
    }

    pub(crate) fn remove_node(&mut self, id: &Address) -> Option<NodeRecord> {
        self.dirty.insert(Key::Node(*id));
        self.placement.node_changed(*id);
        self.remove_benchmark(id);
        self.nodes.remove(id)
    }

    pub(crate) fn put_app(&mut self, record: AppRecord) {
        let name = app_key(&record.spec.name);
        self.index_app(&name, &record);
        // An app is blocked exactly while one of its images is on the blocklist.
        let _ = self
            .gov
            .app_written(&record, self.meta.height, &mut self.dirty);
        self.dirty.insert(Key::App(name.clone()));
        self.placement.app_changed(&name);
        self.apps.insert(name, record);
    }

    pub(crate) fn remove_app(&mut self, name: &str) -> Option<AppRecord> {
        let name = app_key(name);
        let old = self.apps.remove(&name)?;
        self.expiry.remove(&(old.expires_at_ms, name.clone()));
        if let Some(end) = old.rollout_end() {
            self.rollouts.remove(&(end, name.clone()));
        }
        self.gov.app_removed(&name, &mut self.dirty);
        self.placement.app_changed(&name);
        self.dirty.insert(Key::App(name));
        Some(old)
    }

    /// Writes an app whose rollout alone changed: what its instances want
    /// and its images are the same, so placement and the blocklist have
    /// nothing to redo.
    pub(crate) fn put_rollout(&mut self, record: AppRecord) {
        let name = app_key(&record.spec.name);
        self.index_app(&name, &record);
        self.dirty.insert(Key::App(name.clone()));
        self.apps.insert(name, record);
    }

    /// Keeps the expiry and rollout indexes of app `name` in step with `record`.
    fn index_app(&mut self, name: &str, record: &AppRecord) {
        if let Some(old) = self.apps.get(name) {
            self.expiry.remove(&(old.expires_at_ms, name.to_string()));
            if let Some(end) = old.rollout_end() {
                self.rollouts.remove(&(end, name.to_string()));
            }
        }
        self.expiry
            .insert((record.expires_at_ms, name.to_string()), ());
        if let Some(end) = record.rollout_end() {
            self.rollouts.insert((end, name.to_string()), ());
        }
    }

    /// Keys of apps whose rolling update ends at or before `time_ms`.
    pub(crate) fn finished_rollouts(&self, time_ms: u64) -> Vec<String> {
        self.rollouts
            .keys()
            .take_while(|(at, _)| *at <= time_ms)
            .map(|(_, name)| name.clone())
            .collect()
    }

    pub(crate) fn set_meta(&mut self, meta: Meta) {
        self.meta = meta;
        self.dirty.insert(Key::Meta);
    }

    pub(crate) fn set_params(&mut self, params: Params) {
        self.params = params;
        self.dirty.insert(Key::Params);
    }

    /// Keys of apps that expire at or before `time_ms`, soonest first.
    pub(crate) fn expired_apps(&self, time_ms: u64) -> Vec<String> {
        self.expiry
            .keys()
            .take_while(|(at, _)| *at <= time_ms)
            .map(|(_, name)| name.clone())
            .collect()
    }
}
