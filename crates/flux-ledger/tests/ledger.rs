//! Integration tests of the ledger, driven through one data-driven harness
//! ([`harness::check`]): a genesis, a list of steps (transactions with their
//! expected outcome, clock advances, blocks), then assertions on the state.

#[path = "ledger/harness.rs"]
mod harness;

#[path = "ledger/apps.rs"]
mod apps;
#[path = "ledger/blocks.rs"]
mod blocks;
#[path = "ledger/committee.rs"]
mod committee;
#[path = "ledger/failover.rs"]
mod failover;
#[path = "ledger/gov.rs"]
mod gov;
#[path = "ledger/nodes.rs"]
mod nodes;
#[path = "ledger/placement.rs"]
mod placement;
#[path = "ledger/properties.rs"]
mod properties;
#[path = "ledger/rewards.rs"]
mod rewards;
#[path = "ledger/rollout.rs"]
mod rollout;
#[path = "ledger/scheduler.rs"]
mod scheduler;
#[path = "ledger/transfers.rs"]
mod transfers;
#[path = "ledger/work.rs"]
mod work;
