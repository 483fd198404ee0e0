//! Apply blocks to the Flux state: accounts, nodes, apps, pricing and fees, governance, deterministically and without IO.
//!
//! `apply_block(state, block) -> outcome` is a pure function: no clock, no
//! randomness, no network, no disk. Time and the proposer arrive inside the
//! block; the same blocks give the same state root on every machine.

mod benchmark;
mod error;
mod exec;
mod gov;
mod placement;
mod rewards;
mod rollout;
pub mod scheduler;
mod state;
mod work;

pub use benchmark::{BenchmarkRecord, PendingReason};
pub use error::{BlockError, GenesisError, TxError};
pub use exec::{
    BlockContext, Built, Event, NONCE_AHEAD_MAX, Outcome, Quote, Receipt, ReceiptDetail,
    apply_block, apply_block_with, build_block, build_block_verified, check_tx, check_tx_effect,
    min_fee, quote, signatures_valid,
};
pub use gov::{
    Activation, BlockedApp, BlockedImage, DepositFate, Proposal, ProposalStatus, Rejection, Tally,
    Vote,
};
pub use placement::{AppPlacement, NodeResources};
pub use rewards::{NodeRewards, RewardsSummary, scheduled_issuance};
pub use rollout::{Rollout, RolloutProgress};
pub use state::{
    Account, AppRecord, Changes, Meta, NodeRecord, NodeStatus, RestoreError, State,
    gov_deposits_address, is_module_account, module_accounts, reward_pool_address,
    treasury_address,
};
pub use work::{COMMITTEE_WORKERS_MIN, NodeWork};
