//! The `/api/v1` handlers and the shapes of their bodies.
//!
//! Handlers read an O(1) snapshot of the finalized state from the node and
//! never hold it across an await, so a slow client never delays block
//! production.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use flux_chain::TxStatus;
use flux_ledger::{
    AppRecord, BenchmarkRecord, NodeRecord, NodeResources, PendingReason, Proposal, ProposalStatus,
    Quote, RolloutProgress, State as LedgerState,
};
use flux_types::codec::decode_bounded;
use flux_types::{Address, Amount, AppSpec, Block, BlockHeader, Hash, Params, SignedTransaction};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::extract::ApiJson;
use crate::problem::Problem;

/// Longest path parameter read; longer text is refused before parsing, so
/// error messages never echo kilobytes back.
const PATH_PARAM_LEN_MAX: usize = 128;
/// Most items in one page of a list.
pub(crate) const LIST_LIMIT_MAX: usize = 1_000;

/// The dashboard page, embedded in the binary.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

type ApiResult<T> = Result<T, Problem>;

/// A block with the hash of each transaction.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockResponse {
    /// The block's hash (of its header).
    #[schema(value_type = String)]
    pub(crate) hash: Hash,
    /// The header.
    #[schema(value_type = crate::schema::BlockHeaderSchema)]
    pub(crate) header: BlockHeader,
    /// The transactions, in order.
    pub(crate) txs: Vec<BlockTx>,
}

/// A transaction of a block.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockTx {
    /// The transaction's id.
    #[schema(value_type = String)]
    pub(crate) hash: Hash,
    /// The signed transaction.
    #[schema(value_type = crate::schema::SignedTransactionSchema)]
    pub(crate) tx: SignedTransaction,
}

/// A transaction to submit.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SubmitRequest {
    /// The borsh encoding of a `SignedTransaction`, in hexadecimal.
    #[schema(example = "0b000000666c75782d6465766e6574...")]
    pub(crate) tx: String,
}

/// A transaction accepted into the mempool.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubmitResponse {
    /// The transaction's id; poll `/api/v1/transactions/{hash}` for its fate.
    #[schema(value_type = String)]
    pub(crate) hash: Hash,
}

/// Most transactions in one `POST /api/v1/transactions/batch`. With transfers
/// (about 320 hexadecimal characters each) the largest batch stays well
/// inside the default body limit.
pub(crate) const BATCH_TXS_MAX: usize = 500;

/// Transactions to submit together.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SubmitBatchRequest {
    /// At most 500 borsh encodings of `SignedTransaction`, each in hexadecimal.
    pub(crate) txs: Vec<String>,
}

/// What became of each transaction of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubmitBatchResponse {
    /// How many entered the mempool.
    pub(crate) accepted: usize,
    /// One result per transaction, in the order of the request.
    pub(crate) results: Vec<BatchItem>,
}

/// The fate of one transaction of a batch, tagged by `status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum BatchItem {
    /// In the mempool; not yet final.
    Accepted {
        /// The transaction's id.
        #[schema(value_type = String)]
        hash: Hash,
    },
    /// Not accepted, for the reason `POST /api/v1/transactions` would give.
    Refused {
        /// The transaction's id.
        #[schema(value_type = String)]
        hash: Hash,
        /// Stable code of the reason (`duplicate_tx`, `nonce_used`, `mempool_full`, ...).
        #[schema(value_type = String)]
        code: &'static str,
        /// What was wrong and what to do about it.
        detail: String,
    },
}

