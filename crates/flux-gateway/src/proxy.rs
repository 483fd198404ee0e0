//! The HTTP side: one request in, one backend chosen, the exchange streamed
//! through, WebSocket (HTTP/1.1 Upgrade) tunnels included.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    CONNECTION, HOST, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::request;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::backend::{Group, Outstanding, Tried};
use crate::body::{GatewayBody, OutBody, Release};
use crate::gateway::Shared;
use crate::problem;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop and never travel through a proxy (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The client end of a connection, as the backend is told about it.
pub(crate) struct Peer {
    forwarded_for: HeaderValue,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr) -> Peer {
        let ip = addr.ip().to_canonical();
        Peer {
            forwarded_for: HeaderValue::try_from(ip.to_string())
                .expect("an IP address is a valid header value"),
        }
    }
}

/// Answers one request: a problem when no app matches, otherwise the
/// response of one of the app's backends.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    request: Request<Incoming>,
) -> Response<GatewayBody> {
    let installed = shared.installed();
    let host = request_host(&request);
    let route = match installed.table.resolve(host) {
        Ok(route) => route,
        Err(miss) => {
            shared.counters.not_found.fetch_add(1, Ordering::Relaxed);
            return problem::miss(&miss, installed.table.domain());
        }
    };
    let group = &installed.groups[route.port.slot];
    let (app, port) = (route.app.name.as_str(), route.port.port);
    if is_upgrade(request.headers()) {
        upgrade(&shared, group, app, port, &peer, request).await
    } else {
        forward(&shared, group, app, port, &peer, request).await
    }
}

