use std::error::Error as StdError;

/// Errors of the model and of every [`crate::Querier`] implementation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A regular expression in a matcher does not compile.
    #[error("invalid regular expression in matcher {name}=~{pattern:?}: {reason}")]
    BadRegex { name: String, pattern: String, reason: String },
    /// A tenant id breaks the naming rules.
    #[error("invalid tenant id {id:?}: {reason}")]
    InvalidTenant { id: String, reason: &'static str },
    /// A query asked for more than a configured limit allows.
    #[error("query limit exceeded: {what}")]
    LimitExceeded { what: String },
    /// The storage behind a querier failed; the source says where.
    #[error("storage error: {source}")]
    Storage {
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A store (the object store, a peer) cannot be reached or is failing now; the
    /// same request may succeed later.
    #[error("{store} unavailable: {source}")]
    Unavailable {
        store: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// What a caller can do about an [`Error`]: the only thing the HTTP layer branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying it will not help.
    BadInput,
    /// The request is valid but exceeds a limit.
    Limit,
    /// Something on our side failed; the request may succeed later.
    Internal,
    /// A store behind the querier is down or failing: retry later (HTTP 503), or
    /// answer without its data when partial responses are allowed.
    Unavailable,
}

impl Error {
    /// Wraps any storage-side error.
    pub fn storage(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Error::Storage { source: source.into() }
    }

    /// Wraps the error of a store that is down or failing (`store` names it, such
    /// as "object store" or a peer's name).
    pub fn unavailable(store: impl Into<String>, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Error::Unavailable { store: store.into(), source: source.into() }
    }

    /// Classifies this error for callers that only branch on the outcome.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRegex { .. } | Error::InvalidTenant { .. } => ErrorKind::BadInput,
            Error::LimitExceeded { .. } => ErrorKind::Limit,
            Error::Storage { .. } => ErrorKind::Internal,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
