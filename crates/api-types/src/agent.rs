//! Agents: hosts that back up their own items into a vault of the service.
//!
//! An administrator makes a one-time registration token; the host
//! registers with it and receives its own identity (a secret it presents
//! on every call) and a write-only credential of the vault. From then on
//! the agent asks the service for work (it pulls, so the service never
//! connects to a host) and reports its progress, log lines and outcome
//! back. The same types serve the service, the agent and the command line.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backup::BackupSummary;
use crate::item::Item;
use crate::restore::RestoreSummary;

/// How a registration token's text begins; see [`RegistrationText`].
pub const REGISTRATION_PREFIX: &str = "coffer-register:v1:";

/// The oldest agent version a service accepts (`major.minor`): older
/// agents are refused with an upgrade message.
pub const OLDEST_AGENT_VERSION: &str = "0.1";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewRegistrationToken {
    /// The vault the agent will write to.
    pub vault: String,
    /// Seconds until the token expires (default a day, at most 30 days).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A registration token as the service lists it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistrationToken {
    pub id: i64,
    pub vault: String,
    pub created: i64,
    pub expires: i64,
    pub created_by: String,
    /// The agent that registered with it, once used.
    pub used_by: Option<String>,
}

/// A new token: `text` is shown once and given to the host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedRegistrationToken {
    pub token: RegistrationToken,
    /// `coffer-register:v1:<secret>:<fingerprint or "none">:<service URL>`.
    pub text: String,
}

/// The parts of a registration token's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationText {
    pub secret: String,
    /// SHA-256 of the service's TLS certificate (hex), when it serves TLS.
    pub fingerprint: Option<String>,
    pub url: String,
}

impl RegistrationText {
    pub fn render(&self) -> String {
        format!(
            "{REGISTRATION_PREFIX}{}:{}:{}",
            self.secret,
            self.fingerprint.as_deref().unwrap_or("none"),
            self.url
        )
    }

    /// Reads a token's text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix(REGISTRATION_PREFIX)?;
        let (secret, rest) = rest.split_once(':')?;
        let (fingerprint, url) = rest.split_once(':')?;
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(secret) || !(fingerprint == "none" || hex64(fingerprint)) || url.is_empty() {
            return None;
        }
        Some(RegistrationText {
            secret: secret.to_string(),
            fingerprint: (fingerprint != "none").then(|| fingerprint.to_ascii_lowercase()),
            url: url.to_string(),
        })
    }
}

/// What a host says of itself, at registration and at every contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostFacts {
    pub hostname: String,
    /// For example "Debian GNU/Linux 13 (trixie), x86_64".
    pub os: String,
    /// The agent's Coffer version.
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// The secret part of the registration token.
    pub token: String,
    /// The agent's name in the service (default: its host name).
    #[serde(default)]
    pub name: Option<String>,
    pub host: HostFacts,
}

/// The identity a registered agent keeps (mode 0600) and presents.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub name: String,
    pub vault: String,
    /// Sent as `Authorization: Bearer …` on every call.
    pub secret: String,
    /// The agent's write-only credential of the vault.
    pub credential: String,
}

/// Whether an administrator lets an agent work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Enabled,
    Disabled,
}

/// A registered agent as the service shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub name: String,
    pub vault: String,
    pub state: AgentState,
    pub host: HostFacts,
    /// The address its last call came from.
    pub address: Option<String>,
    pub registered: i64,
    pub last_contact: Option<i64>,
    /// Whether it has been out of contact for longer than the service allows.
    pub unreachable: bool,
    /// The write-only credential's slot in the vault.
    pub slot: String,
    /// The items that live on it.
    pub items: Vec<String>,
    /// When a backup of one of its items last succeeded.
    pub last_success: Option<i64>,
}

/// An agent's call for work; the answer may take up to `wait_secs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PollRequest {
    pub host: HostFacts,
    /// Seconds the service may hold the call open when there is no work
    /// (at most 30).
    #[serde(default)]
    pub wait_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PollAnswer {
    pub work: Option<Work>,
    /// A new secret after an administrator re-keyed the agent: it replaces
    /// the one the agent holds, which stops working once this one is used.
    pub new_secret: Option<String>,
}

