//! The gateway against real backends: HTTP, WebSocket and TCP echo servers
//! started by each test on loopback addresses.
//!
//! Each test uses its own 127.0.0.x addresses, so that the TCP forwarders of
//! tests running side by side never meet. Nothing waits a fixed time: every
//! wait is on a condition, with a deadline.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flux_gateway::{Backend, Balance, Gateway, GatewayConfig, PROBLEM_CONTENT_TYPE, RouteTable};
use flux_types::Address;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderValue, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Longest wait for anything that should happen at once.
const DEADLINE: Duration = Duration::from_secs(10);
const DOMAIN: &str = "flux.localhost";
/// Size of the chunks a backend streams large bodies in.
const CHUNK_BYTES: usize = 64 * 1024;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn node(n: u8) -> Address {
    Address([n; 20])
}

#[allow(clippy::print_stderr)]
fn report(figure: &str) {
    eprintln!("measured: {figure}");
}

/// Polls `condition` until it holds; panics with `what` at the deadline.
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gateway configuration for tests: short back-offs and probes, TCP
/// forwarding off unless a test wants it.
fn config(gateway: u8) -> GatewayConfig {
    GatewayConfig {
        http_listen: SocketAddr::new(ip(gateway), 0),
        tcp_forwarding: false,
        ejection_base_ms: 200,
        ejection_max_ms: 1_000,
        probe_interval_ms: 200,
        connect_timeout_ms: 500,
        request_timeout_ms: 5_000,
        ..GatewayConfig::default()
    }
}

/// One port of an app in a test table.
struct Port<'a> {
    app: &'a str,
    port: u16,
    backends: Vec<(SocketAddr, bool)>,
    domain: Option<&'a str>,
}

