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
