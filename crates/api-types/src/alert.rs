//! Alerts as the API shows them: the typed cause of a failed job or a
//! security event, with its title, severity and the steps that fix it, so
//! that the console, the remote command line and notifications word them
//! alike. Raising and resolving them is the service's.

use serde::{Deserialize, Serialize};

/// Why a job failed, or which security event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    OutOfCapacity,
    StorageUnreachable,
    PathNotFound,
    AuthenticationFailed,
    WrongKey,
    SourceUnreadable,
    DataCorruption,
    GeneralFault,
    /// An agent the job needs is out of contact, disabled or removed.
    AgentUnreachable,
    // Security events.
    KeyRotated,
    RetentionShortened,
    PointsDeleted,
    ImmutabilityChanged,
    LoginFailures,
}

const ALL_CAUSES: [Cause; 14] = [
    Cause::OutOfCapacity,
    Cause::StorageUnreachable,
    Cause::PathNotFound,
    Cause::AuthenticationFailed,
    Cause::WrongKey,
    Cause::SourceUnreadable,
    Cause::DataCorruption,
    Cause::GeneralFault,
    Cause::AgentUnreachable,
    Cause::KeyRotated,
    Cause::RetentionShortened,
    Cause::PointsDeleted,
    Cause::ImmutabilityChanged,
    Cause::LoginFailures,
];

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::OutOfCapacity => "out_of_capacity",
            Cause::StorageUnreachable => "storage_unreachable",
            Cause::PathNotFound => "path_not_found",
            Cause::AuthenticationFailed => "authentication_failed",
            Cause::WrongKey => "wrong_key",
            Cause::SourceUnreadable => "source_unreadable",
            Cause::DataCorruption => "data_corruption",
            Cause::GeneralFault => "general_fault",
            Cause::AgentUnreachable => "agent_unreachable",
            Cause::KeyRotated => "key_rotated",
            Cause::RetentionShortened => "retention_shortened",
            Cause::PointsDeleted => "points_deleted",
            Cause::ImmutabilityChanged => "immutability_changed",
            Cause::LoginFailures => "login_failures",
        }
    }

    pub fn parse(text: &str) -> Option<Cause> {
        ALL_CAUSES.into_iter().find(|c| c.as_str() == text)
    }

    pub fn is_security(self) -> bool {
        matches!(
            self,
            Cause::KeyRotated
                | Cause::RetentionShortened
                | Cause::PointsDeleted
                | Cause::ImmutabilityChanged
                | Cause::LoginFailures
        )
    }

    /// A short title for lists.
    pub fn title(self) -> &'static str {
        match self {
            Cause::OutOfCapacity => "The storage location is out of capacity",
            Cause::StorageUnreachable => "The storage location cannot be reached",
            Cause::PathNotFound => "The storage path cannot be found",
            Cause::AuthenticationFailed => "The storage location refused the credentials",
            Cause::WrongKey => "The vault key does not open the vault",
            Cause::SourceUnreadable => "Data to protect could not be read",
            Cause::DataCorruption => "Damaged or missing data was found in the vault",
            Cause::GeneralFault => "The job failed",
            Cause::AgentUnreachable => "An agent cannot be reached",
            Cause::KeyRotated => "A vault key was rotated",
            Cause::RetentionShortened => "A retention was shortened",
            Cause::PointsDeleted => "Recovery points were deleted",
            Cause::ImmutabilityChanged => "A vault's immutability changed",
            Cause::LoginFailures => "Many failed logins",
        }
    }

    /// The steps that fix it, in order.
    pub fn remediation(self) -> Vec<String> {
        let steps: &[&str] = match self {
            Cause::OutOfCapacity => &[
                "Add capacity to the storage location or raise its quota.",
                "Or delete recovery points that are no longer needed and run prune.",
                "Run the backup again: what was already uploaded is reused.",
            ],
            Cause::StorageUnreachable => &[
                "Check that the storage server is running and that its address and port in the vault's location are right.",
                "Check the network path and firewall from this machine (run `coffer location test LOCATION`).",
                "Run the backup again once the location answers.",
            ],
            Cause::PathNotFound => &[
                "Check from another machine that the bucket, container, share or directory exists.",
                "Create it, or correct the vault's location.",
                "Run the backup again.",
            ],
            Cause::AuthenticationFailed => &[
                "Check the storage credentials from another machine: they may be wrong, expired, for another account, or lack permission to read, write, list and delete.",
                "Update the vault's credentials (PATCH /api/v1/vaults/{name} with new credentials).",
                "Run the backup again.",
            ],
            Cause::WrongKey => &[
                "The key the service holds no longer opens the vault: it was probably rotated elsewhere.",
                "Give the service the current key (POST /api/v1/vaults/{name}/key with the current key).",
                "Run the backup again.",
            ],
            Cause::SourceUnreadable => &[
                "Check that the item's paths exist and that the service's user may read them (the job log names each path and its error).",
                "Correct the item's paths or permissions, or exclude what should not be backed up.",
                "Run the backup again.",
            ],
            Cause::DataCorruption => &[
                "Run a full check of the vault (`coffer check --read-data`) to find every damaged object.",
                "Keep the damaged objects for analysis; check the storage system's health.",
                "Run a new backup: damaged chunks are written again when the data is still at the source.",
            ],
            Cause::GeneralFault => &[
                "Run the job again: the fault may be transient.",
                "If it happens again, collect the job's log (GET /api/v1/jobs/{id}/logs) and escalate.",
            ],
            Cause::AgentUnreachable => &[
                "Check that the host is running and that its agent runs (`systemctl status coffer-agent`, or `coffer agent run`).",
                "Check that the host can reach the service's address (the agent's log says why it cannot), and that the agent is enabled (`coffer agent list`).",
                "Jobs missed meanwhile run once when the agent is back in contact; run the backup again to be sure.",
            ],
            Cause::KeyRotated => &[
                "Confirm that the rotation was intended.",
                "Store the new key where keys are kept; the old key no longer opens the vault.",
            ],
            Cause::RetentionShortened => &[
                "Confirm that the change was intended: points now outside the retention expire at the next prune.",
                "If it was not, restore the previous retention before the next prune.",
            ],
            Cause::PointsDeleted => &[
                "Confirm that the deletion was intended.",
                "If it was not, undelete the points while they are soft-deleted.",
            ],
            Cause::ImmutabilityChanged => &[
                "Confirm that the change was intended; a locked vault cannot be unlocked.",
            ],
            Cause::LoginFailures => &[
                "Check the service's log for the names and addresses of the attempts.",
                "Change the passwords of the users concerned if the attempts were not theirs.",
            ],
        };
        steps.iter().map(|s| s.to_string()).collect()
    }

    pub fn severity(self) -> Severity {
        match self {
            Cause::SourceUnreadable => Severity::Warning,
            c if c.is_security() => Severity::Critical,
            _ => Severity::Error,
        }
    }
}

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        [
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: i64,
    /// `job` or `security`.
    pub category: String,
    pub cause: Cause,
    pub severity: Severity,
    pub vault: Option<String>,
    pub item: Option<String>,
    pub title: String,
    /// What happened, in the words of the failure.
    pub detail: String,
    /// The steps that fix it.
    pub remediation: Vec<String>,
    /// `open` or `resolved`.
    pub state: String,
    /// How many times it happened while open.
    pub occurrences: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub last_job: Option<i64>,
    pub resolved: Option<i64>,
    /// A user's name, or `automatic` when a later job succeeded.
    pub resolved_by: Option<String>,
}
