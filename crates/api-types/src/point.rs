//! Recovery points as every entry point lists them: [`PointSummary`] is
//! one row of `GET /vaults/{name}/points` and of `coffer points list`,
//! [`Listing`] and [`Entry`] one directory of a point as the service's
//! browser and `coffer ls` show it. The engine fills them from a manifest
//! and a tree node in one place (`coffer_engine::views`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backup::PointStats;

/// A recovery point as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PointSummary {
    pub id: String,
    pub item: String,
    pub time: i64,
    pub host: String,
    pub files: u64,
    pub bytes_total: u64,
    /// Entries that could not be read when it was taken.
    pub errors: u64,
    /// `crash-consistent`, `file-system-consistent` or `application-consistent`.
    pub consistency: String,
    /// Labels, among them the item's kind and, for points of an
    /// infrastructure set, the set and the set point's id.
    pub tags: Vec<String>,
    /// `active`, or `soft-deleted` (restorable, and recoverable with
    /// undelete until `purge_at`).
    pub state: String,
    /// Soft-deleted points: when, and why.
    pub deleted_at: Option<i64>,
    pub deleted_reason: Option<String>,
    pub purge_at: Option<i64>,
    /// On hold: no retention rule expires it.
    pub hold: bool,
    /// The paths backed up (bytes that are not UTF-8 show as U+FFFD).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The point this one was taken against (hex id).
    #[serde(default)]
    pub parent: Option<String>,
    /// On-demand points: kept until then (Unix seconds) whatever the policy says.
    #[serde(default)]
    pub on_demand_until: Option<i64>,
    #[serde(default)]
    pub stats: PointStats,
    /// Points written with a write-only credential: its slot id
    /// (`coffer key list` names it); none for a key holder's point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
    /// Written with a credential after it was revoked: not to be trusted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_revocation: bool,
}

/// One entry of a directory in a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// The name; bytes that are not UTF-8 show as U+FFFD.
    pub name: String,
    /// The absolute path as backed up.
    pub path: String,
    /// `file`, `dir`, `symlink`, `fifo`, `socket`, `char-device` or
    /// `block-device`.
    pub kind: String,
    /// Files: the size in bytes.
    pub size: Option<u64>,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Unix seconds.
    pub mtime: i64,
    /// Symlinks: where it points.
    pub target: Option<String>,
    /// Set when the entry could not be read completely at backup time.
    pub error: Option<String>,
}

/// A directory of a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Listing {
    pub point: String,
    pub item: String,
    pub time: i64,
    pub path: String,
    pub entries: Vec<Entry>,
}
