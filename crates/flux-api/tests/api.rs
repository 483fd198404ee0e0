//! The HTTP API against a real node and a real server on a free port.
//!
//! Every test starts its own single-validator chain in a temporary directory
//! (blocks every 50 ms) and serves the API on it; requests go over TCP.
//! Nothing waits a fixed time: every wait is on a condition with a deadline.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flux_api::{ApiConfig, ApiError};
use flux_chain::{Node, NodeConfig};
use flux_types::app::Component;
use flux_types::{
    Address, Amount, AppSpec, BenchmarkReport, Genesis, GenesisAccount, GenesisValidator, Params,
    SecretKey, SignedTransaction, Tier, Transaction, TxBody,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const CHAIN_ID: &str = "flux-api-test";
const BLOCK_INTERVAL_MS: u64 = 50;
/// Longest wait for anything the chain should do within a few blocks.
const DEADLINE: Duration = Duration::from_secs(20);
const FUNDS: Amount = Amount::flux(1_000_000);

/// Every route of the API with its method, as the OpenAPI document must list them.
const ROUTES: [(&str, &str); 22] = [
    ("get", "/"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/params"),
    ("get", "/api/v1/blocks/{height}"),
    ("post", "/api/v1/transactions"),
    ("post", "/api/v1/transactions/batch"),
    ("get", "/api/v1/transactions/{hash}"),
    ("get", "/api/v1/accounts/{address}"),
    ("get", "/api/v1/nodes"),
    ("get", "/api/v1/nodes/{id}"),
    ("get", "/api/v1/committee"),
    ("get", "/api/v1/supply"),
    ("get", "/api/v1/apps"),
    ("post", "/api/v1/apps/quote"),
    ("get", "/api/v1/apps/{name}"),
    ("get", "/api/v1/gov/proposals"),
    ("get", "/api/v1/gov/proposals/{id}"),
    ("get", "/api/v1/gov/proposals/{id}/votes"),
    ("get", "/api/v1/gov/params"),
    ("get", "/api/v1/gov/blocklist"),
];

fn dev0() -> SecretKey {
    SecretKey::development("dev0")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A node and the API server in front of it.
struct Harness {
    base: String,
    http: reqwest::Client,
    node: Node,
    params: Params,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ApiError>>>,
    _dir: tempfile::TempDir,
}

/// An answer from the server.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts a success status and returns the JSON body.
    fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {}",
            self.content_type
        );
        self.json()
    }

    /// Asserts a problem document with `status` and `code`; returns its detail.
    fn problem(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "body: {}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["type"], "about:blank", "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        let detail = body["detail"].as_str().expect("detail").to_string();
        assert!(!detail.is_empty(), "{body}");
        detail
    }
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(ApiConfig::default()).await
    }

    async fn start_with(config: ApiConfig) -> Harness {
        Harness::start_with_params(config, Params::devnet()).await
    }

    async fn start_with_params(config: ApiConfig, mut params: Params) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let node_key = SecretKey::development("validator0");
        params.block_interval_ms = BLOCK_INTERVAL_MS;
        params.block_interval_busy_ms = BLOCK_INTERVAL_MS;
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: now_ms(),
            params: params.clone(),
            accounts: vec![GenesisAccount {
                address: dev0().address(),
                balance: FUNDS,
            }],
            validators: vec![GenesisValidator {
                name: "validator0".into(),
                public_key: node_key.public_key(),
                p2p_endpoint: "127.0.0.1:26656".into(),
                api_endpoint: "127.0.0.1:16127".into(),
            }],
        };
        let node = Node::start(NodeConfig {
            data_dir: dir.path().join("node"),
            genesis,
            node_key,
            block_interval_ms: BLOCK_INTERVAL_MS,
            mempool_txs_max: 10_000,
            mempool_bytes_max: 16 * 1024 * 1024,
        })
        .await
        .expect("the node starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(flux_api::serve_listener(
            node.clone(),
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Harness {
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("HTTP client"),
            node,
            params,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    fn address(&self) -> SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("socket address")
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ASCII content type").to_string())
            .unwrap_or_default();
        let text = response.text().await.expect("a body");
        Reply {
            status,
            content_type,
            text,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET answered");
        Harness::reply(response).await
    }

    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .expect("POST answered");
        Harness::reply(response).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, body.to_string()).await
    }

    async fn submit(&self, tx: &SignedTransaction) -> Reply {
        self.post(
            "/api/v1/transactions",
            &json!({ "tx": hex::encode(tx.to_bytes()) }),
        )
        .await
    }

    /// A transaction from `key` with its next nonce (as the API reports it) and the minimum fee.
    async fn sign(&self, key: &SecretKey, body: TxBody) -> SignedTransaction {
        let account = self
            .get(&format!("/api/v1/accounts/{}", key.address()))
            .await
            .ok(200);
        let nonce = account["next_nonce"].as_u64().expect("next_nonce");
        sign(&self.params, key, nonce, body)
    }

    /// Polls the transaction until it leaves the mempool; returns its status body.
    async fn wait_for_tx(&self, hash: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let body = self
                .get(&format!("/api/v1/transactions/{hash}"))
                .await
                .ok(200);
            assert_eq!(body["hash"], hash, "{body}");
            if body["status"] != "pending" {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "transaction {hash} still pending after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(BLOCK_INTERVAL_MS / 2)).await;
        }
    }

    /// Submits and waits for the commit; returns the receipt.
    async fn commit(&self, tx: &SignedTransaction) -> Value {
        let accepted = self.submit(tx).await.ok(202);
        let hash = accepted["hash"].as_str().expect("hash").to_string();
        assert_eq!(hash, tx.hash().to_string());
        let status = self.wait_for_tx(&hash).await;
        assert_eq!(status["status"], "committed", "{status}");
        status["receipt"].clone()
    }

    async fn balance(&self, address: &Address) -> Amount {
        let account = self
            .get(&format!("/api/v1/accounts/{address}"))
            .await
            .ok(200);
        serde_json::from_value(account["balance"].clone()).expect("an amount")
    }

    async fn openapi(&self) -> Value {
        self.get("/api/v1/openapi.json").await.ok(200)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(DEADLINE, server)
                .await
                .expect("the server stops in time");
            result
                .expect("the server task")
                .expect("the server ends cleanly");
        }
        self.node.shutdown().await;
    }
}

