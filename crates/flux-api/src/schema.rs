//! The OpenAPI document.
//!
//! The ledger and chain types are plain serde types that know nothing of
//! OpenAPI, so their JSON shape is described here by mirror types that are
//! never built, only read by the `ToSchema` derive. The integration tests
//! compare the properties of each mirror with the keys of a real response,
//! so a field added to a ledger type without its mirror fails the build's
//! tests instead of leaving the document wrong.
#![allow(dead_code)]

use utoipa::{OpenApi, ToSchema};

use crate::problem::Problem;
use crate::routes;

/// The OpenAPI document of the Flux API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flux API",
        description = "The HTTP API of a Flux node. Reads return the latest finalized state; writes are transactions signed by the client and submitted in their binary form. Every error is `application/problem+json` with a stable `code`."
    ),
    paths(
        routes::status,
        routes::block,
        routes::submit,
        routes::submit_batch,
        routes::transaction,
        routes::account,
        routes::nodes,
        routes::node,
        routes::committee,
        routes::supply,
        routes::apps,
        routes::app,
        routes::quote,
        routes::params,
        routes::proposals,
        routes::proposal,
        routes::proposal_votes,
        routes::gov_params,
        routes::blocklist,
        routes::openapi,
        routes::metrics,
        routes::dashboard,
    ),
    components(schemas(Problem)),
    tags(
        (name = "chain", description = "Chain status, blocks and parameters"),
        (name = "transactions", description = "Submitting signed transactions and following them"),
        (name = "accounts", description = "Balances and nonces"),
        (name = "nodes", description = "Registered nodes"),
        (name = "apps", description = "Registered apps and prices"),
        (name = "governance", description = "Proposals, votes, governable params and the image blocklist"),
        (name = "meta", description = "This document, metrics and the dashboard"),
    )
)]
pub(crate) struct ApiDoc;

/// The document as JSON bytes, built once at start-up.
pub(crate) fn openapi_json() -> Vec<u8> {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
        .into_bytes()
}

/// A summary of the chain as this node sees it.
#[derive(ToSchema)]
#[schema(as = ChainStatus)]
pub(crate) struct ChainStatusSchema {
    /// Network id.
    chain_id: String,
    /// Hash of the genesis, hexadecimal.
    genesis_hash: String,
    /// Last finalized height.
    height: u64,
    /// Its chain time, ms since the Unix epoch.
    time_ms: u64,
    /// Its hash, hexadecimal.
    last_block_hash: String,
    /// State root after it, hexadecimal.
    state_root: String,
    /// Transactions waiting in the mempool.
    mempool_txs: u64,
    /// This node's id, a `flux1...` address.
    node_id: String,
    /// Peers heard from in the last few seconds (0 for a single validator).
    peers: u64,
}

/// A block header.
#[derive(ToSchema)]
#[schema(as = BlockHeader)]
pub(crate) struct BlockHeaderSchema {
    /// Height; the first block is 1.
    height: u64,
    /// Hash of the previous block, hexadecimal (zero for the first block).
    parent: String,
    /// Chain time, ms since the Unix epoch.
    timestamp_ms: u64,
    /// The proposer's public key, hexadecimal.
    proposer: String,
    /// Commitment to the transactions, hexadecimal.
    tx_root: String,
    /// State root after the block, hexadecimal.
    state_root: String,
}

/// A transaction with its signature.
#[derive(ToSchema)]
#[schema(as = SignedTransaction)]
pub(crate) struct SignedTransactionSchema {
    /// The transaction.
    tx: TransactionSchema,
    /// ed25519 signature over the transaction's signing bytes, hexadecimal.
    signature: String,
}

/// An unsigned transaction.
#[derive(ToSchema)]
#[schema(as = Transaction)]
pub(crate) struct TransactionSchema {
    /// The network it is for.
    chain_id: String,
    /// The signer's public key, hexadecimal.
    signer: String,
    /// The signer's account nonce.
    nonce: u64,
    /// Fee in FLUX, a decimal string with 8 places.
    fee: String,
    /// What it does.
    body: TxBodySchema,
}

