//! Vaults as the API shows and registers them: never their key or
//! credentials in an answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A vault as the API shows it: never its key or credentials.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VaultInfo {
    pub name: String,
    pub location: String,
    /// The vault's own id (from its header).
    pub vault_id: String,
    /// Identifies the key the service holds, without revealing it.
    pub key_fingerprint: String,
    /// Names of the stored credentials (their values are write-only).
    pub credential_names: Vec<String>,
    pub created: i64,
    /// When prune and check run on their own, and how much check reads.
    pub maintenance: Maintenance,
    /// Bytes at the location, as measured after the last backup or prune.
    pub usage_bytes: Option<u64>,
}

/// A vault's own scheduled jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Maintenance {
    /// When prune runs (`daily 03:00`, `weekly sun 04:00`, `every 12 h from
    /// 00:00`); absent: only on request.
    pub prune_schedule: Option<String>,
    /// When `check --read-data-subset` runs.
    pub check_schedule: Option<String>,
    /// The share of pack data each scheduled check reads (percent).
    #[serde(default = "five")]
    pub check_percent: f64,
    /// Time zone of both schedules (default UTC).
    #[serde(default = "utc")]
    pub time_zone: String,
}

/// The share of pack data a scheduled check reads unless told (percent).
pub const DEFAULT_CHECK_PERCENT: f64 = 5.0;

fn five() -> f64 {
    DEFAULT_CHECK_PERCENT
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewVault {
    pub name: String,
    /// A directory path or a storage URL (s3://, azblob://, gcs://, sftp://, webdav://).
    pub location: String,
    /// Storage secrets by name (for example AWS_SECRET_ACCESS_KEY). Write-only.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// The vault key. Write-only. Without it, `create` generates one.
    pub key: Option<String>,
    /// Create a new vault at the location (true) or attach an existing one.
    #[serde(default = "yes")]
    pub create: bool,
}

/// The default of switches that are on unless a request says otherwise.
pub fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VaultWithKey {
    pub vault: VaultInfo,
    /// A key the service generated, shown this once. Store it apart from
    /// the service: it is needed to recover on another machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_key: Option<String>,
}

/// A key given to the service, or asked of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyRequest {
    /// The key; for a rotation without it, one is generated and shown once.
    pub key: Option<String>,
}

/// What a check reads.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckRequest {
    /// Share of pack data to read and verify, in percent (0: structure
    /// only; 100: everything).
    #[serde(default)]
    pub read_data_percent: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewCredentials {
    pub credentials: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImmutabilitySetting {
    /// disabled, enabled or locked (locked cannot be undone).
    pub immutability: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct DeletePoints {
    /// Point ids (or unique prefixes).
    pub points: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub deleted: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct UndeletePoints {
    /// Point ids (or unique prefixes) of soft-deleted points.
    pub points: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Undeleted {
    pub undeleted: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct StopProtection {
    /// false: keep every point forever ("retain data"); true: soft-delete
    /// them all ("delete data").
    pub delete_data: bool,
}

/// What a vault's journal says about its safety.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VaultStatus {
    /// `disabled`, `enabled` or `locked`.
    pub immutability: String,
    /// How long a deleted point stays recoverable.
    pub soft_delete_days: u32,
    pub points: usize,
    pub soft_deleted_points: usize,
    pub replicas: Vec<ReplicaInfo>,
}

/// A replica location of a vault, as its journal records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplicaInfo {
    pub location: String,
    /// `sync` (every write reaches it before a point is committed) or
    /// `async` (a replication run fills it).
    pub mode: String,
    pub added: i64,
    /// Everything committed before this time is on the replica, verified.
    pub synced_as_of: Option<i64>,
    /// How far it is behind, in seconds: 0 for a synchronous replica,
    /// absent when an asynchronous one never completed a run.
    pub lag_secs: Option<i64>,
}
