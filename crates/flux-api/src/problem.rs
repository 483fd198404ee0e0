//! Errors as `application/problem+json` (RFC 9457) with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flux_chain::{ChainError, SubmitError};
use flux_ledger::TxError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error response: what went wrong, for people (`title`, `detail`) and for
/// programs (`code`, stable across releases).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the `code` identifies the problem.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    pub kind: &'static str,
    /// The HTTP status phrase.
    #[schema(value_type = String, example = "Not Found")]
    pub title: &'static str,
    /// The HTTP status code.
    #[schema(example = 404)]
    pub status: u16,
    /// What was wrong and what to do about it.
    #[schema(example = "no block at height 912; the chain is at height 17")]
    pub detail: String,
    /// A stable machine-readable code, e.g. `block_not_found`, `underpaid`.
    #[schema(value_type = String, example = "block_not_found")]
    pub code: &'static str,
    /// The offending field of an app specification, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "compose[0].cpu")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 500 for a failure of the node itself; the details go to the log, not to the client.
    pub fn internal(error: &ChainError) -> Problem {
        tracing::error!(%error, "request failed inside the node");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the node failed to read its store; see the node's log",
        )
    }

    /// The status as an HTTP status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The default problem for a bare error status produced outside the handlers
    /// (a rejected method, an unreadable body, ...).
    pub(crate) fn for_status(status: StatusCode, detail: String) -> Problem {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            s if s.is_server_error() => "internal_error",
            _ => "bad_request",
        };
        let detail = if detail.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            detail
        };
        Problem::new(status, code, detail)
    }
}

impl From<TxError> for Problem {
    fn from(error: TxError) -> Problem {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.code(),
            error.to_string(),
        );
        if let TxError::InvalidSpec(spec) = &error {
            problem.field = Some(spec.field.clone());
        }
        problem
    }
}

impl From<SubmitError> for Problem {
    fn from(error: SubmitError) -> Problem {
        match error {
            SubmitError::Invalid(tx) => Problem::from(tx),
            SubmitError::Duplicate(_) => {
                Problem::new(StatusCode::CONFLICT, error.code(), error.to_string())
            }
            SubmitError::MempoolFull { .. } | SubmitError::ShuttingDown => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                error.code(),
                error.to_string(),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_types::SpecError;

    #[test]
    fn spec_errors_name_the_field() {
        let problem = Problem::from(TxError::InvalidSpec(SpecError {
            field: "compose[0].cpu".into(),
            message: "must be at most 15".into(),
        }));
        assert_eq!(problem.status, 422);
        assert_eq!(problem.code, "invalid_spec");
        assert_eq!(problem.field.as_deref(), Some("compose[0].cpu"));
        assert!(
            problem.detail.contains("compose[0].cpu"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn submit_errors_map_to_statuses() {
        let full = Problem::from(SubmitError::MempoolFull { txs: 1, bytes: 2 });
        assert_eq!((full.status, full.code), (503, "mempool_full"));
        let duplicate = Problem::from(SubmitError::Duplicate(flux_types::Hash::ZERO));
        assert_eq!((duplicate.status, duplicate.code), (409, "duplicate_tx"));
        let zero = Problem::from(SubmitError::Invalid(TxError::ZeroAmount));
        assert_eq!((zero.status, zero.code), (422, "zero_amount"));
    }

    #[test]
    fn bare_statuses_get_stable_codes() {
        assert_eq!(
            Problem::for_status(StatusCode::NOT_FOUND, String::new()).code,
            "not_found"
        );
        assert_eq!(
            Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE, "x".into()).code,
            "body_too_large"
        );
        assert_eq!(
            Problem::for_status(StatusCode::NOT_FOUND, " ".into()).detail,
            "Not Found"
        );
    }
}
