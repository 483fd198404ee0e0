//! Executing transactions and blocks.

use flux_types::block::tx_root_of_hashes;
use flux_types::node::{validate_endpoint, validate_region};
use flux_types::{
    Address, Amount, AppSpec, Block, BlockHeader, Hash, Params, PublicKey, SignedTransaction,
    TxBody, VoteChoice,
};
use serde::{Deserialize, Serialize};

use crate::error::{BlockError, TxError};
use crate::gov::{self, DepositFate, ProposalStatus, Rejection};
use crate::state::{
    Account, AppRecord, Changes, Meta, NodeRecord, NodeStatus, State, is_module_account,
    reward_pool_address,
};

/// How far ahead of an account's next nonce the mempool accepts transactions.
pub const NONCE_AHEAD_MAX: u64 = 64;

/// What the block producer decides for a new block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// Chain time of the block, ms; must be after the previous block's.
    pub timestamp_ms: u64,
    /// The proposer's node key; fees go to its address.
    pub proposer: PublicKey,
}

/// What a transaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiptDetail {
    /// Coins moved.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount.
        amount: Amount,
    },
    /// A node registered.
    NodeRegistered {
        /// Node id.
        node: Address,
        /// Collateral locked.
        collateral: Amount,
    },
    /// A node left.
    NodeDeregistered {
        /// Node id.
        node: Address,
        /// Collateral unlocked.
        unlocked: Amount,
    },
    /// An app registered.
    AppRegistered {
        /// Name.
        app: String,
        /// Charged.
        price: Amount,
        /// Expiry, chain time ms.
        expires_at_ms: u64,
    },
    /// An app updated.
    AppUpdated {
        /// Name.
        app: String,
        /// Price of the new period.
        price: Amount,
        /// Credit for the unused part of the old period.
        credit: Amount,
        /// Charged (price minus credit, never below zero).
        charged: Amount,
        /// New expiry.
        expires_at_ms: u64,
    },
    /// An app was removed by its owner.
    AppRemoved {
        /// Name.
        app: String,
    },
    /// A proposal was put to the vote.
    ProposalSubmitted {
        /// Its id.
        proposal: u64,
        /// Deposit held until the vote ends.
        deposit: Amount,
        /// Chain time at which voting ends.
        voting_ends_ms: u64,
    },
    /// A vote was cast or changed.
    Voted {
        /// The proposal.
        proposal: u64,
        /// The choice.
        choice: VoteChoice,
        /// The voter's power at the proposal's start.
        power: Amount,
        /// The earlier choice, when the vote changed.
        changed_from: Option<VoteChoice>,
    },
    /// A node's benchmark was recorded.
    NodeBenchmarked {
        /// Node id.
        node: Address,
        /// The node's status after it: confirmed when every figure met its tier's threshold.
        status: NodeStatus,
        /// The figures below their thresholds, each against its threshold.
        shortfalls: Vec<flux_types::FigureCheck>,
    },
    /// A verifier's work report was recorded.
    WorkReported {
        /// The verifying node.
        node: Address,
        /// The epoch whose assignment it follows.
        epoch: u64,
        /// The first window reported.
        first_window: u64,
        /// Windows reported.
        windows: u32,
        /// Targets reported.
        targets: u32,
    },
}

/// The result of one included transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Transaction id.
    pub tx_hash: Hash,
    /// Height of the block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Fee paid to the proposer.
    pub fee: Amount,
    /// What happened.
    pub detail: ReceiptDetail,
}

