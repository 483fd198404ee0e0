//! Governance: proposals held with a deposit, votes weighted by each voter's
//! power at the proposal's start, the outcome when the voting period ends, and
//! the activation of what passed, applied by the ledger itself.
//!
//! Voting power is `locked × gov.collateral_weight_milli / 1000 + balance ×
//! gov.balance_weight_milli / 1000`, taken at the moment the proposal is
//! included. The snapshot is copy-on-write: nothing is copied when a proposal
//! starts; when an account's balance or lock changes while proposals are
//! open, its holdings from before the change are recorded once under the
//! newest open proposal's id (see [`GovState::account_changed`]). The
//! holdings of account A at the start of proposal P are then the first record
//! `(A, id)` with `id >= P`, or A's current holdings when there is none.

use std::collections::BTreeSet;

use borsh::{BorshDeserialize, BorshSerialize};
use flux_types::gov::{ImageRef, blocklist_entry};
use flux_types::{Address, Amount, AppSpec, ProposalAction, VoteChoice};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use crate::error::TxError;
use crate::exec::{Event, ReceiptDetail};
use crate::state::{
    Account, AppRecord, Key, RestoreError, State, app_key, gov_deposits_address, is_module_account,
    module_accounts, treasury_address,
};

/// Where a proposal is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Open for votes.
    Open,
    /// The vote reached quorum with more yes than no; see [`Proposal::activation`].
    Passed,
    /// The vote missed quorum, or had no more yes than no.
    Rejected,
}

impl ProposalStatus {
    /// `open`, `passed` or `rejected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProposalStatus::Open => "open",
            ProposalStatus::Passed => "passed",
            ProposalStatus::Rejected => "rejected",
        }
    }
}

/// Why a proposal was rejected.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Less than the quorum voted: the deposit was burned.
    QuorumMissed,
    /// Quorum was reached but yes did not outweigh no: the deposit was returned.
    NotEnoughYes,
}

/// What became of a proposal's deposit.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DepositFate {
    /// Held while the vote is open.
    Held,
    /// Returned to the proposer (the vote reached quorum).
    Returned,
    /// Burned (the vote missed quorum); the total supply shrank by it.
    Burned,
}

/// What became of a passed proposal's action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Activation {
    /// Waiting for its height.
    Pending {
        /// The block whose transactions first see the effect.
        height: u64,
    },
    /// Applied at the start of block `height`.
    Applied {
        /// The height.
        height: u64,
    },
    /// Could not be applied at `height` (e.g. the treasury no longer holds
    /// the amount); nothing changed.
    Failed {
        /// The height.
        height: u64,
        /// Why.
        reason: String,
    },
}

/// Votes counted so far, as voting power.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct Tally {
    /// Power voting yes.
    pub yes: Amount,
    /// Power voting no.
    pub no: Amount,
    /// Power abstaining.
    pub abstain: Amount,
    /// Accounts that voted.
    pub voters: u32,
}

impl Tally {
    /// Power that voted at all.
    pub fn turnout(&self) -> Amount {
        Amount(
            self.yes
                .as_units()
                .saturating_add(self.no.as_units())
                .saturating_add(self.abstain.as_units()),
        )
    }

    fn slot(&mut self, choice: VoteChoice) -> &mut Amount {
        match choice {
            VoteChoice::Yes => &mut self.yes,
            VoteChoice::No => &mut self.no,
            VoteChoice::Abstain => &mut self.abstain,
        }
    }
}

/// A proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Id, counting from 1.
    pub id: u64,
    /// Who proposed it and deposited.
    pub proposer: Address,
    /// One line saying what it does.
    pub title: String,
    /// Why.
    pub description: String,
    /// What happens when it passes (param values written canonically).
    pub action: ProposalAction,
    /// Held until the vote ends.
    pub deposit: Amount,
    /// Height of the block that included it; voting power is taken there.
    pub submitted_height: u64,
    /// Chain time at which voting opened.
    pub voting_starts_ms: u64,
    /// Chain time at which voting ends: the first block at or after it closes the vote.
    pub voting_ends_ms: u64,
    /// Voting power of all accounts at the start.
    pub total_power: Amount,
    /// Quorum in force at the start, percent of `total_power`.
    pub quorum_percent: u32,
    /// Weight of locked collateral at the start, thousandths.
    pub collateral_weight_milli: u64,
    /// Weight of liquid balance at the start, thousandths.
    pub balance_weight_milli: u64,
    /// Votes so far.
    pub tally: Tally,
    /// Where it is.
    pub status: ProposalStatus,
    /// Why it was rejected, when it was.
    pub rejection: Option<Rejection>,
    /// What became of the deposit.
    pub deposit_fate: DepositFate,
    /// Height of the block that closed the vote.
    pub closed_height: Option<u64>,
    /// For a passed proposal: when its action takes effect, and how it went.
    pub activation: Option<Activation>,
}