/// The host the request is for: the authority of an absolute-form target,
/// otherwise the `Host` header.
fn request_host(request: &Request<Incoming>) -> &str {
    if let Some(authority) = request.uri().authority() {
        return authority.as_str();
    }
    request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("")
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers.get_all(CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Removes the hop-by-hop headers, those named in `Connection` included.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Turns the client's request head into the one sent to a backend.
fn prepare_head(parts: &mut request::Parts, peer: &Peer) {
    // An absolute-form target's authority takes precedence over `Host` (RFC 9112 §3.2.2).
    if let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(HOST, host);
    }
    strip_hop_by_hop(&mut parts.headers);
    // Room for the three X-Forwarded headers, so that the map grows once at most.
    parts.headers.reserve(3);
    let forwarded_for = match parts.headers.get(X_FORWARDED_FOR) {
        Some(previous) => {
            let mut value = Vec::with_capacity(previous.len() + 2 + peer.forwarded_for.len());
            value.extend_from_slice(previous.as_bytes());
            value.extend_from_slice(b", ");
            value.extend_from_slice(peer.forwarded_for.as_bytes());
            HeaderValue::from_bytes(&value).unwrap_or_else(|_| peer.forwarded_for.clone())
        }
        None => peer.forwarded_for.clone(),
    };
    parts.headers.insert(X_FORWARDED_FOR, forwarded_for);
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = parts.headers.get(HOST).cloned() {
        parts.headers.insert(X_FORWARDED_HOST, host);
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let origin = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
        parts.uri = origin;
    }
    parts.version = Version::HTTP_11;
}

/// What it takes to send a request without a body again.
struct HeadCopy {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl HeadCopy {
    fn of(parts: &request::Parts) -> HeadCopy {
        HeadCopy {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        }
    }

    fn request(&self) -> Request<OutBody> {
        let mut request = Request::new(OutBody::Empty);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Proxies a plain request, retrying other backends when that is safe.
async fn forward(
    shared: &Shared,
    group: &Group,
    app: &str,
    port: u16,
    peer: &Peer,
    request: Request<Incoming>,
) -> Response<GatewayBody> {
    let (mut parts, body) = request.into_parts();
    prepare_head(&mut parts, peer);
    let bodiless = body.is_end_stream();
    // Sending an idempotent request twice is harmless, so one whose backend
    // failed after receiving it may go to another; that takes a copy of its
    // head, since the first attempt consumes it. A body cannot be replayed.
    let copy = (bodiless && is_idempotent(&parts.method)).then(|| HeadCopy::of(&parts));
    let body = if bodiless {
        OutBody::Empty
    } else {
        OutBody::Client(body)
    };
    let request = Request::from_parts(parts, body);
    let attempts = tokio::time::timeout(
        shared.config.request_timeout(),
        attempt(shared, group, request, copy),
    )
    .await;
    match attempts {
        Ok(Ok((response, release))) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, GatewayBody::proxied(body, release))
        }
        Ok(Err(0)) => no_backend(shared, group, app, port),
        Ok(Err(attempts)) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            problem::backend_failed(app, port, attempts)
        }
        Err(_) => {
            shared.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            problem::timeout(app, port, shared.config.request_timeout_ms)
        }
    }
}

fn no_backend(shared: &Shared, group: &Group, app: &str, port: u16) -> Response<GatewayBody> {
    shared.counters.no_backend.fetch_add(1, Ordering::Relaxed);
    let now = shared.clock.now_ms();
    let retry_after_s = group
        .earliest_return_ms()
        .map_or(1, |until| until.saturating_sub(now).div_ceil(1000).max(1));
    problem::no_backend(app, port, retry_after_s)
}

/// Tries backends until one answers; `Err(n)` after `n` backends failed
/// (0: no healthy backend at all).
///
/// On each backend a pooled connection is tried first. One that fails may
/// simply have been closed by the backend while idle (the keep-alive race),
/// so the request then goes to the same backend once more on a new
/// connection; only a new connection failing counts against the backend.
async fn attempt(
    shared: &Shared,
    group: &Group,
    request: Request<OutBody>,
    copy: Option<HeadCopy>,
) -> Result<(Response<Incoming>, Release), u32> {
    let mut tried = Tried::default();
    let mut pending = Some(request);
    let mut attempts = 0u32;
    'backends: while attempts <= shared.config.retries_max {
        let Some((index, backend)) = group.pick(shared.config.balance, &tried) else {
            break;
        };
        tried.push(index);
        if attempts > 0 {
            shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        attempts += 1;
        let outstanding = Outstanding::new(Arc::clone(backend));
        let mut pooled = backend.take_idle(&shared.config);
        loop {
            // Nothing can be sent again once a body went out.
            let Some(request) = pending
                .take()
                .or_else(|| copy.as_ref().map(HeadCopy::request))
            else {
                break 'backends;
            };
            let reused = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(sender) => sender,
                None => match connect(shared, backend.addr, false).await {
                    Ok(sender) => sender,
                    Err(error) => {
                        tracing::debug!(backend = %backend.addr, %error, "cannot connect to backend");
                        backend.record_failure(&shared.clock, &shared.config);
                        pending = Some(request);
                        continue 'backends;
                    }
                },
            };
            if reused && sender.ready().await.is_err() {
                pending = Some(request);
                pooled = backend.take_idle(&shared.config);
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let release = Release {
                        sender: Some(sender),
                        outstanding,
                    };
                    return Ok((response, release));
                }
                Err(mut error) => {
                    // Nothing reached the backend when hyper hands the request back.
                    pending = error.take_message();
                    let error = error.into_error();
                    tracing::debug!(backend = %backend.addr, %error, reused, "backend failed the request");
                    if !reused {
                        backend.record_failure(&shared.clock, &shared.config);
                        continue 'backends;
                    }
                }
            }
        }
    }
    Err(if tried.is_empty() { 0 } else { attempts })
}

/// Opens an HTTP/1.1 connection to a backend.
async fn connect(
    shared: &Shared,
    addr: SocketAddr,
    upgrades: bool,
) -> io::Result<SendRequest<OutBody>> {
    let stream = tokio::time::timeout(shared.config.connect_timeout(), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::trace!(%error, "cannot set TCP_NODELAY");
    }
    let (sender, connection) = shared
        .client
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    if upgrades {
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(backend = %addr, %error, "backend connection ended");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(backend = %addr, %error, "backend connection ended");
            }
        });
    }
    Ok(sender)
}

