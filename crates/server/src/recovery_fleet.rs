//! The fleet in a cloud recovery (`recovery`): the agents of a set's vault
//! go into its configuration point, their secrets' hashes and the
//! service's own certificate sealed under the vault's key, and come back
//! from it, so that the agents reconnect as they are to a recovered
//! service that presents the certificate they pin.

use std::collections::BTreeMap;

use rusqlite::params;

use crate::db::now;
use crate::error::{Error, Result};
use crate::recovery_format::AgentExport;
use crate::state::State;

/// The agents of `vault_name`, and their secrets' hashes (to be sealed).
pub(crate) fn export_agents(
    service: &State,
    vault_name: &str,
) -> Result<(Vec<AgentExport>, BTreeMap<String, String>)> {
    let conn = service.db.conn();
    let rows = conn
        .prepare(
            "SELECT name, vault, slot, enabled, host, registered, hash FROM agents WHERE vault = ?1 ORDER BY name",
        )?
        .query_map([vault_name], |r| {
            Ok((
                AgentExport {
                    name: r.get(0)?,
                    vault: r.get(1)?,
                    slot: r.get(2)?,
                    enabled: r.get(3)?,
                    host: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                    registered: r.get(5)?,
                    hash: None,
                },
                hex::encode(r.get::<_, Vec<u8>>(6)?),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let hashes = rows
        .iter()
        .map(|(a, h)| (a.name.clone(), h.clone()))
        .collect();
    Ok((rows.into_iter().map(|(a, _)| a).collect(), hashes))
}

/// The certificate and key the service made for itself, when it did.
pub(crate) fn own_tls_identity(service: &State) -> Option<(String, String)> {
    let dir = service.data_dir().join("tls");
    let cert = service.config.tls_cert.as_ref()?;
    if !cert.starts_with(&dir) {
        // An operator's certificate: the operator keeps it.
        return None;
    }
    Some((
        std::fs::read_to_string(dir.join("cert.pem")).ok()?,
        std::fs::read_to_string(dir.join("key.pem")).ok()?,
    ))
}

/// The agents of the recovered vault, with their secrets' hashes, so they
/// reconnect with the identities they hold; the service's own certificate
/// comes back with them, since they recognise the service by it.
pub(crate) fn insert_agents(
    tx: &rusqlite::Transaction<'_>,
    service: &State,
    agents: &[AgentExport],
    tls: Option<&(String, String)>,
    vaults: &[&str],
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut any = false;
    for a in agents.iter().filter(|a| vaults.contains(&a.vault.as_str())) {
        let Some(hash) = a.hash.as_deref().and_then(|h| hex::decode(h).ok()) else {
            notes.push(format!(
                "agent {} has no secret in the configuration: register it again",
                a.name
            ));
            continue;
        };
        let host = serde_json::to_string(&a.host).map_err(|e| Error::Internal(e.to_string()))?;
        let inserted = tx.execute(
            // Counted in contact from the recovery on: they had no way to
            // reach a service that was not there.
            "INSERT INTO agents (name, vault, hash, slot, enabled, host, registered, last_contact) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (name) DO NOTHING",
            params![a.name, a.vault, hash, a.slot, a.enabled, host, a.registered, now()],
        )?;
        if inserted == 0 {
            notes.push(format!(
                "an agent called {} exists in this service already: the recovered one was left out",
                a.name
            ));
        }
        any = true;
    }
    if let (true, Some((cert, key))) = (any, tls) {
        let dir = service.data_dir().join("tls");
        if dir.join("cert.pem").exists() {
            notes.push(format!("this data directory has a certificate of its own ({}): the agents recognise the old service's, so keep the recovered one's fingerprint in mind or register them again", dir.display()));
        } else {
            crate::tls::restore_identity(&dir, cert, key)?;
            notes.push(format!(
                "the agents recognise this service by its certificate, restored to {}: serve with tls_self_signed = true at the address they know",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The bandwidth limits of a recovered service's export, written in the
/// recovery's transaction; the caller applies them once it commits.
/// Limits that no longer pass the checks are left out, with a note.
pub(crate) fn insert_bandwidth(
    tx: &rusqlite::Transaction<'_>,
    export: &crate::recovery_format::ServiceExport,
    notes: &mut Vec<String>,
) -> Result<Option<coffer_api_types::agent::BandwidthLimits>> {
    let Some(limits) = &export.agent_bandwidth else {
        return Ok(None);
    };
    if let Err(e) = crate::bandwidth::Limits::check(limits.clone()) {
        notes.push(format!(
            "the agents' bandwidth limits were not recovered ({e}): set them again with `coffer agent bandwidth`"
        ));
        return Ok(None);
    }
    crate::bandwidth::store_in(tx, limits)?;
    Ok(Some(limits.clone()))
}
