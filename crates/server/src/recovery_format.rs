//! The configuration point's format (`service.json`, FORMAT.md §8): what
//! a set backup stores of the service and a recovery reads back. Types
//! only; `recovery` fills and reads them, `recovery_fleet` the agents'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sets::InfraSet;
use crate::state::{Item, Maintenance};
use coffer_api_types::set::SetRecord;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VaultExport {
    pub name: String,
    pub location: String,
    pub vault_id: String,
    pub key_fingerprint: String,
    pub credential_names: Vec<String>,
    pub created: i64,
    pub maintenance: Maintenance,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserExport {
    pub name: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleExport {
    pub user: String,
    pub vault: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenExport {
    pub user: String,
    pub name: String,
    /// Hex of the token's hash; the token itself was never stored.
    pub hash: String,
    pub created: i64,
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetExport {
    pub name: String,
    pub destination: String,
    pub min_severity: String,
    pub events: String,
    pub enabled: bool,
    pub created: i64,
    /// It had a secret (a signing key, a mail password), which is not in
    /// the export: it must be given again.
    pub had_secret: bool,
}

/// The service's configuration, as a set backup stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceExport {
    pub format: u32,
    pub software: String,
    pub exported_at: i64,
    pub set_point: Option<SetRecord>,
    pub vaults: Vec<VaultExport>,
    pub items: Vec<Item>,
    pub sets: Vec<InfraSet>,
    pub users: Vec<UserExport>,
    pub roles: Vec<RoleExport>,
    /// Format 1 only; from format 2 they are in `sealed_secrets`.
    pub tokens: Vec<TokenExport>,
    pub notification_targets: Vec<TargetExport>,
    pub scheduler_enabled: bool,
    /// Format 2: hex of the vault-sealed JSON of the users' password hashes
    /// and their tokens (from format 3 also the agents' secret hashes and
    /// the service's own TLS identity).
    #[serde(default)]
    pub sealed_secrets: Option<String>,
    /// Format 3: the agents that write to this vault (their secrets' hashes
    /// are sealed), so they reconnect after a recovery as they are.
    #[serde(default)]
    pub agents: Vec<AgentExport>,
    /// Format 3: the bandwidth limits on agents' uploads (absent before).
    #[serde(default)]
    pub agent_bandwidth: Option<coffer_api_types::agent::BandwidthLimits>,
    /// Filled from `sealed_secrets` when read back; never stored in clear.
    #[serde(default, skip_serializing)]
    pub tls: Option<(String, String)>,
}

/// What format 2 seals: every secret-derived value of the export.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SealedSecrets {
    pub(crate) passwords: BTreeMap<String, String>,
    pub(crate) tokens: Vec<TokenExport>,
    /// Agent name to the hex of its secret's hash.
    #[serde(default)]
    pub(crate) agents: BTreeMap<String, String>,
    /// The certificate and key the service made for itself (PEM), which
    /// the agents pin: a recovered service needs them to be recognised.
    #[serde(default)]
    pub(crate) tls: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentExport {
    pub name: String,
    pub vault: String,
    pub slot: String,
    pub enabled: bool,
    pub host: coffer_api_types::agent::HostFacts,
    pub registered: i64,
    /// Hex of the agent secret's hash; filled from `sealed_secrets`.
    #[serde(default, skip_serializing)]
    pub hash: Option<String>,
}
