//! The scenario harness every ledger test goes through.
//!
//! A scenario is a genesis (funded development keys named by label), a list of
//! [`Step`]s and then assertions on the resulting [`Chain`]. While it runs, the
//! harness checks what must hold for every scenario:
//!
//! - a transaction expected to fail is left out by `build_block` with exactly
//!   that error, and the block built with it is identical (same state root,
//!   same rows) to the block built without it: a failed transaction changes
//!   nothing;
//! - with an empty mempool, `check_tx` (admission) agrees with inclusion;
//! - every built block is accepted by `apply_block` on a second copy of the
//!   state, with the same state root, receipts, events and rows;
//! - the rows accumulated as a store would keep them give back, through
//!   `State::restore`, the same state, and the next block is applied to that
//!   restored copy;
//! - supply is conserved after every block.

use std::collections::BTreeMap;

use flux_ledger::{
    Account, Activation, BlockContext, Event, NONCE_AHEAD_MAX, Proposal, ProposalStatus, Receipt,
    State, apply_block, build_block, check_tx, gov_deposits_address, min_fee, reward_pool_address,
    treasury_address,
};
use flux_types::{
    Address, Amount, AppSpec, BenchmarkReport, Block, Component, Genesis, GenesisAccount,
    GenesisValidator, Hash, ParamChange, Params, ProposalAction, SecretKey, SignedTransaction,
    Tier, Transaction, TxBody, VoteChoice,
};

/// Chain id of every test network.
pub(crate) const CHAIN_ID: &str = "flux-test";
/// Chain time of height 0.
pub(crate) const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
/// Label of the key that proposes every block (and receives the fees).
pub(crate) const VALIDATOR: &str = "validator";

/// The development key behind a label.
pub(crate) fn key(label: &str) -> SecretKey {
    SecretKey::development(label)
}

/// The address behind a label: `@treasury`, `@pool` and `@deposits` are the
/// module accounts, anything else the address of a development key.
pub(crate) fn addr(label: &str) -> Address {
    match label {
        "@treasury" => treasury_address(),
        "@pool" => reward_pool_address(),
        "@deposits" => gov_deposits_address(),
        _ => key(label).address(),
    }
}

/// Whole FLUX.
pub(crate) fn flux(whole: u64) -> Amount {
    Amount::flux(whole)
}

/// Base units.
pub(crate) fn units(count: u64) -> Amount {
    Amount::units(count)
}

/// An amount written in FLUX, e.g. `"4.12"`.
pub(crate) fn amount(text: &str) -> Amount {
    text.parse().expect("a valid amount")
}

/// The fee the harness pays by default: the devnet minimum.
pub(crate) fn fee() -> Amount {
    Params::devnet().tx_fee_min
}

/// `count` default fees.
pub(crate) fn fees(count: u64) -> Amount {
    fee().checked_mul(count).unwrap()
}

/// `a - b`, panicking on underflow.
pub(crate) fn minus(a: Amount, b: Amount) -> Amount {
    a.checked_sub(b).expect("no underflow in the expectation")
}

/// `a + b`.
pub(crate) fn plus(a: Amount, b: Amount) -> Amount {
    a.checked_add(b).unwrap()
}

/// A devnet genesis funding the given labels.
pub(crate) fn genesis(accounts: &[(&str, Amount)]) -> Genesis {
    genesis_with(Params::devnet(), accounts)
}

/// A genesis with custom params funding the given labels, without issuance
/// (`rewards.issuance_per_period` zero), so that a scenario counts coins
/// exactly; [`genesis_issuing`] keeps the params' issuance.
pub(crate) fn genesis_with(mut params: Params, accounts: &[(&str, Amount)]) -> Genesis {
    params.rewards.issuance_per_period = Amount::ZERO;
    genesis_issuing(params, accounts)
}

/// A genesis with exactly the given params funding the given labels.
pub(crate) fn genesis_issuing(params: Params, accounts: &[(&str, Amount)]) -> Genesis {
    Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: GENESIS_TIME_MS,
        params,
        accounts: accounts
            .iter()
            .map(|(label, balance)| GenesisAccount {
                address: addr(label),
                balance: *balance,
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: VALIDATOR.into(),
            public_key: key(VALIDATOR).public_key(),
            p2p_endpoint: "127.0.0.1:16128".into(),
            api_endpoint: "127.0.0.1:16127".into(),
        }],
    }
}

