//! Issuance and node rewards.
//!
//! **Issuance.** The schedule `F(t)` is the FLUX issued from genesis to `t`
//! ms of chain time after it: `issuance_per_period` per
//! `issuance_period_ms`, at a rate that drops by `yearly_reduction_permille`
//! at the end of each `year_ms` (compounded, each year's rate rounded down
//! to a base unit). A block issues `F(its time) - F(its parent's time)`
//! under the params in force, so blocks that come sooner issue less, and
//! the sum over any run of blocks is the schedule itself, with no rounding
//! drift. Issued coins go to the reward-pool account and are earmarked for
//! the block's epoch.
//!
//! **Payment.** Epoch `e` is paid at the start of the first block, in a later
//! epoch, by which every window opened in `e` has settled (its work is final).
//! What is paid is the pool's balance less what is earmarked for later
//! epochs: `e`'s issuance, app payments, and whatever earlier payments left.
//! Each node still registered gets a weight `tier reward_weight_milli ×
//! verified instance-windows in e`; when no node has any weight, everything
//! stays in the pool. Otherwise the treasury gets `treasury_share_ppm`
//! millionths (rounded down), and each node's owner `rest × weight / total
//! weight` (rounded down); what rounding leaves stays in the pool for the
//! next epoch. No coin is created or lost: total supply = genesis supply +
//! issued − burned deposits, asserted after every block.
//!
//! Rows: the summary (prefix 30), a node's reward in an epoch (31, kept for
//! `work.history_epochs` epochs) and a node's total rewards (32).

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use flux_types::{Address, Amount, codec, params::RewardsParams};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::state::{Key, RestoreError, State, reward_pool_address, treasury_address};

/// Key prefix of the summary.
pub(crate) const PREFIX_SUMMARY: u8 = 30;
/// Key prefix of a node's reward in an epoch.
pub(crate) const PREFIX_EPOCH_REWARD: u8 = 31;
/// Key prefix of a node's total rewards.
pub(crate) const PREFIX_NODE_TOTAL: u8 = 32;
/// Every key prefix of this module.
pub(crate) const PREFIXES: [u8; 3] = [PREFIX_SUMMARY, PREFIX_EPOCH_REWARD, PREFIX_NODE_TOTAL];

/// A row of this module, before encoding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RewardsKey {
    /// The summary.
    Summary,
    /// A node's reward in an epoch.
    EpochReward(u64, Address),
    /// A node's total rewards.
    NodeTotal(Address),
}

impl RewardsKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            RewardsKey::Summary => vec![PREFIX_SUMMARY],
            RewardsKey::EpochReward(epoch, node) => {
                [&[PREFIX_EPOCH_REWARD][..], &epoch.to_be_bytes(), &node.0].concat()
            }
            RewardsKey::NodeTotal(node) => [&[PREFIX_NODE_TOTAL][..], &node.0].concat(),
        }
    }
}

/// The issuance and payment totals of the chain.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct RewardsSummary {
    /// Chain time of the genesis, from which years are counted.
    pub genesis_time_ms: u64,
    /// Supply at genesis.
    pub genesis_supply: Amount,
    /// Every coin issued since genesis.
    pub issued: Amount,
    /// Every coin burned since genesis (proposal deposits without quorum).
    pub burned: Amount,
    /// Every coin paid to node owners.
    pub paid_to_nodes: Amount,
    /// Every coin paid to the treasury.
    pub paid_to_treasury: Amount,
    /// The oldest epoch not paid yet.
    pub unpaid_epoch: u64,
    /// Issuance earmarked for each unpaid epoch.
    pub pools: BTreeMap<u64, Amount>,
}

/// A node's rewards.
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
pub struct NodeRewards {
    /// Every reward paid for the node since it registered.
    pub total: Amount,
    /// The last epoch it was paid for, if any.
    pub last_epoch: Option<u64>,
}

/// What the ledger keeps for rewards.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rewards {
    summary: RewardsSummary,
    by_epoch: OrdMap<(u64, Address), Amount>,
    totals: OrdMap<Address, NodeRewards>,
}

impl Rewards {
    /// The rewards of a new chain.
    pub(crate) fn genesis(genesis_time_ms: u64, genesis_supply: Amount) -> Rewards {
        Rewards {
            summary: RewardsSummary {
                genesis_time_ms,
                genesis_supply,
                ..RewardsSummary::default()
            },
            ..Rewards::default()
        }
    }