/// Something the ledger did by itself while applying a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An app's paid period ended; it was removed.
    AppExpired {
        /// Name.
        app: String,
        /// Owner.
        owner: Address,
    },
    /// A proposal's voting period ended.
    ProposalClosed {
        /// The proposal.
        proposal: u64,
        /// Passed or rejected.
        status: ProposalStatus,
        /// Why it was rejected.
        rejection: Option<Rejection>,
        /// Power voting yes.
        yes: Amount,
        /// Power voting no.
        no: Amount,
        /// Power abstaining.
        abstain: Amount,
        /// All voting power at the start.
        total_power: Amount,
        /// Returned or burned.
        deposit_fate: DepositFate,
    },
    /// A passed proposal took effect.
    ProposalActivated {
        /// The proposal.
        proposal: u64,
        /// Its kind (`param_change`, `image_policy`, `treasury_spend`, `text`).
        kind: String,
    },
    /// A passed proposal could not take effect; nothing changed.
    ProposalActivationFailed {
        /// The proposal.
        proposal: u64,
        /// Why.
        reason: String,
    },
    /// An app's image went on the blocklist: no instance of it may run.
    AppBlocked {
        /// The app.
        app: String,
        /// The component's image.
        image: String,
        /// The blocklist entry that matches it.
        entry: String,
    },
    /// An app's images are all off the blocklist again.
    AppUnblocked {
        /// The app.
        app: String,
    },
    /// A majority of a node's verifiers saw it down for
    /// `work.failover_down_windows` windows in a row (windows without a
    /// majority either way skipped): it is unreachable and
    /// its instances are placed on other nodes in this block.
    NodeUnreachable {
        /// The node.
        node: Address,
        /// The window whose verdict (early or at its settlement) decided it.
        window: u64,
        /// Consecutive down windows.
        down_windows: u64,
    },
    /// A majority of an unreachable node's verifiers saw it up: it is
    /// confirmed again and a candidate for new instances.
    NodeReachable {
        /// The node.
        node: Address,
        /// The window whose verdict (early or at its settlement) decided it.
        window: u64,
    },
}

/// A block applied to a state.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The state after the block.
    pub state: State,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
    /// What the ledger did by itself.
    pub events: Vec<Event>,
    /// The rows the store must write.
    pub changes: Changes,
}

/// A block built from candidate transactions.
#[derive(Clone, Debug)]
pub struct Built {
    /// The block.
    pub block: Block,
    /// Its outcome.
    pub outcome: Outcome,
    /// Candidates left out, with the reason.
    pub rejected: Vec<(Hash, TxError)>,
}

/// A price quote for an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Resources of one instance for one month.
    pub per_instance_month: Amount,
    /// Per-app extras (enterprise ports, pinned nodes, static IP) per month.
    pub extras_month: Amount,
    /// Total per month (at least the minimum).
    pub per_month: Amount,
    /// Months.
    pub months: u32,
    /// Total for the period.
    pub total: Amount,
}

/// Prices `spec` for `months` with the Flux table in `params`.
pub fn quote(params: &Params, spec: &AppSpec, months: u32) -> Result<Quote, TxError> {
    let limits = &params.app_limits;
    if months < limits.months_min || months > limits.months_max {
        return Err(TxError::MonthsOutOfRange {
            min: limits.months_min,
            max: limits.months_max,
            got: months,
        });
    }
    let prices = &params.app_prices;
    let mut per_instance = Amount::ZERO;
    for c in &spec.components {
        let parts = [
            prices.cpu_per_tenth.checked_mul(u64::from(c.cpu_tenths)),
            prices.ram_per_100_mb.checked_mul(u64::from(c.ram_mb / 100)),
            prices.hdd_per_gb.checked_mul(u64::from(c.hdd_gb)),
        ];
        for part in parts {
            per_instance = per_instance
                .checked_add(part.ok_or(TxError::Overflow)?)
                .ok_or(TxError::Overflow)?;
        }
    }
    let enterprise_ports = spec
        .ports()
        .filter(|p| !limits.standard_ports.contains(*p))
        .count() as u64;
    let mut extras = prices
        .enterprise_port
        .checked_mul(enterprise_ports)
        .ok_or(TxError::Overflow)?;
    if !spec.nodes.is_empty() {
        extras = extras
            .checked_add(prices.pinned_nodes)
            .ok_or(TxError::Overflow)?;
    }
    if spec.static_ip {
        extras = extras
            .checked_add(prices.static_ip)
            .ok_or(TxError::Overflow)?;
    }
    let per_month = per_instance
        .checked_mul(u64::from(spec.instances))
        .and_then(|p| p.checked_add(extras))
        .ok_or(TxError::Overflow)?
        .max(prices.minimum);
    let total = per_month
        .checked_mul(u64::from(months))
        .ok_or(TxError::Overflow)?;
    Ok(Quote {
        per_instance_month: per_instance,
        extras_month: extras,
        per_month,
        months,
        total,
    })
}

