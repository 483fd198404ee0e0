//! What a node serves about its own instances, beside the chain's API.
//!
//! - `GET /api/v1/instances[?app=NAME]`: the status of every instance this
//!   node runs (or of one app's), as its reconciler and prober last saw it.
//!   Public, like placements: it says where an app runs and whether it is
//!   up, nothing an owner keeps secret.
//! - `GET /api/v1/apps/{name}/logs?component=&tail=&follow=`: the output of
//!   this node's instances of the app, one JSON object per line
//!   (`application/x-ndjson`, [`LogLine`]); with `follow=true` the answer
//!   stays open and carries new output as it comes (a blank line every
//!   [`HEARTBEAT_MS`] keeps an idle stream from being cut).
//! - `GET /api/v1/apps/{name}/stats`: a resource reading of each of them
//!   ([`StatsView`]).
//!
//! Logs and stats are the owner's alone: the request must carry a signature
//! ([`flux_types::request_auth`]) by the key whose address owns the app,
//! fresh (within five minutes of this node's clock) and never seen before.
//! Otherwise the answer is a problem: 401 for a missing, malformed,
//! expired, replayed or invalid signature, 403 for a valid signature by
//! another key, 404 for an unknown app.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flux_agent::driver::{LOG_CHUNK_BYTES_MAX, LOG_TAIL_LINES_DEFAULT, LOG_TAIL_LINES_MAX};
use flux_agent::{InstanceStatus, LogOptions, LogStream, Mailbox, Phase, Stats};
use flux_api::Problem;
use flux_types::Address;
use flux_types::request_auth::{ReplayCache, RequestAuth, RequestAuthError, RequestTarget};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::agent::Agent;

/// How often a followed log stream with nothing to say sends a blank line.
pub const HEARTBEAT_MS: u64 = 5_000;
/// Longest wait for one instance's resource reading.
const STATS_TIMEOUT_MS: u64 = 5_000;
/// The media type of a log answer.
const NDJSON: &str = "application/x-ndjson";

/// `?app=NAME`.
#[derive(Debug, Deserialize)]
struct InstancesQuery {
    app: Option<String>,
}

/// The answer of `GET /api/v1/instances`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstancesView {
    /// The node that answered.
    pub node: String,
    /// How it runs apps: `docker` or `exec`.
    pub driver: String,
    /// Its instances, by app, component and instance.
    pub instances: Vec<InstanceStatus>,
}

/// `?component=&tail=&follow=` of a log request.
#[derive(Debug, Deserialize)]
struct LogsQuery {
    component: Option<String>,
    tail: Option<u32>,
    #[serde(default)]
    follow: bool,
}

/// One line of an instance's output (or, with `error`, why its output
/// could not be read), as a log answer carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The node that runs the instance.
    pub node: String,
    /// The app.
    pub app: String,
    /// The component.
    pub component: String,
    /// The app's instance index.
    pub instance: u32,
    /// Which output the line came from.
    pub stream: LogStream,
    /// The line, without its end of line (invalid UTF-8 replaced); a line
    /// longer than the driver's chunk size arrives in pieces.
    pub text: String,
    /// Set when the instance's output could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One instance's resource reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStats {
    /// The component.
    pub component: String,
    /// The app's instance index.
    pub instance: u32,
    /// The driver's id of the instance, if it has one.
    pub instance_id: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// The reading, when the instance runs and the driver answered.
    pub stats: Option<Stats>,
    /// Why there is no reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `GET /api/v1/apps/{name}/stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsView {
    /// The node that answered.
    pub node: String,
    /// The app.
    pub app: String,
    /// Its instances on this node, by component and instance.
    pub instances: Vec<InstanceStats>,
}

/// What the owner-only routes read from the chain.
trait AppDirectory: Send + Sync + 'static {
    /// The network's chain id, part of every signed request.
    fn chain_id(&self) -> String;
    /// The registered app named `name` (any case).
    fn app(&self, name: &str) -> Option<AppEntry>;
}