/// Proxies an HTTP/1.1 Upgrade (WebSocket): the handshake goes to one
/// backend over a connection of its own, and after `101 Switching
/// Protocols` both ends are joined byte for byte until either closes.
async fn upgrade(
    shared: &Shared,
    group: &Group,
    app: &str,
    port: u16,
    peer: &Peer,
    mut request: Request<Incoming>,
) -> Response<GatewayBody> {
    let client_upgrade = hyper::upgrade::on(&mut request);
    let (mut parts, body) = request.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    prepare_head(&mut parts, peer);
    if let Some(protocol) = protocol {
        parts.headers.insert(UPGRADE, protocol);
    }
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    let body = if body.is_end_stream() {
        OutBody::Empty
    } else {
        OutBody::Client(body)
    };
    let request = Request::from_parts(parts, body);
    let attempts = tokio::time::timeout(
        shared.config.request_timeout(),
        attempt_upgrade(shared, group, request),
    )
    .await;
    let (mut response, outstanding) = match attempts {
        Ok(Ok(answered)) => answered,
        Ok(Err(0)) => return no_backend(shared, group, app, port),
        Ok(Err(attempts)) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            return problem::backend_failed(app, port, attempts);
        }
        Err(_) => {
            shared.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            return problem::timeout(app, port, shared.config.request_timeout_ms);
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The backend declined the upgrade: an ordinary response, on a
        // connection that is not pooled.
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let release = Release {
            sender: None,
            outstanding,
        };
        return Response::from_parts(parts, GatewayBody::proxied(body, release));
    }
    let backend_upgrade = hyper::upgrade::on(&mut response);
    // Runs on this worker until either end closes; the worker's end closes it too.
    tokio::spawn(async move {
        let _outstanding = outstanding;
        let (client, backend) = match (client_upgrade.await, backend_upgrade.await) {
            (Ok(client), Ok(backend)) => (client, backend),
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(%error, "upgraded connection ended");
        }
    });
    let (mut parts, _) = response.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = protocol {
        parts.headers.insert(UPGRADE, protocol);
    }
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    Response::from_parts(parts, GatewayBody::empty())
}

/// Like [`attempt`] for an upgrade: each attempt on a new connection, and a
/// retry only when nothing reached the backend.
async fn attempt_upgrade(
    shared: &Shared,
    group: &Group,
    mut request: Request<OutBody>,
) -> Result<(Response<Incoming>, Outstanding), u32> {
    let mut tried = Tried::default();
    let mut attempts = 0u32;
    while attempts <= shared.config.retries_max {
        let Some((index, backend)) = group.pick(shared.config.balance, &tried) else {
            break;
        };
        tried.push(index);
        attempts += 1;
        let outstanding = Outstanding::new(Arc::clone(backend));
        let mut sender = match connect(shared, backend.addr, true).await {
            Ok(sender) => sender,
            Err(error) => {
                tracing::debug!(backend = %backend.addr, %error, "cannot connect to backend");
                backend.record_failure(&shared.clock, &shared.config);
                continue;
            }
        };
        match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, outstanding)),
            Err(mut error) => {
                backend.record_failure(&shared.clock, &shared.config);
                match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(attempts),
                }
            }
        }
    }
    Err(if tried.is_empty() { 0 } else { attempts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], uri: &str) -> request::Parts {
        let mut builder = Request::builder().uri(uri).version(Version::HTTP_10);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn heads_are_prepared_for_the_backend() {
        let peer = Peer::new("127.0.0.9:5555".parse().unwrap());
        let mut head = parts(
            &[
                ("host", "hello.flux.localhost"),
                ("connection", "keep-alive, X-Secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic x"),
                ("te", "trailers"),
                ("x-forwarded-proto", "https"),
                ("x-app", "kept"),
            ],
            "/a/b?c=d",
        );
        prepare_head(&mut head, &peer);
        let h = &head.headers;
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "te",
        ] {
            assert!(!h.contains_key(gone), "{gone} must be stripped");
        }
        assert_eq!(h["x-app"], "kept");
        assert_eq!(h["x-forwarded-for"], "127.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "hello.flux.localhost");
        assert_eq!(head.uri, "/a/b?c=d");
        assert_eq!(head.version, Version::HTTP_11);
    }

    #[test]
    fn forwarded_for_is_appended_and_absolute_targets_become_origin_form() {
        let peer = Peer::new("[::ffff:10.0.0.1]:5555".parse().unwrap());
        let mut head = parts(
            &[("x-forwarded-for", "203.0.113.7"), ("host", "ignored")],
            "http://Hello.flux.localhost:16180/p?q",
        );
        prepare_head(&mut head, &peer);
        assert_eq!(head.headers["x-forwarded-for"], "203.0.113.7, 10.0.0.1");
        assert_eq!(head.headers["host"], "Hello.flux.localhost:16180");
        assert_eq!(head.uri, "/p?q");
    }

    #[test]
    fn upgrades_are_recognized() {
        let head = parts(
            &[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket"),
            ],
            "/",
        );
        assert!(is_upgrade(&head.headers));
        let head = parts(
            &[("connection", "keep-alive"), ("upgrade", "websocket")],
            "/",
        );
        assert!(!is_upgrade(&head.headers));
    }
}
