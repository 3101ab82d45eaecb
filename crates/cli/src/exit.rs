//! Exit codes and hints. Each engine error maps to one documented code and,
//! where the user can act on it, to a hint that says what to do.

use coffer_engine::Error;

// 0: everything worked.
/// A general error (storage failure, bad input that reached the engine, …).
pub const ERROR: u8 = 1;
// 2 is clap's usage error.
/// The operation finished but some files could not be backed up or restored.
pub const PARTIAL: u8 = 3;
/// The key does not open the vault.
pub const WRONG_KEY: u8 = 4;
/// `check` (or an operation) found damaged or missing vault objects.
pub const DAMAGED: u8 = 5;
/// The vault, or the recovery point asked for, does not exist.
pub const NOT_FOUND: u8 = 6;

pub struct Code(pub u8);

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c.0)
    }
}

/// The exit code and hint for an error chain.
pub fn classify(err: &anyhow::Error) -> (Code, Option<String>) {
    let Some(engine) = err.chain().find_map(|e| e.downcast_ref::<Error>()) else {
        return (Code(ERROR), None);
    };
    match engine {
        Error::WrongKey { .. } => (
            Code(WRONG_KEY),
            Some("check COFFER_KEY or --key-file: the key must be one that `key generate`, `key add` or `key rotate` made for this vault".into()),
        ),
        Error::NoVault { .. } => (
            Code(NOT_FOUND),
            Some("check the location, or create a vault there with `coffer vault init --location LOC`".into()),
        ),
        Error::VaultExists { .. } => (Code(ERROR), Some("use the existing vault, or pick an empty location".into())),
        Error::PointNotFound(_) => (Code(NOT_FOUND), Some("list the points with `coffer points list`".into())),
        Error::AmbiguousPoint { .. } => (Code(NOT_FOUND), Some("give more characters of the point id".into())),
        Error::Corrupt { .. } | Error::Missing { .. } => (
            Code(DAMAGED),
            Some("run `coffer check --read-data` to find every damaged object".into()),
        ),
        Error::UnsupportedVersion { .. } => (Code(ERROR), Some("install a newer coffer to use this vault".into())),
        Error::TargetExists { .. } => (
            Code(ERROR),
            Some("restore into an empty directory, or pass --overwrite to replace existing files".into()),
        ),
        Error::BadLocation { .. } => (
            Code(ERROR),
            Some("a location is a path or a URL: /srv/backups/v1, s3://bucket/prefix?endpoint=…&region=…, azblob://container/prefix?account=…, gcs://bucket/prefix, sftp://user@host:port/path, webdav://host/path; secrets go in the environment or --credentials FILE".into()),
        ),
        Error::Storage { failure, .. } => (Code(ERROR), Some(failure.remedy().into())),
        Error::NeedsUpgrade { .. } => (
            Code(ERROR),
            Some("`coffer vault upgrade --vault LOC` moves the vault to the current format; make sure every machine writing to it runs this coffer first".into()),
        ),
        Error::Immutable { setting, .. } if setting == "locked" => (
            Code(ERROR),
            Some("a locked vault stays immutable for good: points leave only when their retention ends, and retention can only be lengthened".into()),
        ),
        Error::Immutable { .. } => (
            Code(ERROR),
            Some("immutability protects recovery points from early deletion: wait until they expire, or turn it off with `coffer vault set --immutability disabled`".into()),
        ),
        Error::SourceFailed { .. } => (
            Code(ERROR),
            Some("run the item's command by hand to see why it fails; nothing was committed".into()),
        ),
        Error::Io { .. } | Error::Invalid(_) | Error::Cancelled => (Code(ERROR), None),
    }
}
