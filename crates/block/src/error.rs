/// Errors of the block format and the bucket protocol.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store refused or failed an operation.
    #[error("object store {op} {path}: {source}")]
    Store {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A block's files do not decode as the format requires.
    #[error("block {block}: {reason}")]
    Corrupt { block: String, reason: String },
    /// The object storage configuration is invalid.
    #[error("object storage config: {0}")]
    Config(String),
}

/// What a caller can do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The store is unreachable or failing: retry later.
    Unavailable,
    /// The block is damaged; retrying will not help.
    Corrupt,
    /// The configuration is wrong.
    Config,
}

impl Error {
    pub(crate) fn store(op: &'static str, path: impl std::fmt::Display, source: object_store::Error) -> Self {
        Error::Store { op, path: path.to_string(), source }
    }

    pub(crate) fn corrupt(block: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        Error::Corrupt { block: block.to_string(), reason: reason.to_string() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store { source: object_store::Error::NotFound { .. }, .. } => ErrorKind::NotFound,
            Error::Store { .. } => ErrorKind::Unavailable,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Config(_) => ErrorKind::Config,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