/// An app, as far as reading its logs goes.
#[derive(Clone, Debug)]
struct AppEntry {
    /// Its name as registered.
    name: String,
    owner: Address,
    components: Vec<String>,
}

/// The finalized state of the node's chain.
struct ChainApps(flux_chain::Node);

impl AppDirectory for ChainApps {
    fn chain_id(&self) -> String {
        self.0.state().chain_id().to_string()
    }

    fn app(&self, name: &str) -> Option<AppEntry> {
        let state = self.0.state();
        let record = state.app(name)?;
        Some(AppEntry {
            name: record.spec.name.clone(),
            owner: record.spec.owner,
            components: record
                .spec
                .components
                .iter()
                .map(|c| c.name.clone())
                .collect(),
        })
    }
}

/// What every handler shares.
#[derive(Clone)]
struct Served {
    mailbox: Mailbox,
    node_id: Address,
    apps: Arc<dyn AppDirectory>,
    replay: Arc<Mutex<ReplayCache>>,
}

/// The routes of the agent: instances (public), logs and stats (owner-signed).
pub fn router(agent: Agent, chain: flux_chain::Node) -> Router {
    router_with(Served {
        mailbox: agent.mailbox().clone(),
        node_id: agent.node_id(),
        apps: Arc::new(ChainApps(chain)),
        replay: Arc::new(Mutex::new(ReplayCache::default())),
    })
}

fn router_with(served: Served) -> Router {
    Router::new()
        .route("/api/v1/instances", get(instances))
        .route("/api/v1/apps/{name}/logs", get(logs))
        .route("/api/v1/apps/{name}/stats", get(stats))
        .with_state(served)
}

async fn instances(
    State(served): State<Served>,
    Query(query): Query<InstancesQuery>,
) -> Json<InstancesView> {
    let board = served.mailbox.status();
    let instances = match &query.app {
        Some(app) => {
            let app = app.to_lowercase();
            board
                .snapshot()
                .into_iter()
                .filter(|s| s.key.app.to_lowercase() == app)
                .collect()
        }
        None => board.snapshot(),
    };
    Json(InstancesView {
        node: served.node_id.to_string(),
        driver: served.mailbox.driver().kind().to_string(),
        instances,
    })
}

/// The node's clock, ms since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn auth_problem(error: &RequestAuthError) -> Problem {
    let status = if error.is_overload() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    };
    Problem::new(status, error.code(), error.to_string())
}

/// The request as it arrived, for its signature.
struct Signed<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// Lets the request through when it carries a fresh, unused signature by
/// the owner of app `name`; `what` names what is read, for the refusal.
fn authorize(
    served: &Served,
    name: &str,
    request: &Signed<'_>,
    what: &str,
) -> Result<AppEntry, Problem> {
    let auth = RequestAuth::from_headers(|header| {
        request
            .headers
            .get(header)
            .and_then(|value| value.to_str().ok())
    })
    .map_err(|e| auth_problem(&e))?;
    let chain_id = served.apps.chain_id();
    let target = RequestTarget {
        chain_id: &chain_id,
        method: request.method.as_str(),
        path_and_query: request
            .uri
            .path_and_query()
            .map_or_else(|| request.uri.path(), |p| p.as_str()),
        body: request.body,
    };
    let now = now_ms();
    auth.verify(&target, now).map_err(|e| auth_problem(&e))?;
    let app = served.apps.app(name).ok_or_else(|| {
        Problem::not_found(
            "app_not_found",
            format!("no app named '{name}' is registered"),
        )
    })?;
    let signer = auth.key.address();
    if signer != app.owner {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not_owner",
            format!(
                "only the owner of {} ({}) may read its {what}; this request was signed by {signer}",
                app.name, app.owner
            ),
        ));
    }
    served
        .replay
        .lock()
        .map_err(|_| {
            tracing::error!("the replay cache lock is poisoned");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the node failed to check the request's nonce; see the node's log",
            )
        })?
        .admit(&auth, now)
        .map_err(|e| auth_problem(&e))?;
    Ok(app)
}