fn sign(params: &Params, key: &SecretKey, nonce: u64, body: TxBody) -> SignedTransaction {
    let draft = Transaction {
        chain_id: CHAIN_ID.into(),
        signer: key.public_key(),
        nonce,
        fee: params.tx_fee_min,
        body,
    };
    // The fee is a fixed-size field, so the size (and the minimum fee) does not change with it.
    let fee = flux_ledger::min_fee(params, &draft.clone().sign(key));
    Transaction { fee, ..draft }.sign(key)
}

fn hello_spec(owner: Address) -> AppSpec {
    AppSpec {
        name: "hello".into(),
        description: "A small web server that answers hello".into(),
        owner,
        instances: 3,
        contacts: vec![],
        geolocation: vec![],
        nodes: vec![],
        static_ip: false,
        components: vec![Component {
            name: "web".into(),
            description: "The web server".into(),
            repotag: "flux-hello:latest".into(),
            ports: vec![31_000],
            container_ports: vec![8080],
            domains: vec![String::new()],
            environment: vec!["GREETING=hello".into()],
            commands: vec![],
            container_data: "/data".into(),
            cpu_tenths: 5,
            ram_mb: 300,
            hdd_gb: 1,
            health_path: String::new(),
        }],
    }
}

/// The property names that schema `name` of the OpenAPI document gives
/// `value`, following references and `allOf`; for a tagged `oneOf`, the
/// variant whose tag matches `value`.
fn documented_properties(doc: &Value, name: &str, value: &Value) -> BTreeSet<String> {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "schema {name} is not in the document");
    let mut names = BTreeSet::new();
    collect_properties(doc, schema, value, &mut names);
    names
}

fn collect_properties(doc: &Value, schema: &Value, value: &Value, names: &mut BTreeSet<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        collect_properties(doc, &doc["components"]["schemas"][name], value, names);
    }
    if let Some(properties) = schema["properties"].as_object() {
        names.extend(properties.keys().cloned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect_properties(doc, part, value, names);
    }
    if let Some(variants) = schema["oneOf"].as_array() {
        let tag_matches = |variant: &&Value| {
            variant["properties"].as_object().is_some_and(|properties| {
                properties
                    .iter()
                    .all(|(key, property)| match property["enum"].as_array() {
                        Some(tags) if tags.len() == 1 => value[key] == tags[0],
                        _ => true,
                    })
            })
        };
        let variant = variants
            .iter()
            .find(tag_matches)
            .unwrap_or_else(|| panic!("no variant of {schema} fits {value}"));
        collect_properties(doc, variant, value, names);
    }
}

