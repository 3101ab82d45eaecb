//! Typed errors of the engine. Each variant says what went wrong in words an
//! operator can act on, and names its [`ErrorCode`]: the code, defined in
//! the types crate every entry point shares, decides the command line's exit
//! code, the API's status and the hint, so no entry point keeps a table.

use std::path::PathBuf;

use coffer_api_types::{ErrorCode, StorageFailure};

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key slot of the vault opens with the key that was given.
    #[error("the key does not open this vault (tried {slots} key slot(s))")]
    WrongKey { slots: usize },

    /// A write-only credential was given where a vault key is needed.
    #[error("this is a write-only credential, not a vault key: it cannot {action}")]
    WriteOnly { action: String },

    /// The location holds no vault.
    #[error("no vault found at {location}")]
    NoVault { location: String },

    /// `vault init` on a location that already holds a vault.
    #[error("a vault already exists at {location}")]
    VaultExists { location: String },

    /// The vault was written by a newer, incompatible format version.
    #[error("the vault uses format version {found}, this coffer understands up to {supported}: upgrade coffer")]
    UnsupportedVersion { found: u16, supported: u16 },

    /// A stored object failed its integrity check (hash, MAC, structure).
    #[error("damaged object {object}: {reason}")]
    Corrupt { object: String, reason: String },

    /// An object the vault refers to is missing.
    #[error("missing object {object}")]
    Missing { object: String },

    /// The storage location failed.
    #[error("{failure} on {path}: {message}")]
    Storage {
        path: String,
        failure: StorageFailure,
        message: String,
    },

    /// A location string could not be understood.
    #[error("invalid location {location:?}: {reason}")]
    BadLocation { location: String, reason: String },

    /// No recovery point matches what the user asked for.
    #[error("no recovery point matches {0:?}")]
    PointNotFound(String),

    /// A point id prefix matches several points.
    #[error("point id prefix {prefix:?} is ambiguous: it matches {count} points")]
    AmbiguousPoint { prefix: String, count: usize },

    /// A local file system operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Restore would overwrite files that exist already.
    #[error("{count} file(s) already exist under the target, for example {example}")]
    TargetExists { count: usize, example: PathBuf },

    /// The operation needs a newer format: the journal of format 3, or the
    /// write-only credentials of format 5.
    #[error("this vault is format {version}; {feature} need format {needed} (run `coffer vault upgrade`; older coffers can then no longer open it)")]
    NeedsUpgrade {
        version: u16,
        needed: u16,
        feature: &'static str,
    },

    /// Refused by the vault's immutability setting.
    #[error("refused: the vault is immutable ({setting}), and {what}")]
    Immutable { setting: String, what: String },

    /// Invalid user input that reached the engine (patterns, options).
    #[error("{0}")]
    Invalid(String),

    /// A streamed source (a database dump, a command's output) failed while
    /// it was read; nothing was committed.
    #[error("the source {name} failed: {message}")]
    SourceFailed { name: String, message: String },

    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// The code that decides this error's exit code, API status and hint.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::WrongKey { .. } => ErrorCode::WrongKey,
            Error::WriteOnly { .. } => ErrorCode::WriteOnly,
            Error::NoVault { .. } => ErrorCode::NoVault,
            Error::VaultExists { .. } => ErrorCode::VaultExists,
            Error::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Error::Corrupt { .. } | Error::Missing { .. } => ErrorCode::Damaged,
            Error::Storage { failure, .. } => ErrorCode::Storage(*failure),
            Error::BadLocation { .. } => ErrorCode::BadLocation,
            Error::PointNotFound(_) => ErrorCode::PointNotFound,
            Error::AmbiguousPoint { .. } => ErrorCode::AmbiguousPoint,
            // ENOSPC: the local disk (a restore target, the cache) is full.
            Error::Io { source, .. } if source.raw_os_error() == Some(28) => {
                ErrorCode::LocalDiskFull
            }
            Error::Io { .. } => ErrorCode::LocalIo,
            Error::TargetExists { .. } => ErrorCode::TargetExists,
            Error::NeedsUpgrade { .. } => ErrorCode::NeedsUpgrade,
            Error::Immutable { setting, .. } if setting == "locked" => ErrorCode::ImmutableLocked,
            Error::Immutable { .. } => ErrorCode::Immutable,
            Error::Invalid(_) => ErrorCode::Invalid,
            Error::SourceFailed { .. } => ErrorCode::SourceFailed,
            Error::Cancelled => ErrorCode::Cancelled,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }
}