/// The minimum fee of a transaction. A node's benchmark and work reports
/// have none, so that a node stays confirmed and verifies without a funded
/// account; a benchmark is limited instead to one per
/// `benchmark_interval_blocks_min` blocks, and a report to windows and
/// targets the ledger assigned to its signer and not reported before.
pub fn min_fee(params: &Params, tx: &SignedTransaction) -> Amount {
    if matches!(
        tx.tx.body,
        TxBody::NodeBenchmark { .. } | TxBody::WorkReport { .. }
    ) {
        return Amount::ZERO;
    }
    if params.tx_fee_per_byte.is_zero() {
        // Measuring the size means encoding the transaction: skip it when it cannot matter.
        return params.tx_fee_min;
    }
    params
        .tx_fee_per_byte
        .checked_mul(tx.size_bytes() as u64)
        .and_then(|f| f.checked_add(params.tx_fee_min))
        .unwrap_or(Amount(u64::MAX))
}

/// Checks a transaction for admission to the mempool: signature, chain,
/// fee, a nonce not yet used (and at most [`NONCE_AHEAD_MAX`] ahead), and the
/// full effect against the current state, as if it were next. Nothing changes.
pub fn check_tx(state: &State, tx: &SignedTransaction) -> Result<(), TxError> {
    if !tx.verify_signature() {
        return Err(TxError::InvalidSignature {
            signer: tx.tx.sender(),
        });
    }
    check_tx_effect(state, tx)
}

/// Everything [`check_tx`] checks except the signature, for a caller that
/// has verified it already (many at once, with [`signatures_valid`]).
pub fn check_tx_effect(state: &State, tx: &SignedTransaction) -> Result<(), TxError> {
    let sender = tx.tx.sender();
    let account = state.account(&sender);
    if tx.tx.nonce < account.nonce {
        return Err(TxError::NonceUsed {
            account: sender,
            expected: account.nonce,
            got: tx.tx.nonce,
        });
    }
    if tx.tx.nonce >= account.nonce.saturating_add(NONCE_AHEAD_MAX) {
        return Err(TxError::NonceGap {
            account: sender,
            expected: account.nonce,
            got: tx.tx.nonce,
        });
    }
    // Apply to a throwaway copy (O(1) to clone) with the nonce lined up, so
    // admission runs exactly the checks that inclusion will.
    let mut scratch = state.clone();
    scratch.put_account(
        sender,
        Account {
            nonce: tx.tx.nonce,
            ..account
        },
    );
    let proposer = tx.tx.signer;
    apply_tx(&mut scratch, &proposer.address(), state.time_ms(), tx).map(|_| ())
}