/// What a transaction does, tagged by `type`.
#[derive(ToSchema)]
#[schema(as = TxBody)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum TxBodySchema {
    /// Move FLUX to another account.
    Transfer {
        /// Recipient address.
        to: String,
        /// Amount in FLUX.
        amount: String,
    },
    /// Register a node, locking its tier's collateral.
    NodeRegister {
        /// The node's public key, hexadecimal.
        node_key: String,
        /// The tier.
        tier: TierSchema,
        /// `HOST:PORT` of the node's API.
        endpoint: String,
        /// `CONTINENT_COUNTRY`.
        region: String,
    },
    /// Deregister a node, unlocking its collateral.
    NodeDeregister {
        /// The node's id.
        node: String,
    },
    /// Register an app and pay for a period.
    AppRegister {
        /// The specification.
        spec: AppSpecSchema,
        /// Months paid for.
        months: u32,
        /// The most the signer agrees to pay, in FLUX.
        max_payment: String,
    },
    /// Replace an app's specification and period.
    AppUpdate {
        /// The new specification.
        spec: AppSpecSchema,
        /// Months paid for from now.
        months: u32,
        /// The most the signer agrees to pay after the credit, in FLUX.
        max_payment: String,
    },
    /// Remove an app.
    AppRemove {
        /// The app's name.
        name: String,
    },
    /// Put a proposal to the vote, holding a deposit.
    GovPropose {
        /// One line saying what it does.
        title: String,
        /// Why.
        description: String,
        /// What happens when it passes.
        action: ProposalActionSchema,
        /// Deposit in FLUX, at least `gov.proposal_deposit`.
        deposit: String,
    },
    /// Vote on an open proposal, or change the signer's vote.
    GovVote {
        /// The proposal's id.
        proposal: u64,
        /// The choice.
        choice: VoteChoiceSchema,
    },
    /// A node's benchmark of its own hardware, signed by its node key.
    NodeBenchmark {
        /// What the node measured.
        report: BenchmarkReportSchema,
    },
    /// A verifier's probe results, signed by its node key, no fee.
    WorkReport {
        /// The epoch whose verifier assignment the report follows.
        epoch: u64,
        /// The first probe window reported.
        first_window: u64,
        /// How many consecutive windows are reported.
        windows: u32,
        /// One bitmap per target.
        results: Vec<TargetResultsSchema>,
    },
}

/// What a verifier probes, tagged by `kind`.
#[derive(ToSchema)]
#[schema(as = Target)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum TargetSchema {
    /// A node's own health.
    Node {
        /// The node's id.
        node: String,
    },
    /// One instance of an app.
    Instance {
        /// The hosting node's id.
        host: String,
        /// The app's name.
        app: String,
        /// The instance's index.
        instance: u32,
    },
}

/// One target's results: bit `i % 8` of byte `i / 8` is window `first_window + i`, 1 = up.
#[derive(ToSchema)]
#[schema(as = TargetResults)]
pub(crate) struct TargetResultsSchema {
    /// What was probed.
    target: TargetSchema,
    /// The bitmap's bytes.
    up: Vec<u8>,
}

/// A vote.
#[derive(ToSchema)]
#[schema(as = VoteChoice)]
#[serde(rename_all = "lowercase")]
pub(crate) enum VoteChoiceSchema {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counts toward quorum only.
    Abstain,
}

/// One param set to a new value.
#[derive(ToSchema)]
#[schema(as = ParamChange)]
pub(crate) struct ParamChangeSchema {
    /// The key, as `/api/v1/gov/params` lists it.
    key: String,
    /// The new value: FLUX amounts as decimals, others as whole numbers.
    value: String,
}

