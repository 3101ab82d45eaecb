//! Registered agents: the hosts whose items the service backs up through
//! them, and the one-time tokens they register with.
//!
//! A registration token is a random secret stored as its BLAKE3 hash, bound
//! to a vault, used once (the row is marked in the same statement that
//! checks it, so two hosts racing with one token cannot both win) and
//! expiring. Registering creates the agent's identity (another random
//! secret, kept hashed) and a write-only credential of the vault in the
//! agent's name; the credential's text goes to the host and nowhere else.
//!
//! An agent authenticates every call with its secret. A disabled agent is
//! refused with a message that says so; a removed one is unknown, and its
//! credential is revoked in the vault, so even a copy of its state
//! directory writes nothing. Re-keying hands the agent a new secret at its
//! next contact; the old one works until the new one is first used, so a
//! lost answer does not lock the agent out.

use rusqlite::{params, OptionalExtension};

use coffer_api_types::agent::{
    Agent, AgentState, CreatedRegistrationToken, HostFacts, RegisterRequest, Registered,
    RegistrationText, RegistrationToken, OLDEST_AGENT_VERSION,
};

use crate::auth::random_secret;
use crate::db::now;
use crate::error::{Error, Result};
use crate::state::{validate_name, State};

/// A token lives a day unless the administrator says otherwise.
const DEFAULT_TOKEN_SECS: u64 = 24 * 3600;
const MAX_TOKEN_SECS: u64 = 30 * 24 * 3600;
/// An agent's secret starts with this.
const AGENT_SECRET_PREFIX: &str = "cfa_";

fn hash(secret: &str) -> Vec<u8> {
    blake3::hash(secret.as_bytes()).as_bytes().to_vec()
}

/// A registration secret is 32 random bytes in hex (the token's text
/// separates its parts with colons, which base64 never has but URLs do).
fn registration_secret() -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    hex::encode(raw)
}

/// The agent a call authenticated as.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub name: String,
    pub vault: String,
    /// Its write-only credential's slot in the vault.
    pub slot: String,
    /// Whether this call used the secret handed out by a re-key.
    pub used_next_secret: bool,
}

/// Creates a registration token for `vault`; `url` and `fingerprint` are
/// how the host will reach and recognise this service.
pub fn create_token(
    state: &State,
    vault: &str,
    expires_in_secs: Option<u64>,
    created_by: &str,
    url: &str,
    fingerprint: Option<String>,
) -> Result<CreatedRegistrationToken> {
    let info = state
        .vault_info(vault)
        .map_err(|_| Error::invalid("vault", format!("no vault named {vault}")))?;
    let secs = expires_in_secs.unwrap_or(DEFAULT_TOKEN_SECS);
    if secs == 0 || secs > MAX_TOKEN_SECS {
        return Err(Error::invalid(
            "expires_in_secs",
            format!("between 1 and {MAX_TOKEN_SECS} seconds (30 days)"),
        ));
    }
    let secret = registration_secret();
    let created = now();
    let expires = created + secs as i64;
    let conn = state.db.conn();
    conn.execute(
        "INSERT INTO agent_tokens (hash, vault, created, expires, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash(&secret), info.name, created, expires, created_by],
    )?;
    let id = conn.last_insert_rowid();
    Ok(CreatedRegistrationToken {
        token: RegistrationToken {
            id,
            vault: info.name,
            created,
            expires,
            created_by: created_by.to_string(),
            used_by: None,
        },
        text: RegistrationText {
            secret,
            fingerprint,
            url: url.to_string(),
        }
        .render(),
    })
}

