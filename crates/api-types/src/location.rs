//! Storage locations through the service: a vault's replica and tier
//! locations, and the test of a location before a vault is made there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct LocationToTest {
    /// A directory path or a storage URL.
    pub location: String,
    /// Storage secrets by name. Write-only; not kept.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewLocation {
    /// The location exactly as the vault's journal names it.
    pub location: String,
    /// Its own storage secrets by name. Write-only.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct LocationName {
    pub location: String,
}

/// A location as listed: never its credentials, only their names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VaultLocation {
    pub location: String,
    pub credential_names: Vec<String>,
}

/// One step of the location test.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProbeStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub millis: u64,
}

/// The location test's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LocationTest {
    pub ok: bool,
    pub location: String,
    /// The kind of storage (`fs`, `s3`, `azblob` …).
    pub kind: String,
    pub steps: Vec<ProbeStep>,
    /// Why it failed, when it did: a classified cause and what to do.
    pub failure: Option<String>,
    pub remedy: Option<String>,
    pub free_bytes: Option<u64>,
    /// A Coffer vault is already there: attach it with its key instead of
    /// creating one.
    pub holds_vault: bool,
}