/// Where a transaction is, with its id.
#[derive(Debug, Serialize)]
pub(crate) struct TxStatusResponse {
    pub(crate) hash: Hash,
    #[serde(flatten)]
    pub(crate) status: TxStatus,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountResponse {
    /// The address.
    #[schema(value_type = String, example = "flux1...")]
    pub(crate) address: Address,
    /// Liquid balance in FLUX.
    #[schema(value_type = String, example = "12.50000000")]
    pub(crate) balance: Amount,
    /// Collateral locked by registered nodes, in FLUX.
    #[schema(value_type = String, example = "0.00000000")]
    pub(crate) locked: Amount,
    /// The next nonce in finalized state.
    pub(crate) nonce: u64,
    /// The nonce to sign the next transaction with, counting those in the mempool.
    pub(crate) next_nonce: u64,
}

/// The supply and where issued coins went, at one height.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Supply)]
pub(crate) struct SupplyResponse {
    /// Height of the finalized block the figures are at.
    pub(crate) height: u64,
    /// Epoch of that block.
    pub(crate) epoch: u64,
    /// Every coin in existence, in FLUX: `genesis + issued - burned`.
    #[schema(value_type = String, example = "1000140.00000000")]
    pub(crate) total: Amount,
    /// Supply at genesis, in FLUX.
    #[schema(value_type = String, example = "1000000.00000000")]
    pub(crate) genesis: Amount,
    /// Every coin issued as block rewards since genesis, in FLUX.
    #[schema(value_type = String, example = "140.00000000")]
    pub(crate) issued: Amount,
    /// Every coin burned since genesis (proposal deposits without quorum), in FLUX.
    #[schema(value_type = String, example = "0.00000000")]
    pub(crate) burned: Amount,
    /// Balance of the reward-pool account (issuance and app payments not
    /// paid out yet), in FLUX.
    #[schema(value_type = String, example = "14.00000000")]
    pub(crate) reward_pool: Amount,
    /// Balance of the treasury account, in FLUX.
    #[schema(value_type = String, example = "4.50000000")]
    pub(crate) treasury: Amount,
    /// Balance of the account holding open proposals' deposits, in FLUX.
    #[schema(value_type = String, example = "0.00000000")]
    pub(crate) gov_deposits: Amount,
    /// Every reward paid from the pool to node owners, in FLUX: the sum
    /// of the nodes' `rewards_total`.
    #[schema(value_type = String, example = "121.50000000")]
    pub(crate) paid_to_nodes: Amount,
    /// Every coin paid from the pool to the treasury, in FLUX.
    #[schema(value_type = String, example = "4.50000000")]
    pub(crate) paid_to_treasury: Amount,
    /// The oldest epoch whose rewards are not paid yet.
    pub(crate) unpaid_epoch: u64,
}

/// An app with its current monthly price.
#[derive(Debug, Serialize)]
pub(crate) struct AppListItem {
    #[serde(flatten)]
    pub(crate) record: AppRecord,
    pub(crate) price_per_month: Option<Amount>,
}

/// A node with its benchmark, its capacity and the instances placed on it.
#[derive(Debug, Serialize)]
pub(crate) struct NodeDetail {
    #[serde(flatten)]
    pub(crate) record: NodeRecord,
    pub(crate) benchmark: Option<BenchmarkRecord>,
    pub(crate) pending_reason: Option<PendingReason>,
    pub(crate) resources: Option<NodeResources>,
    pub(crate) instances: Vec<NodeInstance>,
    pub(crate) work: NodeWorkView,
}

/// A node's useful work and rewards.
#[derive(Debug, Serialize)]
pub(crate) struct NodeWorkView {
    pub(crate) epoch: u64,
    pub(crate) verifying: usize,
    pub(crate) this_epoch: EpochWork,
    pub(crate) last_epoch: Option<EpochWork>,
    pub(crate) down_windows: u64,
    pub(crate) rewards_total: Amount,
    pub(crate) rewards_last_paid_epoch: Option<u64>,
    pub(crate) rewards_last_paid: Amount,
    pub(crate) committee_seat: Option<bool>,
}

/// A node's work in one epoch and what it was paid for it.
#[derive(Debug, Serialize)]
pub(crate) struct EpochWork {
    pub(crate) epoch: u64,
    pub(crate) assigned_windows: u64,
    pub(crate) verified_windows: u64,
    pub(crate) verified_permille: Option<u64>,
    pub(crate) reward: Amount,
}

impl EpochWork {
    fn of(state: &LedgerState, id: &Address, epoch: u64) -> EpochWork {
        let work = state.node_work(id, epoch);
        EpochWork {
            epoch,
            assigned_windows: work.assigned_windows,
            verified_windows: work.verified_windows,
            verified_permille: work.verified_permille(),
            reward: state.node_reward_in(id, epoch),
        }
    }
}

/// The validators of the epoch of the next block.
#[derive(Debug, Serialize)]
pub(crate) struct CommitteeResponse {
    pub(crate) epoch: u64,
    pub(crate) members: Vec<CommitteeMember>,
}

/// One validator: its key and, when it is a registered node, that node.
#[derive(Debug, Serialize)]
pub(crate) struct CommitteeMember {
    pub(crate) node_key: flux_types::PublicKey,
    pub(crate) id: Address,
    pub(crate) name: Option<String>,
    pub(crate) tier: Option<flux_types::Tier>,
    pub(crate) endpoint: Option<String>,
}

/// An instance placed on a node.
#[derive(Debug, Serialize)]
pub(crate) struct NodeInstance {
    pub(crate) app: String,
    pub(crate) instance: u32,
}

/// An app with where its instances run.
#[derive(Debug, Serialize)]
pub(crate) struct AppDetail {
    #[serde(flatten)]
    pub(crate) record: AppRecord,
    pub(crate) wanted: u32,
    pub(crate) placed: u32,
    pub(crate) instances: Vec<InstancePlacement>,
    pub(crate) rollout_progress: Option<RolloutProgress>,
}

/// Where one instance of an app runs.
#[derive(Debug, Serialize)]
pub(crate) struct InstancePlacement {
    pub(crate) instance: u32,
    pub(crate) node: Option<Address>,
    pub(crate) node_endpoint: Option<String>,
    pub(crate) addresses: Vec<String>,
}

impl AppDetail {
    fn of(state: &LedgerState, record: &AppRecord) -> AppDetail {
        let placement = state
            .app_placement(&record.spec.name)
            .expect("the app exists in this snapshot");
        let ports: Vec<u16> = record.spec.ports().collect();
        let instances = placement
            .instances
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let endpoint = node
                    .and_then(|id| state.node(&id))
                    .map(|n| n.endpoint.clone());
                let host = endpoint
                    .as_deref()
                    .and_then(|e| e.rsplit_once(':'))
                    .map(|(host, _)| host.to_string());
                InstancePlacement {
                    instance: index as u32,
                    node: *node,
                    addresses: host
                        .map(|h| ports.iter().map(|p| format!("{h}:{p}")).collect())
                        .unwrap_or_default(),
                    node_endpoint: endpoint,
                }
            })
            .collect();
        AppDetail {
            record: record.clone(),
            wanted: placement.wanted,
            placed: placement.placed,
            instances,
            rollout_progress: state.rollout_progress(&record.spec.name),
        }
    }
}

