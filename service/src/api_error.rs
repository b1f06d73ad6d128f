//! The JSON error answer of every HTTPS route (`{"error": "…"}` with a
//! status that says whose fault it is), the body and caller checks the
//! handlers share, for the broker and the agents alike.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dirbroker_proto::api::ErrorBody;
use dirbroker_proto::sso::error::{Fault, SsoError};

use crate::Peer;
use crate::holder::{CertKind, Holder};

/// An error answer: `{"error": message}` with `status`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route; see docs/serve.md for the endpoints")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
}

/// The JSON body, or what is wrong with it (serde's message for bad JSON or
/// a missing field, 415 without `Content-Type: application/json`, 413 over
/// the size limit).
pub fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match r {
        Ok(Json(v)) => Ok(v),
        Err(e) => {
            let status =
                if e.status() == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { e.status() };
            Err(ApiError::new(status, e.body_text()))
        }
    }
}

/// The caller's certificate, if it is of one of `kinds`.
pub fn require<'a>(peer: &'a Peer, kinds: &[CertKind]) -> Result<&'a Holder, ApiError> {
    match &peer.0 {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate issued by the broker CA is required for this endpoint",
        )),
        Some(h) if kinds.contains(&h.kind) => Ok(h),
        Some(h) => {
            let allowed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a {} certificate may not use this endpoint (allowed: {})", h.kind, allowed.join(", ")),
            ))
        }
    }
}

/// A protocol error as the caller sees it; misbehaving peers are logged as
/// security events. Shared with the AMS and ANS services.
pub fn sso_error(e: &SsoError, context: &str) -> ApiError {
    match e.fault() {
        Fault::Malformed | Fault::User => ApiError::new(StatusCode::BAD_REQUEST, format!("{context}: {e}")),
        Fault::PeerMisbehaved => {
            tracing::warn!(security = true, "{context}: {e}");
            ApiError::new(StatusCode::FORBIDDEN, format!("{context}: {e}"))
        }
        Fault::PeerIncompatible | Fault::Denied | Fault::Unavailable | Fault::Config | Fault::Local | Fault::Bug => {
            tracing::error!("{context}: {e}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{context}: internal error (see the service's log)"),
            )
        }
    }
}
