//! Typed errors of the ledger.

use flux_types::governable::ParamError;
use flux_types::{Address, Amount, SpecError, Target, Tier};

/// Why a transaction is refused. Each variant has a stable [`TxError::code`]
/// and a message that says what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signature does not match the signer.
    #[error(
        "the signature is invalid for signer {signer}; sign the transaction with the signer's key"
    )]
    InvalidSignature {
        /// The claimed signer's address.
        signer: Address,
    },
    /// Signed for another network.
    #[error("the transaction is for chain '{got}' but this is chain '{expected}'")]
    WrongChain {
        /// This network's id.
        expected: String,
        /// The transaction's chain id.
        got: String,
    },
    /// Nonce already used.
    #[error("nonce {got} was already used by {account}; the next nonce is {expected}")]
    NonceUsed {
        /// The signer.
        account: Address,
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Nonce in the future (a gap).
    #[error(
        "nonce {got} is ahead of {account}'s next nonce {expected}; send the missing transactions first"
    )]
    NonceGap {
        /// The signer.
        account: Address,
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Fee below the minimum.
    #[error("the fee is {got} FLUX, the minimum for this transaction is {min} FLUX")]
    FeeTooLow {
        /// Required fee.
        min: Amount,
        /// Offered fee.
        got: Amount,
    },
    /// Not enough liquid balance.
    #[error("insufficient funds: {account} has {available} FLUX available but needs {needed} FLUX")]
    InsufficientFunds {
        /// The account.
        account: Address,
        /// Liquid balance.
        available: Amount,
        /// Required amount (including the fee).
        needed: Amount,
    },
    /// Transfer of zero.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// Sending to a module account that only the ledger may move.
    #[error("{0} is a module account; send to a personal address")]
    ModuleAccount(Address),
    /// The app specification is invalid.
    #[error("invalid app specification: {0}")]
    InvalidSpec(#[from] SpecError),
    /// The spec's owner is not the signer.
    #[error(
        "the spec names owner {owner} but the transaction is signed by {signer}; sign with the owner's key or change the owner"
    )]
    OwnerMismatch {
        /// Owner in the spec.
        owner: Address,
        /// Signer.
        signer: Address,
    },
    /// Payment below the price.
    #[error("price is {price} FLUX for {}, you paid {paid}", period(.months))]
    Underpaid {
        /// The price.
        price: Amount,
        /// The period.
        months: u32,
        /// The offered maximum payment.
        paid: Amount,
    },
    /// Period outside the allowed range.
    #[error("the period must be between {min} and {max} months, got {got}")]
    MonthsOutOfRange {
        /// Minimum months.
        min: u32,
        /// Maximum months.
        max: u32,
        /// Requested months.
        got: u32,
    },
    /// An app with this name exists.
    #[error(
        "an app named '{0}' already exists; choose another name or update it with `flux app update`"
    )]
    AppExists(String),
    /// No app with this name.
    #[error("no app named '{0}'")]
    AppNotFound(String),
    /// The signer does not own the app.
    #[error("app '{app}' is owned by {owner}; only its owner can change it")]
    NotAppOwner {
        /// The app.
        app: String,
        /// Its owner.
        owner: Address,
    },
    /// A node with this key is registered.
    #[error("node {0} is already registered")]
    NodeExists(Address),
    /// No node with this id.
    #[error("no node with id {0}")]
    NodeNotFound(Address),
    /// The signer does not own the node.
    #[error("node {node} is owned by {owner}; only its owner can deregister it")]
    NotNodeOwner {
        /// The node.
        node: Address,
        /// Its owner.
        owner: Address,
    },
    /// Invalid endpoint or region.
    #[error("{0}")]
    InvalidNodeInfo(String),
    /// Collateral cannot be locked.
    #[error(
        "registering a {tier} node locks {collateral} FLUX; {account} has {available} FLUX available"
    )]
    InsufficientCollateral {
        /// The tier.
        tier: Tier,
        /// Its collateral.
        collateral: Amount,
        /// The signer.
        account: Address,
        /// Liquid balance.
        available: Amount,
    },
    /// A component's image is on the network's blocklist.
    #[error(
        "image {image} is on the network's blocklist (entry '{entry}'); use another image, or propose to unblock it with `flux gov propose`"
    )]
    ImageBlocked {
        /// The component's image.
        image: String,
        /// The blocklist entry that matches it.
        entry: String,
    },
    /// A proposal is malformed (empty title, bad image entry, ...).
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// A param change names an unknown key, a bad value or an inconsistent set.
    #[error("{0}")]
    Param(#[from] ParamError),
    /// The deposit is below the network's minimum.
    #[error(
        "a proposal deposits at least {min} FLUX (gov.proposal_deposit), this one offers {got} FLUX"
    )]
    DepositTooLow {
        /// The minimum.
        min: Amount,
        /// The offered deposit.
        got: Amount,
    },
    /// As many proposals are open as the network allows.
    #[error(
        "{max} proposals are open for votes, the most allowed (gov.open_proposals_max); propose again when one closes"
    )]
    TooManyOpenProposals {
        /// The limit.
        max: u32,
    },
    /// The treasury cannot pay the amount.
    #[error("the treasury holds {available} FLUX, less than the {requested} FLUX requested")]
    TreasuryInsufficient {
        /// The treasury's balance.
        available: Amount,
        /// The amount asked for.
        requested: Amount,
    },
    /// Blocking an image that is already blocked.
    #[error("image {0} is already on the blocklist")]
    ImageAlreadyBlocked(String),
    /// Unblocking an image that is not blocked.
    #[error("image {0} is not on the blocklist; `flux gov blocklist` shows the entries")]
    ImageNotBlocked(String),
    /// No proposal with this id.
    #[error("no proposal with id {0}; `flux gov list` shows the proposals")]
    ProposalNotFound(u64),
    /// The proposal no longer takes votes.
    #[error("voting on proposal {proposal} is closed; it ended at chain time {ended_ms} ms")]
    VotingClosed {
        /// The proposal.
        proposal: u64,
        /// When voting ended, chain time ms.
        ended_ms: u64,
    },
    /// The voter had no power when the proposal started.
    #[error(
        "{account} had no voting power when proposal {proposal} started (no balance and no locked collateral then), so it cannot vote on it"
    )]
    NoVotingPower {
        /// The voter.
        account: Address,
        /// The proposal.
        proposal: u64,
    },
    /// A benchmark's signer is not a registered node.
    #[error(
        "{signer} is not a registered node; a benchmark is signed by the node's own key, once the node is registered (`flux node register --node-key`)"
    )]
    BenchmarkSignerNotNode {
        /// The signer's address.
        signer: Address,
    },
    /// A benchmark came too soon after the node's last one.
    #[error(
        "node {node} sent a benchmark at height {last_height}; its next one is accepted from height {next_height}"
    )]
    BenchmarkTooSoon {
        /// The node.
        node: Address,
        /// Height of its last benchmark.
        last_height: u64,
        /// First height at which another is accepted.
        next_height: u64,
    },
    /// A work report's signer is not a registered node.
    #[error(
        "{signer} is not a registered node; a work report is signed by the verifying node's own key"
    )]
    WorkSignerNotNode {
        /// The signer's address.
        signer: Address,
    },
    /// A work report names a target the signer does not verify in that epoch.
    #[error(
        "node {node} is not a verifier of {target} in epoch {epoch}; report only the targets the ledger assigns (`State::targets_of`)"
    )]
    WorkNotVerifier {
        /// The signer.
        node: Address,
        /// The target.
        target: Target,
        /// The epoch named by the report.
        epoch: u64,
    },
    /// A node reports on its own node or instances.
    #[error("{target} is the signer's own; a node never verifies itself")]
    WorkSelfReport {
        /// The target.
        target: Target,
    },
    /// A work report covers a window that has not started.
    #[error("window {window} has not started; the current window is {current}")]
    WorkWindowInFuture {
        /// The latest window reported.
        window: u64,
        /// The window of the block's time.
        current: u64,
    },
    /// A work report came after its window was settled.
    #[error(
        "window {window} is settled; windows from {oldest} on may still be reported (work.report_late_windows)"
    )]
    WorkReportLate {
        /// The first window reported.
        window: u64,
        /// The oldest window still open for reports.
        oldest: u64,
    },
    /// A reported window is not a window of the named epoch.
    #[error(
        "window {window} is not open for reports of epoch {epoch}; split reports at epoch boundaries and report only windows a block fell in"
    )]
    WorkWindowNotInEpoch {
        /// The window.
        window: u64,
        /// The epoch named by the report.
        epoch: u64,
    },
    /// The verifier already reported this target in this window.
    #[error("{target} was already reported for window {window} by this verifier")]
    WorkDuplicate {
        /// The target.
        target: Target,
        /// The window.
        window: u64,
    },
    /// A work report is malformed (no windows, a bitmap of the wrong size, a target twice).
    #[error("malformed work report: {0}")]
    WorkReportMalformed(String),
    /// A work report is larger than the params allow.
    #[error("a work report holds at most {max} {what}, this one {got}; split it")]
    WorkReportTooLarge {
        /// `windows` or `targets`.
        what: &'static str,
        /// The limit.
        max: u64,
        /// The count.
        got: u64,
    },
    /// An amount overflowed; no real transaction gets here.
    #[error("amount overflow")]
    Overflow,
}