/// What a proposal does when it passes, tagged by `type`.
#[derive(ToSchema)]
#[schema(as = ProposalAction)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ProposalActionSchema {
    /// Set params, all together or none.
    ParamChange {
        /// The changes.
        changes: Vec<ParamChangeSchema>,
    },
    /// Add images to the blocklist, or remove them.
    ImagePolicy {
        /// Entries to add: `repository`, `repository:tag` or `repository@sha256:digest`.
        block: Vec<String>,
        /// Entries to remove.
        unblock: Vec<String>,
    },
    /// Pay from the treasury.
    TreasurySpend {
        /// Recipient address.
        to: String,
        /// Amount in FLUX.
        amount: String,
    },
    /// Records the outcome only.
    Text,
}

/// Votes counted, as voting power.
#[derive(ToSchema)]
#[schema(as = Tally)]
pub(crate) struct TallySchema {
    /// Power voting yes, in FLUX.
    yes: String,
    /// Power voting no, in FLUX.
    no: String,
    /// Power abstaining, in FLUX.
    abstain: String,
    /// Accounts that voted.
    voters: u32,
}

/// What became of a passed proposal's action, tagged by `result`.
#[derive(ToSchema)]
#[schema(as = Activation)]
#[serde(tag = "result", rename_all = "snake_case")]
pub(crate) enum ActivationSchema {
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
    /// Could not be applied; nothing changed.
    Failed {
        /// The height.
        height: u64,
        /// Why.
        reason: String,
    },
}

/// A proposal with its live counts.
#[derive(ToSchema)]
#[schema(as = Proposal)]
pub(crate) struct ProposalSchema {
    /// Id, counting from 1.
    id: u64,
    /// Who proposed and deposited, a `flux1...` address.
    proposer: String,
    /// One line saying what it does.
    title: String,
    /// Why.
    description: String,
    /// What happens when it passes.
    action: ProposalActionSchema,
    /// Deposit in FLUX.
    deposit: String,
    /// Height of the block that included it; voting power is taken there.
    submitted_height: u64,
    /// Chain time at which voting opened, ms.
    voting_starts_ms: u64,
    /// Chain time at which voting ends, ms.
    voting_ends_ms: u64,
    /// Voting power of all accounts at the start, in FLUX.
    total_power: String,
    /// Quorum, percent of `total_power`.
    quorum_percent: u32,
    /// Weight of locked collateral, thousandths.
    collateral_weight_milli: u64,
    /// Weight of liquid balance, thousandths.
    balance_weight_milli: u64,
    /// Votes so far.
    tally: TallySchema,
    /// `open`, `passed` or `rejected`.
    status: String,
    /// `quorum_missed` or `not_enough_yes` when rejected, else null.
    rejection: Option<String>,
    /// `held`, `returned` or `burned`.
    deposit_fate: String,
    /// Height of the block that closed the vote.
    closed_height: Option<u64>,
    /// For a passed proposal: when its action takes effect and how it went.
    activation: Option<ActivationSchema>,
    /// Power that voted at all, in FLUX.
    turnout: String,
    /// The least turnout that reaches quorum, in FLUX.
    quorum_power: String,
    /// Whether the votes so far reach quorum.
    quorum_reached: bool,
    /// Chain time left to vote, ms (0 once voting ended).
    time_left_ms: u64,
}

/// A node tier.
#[derive(ToSchema)]
#[schema(as = Tier)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TierSchema {
    /// The smallest tier.
    Cumulus,
    /// The middle tier.
    Nimbus,
    /// The largest tier.
    Stratus,
}

/// Where a transaction is, tagged by `status`.
#[derive(ToSchema)]
#[schema(as = TxStatus)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum TxStatusSchema {
    /// In the mempool.
    Pending {
        /// Transaction id.
        hash: String,
    },
    /// In a finalized block.
    Committed {
        /// Transaction id.
        hash: String,
        /// What it did.
        receipt: ReceiptSchema,
    },
    /// Dropped when its block was built: it no longer applied.
    Rejected {
        /// Transaction id.
        hash: String,
        /// Stable code of the reason.
        code: String,
        /// The reason.
        message: String,
    },
    /// Never seen, or dropped long ago.
    Unknown {
        /// Transaction id.
        hash: String,
    },
}