pub fn list_tokens(state: &State) -> Result<Vec<RegistrationToken>> {
    let conn = state.db.conn();
    let mut stmt = conn.prepare(
        "SELECT id, vault, created, expires, created_by, used_by FROM agent_tokens ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(RegistrationToken {
                id: r.get(0)?,
                vault: r.get(1)?,
                created: r.get(2)?,
                expires: r.get(3)?,
                created_by: r.get(4)?,
                used_by: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn delete_token(state: &State, id: i64) -> Result<()> {
    let n = state
        .db
        .conn()
        .execute("DELETE FROM agent_tokens WHERE id = ?1", [id])?;
    if n == 0 {
        return Err(Error::NotFound(format!("registration token {id}")));
    }
    Ok(())
}

/// Whether `version` (`major.minor.patch`) is at least `OLDEST_AGENT_VERSION`.
fn supported_version(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    matches!((parse(version), parse(OLDEST_AGENT_VERSION)), (Some(v), Some(oldest)) if v >= oldest)
}

/// The longest host name, OS description or version a host may report.
const MAX_FACT: usize = 256;

/// Checks what a host says of itself: bounded, and a supported version.
pub fn check_version(host: &HostFacts) -> Result<()> {
    if [&host.hostname, &host.os, &host.version]
        .iter()
        .any(|f| f.len() > MAX_FACT || f.chars().any(char::is_control))
    {
        return Err(Error::invalid(
            "host",
            format!("host facts are at most {MAX_FACT} characters, without control characters"),
        ));
    }
    if supported_version(&host.version) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "this agent is Coffer {:?}, older than the oldest this service accepts ({OLDEST_AGENT_VERSION}): upgrade the agent to the service's version ({})",
        host.version,
        env!("CARGO_PKG_VERSION")
    )))
}

