//! Property tests: random sequences of transfers, node and app transactions,
//! proposals and votes among a handful of accounts, valid and invalid, run
//! through the harness with the outcome of every transaction predicted by a
//! small model.
//!
//! Beyond what the harness checks on every block (supply conserved, a second
//! copy and a restored copy agree, refused transactions change nothing), the
//! model's balances must equal the ledger's after every block, so no balance
//! ever moves by a unit more or less than the rules say, and replaying the
//! blocks gives the same state roots. The model takes voting power by copying
//! every account when a proposal starts, the plainest reading of the rule, so
//! the ledger's copy-on-write snapshots must agree with a full copy; deposits
//! burned when quorum is missed must shrink the supply by exactly their sum.

use std::collections::BTreeMap;

use flux_ledger::{State, apply_block};
use flux_types::{Address, Params, ProposalAction, Tier, TxBody, VoteChoice};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use crate::harness::*;

const ACCOUNTS: [&str; 3] = ["p0", "p1", "p2"];
const NODES: [&str; 2] = ["k0", "k1"];
/// Two names differing only in case are the same app.
const APPS: [&str; 3] = ["alpha", "Alpha", "beta"];
const TIERS: [Tier; 3] = [Tier::Cumulus, Tier::Nimbus, Tier::Stratus];
/// Price of the test component (0.1 CPU, 100 MB, 1 GB) per instance and month, in units.
const COMPONENT_PRICE: u64 = 3_000_000 + 1_000_000 + 400_000;
const MONTH_MS: u64 = 20_000;
const VOTING_MS: u64 = 40_000;
const DEPOSIT: u64 = 100_000_000;
const TREASURY: u64 = 500_000_000;
const COLLATERAL_WEIGHT_MILLI: u64 = 2_000;
const BALANCE_WEIGHT_MILLI: u64 = 500;
const QUORUM_PERCENT: u64 = 30;
const OPEN_PROPOSALS_MAX: usize = 3;
const CHOICES: [VoteChoice; 3] = [VoteChoice::Yes, VoteChoice::No, VoteChoice::Abstain];

/// Something that may be wrong with how a transaction is signed.
#[derive(Clone, Copy, Debug)]
enum Twist {
    None,
    NonceBehind,
    NonceAhead,
    LowFee,
    BadSignature,
}

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
        twist: Twist,
    },
    RegisterNode {
        from: usize,
        node: usize,
        tier: usize,
    },
    DeregisterNode {
        from: usize,
        node: usize,
    },
    RegisterApp {
        from: usize,
        owner: usize,
        app: usize,
        instances: u32,
        months: u32,
        max_payment: u64,
    },
    UpdateApp {
        from: usize,
        owner: usize,
        app: usize,
        instances: u32,
        months: u32,
        max_payment: u64,
    },
    RemoveApp {
        from: usize,
        app: usize,
    },
    /// A text proposal, or a treasury spend of `spend` units to `to`.
    Propose {
        from: usize,
        spend: Option<(usize, u64)>,
        deposit_short: bool,
    },
    Vote {
        from: usize,
        proposal: u64,
        choice: usize,
    },
    /// Node `node` benchmarks itself with `cores` cores (0 fails every tier).
    Benchmark {
        node: usize,
        cores: u32,
    },
    Block {
        advance_ms: u64,
    },
}

fn twist() -> impl Strategy<Value = Twist> {
    prop_oneof![
        12 => Just(Twist::None),
        1 => Just(Twist::NonceBehind),
        1 => Just(Twist::NonceAhead),
        1 => Just(Twist::LowFee),
        1 => Just(Twist::BadSignature),
    ]
}

/// Amounts in units: zero, dust, and whole FLUX up to more than anyone has.
fn units_amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        2 => 1..100_000u64,
        6 => (1..=50u64).prop_map(|f| f * 100_000_000),
        1 => 1..70_000_000_000u64,
    ]
}

/// Months: mostly within the limits.
fn months() -> impl Strategy<Value = u32> {
    prop_oneof![10 => 1..=12u32, 1 => Just(0u32), 1 => Just(13u32)]
}

/// The spec's owner: mostly the signer, sometimes the next account.
fn owner_of(from: usize, signer_owns: bool) -> usize {
    if signer_owns {
        from
    } else {
        (from + 1) % ACCOUNTS.len()
    }
}