impl Proposal {
    /// The least turnout that reaches quorum.
    pub fn quorum_power(&self) -> Amount {
        let needed = (u128::from(self.total_power.as_units()) * u128::from(self.quorum_percent))
            .div_ceil(100);
        Amount(u64::try_from(needed).unwrap_or(u64::MAX))
    }

    /// Whether the votes so far reach quorum.
    pub fn quorum_reached(&self) -> bool {
        u128::from(self.tally.turnout().as_units()) * 100
            >= u128::from(self.total_power.as_units()) * u128::from(self.quorum_percent)
    }

    /// The voting power of `holdings` with this proposal's weights.
    fn power(&self, holdings: Holdings) -> Amount {
        weighted(
            holdings,
            self.collateral_weight_milli,
            self.balance_weight_milli,
        )
    }
}

/// A vote as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// The choice.
    pub choice: VoteChoice,
    /// The voter's power at the proposal's start.
    pub power: Amount,
    /// Height of the block with the latest vote.
    pub height: u64,
}

/// An entry of the network's image blocklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct BlockedImage {
    /// Height at which the entry took effect.
    pub since_height: u64,
    /// The proposal that added it.
    pub proposal: u64,
}

/// An app whose image is on the blocklist: the scheduler places none of its
/// instances, and nodes stop the ones they run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct BlockedApp {
    /// The component's image.
    pub image: String,
    /// The blocklist entry that matches it.
    pub entry: String,
    /// Height at which the app was blocked.
    pub since_height: u64,
}

/// Balance and lock of an account: what voting power is computed from.
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
pub(crate) struct Holdings {
    balance: Amount,
    locked: Amount,
}

impl Holdings {
    pub(crate) fn of(account: &Account) -> Holdings {
        Holdings {
            balance: account.balance,
            locked: account.locked,
        }
    }
}

fn weighted(holdings: Holdings, collateral_weight_milli: u64, balance_weight_milli: u64) -> Amount {
    let power = (u128::from(holdings.locked.as_units()) * u128::from(collateral_weight_milli)
        + u128::from(holdings.balance.as_units()) * u128::from(balance_weight_milli))
        / 1_000;
    Amount(u64::try_from(power).unwrap_or(u64::MAX))
}

/// Governance rows, stored under prefixes 10 to 16.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum GovKey {
    Meta,
    Proposal(u64),
    Vote(u64, Address),
    Snapshot(Address, u64),
    ParamSince(String),
    BlockedImage(String),
    BlockedApp(String),
}

const PREFIX_META: u8 = 10;
const PREFIX_PROPOSAL: u8 = 11;
const PREFIX_VOTE: u8 = 12;
const PREFIX_SNAPSHOT: u8 = 13;
const PREFIX_PARAM_SINCE: u8 = 14;
const PREFIX_BLOCKED_IMAGE: u8 = 15;
const PREFIX_BLOCKED_APP: u8 = 16;
/// Key prefixes reserved for governance.
pub(crate) const PREFIXES: std::ops::RangeInclusive<u8> = 10..=19;

impl GovKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(40);
        match self {
            GovKey::Meta => bytes.push(PREFIX_META),
            GovKey::Proposal(id) => {
                bytes.push(PREFIX_PROPOSAL);
                bytes.extend(id.to_be_bytes());
            }
            GovKey::Vote(id, voter) => {
                bytes.push(PREFIX_VOTE);
                bytes.extend(id.to_be_bytes());
                bytes.extend(voter.0);
            }
            GovKey::Snapshot(account, id) => {
                bytes.push(PREFIX_SNAPSHOT);
                bytes.extend(account.0);
                bytes.extend(id.to_be_bytes());
            }
            GovKey::ParamSince(key) => {
                bytes.push(PREFIX_PARAM_SINCE);
                bytes.extend(key.as_bytes());
            }
            GovKey::BlockedImage(entry) => {
                bytes.push(PREFIX_BLOCKED_IMAGE);
                bytes.extend(entry.as_bytes());
            }
            GovKey::BlockedApp(app) => {
                bytes.push(PREFIX_BLOCKED_APP);
                bytes.extend(app.as_bytes());
            }
        }
        bytes
    }
}

