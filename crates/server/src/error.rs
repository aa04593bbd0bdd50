//! API errors and the one place where error kinds become HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What went wrong, as far as the client is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// Malformed or invalid input that must not be retried.
    BadData,
    /// The body is larger than a configured cap.
    TooLarge,
    /// Content type or encoding this endpoint does not speak.
    UnsupportedMediaType,
    /// A valid PromQL query that failed while running.
    Execution,
    /// A per-tenant rate limit tripped; retry later.
    RateLimited,
    /// A query ran past its timeout.
    Timeout,
    /// Strata cannot take the request right now (starting up, WAL failure); retry.
    Unavailable,
    /// A bug or unexpected internal failure.
    Internal,
    NotFound,
}

/// An error answered as Prometheus answers: `{"status":"error","errorType":..,"error":..}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::BadData, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Internal, message)
    }

    /// The single mapping from error kind to HTTP status and Prometheus error type.
    pub fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self.kind {
            ApiErrorKind::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
            ApiErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "bad_data"),
            ApiErrorKind::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_data"),
            ApiErrorKind::Execution => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            ApiErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "unavailable"),
            ApiErrorKind::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.status_and_type();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self.message, "request failed");
        }
        (status, axum::Json(ErrorBody { status: "error", error_type, error: &self.message })).into_response()
    }
}

impl From<strata_model::Error> for ApiError {
    fn from(e: strata_model::Error) -> Self {
        use strata_model::ErrorKind as K;
        let kind = match e.kind() {
            K::BadInput => ApiErrorKind::BadData,
            K::Limit => ApiErrorKind::Execution,
            K::Internal => ApiErrorKind::Internal,
            K::Unavailable => ApiErrorKind::Unavailable,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<strata_tsdb::Error> for ApiError {
    fn from(e: strata_tsdb::Error) -> Self {
        match e.kind() {
            strata_tsdb::ErrorKind::Unavailable => ApiError::new(ApiErrorKind::Unavailable, e.to_string()),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
