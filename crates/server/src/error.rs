//! The service's errors. Each names its [`ErrorCode`], which decides the
//! API's status, `code` and hint; messages name what is wrong.

use coffer_api_types::ErrorCode;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    /// No credentials, or credentials that are not valid.
    #[error("{0}")]
    Unauthenticated(String),

    /// Valid credentials without the role the action needs.
    #[error("{0}")]
    Forbidden(String),

    /// Too many attempts.
    #[error("{0}")]
    TooManyRequests(String),

    /// The thing named does not exist.
    #[error("{0} not found")]
    NotFound(String),

    /// The request conflicts with the current state (a name taken, a job
    /// already running).
    #[error("{0}")]
    Conflict(String),

    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] coffer_engine::Error),

    /// The state database failed.
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),

    /// Configuration or start-up problem.
    #[error("{0}")]
    Config(String),

    /// A local file the service needs.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Anything else that is the service's own fault.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The code that decides this error's API status, exit code and hint.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid { .. } => ErrorCode::Invalid,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::TooManyRequests(_) => ErrorCode::TooManyRequests,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Engine(e) => e.code(),
            Error::Db(_) | Error::Config(_) | Error::Io { .. } | Error::Internal(_) => {
                ErrorCode::Internal
            }
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
