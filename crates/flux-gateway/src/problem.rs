//! Responses the gateway writes itself, as `application/problem+json`
//! (RFC 9457) with a stable `code`, like the node's HTTP API.

use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::body::GatewayBody;
use crate::routes::Miss;

/// The media type of every response the gateway writes itself.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
}

/// A problem response.
pub(crate) fn problem(
    status: StatusCode,
    code: &'static str,
    detail: &str,
) -> Response<GatewayBody> {
    let body = serde_json::to_vec(&Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
    })
    .expect("a problem always serializes");
    let mut response = Response::new(GatewayBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 404 or 400 for a host that reaches no app.
pub(crate) fn miss(miss: &Miss, domain: &str) -> Response<GatewayBody> {
    match miss {
        Miss::NoHost => problem(
            StatusCode::BAD_REQUEST,
            "missing_host",
            &format!("the request has no Host header; send Host: <app>.{domain}"),
        ),
        Miss::UnknownHost(host) => problem(
            StatusCode::NOT_FOUND,
            "unknown_host",
            &format!(
                "'{host}' is not an app of this network; use <app>.{domain}, \
                 <app>_<port>.{domain}, or a domain listed in an app's spec"
            ),
        ),
        Miss::UnknownApp(app) => problem(
            StatusCode::NOT_FOUND,
            "app_not_found",
            &format!(
                "no app named '{app}' runs on this network; check the name \
                 (flux app list shows the apps)"
            ),
        ),
        Miss::UnknownPort { app, port } => problem(
            StatusCode::NOT_FOUND,
            "port_not_found",
            &format!(
                "app '{app}' publishes no port {port}; use <app>_<port>.{domain} with one \
                 of the ports in its spec"
            ),
        ),
        Miss::NoPorts(app) => problem(
            StatusCode::NOT_FOUND,
            "no_ports",
            &format!("app '{app}' publishes no port, so nothing can reach it"),
        ),
    }
}

/// 503 when no backend of an app is healthy, with when to try again.
pub(crate) fn no_backend(app: &str, port: u16, retry_after_s: u64) -> Response<GatewayBody> {
    let detail = format!(
        "app '{app}' has no healthy instance serving port {port} right now; \
         retry in {retry_after_s} s"
    );
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_healthy_instance",
        &detail,
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

/// 502 when every backend tried failed.
pub(crate) fn backend_failed(app: &str, port: u16, attempts: u32) -> Response<GatewayBody> {
    problem(
        StatusCode::BAD_GATEWAY,
        "instance_failed",
        &format!(
            "app '{app}' port {port}: {attempts} instance(s) tried, none answered; \
             retry shortly"
        ),
    )
}

/// 504 when no backend answered within the request timeout.
pub(crate) fn timeout(app: &str, port: u16, timeout_ms: u64) -> Response<GatewayBody> {
    problem(
        StatusCode::GATEWAY_TIMEOUT,
        "instance_timeout",
        &format!("app '{app}' port {port} did not answer within {timeout_ms} ms"),
    )
}
