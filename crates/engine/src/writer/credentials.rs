//! The key holder's side of write-only credentials: adding them, listing
//! them, and the secrets of their slots for opening what they wrote.

use crate::credential::session::vault_keypair;
use crate::credential::slot::{WriterSlot, REVOKED_MAGIC, REVOKED_SUFFIX, WRITER_FORMAT};
use crate::credential::{WriterCredential, WriterSecret};
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::journal::Event;
use crate::storage::Storage;
use crate::vault::{now_secs, Vault};

/// A credential's slot as `key list` shows it.
#[derive(Debug, Clone)]
pub struct WriterEntry {
    pub slot: WriterSlot,
    /// A revocation notice stands beside the slot.
    pub revoked: bool,
}

impl Vault {
    /// Every write-only credential's slot, damaged ones as errors.
    pub fn writer_slots(storage: &Storage) -> Result<Vec<Result<WriterEntry>>> {
        let objects = storage.list("keys/")?;
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o.path.trim_start_matches("keys/"))
            .collect();
        let mut out = Vec::new();
        for id in names.iter().filter(|n| !n.ends_with(REVOKED_SUFFIX)) {
            let bytes = match storage.get(&format!("keys/{id}")) {
                Ok(b) => b,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            if !WriterSlot::is_writer_slot(&bytes) {
                continue;
            }
            let revoked = names.contains(&format!("{id}{REVOKED_SUFFIX}").as_str());
            out.push(WriterSlot::parse(id, &bytes).map(|slot| WriterEntry { slot, revoked }));
        }
        Ok(out)
    }

    /// Revokes the write-only credential in slot `slot_id`: journals the
    /// revocation with the points it has written so far, then puts the
    /// notice beside its slot that the writer checks before every backup.
    /// The slot stays, so that those points stay readable. Returns the
    /// slot and how many points it had written.
    pub fn revoke_writer(&self, slot_id: &str) -> Result<(WriterSlot, usize)> {
        self.require_journal()?;
        let entry = Self::writer_slots(&self.storage)?
            .into_iter()
            .flatten()
            .find(|e| e.slot.id == slot_id)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no write-only credential has the slot {slot_id:?}: `coffer key list` shows them"
                ))
            })?;
        if entry.revoked || self.state()?.revoked.contains_key(slot_id) {
            return Err(Error::Invalid(format!(
                "the write-only credential {} is revoked already",
                entry.slot.name
            )));
        }
        let mut slot = [0u8; 8];
        hex::decode_to_slice(slot_id, &mut slot)
            .map_err(|_| Error::Invalid(format!("{slot_id:?} is not a slot id")))?;
        let points: Vec<ObjectId> = self
            .points()?
            .into_iter()
            .filter(|p| p.writer.as_deref() == Some(slot_id))
            .map(|p| p.id)
            .collect();
        let count = points.len();
        self.record(Event::WriterRevoked { slot, points })?;
        let mut notice = REVOKED_MAGIC.to_vec();
        notice.extend_from_slice(&now_secs().to_le_bytes());
        self.storage
            .put(&format!("keys/{slot_id}{REVOKED_SUFFIX}"), notice)?;
        Ok((entry.slot, count))
    }

    /// Adds a write-only credential called `name` and returns it: the only
    /// time its text exists outside the host it is given to.
    pub fn add_writer(&self, name: &str) -> Result<(WriterSlot, WriterCredential)> {
        if self.header.version < WRITER_FORMAT {
            return Err(Error::NeedsUpgrade {
                version: self.header.version,
                needed: WRITER_FORMAT,
                feature: "write-only credentials",
            });
        }
        let taken = Self::writer_slots(&self.storage)?
            .into_iter()
            .flatten()
            .any(|e| e.slot.name == name);
        if taken {
            return Err(Error::Invalid(format!(
                "a write-only credential is already called {name:?}: choose another name, or revoke that one first (`coffer key list` shows them)"
            )));
        }
        let secret = WriterSecret::random();
        let slot = WriterSlot::create(&self.header, &self.keys, name, &secret, now_secs())?;
        let path = format!("keys/{}", slot.id);
        self.storage.put(&path, slot.to_bytes())?;
        // Proven to open before the credential is handed out.
        let stored = WriterSlot::parse(&slot.id, &self.storage.get(&path)?)?;
        if stored.unlock(&self.header, &self.keys)?.as_bytes() != secret.as_bytes() {
            return Err(Error::corrupt(
                path,
                "the new slot did not verify after writing",
            ));
        }
        let mut slot_bytes = [0u8; 8];
        hex::decode_to_slice(&slot.id, &mut slot_bytes)
            .map_err(|_| Error::corrupt(&path, "slot id is not hex"))?;
        let credential = WriterCredential {
            vault_id: self.header.vault_id,
            slot: slot_bytes,
            secret,
            vault_public: vault_keypair(&self.keys).1,
        };
        Ok((slot, credential))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::GENERATED_KEY_KDF;
    use crate::VaultKey;

    #[test]
    fn a_credential_is_added_listed_and_kept_apart_from_the_vault_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        let storage = Storage::open(dir.to_str().unwrap()).unwrap();
        let key = VaultKey::generate().0;
        Vault::init(&storage, &key, GENERATED_KEY_KDF).unwrap();
        let vault = Vault::open(storage.clone(), &key, None).unwrap();
        let (slot, credential) = vault.add_writer("web-1").unwrap();
        assert_eq!(credential.vault_id, vault.header().vault_id);
        assert_eq!(credential.slot_id(), slot.id);
        let listed = Vault::writer_slots(&storage).unwrap();
        assert_eq!(listed.len(), 1);
        let entry = listed[0].as_ref().unwrap();
        assert_eq!(entry.slot.name, "web-1");
        assert_eq!(entry.slot.fingerprint, credential.secret.fingerprint());
        assert!(!entry.revoked);
        // Vault key slots are what they were; the vault still opens.
        assert_eq!(Vault::read_slots(&storage).unwrap().len(), 1);
        assert!(Vault::open(storage.clone(), &key, None).is_ok());
        // A second credential by the same name is refused.
        let e = vault.add_writer("web-1").err().unwrap().to_string();
        assert!(e.contains("already called"), "{e}");
        // A credential is not a vault key, and is told apart from one.
        let e = VaultKey::from_text(&credential.to_text()).err().unwrap();
        assert!(matches!(e, Error::WriteOnly { .. }), "{e}");
        assert_eq!(e.code(), coffer_api_types::ErrorCode::WriteOnly);
    }

    #[test]
    fn an_older_vault_asks_for_an_upgrade_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        let storage = Storage::open(dir.to_str().unwrap()).unwrap();
        let key = VaultKey::generate().0;
        Vault::init_format(&storage, &key, GENERATED_KEY_KDF, 4).unwrap();
        let mut vault = Vault::open(storage.clone(), &key, None).unwrap();
        let e = vault.add_writer("web-1").err().unwrap();
        assert!(e.to_string().contains("vault upgrade"), "{e}");
        assert_eq!(vault.upgrade().unwrap(), 4);
        let vault = Vault::open(storage, &key, None).unwrap();
        assert!(vault.add_writer("web-1").is_ok());
    }
}