/// Counters of governance.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct GovMeta {
    /// Id of the last proposal (0: none yet).
    last_proposal_id: u64,
}

/// The governance part of the state.
#[derive(Clone, Debug, Default)]
pub(crate) struct GovState {
    meta: GovMeta,
    proposals: OrdMap<u64, Proposal>,
    votes: OrdMap<(u64, Address), Vote>,
    /// Holdings before the first change after a proposal started; see the module docs.
    snapshots: OrdMap<(Address, u64), Holdings>,
    /// Height at which each governable param last changed (absent: genesis).
    param_since: OrdMap<String, u64>,
    blocked_images: OrdMap<String, BlockedImage>,
    /// By app key.
    blocked_apps: OrdMap<String, BlockedApp>,
    // Derived from the rows above, never stored.
    /// Ids of open proposals.
    open: OrdSet<u64>,
    /// `(voting_ends_ms, id)` of open proposals.
    ending: OrdSet<(u64, u64)>,
    /// `(height, id)` of passed proposals waiting for activation.
    activations: OrdSet<(u64, u64)>,
    /// `(id, account)` of every snapshot, to drop them in id order.
    snapshot_ids: OrdSet<(u64, Address)>,
    /// Sum of every account's lock.
    total_locked: Amount,
}

impl GovState {
    /// The stored value of a row, `None` when it is deleted.
    pub(crate) fn row(&self, key: &GovKey) -> Option<Vec<u8>> {
        use flux_types::codec::encode;
        match key {
            GovKey::Meta => Some(encode(&self.meta)),
            GovKey::Proposal(id) => self.proposals.get(id).map(encode),
            GovKey::Vote(id, voter) => self.votes.get(&(*id, *voter)).map(encode),
            GovKey::Snapshot(account, id) => self.snapshots.get(&(*account, *id)).map(encode),
            GovKey::ParamSince(key) => self.param_since.get(key).map(encode),
            GovKey::BlockedImage(entry) => self.blocked_images.get(entry).map(encode),
            GovKey::BlockedApp(app) => self.blocked_apps.get(app).map(encode),
        }
    }