/// Registers a host with a token: uses the token up, adds the agent's
/// write-only credential to the vault and returns the agent's identity.
pub fn register(state: &State, req: &RegisterRequest, address: &str) -> Result<Registered> {
    check_version(&req.host)?;
    let name = req
        .name
        .clone()
        .unwrap_or_else(|| req.host.hostname.clone());
    validate_name("name", &name)?;
    let taken: bool = state
        .db
        .conn()
        .query_row("SELECT 1 FROM agents WHERE name = ?1", [&name], |_| {
            Ok(true)
        })
        .optional()?
        .unwrap_or(false);
    if taken {
        return Err(Error::Conflict(format!(
            "an agent called {name} is registered already: remove it first (`coffer agent remove {name}`), or register this host under another name (--name)"
        )));
    }
    // Claimed before anything is created: a second use finds it taken.
    let vault: Option<String> = state
        .db
        .conn()
        .query_row(
            "UPDATE agent_tokens SET used_by = ?1 WHERE hash = ?2 AND used_by IS NULL AND expires > ?3 RETURNING vault",
            params![name, hash(&req.token), now()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(vault) = vault else {
        return Err(Error::Unauthenticated(
            "this registration token is not valid: it was used already, has expired, or was never issued; ask an administrator for a new one (`coffer agent token create`)".into(),
        ));
    };
    let made = create_agent(state, &name, &vault, &req.host, address);
    if made.is_err() {
        // Nothing was registered: the host may try again with the token.
        state.db.conn().execute(
            "UPDATE agent_tokens SET used_by = NULL WHERE hash = ?1",
            [hash(&req.token)],
        )?;
    }
    made
}

/// The agent's credential in the vault, then its row.
fn create_agent(
    state: &State,
    name: &str,
    vault: &str,
    host: &HostFacts,
    address: &str,
) -> Result<Registered> {
    let opened = state.open_vault(vault)?;
    // Dated: a host registered again after a removal gets a credential
    // of its own, beside the revoked one.
    let (slot, credential) = opened.add_writer(&format!("agent-{name}-{}", now()))?;
    let secret = random_secret(AGENT_SECRET_PREFIX);
    let inserted = state.db.conn().execute(
        "INSERT INTO agents (name, vault, hash, slot, host, address, registered, last_contact) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![name, vault, hash(&secret), slot.id, host_json(host), address, now()],
    );
    if let Err(e) = inserted {
        // Another registration took the name meanwhile: this credential
        // is nobody's.
        let _ = opened.revoke_writer(&slot.id);
        return Err(e.into());
    }
    tracing::info!(agent = %name, %vault, %address, "agent registered");
    Ok(Registered {
        name: name.to_string(),
        vault: vault.to_string(),
        secret,
        credential: credential.to_text().to_string(),
    })
}

fn host_json(host: &HostFacts) -> String {
    serde_json::json!({"hostname": host.hostname, "os": host.os, "version": host.version})
        .to_string()
}

/// The agent whose secret this is; a disabled agent is refused.
pub fn authenticate(state: &State, secret: &str) -> Result<AgentIdentity> {
    let refused = || {
        Error::Unauthenticated(
            "this agent is not registered with the service (it was removed, or its identity is wrong): register it again with a new token (`coffer agent register`)".into(),
        )
    };
    if !secret.starts_with(AGENT_SECRET_PREFIX) {
        return Err(refused());
    }
    let h = hash(secret);
    let row: Option<(String, String, String, bool, bool)> = state
        .db
        .conn()
        .query_row(
            "SELECT name, vault, slot, enabled, next_hash IS NOT NULL AND next_hash = ?1 FROM agents WHERE hash = ?1 OR next_hash = ?1",
            [&h],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((name, vault, slot, enabled, used_next_secret)) = row else {
        return Err(refused());
    };
    if !enabled {
        return Err(Error::Forbidden(format!(
            "the agent {name} is disabled by an administrator: nothing it sends is accepted until it is enabled again (`coffer agent enable {name}`)"
        )));
    }
    if used_next_secret {
        // The agent holds the new secret: the old one stops working now.
        state.db.conn().execute(
            "UPDATE agents SET hash = next_hash, next_hash = NULL WHERE name = ?1",
            [&name],
        )?;
    }
    Ok(AgentIdentity {
        name,
        vault,
        slot,
        used_next_secret,
    })
}

/// Records a contact: what the host says of itself and where it called from.
pub fn record_contact(state: &State, agent: &str, host: &HostFacts, address: &str) -> Result<()> {
    check_version(host)?;
    state.db.conn().execute(
        "UPDATE agents SET host = ?1, address = ?2, last_contact = ?3 WHERE name = ?4",
        params![host_json(host), address, now(), agent],
    )?;
    Ok(())
}

/// Marks only the time of a contact (uploads and progress reports).
pub fn touch(state: &State, agent: &str) -> Result<()> {
    state.db.conn().execute(
        "UPDATE agents SET last_contact = ?1 WHERE name = ?2",
        params![now(), agent],
    )?;
    Ok(())
}

/// Every agent, or the one named.
pub fn list(state: &State, name: Option<&str>, unreachable_after: i64) -> Result<Vec<Agent>> {
    let rows = {
        let conn = state.db.conn();
        let mut stmt = conn.prepare(
            "SELECT name, vault, enabled, host, address, registered, last_contact, slot FROM agents
             WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        )?;
        let rows = stmt
            .query_map([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    let now = now();
    let all_items = state.items(None)?;
    let mut out = Vec::new();
    for (name, vault, enabled, host, address, registered, last_contact, slot) in rows {
        let items: Vec<String> = all_items
            .iter()
            .filter(|i| i.agent.as_deref() == Some(name.as_str()))
            .map(|i| i.name.clone())
            .collect();
        let last_success = last_success(state, &items)?;
        out.push(Agent {
            unreachable: !state.agent_hub.in_contact(&name)
                && last_contact.is_none_or(|t| now - t > unreachable_after),
            host: serde_json::from_str(&host).unwrap_or_default(),
            state: if enabled {
                AgentState::Enabled
            } else {
                AgentState::Disabled
            },
            name,
            vault,
            address,
            registered,
            last_contact,
            slot,
            items,
            last_success,
        });
    }
    Ok(out)
}

fn last_success(state: &State, items: &[String]) -> Result<Option<i64>> {
    let conn = state.db.conn();
    let mut best = None;
    for item in items {
        let t: Option<i64> = conn.query_row(
            "SELECT MAX(finished) FROM jobs WHERE item = ?1 AND kind = 'backup' AND state IN ('Succeeded', 'PartialSucceeded')",
            [item],
            |r| r.get(0),
        )?;
        best = best.max(t);
    }
    Ok(best)
}

pub fn get(state: &State, name: &str, unreachable_after: i64) -> Result<Agent> {
    list(state, Some(name), unreachable_after)?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("agent {name}")))
}

pub fn set_enabled(state: &State, name: &str, enabled: bool) -> Result<()> {
    let n = state.db.conn().execute(
        "UPDATE agents SET enabled = ?1 WHERE name = ?2",
        params![enabled, name],
    )?;
    if n == 0 {
        return Err(Error::NotFound(format!("agent {name}")));
    }
    Ok(())
}

/// Asks for the agent to get a new secret at its next contact.
pub fn rekey(state: &State, name: &str) -> Result<()> {
    // A pending re-key is a `next_hash` no secret hashes to.
    let n = state.db.conn().execute(
        "UPDATE agents SET next_hash = X'00' WHERE name = ?1",
        [name],
    )?;
    if n == 0 {
        return Err(Error::NotFound(format!("agent {name}")));
    }
    Ok(())
}

/// A new secret for an agent that has a re-key pending and called with
/// its old one (again, when the answer that carried the last new secret
/// was lost); `None` when none is pending.
pub fn issue_next_secret(state: &State, agent: &AgentIdentity) -> Result<Option<String>> {
    if agent.used_next_secret {
        return Ok(None);
    }
    let secret = random_secret(AGENT_SECRET_PREFIX);
    let n = state.db.conn().execute(
        "UPDATE agents SET next_hash = ?1 WHERE name = ?2 AND next_hash IS NOT NULL",
        params![hash(&secret), agent.name],
    )?;
    Ok((n > 0).then_some(secret))
}

/// Removes an agent: its credential is revoked in the vault first, so a
/// removal that fails half-way leaves an agent that can write nothing.
pub fn remove(state: &State, name: &str) -> Result<()> {
    let row: Option<(String, String)> = state
        .db
        .conn()
        .query_row(
            "SELECT vault, slot FROM agents WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((vault, slot)) = row else {
        return Err(Error::NotFound(format!("agent {name}")));
    };
    let items: Vec<String> = state
        .items(None)?
        .into_iter()
        .filter(|i| i.agent.as_deref() == Some(name))
        .map(|i| i.name)
        .collect();
    if !items.is_empty() {
        return Err(Error::Conflict(format!(
            "items live on agent {name} ({}): remove them or move them first",
            items.join(", ")
        )));
    }
    match state.open_vault(&vault) {
        Ok(v) => {
            v.revoke_writer(&slot)?;
        }
        Err(e) => {
            return Err(Error::Conflict(format!(
                "cannot revoke agent {name}'s credential in vault {vault} ({e}): fix the vault's access first, or disable the agent meanwhile"
            )))
        }
    }
    state
        .db
        .conn()
        .execute("DELETE FROM agents WHERE name = ?1", [name])?;
    // A later agent of the same name starts from the shared rates.
    state.bandwidth.forget(&state.db, name)
}

/// An item may live on `agent` only when that agent writes to `vault`.
pub fn check_item_agent(state: &State, agent: &str, vault: &str) -> Result<()> {
    let agent_vault: Option<String> = state
        .db
        .conn()
        .query_row("SELECT vault FROM agents WHERE name = ?1", [agent], |r| {
            r.get(0)
        })
        .optional()?;
    match agent_vault {
        None => Err(Error::invalid(
            "agent",
            format!("no agent named {agent} is registered (`coffer agent list`)"),
        )),
        Some(v) if v != vault => Err(Error::invalid(
            "agent",
            format!("agent {agent} writes to vault {v}, not {vault}: put the item in {v}, or register the host for {vault} too"),
        )),
        Some(_) => Ok(()),
    }
}

/// The agent an item lives on, if any.
pub fn agent_of_item(state: &State, item: &str) -> Result<Option<String>> {
    Ok(state
        .db
        .conn()
        .query_row("SELECT agent FROM items WHERE name = ?1", [item], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_older_than_the_oldest_supported_are_refused() {
        assert!(supported_version(env!("CARGO_PKG_VERSION")));
        assert!(supported_version("9.0.0"));
        assert!(!supported_version("0.0.9"));
        assert!(!supported_version("garbage"));
        assert!(!supported_version(""));
    }
}
