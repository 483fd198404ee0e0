//! Load generator for `bench/consensus/`: pre-signs transfers from many
//! funded accounts, posts them through the API of every node, and measures
//! finality latency (submit until the transaction is seen in a finalized
//! block) and finalized transfers per second (block transaction counts over
//! the window of the run, by block time).
//!
//! ```text
//! bench_consensus --nodes http://127.0.0.1:16127,http://127.0.0.2:16127,... \
//!     [--accounts 400] [--txs-per-account 25] [--rate TXS_PER_S] [--workers 32] [--batch 1]
//! ```
//!
//! The accounts are new for every run (named after the current time) and are
//! funded first by the devnet's development keys dev0..dev3. Each account's
//! transfers go, in nonce order, to one node (account I to node I mod N), so
//! every node takes an equal share of the load. `--rate 0` (the default)
//! submits as fast as the workers can; a rate paces submission evenly.
//! `--batch 1` (the default) posts each transfer alone to
//! `/api/v1/transactions`; a larger batch posts that many at once to
//! `/api/v1/transactions/batch` (at most 500), whose signatures the node
//! verifies in one batch. Prints one JSON object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use flux_ledger::min_fee;
use flux_types::{Amount, Params, SecretKey, SignedTransaction, Transaction, TxBody};
use serde_json::{Value, json};

/// How often the tracker asks node 0 for its height.
const POLL_INTERVAL_MS: u64 = 5;
/// How long the run may take after the last submission.
const DRAIN_TIMEOUT_MS: u64 = 120_000;
/// Development keys that fund the accounts.
const FUNDERS: usize = 4;
/// Funding transfers one development key sends before waiting for them
/// (the mempool holds at most `NONCE_AHEAD_MAX` = 64 per account).
const FUNDING_ROUND_MAX: usize = 60;
/// The code of a refusal because the mempool is full.
const MEMPOOL_FULL: &str = "mempool_full";
/// How long a worker waits before it retries what a full mempool refused.
const MEMPOOL_FULL_WAIT_MS: u64 = 20;
/// Most transactions the API takes in one batch.
const BATCH_TXS_MAX: usize = 500;

struct Options {
    nodes: Vec<String>,
    accounts: usize,
    txs_per_account: u64,
    rate: f64,
    workers: usize,
    batch: usize,
}

fn parse_options() -> Result<Options> {
    let mut options = Options {
        nodes: Vec::new(),
        accounts: 400,
        txs_per_account: 25,
        rate: 0.0,
        workers: 32,
        batch: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => options.nodes = value.split(',').map(str::to_string).collect(),
            "--accounts" => options.accounts = value.parse()?,
            "--txs-per-account" => options.txs_per_account = value.parse()?,
            "--rate" => options.rate = value.parse()?,
            "--workers" => options.workers = value.parse()?,
            "--batch" => options.batch = value.parse()?,
            _ => bail!("unknown flag {flag}; see the header of bench_consensus.rs"),
        }
    }
    if options.nodes.is_empty() {
        bail!("--nodes URL[,URL...] is required");
    }
    if options.accounts == 0
        || options.txs_per_account == 0
        || options.workers == 0
        || options.batch == 0
    {
        bail!("--accounts, --txs-per-account, --workers and --batch must be at least 1");
    }
    if options.txs_per_account > flux_ledger::NONCE_AHEAD_MAX {
        bail!(
            "--txs-per-account is at most {}: the mempool holds no more per account",
            flux_ledger::NONCE_AHEAD_MAX
        );
    }
    if options.batch > BATCH_TXS_MAX {
        bail!("--batch is at most {BATCH_TXS_MAX}, the API's limit");
    }
    Ok(options)
}