    /// Reads one stored row back.
    pub(crate) fn restore_row(
        &mut self,
        prefix: u8,
        rest: &[u8],
        value: &[u8],
    ) -> Result<(), RestoreError> {
        fn decode<T: BorshDeserialize>(what: &str, value: &[u8]) -> Result<T, RestoreError> {
            flux_types::codec::decode_trusted(value)
                .map_err(|e| RestoreError(format!("governance {what}: {e}")))
        }
        let bad = |what: &str| RestoreError(format!("bad governance {what} key"));
        let id_at = |bytes: &[u8]| -> Result<u64, RestoreError> {
            Ok(u64::from_be_bytes(
                bytes.try_into().map_err(|_| bad("proposal id"))?,
            ))
        };
        let address_at = |bytes: &[u8]| -> Result<Address, RestoreError> {
            Ok(Address(bytes.try_into().map_err(|_| bad("address"))?))
        };
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| bad("text"));
        match prefix {
            PREFIX_META if rest.is_empty() => self.meta = decode("meta", value)?,
            PREFIX_PROPOSAL => {
                let proposal: Proposal = decode("proposal", value)?;
                if proposal.id != id_at(rest)? {
                    return Err(bad("proposal"));
                }
                self.proposals.insert(proposal.id, proposal);
            }
            PREFIX_VOTE if rest.len() == 28 => {
                self.votes.insert(
                    (id_at(&rest[..8])?, address_at(&rest[8..])?),
                    decode("vote", value)?,
                );
            }
            PREFIX_SNAPSHOT if rest.len() == 28 => {
                self.snapshots.insert(
                    (address_at(&rest[..20])?, id_at(&rest[20..])?),
                    decode("snapshot", value)?,
                );
            }
            PREFIX_PARAM_SINCE => {
                self.param_since
                    .insert(text(rest)?, decode("param", value)?);
            }
            PREFIX_BLOCKED_IMAGE => {
                self.blocked_images
                    .insert(text(rest)?, decode("blocked image", value)?);
            }
            PREFIX_BLOCKED_APP => {
                self.blocked_apps
                    .insert(text(rest)?, decode("blocked app", value)?);
            }
            other => return Err(RestoreError(format!("unknown governance row {other}"))),
        }
        Ok(())
    }

    /// Recomputes what is derived from the rows: the open set, the queues,
    /// and the sum of locks over `accounts`.
    pub(crate) fn rebuild<'a>(&mut self, accounts: impl Iterator<Item = &'a Account>) {
        self.open = OrdSet::new();
        self.ending = OrdSet::new();
        self.activations = OrdSet::new();
        for proposal in self.proposals.values() {
            if proposal.status == ProposalStatus::Open {
                self.open.insert(proposal.id);
                self.ending.insert((proposal.voting_ends_ms, proposal.id));
            }
            if let Some(Activation::Pending { height }) = proposal.activation {
                self.activations.insert((height, proposal.id));
            }
        }
        self.snapshot_ids = self
            .snapshots
            .keys()
            .map(|(account, id)| (*id, *account))
            .collect();
        self.total_locked = accounts.fold(Amount::ZERO, |sum, account| {
            sum.checked_add(account.locked)
                .expect("locks fit the supply")
        });
    }

    /// Called by every account write, before the account changes: keeps the
    /// sum of locks, and records the holdings from before the first change
    /// after the newest open proposal started.
    pub(crate) fn account_changed(
        &mut self,
        address: Address,
        before: Holdings,
        after: Holdings,
        dirty: &mut BTreeSet<Key>,
    ) {
        if before == after {
            return;
        }
        if before.locked != after.locked {
            self.total_locked = self
                .total_locked
                .checked_sub(before.locked)
                .and_then(|sum| sum.checked_add(after.locked))
                .expect("the sum of locks covers every lock");
        }
        let Some(&newest) = self.open.get_max() else {
            return;
        };
        let recorded = self
            .snapshots
            .range((address, newest)..=(address, u64::MAX))
            .next()
            .is_some();
        if recorded || is_module_account(&address) {
            return;
        }
        self.snapshots.insert((address, newest), before);
        self.snapshot_ids.insert((newest, address));
        dirty.insert(Key::Gov(GovKey::Snapshot(address, newest)));
    }

    /// The holdings of `address` at the start of proposal `id`, given its current `account`.
    fn holdings_at(&self, address: Address, id: u64, account: &Account) -> Holdings {
        self.snapshots
            .range((address, id)..=(address, u64::MAX))
            .next()
            .map_or_else(|| Holdings::of(account), |(_, holdings)| *holdings)
    }

    /// Drops snapshots that no open proposal can ask for: those recorded under
    /// an id below the oldest open proposal.
    fn prune_snapshots(&mut self, dirty: &mut BTreeSet<Key>) {
        let oldest = self.open.get_min().copied().unwrap_or(u64::MAX);
        while let Some(&(id, account)) = self.snapshot_ids.get_min() {
            if id >= oldest {
                break;
            }
            self.snapshot_ids.remove(&(id, account));
            self.snapshots.remove(&(account, id));
            dirty.insert(Key::Gov(GovKey::Snapshot(account, id)));
        }
    }

    /// The blocklist entry that matches `repotag`, if any.
    fn blocking_entry(&self, repotag: &str) -> Option<String> {
        let image = ImageRef::parse(repotag).ok()?;
        image
            .block_keys()
            .into_iter()
            .find(|key| self.blocked_images.contains_key(key))
    }

    /// The first component of `spec` whose image is blocked, with the entry.
    fn blocked_component(&self, spec: &AppSpec) -> Option<(String, String)> {
        if self.blocked_images.is_empty() {
            return None;
        }
        spec.components.iter().find_map(|c| {
            self.blocking_entry(&c.repotag)
                .map(|entry| (c.repotag.clone(), entry))
        })
    }

    /// Called by every app write: an app is blocked exactly while one of its
    /// images is on the blocklist.
    pub(crate) fn app_written(
        &mut self,
        record: &AppRecord,
        height: u64,
        dirty: &mut BTreeSet<Key>,
    ) -> Option<Event> {
        let name = app_key(&record.spec.name);
        match self.blocked_component(&record.spec) {
            Some((image, entry)) => {
                if self.blocked_apps.contains_key(&name) {
                    return None;
                }
                self.blocked_apps.insert(
                    name.clone(),
                    BlockedApp {
                        image: image.clone(),
                        entry: entry.clone(),
                        since_height: height,
                    },
                );
                dirty.insert(Key::Gov(GovKey::BlockedApp(name)));
                Some(Event::AppBlocked {
                    app: record.spec.name.clone(),
                    image,
                    entry,
                })
            }
            None => {
                self.blocked_apps.remove(&name)?;
                dirty.insert(Key::Gov(GovKey::BlockedApp(name)));
                Some(Event::AppUnblocked {
                    app: record.spec.name.clone(),
                })
            }
        }
    }

    /// Called when an app is removed.
    pub(crate) fn app_removed(&mut self, name: &str, dirty: &mut BTreeSet<Key>) {
        if self.blocked_apps.remove(name).is_some() {
            dirty.insert(Key::Gov(GovKey::BlockedApp(name.to_string())));
        }
    }
}