    /// The stored value of a row, `None` when it is deleted.
    pub(crate) fn row(&self, key: &RewardsKey) -> Option<Vec<u8>> {
        match key {
            RewardsKey::Summary => Some(codec::encode(&self.summary)),
            RewardsKey::EpochReward(epoch, node) => {
                self.by_epoch.get(&(*epoch, *node)).map(codec::encode)
            }
            RewardsKey::NodeTotal(node) => self.totals.get(node).map(codec::encode),
        }
    }

    /// Reads one stored row back.
    pub(crate) fn restore_row(
        &mut self,
        prefix: u8,
        rest: &[u8],
        value: &[u8],
    ) -> Result<(), RestoreError> {
        let corrupt = |what: &str| RestoreError(format!("bad {what} row"));
        let address = |bytes: &[u8]| -> Result<Address, RestoreError> {
            Ok(Address(bytes.try_into().map_err(|_| corrupt("rewards"))?))
        };
        match prefix {
            PREFIX_SUMMARY => {
                self.summary = codec::decode_trusted(value).map_err(|_| corrupt("rewards"))?;
            }
            PREFIX_EPOCH_REWARD => {
                let (epoch, node) = rest.split_at_checked(8).ok_or_else(|| corrupt("reward"))?;
                let epoch = u64::from_be_bytes(epoch.try_into().map_err(|_| corrupt("reward"))?);
                let amount = codec::decode_trusted(value).map_err(|_| corrupt("reward"))?;
                self.by_epoch.insert((epoch, address(node)?), amount);
            }
            PREFIX_NODE_TOTAL => {
                let record = codec::decode_trusted(value).map_err(|_| corrupt("reward total"))?;
                self.totals.insert(address(rest)?, record);
            }
            other => return Err(RestoreError(format!("unknown key prefix {other}"))),
        }
        Ok(())
    }
}

fn mark(state: &mut State, key: RewardsKey) {
    state.dirty.insert(Key::Rewards(key));
}

/// The FLUX the schedule issues in the first `elapsed_ms` of chain time
/// after genesis, in base units.
pub fn scheduled_issuance(params: &RewardsParams, elapsed_ms: u64) -> u128 {
    let period = u128::from(params.issuance_period_ms.max(1));
    let year = u128::from(params.year_ms.max(1));
    let keep = 1_000 - u128::from(params.yearly_reduction_permille.min(1_000));
    let mut rate = u128::from(params.issuance_per_period.as_units());
    let mut left = u128::from(elapsed_ms);
    let mut total = 0u128;
    // One step per year elapsed (the rate reaches zero after at most a few
    // hundred years at any reduction of 10 % or more).
    while left > 0 && rate > 0 {
        let span = left.min(year);
        total += rate * span / period;
        left -= span;
        if keep == 1_000 {
            total += rate * left / period;
            break;
        }
        rate = rate * keep / 1_000;
    }
    total
}

/// Starts a block, after its height and time are set and windows settled:
/// issues the block's coins into the pool and pays the epochs whose work is
/// final.
pub(crate) fn begin_block(state: &mut State, parent_time_ms: u64) {
    let params = state.params().rewards.clone();
    let genesis_ms = state.rewards.summary.genesis_time_ms;
    let before = scheduled_issuance(&params, parent_time_ms.saturating_sub(genesis_ms));
    let after = scheduled_issuance(&params, state.time_ms().saturating_sub(genesis_ms));
    let issued = u64::try_from(after.saturating_sub(before)).expect("a block's issuance fits");
    let epoch = state.epoch();
    if issued > 0 {
        let amount = Amount::units(issued);
        let summary = &mut state.rewards.summary;
        summary.issued = summary.issued.checked_add(amount).expect("issuance fits");
        let pool = summary.pools.entry(epoch).or_insert(Amount::ZERO);
        *pool = pool.checked_add(amount).expect("issuance fits");
        let mut meta = state.meta().clone();
        meta.total_supply = meta.total_supply.checked_add(amount).expect("supply fits");
        state.set_meta(meta);
        credit(state, reward_pool_address(), amount);
        mark(state, RewardsKey::Summary);
    }
    loop {
        let unpaid = state.rewards.summary.unpaid_epoch;
        let settled = state.open_work_windows().all(|(_, e)| e > unpaid);
        if unpaid >= epoch || !settled {
            break;
        }
        pay(state, unpaid);
        state.rewards.summary.unpaid_epoch = unpaid + 1;
        mark(state, RewardsKey::Summary);
    }
}

/// Records a burned deposit, for the supply invariant.
pub(crate) fn burned(state: &mut State, amount: Amount) {
    let summary = &mut state.rewards.summary;
    summary.burned = summary.burned.checked_add(amount).expect("burns fit");
    mark(state, RewardsKey::Summary);
}

