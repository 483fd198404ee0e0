//! Define the ids, keys, amounts, transactions, blocks, app specs and params of Flux.
//!
//! No IO and no async: everything here is plain data, its validation, and a
//! binary codec that takes explicit limits for bytes from outside.

pub mod amount;
pub mod app;
pub mod benchmark;
pub mod block;
pub mod codec;
pub mod compose;
pub mod crypto;
pub mod genesis;
pub mod gov;
pub mod governable;
pub mod node;
pub mod params;
pub mod request_auth;
pub mod tx;
pub mod work;

pub use amount::{Amount, UNITS_PER_FLUX};
pub use app::{AppSpec, Component, SpecError};
pub use benchmark::{BenchmarkReport, Figure, FigureCheck};
pub use block::{Block, BlockHeader};
pub use crypto::{Address, Hash, PublicKey, SecretKey, Signature};
pub use genesis::{Genesis, GenesisAccount, GenesisValidator};
pub use gov::{GovParams, ParamChange, ProposalAction, VoteChoice};
pub use node::Tier;
pub use params::Params;
pub use tx::{SignedTransaction, Transaction, TxBody};
pub use work::{Target, TargetResults};