/// Applies one transaction whose signature was already checked. Every check
/// happens before the first write, so on error the state is unchanged.
fn apply_tx(
    state: &mut State,
    proposer: &Address,
    now_ms: u64,
    signed: &SignedTransaction,
) -> Result<(Amount, ReceiptDetail), TxError> {
    let tx = &signed.tx;
    if tx.chain_id != state.chain_id() {
        return Err(TxError::WrongChain {
            expected: state.chain_id().to_string(),
            got: tx.chain_id.clone(),
        });
    }
    let sender = tx.sender();
    let mut account = state.account(&sender);
    if tx.nonce < account.nonce {
        return Err(TxError::NonceUsed {
            account: sender,
            expected: account.nonce,
            got: tx.nonce,
        });
    }
    if tx.nonce > account.nonce {
        return Err(TxError::NonceGap {
            account: sender,
            expected: account.nonce,
            got: tx.nonce,
        });
    }
    let min = min_fee(state.params(), signed);
    if tx.fee < min {
        return Err(TxError::FeeTooLow { min, got: tx.fee });
    }
    let insufficient = |needed: Amount, account: &Account| TxError::InsufficientFunds {
        account: sender,
        available: account.balance,
        needed,
    };
    let debit = |account: &mut Account, amount: Amount| -> Result<(), TxError> {
        let needed = amount.checked_add(tx.fee).ok_or(TxError::Overflow)?;
        account.balance = account
            .balance
            .checked_sub(needed)
            .ok_or_else(|| insufficient(needed, account))?;
        Ok(())
    };
    account.nonce += 1;
    let detail = match &tx.body {
        TxBody::Transfer { to, amount } => {
            if amount.is_zero() {
                return Err(TxError::ZeroAmount);
            }
            if is_module_account(to) {
                return Err(TxError::ModuleAccount(*to));
            }
            debit(&mut account, *amount)?;
            state.put_account(sender, account);
            let mut recipient = state.account(to);
            recipient.balance = recipient
                .balance
                .checked_add(*amount)
                .ok_or(TxError::Overflow)?;
            state.put_account(*to, recipient);
            ReceiptDetail::Transfer {
                to: *to,
                amount: *amount,
            }
        }
        TxBody::NodeRegister {
            node_key,
            tier,
            endpoint,
            region,
        } => {
            if !node_key.is_valid() {
                return Err(TxError::InvalidNodeInfo(format!(
                    "node key {node_key} is not a valid ed25519 public key; register the public key the node itself generated"
                )));
            }
            let id = node_key.address();
            if state.node(&id).is_some() {
                return Err(TxError::NodeExists(id));
            }
            validate_endpoint(endpoint).map_err(TxError::InvalidNodeInfo)?;
            validate_region(region).map_err(TxError::InvalidNodeInfo)?;
            let collateral = state.params().tier(*tier).collateral;
            let needed = collateral.checked_add(tx.fee).ok_or(TxError::Overflow)?;
            if account.balance < needed {
                return Err(TxError::InsufficientCollateral {
                    tier: *tier,
                    collateral,
                    account: sender,
                    available: account.balance,
                });
            }
            debit(&mut account, collateral)?;
            account.locked = account
                .locked
                .checked_add(collateral)
                .ok_or(TxError::Overflow)?;
            state.put_account(sender, account);
            state.put_node(NodeRecord {
                id,
                owner: sender,
                node_key: *node_key,
                tier: *tier,
                endpoint: endpoint.clone(),
                region: region.clone(),
                collateral,
                status: NodeStatus::Pending,
                registered_height: state.height(),
            });
            ReceiptDetail::NodeRegistered {
                node: id,
                collateral,
            }
        }
        TxBody::NodeDeregister { node } => {
            let record = state.node(node).ok_or(TxError::NodeNotFound(*node))?;
            if record.owner != sender {
                return Err(TxError::NotNodeOwner {
                    node: *node,
                    owner: record.owner,
                });
            }
            let unlocked = record.collateral;
            // Unlock before taking the fee, so that an operator whose whole
            // liquid balance went into collateral can still leave.
            account.locked = account
                .locked
                .checked_sub(unlocked)
                .expect("locked collateral covers every registered node");
            account.balance = account
                .balance
                .checked_add(unlocked)
                .ok_or(TxError::Overflow)?;
            debit(&mut account, Amount::ZERO)?;
            state.put_account(sender, account);
            state.remove_node(node);
            ReceiptDetail::NodeDeregistered {
                node: *node,
                unlocked,
            }
        }
        TxBody::AppRegister {
            spec,
            months,
            max_payment,
        } => {
            check_spec(state, spec, sender)?;
            if state.app(&spec.name).is_some() {
                return Err(TxError::AppExists(spec.name.clone()));
            }
            let price = quote(state.params(), spec, *months)?.total;
            if *max_payment < price {
                return Err(TxError::Underpaid {
                    price,
                    months: *months,
                    paid: *max_payment,
                });
            }
            debit(&mut account, price)?;
            state.put_account(sender, account);
            credit_reward_pool(state, price)?;
            let expires_at_ms = now_ms + state.params().month_ms * u64::from(*months);
            state.put_app(AppRecord {
                spec: spec.clone(),
                registered_height: state.height(),
                updated_height: state.height(),
                period_start_ms: now_ms,
                expires_at_ms,
                paid: price,
                months: *months,
                rollout: None,
            });
            ReceiptDetail::AppRegistered {
                app: spec.name.clone(),
                price,
                expires_at_ms,
            }
        }
        TxBody::AppUpdate {
            spec,
            months,
            max_payment,
        } => {
            check_spec(state, spec, sender)?;
            let old = state
                .app(&spec.name)
                .ok_or_else(|| TxError::AppNotFound(spec.name.clone()))?;
            if old.spec.owner != sender {
                return Err(TxError::NotAppOwner {
                    app: spec.name.clone(),
                    owner: old.spec.owner,
                });
            }
            let price = quote(state.params(), spec, *months)?.total;
            let credit = unused_credit(old, now_ms);
            let charged = price.saturating_sub(credit);
            if *max_payment < charged {
                return Err(TxError::Underpaid {
                    price: charged,
                    months: *months,
                    paid: *max_payment,
                });
            }
            let registered_height = old.registered_height;
            let interval_ms = state.params().scheduler.update_roll_interval_ms;
            let rollout = crate::rollout::after_update(old, spec, now_ms, interval_ms);
            debit(&mut account, charged)?;
            state.put_account(sender, account);
            credit_reward_pool(state, charged)?;
            let expires_at_ms = now_ms + state.params().month_ms * u64::from(*months);
            state.put_app(AppRecord {
                spec: spec.clone(),
                registered_height,
                updated_height: state.height(),
                period_start_ms: now_ms,
                expires_at_ms,
                // The base of a later credit is the value of the new period, not what was charged.
                paid: price,
                months: *months,
                rollout,
            });
            ReceiptDetail::AppUpdated {
                app: spec.name.clone(),
                price,
                credit,
                charged,
                expires_at_ms,
            }
        }
        TxBody::GovPropose {
            title,
            description,
            action,
            deposit,
        } => {
            let signer = gov::Signer {
                address: sender,
                account,
                fee: tx.fee,
                now_ms,
            };
            gov::propose(state, signer, title, description, action, *deposit)?
        }
        TxBody::GovVote { proposal, choice } => {
            let signer = gov::Signer {
                address: sender,
                account,
                fee: tx.fee,
                now_ms,
            };
            gov::vote(state, signer, *proposal, *choice)?
        }
        TxBody::NodeBenchmark { report } => {
            let record = crate::benchmark::judge(state, &sender, report, now_ms)?;
            debit(&mut account, Amount::ZERO)?;
            state.put_account(sender, account);
            crate::benchmark::record(state, sender, record)
        }
        TxBody::WorkReport {
            epoch,
            first_window,
            windows,
            results,
        } => {
            let judged = crate::work::judge(
                state,
                &sender,
                *epoch,
                *first_window,
                *windows,
                results,
                now_ms,
            )?;
            debit(&mut account, Amount::ZERO)?;
            state.put_account(sender, account);
            crate::work::record(state, sender, *epoch, judged)
        }
        TxBody::AppRemove { name } => {
            let old = state
                .app(name)
                .ok_or_else(|| TxError::AppNotFound(name.clone()))?;
            if old.spec.owner != sender {
                return Err(TxError::NotAppOwner {
                    app: name.clone(),
                    owner: old.spec.owner,
                });
            }
            debit(&mut account, Amount::ZERO)?;
            state.put_account(sender, account);
            let removed = state.remove_app(name).expect("the app was found above");
            ReceiptDetail::AppRemoved {
                app: removed.spec.name,
            }
        }
    };
    // The fee was taken from the sender above; it goes to the proposer.
    let mut proposer_account = state.account(proposer);
    proposer_account.balance = proposer_account
        .balance
        .checked_add(tx.fee)
        .ok_or(TxError::Overflow)?;
    state.put_account(*proposer, proposer_account);
    Ok((tx.fee, detail))
}

