//! The slot of a write-only credential (`keys/<slot id>`, FORMAT.md §3a).
//!
//! A vault key slot seals the master secrets for a key holder; a writer
//! slot seals the other way round: the credential's secret `W`, under the
//! vault's encryption secret, so that every key holder can open what the
//! writer sealed and check that it came from this credential. Its name and
//! fingerprint are in the clear, so `key list` can show them, and bound to
//! the seal, so they cannot be changed unnoticed. Revoking a credential
//! keeps its slot (its points must stay readable) and adds a revocation
//! notice beside it that the writer checks before every backup.

use rand::RngCore;
use zeroize::Zeroizing;

use crate::credential::secret::WriterSecret;
use crate::crypto::{open_with, seal_with, MasterKeys, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::keys::Header;

pub const WRITER_SLOT_MAGIC: &[u8; 8] = b"COFFERKW";
const WRITER_SLOT_VERSION: u16 = 1;
/// The first format whose vaults hold writer slots.
pub const WRITER_FORMAT: u16 = 5;
/// The longest name a credential may have, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Magic, layout version, reserved, creation time, fingerprint, name length.
const FIXED_LEN: usize = 8 + 2 + 2 + 8 + 8 + 1;
const SEALED_LEN: usize = 32 + SEAL_OVERHEAD;
/// What a slot's revocation notice is called beside it.
pub const REVOKED_SUFFIX: &str = ".revoked";
/// A revocation notice: this magic, then the time of revocation (`i64`
/// Unix seconds). It only tells the writer to stop; the journal's record
/// is what the key holder goes by.
pub const REVOKED_MAGIC: &[u8; 8] = b"COFFERKR";

/// One writer slot as stored.
#[derive(Debug, Clone)]
pub struct WriterSlot {
    pub id: String,
    pub name: String,
    pub fingerprint: [u8; 8],
    pub created: i64,
    body: Vec<u8>,
    sealed: Vec<u8>,
}

/// Why a name cannot name a credential, if it cannot.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{name:?} cannot name a write-only credential: use 1 to {MAX_NAME_LEN} letters, digits and - _ . @ (for example the host's name)"
        )))
    }
}

fn aad(header: &Header, id: &str, body: &[u8]) -> Vec<u8> {
    [header.bytes.as_slice(), id.as_bytes(), body].concat()
}

