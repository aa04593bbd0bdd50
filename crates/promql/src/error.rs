//! The engine's error type and its classification for the HTTP layer.

/// Everything that can go wrong while parsing or evaluating a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text does not parse or fails type checks. The message is whole,
    /// as Prometheus prints it: `1:5: parse error: unexpected …`.
    #[error("{0}")]
    Parse(String),
    /// A request parameter or function argument is invalid (HTTP 400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// A range query asks for more than 11,000 steps.
    #[error(
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    )]
    TooManyPoints,
    /// Evaluation failed on valid input (HTTP 422 `execution`).
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples than `EngineOptions::max_samples`.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran past `EngineOptions::timeout`.
    #[error("query timed out in query execution")]
    Timeout,
    /// The querier failed.
    #[error(transparent)]
    Storage(#[from] strata_model::Error),
}

/// What a caller branches on; the HTTP layer maps each kind to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Prometheus `bad_data`, HTTP 400.
    BadData,
    /// Prometheus `execution`, HTTP 422.
    Execution,
    /// Prometheus `timeout`, HTTP 503.
    Timeout,
    /// The storage behind the querier failed (Prometheus `internal`, HTTP 500).
    Storage,
    /// A store behind the querier is down or failing (Prometheus `unavailable`,
    /// HTTP 503): retry later.
    Unavailable,
}

impl Error {
    /// Classifies this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::BadData(_) | Error::TooManyPoints => ErrorKind::BadData,
            Error::Execution(_) | Error::TooManySamples => ErrorKind::Execution,
            Error::Timeout => ErrorKind::Timeout,
            Error::Storage(e) => match e.kind() {
                strata_model::ErrorKind::BadInput => ErrorKind::BadData,
                strata_model::ErrorKind::Limit => ErrorKind::Execution,
                strata_model::ErrorKind::Internal => ErrorKind::Storage,
                strata_model::ErrorKind::Unavailable => ErrorKind::Unavailable,
            },
        }
    }

    /// The Prometheus API `errorType` string for this error.
    pub fn error_type(&self) -> &'static str {
        match self.kind() {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Storage => "internal",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        Error::Execution(msg.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_prometheus_error_types() {
        assert_eq!(Error::Parse("x".into()).error_type(), "bad_data");
        assert_eq!(Error::TooManyPoints.error_type(), "bad_data");
        assert_eq!(Error::TooManySamples.error_type(), "execution");
        assert_eq!(Error::Timeout.error_type(), "timeout");
        assert!(Error::TooManySamples.to_string().contains("too many samples"));
    }
}