fn check_spec(state: &State, spec: &AppSpec, sender: Address) -> Result<(), TxError> {
    spec.validate(&state.params().app_limits)?;
    if spec.owner != sender {
        return Err(TxError::OwnerMismatch {
            owner: spec.owner,
            signer: sender,
        });
    }
    gov::check_images(state, spec)
}

/// The value of the unused part of an app's current period.
fn unused_credit(app: &AppRecord, now_ms: u64) -> Amount {
    let period = app.expires_at_ms.saturating_sub(app.period_start_ms);
    let remaining = app.expires_at_ms.saturating_sub(now_ms);
    if period == 0 {
        return Amount::ZERO;
    }
    app.paid
        .mul_div(remaining.min(period), period)
        .unwrap_or(Amount::ZERO)
}

fn credit_reward_pool(state: &mut State, amount: Amount) -> Result<(), TxError> {
    let pool = reward_pool_address();
    let mut account = state.account(&pool);
    account.balance = account
        .balance
        .checked_add(amount)
        .ok_or(TxError::Overflow)?;
    state.put_account(pool, account);
    Ok(())
}

/// Starts a block: advances height and time, expires apps whose period
/// ended, closes votes whose period ended and applies what passed and is due.
fn begin_block(state: &mut State, parent: Hash, timestamp_ms: u64) -> Vec<Event> {
    let parent_time_ms = state.time_ms();
    let meta = Meta {
        height: state.height() + 1,
        time_ms: timestamp_ms,
        parent_hash: parent,
        ..state.meta().clone()
    };
    state.set_meta(meta);
    let mut events = Vec::new();
    for key in state.expired_apps(timestamp_ms) {
        if let Some(app) = state.remove_app(&key) {
            events.push(Event::AppExpired {
                app: app.spec.name,
                owner: app.spec.owner,
            });
        }
    }
    events.extend(gov::begin_block(state));
    events.extend(crate::work::begin_block(state));
    crate::rewards::begin_block(state, parent_time_ms);
    events
}

