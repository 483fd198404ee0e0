//! Who validates an epoch: a pure function of the genesis and the ledger
//! state at the end of the previous epoch.
//!
//! The rule of real networks is the ledger's ([`State::next_committee`]):
//! confirmed nodes whose verified work passed `work.verified_permille_min`,
//! at most `work.committee_seats_max`, drawn by tier weight with the hash of
//! the epoch's last block as seed; the genesis validators keep their seats
//! while fewer than four nodes qualify. Two simpler rules exist for tests
//! that move validators with plain transactions (see [`Eligibility`]).
//!
//! Every node of a network must compute the same committee from the same
//! state, so nothing here reads a clock, a random source or a local setting
//! other than the [`Eligibility`] rule, which is fixed per network.

use std::collections::BTreeSet;

use flux_ledger::{NodeStatus, State};
use flux_types::params::COMMITTEE_SEATS_HARD_MAX;
use flux_types::{Genesis, PublicKey};

/// Most validators of one epoch. It also bounds the size of consensus
/// certificates, from which the peer-to-peer message limit is computed, so
/// raising it changes the wire limits of every node.
pub const COMMITTEE_SEATS_MAX: usize = 64;

const _: () = assert!(COMMITTEE_SEATS_MAX == COMMITTEE_SEATS_HARD_MAX as usize);

/// Which registered nodes may take a seat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Eligibility {
    /// Nodes that do verified useful work, by the ledger's rule
    /// ([`State::next_committee`]): the rule of every real network.
    #[default]
    Work,
    /// For tests: every genesis validator, then every confirmed node, oldest
    /// registration first, whatever its work.
    Confirmed,
    /// For tests: every genesis validator, then every registered node,
    /// confirmed or not, oldest registration first.
    Registered,
}

impl Eligibility {
    fn admits(self, status: NodeStatus) -> bool {
        match self {
            Eligibility::Work | Eligibility::Confirmed => status == NodeStatus::Confirmed,
            Eligibility::Registered => true,
        }
    }
}

/// A member of a committee and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node key.
    pub key: PublicKey,
    /// Its peer-to-peer address `HOST:PORT`, when known.
    pub p2p_endpoint: Option<String>,
}

/// The committee of the epoch that follows `state` (the state after the
/// last block of an epoch), without duplicates, at most
/// [`COMMITTEE_SEATS_MAX`] members. Under [`Eligibility::Work`] the
/// ledger's rule; under the test rules genesis validators first, then
/// eligible nodes by registration height and id.
///
/// `p2p_port` is the port a registered node listens on for peers: a node
/// registers the address of its API, and serves peer-to-peer on the same host.
pub fn committee(
    genesis: &Genesis,
    state: &State,
    eligibility: Eligibility,
    p2p_port: u16,
) -> Vec<Member> {
    if eligibility == Eligibility::Work {
        let genesis_keys: Vec<PublicKey> =
            genesis.validators.iter().map(|v| v.public_key).collect();
        return state
            .next_committee(&genesis_keys)
            .into_iter()
            .map(|key| Member {
                key,
                p2p_endpoint: genesis
                    .validators
                    .iter()
                    .find(|v| v.public_key == key)
                    .map(|v| v.p2p_endpoint.clone())
                    .or_else(|| {
                        let node = state.node(&key.address())?;
                        p2p_endpoint_of(&node.endpoint, p2p_port)
                    }),
            })
            .collect();
    }
    let mut seen = BTreeSet::new();
    let mut members = Vec::new();
    for validator in &genesis.validators {
        if members.len() < COMMITTEE_SEATS_MAX && seen.insert(validator.public_key) {
            members.push(Member {
                key: validator.public_key,
                p2p_endpoint: Some(validator.p2p_endpoint.clone()),
            });
        }
    }
    let mut nodes: Vec<_> = state
        .nodes()
        .filter(|node| eligibility.admits(node.status))
        .collect();
    nodes.sort_by_key(|node| (node.registered_height, node.id));
    for node in nodes {
        if members.len() >= COMMITTEE_SEATS_MAX {
            break;
        }
        if seen.insert(node.node_key) {
            members.push(Member {
                key: node.node_key,
                p2p_endpoint: p2p_endpoint_of(&node.endpoint, p2p_port),
            });
        }
    }
    members
}

/// Peer-to-peer endpoints of every registered node (any status), by key:
/// the nodes a validator accepts connections from without dialling them.
pub fn registered_endpoints(state: &State, p2p_port: u16) -> Vec<Member> {
    state
        .nodes()
        .map(|node| Member {
            key: node.node_key,
            p2p_endpoint: p2p_endpoint_of(&node.endpoint, p2p_port),
        })
        .collect()
}

/// `HOST:p2p_port` for a registered `HOST:PORT` endpoint.
fn p2p_endpoint_of(endpoint: &str, p2p_port: u16) -> Option<String> {
    let (host, _) = endpoint.rsplit_once(':')?;
    if host.is_empty() {
        return None;
    }
    Some(format!("{host}:{p2p_port}"))
}