fn credit(state: &mut State, address: Address, amount: Amount) {
    let mut account = state.account(&address);
    account.balance = account.balance.checked_add(amount).expect("supply fits");
    state.put_account(address, account);
}

/// Pays epoch `epoch`'s pool (see the module docs).
fn pay(state: &mut State, epoch: u64) {
    let earmarked_later = state
        .rewards
        .summary
        .pools
        .range(epoch + 1..)
        .fold(0u128, |sum, (_, a)| sum + u128::from(a.as_units()));
    let paid_pools: Vec<u64> = state
        .rewards
        .summary
        .pools
        .range(..=epoch)
        .map(|(e, _)| *e)
        .collect();
    for e in paid_pools {
        state.rewards.summary.pools.remove(&e);
    }
    let pool = reward_pool_address();
    let balance = u128::from(state.account(&pool).balance.as_units());
    let available = balance.saturating_sub(earmarked_later);
    let weights: Vec<(Address, Address, u128)> = state
        .nodes()
        .filter_map(|node| {
            let verified = state.node_work(&node.id, epoch).verified_windows;
            let weight = u128::from(state.params().tier(node.tier).reward_weight_milli)
                * u128::from(verified);
            (weight > 0).then_some((node.id, node.owner, weight))
        })
        .collect();
    let total_weight: u128 = weights.iter().map(|(_, _, w)| w).sum();
    if total_weight == 0 || available == 0 {
        return;
    }
    let treasury_share = u128::from(state.params().rewards.treasury_share_ppm);
    let to_treasury = available * treasury_share / 1_000_000;
    let to_nodes = available - to_treasury;
    let mut paid = 0u128;
    for (node, owner, weight) in weights {
        let share = to_nodes * weight / total_weight;
        if share == 0 {
            continue;
        }
        paid += share;
        let amount = Amount::units(u64::try_from(share).expect("a share fits the pool"));
        credit(state, owner, amount);
        state.rewards.by_epoch.insert((epoch, node), amount);
        mark(state, RewardsKey::EpochReward(epoch, node));
        let record = state.rewards.totals.entry(node).or_default();
        record.total = record.total.checked_add(amount).expect("supply fits");
        record.last_epoch = Some(epoch);
        mark(state, RewardsKey::NodeTotal(node));
    }
    let to_treasury = Amount::units(u64::try_from(to_treasury).expect("fits the pool"));
    if !to_treasury.is_zero() {
        credit(state, treasury_address(), to_treasury);
    }
    let paid = Amount::units(u64::try_from(paid).expect("fits the pool"));
    let mut account = state.account(&pool);
    account.balance = account
        .balance
        .checked_sub(paid)
        .and_then(|b| b.checked_sub(to_treasury))
        .expect("the pool holds what it pays");
    state.put_account(pool, account);
    let summary = &mut state.rewards.summary;
    summary.paid_to_nodes = summary.paid_to_nodes.checked_add(paid).expect("fits");
    summary.paid_to_treasury = summary
        .paid_to_treasury
        .checked_add(to_treasury)
        .expect("fits");
    // Per-epoch rewards are kept as long as per-node work.
    let kept_from = (epoch + 1).saturating_sub(state.params().work.history_epochs);
    let old: Vec<(u64, Address)> = state
        .rewards
        .by_epoch
        .keys()
        .take_while(|(e, _)| *e < kept_from)
        .copied()
        .collect();
    for (e, node) in old {
        state.rewards.by_epoch.remove(&(e, node));
        mark(state, RewardsKey::EpochReward(e, node));
    }
}

/// Checks that total supply is genesis supply plus issued minus burned.
pub(crate) fn check_supply(state: &State) {
    let summary = &state.rewards.summary;
    let expected = summary
        .genesis_supply
        .checked_add(summary.issued)
        .and_then(|s| s.checked_sub(summary.burned))
        .expect("supply accounting fits");
    assert_eq!(
        state.total_supply(),
        expected,
        "total supply is not genesis + issued - burned at height {}",
        state.height()
    );
}

impl State {
    /// Issuance and payment totals.
    pub fn rewards_summary(&self) -> &RewardsSummary {
        &self.rewards.summary
    }

    /// A node's rewards: total and last epoch paid.
    pub fn node_rewards(&self, id: &Address) -> NodeRewards {
        self.rewards.totals.get(id).copied().unwrap_or_default()
    }

    /// What a node was paid for `epoch` (zero when nothing, or when the
    /// epoch is older than the history kept).
    pub fn node_reward_in(&self, id: &Address, epoch: u64) -> Amount {
        self.rewards
            .by_epoch
            .get(&(epoch, *id))
            .copied()
            .unwrap_or(Amount::ZERO)
    }
}