fn check_invariants(state: &State) {
    // A broken invariant is a bug, not an input error: stop rather than commit it.
    assert_eq!(
        state.sum_of_accounts(),
        state.total_supply(),
        "supply is not conserved at height {}",
        state.height()
    );
    crate::rewards::check_supply(state);
}

/// Which of `txs` carry a valid signature: one batch verification, and one
/// by one only when the batch fails (or when there is only one).
pub fn signatures_valid(txs: &[SignedTransaction]) -> Vec<bool> {
    if let [tx] = txs {
        return vec![tx.verify_signature()];
    }
    let signing: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
    let batch = txs
        .iter()
        .zip(&signing)
        .map(|(t, bytes)| (&t.tx.signer, bytes.as_slice(), &t.signature));
    if flux_types::crypto::verify_batch(batch) {
        return vec![true; txs.len()];
    }
    txs.iter()
        .zip(&signing)
        .map(|(t, bytes)| t.tx.signer.verify(bytes, &t.signature))
        .collect()
}

/// Builds the next block from candidate transactions, in their order.
/// Candidates that fail (a bad signature included) are left out and reported;
/// candidates beyond the block's capacity are neither included nor reported,
/// and wait for a later block.
pub fn build_block(state: &State, ctx: &BlockContext, candidates: Vec<SignedTransaction>) -> Built {
    build(state, ctx, candidates, Signatures::Check)
}

/// [`build_block`] from candidates whose signatures the caller has verified
/// (a mempool that admits only what [`check_tx`] accepted): they are not
/// verified again. Everything else is checked as in [`build_block`].
pub fn build_block_verified(
    state: &State,
    ctx: &BlockContext,
    candidates: Vec<SignedTransaction>,
) -> Built {
    build(state, ctx, candidates, Signatures::Verified)
}

/// Whether a block builder verifies its candidates' signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signatures {
    Check,
    Verified,
}

fn build(
    state: &State,
    ctx: &BlockContext,
    candidates: Vec<SignedTransaction>,
    signatures: Signatures,
) -> Built {
    let mut next = state.clone();
    let timestamp_ms = ctx.timestamp_ms.max(state.time_ms() + 1);
    let parent = state.last_block_hash();
    let mut events = begin_block(&mut next, parent, timestamp_ms);
    let proposer = ctx.proposer.address();
    let max = state.params().block_txs_max as usize;
    let mut txs = Vec::with_capacity(candidates.len().min(max));
    let mut receipts = Vec::with_capacity(txs.capacity());
    let mut rejected = Vec::new();
    let mut queue = candidates.into_iter().peekable();
    // Signatures are checked a block's remaining capacity at a time, so that
    // a long candidate list costs no verification beyond what can fit.
    while txs.len() < max && queue.peek().is_some() {
        let chunk: Vec<SignedTransaction> = queue.by_ref().take(max - txs.len()).collect();
        let valid = match signatures {
            Signatures::Check => signatures_valid(&chunk),
            Signatures::Verified => vec![true; chunk.len()],
        };
        for (tx, signature_ok) in chunk.into_iter().zip(valid) {
            let applied = if signature_ok {
                apply_tx(&mut next, &proposer, timestamp_ms, &tx)
            } else {
                Err(TxError::InvalidSignature {
                    signer: tx.tx.sender(),
                })
            };
            match applied {
                Ok((fee, detail)) => {
                    receipts.push(Receipt {
                        tx_hash: tx.hash(),
                        height: next.height(),
                        index: txs.len() as u32,
                        fee,
                        detail,
                    });
                    txs.push(tx);
                }
                Err(error) => rejected.push((tx.hash(), error)),
            }
        }
    }
    events.extend(crate::work::decide_early(&mut next));
    crate::rollout::end_block(&mut next, timestamp_ms);
    crate::placement::end_block(&mut next, &events);
    crate::work::end_block(&mut next);
    let changes = next.finish();
    check_invariants(&next);
    let header = BlockHeader {
        height: next.height(),
        parent,
        timestamp_ms,
        proposer: ctx.proposer,
        tx_root: flux_types::block::tx_root_of_hashes(
            &receipts.iter().map(|r| r.tx_hash).collect::<Vec<_>>(),
        ),
        state_root: next.state_root(),
    };
    let block = Block { header, txs };
    next.tip = block.hash();
    Built {
        block,
        outcome: Outcome {
            state: next,
            receipts,
            events,
            changes,
        },
        rejected,
    }
}

