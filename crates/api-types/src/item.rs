//! Items as the API shows and takes them: what is protected and how
//! (the settings of each kind, the scripts around a backup), and an
//! item's schedule. The sources crate checks and runs them.

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

/// The longest a script may run (as Azure Backup allows).
pub const MAX_TIMEOUT_SECS: u64 = 1800;

/// A script run before or after an item's backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Hook {
    /// Shell command line, run with `sh -c`.
    pub command: String,
    /// Seconds before it is stopped (1–1800, default 300).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How many more times it is tried after a failure (0–5).
    #[serde(default)]
    pub retries: u32,
    /// Go on with the backup (crash-consistent) when the script fails.
    #[serde(default)]
    pub continue_on_failure: bool,
}

fn default_timeout() -> u64 {
    Hook::DEFAULT_TIMEOUT_SECS
}

impl Hook {
    /// Checks the settings; the error names what is wrong.
    pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

    /// A script with the default timeout, no retry, and a backup that stops
    /// when it fails.
    pub fn new(command: String) -> Hook {
        Hook {
            command,
            timeout_secs: Self::DEFAULT_TIMEOUT_SECS,
            retries: 0,
            continue_on_failure: false,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.command.trim().is_empty() {
            return Err("the script's command is empty".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(format!(
                "timeout_secs must be 1 to {MAX_TIMEOUT_SECS}, not {}",
                self.timeout_secs
            ));
        }
        if self.retries > 5 {
            return Err(format!("retries must be 0 to 5, not {}", self.retries));
        }
        Ok(())
    }
}

/// A command item's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommandSpec {
    /// Shell command line whose standard output is backed up.
    pub backup: String,
    /// Shell command line that reads a point's stream on its standard input.
    /// Without it, restore writes the stream as a file under the target.
    #[serde(default)]
    pub restore: Option<String>,
    /// The stream's file name in the point.
    #[serde(default = "default_file_name")]
    pub file_name: String,
    /// The command itself produces a consistent state (a database's own
    /// snapshot tool), so its points are application-consistent.
    #[serde(default)]
    pub application_consistent: bool,
}

fn default_file_name() -> String {
    CommandSpec::DEFAULT_FILE_NAME.into()
}

impl CommandSpec {
    pub const DEFAULT_FILE_NAME: &'static str = "output";
}

/// What of a server an item protects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostgresMode {
    /// One database, as a logical dump (`pg_dump`).
    #[default]
    Database,
    /// The whole cluster, as a base backup (`pg_basebackup`).
    Cluster,
}

/// How to reach the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PostgresSpec {
    /// A libpq connection string without a password, for example
    /// `host=/run/postgresql port=5432 user=backup`.
    pub connection: String,
    /// The database (mode `database`).
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub mode: PostgresMode,
    /// Directory of the client tools, when they are not on the PATH
    /// (for example `/usr/lib/postgresql/15/bin`).
    #[serde(default)]
    pub bin_dir: Option<String>,
}

/// The format of a disk item's images. Never guessed from the image's
/// first bytes: a guest can write any header into a raw disk, and a raw
/// image read as qcow2 could name a host file as its backing file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// A raw image file or a block device, read directly.
    #[default]
    Raw,
    /// A qcow2 image, read through QEMU (`qemu-storage-daemon`), with a
    /// persistent dirty bitmap for changed-block tracking.
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// How a `disk` item's images are read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskSpec {
    #[serde(default)]
    pub format: DiskFormat,
}

/// A protected item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub name: String,
    pub vault: String,
    /// What is protected: `directory`, `sqlite`, `postgresql` or `command`.
    pub kind: String,
    /// `directory`: absolute paths backed up together; `sqlite`: the one
    /// database file.
    pub paths: Vec<String>,
    /// Glob patterns left out (`directory`).
    pub excludes: Vec<String>,
    /// How to reach the server (`postgresql`).
    #[serde(default)]
    pub postgresql: Option<PostgresSpec>,
    /// The commands (`command`).
    #[serde(default)]
    pub command: Option<CommandSpec>,
    /// How the images are read (`disk`).
    #[serde(default)]
    pub disk: Option<DiskSpec>,
    /// Script run before the backup (quiesce the application).
    #[serde(default)]
    pub pre: Option<Hook>,
    /// Script run after the backup, whatever happened.
    #[serde(default)]
    pub post: Option<Hook>,
    /// The registered agent the item lives on; none for the service's own
    /// machine.
    #[serde(default)]
    pub agent: Option<String>,
    /// Whether scheduled backups run.
    pub enabled: bool,
    /// How often a failed backup is tried again.
    pub retry_attempts: u32,
    /// Seconds before a retry.
    pub retry_delay_secs: u64,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewItem {
    pub name: String,
    pub vault: String,
    /// `directory` (the default), `sqlite`, `postgresql` or `command`.
    #[serde(default = "directory")]
    pub kind: String,
    /// `directory`: the trees; `sqlite`: the one database file.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    /// `postgresql`: how to reach the server.
    #[serde(default)]
    pub postgresql: Option<PostgresSpec>,
    /// `command`: the backup and restore commands.
    #[serde(default)]
    pub command: Option<CommandSpec>,
    /// `disk`: the images' format.
    #[serde(default)]
    pub disk: Option<DiskSpec>,
    /// Script run before each backup.
    #[serde(default)]
    pub pre: Option<Hook>,
    /// Script run after each backup.
    #[serde(default)]
    pub post: Option<Hook>,
    /// The registered agent the item lives on (it must write to the
    /// item's vault); none for the service's own machine.
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default = "crate::vault::yes")]
    pub enabled: bool,
    #[serde(default = "two")]
    pub retry_attempts: u32,
    #[serde(default = "five_minutes")]
    pub retry_delay_secs: u64,
    /// A policy of the vault to follow (default: DefaultPolicy).
    pub policy: Option<String>,
}

fn directory() -> String {
    "directory".into()
}
fn two() -> u32 {
    2
}
fn five_minutes() -> u64 {
    NewItem::DEFAULT_RETRY_DELAY_SECS
}

impl NewItem {
    pub const DEFAULT_RETRY_DELAY_SECS: u64 = 300;
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemChanges {
    pub paths: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    pub postgresql: Option<PostgresSpec>,
    pub command: Option<CommandSpec>,
    pub disk: Option<DiskSpec>,
    pub pre: Option<Hook>,
    pub post: Option<Hook>,
    pub enabled: Option<bool>,
    pub retry_attempts: Option<u32>,
    pub retry_delay_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyAssignment {
    pub policy: String,
}
