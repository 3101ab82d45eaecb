//! Infrastructure sets as the API shows and creates them, and the set
//! points found in a vault.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Azure Stack's defaults: a backup every 12 hours, kept 7 days.
pub const DEFAULT_SCHEDULE: &str = "every 12 h from 00:00";
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

/// An infrastructure set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InfraSet {
    pub name: String,
    pub vault: String,
    /// The items, backed up in this order.
    pub items: Vec<String>,
    /// `every N h from HH:MM`, `daily HH:MM` or `weekly mon,thu HH:MM`.
    pub schedule: String,
    /// IANA time zone of the schedules.
    pub time_zone: String,
    /// Points are kept this many days (1–3650).
    pub retention_days: u32,
    /// Whether scheduled runs happen.
    pub enabled: bool,
    /// When a recovery drill of the newest set point runs on its own.
    #[serde(default)]
    pub drill_schedule: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewSet {
    pub name: String,
    pub vault: String,
    /// Items of the vault, backed up in this order.
    pub items: Vec<String>,
    /// Default `every 12 h from 00:00`.
    #[serde(default = "set_schedule")]
    pub schedule: String,
    #[serde(default = "utc_zone")]
    pub time_zone: String,
    /// Default 7.
    #[serde(default = "seven")]
    pub retention_days: u32,
    #[serde(default = "crate::vault::yes")]
    pub enabled: bool,
    /// When a recovery drill runs on its own (absent: only on request).
    #[serde(default)]
    pub drill_schedule: Option<String>,
}

fn set_schedule() -> String {
    DEFAULT_SCHEDULE.into()
}
fn utc_zone() -> String {
    "UTC".into()
}
fn seven() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// What happened to one item of a set point.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemStatus {
    pub item: String,
    pub kind: String,
    /// `Succeeded`, `PartialSucceeded` or `Failed`.
    pub status: String,
    /// The item's recovery point, when one was made.
    pub point: Option<String>,
    pub consistency: Option<String>,
    pub message: Option<String>,
    /// The agent the item lives on; none for the service's own machine.
    #[serde(default)]
    pub host: Option<String>,
}

impl ItemStatus {
    pub fn failed(item: &str, kind: &str, message: String) -> Self {
        ItemStatus {
            item: item.to_string(),
            kind: kind.to_string(),
            status: "Failed".into(),
            point: None,
            consistency: None,
            message: Some(message),
            host: None,
        }
    }
}

/// A set point found in a vault.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetPointInfo {
    pub set: String,
    pub id: String,
    pub time: i64,
    /// Per item, from the configuration point; items whose point is gone
    /// (deleted since) show as missing.
    pub items: Vec<ItemStatus>,
    /// The point holding the service's configuration.
    pub service_point: Option<String>,
    /// The configuration and every item's point are there.
    pub ready_for_cloud_recovery: bool,
    /// Why it is not ready.
    pub not_ready_because: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct SetChanges {
    pub items: Option<Vec<String>>,
    pub schedule: Option<String>,
    pub time_zone: Option<String>,
    pub retention_days: Option<u32>,
    pub enabled: Option<bool>,
    /// An empty string switches scheduled drills off.
    pub drill_schedule: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, Default)]
pub struct DrillRequest {
    /// A set point id or a unique prefix (default: the set's newest).
    #[serde(default)]
    pub point: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchedulerSwitch {
    /// Whether scheduled runs start. Off keeps every schedule.
    pub enabled: bool,
}

/// One set point, as its configuration point records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetRecord {
    pub set: String,
    pub id: String,
    /// Unix seconds; every item's point carries the same time.
    pub time: i64,
    pub vault: String,
    pub items: Vec<ItemStatus>,
}