/// A transfer to a label.
pub(crate) fn transfer(to: &str, amount: Amount) -> TxBody {
    TxBody::Transfer {
        to: addr(to),
        amount,
    }
}

/// Registers the node whose key is `node` with a valid endpoint and region.
pub(crate) fn register_node(node: &str, tier: Tier) -> TxBody {
    register_node_at(node, tier, "203.0.113.7:16127", "EU_CZ")
}

/// Registers a node with the given endpoint and region.
pub(crate) fn register_node_at(node: &str, tier: Tier, endpoint: &str, region: &str) -> TxBody {
    TxBody::NodeRegister {
        node_key: key(node).public_key(),
        tier,
        endpoint: endpoint.into(),
        region: region.into(),
    }
}

/// Deregisters the node whose key is `node`.
pub(crate) fn deregister_node(node: &str) -> TxBody {
    TxBody::NodeDeregister { node: addr(node) }
}

/// Registers an app for `months`, paying at most `max_payment`.
pub(crate) fn register_app(spec: AppSpec, months: u32, max_payment: Amount) -> TxBody {
    TxBody::AppRegister {
        spec,
        months,
        max_payment,
    }
}

/// Updates an app for `months` from now, paying at most `max_payment`.
pub(crate) fn update_app(spec: AppSpec, months: u32, max_payment: Amount) -> TxBody {
    TxBody::AppUpdate {
        spec,
        months,
        max_payment,
    }
}

/// Removes an app.
pub(crate) fn remove_app(name: &str) -> TxBody {
    TxBody::AppRemove { name: name.into() }
}

/// A benchmark report; the node signs it with its own key.
pub(crate) fn benchmark(report: BenchmarkReport) -> TxBody {
    TxBody::NodeBenchmark { report }
}

/// A report of `cores` cores, `ram_mb` MB and `disk_gb` GB that passes the
/// devnet thresholds of every tier.
pub(crate) fn hardware(cores: u32, ram_mb: u64, disk_gb: u64) -> BenchmarkReport {
    BenchmarkReport {
        cores,
        ram_mb,
        disk_gb,
        cpu_score: 1_000,
        disk_write_mb_per_s: 200,
    }
}

/// Proposes `action` with a deposit.
pub(crate) fn propose(title: &str, action: ProposalAction, deposit: Amount) -> TxBody {
    TxBody::GovPropose {
        title: title.into(),
        description: String::new(),
        action,
        deposit,
    }
}

