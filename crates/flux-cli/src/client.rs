//! A blocking client of a node's HTTP API (`/api/v1`).

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use flux_chain::ChainStatus;
use flux_ledger::Receipt;
use flux_types::request_auth::{RequestAuth, RequestTarget, random_nonce};
use flux_types::{Address, Amount, Hash, Params, SecretKey, SignedTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Time allowed to open a connection to the node.
const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Time allowed for one request.
const REQUEST_TIMEOUT_MS: u64 = 15_000;
/// Most characters of a non-JSON error body shown to the user.
const ERROR_BODY_CHARS_MAX: usize = 300;

/// Why a request to the node failed.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// Nothing answered at the node URL.
    Unreachable { node: String, reason: String },
    /// The node answered with an error (a problem document).
    Api {
        status: u16,
        code: String,
        detail: String,
    },
    /// The node answered something this client cannot read.
    BadAnswer { url: String, reason: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { node, reason } => write!(
                f,
                "cannot reach the node at {node} ({reason}); start a local devnet with `flux devnet up`, \
                 or point --node (or FLUX_NODE) at a running node"
            ),
            ClientError::Api { detail, .. } => f.write_str(detail),
            ClientError::BadAnswer { url, reason } => {
                write!(f, "unexpected answer from {url}: {reason}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem code of an API error.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// This machine's clock, ms since the Unix epoch (what a signed request is
/// dated with).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `error` says that the node could not be reached at all.
pub(crate) fn is_unreachable(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<ClientError>(),
        Some(ClientError::Unreachable { .. })
    )
}

/// The HTTP status of an API error inside `error`, if it is one.
pub(crate) fn api_status(error: &anyhow::Error) -> Option<u16> {
    error
        .downcast_ref::<ClientError>()
        .and_then(ClientError::status)
}

/// An account as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AccountView {
    pub(crate) address: Address,
    pub(crate) balance: Amount,
    pub(crate) locked: Amount,
    pub(crate) nonce: u64,
    pub(crate) next_nonce: u64,
}

/// Where a transaction is, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TxStatusView {
    #[serde(default)]
    pub(crate) hash: Option<Hash>,
    pub(crate) status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) receipt: Option<Receipt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

#[derive(Deserialize)]
struct Submitted {
    hash: Hash,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    code: String,
}

/// A client of one node.
pub(crate) struct Client {
    node: String,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client of the node at `node_url` (`http://HOST:PORT`; a trailing
    /// `/api/v1` is accepted too).
    pub(crate) fn new(node_url: &str) -> anyhow::Result<Client> {
        Client::with_timeout(node_url, Duration::from_millis(REQUEST_TIMEOUT_MS))
    }

    /// A client whose requests give up after `timeout`.
    pub(crate) fn with_timeout(node_url: &str, timeout: Duration) -> anyhow::Result<Client> {
        let node = normalize_node_url(node_url)?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("flux-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { node, http })
    }

    /// A client for answers that stream for as long as the user wants
    /// (`flux app logs --follow`): connecting is bounded, reading is not.
    pub(crate) fn streaming(node_url: &str) -> anyhow::Result<Client> {
        let node = normalize_node_url(node_url)?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(None)
            .user_agent(concat!("flux-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { node, http })
    }

    /// The node's base URL.
    pub(crate) fn node_url(&self) -> &str {
        &self.node
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.node)
    }

    fn transport_error(&self, error: &reqwest::Error) -> ClientError {
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        if error.is_timeout() {
            reason = format!("no answer within the time limit: {reason}");
        }
        ClientError::Unreachable {
            node: self.node.clone(),
            reason,
        }
    }

    fn finish(
        &self,
        url: &str,
        response: reqwest::blocking::Response,
    ) -> Result<Value, ClientError> {
        let status = response.status();
        let body = response.text().map_err(|e| self.transport_error(&e))?;
        if status.is_success() {
            if body.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&body).map_err(|e| ClientError::BadAnswer {
                url: url.to_string(),
                reason: format!("not JSON ({e})"),
            });
        }
        let (code, detail) = match serde_json::from_str::<Problem>(&body) {
            Ok(problem) if !problem.detail.is_empty() || !problem.title.is_empty() => {
                let detail = if problem.detail.is_empty() {
                    problem.title
                } else {
                    problem.detail
                };
                (problem.code, detail)
            }
            _ => {
                let text: String = body.trim().chars().take(ERROR_BODY_CHARS_MAX).collect();
                let detail = if text.is_empty() {
                    format!("the node answered {status} to {url}")
                } else {
                    format!("the node answered {status} to {url}: {text}")
                };
                (String::new(), detail)
            }
        };
        Err(ClientError::Api {
            status: status.as_u16(),
            code,
            detail,
        })
    }

    /// `GET path` as raw JSON.
    pub(crate) fn get_value(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        self.finish(&url, response)
    }

    /// `GET path` decoded as `T`.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let value = self.get_value(path)?;
        decode(&self.url(path), value)
    }

    /// `POST path` with a JSON body, decoded as `T`.
    pub(crate) fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let value = self.finish(&url, response)?;
        decode(&url, value)
    }

    /// `GET path` signed by `key` for the network `chain_id` (an owner-only
    /// read); the answer's body is left to the caller, to read whole or as
    /// a stream. An error answer is read as a problem.
    pub(crate) fn get_signed(
        &self,
        path: &str,
        key: &SecretKey,
        chain_id: &str,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let url = self.url(path);
        let parsed = reqwest::Url::parse(&url).map_err(|e| ClientError::BadAnswer {
            url: url.clone(),
            reason: format!("not a URL ({e})"),
        })?;
        let path_and_query = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let target = RequestTarget {
            chain_id,
            method: "GET",
            path_and_query: &path_and_query,
            body: b"",
        };
        let auth = RequestAuth::sign(key, &target, now_ms(), random_nonce());
        let mut request = self.http.get(parsed);
        for (name, value) in auth.headers() {
            request = request.header(name, value);
        }
        let response = request.send().map_err(|e| self.transport_error(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        match self.finish(&url, response) {
            Err(error) => Err(error),
            Ok(_) => Err(ClientError::BadAnswer {
                url,
                reason: "an error status with a success body".to_string(),
            }),
        }
    }

    pub(crate) fn status(&self) -> Result<ChainStatus, ClientError> {
        self.get("/status")
    }

    pub(crate) fn params(&self) -> Result<Params, ClientError> {
        self.get("/params")
    }

    pub(crate) fn account(&self, address: &Address) -> Result<AccountView, ClientError> {
        self.get(&format!("/accounts/{address}"))
    }

    /// Submits a signed transaction; returns its hash.
    pub(crate) fn submit(&self, tx: &SignedTransaction) -> Result<Hash, ClientError> {
        let body = serde_json::json!({ "tx": hex::encode(tx.to_bytes()) });
        let submitted: Submitted = self.post("/transactions", &body)?;
        Ok(submitted.hash)
    }

    pub(crate) fn tx_status(&self, hash: &Hash) -> Result<TxStatusView, ClientError> {
        self.get(&format!("/transactions/{hash}"))
    }
}

fn decode<T: DeserializeOwned>(url: &str, value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::BadAnswer {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// The items of a list answer: either a bare array or an object holding the
/// array under `field`.
pub(crate) fn list_items(value: Value, field: &str) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove(field) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Checks a node URL and reduces it to `scheme://host:port`.
pub(crate) fn normalize_node_url(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api/v1").unwrap_or(trimmed);
    let url = reqwest::Url::parse(trimmed).map_err(|e| {
        anyhow::anyhow!("--node '{text}' is not a URL ({e}); write it as http://HOST:PORT, e.g. http://127.0.0.1:16127")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        anyhow::bail!(
            "--node '{text}' must be an http:// or https:// URL, e.g. http://127.0.0.1:16127"
        );
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls() {
        assert_eq!(
            normalize_node_url("http://127.0.0.1:16127/api/v1/").unwrap(),
            "http://127.0.0.1:16127"
        );
        assert!(normalize_node_url("127.0.0.1:16127").is_err());
        assert!(normalize_node_url("ftp://x").is_err());
    }

    #[test]
    fn list_answers() {
        let bare = serde_json::json!([1, 2]);
        assert_eq!(list_items(bare, "apps").len(), 2);
        let wrapped = serde_json::json!({"apps": [1]});
        assert_eq!(list_items(wrapped, "apps").len(), 1);
    }
}