fn table(ports: &[Port<'_>]) -> RouteTable {
    let mut builder = RouteTable::builder(DOMAIN).unwrap();
    for port in ports {
        let backends = port
            .backends
            .iter()
            .map(|(addr, local)| Backend {
                addr: *addr,
                node: node(match addr.ip() {
                    IpAddr::V4(v4) => v4.octets()[3],
                    IpAddr::V6(_) => 0,
                }),
                local: *local,
            })
            .collect();
        builder.port(port.app, "main", port.port, backends, port.domain);
    }
    builder.build()
}

/// An app with one port served by `backends` (none local).
fn one_app(app: &str, backends: &[&HttpBackend]) -> RouteTable {
    table(&[Port {
        app,
        port: backends.first().map_or(1, |b| b.addr.port()),
        backends: backends.iter().map(|b| (b.addr, false)).collect(),
        domain: None,
    }])
}

// ----- backends -------------------------------------------------------------

type TestBody = BoxBody<Bytes, hyper::Error>;

/// An HTTP/1.1 backend. Routes: `/id` answers its name; `/headers` the
/// request head as JSON; `/big?bytes=N` N bytes streamed in chunks; `/echo`
/// the request body streamed back; `/ws` a WebSocket echo. Dropping it
/// closes its listener and every connection.
struct HttpBackend {
    name: String,
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    async fn start(name: &str, addr: SocketAddr) -> HttpBackend {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve_backend(
            listener,
            Arc::from(name),
            Arc::clone(&requests),
        ));
        HttpBackend {
            name: name.to_string(),
            addr,
            requests,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_backend(listener: TcpListener, name: Arc<str>, requests: Arc<AtomicUsize>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let name = Arc::clone(&name);
        let requests = Arc::clone(&requests);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                requests.fetch_add(1, Ordering::Relaxed);
                backend_answer(Arc::clone(&name), request)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn full(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

async fn backend_answer(
    name: Arc<str>,
    mut request: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let response = match request.uri().path() {
        "/id" => Response::new(full(name.to_string())),
        "/headers" => {
            let headers: BTreeMap<String, String> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let dump = serde_json::json!({
                "path": request.uri().path(),
                "query": request.uri().query(),
                "version": format!("{:?}", request.version()),
                "headers": headers,
            });
            let mut response = Response::new(full(dump.to_string()));
            response
                .headers_mut()
                .insert("keep-alive", HeaderValue::from_static("timeout=5"));
            response
        }
        "/big" => {
            let total: usize = query["bytes"].parse().unwrap();
            let chunk = Bytes::from(vec![b'x'; CHUNK_BYTES]);
            let frames = futures_util::stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    (left > 0).then(|| {
                        let n = left.min(CHUNK_BYTES);
                        (
                            Ok::<_, hyper::Error>(Frame::data(chunk.slice(..n))),
                            left - n,
                        )
                    })
                }
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(total));
            response
        }
        "/echo" => Response::new(request.into_body().boxed()),
        "/ws" => {
            let key = request.headers()["sec-websocket-key"].as_bytes().to_vec();
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let upgraded = upgrade.await.unwrap();
                let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_close() {
                        break;
                    }
                    if message.is_text() || message.is_binary() {
                        socket.send(message).await.unwrap();
                    }
                }
            });
            let mut response = Response::new(full(""));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                "sec-websocket-accept",
                HeaderValue::from_str(&derive_accept_key(&key)).unwrap(),
            );
            response
        }
        _ => {
            let mut response = Response::new(full("no such path"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// A TCP backend that greets each connection with its name and a newline,
/// then echoes every byte.
struct TcpEcho {
    task: JoinHandle<()>,
}

impl TcpEcho {
    async fn start(name: &str, addr: SocketAddr) -> TcpEcho {
        let listener = TcpListener::bind(addr).await.unwrap();
        let greeting = format!("{name}\n");
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let greeting = greeting.clone();
                connections.spawn(async move {
                    stream.write_all(greeting.as_bytes()).await.unwrap();
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        TcpEcho { task }
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port number free on every one of `ips`.
fn port_free_on(ips: &[IpAddr]) -> u16 {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind(SocketAddr::new(ips[0], 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if ips
            .iter()
            .all(|ip| std::net::TcpListener::bind(SocketAddr::new(*ip, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

// ----- clients --------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get(client: &reqwest::Client, gateway: &Gateway, host: &str, path: &str) -> Answer {
    try_get(client, gateway, host, path).await.unwrap()
}

async fn try_get(
    client: &reqwest::Client,
    gateway: &Gateway,
    host: &str,
    path: &str,
) -> reqwest::Result<Answer> {
    let response = client
        .get(format!("http://{}{path}", gateway.http_addr()))
        .header(HOST, host)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

// ----- tests ----------------------------------------------------------------

#[tokio::test]
async fn routes_by_name_by_port_and_by_custom_domain() {
    let web = HttpBackend::start("web", SocketAddr::new(ip(11), 0)).await;
    let admin = HttpBackend::start("admin", SocketAddr::new(ip(12), 0)).await;
    let routes = table(&[
        Port {
            app: "Hello",
            port: web.addr.port(),
            backends: vec![(web.addr, false)],
            domain: None,
        },
        Port {
            app: "Hello",
            port: admin.addr.port(),
            backends: vec![(admin.addr, false)],
            domain: Some("Admin.Example.com"),
        },
    ]);
    let gateway = Gateway::start(config(10), routes).await.unwrap();
    let client = client();
    let admin_host = format!("hello_{}.{DOMAIN}", admin.addr.port());
    let rows = [
        ("hello.flux.localhost", "web"),
        ("HELLO.Flux.Localhost:16180", "web"),
        (admin_host.as_str(), "admin"),
        ("admin.example.com", "admin"),
        ("ADMIN.example.COM.", "admin"),
    ];
    for (host, expected) in rows {
        let answer = get(&client, &gateway, host, "/id").await;
        assert_eq!(answer.status, StatusCode::OK, "Host: {host}");
        assert_eq!(answer.body, expected, "Host: {host}");
    }
}

#[tokio::test]
async fn unknown_hosts_get_404_and_apps_without_healthy_instances_503() {
    let gone = SocketAddr::new(ip(21), port_free_on(&[ip(21)]));
    let routes = table(&[Port {
        app: "down",
        port: gone.port(),
        backends: vec![(gone, false)],
        domain: None,
    }]);
    let gateway = Gateway::start(config(20), routes).await.unwrap();
    let client = client();

    let rows = [
        (
            "nope.flux.localhost",
            404,
            "app_not_found",
            "no app named 'nope'",
        ),
        (
            "down_1.flux.localhost",
            404,
            "port_not_found",
            "publishes no port 1",
        ),
        (
            "example.org",
            404,
            "unknown_host",
            "not an app of this network",
        ),
    ];
    for (host, status, code, detail) in rows {
        let answer = get(&client, &gateway, host, "/").await;
        assert_eq!(answer.status.as_u16(), status, "Host: {host}");
        assert_eq!(answer.headers["content-type"], PROBLEM_CONTENT_TYPE);
        let problem: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(problem["status"], status);
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem}"
        );
    }

    // The only instance refuses connections: the first request finds out
    // (502 after trying it), and from then on the app has no healthy instance.
    let first = get(&client, &gateway, "down.flux.localhost", "/").await;
    assert_eq!(first.status, StatusCode::BAD_GATEWAY, "{}", first.body);
    let answer = get(&client, &gateway, "down.flux.localhost", "/").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after), "Retry-After: {retry_after}");
    let problem: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["code"], "no_healthy_instance");

    // An app without any instance.
    gateway.update(table(&[Port {
        app: "empty",
        port: 80,
        backends: vec![],
        domain: None,
    }]));
    let answer = get(&client, &gateway, "empty.flux.localhost", "/").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key("retry-after"));
    let stats = gateway.stats();
    assert_eq!(
        (stats.not_found, stats.no_backend, stats.failed),
        (3, 2, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn load_spreads_over_backends_and_local_ones_come_first() {
    let backends = [
        HttpBackend::start("a", SocketAddr::new(ip(31), 0)).await,
        HttpBackend::start("b", SocketAddr::new(ip(32), 0)).await,
        HttpBackend::start("c", SocketAddr::new(ip(33), 0)).await,
    ];
    let refs: Vec<&HttpBackend> = backends.iter().collect();
    let gateway = Gateway::start(config(30), one_app("spread", &refs))
        .await
        .unwrap();
    let client = client();
    for _ in 0..300 {
        let answer = get(&client, &gateway, "spread.flux.localhost", "/id").await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let counts: Vec<usize> = backends.iter().map(HttpBackend::requests).collect();
    assert_eq!(
        counts,
        vec![100, 100, 100],
        "round-robin over three backends"
    );

    // Least-outstanding spreads too when requests do not overlap.
    let least = Gateway::start(
        GatewayConfig {
            balance: Balance::LeastOutstanding,
            ..config(30)
        },
        one_app("spread", &refs),
    )
    .await
    .unwrap();
    for _ in 0..300 {
        get(&client, &least, "spread.flux.localhost", "/id").await;
    }
    for backend in &backends {
        assert!(
            (150..=250).contains(&backend.requests()),
            "{}: {}",
            backend.name,
            backend.requests()
        );
    }

    // With a local instance, every request goes to it; remote ones take over when it dies.
    let mut local = Some(HttpBackend::start("local", SocketAddr::new(ip(34), 0)).await);
    let local_addr = local.as_ref().unwrap().addr;
    let routes = table(&[Port {
        app: "spread",
        port: 1,
        backends: vec![
            (backends[0].addr, false),
            (local_addr, true),
            (backends[1].addr, false),
        ],
        domain: None,
    }]);
    gateway.update(routes);
    for _ in 0..20 {
        assert_eq!(
            get(&client, &gateway, "spread.flux.localhost", "/id")
                .await
                .body,
            "local"
        );
    }
    drop(local.take());
    for _ in 0..20 {
        let answer = get(&client, &gateway, "spread.flux.localhost", "/id").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(
            ["a", "b"].contains(&answer.body.as_str()),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_killed_backend_costs_a_bounded_error_window_and_is_probed_back() {
    let mut backends: Vec<Option<HttpBackend>> = vec![
        Some(HttpBackend::start("a", SocketAddr::new(ip(41), 0)).await),
        Some(HttpBackend::start("b", SocketAddr::new(ip(42), 0)).await),
        Some(HttpBackend::start("c", SocketAddr::new(ip(43), 0)).await),
    ];
    let refs: Vec<&HttpBackend> = backends.iter().flatten().collect();
    let routes = one_app("steady", &refs);
    let victim = backends[0].as_ref().unwrap().addr;
    let gateway = Arc::new(Gateway::start(config(40), routes).await.unwrap());

    // Four clients send requests back to back; each outcome is timed.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..4 {
        let gateway = Arc::clone(&gateway);
        let stop = Arc::clone(&stop);
        clients.spawn(async move {
            let client = client();
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = try_get(&client, &gateway, "steady.flux.localhost", "/id").await;
                let ok = matches!(&answer, Ok(a) if a.status == StatusCode::OK);
                outcomes.push((started.elapsed(), ok));
            }
            outcomes
        });
    }
    let served = |backend: &Option<HttpBackend>| backend.as_ref().map_or(0, |b| b.requests());
    wait_until("traffic reaches every backend", || {
        let ready = backends.iter().all(|b| served(b) >= 50);
        async move { ready }
    })
    .await;
    let killed_at = started.elapsed();
    drop(backends[0].take());
    let after_kill = |counts: usize| {
        let backends = &backends;
        async move { backends.iter().map(served).sum::<usize>() >= counts }
    };
    let before = backends.iter().map(served).sum::<usize>();
    wait_until("500 more requests served after the kill", || {
        after_kill(before + 500)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    while let Some(result) = clients.join_next().await {
        outcomes.extend(result.unwrap());
    }
    let errors: Vec<Duration> = outcomes
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(at, _)| at.saturating_sub(killed_at))
        .collect();
    let window = errors.iter().max().copied().unwrap_or_default();
    report(&format!(
        "backend killed: {} requests, {} failed, error window {} ms after the kill",
        outcomes.len(),
        errors.len(),
        window.as_millis()
    ));
    // Requests that were in flight on the victim are retried elsewhere; at
    // most one per client may be lost, and only right after the kill.
    assert!(errors.len() <= 4, "{} requests failed", errors.len());
    assert!(
        window <= Duration::from_millis(500),
        "errors until {window:?} after the kill"
    );
    let victim_status = gateway
        .backends()
        .into_iter()
        .find(|b| b.addr == victim)
        .unwrap();
    assert!(
        !victim_status.healthy,
        "the killed backend is out of rotation"
    );

    // The backend comes back on the same address: a probe finds it, traffic returns.
    let revived = HttpBackend::start("a", victim).await;
    wait_until("the revived backend is back in rotation", || {
        let healthy = gateway
            .backends()
            .iter()
            .any(|b| b.addr == victim && b.healthy);
        async move { healthy }
    })
    .await;
    let client = client();
    for _ in 0..6 {
        get(&client, &gateway, "steady.flux.localhost", "/id").await;
    }
    assert!(
        revived.requests() >= 1,
        "traffic reaches the revived backend"
    );
}

/// A backend that answers the first request of each connection and closes
/// the connection when a second one arrives, as a server does whose
/// keep-alive timeout fires just as the gateway reuses the connection.
async fn start_one_shot_backend(addr: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            connections.spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                // The next request on this connection is dropped with the connection.
                let _ = stream.read(&mut buffer).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_kept_alive_connection_closed_by_the_backend_is_retried_on_a_new_one() {
    let (addr, task) = start_one_shot_backend(SocketAddr::new(ip(46), 0)).await;
    let routes = table(&[Port {
        app: "flaky",
        port: addr.port(),
        backends: vec![(addr, false)],
        domain: None,
    }]);
    let gateway = Gateway::start(config(45), routes).await.unwrap();
    let client = client();
    for i in 0..20 {
        let answer = get(&client, &gateway, "flaky.flux.localhost", "/").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {i}: {}",
            answer.body
        );
        assert_eq!(answer.body, "ok");
    }
    assert!(
        gateway.backends()[0].healthy,
        "a closed keep-alive connection is no failure"
    );
    task.abort();
}

#[tokio::test]
async fn websocket_echoes_through_the_gateway() {
    let backend = HttpBackend::start("ws", SocketAddr::new(ip(51), 0)).await;
    let gateway = Gateway::start(config(50), one_app("chat", &[&backend]))
        .await
        .unwrap();
    let stream = TcpStream::connect(gateway.http_addr()).await.unwrap();
    let (mut socket, response) =
        tokio_tungstenite::client_async("ws://chat.flux.localhost/ws", stream)
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("hello")
    );
    let blob: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    socket.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::binary(blob));
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_headers_dropped() {
    let backend = HttpBackend::start("h", SocketAddr::new(ip(61), 0)).await;
    let gateway = Gateway::start(config(60), one_app("echo", &[&backend]))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .local_address(ip(67))
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}/headers?x=1&y=%20z", gateway.http_addr()))
        .header(HOST, "Echo.flux.localhost:16180")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response.headers().contains_key("keep-alive"),
        "hop-by-hop response header dropped"
    );
    let dump: Value = response.json().await.unwrap();
    let headers = &dump["headers"];
    assert_eq!(dump["path"], "/headers");
    assert_eq!(dump["query"], "x=1&y=%20z");
    assert_eq!(dump["version"], "HTTP/1.1");
    assert_eq!(headers["host"], "Echo.flux.localhost:16180");
    assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.67");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "Echo.flux.localhost:16180");
    assert_eq!(headers["x-custom"], "kept");
    for gone in ["x-hop", "proxy-authorization", "connection"] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} reached the backend: {headers}"
        );
    }
}

#[tokio::test]
async fn request_bodies_stream_to_the_backend_and_back() {
    let backend = HttpBackend::start("e", SocketAddr::new(ip(71), 0)).await;
    let gateway = Gateway::start(config(70), one_app("echo", &[&backend]))
        .await
        .unwrap();
    let body: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let response = client()
        .post(format!("http://{}/echo", gateway.http_addr()))
        .header(HOST, "echo.flux.localhost")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.unwrap() == body,
        "the echoed body differs"
    );
}

#[tokio::test]
async fn a_route_table_swap_takes_effect_at_once() {
    let first = HttpBackend::start("first", SocketAddr::new(ip(81), 0)).await;
    let second = HttpBackend::start("second", SocketAddr::new(ip(82), 0)).await;
    let gateway = Gateway::start(config(80), one_app("swap", &[&first]))
        .await
        .unwrap();
    let client = client();
    assert_eq!(
        get(&client, &gateway, "swap.flux.localhost", "/id")
            .await
            .body,
        "first"
    );
    gateway.update(one_app("swap", &[&second]));
    assert_eq!(
        get(&client, &gateway, "swap.flux.localhost", "/id")
            .await
            .body,
        "second"
    );
    gateway.update(one_app("other", &[&second]));
    assert_eq!(
        get(&client, &gateway, "swap.flux.localhost", "/id")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&client, &gateway, "other.flux.localhost", "/id")
            .await
            .body,
        "second"
    );
    assert!(gateway.routes().app("swap").is_none());
}

/// The idle timeout of the TCP forwarding test, ms.
const TCP_IDLE_TIMEOUT_MS: u64 = 400;

#[tokio::test]
async fn tcp_ports_are_forwarded_and_follow_the_route_table() {
    let gateway_ip = ip(90);
    let port = port_free_on(&[gateway_ip, ip(91), ip(92)]);
    let _one = TcpEcho::start("db-1", SocketAddr::new(ip(91), port)).await;
    let _two = TcpEcho::start("db-2", SocketAddr::new(ip(92), port)).await;
    let routes = table(&[Port {
        app: "db",
        port,
        backends: vec![
            (SocketAddr::new(ip(91), port), false),
            (SocketAddr::new(ip(92), port), false),
        ],
        domain: None,
    }]);
    let gateway = Gateway::start(
        GatewayConfig {
            tcp_forwarding: true,
            idle_timeout_ms: TCP_IDLE_TIMEOUT_MS,
            ..config(90)
        },
        routes.clone(),
    )
    .await
    .unwrap();
    assert_eq!(gateway.tcp_ports(), vec![port]);
    let mut greetings = Vec::new();
    for i in 0..4 {
        let stream = TcpStream::connect(SocketAddr::new(gateway_ip, port))
            .await
            .unwrap();
        let mut stream = BufReader::new(stream);
        let mut greeting = String::new();
        stream.read_line(&mut greeting).await.unwrap();
        greetings.push(greeting.trim().to_string());
        let ping = format!("ping {i}\n");
        stream.get_mut().write_all(ping.as_bytes()).await.unwrap();
        let mut echoed = String::new();
        stream.read_line(&mut echoed).await.unwrap();
        assert_eq!(echoed, ping);
    }
    greetings.sort();
    assert_eq!(greetings, vec!["db-1", "db-1", "db-2", "db-2"]);

    // A forwarded connection that moves no byte is closed after the idle timeout.
    let mut idle = TcpStream::connect(SocketAddr::new(gateway_ip, port))
        .await
        .unwrap();
    let opened = Instant::now();
    assert!(
        closed_by_peer(&mut idle).await,
        "an idle forwarded connection is closed"
    );
    let lived = opened.elapsed();
    let timeout = Duration::from_millis(TCP_IDLE_TIMEOUT_MS);
    assert!(
        lived >= timeout - Duration::from_millis(50) && lived < timeout * 5,
        "{lived:?}"
    );

    // The app goes away: so does its listener, and the port is free for an
    // instance of this node as soon as the update returns.
    gateway
        .update_and_release(RouteTable::empty(DOMAIN).unwrap())
        .await;
    assert!(gateway.tcp_ports().is_empty());
    let refused = TcpStream::connect(SocketAddr::new(gateway_ip, port)).await;
    assert!(
        matches!(&refused, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    // Bound the way a container runtime binds a published port.
    let instance = tokio::net::TcpSocket::new_v4().unwrap();
    instance.set_reuseaddr(true).unwrap();
    instance.bind(SocketAddr::new(gateway_ip, port)).unwrap();
    drop(instance.listen(16).unwrap());

    // An instance on this node publishes the port itself: no listener.
    let local = table(&[Port {
        app: "db",
        port,
        backends: vec![(SocketAddr::new(ip(91), port), true)],
        domain: None,
    }]);
    gateway.update(local);
    assert!(gateway.tcp_ports().is_empty());
    gateway.update(routes);
    assert_eq!(gateway.tcp_ports(), vec![port]);
}

#[tokio::test]
async fn a_port_still_held_by_a_leaving_instance_is_forwarded_once_it_is_free() {
    let gateway_ip = ip(93);
    let port = port_free_on(&[gateway_ip, ip(94)]);
    let _remote = TcpEcho::start("db-remote", SocketAddr::new(ip(94), port)).await;
    // The instance that ran here still holds the port on the gateway's address.
    let leaving = std::net::TcpListener::bind(SocketAddr::new(gateway_ip, port)).unwrap();
    let gateway = Gateway::start(
        GatewayConfig {
            tcp_forwarding: true,
            ..config(93)
        },
        table(&[Port {
            app: "db",
            port,
            backends: vec![(SocketAddr::new(ip(94), port), false)],
            domain: None,
        }]),
    )
    .await
    .unwrap();
    assert!(gateway.tcp_ports().is_empty(), "the port is taken");
    gateway.retry_forwarding();
    assert!(gateway.tcp_ports().is_empty(), "still taken");
    drop(leaving);
    gateway.retry_forwarding();
    assert_eq!(gateway.tcp_ports(), vec![port]);
    let stream = TcpStream::connect(SocketAddr::new(gateway_ip, port))
        .await
        .unwrap();
    let mut greeting = String::new();
    BufReader::new(stream)
        .read_line(&mut greeting)
        .await
        .unwrap();
    assert_eq!(greeting.trim(), "db-remote");
}

/// Opens a connection to the gateway from a chosen loopback address.
async fn connect_from(source: IpAddr, gateway: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(gateway).await.unwrap()
}

/// Whether the peer has closed the connection (EOF or reset), waiting up to the deadline.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// The header read timeout of the slowloris test, ms.
const SLOW_HEADER_TIMEOUT_MS: u64 = 1_500;

#[tokio::test]
async fn slow_clients_do_not_block_others() {
    let backend = HttpBackend::start("fast", SocketAddr::new(ip(101), 0)).await;
    let gateway = Gateway::start(
        GatewayConfig {
            header_read_timeout_ms: SLOW_HEADER_TIMEOUT_MS,
            connections_per_ip_max: 4,
            connections_max: 64,
            ..config(100)
        },
        one_app("fast", &[&backend]),
    )
    .await
    .unwrap();
    let attacker = ip(166);
    let opened = Instant::now();

    // Four connections that dribble a request head one byte at a time.
    let dribbling = Arc::new(AtomicBool::new(true));
    let mut slow = JoinSet::new();
    for _ in 0..4 {
        let mut stream = connect_from(attacker, gateway.http_addr()).await;
        let dribbling = Arc::clone(&dribbling);
        slow.spawn(async move {
            let head = b"GET /id HTTP/1.1\r\nHost: fast.flux.localhost\r\nX-Slow: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if !dribbling.load(Ordering::Relaxed) || stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut probe = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut probe)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                    _ => {}
                }
            }
            None
        });
    }
    wait_until("four connections from the attacker are open", || {
        let open = gateway.stats().connections_open;
        async move { open >= 4 }
    })
    .await;

    // A fifth from the same IP is turned away at once.
    let mut fifth = connect_from(attacker, gateway.http_addr()).await;
    assert!(
        closed_by_peer(&mut fifth).await,
        "connection beyond the per-IP cap is closed"
    );

    // Meanwhile another client is served quickly.
    let client = client();
    let asked = Instant::now();
    let answer = get(&client, &gateway, "fast.flux.localhost", "/id").await;
    let latency = asked.elapsed();
    assert_eq!(answer.body, "fast");
    report(&format!(
        "request beside 4 slowloris connections: {} ms",
        latency.as_millis()
    ));
    assert!(latency < Duration::from_millis(500), "{latency:?}");

    // The slow connections are cut once the header read timeout has passed.
    let mut cut = Vec::new();
    while let Some(result) = slow.join_next().await {
        cut.push(
            result
                .unwrap()
                .expect("the gateway closes a slowloris connection"),
        );
    }
    dribbling.store(false, Ordering::Relaxed);
    for at in cut {
        assert!(
            at >= Duration::from_millis(450) && at < Duration::from_millis(3_000),
            "cut after {at:?}"
        );
    }
    assert!(gateway.stats().connections_refused_per_ip >= 1);
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let backend = HttpBackend::start("h", SocketAddr::new(ip(111), 0)).await;
    let gateway = Gateway::start(
        GatewayConfig {
            request_header_size_bytes_max: 8 * 1024,
            ..config(110)
        },
        one_app("h", &[&backend]),
    )
    .await
    .unwrap();
    let mut stream = TcpStream::connect(gateway.http_addr()).await.unwrap();
    let head = format!(
        "GET /id HTTP/1.1\r\nHost: h.flux.localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(backend.requests(), 0);
}

/// The resident set size of this process, bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const CHILD: &str = "FLUX_GATEWAY_TEST_CHILD";
const STREAMED_BYTES: usize = 100 * 1024 * 1024;
/// Most growth of the process's resident memory while 100 MB stream through.
const STREAM_RSS_GROWTH_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Runs in a process of its own (this test binary again, with only this
/// test), so that other tests' allocations do not blur the measure.
#[test]
fn a_100_mb_response_streams_in_constant_memory() {
    if std::env::var_os(CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_100_mb_response_streams_in_constant_memory",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{log}");
        assert!(log.contains("1 passed"), "{log}");
        if let Some(line) = log.lines().find(|l| l.starts_with("measured:")) {
            report(line.trim_start_matches("measured: "));
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = HttpBackend::start("big", SocketAddr::new(ip(121), 0)).await;
        let gateway = Gateway::start(config(120), one_app("big", &[&backend])).await.unwrap();
        let client = client();
        let fetch = |bytes: usize| {
            let client = client.clone();
            let url = format!("http://{}/big?bytes={bytes}", gateway.http_addr());
            async move {
                let mut response = client
                    .get(url)
                    .header(HOST, "big.flux.localhost")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let mut received = 0usize;
                let mut rss_max = 0u64;
                let mut next_sample = 0usize;
                while let Some(chunk) = response.chunk().await.unwrap() {
                    received += chunk.len();
                    if received >= next_sample {
                        rss_max = rss_max.max(rss_bytes());
                        next_sample += 4 * 1024 * 1024;
                    }
                }
                assert_eq!(received, bytes);
                rss_max.max(rss_bytes())
            }
        };
        // Warm up: buffers, pools and allocator arenas reach their working size.
        for _ in 0..3 {
            fetch(8 * 1024 * 1024).await;
        }
        let before = rss_bytes();
        let started = Instant::now();
        let peak = fetch(STREAMED_BYTES).await;
        let elapsed = started.elapsed();
        let growth = peak.saturating_sub(before);
        report(&format!(
            "100 MB through the gateway in {} ms; resident memory {} KB before, peak {} KB, growth {} KB",
            elapsed.as_millis(),
            before / 1024,
            peak / 1024,
            growth / 1024
        ));
        assert!(growth <= STREAM_RSS_GROWTH_BYTES_MAX, "resident memory grew by {growth} bytes");
    });
}