/// A param change setting each `(key, value)`.
pub(crate) fn param_change(changes: &[(&str, &str)]) -> ProposalAction {
    ProposalAction::ParamChange {
        changes: changes
            .iter()
            .map(|(key, value)| ParamChange {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect(),
    }
}

/// An image policy blocking and unblocking entries.
pub(crate) fn image_policy(block: &[&str], unblock: &[&str]) -> ProposalAction {
    ProposalAction::ImagePolicy {
        block: block.iter().map(|s| (*s).into()).collect(),
        unblock: unblock.iter().map(|s| (*s).into()).collect(),
    }
}

/// Votes on proposal `id`.
pub(crate) fn vote(id: u64, choice: VoteChoice) -> TxBody {
    TxBody::GovVote {
        proposal: id,
        choice,
    }
}

/// A valid component with the given resources, publishing standard port 31000.
pub(crate) fn component(cpu_tenths: u32, ram_mb: u32, hdd_gb: u32) -> Component {
    Component {
        name: "web".into(),
        description: String::new(),
        repotag: "nginx:1.25".into(),
        ports: vec![31_000],
        container_ports: vec![80],
        domains: vec![],
        environment: vec!["GREETING=hi".into()],
        commands: vec![],
        container_data: "/data".into(),
        cpu_tenths,
        ram_mb,
        hdd_gb,
        health_path: String::new(),
    }
}

/// An app of `owner` with the given instances and components.
pub(crate) fn app(name: &str, owner: &str, instances: u32, components: Vec<Component>) -> AppSpec {
    AppSpec {
        name: name.into(),
        description: "a test app".into(),
        owner: addr(owner),
        instances,
        contacts: vec![],
        geolocation: vec![],
        nodes: vec![],
        static_ip: false,
        components,
    }
}

/// The app priced at exactly 4.12 FLUX a month: 4 instances of 3 cores
/// (0.90), 900 MB (0.09) and 10 GB (0.04).
pub(crate) fn app_4_12(name: &str, owner: &str) -> AppSpec {
    app(name, owner, 4, vec![component(30, 900, 10)])
}

/// A transaction signed by `label` with `nonce` and the default fee.
pub(crate) fn signed(label: &str, nonce: u64, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN_ID.into(),
        signer: key(label).public_key(),
        nonce,
        fee: fee(),
        body,
    }
    .sign(&key(label))
}

/// What a step expects of a transaction.
#[derive(Clone, Debug)]
pub(crate) enum Expect {
    /// Included.
    Ok,
    /// Refused with this code, and a message containing `message` if given.
    Err {
        code: &'static str,
        message: Option<String>,
    },
}

/// A transaction step: who signs what, how, and what is expected.
pub(crate) struct TxStep {
    signer: &'static str,
    body: TxBody,
    nonce: Option<u64>,
    fee: Option<Amount>,
    chain_id: Option<String>,
    signed_by: Option<&'static str>,
    expect: Expect,
}

/// One step of a scenario.
pub(crate) enum Step {
    /// Submit a transaction to the next block (it must be included or refused as expected).
    Tx(Box<TxStep>),
    /// Move the clock forward by this many ms (on top of each block's interval).
    Advance(u64),
    /// Build the next block from the transactions submitted so far.
    Block,
    /// Assert something on the chain at this point.
    Assert(Box<dyn Fn(&Chain)>),
}

/// `signer` signs `body`; by default it is expected to be included.
pub(crate) fn tx(signer: &'static str, body: TxBody) -> Step {
    Step::Tx(Box::new(TxStep {
        signer,
        body,
        nonce: None,
        fee: None,
        chain_id: None,
        signed_by: None,
        expect: Expect::Ok,
    }))
}

/// Builds a block.
pub(crate) fn block() -> Step {
    Step::Block
}

/// Moves the clock forward.
pub(crate) fn advance(ms: u64) -> Step {
    Step::Advance(ms)
}

/// Asserts on the chain between steps.
pub(crate) fn then(assertion: impl Fn(&Chain) + 'static) -> Step {
    Step::Assert(Box::new(assertion))
}

impl Step {
    fn tx_mut(&mut self) -> &mut TxStep {
        match self {
            Step::Tx(step) => step,
            _ => panic!("only a transaction step takes transaction options"),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut TxStep)) -> Step {
        change(self.tx_mut());
        self
    }

    /// Expects the transaction to be refused with `code`.
    pub(crate) fn fails(self, code: &'static str) -> Step {
        self.with(|s| {
            s.expect = Expect::Err {
                code,
                message: None,
            }
        })
    }

    /// Expects the transaction to be refused with `code` and a message containing `message`.
    pub(crate) fn fails_with(self, code: &'static str, message: &str) -> Step {
        let message = Some(message.to_string());
        self.with(|s| s.expect = Expect::Err { code, message })
    }

    /// Uses this nonce instead of the signer's next one.
    pub(crate) fn nonce(self, nonce: u64) -> Step {
        self.with(|s| s.nonce = Some(nonce))
    }

    /// Pays this fee instead of the minimum.
    pub(crate) fn fee(self, fee: Amount) -> Step {
        self.with(|s| s.fee = Some(fee))
    }

    /// Signs for another chain id.
    pub(crate) fn chain(self, chain_id: &str) -> Step {
        let chain_id = Some(chain_id.to_string());
        self.with(|s| s.chain_id = chain_id)
    }

    /// Signs with another label's key (the claimed signer stays the same).
    pub(crate) fn signed_by(self, label: &'static str) -> Step {
        self.with(|s| s.signed_by = Some(label))
    }
}

/// A chain under test.
pub(crate) struct Chain {
    /// The state after the last block, as its builder holds it.
    pub(crate) state: State,
    /// The state as a second node holds it: restored from stored rows after every block.
    follower: State,
    /// Every row ever written, minus deletions, as a store holds them.
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Transactions waiting for the next block.
    pending: Vec<SignedTransaction>,
    /// The clock; the next block is stamped one block interval later.
    pub(crate) clock_ms: u64,
    /// Every block, in order.
    pub(crate) blocks: Vec<Block>,
    /// Every receipt, in order.
    pub(crate) receipts: Vec<Receipt>,
    /// Every event, in order.
    pub(crate) events: Vec<Event>,
}

/// Runs a scenario and returns the chain for assertions.
pub(crate) fn check(genesis: Genesis, steps: Vec<Step>) -> Chain {
    let mut chain = Chain::new(genesis);
    chain.run_steps(steps);
    chain
}

/// Asserts that two states are the same in every observable way.
pub(crate) fn assert_same_state(a: &State, b: &State) {
    assert_eq!(a.state_root(), b.state_root(), "state root");
    assert_eq!(a.meta(), b.meta(), "meta");
    assert_eq!(a.params(), b.params(), "params");
    assert_eq!(a.last_block_hash(), b.last_block_hash(), "tip");
    assert_eq!(
        a.accounts().collect::<Vec<_>>(),
        b.accounts().collect::<Vec<_>>(),
        "accounts"
    );
    assert_eq!(
        a.nodes().collect::<Vec<_>>(),
        b.nodes().collect::<Vec<_>>(),
        "nodes"
    );
    assert_eq!(
        a.apps().collect::<Vec<_>>(),
        b.apps().collect::<Vec<_>>(),
        "apps"
    );
    assert_eq!(
        a.scheduler().apps().collect::<Vec<_>>(),
        b.scheduler().apps().collect::<Vec<_>>(),
        "placements"
    );
    assert_eq!(
        a.scheduler().short_apps().collect::<Vec<_>>(),
        b.scheduler().short_apps().collect::<Vec<_>>(),
        "short apps"
    );
    for node in a.nodes() {
        assert_eq!(
            a.node_benchmark(&node.id),
            b.node_benchmark(&node.id),
            "benchmark of {}",
            node.id
        );
        assert_eq!(
            a.node_resources(&node.id),
            b.node_resources(&node.id),
            "resources of {}",
            node.id
        );
        assert_eq!(
            a.scheduler().node_instances(&node.id),
            b.scheduler().node_instances(&node.id),
            "instances on {}",
            node.id
        );
    }
    assert_eq!(
        a.proposals().collect::<Vec<_>>(),
        b.proposals().collect::<Vec<_>>(),
        "proposals"
    );
    assert_eq!(
        a.blocked_images().collect::<Vec<_>>(),
        b.blocked_images().collect::<Vec<_>>(),
        "blocked images"
    );
    assert_eq!(
        a.blocked_apps().collect::<Vec<_>>(),
        b.blocked_apps().collect::<Vec<_>>(),
        "blocked apps"
    );
    assert_eq!(
        a.total_voting_power(),
        b.total_voting_power(),
        "total voting power"
    );
    assert_eq!(
        a.open_work_windows().collect::<Vec<_>>(),
        b.open_work_windows().collect::<Vec<_>>(),
        "open work windows"
    );
    for epoch in a.epoch().saturating_sub(1)..=a.epoch() {
        assert_eq!(
            a.work_targets(epoch),
            b.work_targets(epoch),
            "work targets of epoch {epoch}"
        );
        for node in a.nodes() {
            assert_eq!(
                a.node_work(&node.id, epoch),
                b.node_work(&node.id, epoch),
                "work of {} in epoch {epoch}",
                node.id
            );
            assert_eq!(
                a.targets_in(epoch, &node.id),
                b.targets_in(epoch, &node.id),
                "targets of {} in epoch {epoch}",
                node.id
            );
        }
    }
    for node in a.nodes() {
        assert_eq!(
            a.node_down_windows(&node.id),
            b.node_down_windows(&node.id),
            "down windows of {}",
            node.id
        );
    }
}

/// Applies a block's rows to a store map.
pub(crate) fn store_rows(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, changes: &flux_ledger::Changes) {
    for (key, value) in &changes.rows {
        match value {
            Some(value) => store.insert(key.clone(), value.clone()),
            None => store.remove(key),
        };
    }
}

impl Chain {
    /// A chain at height 0.
    pub(crate) fn new(genesis: Genesis) -> Chain {
        let (state, changes) = State::from_genesis(&genesis).expect("a valid genesis");
        let mut store = BTreeMap::new();
        store_rows(&mut store, &changes);
        let follower = State::restore(store.clone(), Hash::ZERO).expect("genesis rows restore");
        assert_same_state(&state, &follower);
        assert_eq!(state.sum_of_accounts(), state.total_supply());
        Chain {
            clock_ms: genesis.genesis_time_ms,
            state,
            follower,
            store,
            pending: Vec::new(),
            blocks: Vec::new(),
            receipts: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The account of a label.
    pub(crate) fn account(&self, label: &str) -> Account {
        self.state.account(&addr(label))
    }

    /// The liquid balance of a label.
    pub(crate) fn balance(&self, label: &str) -> Amount {
        self.account(label).balance
    }

    /// The params in force.
    pub(crate) fn params(&self) -> &Params {
        self.state.params()
    }

    /// The context of the next block.
    pub(crate) fn context(&self) -> BlockContext {
        BlockContext {
            timestamp_ms: self.clock_ms + self.params().block_interval_ms,
            proposer: key(VALIDATOR).public_key(),
        }
    }

    /// The last receipt.
    pub(crate) fn last_receipt(&self) -> &Receipt {
        self.receipts.last().expect("a receipt")
    }

    /// A proposal by id.
    pub(crate) fn proposal(&self, id: u64) -> &Proposal {
        self.state.proposal(id).expect("the proposal exists")
    }

    /// How many stored rows start with `prefix`.
    pub(crate) fn rows_with_prefix(&self, prefix: u8) -> usize {
        self.store
            .keys()
            .filter(|k| k.first() == Some(&prefix))
            .count()
    }

    /// Builds blocks, `step_ms` apart on top of the block interval, until
    /// proposal `id` is no longer open.
    pub(crate) fn close_vote(&mut self, id: u64, step_ms: u64) {
        while self.proposal(id).status == ProposalStatus::Open {
            self.run_steps(vec![advance(step_ms), block()]);
        }
    }

    /// Builds empty blocks until the block at `height` is the last one.
    pub(crate) fn run_to_height(&mut self, height: u64) {
        while self.state.height() < height {
            self.run_steps(vec![block()]);
        }
    }

    /// The height at which a passed proposal takes effect.
    pub(crate) fn activation_height(&self, id: u64) -> u64 {
        match self.proposal(id).activation {
            Some(Activation::Pending { height } | Activation::Applied { height }) => height,
            ref other => panic!("proposal {id} has no activation height: {other:?}"),
        }
    }

    /// Signs a step's transaction as the step says.
    fn sign(&self, step: &TxStep) -> SignedTransaction {
        let signer = key(step.signer);
        let sender = signer.address();
        let nonce = step.nonce.unwrap_or_else(|| {
            let queued = self
                .pending
                .iter()
                .filter(|t| t.tx.sender() == sender)
                .count();
            self.state.account(&sender).nonce + queued as u64
        });
        let make = |fee: Amount| {
            let tx = Transaction {
                chain_id: step.chain_id.clone().unwrap_or_else(|| CHAIN_ID.into()),
                signer: signer.public_key(),
                nonce,
                fee,
                body: step.body.clone(),
            };
            let signature = key(step.signed_by.unwrap_or(step.signer)).sign(&tx.signing_bytes());
            SignedTransaction { tx, signature }
        };
        match step.fee {
            Some(fee) => make(fee),
            None => {
                let signed = make(self.params().tx_fee_min);
                let min = min_fee(self.params(), &signed);
                if min == signed.tx.fee {
                    signed
                } else {
                    make(min)
                }
            }
        }
    }

    /// Runs more steps.
    pub(crate) fn run_steps(&mut self, steps: Vec<Step>) {
        for (index, step) in steps.into_iter().enumerate() {
            self.run(index, step);
        }
    }

    fn run(&mut self, index: usize, step: Step) {
        match step {
            Step::Tx(step) => self.run_tx(index, &step),
            Step::Advance(ms) => self.clock_ms += ms,
            Step::Block => self.run_block(index),
            Step::Assert(assertion) => assertion(self),
        }
    }

    fn run_tx(&mut self, index: usize, step: &TxStep) {
        let what = format!("step {index} ({} by {})", step.body.kind(), step.signer);
        let signed = self.sign(step);
        let ctx = self.context();
        let mut candidates = self.pending.clone();
        candidates.push(signed.clone());
        let with = build_block(&self.state, &ctx, candidates);
        let without = build_block(&self.state, &ctx, self.pending.clone());
        // Admission judges against the last block's state and time: it can
        // only agree with inclusion when nothing is queued and time makes no
        // difference (app credit depends on it, and apps expire at the start
        // of the next block).
        // Votes close, and passed proposals take effect, at the start of a block.
        let governance_due = self.state.proposals().any(|p| {
            (p.status == ProposalStatus::Open && p.voting_ends_ms <= ctx.timestamp_ms)
                || matches!(p.activation, Some(Activation::Pending { height }) if height <= self.state.height() + 1)
        });
        // A benchmark's spacing is counted in blocks, and admission judges
        // against the last block's height; a work report's windows are
        // judged against the block's time.
        let time_sensitive = matches!(
            step.body,
            TxBody::AppUpdate { .. } | TxBody::NodeBenchmark { .. } | TxBody::WorkReport { .. }
        ) || governance_due
            || self
                .state
                .apps()
                .any(|a| a.expires_at_ms <= ctx.timestamp_ms);
        if self.pending.is_empty() && self.clock_ms == self.state.time_ms() && !time_sensitive {
            self.check_admission(&what, step, &signed);
        }
        match &step.expect {
            Expect::Ok => {
                assert!(
                    with.rejected.is_empty(),
                    "{what}: expected inclusion, got {:?}",
                    with.rejected
                );
                assert_eq!(with.block.txs.len(), self.pending.len() + 1, "{what}");
                self.pending.push(signed);
            }
            Expect::Err { code, message } => {
                let [(hash, error)] = with.rejected.as_slice() else {
                    panic!(
                        "{what}: expected one rejection '{code}', got {:?}",
                        with.rejected
                    );
                };
                assert_eq!(*hash, signed.hash(), "{what}");
                assert_eq!(error.code(), *code, "{what}: {error}");
                if let Some(message) = message {
                    let text = error.to_string();
                    assert!(
                        text.contains(message.as_str()),
                        "{what}: '{text}' does not contain '{message}'"
                    );
                }
                // A refused transaction changes nothing: the block is the one built without it.
                assert_eq!(
                    with.block, without.block,
                    "{what}: the refused transaction changed the block"
                );
                assert_eq!(
                    with.outcome.changes, without.outcome.changes,
                    "{what}: rows"
                );
                assert_same_state(&with.outcome.state, &without.outcome.state);
            }
        }
    }

    /// With nothing queued, mempool admission gives the same verdict as inclusion.
    fn check_admission(&self, what: &str, step: &TxStep, signed: &SignedTransaction) {
        let admitted = check_tx(&self.state, signed);
        let next_nonce = self.state.account(&signed.tx.sender()).nonce;
        match (&step.expect, &admitted) {
            // The mempool holds transactions a little ahead of the next nonce
            // and judges them as if their turn had come.
            (
                Expect::Err {
                    code: "nonce_gap", ..
                },
                _,
            ) if signed.tx.nonce < next_nonce + NONCE_AHEAD_MAX => {}
            (Expect::Ok, Ok(())) => {}
            (Expect::Err { code, .. }, Err(error)) => {
                assert_eq!(error.code(), *code, "{what}: admission says {error}")
            }
            (expect, admitted) => {
                panic!("{what}: admission {admitted:?} disagrees with inclusion {expect:?}")
            }
        }
    }

    fn run_block(&mut self, index: usize) {
        let ctx = self.context();
        let pending = std::mem::take(&mut self.pending);
        let count = pending.len();
        let built = build_block(&self.state, &ctx, pending);
        assert!(
            built.rejected.is_empty(),
            "step {index}: {:?}",
            built.rejected
        );
        assert_eq!(built.block.txs.len(), count);
        let header = &built.block.header;
        assert_eq!(header.height, self.state.height() + 1);
        assert_eq!(header.parent, self.state.last_block_hash());
        assert_eq!(header.timestamp_ms, ctx.timestamp_ms);
        assert_eq!(header.state_root, built.outcome.state.state_root());
        assert_eq!(built.outcome.state.last_block_hash(), built.block.hash());

        let applied = apply_block(&self.follower, &built.block)
            .unwrap_or_else(|e| panic!("step {index}: a built block must be accepted: {e}"));
        assert_same_state(&applied.state, &built.outcome.state);
        assert_eq!(
            applied.receipts, built.outcome.receipts,
            "step {index}: receipts"
        );
        assert_eq!(applied.events, built.outcome.events, "step {index}: events");
        assert_eq!(applied.changes, built.outcome.changes, "step {index}: rows");

        let state = built.outcome.state;
        state
            .scheduler()
            .check()
            .unwrap_or_else(|e| panic!("step {index}: placement rule broken: {e}"));
        assert_eq!(
            state.sum_of_accounts(),
            state.total_supply(),
            "step {index}: supply"
        );
        store_rows(&mut self.store, &built.outcome.changes);
        let restored =
            State::restore(self.store.clone(), built.block.hash()).expect("stored rows restore");
        assert_same_state(&restored, &state);

        self.follower = restored;
        self.state = state;
        self.clock_ms = ctx.timestamp_ms;
        self.receipts.extend(built.outcome.receipts);
        self.events.extend(built.outcome.events);
        self.blocks.push(built.block);
    }
}