/// This node's instances of `app` (of one component, when given) that have
/// a driver instance.
fn running_here(served: &Served, app: &AppEntry, component: Option<&str>) -> Vec<InstanceStatus> {
    served
        .mailbox
        .status()
        .app(&app.name)
        .into_iter()
        .filter(|s| component.is_none_or(|c| s.key.component == c))
        .collect()
}

async fn logs(
    State(served): State<Served>,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match logs_answer(served, &name, query, &method, &uri, &headers, &body) {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

fn logs_answer(
    served: Served,
    name: &str,
    query: Result<Query<LogsQuery>, QueryRejection>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let request = Signed {
        method,
        uri,
        headers,
        body,
    };
    let app = authorize(&served, name, &request, "logs")?;
    let Query(query) = query.map_err(|e| {
        Problem::bad_request(
            "bad_query",
            format!("{e}; the log query takes component=NAME, tail=LINES and follow=true|false"),
        )
    })?;
    let tail_lines = query.tail.unwrap_or(LOG_TAIL_LINES_DEFAULT);
    if tail_lines > LOG_TAIL_LINES_MAX {
        return Err(Problem::bad_request(
            "tail_too_large",
            format!("tail={tail_lines} is more than the {LOG_TAIL_LINES_MAX} lines a node sends"),
        ));
    }
    if let Some(component) = &query.component
        && !app.components.contains(component)
    {
        return Err(Problem::not_found(
            "component_not_found",
            format!(
                "app {} has no component '{component}'; its components: {}",
                app.name,
                app.components.join(", ")
            ),
        ));
    }
    let options = LogOptions {
        follow: query.follow,
        tail_lines,
    };
    let instances = running_here(&served, &app, query.component.as_deref());
    let node = served.node_id.to_string();
    let sources = instances.into_iter().map(move |status| {
        let driver = Arc::clone(served.mailbox.driver());
        let node = node.clone();
        stream::once(async move { instance_lines(driver, node, status, options).await }).flatten()
    });
    let lines: stream::BoxStream<'static, LogLine> = if query.follow {
        stream::select_all(sources.map(StreamExt::boxed)).boxed()
    } else {
        stream::iter(sources).flatten().boxed()
    };
    let encoded = lines.map(|line| {
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    });
    let body = if query.follow {
        Body::from_stream(with_heartbeat(encoded).map(Ok::<_, Infallible>))
    } else {
        Body::from_stream(encoded.map(Ok::<_, Infallible>))
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(response)
}

/// `lines`, with a blank line every [`HEARTBEAT_MS`] besides, until
/// `lines` ends: the API closes a connection that moves no bytes for a
/// while, and a followed instance may stay quiet for longer.
fn with_heartbeat(
    lines: impl Stream<Item = Bytes> + Send + 'static,
) -> impl Stream<Item = Bytes> + Send + 'static {
    enum Item {
        Line(Bytes),
        Beat,
        End,
    }
    let lines = lines
        .map(Item::Line)
        .chain(stream::once(async { Item::End }));
    let beats = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS)).await;
        Some((Item::Beat, ()))
    });
    stream::select(lines, beats)
        .take_while(|item| std::future::ready(!matches!(item, Item::End)))
        .map(|item| match item {
            Item::Line(bytes) => bytes,
            _ => Bytes::from_static(b"\n"),
        })
}

/// The output of one instance as lines.
async fn instance_lines(
    driver: Arc<dyn flux_agent::Driver>,
    node: String,
    status: InstanceStatus,
    options: LogOptions,
) -> stream::BoxStream<'static, LogLine> {
    let line = move |stream: LogStream, text: String, error: Option<String>| LogLine {
        node: node.clone(),
        app: status.key.app.clone(),
        component: status.key.component.clone(),
        instance: status.key.instance,
        stream,
        text,
        error,
    };
    let Some(id) = status.instance_id.clone() else {
        let why = format!("no output: the instance is {:?}", status.phase).to_lowercase();
        return stream::iter([line(LogStream::Output, String::new(), Some(why))]).boxed();
    };
    let chunks = match driver.logs(&id, options).await {
        Ok(chunks) => chunks,
        Err(error) => {
            return stream::iter([line(
                LogStream::Output,
                String::new(),
                Some(error.to_string()),
            )])
            .boxed();
        }
    };
    stream::unfold(
        Some((chunks, LineSplitter::default())),
        |state| async move {
            let (mut chunks, mut splitter) = state?;
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    let lines = splitter.push(chunk.stream, &chunk.data);
                    Some((lines, Some((chunks, splitter))))
                }
                Some(Err(error)) => {
                    let mut lines = splitter.finish();
                    lines.push((LogStream::Output, Err(error.to_string())));
                    Some((lines, None))
                }
                None => Some((splitter.finish(), None)),
            }
        },
    )
    .flat_map(stream::iter)
    .map(move |(stream, text)| match text {
        Ok(text) => line(stream, text, None),
        Err(error) => line(stream, String::new(), Some(error)),
    })
    .boxed()
}