fn payment() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        2 => 0..200_000_000u64,
        3 => Just(u64::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..ACCOUNTS.len();
    prop_oneof![
        8 => (who.clone(), who.clone(), units_amount(), twist())
            .prop_map(|(from, to, amount, twist)| Op::Transfer { from, to, amount, twist }),
        2 => (who.clone(), 0..NODES.len(), 0..TIERS.len())
            .prop_map(|(from, node, tier)| Op::RegisterNode { from, node, tier }),
        2 => (who.clone(), 0..NODES.len()).prop_map(|(from, node)| Op::DeregisterNode { from, node }),
        3 => (who.clone(), proptest::bool::weighted(0.9), 0..APPS.len(), 1..=3u32, months(), payment()).prop_map(
            |(from, own, app, instances, months, max_payment)| Op::RegisterApp { from, owner: owner_of(from, own), app, instances, months, max_payment }
        ),
        3 => (who.clone(), proptest::bool::weighted(0.9), 0..APPS.len(), 1..=3u32, months(), payment()).prop_map(
            |(from, own, app, instances, months, max_payment)| Op::UpdateApp { from, owner: owner_of(from, own), app, instances, months, max_payment }
        ),
        1 => (who.clone(), 0..APPS.len()).prop_map(|(from, app)| Op::RemoveApp { from, app }),
        2 => (0..NODES.len(), 0..3u32).prop_map(|(node, cores)| Op::Benchmark { node, cores }),
        2 => (
            who.clone(),
            proptest::option::weighted(0.4, (0..ACCOUNTS.len(), 1..=2 * TREASURY / 3)),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(from, spend, deposit_short)| Op::Propose { from, spend, deposit_short }),
        6 => (who, 1..=4u64, prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)])
            .prop_map(|(from, proposal, choice)| Op::Vote { from, proposal, choice }),
        3 => (0..3 * MONTH_MS / 2).prop_map(|advance_ms| Op::Block { advance_ms }),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ModelAccount {
    balance: u64,
    locked: u64,
    nonce: u64,
}

/// Voting power as the rule states it.
fn power(account: &ModelAccount) -> u64 {
    ((u128::from(account.locked) * u128::from(COLLATERAL_WEIGHT_MILLI)
        + u128::from(account.balance) * u128::from(BALANCE_WEIGHT_MILLI))
        / 1_000) as u64
}

#[derive(Clone, Debug)]
struct ModelProposal {
    proposer: Address,
    spend: Option<(Address, u64)>,
    ends_ms: u64,
    /// Every account as it was when the proposal started.
    snapshot: BTreeMap<Address, ModelAccount>,
    total_power: u64,
    votes: BTreeMap<Address, (VoteChoice, u64)>,
    open: bool,
    activation_height: Option<u64>,
}

#[derive(Clone, Debug)]
struct ModelApp {
    owner: Address,
    period_start_ms: u64,
    expires_at_ms: u64,
    paid: u64,
}

/// What the rules say, written plainly.
struct Model {
    params: Params,
    clock_ms: u64,
    accounts: BTreeMap<Address, ModelAccount>,
    nodes: BTreeMap<Address, (Address, u64)>,
    apps: BTreeMap<String, ModelApp>,
    /// Height of the last block.
    height: u64,
    /// Whether the next block's start (closing votes, activations) was modelled.
    block_started: bool,
    proposals: Vec<ModelProposal>,
    burned: u64,
    /// Height of each node's last benchmark.
    benchmarked: BTreeMap<Address, u64>,
}

impl Model {
    fn account(&mut self, address: Address) -> &mut ModelAccount {
        self.accounts.entry(address).or_default()
    }

    fn next_block_time(&self) -> u64 {
        self.clock_ms + self.params.block_interval_ms
    }

    /// Apps whose period ended by the next block are gone when its transactions run.
    fn expire(&mut self) {
        let now = self.next_block_time();
        self.apps.retain(|_, app| app.expires_at_ms > now);
    }