/// Asserts that `value` has exactly the properties the document gives schema `name`.
fn assert_documented(doc: &Value, name: &str, value: &Value) {
    let keys: BTreeSet<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        documented_properties(doc, name, value),
        "schema {name} does not describe {value}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_is_committed_and_moves_balances() {
    let h = Harness::start().await;
    let sender = dev0();
    let recipient = SecretKey::development("recipient").address();
    assert_eq!(h.balance(&sender.address()).await, FUNDS);
    assert_eq!(h.balance(&recipient).await, Amount::ZERO);

    let amount = Amount::units(1_234_500_000);
    let tx = h
        .sign(
            &sender,
            TxBody::Transfer {
                to: recipient,
                amount,
            },
        )
        .await;
    let receipt = h.commit(&tx).await;
    let doc = h.openapi().await;
    let status = h
        .get(&format!("/api/v1/transactions/{}", tx.hash()))
        .await
        .ok(200);
    assert_documented(&doc, "TxStatus", &status);
    assert_documented(&doc, "ReceiptDetail", &receipt["detail"]);
    assert_eq!(receipt["detail"]["type"], "transfer", "{receipt}");
    assert_eq!(receipt["detail"]["amount"], "12.34500000", "{receipt}");

    assert_eq!(h.balance(&recipient).await, amount);
    let spent = amount.checked_add(tx.tx.fee).unwrap();
    assert_eq!(
        h.balance(&sender.address()).await,
        FUNDS.checked_sub(spent).unwrap()
    );
    let account = h
        .get(&format!("/api/v1/accounts/{}", sender.address()))
        .await
        .ok(200);
    assert_eq!(account["nonce"], 1, "{account}");
    assert_eq!(account["next_nonce"], 1, "{account}");
    assert_documented(&doc, "AccountResponse", &account);

    // The block that holds it lists it, with the header the document describes.
    let height = receipt["height"].as_u64().expect("receipt height");
    let block = h.get(&format!("/api/v1/blocks/{height}")).await.ok(200);
    assert_eq!(block["header"]["height"], height, "{block}");
    let hashes: Vec<&str> = block["txs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["hash"].as_str().unwrap())
        .collect();
    assert!(hashes.contains(&tx.hash().to_string().as_str()), "{block}");
    let listed = block["txs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["hash"] == tx.hash().to_string())
        .unwrap();
    assert_eq!(listed["tx"]["tx"]["body"]["type"], "transfer");
    let doc = h.openapi().await;
    assert_documented(&doc, "BlockResponse", &block);
    assert_documented(&doc, "BlockHeader", &block["header"]);
    assert_documented(&doc, "SignedTransaction", &listed["tx"]);
    assert_documented(&doc, "Transaction", &listed["tx"]["tx"]);
    assert_documented(&doc, "TxBody", &listed["tx"]["tx"]["body"]);
    assert_documented(&doc, "Receipt", &receipt);

    // Sending it again is refused and changes nothing.
    let again = h.submit(&tx).await;
    assert!(
        matches!(again.status, 409 | 422),
        "a replayed transaction must be refused: {again:?}"
    );
    assert_eq!(h.balance(&recipient).await, amount);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_transactions_are_refused_with_stable_codes() {
    let h = Harness::start().await;
    let key = dev0();
    let valid = h
        .sign(
            &key,
            TxBody::Transfer {
                to: SecretKey::development("x").address(),
                amount: Amount::flux(1),
            },
        )
        .await;
    let mut forged = valid.clone();
    forged.signature.0[0] ^= 1;
    let mut other_chain = valid.tx.clone();
    other_chain.chain_id = "flux-mainnet".into();
    let other_chain = other_chain.sign(&key);
    let quote = flux_ledger::quote(&h.params, &hello_spec(key.address()), 1).unwrap();
    let underpaid = h
        .sign(
            &key,
            TxBody::AppRegister {
                spec: hello_spec(key.address()),
                months: 1,
                max_payment: quote.total.checked_sub(Amount::units(1)).unwrap(),
            },
        )
        .await;
    let broke = SecretKey::development("nobody");
    let no_funds = sign(
        &h.params,
        &broke,
        0,
        TxBody::Transfer {
            to: key.address(),
            amount: Amount::flux(1),
        },
    );

    struct Case {
        what: &'static str,
        body: Value,
        status: u16,
        code: &'static str,
        detail_has: Vec<String>,
    }
    let hex_of = |tx: &SignedTransaction| json!({ "tx": hex::encode(tx.to_bytes()) });
    let cases = [
        Case {
            what: "garbage bytes",
            body: json!({ "tx": "deadbeef" }),
            status: 400,
            code: "malformed_tx",
            detail_has: vec!["transaction is malformed".into()],
        },
        Case {
            what: "not hex",
            body: json!({ "tx": "not hex" }),
            status: 400,
            code: "malformed_tx",
            detail_has: vec!["hexadecimal".into()],
        },
        Case {
            what: "trailing bytes",
            body: json!({ "tx": format!("{}00", hex::encode(valid.to_bytes())) }),
            status: 400,
            code: "malformed_tx",
            detail_has: vec![],
        },
        Case {
            what: "no tx field",
            body: json!({ "transaction": "00" }),
            status: 400,
            code: "bad_request",
            detail_has: vec!["missing field `tx`".into()],
        },
        Case {
            what: "bad signature",
            body: hex_of(&forged),
            status: 422,
            code: "invalid_signature",
            detail_has: vec![key.address().to_string()],
        },
        Case {
            what: "another chain",
            body: hex_of(&other_chain),
            status: 422,
            code: "wrong_chain",
            detail_has: vec!["flux-mainnet".into(), CHAIN_ID.into()],
        },
        Case {
            what: "underpaid app registration",
            body: hex_of(&underpaid),
            status: 422,
            code: "underpaid",
            detail_has: vec![
                format!("price is {} FLUX", quote.total),
                format!(
                    "you paid {}",
                    quote.total.checked_sub(Amount::units(1)).unwrap()
                ),
            ],
        },
        Case {
            what: "no funds",
            body: hex_of(&no_funds),
            status: 422,
            code: "insufficient_funds",
            detail_has: vec!["insufficient funds".into()],
        },
    ];
    for case in cases {
        let reply = h.post("/api/v1/transactions", &case.body).await;
        let detail = reply.problem(case.status, case.code);
        for part in &case.detail_has {
            assert!(
                detail.contains(part.as_str()),
                "{}: '{detail}' should mention '{part}'",
                case.what
            );
        }
    }
    let not_json = h.post_raw("/api/v1/transactions", "{\"tx\": ").await;
    assert!(
        not_json.problem(400, "bad_request").contains("EOF"),
        "{not_json:?}"
    );

    // Nothing was registered or moved.
    h.get("/api/v1/apps/hello")
        .await
        .problem(404, "app_not_found");
    assert_eq!(h.balance(&key.address()).await, FUNDS);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_is_checked_transaction_by_transaction() {
    let h = Harness::start().await;
    let doc = h.openapi().await;
    let sender = dev0();
    let start = h
        .get(&format!("/api/v1/accounts/{}", sender.address()))
        .await
        .ok(200)["next_nonce"]
        .as_u64()
        .expect("next_nonce");
    let to = |label: &str| TxBody::Transfer {
        to: SecretKey::development(label).address(),
        amount: Amount::flux(1),
    };
    let first = sign(&h.params, &sender, start, to("batch-a"));
    let second = sign(&h.params, &sender, start + 1, to("batch-b"));
    let mut forged = sign(&h.params, &sender, start + 2, to("batch-c"));
    forged.tx.body = to("mallory");
    let batch = |txs: &[&SignedTransaction]| {
        let txs: Vec<String> = txs.iter().map(|tx| hex::encode(tx.to_bytes())).collect();
        json!({ "txs": txs })
    };
    let body = h
        .post(
            "/api/v1/transactions/batch",
            &batch(&[&first, &second, &forged, &first]),
        )
        .await
        .ok(200);
    assert_documented(&doc, "SubmitBatchResponse", &body);
    assert_eq!(body["accepted"], 2, "{body}");
    let results = body["results"].as_array().expect("results");
    let fates: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|item| {
            assert_documented(&doc, "BatchItem", item);
            (
                item["hash"].as_str().unwrap(),
                item["status"].as_str().unwrap(),
                item["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let (first_hash, second_hash, forged_hash) = (
        first.hash().to_string(),
        second.hash().to_string(),
        forged.hash().to_string(),
    );
    assert_eq!(
        fates,
        vec![
            (first_hash.as_str(), "accepted", ""),
            (second_hash.as_str(), "accepted", ""),
            (forged_hash.as_str(), "refused", "invalid_signature"),
            (first_hash.as_str(), "refused", "duplicate_tx"),
        ]
    );
    assert_eq!(h.wait_for_tx(&second_hash).await["status"], "committed");
    // Checked against the latest state, as a single submission is.
    let used = sign(&h.params, &sender, start, to("batch-d"));
    let body = h
        .post("/api/v1/transactions/batch", &batch(&[&used]))
        .await
        .ok(200);
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(body["results"][0]["code"], "nonce_used", "{body}");

    // Malformed entries refuse the whole batch, naming the entry.
    let mut malformed = batch(&[&first]);
    malformed["txs"].as_array_mut().unwrap().push(json!("zz"));
    let detail = h
        .post("/api/v1/transactions/batch", &malformed)
        .await
        .problem(400, "malformed_tx");
    assert!(detail.contains("txs[1]"), "{detail}");
    let too_many = json!({ "txs": vec!["00"; 501] });
    let detail = h
        .post("/api/v1/transactions/batch", &too_many)
        .await
        .problem(400, "too_many_txs");
    assert!(detail.contains("500"), "{detail}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_apps_and_nodes_are_listed() {
    let h = Harness::start().await;
    let owner = dev0();
    let spec = hello_spec(owner.address());
    let quote = flux_ledger::quote(&h.params, &spec, 2).unwrap();
    let receipt = h
        .commit(
            &h.sign(
                &owner,
                TxBody::AppRegister {
                    spec: spec.clone(),
                    months: 2,
                    max_payment: quote.total,
                },
            )
            .await,
        )
        .await;
    assert_eq!(receipt["detail"]["type"], "app_registered", "{receipt}");
    let doc = h.openapi().await;
    assert_documented(&doc, "ReceiptDetail", &receipt["detail"]);
    let node_key = SecretKey::development("node-a");
    h.commit(
        &h.sign(
            &owner,
            TxBody::NodeRegister {
                node_key: node_key.public_key(),
                tier: Tier::Cumulus,
                endpoint: "127.0.0.1:16200".into(),
                region: "EU_CZ".into(),
            },
        )
        .await,
    )
    .await;
    let doc = h.openapi().await;

    let app = h.get("/api/v1/apps/hello").await.ok(200);
    assert_eq!(app["spec"]["name"], "hello");
    assert_eq!(app["months"], 2);
    assert_eq!(app["expires_at_ms"], receipt["detail"]["expires_at_ms"]);
    assert_documented(&doc, "AppDetail", &app);
    assert_eq!(
        (app["wanted"].as_u64(), app["placed"].as_u64()),
        (Some(3), Some(0)),
        "no confirmed node yet: {app}"
    );
    assert_eq!(app["instances"][2]["node"], Value::Null, "{app}");
    assert_documented(&doc, "AppSpec", &app["spec"]);
    assert_documented(&doc, "Component", &app["spec"]["components"][0]);
    let apps = h.get("/api/v1/apps").await.ok(200);
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    assert_eq!(apps[0]["price_per_month"], json!(quote.per_month), "{apps}");
    assert_documented(&doc, "AppListItem", &apps[0]);
    assert_eq!(h.get("/api/v1/apps?after=hello").await.ok(200), json!([]));
    h.get("/api/v1/apps?limit=0")
        .await
        .problem(400, "bad_request");
    h.get("/api/v1/apps?limit=many")
        .await
        .problem(400, "bad_request");

    let id = node_key.address().to_string();
    let node = h.get(&format!("/api/v1/nodes/{id}")).await.ok(200);
    assert_eq!(node["id"], id.as_str());
    assert_eq!(node["owner"], owner.address().to_string());
    assert_eq!(node["tier"], "cumulus");
    assert_documented(&doc, "NodeDetail", &node);
    assert_eq!(node["pending_reason"]["reason"], "no_benchmark", "{node}");
    // Its work and rewards: nothing verified, nothing paid, no seat (the
    // single validator holds the only one).
    let work = &node["work"];
    assert_documented(&doc, "NodeWork", work);
    assert_documented(&doc, "EpochWork", &work["this_epoch"]);
    let epoch = work["epoch"].as_u64().expect("an epoch");
    assert_eq!(work["this_epoch"]["epoch"], epoch, "{work}");
    match epoch.checked_sub(1) {
        Some(last) => assert_eq!(work["last_epoch"]["epoch"], last, "{work}"),
        None => assert_eq!(work["last_epoch"], Value::Null, "{work}"),
    }
    assert_eq!(work["this_epoch"]["assigned_windows"], 0, "{work}");
    assert_eq!(
        work["this_epoch"]["verified_permille"],
        Value::Null,
        "{work}"
    );
    assert_eq!(work["rewards_total"], json!(Amount::ZERO), "{work}");
    assert_eq!(work["rewards_last_paid_epoch"], Value::Null, "{work}");
    assert_eq!(work["committee_seat"], false, "{work}");
    let committee = h.get("/api/v1/committee").await.ok(200);
    assert_documented(&doc, "Committee", &committee);
    let members = committee["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{committee}");
    assert_documented(&doc, "CommitteeMember", &members[0]);
    let validator = SecretKey::development("validator0");
    assert_eq!(members[0]["node_key"], json!(validator.public_key()));
    assert_eq!(members[0]["id"], validator.address().to_string());
    assert_eq!(members[0]["name"], "validator0");
    assert_eq!(members[0]["tier"], Value::Null, "not a registered node");
    // The list shows the records alone.
    let mut node = node;
    for detail in [
        "benchmark",
        "pending_reason",
        "resources",
        "instances",
        "work",
    ] {
        node.as_object_mut().expect("an object").remove(detail);
    }
    assert_documented(&doc, "NodeRecord", &node);
    let nodes = h.get("/api/v1/nodes").await.ok(200);
    assert_eq!(nodes, json!([node]));
    assert_eq!(
        h.get(&format!("/api/v1/nodes?after={id}")).await.ok(200),
        json!([])
    );
    assert_eq!(h.get("/api/v1/nodes?limit=1").await.ok(200), json!([node]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotes_price_valid_specs_and_name_the_field_of_invalid_ones() {
    let h = Harness::start().await;
    let spec = hello_spec(dev0().address());
    let expected = flux_ledger::quote(&h.params, &spec, 3).unwrap();
    let quote = h
        .post("/api/v1/apps/quote", &json!({ "spec": spec, "months": 3 }))
        .await
        .ok(200);
    assert_eq!(quote, serde_json::to_value(&expected).unwrap());
    assert_documented(&h.openapi().await, "Quote", &quote);
    let one_month = h
        .post("/api/v1/apps/quote", &json!({ "spec": spec }))
        .await
        .ok(200);
    assert_eq!(one_month["months"], 1, "months defaults to 1");

    let mut banned = spec.clone();
    banned.components[0].ports = vec![22];
    let reply = h
        .post(
            "/api/v1/apps/quote",
            &json!({ "spec": banned, "months": 1 }),
        )
        .await;
    let detail = reply.problem(422, "invalid_spec");
    assert!(detail.contains("compose[0].ports"), "{detail}");
    assert_eq!(reply.json()["field"], "compose[0].ports");

    let mut too_many = spec.clone();
    too_many.instances = 101;
    let detail = h
        .post("/api/v1/apps/quote", &json!({ "spec": too_many }))
        .await
        .problem(422, "invalid_spec");
    assert!(detail.contains("instances"), "{detail}");

    let detail = h
        .post("/api/v1/apps/quote", &json!({ "spec": spec, "months": 0 }))
        .await
        .problem(422, "months_out_of_range");
    assert!(detail.contains("between 1 and 12"), "{detail}");

    let mut incomplete = serde_json::to_value(&spec).unwrap();
    incomplete.as_object_mut().unwrap().remove("owner");
    let detail = h
        .post("/api/v1/apps/quote", &json!({ "spec": incomplete }))
        .await
        .problem(400, "bad_request");
    assert!(detail.contains("missing field `owner`"), "{detail}");
    h.post_raw("/api/v1/apps/quote", "not json")
        .await
        .problem(400, "bad_request");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_things_are_problems() {
    let h = Harness::start().await;
    let detail = h
        .get("/api/v1/blocks/999999")
        .await
        .problem(404, "block_not_found");
    assert!(detail.contains("999999"), "{detail}");
    h.get("/api/v1/blocks/tip").await.problem(400, "bad_height");
    h.get("/api/v1/apps/nothere")
        .await
        .problem(404, "app_not_found");
    h.get("/api/v1/apps/quote")
        .await
        .problem(404, "app_not_found");
    let nobody = SecretKey::development("no-node").address();
    h.get(&format!("/api/v1/nodes/{nobody}"))
        .await
        .problem(404, "node_not_found");
    h.get("/api/v1/nodes/flux1nothing")
        .await
        .problem(400, "bad_address");

    // One changed character fails the checksum.
    let address = dev0().address().to_string();
    let last = address.chars().last().unwrap();
    let typo = format!(
        "{}{}",
        &address[..address.len() - 1],
        if last == 'q' { 'p' } else { 'q' }
    );
    let detail = h
        .get(&format!("/api/v1/accounts/{typo}"))
        .await
        .problem(400, "bad_address");
    assert!(detail.contains("checksum"), "{detail}");
    let long = "a".repeat(4096);
    h.get(&format!("/api/v1/accounts/{long}"))
        .await
        .problem(400, "bad_address");

    let unknown = h
        .get(&format!("/api/v1/transactions/{}", "00".repeat(32)))
        .await
        .ok(200);
    assert_eq!(unknown["status"], "unknown", "{unknown}");
    assert_documented(&h.openapi().await, "TxStatus", &unknown);
    h.get("/api/v1/transactions/xyz")
        .await
        .problem(400, "bad_hash");

    let detail = h.get("/api/v1/nothing").await.problem(404, "not_found");
    assert!(detail.contains("/api/v1/nothing"), "{detail}");
    h.get("/api/v2/status").await.problem(404, "not_found");
    let response = h
        .http
        .delete(format!("{}/api/v1/status", h.base))
        .send()
        .await
        .unwrap();
    Harness::reply(response)
        .await
        .problem(405, "method_not_allowed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_over_the_limit_are_refused() {
    let h = Harness::start_with(ApiConfig {
        body_bytes_max: 4096,
        ..ApiConfig::default()
    })
    .await;
    let big = json!({ "tx": "00".repeat(4096) }).to_string();
    let detail = h
        .post_raw("/api/v1/transactions", big.clone())
        .await
        .problem(413, "body_too_large");
    assert!(detail.contains("4096"), "{detail}");
    h.post_raw("/api/v1/apps/quote", big)
        .await
        .problem(413, "body_too_large");
    // Just under the limit is read (and refused for what it is).
    let fits = json!({ "tx": "00".repeat(2000) }).to_string();
    h.post_raw("/api/v1/transactions", fits)
        .await
        .problem(400, "malformed_tx");
    h.stop().await;
}

/// An amount of a response, exactly.
fn amount(value: &Value) -> Amount {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn supply_is_genesis_plus_issued_minus_burned() {
    let h = Harness::start().await;
    let deadline = Instant::now() + DEADLINE;
    let supply = loop {
        let supply = h.get("/api/v1/supply").await.ok(200);
        if supply["height"].as_u64().unwrap_or(0) >= 3 {
            break supply;
        }
        assert!(Instant::now() < deadline, "no third block: {supply}");
        tokio::time::sleep(Duration::from_millis(BLOCK_INTERVAL_MS)).await;
    };
    assert_documented(&h.openapi().await, "Supply", &supply);
    let [
        total,
        genesis,
        issued,
        burned,
        pool,
        treasury,
        deposits,
        to_nodes,
        to_treasury,
    ] = [
        "total",
        "genesis",
        "issued",
        "burned",
        "reward_pool",
        "treasury",
        "gov_deposits",
        "paid_to_nodes",
        "paid_to_treasury",
    ]
    .map(|key| amount(&supply[key]));
    assert_eq!(genesis, FUNDS, "{supply}");
    assert_eq!(
        Some(total),
        genesis
            .checked_add(issued)
            .and_then(|s| s.checked_sub(burned)),
        "{supply}"
    );
    // Issued is the schedule at the time of that very block.
    let height = supply["height"].as_u64().expect("a height");
    let block = h.get(&format!("/api/v1/blocks/{height}")).await.ok(200);
    let elapsed = block["header"]["timestamp_ms"].as_u64().expect("a time")
        - h.node.genesis().genesis_time_ms;
    let scheduled = flux_ledger::scheduled_issuance(&h.params.rewards, elapsed);
    assert_eq!(u128::from(issued.as_units()), scheduled, "{supply}");
    assert!(!issued.is_zero(), "{supply}");
    // No node works on this chain: everything issued waits in the pool.
    assert_eq!(burned, Amount::ZERO, "{supply}");
    assert_eq!(deposits, Amount::ZERO, "{supply}");
    assert_eq!((to_nodes, to_treasury), (Amount::ZERO, Amount::ZERO));
    assert_eq!((pool, treasury), (issued, Amount::ZERO), "{supply}");
    assert!(
        supply["unpaid_epoch"].as_u64() <= supply["epoch"].as_u64(),
        "{supply}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_document_describes_every_route() {
    let h = Harness::start().await;
    let doc = h.openapi().await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        let operation = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not documented"))[method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"]["200"].is_object() || operation["responses"]["202"].is_object()
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists operations the server does not have"
    );

    // Path parameters are declared, and errors point at the problem type.
    let block = &paths["/api/v1/blocks/{height}"]["get"];
    assert_eq!(block["parameters"][0]["name"], "height");
    assert_eq!(block["parameters"][0]["in"], "path");
    let not_found =
        &block["responses"]["404"]["content"]["application/problem+json"]["schema"]["$ref"];
    assert_eq!(not_found, "#/components/schemas/Problem");
    let problem = documented_properties(&doc, "Problem", &Value::Null);
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(problem.contains(field), "Problem lacks {field}");
    }
    let list = &paths["/api/v1/nodes"]["get"]["parameters"];
    let names: BTreeSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["after", "limit"]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_metrics_params_and_dashboard() {
    let h = Harness::start().await;
    let first = h.get("/api/v1/status").await.ok(200);
    assert_eq!(first["chain_id"], CHAIN_ID);
    assert_documented(&h.openapi().await, "ChainStatus", &first);
    let start = first["height"].as_u64().unwrap();
    h.node.wait_for_height(start + 2).await;
    let later = h.get("/api/v1/status").await.ok(200);
    assert!(later["height"].as_u64().unwrap() >= start + 2, "{later}");
    assert!(
        later["time_ms"].as_u64() > first["time_ms"].as_u64(),
        "{later}"
    );

    let params = h.get("/api/v1/params").await.ok(200);
    assert_eq!(params, serde_json::to_value(&h.params).unwrap());

    let metrics = h.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    for line in [
        "\nflux_chain_height ",
        "\nflux_mempool_txs ",
        "flux_api_requests_total{route=\"/api/v1/status\",status=\"200\"} 2\n",
        "flux_api_connections_open ",
    ] {
        assert!(
            metrics.text.contains(line),
            "metrics lack {line:?}:\n{}",
            metrics.text
        );
    }
    h.get("/nothing").await.problem(404, "not_found");
    let metrics = h.get("/metrics").await;
    assert!(
        metrics
            .text
            .contains("flux_api_requests_total{route=\"unmatched\",status=\"404\"} 1\n"),
        "{}",
        metrics.text
    );

    let page = h.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.text.contains("<title>Flux node</title>"));
    for api in [
        "/status",
        "/nodes",
        "/nodes/",
        "/apps",
        "/supply",
        "/committee",
    ] {
        assert!(
            page.text.contains(&format!("\"{api}\"")),
            "the dashboard does not read {api}"
        );
    }
    h.stop().await;
}

/// Sends a keep-alive request on a raw connection and reads the whole answer.
async fn raw_request(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(
            read > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if answer.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_cap_wait_for_a_free_one() {
    let h = Harness::start_with(ApiConfig {
        connections_max: 2,
        ..ApiConfig::default()
    })
    .await;
    let request = "GET /api/v1/status HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(h.address()).await.unwrap();
        assert!(
            raw_request(&mut stream, request)
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(stream);
    }
    // Both permits are held by open keep-alive connections: a third waits.
    let mut third = {
        let url = format!("{}/api/v1/status", h.base);
        tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) })
    };
    // Proving that something does not happen takes a bounded wait.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut third).await;
    assert!(
        early.is_err(),
        "a third connection was served while two held the cap: {early:?}"
    );
    drop(held.pop());
    let status = tokio::time::timeout(DEADLINE, third)
        .await
        .expect("served once a connection closed");
    assert_eq!(status.unwrap().unwrap(), 200);
    drop(held);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_whose_body_never_comes_times_out() {
    let h = Harness::start_with(ApiConfig {
        request_timeout_ms: 300,
        ..ApiConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(h.address()).await.unwrap();
    let started = Instant::now();
    let answer = raw_request(
        &mut stream,
        "POST /api/v1/transactions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(stream);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_are_closed() {
    let h = Harness::start_with(ApiConfig {
        request_timeout_ms: 100,
        ..ApiConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(h.address()).await.unwrap();
    let answer = raw_request(
        &mut stream,
        "GET /api/v1/status HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Kept alive but silent: the server closes it after twice the request timeout.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected the connection closed, read {read:?}"
    );
    let metrics = h.get("/metrics").await;
    assert!(
        metrics.text.contains("\nflux_api_connections_open 1\n"),
        "{}",
        metrics.text
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_in_use_is_reported() {
    let h = Harness::start().await;
    let taken = h.address();
    let config = ApiConfig {
        listen: taken,
        ..ApiConfig::default()
    };
    let error = flux_api::serve(h.node.clone(), config, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string().split(';').next(),
        Some(format!("address {taken} is in use").as_str()),
        "{error}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proposals_votes_params_and_the_blocklist_are_served_and_documented() {
    let mut params = Params::devnet();
    params.gov.voting_period_ms = 1_000;
    params.gov.activation_delay_blocks = 2;
    let h = Harness::start_with_params(ApiConfig::default(), params).await;
    let key = dev0();
    let doc = h.openapi().await;
    let listed = h.get("/api/v1/gov/params").await.ok(200);
    let cpu = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "app_prices.cpu_per_tenth")
        .expect("the CPU price is governable")
        .clone();
    assert_eq!(cpu["value"], "0.03", "{cpu}");
    assert_eq!(cpu["since_height"], 0, "{cpu}");
    assert_documented(&doc, "ParamView", &cpu);

    // A proposal that breaks a range is refused with the param's code.
    let bad = h
        .sign(
            &key,
            TxBody::GovPropose {
                title: "no quorum".into(),
                description: String::new(),
                action: flux_types::ProposalAction::ParamChange {
                    changes: vec![flux_types::ParamChange {
                        key: "gov.quorum_percent".into(),
                        value: "0".into(),
                    }],
                },
                deposit: h.params.gov.proposal_deposit,
            },
        )
        .await;
    let detail = h.submit(&bad).await.problem(422, "param_out_of_range");
    assert!(detail.contains("1 to 100"), "{detail}");

    let propose = h
        .sign(
            &key,
            TxBody::GovPropose {
                title: "Cheaper CPU".into(),
                description: "a third off".into(),
                action: flux_types::ProposalAction::ParamChange {
                    changes: vec![flux_types::ParamChange {
                        key: "app_prices.cpu_per_tenth".into(),
                        value: "0.02".into(),
                    }],
                },
                deposit: h.params.gov.proposal_deposit,
            },
        )
        .await;
    let receipt = h.commit(&propose).await;
    assert_eq!(receipt["detail"]["type"], "proposal_submitted", "{receipt}");
    assert_documented(&doc, "ReceiptDetail", &receipt["detail"]);
    let block = h
        .get(&format!("/api/v1/blocks/{}", receipt["height"]))
        .await
        .ok(200);
    let body = &block["txs"][0]["tx"]["tx"]["body"];
    assert_eq!(body["type"], "gov_propose", "{block}");
    assert_documented(&doc, "TxBody", body);
    assert_documented(&doc, "ProposalAction", &body["action"]);

    let receipt = h
        .commit(
            &h.sign(
                &key,
                TxBody::GovVote {
                    proposal: 1,
                    choice: flux_types::VoteChoice::Yes,
                },
            )
            .await,
        )
        .await;
    assert_eq!(receipt["detail"]["type"], "voted", "{receipt}");
    assert_documented(&doc, "ReceiptDetail", &receipt["detail"]);
    let votes = h.get("/api/v1/gov/proposals/1/votes").await.ok(200);
    assert_eq!(votes[0]["voter"], key.address().to_string(), "{votes}");
    assert_eq!(votes[0]["choice"], "yes", "{votes}");
    assert_documented(&doc, "VoteView", &votes[0]);

    // Wait for the vote to close and the change to apply.
    let deadline = Instant::now() + DEADLINE;
    let proposal = loop {
        let proposal = h.get("/api/v1/gov/proposals/1").await.ok(200);
        if proposal["activation"]["result"] == "applied" {
            break proposal;
        }
        assert!(Instant::now() < deadline, "not applied: {proposal}");
        tokio::time::sleep(Duration::from_millis(BLOCK_INTERVAL_MS)).await;
    };
    assert_eq!(proposal["status"], "passed", "{proposal}");
    assert_eq!(proposal["time_left_ms"], 0, "{proposal}");
    assert_eq!(proposal["quorum_reached"], true, "{proposal}");
    assert_documented(&doc, "Proposal", &proposal);
    assert_documented(&doc, "Tally", &proposal["tally"]);
    assert_documented(&doc, "Activation", &proposal["activation"]);
    let height = proposal["activation"]["height"].clone();
    let listed = h.get("/api/v1/gov/params").await.ok(200);
    let cpu = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "app_prices.cpu_per_tenth")
        .unwrap()
        .clone();
    assert_eq!(
        (&cpu["value"], &cpu["since_height"]),
        (&json!("0.02"), &height)
    );
    let spec = hello_spec(key.address());
    let quote = h
        .post("/api/v1/apps/quote", &json!({ "spec": spec }))
        .await
        .ok(200);
    assert_eq!(quote["per_instance_month"], "0.13400000", "{quote}");

    // Lists filter by status; errors are problems.
    let passed = h.get("/api/v1/gov/proposals?status=passed").await.ok(200);
    assert_eq!(passed.as_array().map(Vec::len), Some(1), "{passed}");
    let open = h.get("/api/v1/gov/proposals?status=open").await.ok(200);
    assert_eq!(open, json!([]));
    assert_eq!(
        h.get("/api/v1/gov/proposals?after=1").await.ok(200),
        json!([])
    );
    h.get("/api/v1/gov/proposals?status=maybe")
        .await
        .problem(400, "bad_request");
    h.get("/api/v1/gov/proposals/7")
        .await
        .problem(404, "proposal_not_found");
    h.get("/api/v1/gov/proposals/seven")
        .await
        .problem(400, "bad_proposal_id");
    h.get("/api/v1/gov/proposals/7/votes")
        .await
        .problem(404, "proposal_not_found");
    let blocklist = h.get("/api/v1/gov/blocklist").await.ok(200);
    assert_eq!(blocklist, json!({ "images": [], "apps": [] }));
    assert_documented(&doc, "BlocklistView", &blocklist);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_benchmarked_node_is_confirmed_and_shows_what_is_placed_on_it() {
    let h = Harness::start().await;
    let owner = dev0();
    let node_key = SecretKey::development("node-b");
    let id = node_key.address().to_string();
    h.commit(
        &h.sign(
            &owner,
            TxBody::NodeRegister {
                node_key: node_key.public_key(),
                tier: Tier::Cumulus,
                endpoint: "127.0.0.5:16127".into(),
                region: "EU_CZ".into(),
            },
        )
        .await,
    )
    .await;
    let report = BenchmarkReport {
        cores: 4,
        ram_mb: 8_000,
        disk_gb: 100,
        cpu_score: 1_000,
        disk_write_mb_per_s: 200,
    };
    // Signed by the node's own key, which holds nothing: a benchmark pays no fee.
    let receipt = h
        .commit(&h.sign(&node_key, TxBody::NodeBenchmark { report }).await)
        .await;
    let doc = h.openapi().await;
    assert_eq!(receipt["detail"]["type"], "node_benchmarked", "{receipt}");
    assert_eq!(receipt["detail"]["status"], "confirmed", "{receipt}");
    assert_eq!(receipt["detail"]["shortfalls"], json!([]), "{receipt}");
    assert_eq!(receipt["fee"], "0.00000000", "{receipt}");
    assert_documented(&doc, "ReceiptDetail", &receipt["detail"]);

    let spec = hello_spec(owner.address());
    let quote = flux_ledger::quote(&h.params, &spec, 1).unwrap();
    h.commit(
        &h.sign(
            &owner,
            TxBody::AppRegister {
                spec,
                months: 1,
                max_payment: quote.total,
            },
        )
        .await,
    )
    .await;
    let app = h.get("/api/v1/apps/hello").await.ok(200);
    assert_documented(&doc, "AppDetail", &app);
    assert_eq!(
        (app["wanted"].as_u64(), app["placed"].as_u64()),
        (Some(3), Some(1)),
        "{app}"
    );
    let first = &app["instances"][0];
    assert_documented(&doc, "InstancePlacement", first);
    assert_eq!(first["node"], id.as_str(), "{app}");
    assert_eq!(first["node_endpoint"], "127.0.0.5:16127", "{app}");
    assert_eq!(first["addresses"], json!(["127.0.0.5:31000"]), "{app}");
    assert_eq!(
        app["instances"][1]["node"],
        Value::Null,
        "one node, one instance: {app}"
    );

    let node = h.get(&format!("/api/v1/nodes/{id}")).await.ok(200);
    assert_documented(&doc, "NodeDetail", &node);
    assert_eq!(node["status"], "confirmed", "{node}");
    assert_eq!(node["pending_reason"], Value::Null, "{node}");
    assert_eq!(node["benchmark"]["passed"], true, "{node}");
    assert_documented(&doc, "BenchmarkRecord", &node["benchmark"]);
    assert_eq!(
        node["instances"],
        json!([{ "app": "hello", "instance": 0 }]),
        "{node}"
    );
    assert_eq!(node["resources"]["used"]["cpu_tenths"], 5, "{node}");
    assert_documented(&doc, "NodeResources", &node["resources"]);

    // An update that changes what runs rolls over the slots one at a time:
    // the app shows the previous spec and how far the rollout has come.
    let mut updated = hello_spec(owner.address());
    updated.components[0].environment = vec!["GREETING=bonjour".into()];
    h.commit(
        &h.sign(
            &owner,
            TxBody::AppUpdate {
                spec: updated,
                months: 1,
                max_payment: quote.total,
            },
        )
        .await,
    )
    .await;
    let app = h.get("/api/v1/apps/hello").await.ok(200);
    assert_documented(&doc, "AppDetail", &app);
    assert_documented(&doc, "Rollout", &app["rollout"]);
    assert_documented(&doc, "RolloutProgress", &app["rollout_progress"]);
    assert_eq!(
        app["rollout"]["previous"]["components"][0]["environment"],
        json!(["GREETING=hello"]),
        "{app}"
    );
    assert_eq!(
        app["rollout"]["interval_ms"], h.params.scheduler.update_roll_interval_ms,
        "{app}"
    );
    assert_eq!(app["rollout_progress"]["of"], 3, "{app}");
    assert!(
        app["rollout_progress"]["updated"].as_u64() < Some(3),
        "slot 2 switches two intervals after the update: {app}"
    );
    let apps = h.get("/api/v1/apps").await.ok(200);
    assert_documented(&doc, "AppListItem", &apps[0]);

    // Only a registered node signs a benchmark.
    let refused = h
        .submit(&h.sign(&owner, TxBody::NodeBenchmark { report }).await)
        .await;
    let detail = refused.problem(422, "benchmark_signer_not_node");
    assert!(detail.contains("not a registered node"), "{detail}");
    h.stop().await;
}