/// A request for a price.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct QuoteRequest {
    /// The app specification in its canonical JSON form.
    #[schema(value_type = crate::schema::AppSpecSchema)]
    pub(crate) spec: AppSpec,
    /// Months to pay for (default 1).
    #[serde(default = "one_month")]
    #[schema(default = 1, minimum = 1)]
    pub(crate) months: u32,
}

fn one_month() -> u32 {
    1
}

/// One page of a list, ordered by key.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Start after this key (a node id, or an app name); omit for the first page.
    pub(crate) after: Option<String>,
    /// Most items returned, 1 to 1000 (default 1000).
    pub(crate) limit: Option<usize>,
}

impl ListQuery {
    fn read(query: Result<Query<ListQuery>, QueryRejection>) -> ApiResult<(Option<String>, usize)> {
        let Query(query) = query.map_err(|e| Problem::bad_request("bad_request", e.body_text()))?;
        let limit = query.limit.unwrap_or(LIST_LIMIT_MAX);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(Problem::bad_request(
                "bad_request",
                format!("limit is {limit}; it must be between 1 and {LIST_LIMIT_MAX}"),
            ));
        }
        Ok((query.after, limit))
    }
}

fn check_param_len<'a>(name: &str, code: &'static str, text: &'a str) -> ApiResult<&'a str> {
    if text.len() > PATH_PARAM_LEN_MAX {
        return Err(Problem::bad_request(
            code,
            format!(
                "the {name} is {} characters long, more than any valid {name}",
                text.len()
            ),
        ));
    }
    Ok(text)
}

fn parse_address(text: &str) -> ApiResult<Address> {
    check_param_len("address", "bad_address", text)?
        .parse()
        .map_err(|e: flux_types::crypto::KeyParseError| {
            Problem::bad_request("bad_address", e.to_string())
        })
}

/// Chain status.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "chain",
    responses((status = 200, description = "The chain as this node sees it", body = crate::schema::ChainStatusSchema))
)]
pub(crate) async fn status(State(state): State<AppState>) -> Response {
    Json(state.node.status()).into_response()
}