// Reads, for the API, the CLI and the scheduler.
impl State {
    /// A proposal by id.
    pub fn proposal(&self, id: u64) -> Option<&Proposal> {
        self.gov.proposals.get(&id)
    }

    /// All proposals, by id.
    pub fn proposals(&self) -> impl DoubleEndedIterator<Item = &Proposal> {
        self.gov.proposals.values()
    }

    /// Proposals with an id above `after`, by id.
    pub fn proposals_after(&self, after: u64) -> impl Iterator<Item = &Proposal> {
        self.gov
            .proposals
            .range(after.saturating_add(1)..)
            .map(|(_, proposal)| proposal)
    }

    /// The vote of `voter` on proposal `id`.
    pub fn vote(&self, id: u64, voter: &Address) -> Option<&Vote> {
        self.gov.votes.get(&(id, *voter))
    }

    /// Every vote on proposal `id`, by voter.
    pub fn votes(&self, id: u64) -> impl Iterator<Item = (&Address, &Vote)> {
        self.gov
            .votes
            .range((id, Address([0; 20]))..=(id, Address([0xff; 20])))
            .map(|((_, voter), vote)| (voter, vote))
    }

    /// The voting power of `voter` on proposal `id`: its holdings at the
    /// proposal's start with the proposal's weights (zero for module accounts).
    pub fn voting_power(&self, id: u64, voter: &Address) -> Option<Amount> {
        let proposal = self.proposal(id)?;
        if is_module_account(voter) {
            return Some(Amount::ZERO);
        }
        let holdings = self.gov.holdings_at(*voter, id, &self.account(voter));
        Some(proposal.power(holdings))
    }

    /// The voting power of all accounts now, with the weights in force.
    pub fn total_voting_power(&self) -> Amount {
        self.voting_power_of_all(Amount::ZERO)
    }

    /// The voting power of all accounts while `in_flight` (a fee taken from
    /// its signer, not yet paid to the block's proposer) belongs to none.
    fn voting_power_of_all(&self, in_flight: Amount) -> Amount {
        let gov = &self.params().gov;
        let module_balances = module_accounts().iter().fold(0u64, |sum, address| {
            sum.saturating_add(self.account(address).balance.as_units())
        });
        let balances = self
            .total_supply()
            .as_units()
            .saturating_sub(self.gov.total_locked.as_units())
            .saturating_sub(module_balances)
            .saturating_sub(in_flight.as_units());
        weighted(
            Holdings {
                balance: Amount(balances),
                locked: self.gov.total_locked,
            },
            gov.collateral_weight_milli,
            gov.balance_weight_milli,
        )
    }

    /// The height at which governable param `key` last changed (0: at genesis).
    pub fn param_since(&self, key: &str) -> u64 {
        self.gov.param_since.get(key).copied().unwrap_or(0)
    }

    /// The network's image blocklist, by entry.
    pub fn blocked_images(&self) -> impl Iterator<Item = (&String, &BlockedImage)> {
        self.gov.blocked_images.iter()
    }

    /// Whether an app is blocked, and by what; the scheduler places no
    /// instance of a blocked app and nodes stop the ones they run.
    pub fn app_blocked(&self, name: &str) -> Option<&BlockedApp> {
        self.gov.blocked_apps.get(&app_key(name))
    }

    /// Every blocked app, by app key.
    pub fn blocked_apps(&self) -> impl Iterator<Item = (&String, &BlockedApp)> {
        self.gov.blocked_apps.iter()
    }

    /// The blocklist entry that blocks `repotag`, if any.
    pub fn image_blocked(&self, repotag: &str) -> Option<String> {
        self.gov.blocking_entry(repotag)
    }
}

/// Refuses a spec using a blocked image.
pub(crate) fn check_images(state: &State, spec: &AppSpec) -> Result<(), TxError> {
    match state.gov.blocked_component(spec) {
        Some((image, entry)) => Err(TxError::ImageBlocked { image, entry }),
        None => Ok(()),
    }
}