impl WriterSlot {
    /// Seals `secret` for a new credential called `name`.
    pub fn create(
        header: &Header,
        master: &MasterKeys,
        name: &str,
        secret: &WriterSecret,
        created: i64,
    ) -> Result<Self> {
        check_name(name)?;
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        let fingerprint = secret.fingerprint();
        let mut body = Vec::with_capacity(FIXED_LEN + name.len());
        body.extend_from_slice(WRITER_SLOT_MAGIC);
        body.extend_from_slice(&WRITER_SLOT_VERSION.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&created.to_le_bytes());
        body.extend_from_slice(&fingerprint);
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        let sealed = seal_with(
            &master.encryption,
            &aad(header, &id, &body),
            secret.as_bytes(),
        );
        Ok(WriterSlot {
            id,
            name: name.to_string(),
            fingerprint,
            created,
            body,
            sealed,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = [self.body.as_slice(), self.sealed.as_slice()].concat();
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub fn is_writer_slot(bytes: &[u8]) -> bool {
        bytes.starts_with(WRITER_SLOT_MAGIC)
    }

    pub fn parse(id: &str, bytes: &[u8]) -> Result<Self> {
        let object = format!("keys/{id}");
        let bad = |r: &str| Error::corrupt(object.clone(), r);
        if !Self::is_writer_slot(bytes) || bytes.len() < FIXED_LEN {
            return Err(bad("not a write-only credential's slot"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version > WRITER_SLOT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: WRITER_SLOT_VERSION,
            });
        }
        let name_len = bytes[FIXED_LEN - 1] as usize;
        let body_len = FIXED_LEN + name_len;
        if bytes.len() != body_len + SEALED_LEN + 32 {
            return Err(bad("wrong length"));
        }
        let split = bytes.len() - 32;
        if blake3::hash(&bytes[..split]).as_bytes() != &bytes[split..] {
            return Err(bad("checksum mismatch"));
        }
        let name = std::str::from_utf8(&bytes[FIXED_LEN..body_len])
            .map_err(|_| bad("its name is not UTF-8"))?;
        check_name(name).map_err(|_| bad("its name is not one Coffer writes"))?;
        let mut created = [0u8; 8];
        created.copy_from_slice(&bytes[12..20]);
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[20..28]);
        Ok(WriterSlot {
            id: id.to_string(),
            name: name.to_string(),
            fingerprint,
            created: i64::from_le_bytes(created),
            body: bytes[..body_len].to_vec(),
            sealed: bytes[body_len..split].to_vec(),
        })
    }

    /// The credential's secret. Like a vault key slot, a writer slot opens
    /// under the header it was written under, or under that header as it
    /// was at an earlier format version from 5 on (`vault upgrade` rewrites
    /// the header, not the slots).
    pub fn unlock(&self, header: &Header, master: &MasterKeys) -> Result<WriterSecret> {
        let plain = (WRITER_FORMAT..=header.version.max(WRITER_FORMAT))
            .rev()
            .find_map(|version| {
                let under = if version == header.version {
                    header.clone()
                } else {
                    Header::with_version(header.vault_id, header.created, version)
                };
                open_with(
                    &master.encryption,
                    &aad(&under, &self.id, &self.body),
                    &self.sealed,
                )
            })
            .map(Zeroizing::new)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("keys/{}", self.id),
                    "the write-only credential's slot does not open with this vault's secrets",
                )
            })?;
        let secret: [u8; 32] = plain.as_slice().try_into().map_err(|_| {
            Error::corrupt(format!("keys/{}", self.id), "sealed secret of wrong length")
        })?;
        let secret = WriterSecret::from_bytes(secret);
        if secret.fingerprint() != self.fingerprint {
            return Err(Error::corrupt(
                format!("keys/{}", self.id),
                "the sealed secret does not match the slot's fingerprint",
            ));
        }
        Ok(secret)
    }

    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_slot_opens_only_in_its_vault_with_its_name() {
        let header = Header::with_version([5; 16], 1_700_000_000, WRITER_FORMAT);
        let master = MasterKeys::random();
        let secret = WriterSecret::random();
        let slot = WriterSlot::create(&header, &master, "web-1", &secret, 7).unwrap();
        let bytes = slot.to_bytes();
        let parsed = WriterSlot::parse(&slot.id, &bytes).unwrap();
        assert_eq!(parsed.name, "web-1");
        assert_eq!(parsed.fingerprint, secret.fingerprint());
        assert_eq!(parsed.created, 7);
        let opened = parsed.unlock(&header, &master).unwrap();
        assert_eq!(opened.as_bytes(), secret.as_bytes());
        // Another vault's secrets, another vault, another slot name.
        assert!(parsed.unlock(&header, &MasterKeys::random()).is_err());
        let elsewhere = Header::with_version([6; 16], 1_700_000_000, WRITER_FORMAT);
        assert!(parsed.unlock(&elsewhere, &master).is_err());
        let renamed = WriterSlot::parse("0000000000000000", &bytes).unwrap();
        assert!(renamed.unlock(&header, &master).is_err());
        // A name changed in place, checksum recomputed: the seal refuses it.
        let mut forged = bytes.clone();
        let at = FIXED_LEN;
        forged[at] = b'x';
        let split = forged.len() - 32;
        let sum = *blake3::hash(&forged[..split]).as_bytes();
        forged[split..].copy_from_slice(&sum);
        let forged = WriterSlot::parse(&slot.id, &forged).unwrap();
        assert_eq!(forged.name, "xeb-1");
        assert!(forged.unlock(&header, &master).is_err());
    }

    #[test]
    fn names_are_checked() {
        for good in ["web-1", "db.example.com", "host_2@rack"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "two words", "a/b", "\u{1b}[2J", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
