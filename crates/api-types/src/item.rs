//! Items as the API shows their schedules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An item's schedule as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemSchedule {
    pub item: String,
    pub policy: String,
    /// The schedule in words.
    pub schedule: String,
    /// Whether scheduled backups of this item run (enabled item, active
    /// protection, scheduler on).
    pub active: bool,
    /// The next scheduled run (Unix seconds), when active.
    pub next_run: Option<i64>,
    /// The last backup of the item, any trigger: its own jobs and its set's
    /// (with the item's own status in that set run).
    pub last_run: Option<i64>,
    pub last_state: Option<String>,
    /// The last backup that succeeded (fully or partly).
    pub last_success: Option<i64>,
    /// `active`, `stopped-retain` (points kept forever) or `stopped-delete`
    /// (points soft-deleted), as the vault's journal records it.
    pub protection: String,
}