fn insufficient(sender: Address, account: &Account, needed: Amount) -> TxError {
    TxError::InsufficientFunds {
        account: sender,
        available: account.balance,
        needed,
    }
}

/// Checks an action against the state: what it names must exist and be possible now.
fn check_action(state: &State, action: &ProposalAction) -> Result<ProposalAction, TxError> {
    match action {
        ProposalAction::ParamChange { changes } => {
            let (_, canonical) = state.params().with_changes(changes)?;
            Ok(ProposalAction::ParamChange { changes: canonical })
        }
        ProposalAction::ImagePolicy { block, unblock } => {
            if block.is_empty() && unblock.is_empty() {
                return Err(TxError::InvalidProposal(
                    "an image policy names no image; list images to block or to unblock".into(),
                ));
            }
            let mut seen = BTreeSet::new();
            let mut canonical = |texts: &[String], blocking: bool| {
                texts
                    .iter()
                    .map(|text| {
                        let entry = blocklist_entry(text).map_err(TxError::InvalidProposal)?;
                        if !seen.insert(entry.clone()) {
                            return Err(TxError::InvalidProposal(format!(
                                "image {entry} is named twice; name each image once"
                            )));
                        }
                        let listed = state.gov.blocked_images.contains_key(&entry);
                        if blocking && listed {
                            return Err(TxError::ImageAlreadyBlocked(entry));
                        }
                        if !blocking && !listed {
                            return Err(TxError::ImageNotBlocked(entry));
                        }
                        Ok(entry)
                    })
                    .collect::<Result<Vec<_>, TxError>>()
            };
            let block = canonical(block, true)?;
            let unblock = canonical(unblock, false)?;
            Ok(ProposalAction::ImagePolicy { block, unblock })
        }
        ProposalAction::TreasurySpend { to, amount } => {
            if amount.is_zero() {
                return Err(TxError::ZeroAmount);
            }
            if is_module_account(to) {
                return Err(TxError::ModuleAccount(*to));
            }
            let available = state.account(&treasury_address()).balance;
            if available < *amount {
                return Err(TxError::TreasuryInsufficient {
                    available,
                    requested: *amount,
                });
            }
            Ok(action.clone())
        }
        ProposalAction::Text => Ok(ProposalAction::Text),
    }
}

/// Who signed a governance transaction, and when it applies.
pub(crate) struct Signer {
    /// The signer's address.
    pub(crate) address: Address,
    /// The signer's account with its nonce already advanced, not yet written.
    pub(crate) account: Account,
    /// The transaction's fee, taken here and paid to the proposer by the caller.
    pub(crate) fee: Amount,
    /// Chain time of the block.
    pub(crate) now_ms: u64,
}

/// Applies `GovPropose`: checks everything, then holds the deposit and opens the vote.
pub(crate) fn propose(
    state: &mut State,
    signer: Signer,
    title: &str,
    description: &str,
    action: &ProposalAction,
    deposit: Amount,
) -> Result<ReceiptDetail, TxError> {
    let Signer {
        address: sender,
        mut account,
        fee,
        now_ms,
    } = signer;
    if title.trim().is_empty() {
        return Err(TxError::InvalidProposal(
            "the title is empty; say in one line what the proposal does".into(),
        ));
    }
    let gov = state.params().gov.clone();
    if deposit < gov.proposal_deposit {
        return Err(TxError::DepositTooLow {
            min: gov.proposal_deposit,
            got: deposit,
        });
    }
    if state.gov.open.len() >= gov.open_proposals_max as usize {
        return Err(TxError::TooManyOpenProposals {
            max: gov.open_proposals_max,
        });
    }
    let action = check_action(state, action)?;
    let needed = deposit.checked_add(fee).ok_or(TxError::Overflow)?;
    account.balance = account
        .balance
        .checked_sub(needed)
        .ok_or_else(|| insufficient(sender, &account, needed))?;
    let escrow = gov_deposits_address();
    let mut held = state.account(&escrow);
    held.balance = held.balance.checked_add(deposit).ok_or(TxError::Overflow)?;
    state.put_account(sender, account);
    state.put_account(escrow, held);

    // Voting power is taken here: after the deposit left the proposer, before
    // anything else in the block changes.
    let id = state.gov.meta.last_proposal_id + 1;
    let voting_ends_ms = now_ms.saturating_add(gov.voting_period_ms);
    let proposal = Proposal {
        id,
        proposer: sender,
        title: title.to_string(),
        description: description.to_string(),
        action,
        deposit,
        submitted_height: state.height(),
        voting_starts_ms: now_ms,
        voting_ends_ms,
        total_power: state.voting_power_of_all(fee),
        quorum_percent: gov.quorum_percent,
        collateral_weight_milli: gov.collateral_weight_milli,
        balance_weight_milli: gov.balance_weight_milli,
        tally: Tally::default(),
        status: ProposalStatus::Open,
        rejection: None,
        deposit_fate: DepositFate::Held,
        closed_height: None,
        activation: None,
    };
    let gov_state = &mut state.gov;
    gov_state.meta.last_proposal_id = id;
    gov_state.open.insert(id);
    gov_state.ending.insert((voting_ends_ms, id));
    gov_state.proposals.insert(id, proposal);
    state.dirty.insert(Key::Gov(GovKey::Meta));
    state.dirty.insert(Key::Gov(GovKey::Proposal(id)));
    Ok(ReceiptDetail::ProposalSubmitted {
        proposal: id,
        deposit,
        voting_ends_ms,
    })
}

