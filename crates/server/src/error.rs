//! The service's errors. Each maps to one HTTP status in `api`; messages
//! name what is wrong and, where there is one, what to do.

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
