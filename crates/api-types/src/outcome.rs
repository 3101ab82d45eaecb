//! What each kind of job takes as its parameters (a check's is the
//! `CheckRequest` of its API call) and records as its result, beside the shared summaries of backups (`BackupSummary`) and
//! restores (`RestoreSummary`). A job's `params` and `result` are stored and
//! answered as JSON; these types are the one shape of that JSON.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::set::ItemStatus;

/// A drill job's parameters: the set point to drill (absent: the newest).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DrillParams {
    #[serde(default)]
    pub point: Option<String>,
}

/// What a check found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    /// How many problems (the job's log names the first hundred).
    pub problems: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_verified: u64,
    pub points: usize,
}

/// What a prune did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PruneResult {
    pub points_soft_deleted: usize,
    pub points_purged: usize,
    pub packs_condemned: usize,
    pub packs_repacked: usize,
    pub packs_deleted: usize,
    pub bytes_deleted: u64,
    /// Write-only writers' index files replaced to tell them what was
    /// condemned, reprieved or deleted.
    #[serde(default)]
    pub writer_index_files_rewritten: usize,
    /// Activity markers of finished or dead processes removed.
    #[serde(default)]
    pub stale_markers_removed: usize,
}

/// What a replicate job did, replica by replica.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplicateResult {
    pub replicas: Vec<ReplicaRun>,
}

/// One replica's run: what was copied, or why it failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplicaRun {
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<usize>,
    /// The replica is complete as of this time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an item restore that is not a file tree (a database, a command's
/// stream) reports.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemRestoreResult {
    pub message: String,
}

/// What a set backup made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetBackupResult {
    pub set_point: String,
    pub time: i64,
    pub items: Vec<ItemStatus>,
    /// The point holding the service's configuration, when it was stored.
    pub service_point: Option<String>,
    pub ready_for_cloud_recovery: bool,
}