/// Applies `GovVote`: records or changes the signer's vote with its power at
/// the proposal's start.
pub(crate) fn vote(
    state: &mut State,
    signer: Signer,
    id: u64,
    choice: VoteChoice,
) -> Result<ReceiptDetail, TxError> {
    let Signer {
        address: sender,
        mut account,
        fee,
        now_ms,
    } = signer;
    let proposal = state.proposal(id).ok_or(TxError::ProposalNotFound(id))?;
    if proposal.status != ProposalStatus::Open || now_ms >= proposal.voting_ends_ms {
        return Err(TxError::VotingClosed {
            proposal: id,
            ended_ms: proposal.voting_ends_ms,
        });
    }
    let power = state
        .voting_power(id, &sender)
        .expect("the proposal exists");
    if power.is_zero() {
        return Err(TxError::NoVotingPower {
            account: sender,
            proposal: id,
        });
    }
    account.balance = account
        .balance
        .checked_sub(fee)
        .ok_or_else(|| insufficient(sender, &account, fee))?;
    let mut proposal = proposal.clone();
    let previous = state.vote(id, &sender).cloned();
    match &previous {
        Some(old) => {
            let slot = proposal.tally.slot(old.choice);
            *slot = slot.checked_sub(old.power).expect("a vote is in its tally");
        }
        None => proposal.tally.voters += 1,
    }
    let slot = proposal.tally.slot(choice);
    *slot = slot.checked_add(power).ok_or(TxError::Overflow)?;
    state.put_account(sender, account);
    let height = state.height();
    state.gov.proposals.insert(id, proposal);
    state.gov.votes.insert(
        (id, sender),
        Vote {
            choice,
            power,
            height,
        },
    );
    state.dirty.insert(Key::Gov(GovKey::Proposal(id)));
    state.dirty.insert(Key::Gov(GovKey::Vote(id, sender)));
    Ok(ReceiptDetail::Voted {
        proposal: id,
        choice,
        power,
        changed_from: previous.map(|v| v.choice),
    })
}

/// At the start of every block, after the height and time advanced: closes
/// the votes whose period ended, then applies what passed and is due.
pub(crate) fn begin_block(state: &mut State) -> Vec<Event> {
    let mut events = Vec::new();
    let (height, now_ms) = (state.height(), state.time_ms());
    let mut closed_any = false;
    while let Some(&(ends_ms, id)) = state.gov.ending.get_min() {
        if ends_ms > now_ms {
            break;
        }
        closed_any = true;
        events.push(close(state, id, height));
    }
    if closed_any {
        state.gov.prune_snapshots(&mut state.dirty);
    }
    while let Some(&(due, id)) = state.gov.activations.get_min() {
        if due > height {
            break;
        }
        state.gov.activations.remove(&(due, id));
        activate(state, id, height, &mut events);
    }
    events
}