/// One job for an agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Work {
    pub job: i64,
    #[serde(flatten)]
    pub task: Task,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Task {
    /// Back the item up into the agent's vault with its credential.
    Backup {
        item: Box<Item>,
        /// Tags the point carries besides the item kind's (a set's).
        #[serde(default)]
        tags: Vec<String>,
        /// The time the point is recorded at (a set's points share one):
        /// seconds and nanoseconds since the epoch.
        #[serde(default)]
        time: Option<(i64, u32)>,
    },
    /// Write a point's file tree (or the parts `includes` name) under
    /// `target` on the agent's host; trees and chunks come from the
    /// service (`/agent/restore/{job}/…`). A database or command point is
    /// put back through its `item`'s kind instead, where the item says
    /// (or as a file under `target`, when one is given).
    Restore {
        /// The point's id (hex).
        point: String,
        /// Its root tree's id (hex).
        tree: String,
        /// The item a database or command point is restored through.
        #[serde(default)]
        item: Option<Box<Item>>,
        /// The point's recorded paths (its one stream, for such items).
        #[serde(default)]
        paths: Vec<String>,
        /// The point's time (Unix seconds and nanoseconds): a qcow2 disk
        /// restored through its item gets a bitmap counting from it.
        #[serde(default)]
        time_secs: Option<i64>,
        #[serde(default)]
        time_nanos: u32,
        target: String,
        #[serde(default)]
        includes: Vec<String>,
        #[serde(default)]
        overwrite: bool,
    },
}

/// A running job's counters, as the agent reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkProgress {
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_new: u64,
    pub bytes_stored: u64,
    /// A restore's bytes written.
    #[serde(default)]
    pub bytes_written: u64,
    pub errors: u64,
    /// Log lines since the last report: `(level, message)`.
    #[serde(default)]
    pub log: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ProgressAnswer {
    /// The job was cancelled: stop, committing nothing.
    pub cancel: bool,
}

/// How a job on an agent ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WorkDone {
    /// The point is committed; the service builds the job's result from
    /// the manifest it accepted, not from these counters.
    BackedUp {
        summary: BackupSummary,
        #[serde(default)]
        warnings: Vec<String>,
    },
    /// A restore ended; its summary (damaged files and problems listed).
    Restored {
        summary: RestoreSummary,
    },
    /// A database or command point was put back through its item's kind:
    /// what was done, in one line.
    RestoredItem {
        message: String,
    },
    /// Nothing was committed.
    Failed {
        /// The engine's or source's error code (`ErrorCode` wire name),
        /// when it had one.
        code: Option<String>,
        message: String,
    },
    Cancelled,
}

/// How fast agents' backups may send data into the service, as the MARS
/// agent's throttling: one rate in work hours and one outside them, for
/// each agent and for all agents together. Restores are never held back:
/// whoever restores wants the data now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BandwidthLimits {
    /// The days work hours apply on (`mon` … `sun`).
    pub work_days: Vec<String>,
    /// Work hours start (`HH:MM`, inclusive) …
    pub work_start: String,
    /// … and end (`HH:MM`, exclusive; after `work_start`).
    pub work_end: String,
    /// The IANA time zone the hours are read in.
    pub time_zone: String,
    /// What each agent may send.
    pub per_agent: Rates,
    /// What all agents together may send.
    pub overall: Rates,
    /// Agents with rates of their own instead of `per_agent`.
    #[serde(default)]
    pub agents: Vec<AgentRates>,
}

/// Bytes per second in and out of work hours; none is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rates {
    pub work_hours: Option<u64>,
    pub other_hours: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentRates {
    pub agent: String,
    pub rates: Rates,
}

impl Default for BandwidthLimits {
    /// Unlimited, with Monday to Friday 08:00–18:00 UTC as work hours.
    fn default() -> Self {
        BandwidthLimits {
            work_days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            work_start: "08:00".into(),
            work_end: "18:00".into(),
            time_zone: "UTC".into(),
            per_agent: Rates::default(),
            overall: Rates::default(),
            agents: Vec::new(),
        }
    }
}