/// The result of an included transaction.
#[derive(ToSchema)]
#[schema(as = Receipt)]
pub(crate) struct ReceiptSchema {
    /// Transaction id.
    tx_hash: String,
    /// Height of its block.
    height: u64,
    /// Position in the block.
    index: u32,
    /// Fee paid, in FLUX.
    fee: String,
    /// What happened.
    detail: ReceiptDetailSchema,
}

/// What a transaction did, tagged by `type`.
#[derive(ToSchema)]
#[schema(as = ReceiptDetail)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ReceiptDetailSchema {
    /// Coins moved.
    Transfer {
        /// Recipient.
        to: String,
        /// Amount in FLUX.
        amount: String,
    },
    /// A node registered.
    NodeRegistered {
        /// Node id.
        node: String,
        /// Collateral locked, in FLUX.
        collateral: String,
    },
    /// A node left.
    NodeDeregistered {
        /// Node id.
        node: String,
        /// Collateral unlocked, in FLUX.
        unlocked: String,
    },
    /// An app registered.
    AppRegistered {
        /// Name.
        app: String,
        /// Charged, in FLUX.
        price: String,
        /// Expiry, chain time ms.
        expires_at_ms: u64,
    },
    /// An app updated.
    AppUpdated {
        /// Name.
        app: String,
        /// Price of the new period, in FLUX.
        price: String,
        /// Credit for the unused part of the old period, in FLUX.
        credit: String,
        /// Charged, in FLUX.
        charged: String,
        /// New expiry, chain time ms.
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
        /// Deposit held, in FLUX.
        deposit: String,
        /// Chain time at which voting ends, ms.
        voting_ends_ms: u64,
    },
    /// A vote was cast or changed.
    Voted {
        /// The proposal.
        proposal: u64,
        /// The choice.
        choice: VoteChoiceSchema,
        /// The voter's power at the proposal's start, in FLUX.
        power: String,
        /// The earlier choice when the vote changed, else null.
        changed_from: Option<VoteChoiceSchema>,
    },
    /// A node's benchmark was recorded.
    NodeBenchmarked {
        /// Node id.
        node: String,
        /// The node's status after it: confirmed when every figure met its tier's threshold.
        status: NodeStatusSchema,
        /// The figures below their thresholds, each against its threshold.
        shortfalls: Vec<FigureCheckSchema>,
    },
    /// A verifier's work report was recorded.
    WorkReported {
        /// The verifying node.
        node: String,
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

/// Where a node is in its life.
#[derive(ToSchema)]
#[schema(as = NodeStatus)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NodeStatusSchema {
    /// Registered, waiting for a passing benchmark.
    Pending,
    /// Benchmark passed for its tier.
    Confirmed,
    /// Its verifiers saw it down for `work.failover_down_windows` windows in a row:
    /// it hosts and verifies nothing until they see it up again.
    Unreachable,
}

/// A registered node.
#[derive(ToSchema)]
#[schema(as = NodeRecord)]
pub(crate) struct NodeRecordSchema {
    /// The node's id: the address of its node key.
    id: String,
    /// The account that locked the collateral.
    owner: String,
    /// The node's public key, hexadecimal.
    node_key: String,
    /// Tier.
    tier: TierSchema,
    /// API endpoint `HOST:PORT`.
    endpoint: String,
    /// `CONTINENT_COUNTRY`.
    region: String,
    /// Collateral locked, in FLUX.
    collateral: String,
    /// Status.
    status: NodeStatusSchema,
    /// Height of registration.
    registered_height: u64,
}

/// What a node measured of its own hardware.
#[derive(ToSchema)]
#[schema(as = BenchmarkReport)]
pub(crate) struct BenchmarkReportSchema {
    /// Logical CPU cores.
    cores: u32,
    /// Memory, MB.
    ram_mb: u64,
    /// Size of the disk holding the node's data, GB.
    disk_gb: u64,
    /// Events per second of the fixed prime workload, all cores together.
    cpu_score: u64,
    /// Sequential write speed with fsync, MB/s.
    disk_write_mb_per_s: u64,
}