/// Checks and applies a block proposed by someone else: header, every
/// signature (in one batch), every transaction, and the resulting state root.
pub fn apply_block(state: &State, block: &Block) -> Result<Outcome, BlockError> {
    apply_block_with(state, block, |_| false)
}

/// [`apply_block`] that does not verify again the signature of a
/// transaction whose hash `verified` names: one this node verified itself
/// (its mempool admits only what [`check_tx`] accepted). A hash covers the
/// signature, so the same hash means the same signed bytes. Every other
/// transaction's signature, and everything else, is checked as in
/// [`apply_block`].
pub fn apply_block_with(
    state: &State,
    block: &Block,
    verified: impl Fn(&Hash) -> bool,
) -> Result<Outcome, BlockError> {
    let header = &block.header;
    if header.height != state.height() + 1 {
        return Err(BlockError::WrongHeight {
            current: state.height(),
            got: header.height,
        });
    }
    if header.parent != state.last_block_hash() {
        return Err(BlockError::WrongParent);
    }
    if header.timestamp_ms <= state.time_ms() {
        return Err(BlockError::TimeNotIncreasing {
            previous: state.time_ms(),
            got: header.timestamp_ms,
        });
    }
    let max = state.params().block_txs_max;
    if block.txs.len() > max as usize {
        return Err(BlockError::TooManyTxs {
            max,
            got: block.txs.len(),
        });
    }
    // Each transaction is hashed once, for the root and for its receipt.
    let hashes: Vec<Hash> = block.txs.iter().map(SignedTransaction::hash).collect();
    if tx_root_of_hashes(&hashes) != header.tx_root {
        return Err(BlockError::TxRootMismatch);
    }
    let unverified: Vec<(usize, Vec<u8>)> = block
        .txs
        .iter()
        .enumerate()
        .filter(|&(index, _)| !verified(&hashes[index]))
        .map(|(index, t)| (index, t.tx.signing_bytes()))
        .collect();
    let batch = unverified.iter().map(|(index, bytes)| {
        let t = &block.txs[*index];
        (&t.tx.signer, bytes.as_slice(), &t.signature)
    });
    if !flux_types::crypto::verify_batch(batch) {
        let index = unverified
            .iter()
            .find(|(index, bytes)| {
                let t = &block.txs[*index];
                !t.tx.signer.verify(bytes, &t.signature)
            })
            .map_or(0, |(index, _)| *index);
        let signer = block.txs[index].tx.sender();
        return Err(BlockError::InvalidTx {
            index,
            error: TxError::InvalidSignature { signer },
        });
    }
    let mut next = state.clone();
    let mut events = begin_block(&mut next, header.parent, header.timestamp_ms);
    let proposer = header.proposer.address();
    let mut receipts = Vec::with_capacity(block.txs.len());
    for (index, tx) in block.txs.iter().enumerate() {
        let (fee, detail) = apply_tx(&mut next, &proposer, header.timestamp_ms, tx)
            .map_err(|error| BlockError::InvalidTx { index, error })?;
        receipts.push(Receipt {
            tx_hash: hashes[index],
            height: header.height,
            index: index as u32,
            fee,
            detail,
        });
    }
    events.extend(crate::work::decide_early(&mut next));
    crate::rollout::end_block(&mut next, header.timestamp_ms);
    crate::placement::end_block(&mut next, &events);
    crate::work::end_block(&mut next);
    let changes = next.finish();
    if next.state_root() != header.state_root {
        return Err(BlockError::StateRootMismatch {
            expected: header.state_root,
            computed: next.state_root(),
        });
    }
    check_invariants(&next);
    next.tip = block.hash();
    Ok(Outcome {
        state: next,
        receipts,
        events,
        changes,
    })
}