/// Cuts chunks of output into lines, one buffer per output.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<(LogStream, Vec<u8>)>,
}

type Piece = (LogStream, Result<String, String>);

impl LineSplitter {
    fn buffer(&mut self, stream: LogStream) -> &mut Vec<u8> {
        let index = match self.partial.iter().position(|(s, _)| *s == stream) {
            Some(index) => index,
            None => {
                self.partial.push((stream, Vec::new()));
                self.partial.len() - 1
            }
        };
        &mut self.partial[index].1
    }

    /// The complete lines once `data` is added; a partial line longer than
    /// a chunk is let out as it is, so memory stays bounded.
    fn push(&mut self, stream: LogStream, data: &[u8]) -> Vec<Piece> {
        let buffer = self.buffer(stream);
        buffer.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let rest = buffer.split_off(end + 1);
            let line = std::mem::replace(buffer, rest);
            lines.push((stream, Ok(text_of(&line))));
        }
        if buffer.len() >= LOG_CHUNK_BYTES_MAX {
            lines.push((stream, Ok(text_of(&std::mem::take(buffer)))));
        }
        lines
    }

    /// What is left, once the output ends.
    fn finish(&mut self) -> Vec<Piece> {
        self.partial
            .drain(..)
            .filter(|(_, buffer)| !buffer.is_empty())
            .map(|(stream, buffer)| (stream, Ok(text_of(&buffer))))
            .collect()
    }
}