/// One figure of a benchmark.
#[derive(ToSchema)]
#[schema(as = Figure)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FigureSchema {
    /// Logical CPU cores.
    Cores,
    /// Memory, MB.
    RamMb,
    /// Disk, GB.
    DiskGb,
    /// CPU score, events per second.
    CpuScore,
    /// Disk write speed with fsync, MB/s.
    DiskWriteMbPerS,
}

/// One figure against its threshold.
#[derive(ToSchema)]
#[schema(as = FigureCheck)]
pub(crate) struct FigureCheckSchema {
    /// Which figure.
    figure: FigureSchema,
    /// What the node measured.
    measured: u64,
    /// The least its tier requires.
    required: u64,
}

/// A node's last benchmark, as the ledger judged it.
#[derive(ToSchema)]
#[schema(as = BenchmarkRecord)]
pub(crate) struct BenchmarkRecordSchema {
    /// What the node measured.
    report: BenchmarkReportSchema,
    /// The tier it was judged for.
    tier: TierSchema,
    /// Each figure against the tier's threshold at the time.
    checks: Vec<FigureCheckSchema>,
    /// Whether every figure met its threshold.
    passed: bool,
    /// Height of the block that recorded it.
    height: u64,
    /// Chain time of that block, ms.
    time_ms: u64,
}

/// Why a node is pending, tagged by `reason`.
#[derive(ToSchema)]
#[schema(as = PendingReason)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub(crate) enum PendingReasonSchema {
    /// No benchmark yet.
    NoBenchmark,
    /// The last benchmark fell short of the tier's thresholds.
    BelowThresholds {
        /// The figures that fell short, each against its threshold.
        shortfalls: Vec<FigureCheckSchema>,
    },
}

/// An amount of each resource the scheduler counts.
#[derive(ToSchema)]
#[schema(as = Resources)]
pub(crate) struct ResourcesSchema {
    /// CPU, tenths of a core.
    cpu_tenths: u64,
    /// Memory, MB.
    ram_mb: u64,
    /// Disk, GB.
    disk_gb: u64,
}

/// A node's capacity for instances and what its instances use.
#[derive(ToSchema)]
#[schema(as = NodeResources)]
pub(crate) struct NodeResourcesSchema {
    /// What instances may use: the benchmark's figures minus the network's reserve.
    capacity: ResourcesSchema,
    /// What the instances placed on the node use.
    used: ResourcesSchema,
}

/// An instance placed on a node.
#[derive(ToSchema)]
#[schema(as = NodeInstance)]
pub(crate) struct NodeInstanceSchema {
    /// The app's name.
    app: String,
    /// The instance's index within the app.
    instance: u32,
}

/// A node with its benchmark, its capacity and the instances placed on it.
#[derive(ToSchema)]
#[schema(as = NodeDetail)]
pub(crate) struct NodeDetailSchema {
    /// The node.
    #[serde(flatten)]
    record: NodeRecordSchema,
    /// Its last benchmark; null before the first.
    benchmark: Option<BenchmarkRecordSchema>,
    /// Why it is pending; null when it is confirmed.
    pending_reason: Option<PendingReasonSchema>,
    /// Its capacity and use; null while it is not confirmed.
    resources: Option<NodeResourcesSchema>,
    /// The instances placed on it: what it runs.
    instances: Vec<NodeInstanceSchema>,
    /// Its useful work and rewards.
    work: NodeWorkSchema,
}

