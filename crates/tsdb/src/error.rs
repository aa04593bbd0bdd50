use std::path::{Path, PathBuf};

/// Errors of the local ingest path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The WAL could not make a batch durable; the samples were not acknowledged.
    #[error("write-ahead log write failed: {reason}")]
    WalWrite { reason: String },
    /// The WAL cannot write (disk full, I/O error); appends are refused until it has
    /// written what was pending, which it retries by itself.
    #[error("write-ahead log cannot write right now (disk full?); retry later")]
    WalFailed,
    /// Writing or uploading a block failed; the head and WAL still hold the data.
    #[error("block: {0}")]
    Block(#[from] strata_block::Error),
    /// A flush task failed.
    #[error("flush: {reason}")]
    Flush { reason: String },
    /// Another open [`Tsdb`](crate::Tsdb) (another process, or another handle in
    /// this one) holds the data dir's lock; `pid` is the holder's, as it wrote it
    /// in `<dir>/lock`.
    #[error(
        "data dir {} is locked by another strata (pid {}); stop it or use another --data-dir",
        dir.display(),
        pid.map_or_else(|| "unknown".to_string(), |p| p.to_string())
    )]
    Locked { dir: PathBuf, pid: Option<u32> },
}

/// What callers can do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Local storage trouble: the sender should retry later.
    Unavailable,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io { op, path: path.to_path_buf(), source }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. }
            | Error::WalWrite { .. }
            | Error::WalFailed
            | Error::Block(_)
            | Error::Flush { .. }
            | Error::Locked { .. } => ErrorKind::Unavailable,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
