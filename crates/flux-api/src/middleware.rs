//! What every request goes through: the request timeout, errors turned into
//! problems, and the request counters.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::problem::{PROBLEM_CONTENT_TYPE, Problem};

/// The most bytes of a non-problem error body read to become a problem's detail.
const ERROR_BODY_BYTES_MAX: usize = 4 * 1024;

/// The route label of requests that matched no route.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Runs the request under the timeout, makes sure an error is a problem,
/// and counts the answer by route template and status.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_string(),
        |path| path.as_str().to_string(),
    );
    let response = match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                route,
                timeout_ms = state.request_timeout.as_millis() as u64,
                "request timed out"
            );
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request was not completed within {} ms; send the body promptly and retry",
                    state.request_timeout.as_millis()
                ),
            )
            .into_response()
        }
    };
    let response = into_problem(response).await;
    state.metrics.record(&route, response.status().as_u16());
    response
}

/// Turns an error response that is not a problem yet (a rejection produced by
/// the framework) into one, keeping its status and its text as the detail.
async fn into_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value
                .as_bytes()
                .starts_with(PROBLEM_CONTENT_TYPE.as_bytes())
        });
    if is_problem {
        return response;
    }
    let detail = match axum::body::to_bytes(response.into_body(), ERROR_BODY_BYTES_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    Problem::for_status(status, detail).into_response()
}

/// The answer for a path that matches no route.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Problem {
    Problem::not_found(
        "not_found",
        format!(
            "no route for {method} {}; the API is under /api/v1 and described at /api/v1/openapi.json",
            shorten(uri.path())
        ),
    )
}

/// The answer for a known path with the wrong method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; see /api/v1/openapi.json for the methods of each route",
            shorten(uri.path())
        ),
    )
}

/// At most the first 200 bytes of a path (paths are ASCII), so a huge URI is not echoed back.
fn shorten(path: &str) -> &str {
    path.get(..200).unwrap_or(path)
}