/// A node's useful work and rewards.
#[derive(ToSchema)]
#[schema(as = NodeWork)]
pub(crate) struct NodeWorkSchema {
    /// The epoch of the last finalized block.
    epoch: u64,
    /// Targets (nodes and instances) it verifies this epoch.
    verifying: u64,
    /// Its work this epoch, so far (windows count once settled).
    this_epoch: EpochWorkSchema,
    /// Its work in the epoch before; null in epoch 0.
    last_epoch: Option<EpochWorkSchema>,
    /// Consecutive windows a majority of its verifiers saw it down.
    down_windows: u64,
    /// Every reward paid for it, in FLUX.
    rewards_total: String,
    /// The last epoch it was paid for; null when never.
    rewards_last_paid_epoch: Option<u64>,
    /// What it was paid for that epoch, in FLUX.
    rewards_last_paid: String,
    /// Whether it holds a seat in the committee of the next block's epoch;
    /// null when this node cannot tell.
    committee_seat: Option<bool>,
}

/// A node's work in one epoch and what it was paid for it.
#[derive(ToSchema)]
#[schema(as = EpochWork)]
pub(crate) struct EpochWorkSchema {
    /// The epoch.
    epoch: u64,
    /// Instance-windows of the instances it hosts that had verifiers.
    assigned_windows: u64,
    /// Of those, the ones a majority of the verifiers saw up.
    verified_windows: u64,
    /// Verified share in thousandths; null when nothing was assigned.
    verified_permille: Option<u64>,
    /// What it was paid for the epoch, in FLUX (zero until the epoch is
    /// paid, once its windows settle, and after `work.history_epochs`).
    reward: String,
}

/// The validators of the epoch of the next block.
#[derive(ToSchema)]
#[schema(as = Committee)]
pub(crate) struct CommitteeSchema {
    /// The epoch.
    epoch: u64,
    /// The validators, in seat order.
    members: Vec<CommitteeMemberSchema>,
}

/// One validator.
#[derive(ToSchema)]
#[schema(as = CommitteeMember)]
pub(crate) struct CommitteeMemberSchema {
    /// Its node key, hexadecimal.
    node_key: String,
    /// The address of its node key (its node id when registered).
    id: String,
    /// Its name when it is a genesis validator.
    name: Option<String>,
    /// Its tier when it is a registered node.
    tier: Option<TierSchema>,
    /// Its API endpoint when it is a registered node.
    endpoint: Option<String>,
}

/// Where one instance of an app runs.
#[derive(ToSchema)]
#[schema(as = InstancePlacement)]
pub(crate) struct InstancePlacementSchema {
    /// The instance's index within the app.
    instance: u32,
    /// The node's id; null while no node has room for the instance.
    node: Option<String>,
    /// The node's API endpoint `HOST:PORT`.
    node_endpoint: Option<String>,
    /// `HOST:PORT` of each port the app publishes, on that node.
    addresses: Vec<String>,
}

/// An app with where its instances run.
#[derive(ToSchema)]
#[schema(as = AppDetail)]
pub(crate) struct AppDetailSchema {
    /// The app.
    #[serde(flatten)]
    record: AppRecordSchema,
    /// Instances the specification asks for.
    wanted: u32,
    /// Instances placed on a node; fewer than `wanted` while the network lacks room.
    placed: u32,
    /// Every instance, placed or not.
    instances: Vec<InstancePlacementSchema>,
    /// How far the rolling update in progress has come; null when none is.
    rollout_progress: Option<RolloutProgressSchema>,
}

/// One container of an app.
#[derive(ToSchema)]
#[schema(as = Component)]
pub(crate) struct ComponentSchema {
    /// Name, unique within the app.
    name: String,
    /// Free text.
    description: String,
    /// Image reference `[registry/]repository:tag`.
    repotag: String,
    /// Ports published on the host.
    ports: Vec<u16>,
    /// Ports inside the container, one per published port.
    container_ports: Vec<u16>,
    /// Domains routed to each published port (empty string for none).
    domains: Vec<String>,
    /// Environment entries `KEY=VALUE`.
    environment: Vec<String>,
    /// Command arguments replacing the image's default command.
    commands: Vec<String>,
    /// Persistent data mount, e.g. `/data` or `r:/data`.
    container_data: String,
    /// CPU in tenths of a core.
    cpu_tenths: u32,
    /// Memory in MB.
    ram_mb: u32,
    /// Disk in GB.
    hdd_gb: u32,
    /// HTTP path probed for health; empty for a TCP connect.
    health_path: String,
}

