//! What one backup made, as every entry point reports it: the command
//! line's `--json` summary line and the result of a backup job in the
//! service are both a [`BackupSummary`].
//!
//! [`PointStats`] mirrors the counters each point's manifest records. The
//! manifest keeps its own type in the engine on purpose: the vault format
//! changes only with `docs/FORMAT.md` and an upgrade path, the API may gain
//! fields; the engine converts one into the other in one place.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::restore::PathError;

/// Counters of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PointStats {
    pub files: u64,
    pub dirs: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub bytes_read: u64,
    /// Plaintext bytes of chunks the vault did not hold before.
    pub bytes_new: u64,
    /// Bytes written to storage (packs and index), after compression.
    pub bytes_stored: u64,
    /// Total size of the files in the point.
    pub bytes_total: u64,
    pub duration_ms: u64,
    /// Entries that could not be read.
    pub errors: u64,
}

/// What one backup committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupSummary {
    /// The new point's id (hex).
    pub point: String,
    pub item: String,
    pub stats: PointStats,
    /// Packs this backup uploaded.
    pub packs_written: u64,
    /// Packs left by an interrupted backup that this one reused.
    pub packs_adopted: u64,
    /// Entries that could not be backed up, each with why.
    #[serde(default)]
    pub errors: Vec<PathError>,
    /// How each disk of a disk point was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSummary>,
}

/// How one disk was backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskSummary {
    pub name: String,
    /// The disk's size in bytes.
    pub size: u64,
    /// `bitmap` (only the blocks a trusted dirty bitmap marks were read),
    /// `compared` (every allocated block read and compared with the
    /// previous point) or `full` (the disk's first point).
    pub method: String,
    /// Why a dirty bitmap was not used, when one could have been.
    #[serde(default)]
    pub note: Option<String>,
    /// Bytes read from the disk.
    pub bytes_read: u64,
    /// Blocks whose content differs from the previous point.
    pub blocks_changed: u64,
    /// Blocks that hold data (the rest are holes).
    pub blocks_data: u64,
}