fn text_of(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

async fn stats(
    State(served): State<Served>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Signed {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let app = match authorize(&served, &name, &request, "stats") {
        Ok(app) => app,
        Err(problem) => return problem.into_response(),
    };
    let readings = running_here(&served, &app, None)
        .into_iter()
        .map(|status| instance_stats(Arc::clone(served.mailbox.driver()), status));
    let instances = futures_util::future::join_all(readings).await;
    Json(StatsView {
        node: served.node_id.to_string(),
        app: app.name,
        instances,
    })
    .into_response()
}

async fn instance_stats(
    driver: Arc<dyn flux_agent::Driver>,
    status: InstanceStatus,
) -> InstanceStats {
    let mut reading = InstanceStats {
        component: status.key.component.clone(),
        instance: status.key.instance,
        instance_id: status.instance_id.clone(),
        phase: status.phase,
        stats: None,
        error: None,
    };
    let id = match (&status.instance_id, status.phase) {
        (Some(id), Phase::Running) => id,
        _ => {
            reading.error = Some(format!("not running ({:?})", status.phase).to_lowercase());
            return reading;
        }
    };
    let timeout = Duration::from_millis(STATS_TIMEOUT_MS);
    match tokio::time::timeout(timeout, driver.stats(id)).await {
        Ok(Ok(stats)) => reading.stats = Some(stats),
        Ok(Err(error)) => reading.error = Some(error.to_string()),
        Err(_) => {
            reading.error = Some(format!(
                "the driver gave no reading within {STATS_TIMEOUT_MS} ms"
            ));
        }
    }
    reading
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use axum::http::Request;
    use flux_agent::{InstanceSpec, MockDriver, ReconcilerConfig};
    use flux_types::SecretKey;
    use flux_types::request_auth::NONCE_BYTES;
    use tower::ServiceExt as _;

    use super::*;

    const CHAIN: &str = "flux-test";
    const APP: &str = "shop";

    struct Apps {
        owner: Address,
    }

    impl AppDirectory for Apps {
        fn chain_id(&self) -> String {
            CHAIN.to_string()
        }

        fn app(&self, name: &str) -> Option<AppEntry> {
            name.eq_ignore_ascii_case(APP).then(|| AppEntry {
                name: APP.to_string(),
                owner: self.owner,
                components: vec!["web".into(), "db".into()],
            })
        }
    }

    fn spec(node: &str, component: &str) -> InstanceSpec {
        InstanceSpec {
            node: node.to_string(),
            app: APP.to_string(),
            component: component.to_string(),
            instance: 0,
            image: "flux-hello:latest".into(),
            env: Vec::new(),
            command: Vec::new(),
            ports: Vec::new(),
            host_ip: IpAddr::from([127, 0, 0, 1]),
            cpu_tenths: 1,
            ram_mb: 100,
            data_path: None,
            health_path: String::new(),
            network: format!("flux-{node}-{APP}"),
            labels: BTreeMap::new(),
        }
    }

    /// The routes over a mock driver running both components of the app.
    async fn served(owner: &SecretKey) -> Router {
        let node = SecretKey::development("node").address();
        let driver = Arc::new(MockDriver::new(&node.to_string()));
        let config = ReconcilerConfig {
            interval_ms: 20,
            ..ReconcilerConfig::default()
        };
        let mailbox = flux_agent::reconciler::spawn(driver, config);
        mailbox
            .set_desired(vec![
                spec(&node.to_string(), "web"),
                spec(&node.to_string(), "db"),
            ])
            .unwrap();
        mailbox.wake();
        for _ in 0..500 {
            let statuses = mailbox.status().snapshot();
            if statuses.len() == 2 && statuses.iter().all(|s| s.phase == Phase::Running) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        router_with(Served {
            mailbox,
            node_id: node,
            apps: Arc::new(Apps {
                owner: owner.address(),
            }),
            replay: Arc::new(Mutex::new(ReplayCache::default())),
        })
    }

    fn signed_request(key: &SecretKey, path: &str, at_ms: u64, nonce: u8) -> Request<Body> {
        let target = RequestTarget {
            chain_id: CHAIN,
            method: "GET",
            path_and_query: path,
            body: b"",
        };
        let auth = RequestAuth::sign(key, &target, at_ms, [nonce; NONCE_BYTES]);
        let mut request = Request::get(path);
        for (name, value) in auth.headers() {
            request = request.header(name, value);
        }
        request.body(Body::empty()).unwrap()
    }

    /// Status, `code` of a problem (empty otherwise), and the body.
    async fn send(router: &Router, request: Request<Body>) -> (u16, String, String) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        let code = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        (status, code, body)
    }

    #[tokio::test]
    async fn the_owner_reads_logs_and_stats() {
        let owner = SecretKey::development("owner");
        let router = served(&owner).await;
        let path = "/api/v1/apps/shop/logs?tail=10";
        let (status, _, body) = send(&router, signed_request(&owner, path, now_ms(), 1)).await;
        assert_eq!(status, 200, "{body}");
        let lines: Vec<LogLine> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let components: Vec<&str> = lines.iter().map(|l| l.component.as_str()).collect();
        assert_eq!(components, ["db", "web"], "{body}");
        assert_eq!(lines[1].text, "shop/web#0 started");
        assert_eq!(lines[1].stream, LogStream::Stdout);

        let one = "/api/v1/apps/shop/logs?component=web&follow=true";
        let (status, _, body) = send(&router, signed_request(&owner, one, now_ms(), 2)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.trim(), body.lines().next().unwrap().trim());
        assert!(body.contains("shop/web#0 started"), "{body}");

        let stats = "/api/v1/apps/shop/stats";
        let (status, _, body) = send(&router, signed_request(&owner, stats, now_ms(), 3)).await;
        assert_eq!(status, 200, "{body}");
        let view: StatsView = serde_json::from_str(&body).unwrap();
        assert_eq!(view.app, APP);
        assert_eq!(view.instances.len(), 2);
        assert!(view.instances.iter().all(|i| i.stats.is_some()), "{body}");
    }

    #[tokio::test]
    async fn only_a_fresh_unused_signature_of_the_owner_is_accepted() {
        let owner = SecretKey::development("owner");
        let router = served(&owner).await;
        let path = "/api/v1/apps/shop/logs";
        let now = now_ms();

        let (status, code, _) =
            send(&router, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "signature_missing"));

        let thief = SecretKey::development("thief");
        let (status, code, body) = send(&router, signed_request(&thief, path, now, 1)).await;
        assert_eq!((status, code.as_str()), (403, "not_owner"), "{body}");
        assert!(body.contains(&owner.address().to_string()), "{body}");
        assert!(body.contains(&thief.address().to_string()), "{body}");
        let stats = "/api/v1/apps/shop/stats";
        let (status, code, _) = send(&router, signed_request(&thief, stats, now, 2)).await;
        assert_eq!((status, code.as_str()), (403, "not_owner"));

        let (status, code, _) = send(
            &router,
            signed_request(&owner, "/api/v1/apps/nope/logs", now, 3),
        )
        .await;
        assert_eq!((status, code.as_str()), (404, "app_not_found"));

        // A signature made for one path does not open another.
        let mut moved = signed_request(&owner, stats, now, 4);
        *moved.uri_mut() = path.parse().unwrap();
        let (status, code, _) = send(&router, moved).await;
        assert_eq!((status, code.as_str()), (401, "signature_invalid"));

        let old = now - flux_types::request_auth::REQUEST_SKEW_MS_MAX - 60_000;
        let (status, code, _) = send(&router, signed_request(&owner, path, old, 5)).await;
        assert_eq!((status, code.as_str()), (401, "signature_expired"));

        let (status, _, _) = send(&router, signed_request(&owner, path, now, 6)).await;
        assert_eq!(status, 200);
        let (status, code, _) = send(&router, signed_request(&owner, path, now, 6)).await;
        assert_eq!((status, code.as_str()), (401, "nonce_replayed"));

        let (status, code, _) = send(
            &router,
            signed_request(&owner, "/api/v1/apps/shop/logs?component=cache", now, 7),
        )
        .await;
        assert_eq!((status, code.as_str()), (404, "component_not_found"));
        let (status, code, _) = send(
            &router,
            signed_request(&owner, "/api/v1/apps/shop/logs?tail=10001", now, 8),
        )
        .await;
        assert_eq!((status, code.as_str()), (400, "tail_too_large"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_followed_stream_beats_while_quiet_and_ends_with_its_lines() {
        let mut quiet = Box::pin(with_heartbeat(stream::pending::<Bytes>()));
        assert_eq!(quiet.next().await, Some(Bytes::from_static(b"\n")));
        assert_eq!(quiet.next().await, Some(Bytes::from_static(b"\n")));
        let lines = [Bytes::from_static(b"one\n"), Bytes::from_static(b"two\n")];
        let all: Vec<Bytes> = with_heartbeat(stream::iter(lines.clone())).collect().await;
        assert_eq!(all, lines);
    }

    #[test]
    fn output_is_cut_into_lines_per_stream() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(LogStream::Stdout, b"hel").is_empty());
        assert_eq!(
            splitter.push(LogStream::Stderr, b"oops\r\nhalf"),
            vec![(LogStream::Stderr, Ok("oops".to_string()))]
        );
        assert_eq!(
            splitter.push(LogStream::Stdout, b"lo\nworld\n"),
            vec![
                (LogStream::Stdout, Ok("hello".to_string())),
                (LogStream::Stdout, Ok("world".to_string()))
            ]
        );
        assert_eq!(
            splitter.finish(),
            vec![(LogStream::Stderr, Ok("half".to_string()))]
        );
        let long = vec![b'x'; LOG_CHUNK_BYTES_MAX];
        assert_eq!(splitter.push(LogStream::Stdout, &long).len(), 1);
    }
}