/// An app specification in its canonical JSON form.
#[derive(ToSchema)]
#[schema(as = AppSpec)]
pub(crate) struct AppSpecSchema {
    /// Unique name of the app.
    name: String,
    /// Free text.
    description: String,
    /// The owning `flux1...` address.
    owner: String,
    /// How many instances run.
    instances: u32,
    /// Contact addresses of the owner.
    contacts: Vec<String>,
    /// Placement rules: `acEU`, `acEU_CZ` allow; `a!cNA_US` deny.
    geolocation: Vec<String>,
    /// Node ids the app is pinned to (empty: any node).
    nodes: Vec<String>,
    /// Whether only nodes with a static IP may host it.
    static_ip: bool,
    /// The containers.
    components: Vec<ComponentSchema>,
}

/// A registered app.
#[derive(ToSchema)]
#[schema(as = AppRecord)]
pub(crate) struct AppRecordSchema {
    /// The specification in force.
    spec: AppSpecSchema,
    /// Height of first registration.
    registered_height: u64,
    /// Height of the last registration or update.
    updated_height: u64,
    /// Chain time at which the current paid period started, ms.
    period_start_ms: u64,
    /// Chain time at which the app expires, ms.
    expires_at_ms: u64,
    /// Charged for the current period, in FLUX.
    paid: String,
    /// Months of the current period.
    months: u32,
    /// The rolling update in progress; null when every instance runs `spec`.
    rollout: Option<RolloutSchema>,
}

/// A rolling update: instance slot `k` runs `previous` until chain time
/// reaches its switch, `started_ms + k × interval_ms` (slots below
/// `switched_before` switch at `started_ms`; the next ones start one
/// interval later), then the app's spec.
#[derive(ToSchema)]
#[schema(as = Rollout)]
pub(crate) struct RolloutSchema {
    /// The specification the slots not switched yet still run.
    previous: AppSpecSchema,
    /// Chain time of the update's block, ms.
    started_ms: u64,
    /// Chain time between two slots' switches, ms.
    interval_ms: u64,
    /// Slots that had left `previous` for an earlier update when this one came.
    switched_before: u32,
}

/// How far a rolling update has come.
#[derive(ToSchema)]
#[schema(as = RolloutProgress)]
pub(crate) struct RolloutProgressSchema {
    /// Instance slots that run the specification in force.
    updated: u32,
    /// Slots the update switches (those both specifications have).
    of: u32,
    /// Chain time at which the next slot switches, ms.
    next_switch_ms: u64,
}

/// A registered app with its current monthly price.
#[derive(ToSchema)]
#[schema(as = AppListItem)]
pub(crate) struct AppListItemSchema {
    /// The app.
    #[serde(flatten)]
    record: AppRecordSchema,
    /// What the app's specification costs per month at today's prices, in FLUX.
    price_per_month: Option<String>,
}

/// A price quote.
#[derive(ToSchema)]
#[schema(as = Quote)]
pub(crate) struct QuoteSchema {
    /// Resources of one instance for one month, in FLUX.
    per_instance_month: String,
    /// Per-app extras per month, in FLUX.
    extras_month: String,
    /// Total per month (at least the minimum), in FLUX.
    per_month: String,
    /// Months.
    months: u32,
    /// Total for the period, in FLUX.
    total: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_builds_and_names_the_mirrored_types() {
        let doc: serde_json::Value = serde_json::from_slice(&openapi_json()).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Problem",
            "ChainStatus",
            "BlockHeader",
            "NodeRecord",
            "NodeDetail",
            "BenchmarkRecord",
            "AppRecord",
            "AppDetail",
            "AppSpec",
            "Quote",
            "TxStatus",
            "Proposal",
            "ProposalAction",
        ] {
            assert!(
                schemas.contains_key(name),
                "schema {name} missing: {:?}",
                schemas.keys()
            );
        }
    }
}
