//! The append-only store an agent's backups write through: the agent holds
//! no storage credentials, and asks the service for every object it reads
//! or adds. What it may touch is decided by the engine
//! (`coffer_engine::intake`), which opens everything it can with the
//! vault's key; here are the service's own rules on top: an agent uploads
//! only while a job the service gave it runs, and a point only for that
//! job's item (see `agent_hub`).
//!
//! Vaults are opened once and kept for a minute (`agent_hub::OpenVaults`),
//! so a backup's hundreds of uploads do not each pay for opening the key
//! slot and the journal.

use std::sync::Arc;

use coffer_engine::intake::{self, Addable, Readable};
use coffer_engine::storage::ObjectInfo;
use coffer_engine::{ObjectId, Vault};

use crate::agents::AgentIdentity;
use crate::error::{Error, Result};
use crate::state::State;

/// The largest object other than a pack that an agent may send.
pub const MAX_SMALL_OBJECT: usize = 256 << 20;
/// Larger than any pack the engine makes (4 MiB targets, chunks of at
/// most 4 MiB): a bound on what one upload may cost.
const MAX_PACK_UPLOAD: u64 = 64 << 20;

fn vault_of(state: &State, agent: &AgentIdentity) -> Result<Arc<Vault>> {
    state
        .agent_vaults
        .get(&agent.vault, || state.open_vault(&agent.vault))
}

/// Refuses an upload when the agent runs no job of the service's.
fn require_running_job(state: &State, agent: &AgentIdentity) -> Result<()> {
    state
        .agent_hub
        .running_job_of(&agent.name)
        .map(drop)
        .ok_or_else(|| {
            Error::Forbidden(format!(
                "agent {} has no job running: the service accepts an agent's uploads only while it runs a job the service gave it",
                agent.name
            ))
        })
}

/// Reads an object the agent may read.
pub fn read(state: &State, agent: &AgentIdentity, path: &str) -> Result<Vec<u8>> {
    match intake::readable(&agent.slot, path)? {
        Readable::Point(_) | Readable::OwnIndexFolder => Err(Error::Forbidden(format!(
            "{path}: an agent may ask only whether its own point exists"
        ))),
        _ => Ok(vault_of(state, agent)?.storage().get(path)?),
    }
}

/// The size of an object the agent may know of; its own points only.
pub fn size(state: &State, agent: &AgentIdentity, path: &str) -> Result<Option<u64>> {
    let vault = vault_of(state, agent)?;
    match intake::readable(&agent.slot, path)? {
        Readable::Point(id) if vault.own_point_exists(&agent.slot, &id)? => {
            Ok(vault.storage().size(path)?)
        }
        Readable::Point(_) => Ok(None),
        Readable::OwnIndexFolder => Ok(None),
        _ => Ok(vault.storage().size(path)?),
    }
}

/// Lists the agent's own index folder, the one listing it may make.
pub fn list(state: &State, agent: &AgentIdentity, prefix: &str) -> Result<Vec<ObjectInfo>> {
    match intake::readable(&agent.slot, prefix)? {
        Readable::OwnIndexFolder => Ok(vault_of(state, agent)?.storage().list(prefix)?),
        _ => Err(Error::Forbidden(format!(
            "{prefix}: an agent may list only its own index folder"
        ))),
    }
}

/// Takes a small object (index file, point, marker) the agent sends.
pub fn put_small(state: &State, agent: &AgentIdentity, path: &str, bytes: Vec<u8>) -> Result<()> {
    require_running_job(state, agent)?;
    let vault = vault_of(state, agent)?;
    let addable = intake::addable(&agent.slot, path)?;
    match addable {
        Addable::Pack(_) => {
            return Err(Error::invalid(
                "path",
                "packs are sent to the pack endpoint, as a stream",
            ))
        }
        Addable::IndexFile(id) => {
            content_named(path, &id, &bytes)?;
            vault.accept_index_file(&agent.slot, path, &bytes)?;
        }
        Addable::Point(id) => {
            content_named(path, &id, &bytes)?;
            let manifest = vault.accept_point(&agent.slot, path, &bytes)?;
            let stored = vault.storage().size(path)?.is_some();
            state
                .agent_hub
                .accept_point(&agent.name, id, &manifest, stored)?;
        }
        Addable::Marker => vault.accept_marker(&agent.slot, path, &bytes)?,
    }
    // A marker is rewritten by its owner; anything else is content-named,
    // so one that exists holds these very bytes.
    if addable == Addable::Marker || vault.storage().size(path)?.is_none() {
        vault.storage().put(path, bytes)?;
    }
    Ok(())
}

fn content_named(path: &str, id: &ObjectId, bytes: &[u8]) -> Result<()> {
    if ObjectId::of(bytes) != *id {
        return Err(Error::invalid(
            "body",
            format!("{path}: the object's bytes do not hash to its name; it was damaged in transit or forged"),
        ));
    }
    Ok(())
}

/// A pack arriving as a stream: checked as it comes, visible only once
/// whole and hashing to its name.
pub struct PackUpload {
    vault: Arc<Vault>,
    slot: String,
    path: String,
    id: ObjectId,
    writer: Option<coffer_engine::storage::ObjectWriter>,
    hasher: blake3::Hasher,
    start: Vec<u8>,
    started: bool,
    received: u64,
}

impl PackUpload {
    pub fn begin(state: &State, agent: &AgentIdentity, path: &str) -> Result<Self> {
        require_running_job(state, agent)?;
        let Addable::Pack(id) = intake::addable(&agent.slot, path)? else {
            return Err(Error::invalid(
                "path",
                format!("{path} is not a pack's name"),
            ));
        };
        let vault = vault_of(state, agent)?;
        let writer = match vault.storage().size(path)? {
            // Already there (a retry): the bytes are still checked, then dropped.
            Some(_) => None,
            None => Some(vault.storage().writer(path)?),
        };
        Ok(PackUpload {
            vault,
            slot: agent.slot.clone(),
            path: path.to_string(),
            id,
            writer,
            hasher: blake3::Hasher::new(),
            start: Vec::new(),
            started: false,
            received: 0,
        })
    }

    pub fn write(&mut self, piece: bytes::Bytes) -> Result<()> {
        self.received += piece.len() as u64;
        if self.received > MAX_PACK_UPLOAD {
            return Err(Error::invalid(
                "body",
                format!("{}: larger than any pack", self.path),
            ));
        }
        self.hasher.update(&piece);
        if !self.started {
            let need = Vault::PACK_START_LEN.saturating_sub(self.start.len());
            self.start
                .extend_from_slice(&piece[..need.min(piece.len())]);
            if self.start.len() >= Vault::PACK_START_LEN {
                self.vault
                    .accept_pack_start(&self.slot, &self.path, &self.start)?;
                self.started = true;
            }
        }
        match &mut self.writer {
            Some(w) => Ok(w.write(piece)?),
            None => Ok(()),
        }
    }

    pub fn finish(self) -> Result<()> {
        if !self.started {
            return Err(Error::invalid(
                "body",
                format!("{}: too short for a pack", self.path),
            ));
        }
        if ObjectId(*self.hasher.finalize().as_bytes()) != self.id {
            return Err(Error::invalid(
                "body",
                format!("{}: the pack's bytes do not hash to its name; it was damaged in transit or forged", self.path),
            ));
        }
        match self.writer {
            Some(w) => Ok(w.finish()?),
            None => Ok(()),
        }
    }
}
