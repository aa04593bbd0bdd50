use strata_block::ErrorKind;

/// Errors of compaction, retention and garbage collection. Each carries the tenant
/// or block it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing or changing the bucket failed for a tenant.
    #[error("tenant {tenant}: {source}")]
    Bucket {
        tenant: String,
        #[source]
        source: Box<strata_block::Error>,
    },
    /// Reading, writing or marking one block failed.
    #[error("block {block}: {source}")]
    Block {
        block: String,
        #[source]
        source: Box<strata_block::Error>,
    },
    /// A direct object-store request (outside the block protocol) failed.
    #[error("object store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A CPU-bound task (merge, encode) panicked or was cancelled.
    #[error("block {block}: merge task failed: {reason}")]
    Task { block: String, reason: String },
    /// The compactor options are invalid.
    #[error("compactor options: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn bucket(tenant: impl std::fmt::Display, source: strata_block::Error) -> Self {
        Error::Bucket { tenant: tenant.to_string(), source: Box::new(source) }
    }

    pub(crate) fn block(block: impl std::fmt::Display, source: strata_block::Error) -> Self {
        Error::Block { block: block.to_string(), source: Box::new(source) }
    }

    /// What a caller can do about it: `Unavailable` is worth retrying on the next
    /// pass; the others are not.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bucket { source, .. } | Error::Block { source, .. } => source.kind(),
            Error::Store { source, .. } if matches!(**source, object_store::Error::NotFound { .. }) => {
                ErrorKind::NotFound
            }
            Error::Store { .. } => ErrorKind::Unavailable,
            Error::Task { .. } => ErrorKind::Corrupt,
            Error::Config(_) => ErrorKind::Config,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
