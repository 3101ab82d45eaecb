//! The agent's errors, each with the code every entry point shares, so
//! the command line exits and hints as it does for the same failure
//! elsewhere.

use coffer_api_types::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error of its own.
    #[error("the service refused: {message}")]
    Refused { code: ErrorCode, message: String },
    /// The service could not be reached, or did not prove who it is.
    #[error("cannot reach the service at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The agent's state directory or the token is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] coffer_engine::Error),
    #[error(transparent)]
    Source(#[from] coffer_sources::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Refused { code, .. } => *code,
            Error::Unreachable { .. } => {
                ErrorCode::Storage(coffer_api_types::StorageFailure::Unreachable)
            }
            Error::Invalid(_) => ErrorCode::Invalid,
            Error::Io { .. } => ErrorCode::LocalIo,
            Error::Engine(e) => e.code(),
            Error::Source(coffer_sources::Error::Engine(e)) => e.code(),
            Error::Source(_) => ErrorCode::SourceFailed,
        }
    }

    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