#[cfg(test)]
mod tests {
    use flux_types::{
        Amount, GenesisAccount, GenesisValidator, Params, SecretKey, Tier, Transaction, TxBody,
    };

    use super::*;

    const CHAIN_ID: &str = "committee-test";

    fn genesis(validators: &[&str]) -> Genesis {
        Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 1_700_000_000_000,
            params: Params::devnet(),
            accounts: vec![GenesisAccount {
                address: SecretKey::development("owner").address(),
                balance: Amount::flux(1_000_000),
            }],
            validators: validators
                .iter()
                .enumerate()
                .map(|(i, name)| GenesisValidator {
                    name: name.to_string(),
                    public_key: SecretKey::development(name).public_key(),
                    p2p_endpoint: format!("127.0.0.{}:16125", i + 1),
                    api_endpoint: format!("127.0.0.{}:16127", i + 1),
                })
                .collect(),
        }
    }

    /// The state after one block that registers `nodes`.
    fn with_nodes(genesis: &Genesis, nodes: &[&str]) -> State {
        let (state, _) = State::from_genesis(genesis).unwrap();
        let owner = SecretKey::development("owner");
        let txs = nodes
            .iter()
            .enumerate()
            .map(|(nonce, name)| {
                Transaction {
                    chain_id: CHAIN_ID.into(),
                    signer: owner.public_key(),
                    nonce: nonce as u64,
                    fee: Amount::flux(1),
                    body: TxBody::NodeRegister {
                        node_key: SecretKey::development(name).public_key(),
                        tier: Tier::Cumulus,
                        endpoint: format!("10.0.0.{}:16127", nonce + 1),
                        region: "EU_CZ".into(),
                    },
                }
                .sign(&owner)
            })
            .collect();
        let built = flux_ledger::build_block(
            &state,
            &flux_ledger::BlockContext {
                timestamp_ms: genesis.genesis_time_ms + 1_000,
                proposer: SecretKey::development("a").public_key(),
            },
            txs,
        );
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        built.outcome.state
    }

    fn keys(members: &[Member]) -> Vec<PublicKey> {
        members.iter().map(|m| m.key).collect()
    }

    #[test]
    fn genesis_validators_then_eligible_nodes() {
        let genesis = genesis(&["a", "b"]);
        let state = with_nodes(&genesis, &["x", "y"]);
        let dev = |name: &str| SecretKey::development(name).public_key();
        // Registered but unconfirmed nodes do not count under the real rule,
        // nor under the confirmed test rule.
        for eligibility in [Eligibility::Work, Eligibility::Confirmed] {
            assert_eq!(
                keys(&committee(&genesis, &state, eligibility, 16125)),
                [dev("a"), dev("b")]
            );
        }
        let members = committee(&genesis, &state, Eligibility::Registered, 16125);
        let mut nodes = [dev("x"), dev("y")];
        // Same registration height: ordered by node id (the address of the key).
        nodes.sort_by_key(|key| key.address());
        assert_eq!(keys(&members), [dev("a"), dev("b"), nodes[0], nodes[1]]);
        assert_eq!(members[0].p2p_endpoint.as_deref(), Some("127.0.0.1:16125"));
        assert!(
            members[2..]
                .iter()
                .all(|m| m.p2p_endpoint.as_deref().unwrap().ends_with(":16125"))
        );
        // Deterministic: the same state gives the same committee.
        assert_eq!(
            members,
            committee(&genesis, &state, Eligibility::Registered, 16125)
        );
        assert_eq!(registered_endpoints(&state, 16125).len(), 2);
    }

    #[test]
    fn seats_are_capped_and_keys_are_not_repeated() {
        let names: Vec<String> = (0..COMMITTEE_SEATS_MAX + 3)
            .map(|i| format!("v{i}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let genesis = genesis(&refs);
        let (state, _) = State::from_genesis(&genesis).unwrap();
        let members = committee(&genesis, &state, Eligibility::Registered, 16125);
        assert_eq!(members.len(), COMMITTEE_SEATS_MAX);
        // A genesis validator that also registers as a node keeps one seat.
        let genesis = self::genesis(&["a"]);
        let state = with_nodes(&genesis, &["a"]);
        assert_eq!(
            committee(&genesis, &state, Eligibility::Registered, 16125).len(),
            1
        );
    }

    #[test]
    fn p2p_endpoint_uses_the_registered_host() {
        assert_eq!(
            p2p_endpoint_of("10.1.2.3:16127", 16125).as_deref(),
            Some("10.1.2.3:16125")
        );
        assert_eq!(
            p2p_endpoint_of("[::1]:16127", 7).as_deref(),
            Some("[::1]:7")
        );
        assert_eq!(p2p_endpoint_of("nohost", 7), None);
        assert_eq!(p2p_endpoint_of(":16127", 7), None);
    }
}