/// Counts the votes of proposal `id` and settles its deposit.
fn close(state: &mut State, id: u64, height: u64) -> Event {
    let mut proposal = state
        .gov
        .proposals
        .get(&id)
        .cloned()
        .expect("open proposals exist");
    state.gov.ending.remove(&(proposal.voting_ends_ms, id));
    state.gov.open.remove(&id);
    let quorum = proposal.quorum_reached();
    let passed = quorum && proposal.tally.yes > proposal.tally.no;
    let escrow_address = gov_deposits_address();
    let mut escrow = state.account(&escrow_address);
    escrow.balance = escrow
        .balance
        .checked_sub(proposal.deposit)
        .expect("the escrow holds every open deposit");
    state.put_account(escrow_address, escrow);
    if quorum {
        let mut proposer = state.account(&proposal.proposer);
        proposer.balance = proposer
            .balance
            .checked_add(proposal.deposit)
            .expect("a returned deposit fits the supply");
        state.put_account(proposal.proposer, proposer);
        proposal.deposit_fate = DepositFate::Returned;
    } else {
        let mut meta = state.meta().clone();
        meta.total_supply = meta
            .total_supply
            .checked_sub(proposal.deposit)
            .expect("the supply holds every deposit");
        state.set_meta(meta);
        crate::rewards::burned(state, proposal.deposit);
        proposal.deposit_fate = DepositFate::Burned;
    }
    proposal.closed_height = Some(height);
    if passed {
        let due = height.saturating_add(state.params().gov.activation_delay_blocks);
        proposal.status = ProposalStatus::Passed;
        proposal.activation = Some(Activation::Pending { height: due });
        state.gov.activations.insert((due, id));
    } else {
        proposal.status = ProposalStatus::Rejected;
        proposal.rejection = Some(if quorum {
            Rejection::NotEnoughYes
        } else {
            Rejection::QuorumMissed
        });
    }
    let event = Event::ProposalClosed {
        proposal: id,
        status: proposal.status,
        rejection: proposal.rejection,
        yes: proposal.tally.yes,
        no: proposal.tally.no,
        abstain: proposal.tally.abstain,
        total_power: proposal.total_power,
        deposit_fate: proposal.deposit_fate,
    };
    state.gov.proposals.insert(id, proposal);
    state.dirty.insert(Key::Gov(GovKey::Proposal(id)));
    event
}

/// Applies a passed proposal's action at its height; a failure changes
/// nothing but the record.
fn activate(state: &mut State, id: u64, height: u64, events: &mut Vec<Event>) {
    let mut proposal = state
        .gov
        .proposals
        .get(&id)
        .cloned()
        .expect("passed proposals exist");
    let result = match &proposal.action {
        ProposalAction::ParamChange { changes } => match state.params().with_changes(changes) {
            Ok((params, canonical)) => {
                state.set_params(params);
                for change in canonical {
                    state.gov.param_since.insert(change.key.clone(), height);
                    state.dirty.insert(Key::Gov(GovKey::ParamSince(change.key)));
                }
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        },
        ProposalAction::ImagePolicy { block, unblock } => {
            for entry in block {
                state.gov.blocked_images.insert(
                    entry.clone(),
                    BlockedImage {
                        since_height: height,
                        proposal: id,
                    },
                );
                state
                    .dirty
                    .insert(Key::Gov(GovKey::BlockedImage(entry.clone())));
            }
            for entry in unblock {
                state.gov.blocked_images.remove(entry);
                state
                    .dirty
                    .insert(Key::Gov(GovKey::BlockedImage(entry.clone())));
            }
            // A change of the blocklist is rare; every app is looked at once.
            let apps: Vec<AppRecord> = state.apps().cloned().collect();
            for app in &apps {
                if let Some(event) = state.gov.app_written(app, height, &mut state.dirty) {
                    events.push(event);
                }
            }
            Ok(())
        }
        ProposalAction::TreasurySpend { to, amount } => {
            let treasury_address = treasury_address();
            let mut treasury = state.account(&treasury_address);
            match treasury.balance.checked_sub(*amount) {
                Some(rest) => {
                    treasury.balance = rest;
                    state.put_account(treasury_address, treasury);
                    let mut recipient = state.account(to);
                    recipient.balance = recipient
                        .balance
                        .checked_add(*amount)
                        .expect("a payment from the treasury fits the supply");
                    state.put_account(*to, recipient);
                    Ok(())
                }
                None => Err(format!(
                    "the treasury holds {} FLUX, less than the {amount} FLUX to pay",
                    treasury.balance
                )),
            }
        }
        ProposalAction::Text => Ok(()),
    };
    proposal.activation = Some(match result {
        Ok(()) => {
            events.push(Event::ProposalActivated {
                proposal: id,
                kind: proposal.action.kind().to_string(),
            });
            Activation::Applied { height }
        }
        Err(reason) => {
            events.push(Event::ProposalActivationFailed {
                proposal: id,
                reason: reason.clone(),
            });
            Activation::Failed { height, reason }
        }
    });
    state.gov.proposals.insert(id, proposal);
    state.dirty.insert(Key::Gov(GovKey::Proposal(id)));
}
