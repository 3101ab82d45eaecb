//! A restore as every entry point asks for it and reports it: the
//! service's restore job takes [`RestoreParams`] and its result is a
//! [`RestoreSummary`], which is also the command line's `--json` summary.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The parameters of a restore job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RestoreParams {
    /// A point id, a unique prefix of one, or `latest` (of the item).
    pub point: String,
    /// Absolute directory to restore under; `/etc/x` comes back as
    /// `TARGET/etc/x`. Empty for a database or command item: back where it
    /// came from (the database file, the server, the restore command).
    #[serde(default)]
    pub target: String,
    /// Absolute paths as backed up; empty means everything.
    #[serde(default)]
    pub includes: Vec<String>,
    /// Replace existing files.
    #[serde(default)]
    pub overwrite: bool,
    /// A registered agent whose host the files are written on (the item's
    /// own or another); absent: this service's machine.
    #[serde(default)]
    pub host: Option<String>,
}

/// A path and what went wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PathError {
    pub path: String,
    pub error: String,
}

/// What a restore of a file tree wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoreSummary {
    /// The restored point's id (hex).
    pub point: String,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Bytes this restore read from the local tier and from the vault's location.
    pub bytes_from_local_tier: u64,
    pub bytes_from_location: u64,
    /// Files whose content could not be restored completely.
    pub damaged: Vec<PathError>,
    /// Other entries that could not be restored exactly (metadata, special files).
    pub problems: Vec<PathError>,
}