    /// What the ledger does at the start of the next block: close the votes
    /// that ended, settle deposits, then pay passed treasury spends that are due.
    fn begin_block(&mut self) {
        if self.block_started {
            return;
        }
        self.block_started = true;
        let now = self.next_block_time();
        let height = self.height + 1;
        let mut ending: Vec<(u64, usize)> = self
            .proposals
            .iter()
            .enumerate()
            .filter(|(_, p)| p.open && p.ends_ms <= now)
            .map(|(index, p)| (p.ends_ms, index))
            .collect();
        ending.sort();
        for (_, index) in ending {
            let proposal = &mut self.proposals[index];
            proposal.open = false;
            let tally = |choice| -> u64 {
                proposal
                    .votes
                    .values()
                    .filter(|(c, _)| *c == choice)
                    .map(|(_, power)| power)
                    .sum()
            };
            let (yes, no, abstain) = (
                tally(VoteChoice::Yes),
                tally(VoteChoice::No),
                tally(VoteChoice::Abstain),
            );
            let quorum = u128::from(yes + no + abstain) * 100
                >= u128::from(proposal.total_power) * u128::from(QUORUM_PERCENT);
            if quorum && yes > no {
                proposal.activation_height = Some(height + 1);
            }
            let proposer = proposal.proposer;
            self.account(addr("@deposits")).balance -= DEPOSIT;
            if quorum {
                self.account(proposer).balance += DEPOSIT;
            } else {
                self.burned += DEPOSIT;
            }
        }
        for index in 0..self.proposals.len() {
            if self.proposals[index].activation_height != Some(height) {
                continue;
            }
            if let Some((to, amount)) = self.proposals[index].spend {
                let treasury = self.account(addr("@treasury"));
                if treasury.balance >= amount {
                    treasury.balance -= amount;
                    self.account(to).balance += amount;
                }
            }
        }
    }

    fn price(&self, instances: u32, months: u32) -> u64 {
        (COMPONENT_PRICE * u64::from(instances)).max(self.params.app_prices.minimum.as_units())
            * u64::from(months)
    }

    fn months_ok(&self, months: u32) -> bool {
        (self.params.app_limits.months_min..=self.params.app_limits.months_max).contains(&months)
    }