/// A finalized block.
#[utoipa::path(
    get,
    path = "/api/v1/blocks/{height}",
    tag = "chain",
    params(("height" = u64, Path, description = "Block height; the first block is 1")),
    responses(
        (status = 200, description = "The block", body = BlockResponse),
        (status = 400, description = "`bad_height`: not a number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`block_not_found`: no block at this height yet", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn block(
    State(state): State<AppState>,
    Path(height): Path<String>,
) -> ApiResult<Json<BlockResponse>> {
    let height: u64 = check_param_len("height", "bad_height", &height)?
        .parse()
        .map_err(|_| {
            Problem::bad_request(
                "bad_height",
                format!("'{height}' is not a block height (a whole number)"),
            )
        })?;
    let block: Option<Block> = state
        .node
        .block(height)
        .map_err(|e| Problem::internal(&e))?;
    let Some(block) = block else {
        let tip = state.node.status().height;
        return Err(Problem::not_found(
            "block_not_found",
            format!("no block at height {height}; the chain is at height {tip}"),
        ));
    };
    let hash = block.hash();
    let txs = block
        .txs
        .into_iter()
        .map(|tx| BlockTx {
            hash: tx.hash(),
            tx,
        })
        .collect();
    Ok(Json(BlockResponse {
        hash,
        header: block.header,
        txs,
    }))
}

/// Submit a signed transaction.
#[utoipa::path(
    post,
    path = "/api/v1/transactions",
    tag = "transactions",
    request_body = SubmitRequest,
    responses(
        (status = 202, description = "Accepted into the mempool; not yet final", body = SubmitResponse),
        (status = 400, description = "`malformed_tx`: not hex or not a valid encoding; `bad_request`: not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_tx`: already submitted", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The ledger refuses it; `code` says why (`invalid_signature`, `nonce_used`, `insufficient_funds`, `underpaid`, `invalid_spec`, ...)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`mempool_full` or `shutting_down`: retry later", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SubmitRequest>,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let bytes = hex::decode(request.tx.trim())
        .map_err(|e| Problem::bad_request("malformed_tx", format!("tx is not hexadecimal: {e}")))?;
    let tx: SignedTransaction =
        decode_bounded(&bytes).map_err(|e| Problem::bad_request("malformed_tx", e.to_string()))?;
    let kind = tx.tx.body.kind();
    match state.node.submit(tx) {
        Ok(hash) => {
            tracing::debug!(%hash, kind, "transaction accepted");
            Ok((StatusCode::ACCEPTED, Json(SubmitResponse { hash })))
        }
        Err(error) => {
            tracing::debug!(%error, kind, "transaction refused");
            Err(Problem::from(error))
        }
    }
}

/// Submit many signed transactions at once: each is checked as `POST
/// /api/v1/transactions` checks one, with the signatures verified in one
/// batch, which costs a node far less per transaction.
#[utoipa::path(
    post,
    path = "/api/v1/transactions/batch",
    tag = "transactions",
    request_body = SubmitBatchRequest,
    responses(
        (status = 200, description = "Each transaction's fate, in order; the accepted ones are in the mempool, not yet final", body = SubmitBatchResponse),
        (status = 400, description = "`malformed_tx`: an entry is not hex or not a valid encoding (the detail names its index; nothing is submitted); `too_many_txs`: more than 500; `bad_request`: not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SubmitBatchRequest>,
) -> ApiResult<Json<SubmitBatchResponse>> {
    if request.txs.len() > BATCH_TXS_MAX {
        return Err(Problem::bad_request(
            "too_many_txs",
            format!(
                "the batch holds {} transactions, more than the limit of {BATCH_TXS_MAX}; split it",
                request.txs.len()
            ),
        ));
    }
    let txs = request
        .txs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let bytes = hex::decode(text.trim()).map_err(|e| {
                Problem::bad_request(
                    "malformed_tx",
                    format!("txs[{index}] is not hexadecimal: {e}; nothing was submitted"),
                )
            })?;
            decode_bounded::<SignedTransaction>(&bytes).map_err(|e| {
                Problem::bad_request(
                    "malformed_tx",
                    format!("txs[{index}]: {e}; nothing was submitted"),
                )
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    // Verifying hundreds of signatures takes milliseconds: off the async workers.
    let node = state.node.clone();
    let results = tokio::task::spawn_blocking(move || node.submit_batch(txs))
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("checking the batch failed inside the node: {e}"),
            )
        })?;
    let results: Vec<BatchItem> = hashes
        .into_iter()
        .zip(results)
        .map(|(hash, result)| match result {
            Ok(_) => BatchItem::Accepted { hash },
            Err(error) => BatchItem::Refused {
                hash,
                code: error.code(),
                detail: error.to_string(),
            },
        })
        .collect();
    let accepted = results
        .iter()
        .filter(|item| matches!(item, BatchItem::Accepted { .. }))
        .count();
    tracing::debug!(
        accepted,
        refused = results.len() - accepted,
        "transaction batch"
    );
    Ok(Json(SubmitBatchResponse { accepted, results }))
}

/// Where a transaction is.
#[utoipa::path(
    get,
    path = "/api/v1/transactions/{hash}",
    tag = "transactions",
    params(("hash" = String, Path, description = "Transaction id, 64 hexadecimal characters")),
    responses(
        (status = 200, description = "Its status (`unknown` when never seen)", body = crate::schema::TxStatusSchema),
        (status = 400, description = "`bad_hash`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn transaction(
    State(state): State<AppState>,
    Path(hash): Path<String>,
) -> ApiResult<Response> {
    let hash: Hash = check_param_len("hash", "bad_hash", &hash)?
        .parse()
        .map_err(|e: flux_types::crypto::KeyParseError| {
            Problem::bad_request("bad_hash", e.to_string())
        })?;
    let status = state
        .node
        .tx_status(&hash)
        .map_err(|e| Problem::internal(&e))?;
    Ok(Json(TxStatusResponse { hash, status }).into_response())
}

/// An account.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{address}",
    tag = "accounts",
    params(("address" = String, Path, description = "A `flux1...` address")),
    responses(
        (status = 200, description = "The account (zero balance when never used)", body = AccountResponse),
        (status = 400, description = "`bad_address`: fails its checksum or format", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn account(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<Json<AccountResponse>> {
    let address = parse_address(&address)?;
    let account = state.node.state().account(&address);
    let next_nonce = state.node.next_nonce(&address);
    Ok(Json(AccountResponse {
        address,
        balance: account.balance,
        locked: account.locked,
        nonce: account.nonce,
        next_nonce,
    }))
}

/// Registered nodes, ordered by id.
#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "nodes",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of nodes", body = Vec<crate::schema::NodeRecordSchema>),
        (status = 400, description = "`bad_request`: bad `limit`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn nodes(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<NodeRecord>>> {
    let (after, limit) = ListQuery::read(query)?;
    let after = after.as_deref().map(parse_address).transpose()?;
    let snapshot = state.node.state();
    let page = snapshot
        .nodes()
        .filter(|node| after.is_none_or(|after| node.id > after))
        .take(limit)
        .cloned()
        .collect();
    Ok(Json(page))
}

/// One node.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}",
    tag = "nodes",
    params(("id" = String, Path, description = "The node's id (the `flux1...` address of its node key)")),
    responses(
        (status = 200, description = "The node, its last benchmark, its capacity and its instances", body = crate::schema::NodeDetailSchema),
        (status = 400, description = "`bad_address`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`node_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn node(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NodeDetail>> {
    let id = parse_address(&id)?;
    let snapshot = state.node.state();
    let record = snapshot.node(&id).cloned().ok_or_else(|| {
        Problem::not_found(
            "node_not_found",
            format!("no node with id {id} is registered"),
        )
    })?;
    let instances = snapshot
        .instances_on(&id)
        .into_iter()
        .map(|(app, instance)| NodeInstance {
            app: app.spec.name.clone(),
            instance,
        })
        .collect();
    let epoch = snapshot.epoch();
    let rewards = snapshot.node_rewards(&id);
    let committee_seat = state
        .node
        .committee()
        .ok()
        .map(|committee| committee.members.contains(&record.node_key));
    let work = NodeWorkView {
        epoch,
        verifying: snapshot.targets_of(&id).len(),
        this_epoch: EpochWork::of(&snapshot, &id, epoch),
        last_epoch: epoch
            .checked_sub(1)
            .map(|last| EpochWork::of(&snapshot, &id, last)),
        down_windows: snapshot.node_down_windows(&id),
        rewards_total: rewards.total,
        rewards_last_paid_epoch: rewards.last_epoch,
        rewards_last_paid: rewards
            .last_epoch
            .map_or(Amount::ZERO, |last| snapshot.node_reward_in(&id, last)),
        committee_seat,
    };
    Ok(Json(NodeDetail {
        work,
        benchmark: snapshot.node_benchmark(&id).cloned(),
        pending_reason: snapshot.node_pending_reason(&id),
        resources: snapshot.node_resources(&id),
        instances,
        record,
    }))
}

/// The validators of the epoch of the next block.
#[utoipa::path(
    get,
    path = "/api/v1/committee",
    tag = "nodes",
    responses(
        (status = 200, description = "The committee: the validators of the epoch of the next block, in seat order", body = crate::schema::CommitteeSchema),
    )
)]
pub(crate) async fn committee(State(state): State<AppState>) -> ApiResult<Json<CommitteeResponse>> {
    let committee = state.node.committee().map_err(|e| Problem::internal(&e))?;
    let snapshot = state.node.state();
    let genesis = state.node.genesis();
    let members = committee
        .members
        .into_iter()
        .map(|key| {
            let id = key.address();
            let node = snapshot.node(&id);
            let name = genesis
                .validators
                .iter()
                .find(|v| v.public_key == key)
                .map(|v| v.name.clone());
            CommitteeMember {
                node_key: key,
                id,
                name,
                tier: node.map(|n| n.tier),
                endpoint: node.map(|n| n.endpoint.clone()),
            }
        })
        .collect();
    Ok(Json(CommitteeResponse {
        epoch: committee.epoch,
        members,
    }))
}

/// The supply: genesis, issued, burned, and the reward pool, the treasury
/// and what was paid from the pool, all at one height.
#[utoipa::path(
    get,
    path = "/api/v1/supply",
    tag = "chain",
    responses(
        (status = 200, description = "The supply at the last finalized block; `total` is always `genesis + issued - burned`", body = SupplyResponse),
    )
)]
pub(crate) async fn supply(State(state): State<AppState>) -> Json<SupplyResponse> {
    let snapshot = state.node.state();
    let summary = snapshot.rewards_summary();
    let balance = |address| snapshot.account(&address).balance;
    Json(SupplyResponse {
        height: snapshot.height(),
        epoch: snapshot.epoch(),
        total: snapshot.total_supply(),
        genesis: summary.genesis_supply,
        issued: summary.issued,
        burned: summary.burned,
        reward_pool: balance(flux_ledger::reward_pool_address()),
        treasury: balance(flux_ledger::treasury_address()),
        gov_deposits: balance(flux_ledger::gov_deposits_address()),
        paid_to_nodes: summary.paid_to_nodes,
        paid_to_treasury: summary.paid_to_treasury,
        unpaid_epoch: summary.unpaid_epoch,
    })
}

/// Registered apps, ordered by name, each with its current monthly price.
#[utoipa::path(
    get,
    path = "/api/v1/apps",
    tag = "apps",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of apps", body = Vec<crate::schema::AppListItemSchema>),
        (status = 400, description = "`bad_request`: bad `limit`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn apps(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<AppListItem>>> {
    let (after, limit) = ListQuery::read(query)?;
    let snapshot = state.node.state();
    let params = snapshot.params();
    let page = snapshot
        .apps()
        .filter(|app| {
            after
                .as_deref()
                .is_none_or(|after| app.spec.name.as_str() > after)
        })
        .take(limit)
        .map(|record| AppListItem {
            price_per_month: flux_ledger::quote(params, &record.spec, 1)
                .ok()
                .map(|q| q.per_month),
            record: record.clone(),
        })
        .collect();
    Ok(Json(page))
}

/// One app.
#[utoipa::path(
    get,
    path = "/api/v1/apps/{name}",
    tag = "apps",
    params(("name" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app and where its instances run", body = crate::schema::AppDetailSchema),
        (status = 404, description = "`app_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn app(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<AppDetail>> {
    find_app(&state, &name)
}

/// `GET /api/v1/apps/quote`: the app named `quote`. The static route of
/// `POST /api/v1/apps/quote` takes precedence over `/api/v1/apps/{name}`, so
/// without this an app with that (valid) name could not be read.
pub(crate) async fn app_named_quote(State(state): State<AppState>) -> ApiResult<Json<AppDetail>> {
    find_app(&state, "quote")
}

fn find_app(state: &AppState, name: &str) -> ApiResult<Json<AppDetail>> {
    let name = check_param_len("name", "bad_name", name)?;
    let snapshot = state.node.state();
    let app = snapshot.app(name).ok_or_else(|| {
        Problem::not_found(
            "app_not_found",
            format!("no app named '{name}' is registered"),
        )
    })?;
    Ok(Json(AppDetail::of(&snapshot, app)))
}

/// The price of an app for a period, without registering it.
#[utoipa::path(
    post,
    path = "/api/v1/apps/quote",
    tag = "apps",
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "The price", body = crate::schema::QuoteSchema),
        (status = 400, description = "`bad_request`: not JSON or not an app specification", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_spec` (the `field` member names the offending field) or `months_out_of_range`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn quote(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<QuoteRequest>,
) -> ApiResult<Json<Quote>> {
    let snapshot = state.node.state();
    let params = snapshot.params();
    request
        .spec
        .validate(&params.app_limits)
        .map_err(|e| Problem::from(flux_ledger::TxError::InvalidSpec(e)))?;
    let quote = flux_ledger::quote(params, &request.spec, request.months)?;
    Ok(Json(quote))
}

/// A proposal with its live counts.
#[derive(Debug, Serialize)]
pub(crate) struct ProposalView {
    #[serde(flatten)]
    pub(crate) proposal: Proposal,
    /// Power that voted at all.
    pub(crate) turnout: Amount,
    /// The least turnout that reaches quorum.
    pub(crate) quorum_power: Amount,
    /// Whether the votes so far reach quorum.
    pub(crate) quorum_reached: bool,
    /// Chain time left to vote, ms (0 once voting ended).
    pub(crate) time_left_ms: u64,
}

impl ProposalView {
    fn new(proposal: &Proposal, now_ms: u64) -> ProposalView {
        let time_left_ms = if proposal.status == ProposalStatus::Open {
            proposal.voting_ends_ms.saturating_sub(now_ms)
        } else {
            0
        };
        ProposalView {
            turnout: proposal.tally.turnout(),
            quorum_power: proposal.quorum_power(),
            quorum_reached: proposal.quorum_reached(),
            time_left_ms,
            proposal: proposal.clone(),
        }
    }
}

/// Which proposals to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProposalQuery {
    /// Only proposals with this status: `open`, `passed` or `rejected`.
    pub(crate) status: Option<String>,
    /// Start after this proposal id; omit for the first page.
    pub(crate) after: Option<u64>,
    /// Most items returned, 1 to 1000 (default 1000).
    pub(crate) limit: Option<usize>,
}

/// A governable param with the height at which its value took effect.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParamView {
    /// The key, as a parameter-change proposal names it.
    pub(crate) key: &'static str,
    /// The value in force: FLUX amounts as decimals, others as whole numbers.
    pub(crate) value: String,
    /// Height of the block from which this value applies (0: since genesis).
    pub(crate) since_height: u64,
    /// Smallest value a proposal may set.
    pub(crate) min: String,
    /// Largest value a proposal may set.
    pub(crate) max: String,
    /// What it is, with its unit.
    pub(crate) description: &'static str,
}

/// A vote on a proposal.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VoteView {
    /// The voter.
    #[schema(value_type = String, example = "flux1...")]
    pub(crate) voter: Address,
    /// `yes`, `no` or `abstain`.
    #[schema(value_type = String, example = "yes")]
    pub(crate) choice: flux_types::VoteChoice,
    /// The voter's power at the proposal's start, in FLUX.
    #[schema(value_type = String, example = "1000.00000000")]
    pub(crate) power: Amount,
    /// Height of the block with the voter's latest vote.
    pub(crate) height: u64,
}

/// An entry of the image blocklist.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockedImageView {
    /// `repository`, `repository:tag` or `repository@sha256:digest`.
    pub(crate) image: String,
    /// Height at which it took effect.
    pub(crate) since_height: u64,
    /// The proposal that added it.
    pub(crate) proposal: u64,
}

/// An app that runs a blocked image: no instance of it may run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockedAppView {
    /// The app's name (lowercase).
    pub(crate) app: String,
    /// The component's image.
    pub(crate) image: String,
    /// The blocklist entry that matches it.
    pub(crate) entry: String,
    /// Height at which the app was blocked.
    pub(crate) since_height: u64,
}

/// The network's image blocklist and the apps it blocks.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlocklistView {
    /// Blocked images, by entry.
    pub(crate) images: Vec<BlockedImageView>,
    /// Blocked apps, by name.
    pub(crate) apps: Vec<BlockedAppView>,
}

fn parse_proposal_id(text: &str) -> ApiResult<u64> {
    check_param_len("proposal id", "bad_proposal_id", text)?
        .parse()
        .map_err(|_| {
            Problem::bad_request(
                "bad_proposal_id",
                format!("'{text}' is not a proposal id (a whole number)"),
            )
        })
}

fn proposal_not_found(id: u64) -> Problem {
    Problem::not_found(
        "proposal_not_found",
        flux_ledger::TxError::ProposalNotFound(id).to_string(),
    )
}

/// Proposals, ordered by id.
#[utoipa::path(
    get,
    path = "/api/v1/gov/proposals",
    tag = "governance",
    params(ProposalQuery),
    responses(
        (status = 200, description = "One page of proposals with their tallies", body = Vec<crate::schema::ProposalSchema>),
        (status = 400, description = "`bad_request`: bad `status`, `after` or `limit`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn proposals(
    State(state): State<AppState>,
    query: Result<Query<ProposalQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<ProposalView>>> {
    let Query(query) = query.map_err(|e| Problem::bad_request("bad_request", e.body_text()))?;
    let limit = query.limit.unwrap_or(LIST_LIMIT_MAX);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(Problem::bad_request(
            "bad_request",
            format!("limit is {limit}; it must be between 1 and {LIST_LIMIT_MAX}"),
        ));
    }
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some("open") => Some(ProposalStatus::Open),
        Some("passed") => Some(ProposalStatus::Passed),
        Some("rejected") => Some(ProposalStatus::Rejected),
        Some(other) => {
            return Err(Problem::bad_request(
                "bad_request",
                format!("status '{other}' is not one of open, passed, rejected"),
            ));
        }
    };
    let snapshot = state.node.state();
    let now_ms = snapshot.time_ms();
    let page = snapshot
        .proposals_after(query.after.unwrap_or(0))
        .filter(|p| status.is_none_or(|status| p.status == status))
        .take(limit)
        .map(|p| ProposalView::new(p, now_ms))
        .collect();
    Ok(Json(page))
}

/// One proposal with its tally, turnout and time left.
#[utoipa::path(
    get,
    path = "/api/v1/gov/proposals/{id}",
    tag = "governance",
    params(("id" = u64, Path, description = "The proposal's id, counting from 1")),
    responses(
        (status = 200, description = "The proposal", body = crate::schema::ProposalSchema),
        (status = 400, description = "`bad_proposal_id`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`proposal_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn proposal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProposalView>> {
    let id = parse_proposal_id(&id)?;
    let snapshot = state.node.state();
    let proposal = snapshot
        .proposal(id)
        .ok_or_else(|| proposal_not_found(id))?;
    Ok(Json(ProposalView::new(proposal, snapshot.time_ms())))
}

/// The votes on a proposal, by voter.
#[utoipa::path(
    get,
    path = "/api/v1/gov/proposals/{id}/votes",
    tag = "governance",
    params(("id" = u64, Path, description = "The proposal's id")),
    responses(
        (status = 200, description = "Every vote, with the voter's power", body = Vec<VoteView>),
        (status = 400, description = "`bad_proposal_id`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`proposal_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn proposal_votes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<VoteView>>> {
    let id = parse_proposal_id(&id)?;
    let snapshot = state.node.state();
    if snapshot.proposal(id).is_none() {
        return Err(proposal_not_found(id));
    }
    let votes = snapshot
        .votes(id)
        .map(|(voter, vote)| VoteView {
            voter: *voter,
            choice: vote.choice,
            power: vote.power,
            height: vote.height,
        })
        .collect();
    Ok(Json(votes))
}

/// Every governable param with its value, allowed range and the height it took effect.
#[utoipa::path(
    get,
    path = "/api/v1/gov/params",
    tag = "governance",
    responses((status = 200, description = "The governable params, in the order `flux chain params` lists them", body = Vec<ParamView>))
)]
pub(crate) async fn gov_params(State(state): State<AppState>) -> Json<Vec<ParamView>> {
    let snapshot = state.node.state();
    let params = snapshot.params();
    let views = flux_types::governable::governable_params()
        .map(|spec| ParamView {
            key: spec.key,
            value: spec.format(spec.get(params)),
            since_height: snapshot.param_since(spec.key),
            min: spec.format(spec.min),
            max: spec.format(spec.max),
            description: spec.description,
        })
        .collect();
    Json(views)
}

/// The image blocklist and the apps it blocks.
#[utoipa::path(
    get,
    path = "/api/v1/gov/blocklist",
    tag = "governance",
    responses((status = 200, description = "Blocked images and blocked apps", body = BlocklistView))
)]
pub(crate) async fn blocklist(State(state): State<AppState>) -> Json<BlocklistView> {
    let snapshot = state.node.state();
    Json(BlocklistView {
        images: snapshot
            .blocked_images()
            .map(|(image, entry)| BlockedImageView {
                image: image.clone(),
                since_height: entry.since_height,
                proposal: entry.proposal,
            })
            .collect(),
        apps: snapshot
            .blocked_apps()
            .map(|(app, blocked)| BlockedAppView {
                app: app.clone(),
                image: blocked.image.clone(),
                entry: blocked.entry.clone(),
                since_height: blocked.since_height,
            })
            .collect(),
    })
}

/// The network's parameters.
#[utoipa::path(
    get,
    path = "/api/v1/params",
    tag = "chain",
    responses((status = 200, description = "Every economic and policy number of the network", body = Object))
)]
pub(crate) async fn params(State(state): State<AppState>) -> Json<Params> {
    Json(state.node.state().params().clone())
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document of this API", body = Object))
)]
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json,
    )
        .into_response()
}

/// Metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "`flux_chain_height`, `flux_mempool_txs`, `flux_api_requests_total{route,status}`, ...", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state.node.status());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The web dashboard.
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    responses((status = 200, description = "A page showing the chain, the supply, the committee, nodes with their work and rewards, and apps, refreshed every 2 s", body = String, content_type = "text/html"))
)]
pub(crate) async fn dashboard() -> Response {
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(DASHBOARD_HTML),
    )
        .into_response()
}