/// A node's API.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn new(url: &str) -> Result<Api> {
        Ok(Api {
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    fn get(&self, path: &str) -> Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send()?;
        let status = response.status();
        let body: Value = response.json()?;
        if !status.is_success() {
            bail!("GET {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Posts one transaction; `false` if the mempool is full (retry later),
    /// an error if it is refused for any other reason.
    fn submit(&self, tx: &SignedTransaction) -> Result<bool> {
        let response = self
            .http
            .post(format!("{}/transactions", self.base))
            .json(&json!({ "tx": hex::encode(tx.to_bytes()) }))
            .send()?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        let body: Value = response.json()?;
        if body["code"] == MEMPOOL_FULL {
            return Ok(false);
        }
        bail!("submit: {status} {body}");
    }

    /// Posts `txs` in one batch; returns those refused because the mempool
    /// is full (retry later), an error if one is refused for another reason.
    fn submit_batch(&self, txs: &[SignedTransaction]) -> Result<Vec<SignedTransaction>> {
        let encoded: Vec<String> = txs.iter().map(|tx| hex::encode(tx.to_bytes())).collect();
        let response = self
            .http
            .post(format!("{}/transactions/batch", self.base))
            .json(&json!({ "txs": encoded }))
            .send()?;
        let status = response.status();
        let body: Value = response.json()?;
        if !status.is_success() {
            bail!("submit batch: {status} {body}");
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        if results.len() != txs.len() {
            bail!(
                "submit batch: {} results for {} transactions",
                results.len(),
                txs.len()
            );
        }
        let mut full = Vec::new();
        for (tx, item) in txs.iter().zip(&results) {
            if item["status"] == "accepted" {
                continue;
            }
            if item["code"] != MEMPOOL_FULL {
                bail!("submit batch: a transaction was refused: {item}");
            }
            full.push(tx.clone());
        }
        Ok(full)
    }

    /// Posts `txs` (one alone, more in a batch) until every one is accepted,
    /// waiting while the mempool is full.
    fn submit_all(&self, txs: &[SignedTransaction]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS);
        let mut pending = txs.to_vec();
        loop {
            let refused = match pending.as_slice() {
                [] => return Ok(()),
                [tx] if self.submit(tx)? => Vec::new(),
                [tx] => vec![tx.clone()],
                txs => self.submit_batch(txs)?,
            };
            pending = refused;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the mempool stayed full for {DRAIN_TIMEOUT_MS} ms");
            }
            std::thread::sleep(Duration::from_millis(MEMPOOL_FULL_WAIT_MS));
        }
    }

    fn next_nonce(&self, key: &SecretKey) -> Result<u64> {
        self.get(&format!("/accounts/{}", key.address()))?["next_nonce"]
            .as_u64()
            .ok_or_else(|| anyhow!("no next_nonce"))
    }

    fn committed(&self, hash: &str) -> Result<bool> {
        Ok(self.get(&format!("/transactions/{hash}"))?["status"] == "committed")
    }
}

/// A transfer paying the network's minimum fee.
fn signed_transfer(
    chain_id: &str,
    from: &SecretKey,
    nonce: u64,
    to: &SecretKey,
    amount: Amount,
    fee: &impl Fn(&SignedTransaction) -> Amount,
) -> SignedTransaction {
    let unsigned = |fee| Transaction {
        chain_id: chain_id.to_string(),
        signer: from.public_key(),
        nonce,
        fee,
        body: TxBody::Transfer {
            to: to.address(),
            amount,
        },
    };
    let fee = fee(&unsigned(Amount::ZERO).sign(from));
    unsigned(fee).sign(from)
}

/// A finalized block as the tracker saw it.
struct Seen {
    at: Instant,
    timestamp_ms: u64,
    txs: usize,
}

/// Follows node 0's finalized blocks; records when each transaction was seen.
fn track(
    api: &Api,
    from_height: u64,
    stop: &AtomicBool,
    seen_txs: &Mutex<HashMap<String, Instant>>,
    blocks: &Mutex<Vec<Seen>>,
) -> Result<()> {
    // The block before the run is the start of the throughput window.
    let mut next = from_height.max(1);
    while !stop.load(Ordering::Relaxed) {
        let height = api.get("/status")?["height"].as_u64().unwrap_or(0);
        while next <= height {
            let block = api.get(&format!("/blocks/{next}"))?;
            let at = Instant::now();
            let txs = block["txs"].as_array().cloned().unwrap_or_default();
            {
                let mut seen = seen_txs.lock().expect("tracker lock");
                for tx in &txs {
                    if let Some(hash) = tx["hash"].as_str() {
                        seen.insert(hash.to_string(), at);
                    }
                }
            }
            blocks.lock().expect("tracker lock").push(Seen {
                at,
                timestamp_ms: block["header"]["timestamp_ms"].as_u64().unwrap_or(0),
                txs: txs.len(),
            });
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() -> Result<()> {
    let options = parse_options()?;
    let apis: Vec<Api> = options
        .nodes
        .iter()
        .map(|url| Api::new(url))
        .collect::<Result<_>>()?;
    let first = &apis[0];
    let status = first.get("/status").context("node 0 does not answer")?;
    let chain_id = status["chain_id"].as_str().unwrap_or_default().to_string();
    let params: Params =
        serde_json::from_value(first.get("/params")?).context("node 0's params do not decode")?;
    let fee = |tx: &SignedTransaction| min_fee(&params, tx);

    // Fund new accounts from the development keys.
    let label = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let accounts: Vec<SecretKey> = (0..options.accounts)
        .map(|i| SecretKey::development(&format!("bench-{label}-{i}")))
        .collect();
    let funders: Vec<SecretKey> = (0..FUNDERS)
        .map(|i| SecretKey::development(&format!("dev{i}")))
        .collect();
    // The mempool holds a bounded number of pending transactions per
    // account: fund in rounds of FUNDING_ROUND_MAX per development key.
    let deadline = Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS);
    let shares: Vec<Vec<&SecretKey>> = (0..FUNDERS)
        .map(|f| accounts.iter().skip(f).step_by(FUNDERS).collect())
        .collect();
    let rounds = shares[0].len().div_ceil(FUNDING_ROUND_MAX);
    for round in 0..rounds {
        let mut last_funding = Vec::new();
        for (funder, share) in funders.iter().zip(&shares) {
            let start = first.next_nonce(funder)?;
            let chunk = share
                .iter()
                .skip(round * FUNDING_ROUND_MAX)
                .take(FUNDING_ROUND_MAX);
            let txs: Vec<SignedTransaction> = (start..)
                .zip(chunk)
                .map(|(nonce, account)| {
                    signed_transfer(&chain_id, funder, nonce, account, Amount::flux(100), &fee)
                })
                .collect();
            first.submit_all(&txs)?;
            last_funding.extend(txs.last().map(|tx| tx.hash().to_string()));
        }
        for hash in &last_funding {
            while !first.committed(hash)? {
                if Instant::now() > deadline {
                    bail!("the funding transfers were not committed in time");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    // Pre-sign every transfer, account by account in nonce order.
    let sink = SecretKey::development("bench-sink");
    let signed: Vec<Vec<SignedTransaction>> = accounts
        .iter()
        .map(|account| {
            (0..options.txs_per_account)
                .map(|nonce| {
                    signed_transfer(&chain_id, account, nonce, &sink, Amount::units(1), &fee)
                })
                .collect()
        })
        .collect();
    let total = options.accounts as u64 * options.txs_per_account;

    // Workers: worker W sends the accounts I with I mod workers = W, all to
    // node W mod N, round-robin from nonce 0 of every account (in batches of
    // `--batch`), so the mempool never waits on a gap.
    let workers = options.workers.div_ceil(apis.len()) * apis.len();
    let mut queues: Vec<(usize, Vec<SignedTransaction>)> =
        (0..workers).map(|w| (w % apis.len(), Vec::new())).collect();
    for round in 0..options.txs_per_account as usize {
        for (a, txs) in signed.iter().enumerate() {
            queues[a % workers].1.push(txs[round].clone());
        }
    }
    let start_height = first.get("/status")?["height"].as_u64().unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let seen_txs = Arc::new(Mutex::new(HashMap::new()));
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let tracker = {
        let (api, stop, seen_txs, blocks) = (
            first.clone(),
            stop.clone(),
            seen_txs.clone(),
            blocks.clone(),
        );
        std::thread::spawn(move || track(&api, start_height, &stop, &seen_txs, &blocks))
    };
    let started = Instant::now();
    // Each worker paces itself to its share of the rate, a batch at a time.
    let batch = options.batch;
    let per_worker_interval = (options.rate > 0.0)
        .then(|| Duration::from_secs_f64(workers as f64 * batch as f64 / options.rate));
    let handles: Vec<_> = queues
        .into_iter()
        .map(|(node, queue)| {
            let api = apis[node].clone();
            std::thread::spawn(move || -> Result<Vec<(String, Instant)>> {
                let mut submitted = Vec::with_capacity(queue.len());
                for (k, chunk) in queue.chunks(batch).enumerate() {
                    if let Some(interval) = per_worker_interval {
                        let due = started + interval * k as u32;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    // Latency counts from the first attempt, waits for a full mempool included.
                    let at = Instant::now();
                    api.submit_all(chunk)?;
                    submitted.extend(chunk.iter().map(|tx| (tx.hash().to_string(), at)));
                }
                Ok(submitted)
            })
        })
        .collect();
    let mut submitted = Vec::with_capacity(total as usize);
    for handle in handles {
        submitted.extend(handle.join().map_err(|_| anyhow!("a worker panicked"))??);
    }
    let submit_secs = started.elapsed().as_secs_f64();

    // Wait until every transfer has been seen in a finalized block.
    let deadline = Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS);
    loop {
        let seen = seen_txs.lock().expect("tracker lock");
        if submitted.iter().all(|(hash, _)| seen.contains_key(hash)) {
            break;
        }
        drop(seen);
        if Instant::now() > deadline || tracker.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    tracker
        .join()
        .map_err(|_| anyhow!("the tracker panicked"))??;

    let seen = seen_txs.lock().expect("tracker lock");
    let mut latencies_ms: Vec<f64> = submitted
        .iter()
        .filter_map(|(hash, at)| {
            seen.get(hash)
                .map(|done| done.duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    latencies_ms.sort_by(f64::total_cmp);
    let finalized = latencies_ms.len() as u64;

    // Throughput by block time: the transactions of the blocks from the first
    // that holds a transfer of the run to the last, over the time since the
    // block before the first.
    let blocks = blocks.lock().expect("tracker lock");
    let with_txs: Vec<usize> = (1..blocks.len()).filter(|&i| blocks[i].txs > 0).collect();
    let (tps, window_ms, block_count) = match (with_txs.first(), with_txs.last()) {
        (Some(&a), Some(&b)) if a > 0 => {
            let txs: usize = blocks[a..=b].iter().map(|s| s.txs).sum();
            let window = blocks[b]
                .timestamp_ms
                .saturating_sub(blocks[a - 1].timestamp_ms);
            (txs as f64 * 1e3 / window.max(1) as f64, window, b - a + 1)
        }
        _ => (0.0, 0, 0),
    };
    let wall_secs = match (blocks.first(), blocks.last()) {
        (Some(first), Some(last)) => last.at.duration_since(first.at).as_secs_f64(),
        _ => 0.0,
    };
    let result = json!({
        "nodes": apis.len(),
        "accounts": options.accounts,
        "batch": options.batch,
        "submitted": submitted.len(),
        "finalized": finalized,
        "rate_target": options.rate,
        "submit_rate": submitted.len() as f64 / submit_secs,
        "finality_ms": {
            "p50": percentile(&latencies_ms, 0.50),
            "p90": percentile(&latencies_ms, 0.90),
            "p99": percentile(&latencies_ms, 0.99),
            "max": latencies_ms.last().copied().unwrap_or(f64::NAN),
        },
        "finalized_tps": tps,
        "window_ms": window_ms,
        "blocks_in_window": block_count,
        "tracked_wall_s": wall_secs,
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{result}");
    }
    if finalized < total {
        bail!("only {finalized} of {total} transfers were finalized in time");
    }
    Ok(())
}
