//! The replica and tier locations of each vault that an administrator gave
//! the service, each with its own credentials.
//!
//! A vault's journal names its replicas and its local tier, and any holder
//! of the vault key can write a journal record. Opening what a record names
//! with the vault's own storage credentials would send them to a host of
//! the record writer's choosing, and a tier is a local path the service
//! then writes to. So the service opens only the locations listed here,
//! with the credentials given here; the others are left alone, and backups
//! and replication say so.

pub use coffer_api_types::location::VaultLocation;
use std::collections::BTreeMap;

use coffer_engine::location::Credentials;
use rusqlite::params;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::state::{to_credentials, State};

fn purpose(vault: &str, location: &str) -> String {
    format!("vault-location:{vault}:{location}")
}

impl State {
    /// Allows the vault's journal to use `location` (a replica or the
    /// local tier), opened with `credentials`.
    pub fn set_vault_location(
        &self,
        vault: &str,
        location: &str,
        credentials: &BTreeMap<String, String>,
    ) -> Result<VaultLocation> {
        self.vault_info(vault)?;
        Self::check_credential_names(credentials)?;
        coffer_engine::Storage::open_with(location, &to_credentials(credentials))?;
        let json = Zeroizing::new(
            serde_json::to_vec(credentials).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let sealed = self.secret.seal(&purpose(vault, location), &json);
        self.db.conn().execute(
            "INSERT INTO vault_locations (vault, location, sealed_credentials) VALUES (?1, ?2, ?3)
             ON CONFLICT (vault, location) DO UPDATE SET sealed_credentials = excluded.sealed_credentials",
            params![vault, location, sealed],
        )?;
        Ok(VaultLocation {
            location: location.to_string(),
            credential_names: credentials.keys().cloned().collect(),
        })
    }

    pub fn remove_vault_location(&self, vault: &str, location: &str) -> Result<()> {
        let removed = self.db.conn().execute(
            "DELETE FROM vault_locations WHERE vault = ?1 AND location = ?2",
            params![vault, location],
        )?;
        if removed == 0 {
            return Err(Error::NotFound(format!(
                "location {location} of vault {vault}"
            )));
        }
        Ok(())
    }

    pub fn vault_locations(&self, vault: &str) -> Result<Vec<VaultLocation>> {
        Ok(self
            .unsealed_locations(vault)?
            .into_iter()
            .map(|(location, creds)| VaultLocation {
                location,
                credential_names: creds.keys().cloned().collect(),
            })
            .collect())
    }

    /// The locations the vault may open from its journal, with their
    /// credentials, for `Vault::open_with`.
    pub(crate) fn journal_locations(&self, vault: &str) -> Result<BTreeMap<String, Credentials>> {
        Ok(self
            .unsealed_locations(vault)?
            .into_iter()
            .map(|(location, creds)| (location, to_credentials(&creds)))
            .collect())
    }

    fn unsealed_locations(&self, vault: &str) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        let rows = self
            .db
            .conn()
            .prepare(
                "SELECT location, sealed_credentials FROM vault_locations WHERE vault = ?1 ORDER BY location",
            )?
            .query_map([vault], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(location, sealed)| {
                let json = Zeroizing::new(self.secret.open(&purpose(vault, &location), &sealed)?);
                let creds = serde_json::from_slice(&json).map_err(|e| {
                    Error::Internal(format!("stored credentials of {location}: {e}"))
                })?;
                Ok((location, creds))
            })
            .collect()
    }
}
