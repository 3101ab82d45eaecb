//! What a job of the service does.
//!
//! The kinds are stored in the state database and shown in the API by
//! their names (`backup`, `set-backup`, …); those names are the contract,
//! so they are spelled here once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// One item into its vault.
    Backup,
    /// Every item of an infrastructure set, then the service's configuration.
    SetBackup,
    /// A point (or part of one) back to a target.
    Restore,
    /// A vault's points by their policies, then garbage collection.
    Prune,
    /// A vault's structure, and a share of its data.
    Check,
    /// A vault's replicas brought up to date.
    Replicate,
    /// A set point restored into a scratch area and checked there.
    Drill,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::Backup,
        JobKind::SetBackup,
        JobKind::Restore,
        JobKind::Prune,
        JobKind::Check,
        JobKind::Replicate,
        JobKind::Drill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::SetBackup => "set-backup",
            JobKind::Restore => "restore",
            JobKind::Prune => "prune",
            JobKind::Check => "check",
            JobKind::Replicate => "replicate",
            JobKind::Drill => "drill",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no job kind (a database written by a newer release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownJobKind(pub String);

impl fmt::Display for UnknownJobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown job kind {:?}; known kinds: {}",
            self.0,
            JobKind::ALL.map(JobKind::as_str).join(", ")
        )
    }
}

impl std::error::Error for UnknownJobKind {}

impl FromStr for JobKind {
    type Err = UnknownJobKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownJobKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_name_in_json_text_and_parsing() {
        for kind in JobKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(kind));
            assert_eq!(serde_json::from_str::<JobKind>(&json).unwrap(), kind);
        }
        let e = "defrag".parse::<JobKind>().unwrap_err().to_string();
        assert!(e.contains("defrag") && e.contains("set-backup"), "{e}");
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    PartialSucceeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "Queued",
            JobState::Running => "Running",
            JobState::Succeeded => "Succeeded",
            JobState::PartialSucceeded => "PartialSucceeded",
            JobState::Failed => "Failed",
            JobState::Cancelled => "Cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::PartialSucceeded,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Live counters of a running job (or the last ones of a finished job).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobProgress {
    pub files: u64,
    pub bytes_read: u64,
    /// Restores: bytes written so far, of `bytes_total` found so far.
    pub bytes_written: u64,
    pub bytes_total: u64,
    pub bytes_new: u64,
    pub bytes_stored: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    /// Bytes read per second so far.
    pub rate_bytes_per_sec: f64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    /// What the job was asked to do (a restore's point and target, a
    /// check's share).
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    pub vault: Option<String>,
    pub item: Option<String>,
    pub state: JobState,
    /// `on_demand`, `schedule` or `retry`.
    pub trigger: String,
    pub requested_by: Option<String>,
    /// 1 for the first try, then counting retries.
    pub attempt: u32,
    pub created: i64,
    /// A retry does not start before this time.
    pub not_before: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub progress: Option<JobProgress>,
    /// What the job produced (for a backup: the point and its statistics).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cause: Option<crate::alert::Cause>,
}

/// One line of a job's log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub seq: i64,
    pub time: i64,
    pub level: String,
    pub message: String,
}