    /// Predicts the outcome of `op` signed by `from`; applies it when it succeeds.
    fn run(&mut self, from: Address, twist: Twist, op: &Op) -> Result<(), &'static str> {
        self.expire();
        // A benchmark pays no fee.
        let fee = if matches!(op, Op::Benchmark { .. }) {
            0
        } else {
            self.params.tx_fee_min.as_units()
        };
        let validator = addr(VALIDATOR);
        let sender = self.account(from).clone();
        match twist {
            Twist::BadSignature => return Err("invalid_signature"),
            Twist::NonceBehind if sender.nonce > 0 => return Err("nonce_used"),
            Twist::NonceAhead => return Err("nonce_gap"),
            Twist::LowFee => return Err("fee_too_low"),
            Twist::None | Twist::NonceBehind => {}
        }
        let now = self.next_block_time();
        let mut next = sender.clone();
        next.nonce += 1;
        let debit = |account: &mut ModelAccount, amount: u64| -> Result<(), &'static str> {
            account.balance = account
                .balance
                .checked_sub(amount + fee)
                .ok_or("insufficient_funds")?;
            Ok(())
        };
        match op {
            Op::Transfer { to, amount, .. } => {
                if *amount == 0 {
                    return Err("zero_amount");
                }
                debit(&mut next, *amount)?;
                *self.account(from) = next;
                self.account(addr(ACCOUNTS[*to])).balance += amount;
            }
            Op::RegisterNode { node, tier, .. } => {
                let id = addr(NODES[*node]);
                if self.nodes.contains_key(&id) {
                    return Err("node_exists");
                }
                let collateral = self.params.tier(TIERS[*tier]).collateral.as_units();
                debit(&mut next, collateral).map_err(|_| "insufficient_collateral")?;
                next.locked += collateral;
                *self.account(from) = next;
                self.nodes.insert(id, (from, collateral));
            }
            Op::DeregisterNode { node, .. } => {
                let id = addr(NODES[*node]);
                let &(owner, collateral) = self.nodes.get(&id).ok_or("node_not_found")?;
                if owner != from {
                    return Err("not_node_owner");
                }
                next.locked -= collateral;
                next.balance += collateral;
                debit(&mut next, 0)?;
                *self.account(from) = next;
                self.nodes.remove(&id);
                self.benchmarked.remove(&id);
            }
            Op::RegisterApp {
                owner,
                app,
                instances,
                months,
                max_payment,
                ..
            } => {
                if addr(ACCOUNTS[*owner]) != from {
                    return Err("owner_mismatch");
                }
                let name = APPS[*app].to_ascii_lowercase();
                if self.apps.contains_key(&name) {
                    return Err("app_exists");
                }
                if !self.months_ok(*months) {
                    return Err("months_out_of_range");
                }
                let price = self.price(*instances, *months);
                if *max_payment < price {
                    return Err("underpaid");
                }
                debit(&mut next, price)?;
                *self.account(from) = next;
                self.account(reward_pool()).balance += price;
                let app = ModelApp {
                    owner: from,
                    period_start_ms: now,
                    expires_at_ms: now + MONTH_MS * u64::from(*months),
                    paid: price,
                };
                self.apps.insert(name, app);
            }
            Op::UpdateApp {
                owner,
                app,
                instances,
                months,
                max_payment,
                ..
            } => {
                if addr(ACCOUNTS[*owner]) != from {
                    return Err("owner_mismatch");
                }
                let name = APPS[*app].to_ascii_lowercase();
                let old = self.apps.get(&name).ok_or("app_not_found")?;
                if old.owner != from {
                    return Err("not_app_owner");
                }
                if !self.months_ok(*months) {
                    return Err("months_out_of_range");
                }
                let price = self.price(*instances, *months);
                let period = u128::from(old.expires_at_ms - old.period_start_ms);
                let remaining = u128::from(old.expires_at_ms.saturating_sub(now)).min(period);
                let credit = (u128::from(old.paid) * remaining / period) as u64;
                let charged = price.saturating_sub(credit);
                if *max_payment < charged {
                    return Err("underpaid");
                }
                debit(&mut next, charged)?;
                *self.account(from) = next;
                self.account(reward_pool()).balance += charged;
                let app = ModelApp {
                    owner: from,
                    period_start_ms: now,
                    expires_at_ms: now + MONTH_MS * u64::from(*months),
                    paid: price,
                };
                self.apps.insert(name, app);
            }
            Op::RemoveApp { app, .. } => {
                let name = APPS[*app].to_ascii_lowercase();
                let old = self.apps.get(&name).ok_or("app_not_found")?;
                if old.owner != from {
                    return Err("not_app_owner");
                }
                debit(&mut next, 0)?;
                *self.account(from) = next;
                self.apps.remove(&name);
            }
            Op::Benchmark { node, .. } => {
                let id = addr(NODES[*node]);
                if !self.nodes.contains_key(&id) {
                    return Err("benchmark_signer_not_node");
                }
                let height = self.height + 1;
                if let Some(last) = self.benchmarked.get(&id)
                    && height < last + self.params.benchmark_interval_blocks_min
                {
                    return Err("benchmark_too_soon");
                }
                *self.account(from) = next;
                self.benchmarked.insert(id, height);
            }
            Op::Propose {
                spend,
                deposit_short,
                ..
            } => {
                if *deposit_short {
                    return Err("deposit_too_low");
                }
                if self.proposals.iter().filter(|p| p.open).count() >= OPEN_PROPOSALS_MAX {
                    return Err("too_many_open_proposals");
                }
                let spend = spend.map(|(to, amount)| (addr(ACCOUNTS[to]), amount));
                if let Some((_, amount)) = spend
                    && self.account(addr("@treasury")).balance < amount
                {
                    return Err("treasury_insufficient");
                }
                debit(&mut next, DEPOSIT)?;
                *self.account(from) = next;
                self.account(addr("@deposits")).balance += DEPOSIT;
                // Power is taken now: the fee has left the signer and is not yet the proposer's.
                let modules = [addr("@pool"), addr("@deposits"), addr("@treasury")];
                let snapshot: BTreeMap<Address, ModelAccount> = self
                    .accounts
                    .iter()
                    .filter(|(address, _)| !modules.contains(address))
                    .map(|(address, account)| (*address, account.clone()))
                    .collect();
                let all = ModelAccount {
                    balance: snapshot.values().map(|a| a.balance).sum(),
                    locked: snapshot.values().map(|a| a.locked).sum(),
                    nonce: 0,
                };
                self.proposals.push(ModelProposal {
                    proposer: from,
                    spend,
                    ends_ms: now + VOTING_MS,
                    snapshot,
                    total_power: power(&all),
                    votes: BTreeMap::new(),
                    open: true,
                    activation_height: None,
                });
            }
            Op::Vote {
                proposal, choice, ..
            } => {
                let index = (*proposal as usize)
                    .checked_sub(1)
                    .filter(|i| *i < self.proposals.len())
                    .ok_or("proposal_not_found")?;
                let proposal = &self.proposals[index];
                if !proposal.open {
                    return Err("voting_closed");
                }
                let power = proposal.snapshot.get(&from).map_or(0, power);
                if power == 0 {
                    return Err("no_voting_power");
                }
                debit(&mut next, 0)?;
                *self.account(from) = next;
                self.proposals[index]
                    .votes
                    .insert(from, (CHOICES[*choice], power));
            }
            Op::Block { .. } => unreachable!("blocks are not transactions"),
        }
        self.account(validator).balance += fee;
        Ok(())
    }
}

