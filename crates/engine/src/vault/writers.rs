//! The key holder's side of what write-only writers store: recomputing
//! their session keys, and knowing which packs open under which.
//!
//! An opened vault derives its private key once. A writer's secret is read
//! from its slot the first time one of its objects is met; a session's keys
//! are computed the first time its header is met (one X25519 operation per
//! backup of that writer) and kept; the packs its index files list are
//! remembered with their session's keys, so opening a blob costs a map
//! lookup more than for the key holder's own packs.
//!
//! Pack names are visible to anyone who can list the storage, so a writer
//! can list another's pack (or the key holder's) in its own index file
//! under its own session. Such a claim must cost nobody else anything: a
//! pack the key holder's index lists always opens under the vault's keys,
//! and a pack several writers claim is tried under each claim's keys until
//! one authenticates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::credential::secret::WriterSecret;
use crate::credential::session::{
    session_key, session_object_keys, vault_keypair, SessionHeader, VaultPrivateKey,
};
use crate::credential::slot::WriterSlot;
use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::index::PackRecord;
use crate::vault::Vault;

/// What an opened vault knows of its writers.
pub(crate) struct Writers {
    private: VaultPrivateKey,
    secrets: Mutex<HashMap<[u8; 8], WriterSecret>>,
    sessions: Mutex<HashMap<SessionHeader, Arc<MasterKeys>>>,
    /// The sessions that claim each writer's pack, in the order met.
    claims: RwLock<HashMap<ObjectId, Vec<Arc<MasterKeys>>>>,
    /// Packs the key holder's index files list.
    own: RwLock<std::collections::HashSet<ObjectId>>,
}

impl Writers {
    pub(crate) fn new(master: &MasterKeys) -> Self {
        Writers {
            private: vault_keypair(master).0,
            secrets: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            claims: RwLock::new(HashMap::new()),
            own: RwLock::new(std::collections::HashSet::new()),
        }
    }
}

impl Vault {
    /// The secret of the write-only credential in slot `slot`.
    pub(crate) fn writer_secret(&self, slot: [u8; 8]) -> Result<WriterSecret> {
        if let Some(s) = self
            .writers
            .secrets
            .lock()
            .ok()
            .and_then(|m| m.get(&slot).cloned())
        {
            return Ok(s);
        }
        let id = hex::encode(slot);
        let path = format!("keys/{id}");
        let bytes = match self.storage.get(&path) {
            Err(Error::Missing { .. }) => {
                return Err(Error::corrupt(
                    &path,
                    "an object names this write-only credential, whose slot is not in the vault (removed by hand, or the object is forged)",
                ))
            }
            other => other?,
        };
        let secret = WriterSlot::parse(&id, &bytes)?.unlock(&self.header, &self.keys)?;
        if let Ok(mut m) = self.writers.secrets.lock() {
            m.insert(slot, secret.clone());
        }
        Ok(secret)
    }

    /// The keys of the session `header` names.
    pub(crate) fn session_keys(&self, header: &SessionHeader) -> Result<Arc<MasterKeys>> {
        if let Some(k) = self
            .writers
            .sessions
            .lock()
            .ok()
            .and_then(|m| m.get(header).cloned())
        {
            return Ok(k);
        }
        let secret = self.writer_secret(header.slot())?;
        let key = session_key(
            header,
            &self.writers.private,
            &self.header.vault_id,
            &secret,
        )?;
        let keys = Arc::new(session_object_keys(&key, &secret));
        if let Ok(mut m) = self.writers.sessions.lock() {
            m.insert(*header, keys.clone());
        }
        Ok(keys)
    }

    /// Remembers under which keys the packs among `records` open.
    pub(crate) fn learn_packs(&self, records: &[PackRecord]) -> Result<()> {
        for r in records {
            match &r.session {
                None => {
                    if let Ok(mut own) = self.writers.own.write() {
                        own.insert(r.id);
                    }
                }
                Some(header) => {
                    let keys = self.session_keys(header)?;
                    if let Ok(mut m) = self.writers.claims.write() {
                        let claims = m.entry(r.id).or_default();
                        if !claims.iter().any(|k| Arc::ptr_eq(k, &keys)) {
                            claims.push(keys);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The keys to try for a pack's objects, in order: the vault's for a
    /// pack its key holder's index lists or no writer claims.
    pub(crate) fn pack_keys(&self, pack: &ObjectId) -> Vec<Arc<MasterKeys>> {
        let claims = self
            .writers
            .claims
            .read()
            .ok()
            .and_then(|m| m.get(pack).cloned())
            .unwrap_or_default();
        let own = self.writers.own.read().is_ok_and(|o| o.contains(pack));
        if claims.is_empty() || own {
            Vec::new()
        } else {
            claims
        }
    }
}
