//! The frontend's errors and the one place they become an HTTP status and a
//! Prometheus `errorType`.

/// What went wrong with a query, carrying what the client is told.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An answer in Prometheus's error shape from the service below: a downstream's
    /// `{"status":"error",...}` with its HTTP status, or an in-process engine's error
    /// mapped by its owner. Passed to the client unchanged.
    #[error("{message}")]
    Api { status: u16, error_type: String, message: String },
    /// A request parameter the frontend itself refuses (400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The downstream could not be reached or dropped the connection (502).
    #[error("downstream {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// The downstream did not answer within the configured timeout (503 `timeout`).
    #[error("downstream {url} did not answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
    /// The downstream answered 2xx with something that is not a Prometheus answer of
    /// the expected shape (502).
    #[error("downstream {url} answered something that is not a Prometheus query answer: {reason}")]
    BadResponse { url: String, reason: String },
    /// A bug or an unexpected failure inside the frontend (500).
    #[error("{0}")]
    Internal(String),
}

/// The frontend's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            Error::Api { status, .. } => *status,
            Error::BadData(_) => 400,
            Error::Unreachable { .. } | Error::BadResponse { .. } => 502,
            Error::Timeout { .. } => 503,
            Error::Internal(_) => 500,
        }
    }

    /// Prometheus's `errorType`.
    pub fn error_type(&self) -> &str {
        match self {
            Error::Api { error_type, .. } => error_type,
            Error::BadData(_) => "bad_data",
            Error::Unreachable { .. } => "unavailable",
            Error::Timeout { .. } => "timeout",
            Error::BadResponse { .. } | Error::Internal(_) => "internal",
        }
    }

    /// `{"status":"error","errorType":...,"error":...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"status": "error", "errorType": self.error_type(), "error": self.to_string()})
    }
}

/// The `errorType` Prometheus uses for a status, for error answers that carry none.
pub(crate) fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 415 => "bad_data",
        404 => "not_found",
        406 => "not_acceptable",
        422 => "execution",
        429 | 502 | 503 => "unavailable",
        504 => "timeout",
        499 => "canceled",
        _ => "internal",
    }
}
