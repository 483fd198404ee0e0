//! Request extractors whose rejections are problems with stable codes.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::Problem;

/// A JSON body. The body size limit applies while reading it (413
/// `body_too_large`); a body that is not valid JSON for `T` is a 400
/// `bad_request` carrying the parser's message. The content type is not
/// checked, so `curl -d` works as is.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        status,
                        "body_too_large",
                        format!(
                            "the request body is larger than this node's limit of {} bytes",
                            state.body_bytes_max
                        ),
                    )
                } else {
                    Problem::for_status(status, rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|error| {
                Problem::bad_request(
                    "bad_request",
                    format!("the request body is not valid JSON for this endpoint: {error}"),
                )
            })
    }
}