/// "1 month", "3 months".
fn period(months: &u32) -> String {
    if *months == 1 {
        "1 month".to_string()
    } else {
        format!("{months} months")
    }
}

impl TxError {
    /// A stable machine-readable code, used as the API's problem `code`.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::InvalidSignature { .. } => "invalid_signature",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::NonceUsed { .. } => "nonce_used",
            TxError::NonceGap { .. } => "nonce_gap",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::ZeroAmount => "zero_amount",
            TxError::ModuleAccount(_) => "module_account",
            TxError::InvalidSpec(_) => "invalid_spec",
            TxError::OwnerMismatch { .. } => "owner_mismatch",
            TxError::Underpaid { .. } => "underpaid",
            TxError::MonthsOutOfRange { .. } => "months_out_of_range",
            TxError::AppExists(_) => "app_exists",
            TxError::AppNotFound(_) => "app_not_found",
            TxError::NotAppOwner { .. } => "not_app_owner",
            TxError::NodeExists(_) => "node_exists",
            TxError::NodeNotFound(_) => "node_not_found",
            TxError::NotNodeOwner { .. } => "not_node_owner",
            TxError::InvalidNodeInfo(_) => "invalid_node_info",
            TxError::InsufficientCollateral { .. } => "insufficient_collateral",
            TxError::ImageBlocked { .. } => "image_blocked",
            TxError::InvalidProposal(_) => "invalid_proposal",
            TxError::Param(error) => error.code(),
            TxError::DepositTooLow { .. } => "deposit_too_low",
            TxError::TooManyOpenProposals { .. } => "too_many_open_proposals",
            TxError::TreasuryInsufficient { .. } => "treasury_insufficient",
            TxError::ImageAlreadyBlocked(_) => "image_already_blocked",
            TxError::ImageNotBlocked(_) => "image_not_blocked",
            TxError::ProposalNotFound(_) => "proposal_not_found",
            TxError::VotingClosed { .. } => "voting_closed",
            TxError::NoVotingPower { .. } => "no_voting_power",
            TxError::BenchmarkSignerNotNode { .. } => "benchmark_signer_not_node",
            TxError::BenchmarkTooSoon { .. } => "benchmark_too_soon",
            TxError::WorkSignerNotNode { .. } => "work_signer_not_node",
            TxError::WorkNotVerifier { .. } => "work_not_verifier",
            TxError::WorkSelfReport { .. } => "work_self_report",
            TxError::WorkWindowInFuture { .. } => "work_window_in_future",
            TxError::WorkReportLate { .. } => "work_report_late",
            TxError::WorkWindowNotInEpoch { .. } => "work_window_not_in_epoch",
            TxError::WorkDuplicate { .. } => "work_duplicate",
            TxError::WorkReportMalformed(_) => "work_report_malformed",
            TxError::WorkReportTooLarge { .. } => "work_report_too_large",
            TxError::Overflow => "overflow",
        }
    }
}

/// Why a block is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Not the next height.
    #[error("block height {got} does not follow {current}")]
    WrongHeight {
        /// Current state height.
        current: u64,
        /// Block height.
        got: u64,
    },
    /// Parent is not the last block.
    #[error("block parent does not match the last block")]
    WrongParent,
    /// Time did not advance.
    #[error("block time {got} ms is not after the previous block's {previous} ms")]
    TimeNotIncreasing {
        /// Previous block time.
        previous: u64,
        /// This block's time.
        got: u64,
    },
    /// Too many transactions.
    #[error("block has {got} transactions, at most {max} allowed")]
    TooManyTxs {
        /// Limit.
        max: u32,
        /// Count.
        got: usize,
    },
    /// The transaction root does not match the transactions.
    #[error("block tx_root does not match its transactions")]
    TxRootMismatch,
    /// A transaction is invalid.
    #[error("transaction {index} is invalid: {error}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The state root after applying differs from the header's.
    #[error("state root mismatch: header says {expected}, applying gives {computed}")]
    StateRootMismatch {
        /// From the header.
        expected: flux_types::Hash,
        /// Computed.
        computed: flux_types::Hash,
    },
}

/// Why a genesis cannot start a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis: {0}")]
pub struct GenesisError(pub String);
