//! The genesis: the network's first state and its parameters.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::codec;
use crate::crypto::{Address, Hash, PublicKey};
use crate::params::Params;
use crate::tx::CHAIN_ID_LEN_MAX;

/// A funded account at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct GenesisAccount {
    /// The account.
    pub address: Address,
    /// Its starting balance.
    pub balance: Amount,
}

/// A validator of the first committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct GenesisValidator {
    /// A label for humans.
    pub name: String,
    /// The validator's node key.
    pub public_key: PublicKey,
    /// Where its peer-to-peer service listens, `HOST:PORT`.
    pub p2p_endpoint: String,
    /// Where its API listens, `HOST:PORT`.
    pub api_endpoint: String,
}

/// Everything a node needs to start the chain from height 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Genesis {
    /// The network's id, signed into every transaction.
    pub chain_id: String,
    /// Chain time of height 0, ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// The parameters.
    pub params: Params,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// The first validators.
    pub validators: Vec<GenesisValidator>,
}

impl Genesis {
    /// A commitment to the whole genesis; nodes with different genesis files refuse each other.
    pub fn hash(&self) -> Hash {
        Hash::digest(&[b"FLUX/genesis/v1", &codec::encode(self)])
    }

    /// Checks consistency: a sane chain id, valid params, no duplicate
    /// accounts or validators, at least one validator, no supply overflow.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.chain_id.is_empty()
            && self.chain_id.len() <= CHAIN_ID_LEN_MAX
            && self
                .chain_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(format!(
                "chain_id '{}' must be 1 to {CHAIN_ID_LEN_MAX} letters, digits, '-' or '_'",
                self.chain_id
            ));
        }
        self.params.validate()?;
        if self.validators.is_empty() {
            return Err("genesis needs at least one validator".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut total = Amount::ZERO;
        for account in &self.accounts {
            if !seen.insert(account.address) {
                return Err(format!("account {} is listed twice", account.address));
            }
            total = total
                .checked_add(account.balance)
                .ok_or("total genesis supply overflows")?;
        }
        let mut keys = std::collections::BTreeSet::new();
        for validator in &self.validators {
            if !keys.insert(validator.public_key) {
                return Err(format!(
                    "validator {} is listed twice",
                    validator.public_key
                ));
            }
            if !validator.public_key.is_valid() {
                return Err(format!("validator {} has an invalid key", validator.name));
            }
        }
        Ok(())
    }
}