fn reward_pool() -> Address {
    addr("@pool")
}

fn spec(app: usize, owner: usize, instances: u32) -> flux_types::AppSpec {
    crate::harness::app(
        APPS[app],
        ACCOUNTS[owner],
        instances,
        vec![component(1, 100, 1)],
    )
}

/// Turns random operations into harness steps, each with the outcome the model predicts.
fn steps_for(balances: &[u64], ops: &[Op]) -> (flux_types::Genesis, Vec<Step>) {
    let mut params = Params::devnet();
    params.month_ms = MONTH_MS;
    params.gov.voting_period_ms = VOTING_MS;
    params.gov.proposal_deposit = flux_types::Amount::units(DEPOSIT);
    params.gov.activation_delay_blocks = 1;
    params.gov.collateral_weight_milli = COLLATERAL_WEIGHT_MILLI;
    params.gov.balance_weight_milli = BALANCE_WEIGHT_MILLI;
    params.gov.quorum_percent = QUORUM_PERCENT as u32;
    params.gov.open_proposals_max = OPEN_PROPOSALS_MAX as u32;
    let mut funded: Vec<(&str, flux_types::Amount)> = ACCOUNTS
        .iter()
        .zip(balances)
        .map(|(label, units)| (*label, flux_types::Amount::units(*units)))
        .collect();
    funded.push(("@treasury", flux_types::Amount::units(TREASURY)));
    let genesis = genesis_with(params.clone(), &funded);
    let mut model = Model {
        params,
        clock_ms: GENESIS_TIME_MS,
        accounts: funded
            .iter()
            .map(|(label, a)| {
                (
                    addr(label),
                    ModelAccount {
                        balance: a.as_units(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        nodes: BTreeMap::new(),
        apps: BTreeMap::new(),
        height: 0,
        block_started: false,
        proposals: Vec::new(),
        burned: 0,
        benchmarked: BTreeMap::new(),
    };
    let mut steps = Vec::new();
    // The sequence ends with blocks that close every vote and apply what passed.
    let tail = [
        Op::Block {
            advance_ms: VOTING_MS,
        },
        Op::Block { advance_ms: 0 },
        Op::Block { advance_ms: 0 },
    ];
    for op in ops.iter().chain(tail.iter()) {
        let (from, twist, body) = match op {
            Op::Block { advance_ms } => {
                model.expire();
                model.begin_block();
                model.clock_ms = model.next_block_time();
                model.height += 1;
                model.block_started = false;
                steps.push(block());
                let expected: BTreeMap<Address, ModelAccount> = model.accounts.clone();
                let burned = model.burned;
                let initial: u64 = funded.iter().map(|(_, a)| a.as_units()).sum();
                steps.push(then(move |chain: &Chain| {
                    let supply = chain.state.total_supply();
                    assert_eq!(supply.as_units(), initial - burned, "supply after burns");
                    for (address, want) in &expected {
                        let got = chain.state.account(address);
                        let got = ModelAccount {
                            balance: got.balance.as_units(),
                            locked: got.locked.as_units(),
                            nonce: got.nonce,
                        };
                        assert_eq!(&got, want, "account {address}");
                    }
                    for (address, account) in chain.state.accounts() {
                        assert!(
                            expected.contains_key(address),
                            "unexpected account {address}"
                        );
                        assert!(
                            account
                                .balance
                                .checked_add(account.locked)
                                .is_some_and(|a| a <= supply)
                        );
                    }
                }));
                steps.push(advance(*advance_ms));
                model.clock_ms += advance_ms;
                continue;
            }
            Op::Transfer {
                from,
                to,
                amount,
                twist,
            } => (
                *from,
                *twist,
                transfer(ACCOUNTS[*to], flux_types::Amount::units(*amount)),
            ),
            Op::RegisterNode { from, node, tier } => (
                *from,
                Twist::None,
                register_node(NODES[*node], TIERS[*tier]),
            ),
            Op::DeregisterNode { from, node } => {
                (*from, Twist::None, deregister_node(NODES[*node]))
            }
            Op::RegisterApp {
                from,
                owner,
                app,
                instances,
                months,
                max_payment,
            } => (
                *from,
                Twist::None,
                register_app(
                    spec(*app, *owner, *instances),
                    *months,
                    flux_types::Amount::units(*max_payment),
                ),
            ),
            Op::UpdateApp {
                from,
                owner,
                app,
                instances,
                months,
                max_payment,
            } => (
                *from,
                Twist::None,
                update_app(
                    spec(*app, *owner, *instances),
                    *months,
                    flux_types::Amount::units(*max_payment),
                ),
            ),
            Op::RemoveApp { from, app } => (
                *from,
                Twist::None,
                TxBody::AppRemove {
                    name: APPS[*app].into(),
                },
            ),
            Op::Propose {
                from,
                spend,
                deposit_short,
            } => {
                let action = match spend {
                    Some((to, amount)) => ProposalAction::TreasurySpend {
                        to: addr(ACCOUNTS[*to]),
                        amount: flux_types::Amount::units(*amount),
                    },
                    None => ProposalAction::Text,
                };
                let deposit = DEPOSIT - u64::from(*deposit_short);
                (
                    *from,
                    Twist::None,
                    propose("a proposal", action, flux_types::Amount::units(deposit)),
                )
            }
            Op::Vote {
                from,
                proposal,
                choice,
            } => (*from, Twist::None, vote(*proposal, CHOICES[*choice])),
            Op::Benchmark { node, cores } => (
                ACCOUNTS.len() + node,
                Twist::None,
                benchmark(hardware(*cores, 1_000, 10)),
            ),
        };
        // Accounts sign by index; the nodes' own keys come after them.
        let label = ACCOUNTS
            .iter()
            .chain(&NODES)
            .nth(from)
            .copied()
            .expect("a signer");
        let sender = addr(label);
        let nonce = model.accounts.get(&sender).map_or(0, |a| a.nonce);
        let mut step = tx(label, body);
        step = match twist {
            Twist::None => step,
            Twist::NonceBehind if nonce == 0 => step,
            Twist::NonceBehind => step.nonce(nonce - 1),
            Twist::NonceAhead => step.nonce(nonce + 1),
            Twist::LowFee => step.fee(flux_types::Amount::units(
                model.params.tx_fee_min.as_units() - 1,
            )),
            Twist::BadSignature => step.signed_by("mallory"),
        };
        model.begin_block();
        step = match model.run(sender, twist, op) {
            Ok(()) => step,
            Err(code) => step.fails(code),
        };
        steps.push(step);
    }
    (genesis, steps)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/ledger/properties.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_transactions_conserve_supply_and_follow_the_model(
        balances in proptest::collection::vec(
            prop_oneof![1 => Just(0u64), 1 => 0..100_000u64, 6 => 5_000_000_000..60_000_000_000u64],
            ACCOUNTS.len(),
        ),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let (genesis, steps) = steps_for(&balances, &ops);
        let chain = check(genesis.clone(), steps);
        prop_assert_eq!(chain.state.sum_of_accounts(), chain.state.total_supply());
        let burned: u64 = chain
            .state
            .proposals()
            .filter(|p| p.deposit_fate == flux_ledger::DepositFate::Burned)
            .map(|p| p.deposit.as_units())
            .sum();
        let supply: u64 = balances.iter().sum::<u64>() + TREASURY;
        prop_assert_eq!(chain.state.total_supply().as_units(), supply - burned);

        // The state root is a function of the blocks: a node that replays
        // them reaches the same root at every height, and running the same
        // transactions again builds the same blocks.
        let (mut state, _) = State::from_genesis(&genesis).unwrap();
        for block in &chain.blocks {
            state = apply_block(&state, block).expect("valid").state;
            prop_assert_eq!(state.state_root(), block.header.state_root);
        }
        let (genesis_again, steps_again) = steps_for(&balances, &ops);
        let again = check(genesis_again, steps_again);
        prop_assert_eq!(&again.blocks, &chain.blocks);
    }
}
