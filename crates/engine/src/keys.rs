//! The vault header and key slots.
//!
//! The header (`vault`) is plaintext: magic, format version, vault id,
//! creation time and a BLAKE3 checksum, so that damage is told apart from a
//! wrong key. Each key slot (`keys/<slot id>`) holds the master secrets sealed
//! under a key derived from one vault key with Argon2id; the seal's associated
//! data binds the slot to the header and to its own parameters. Adding a key
//! writes a slot; rotating writes a new slot, proves it opens, then removes the
//! old one. The vault key itself is never stored.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::crypto::{open_with, seal_with, MasterKeys, SEAL_OVERHEAD};
use crate::error::{Error, Result};

pub const HEADER_MAGIC: &[u8; 8] = b"COFFERVT";
pub const SLOT_MAGIC: &[u8; 8] = b"COFFERKS";
/// How every write-only credential's text starts (FORMAT.md §3a): names
/// what it is for whoever finds it, and tells it apart from a vault key.
pub const WRITER_CREDENTIAL_PREFIX: &str = "coffer-writer-1-";
/// The newest vault format this build reads and writes. Version 2 added
/// compression dictionaries, version 3 the journal (policies, point states),
/// version 4 bound journal records to their names, version 5 added
/// write-only credentials; older vaults are read and written as they are
/// until `coffer vault upgrade`.
pub const FORMAT_VERSION: u16 = 6;
/// Layout version of a key slot, unchanged since format 1.
const SLOT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 68;
const SLOT_BODY_LEN: usize = 64;
const SLOT_SEALED_LEN: usize = MasterKeys::LEN + SEAL_OVERHEAD;
pub const SLOT_LEN: usize = SLOT_BODY_LEN + SLOT_SEALED_LEN + 32;
const KDF_ARGON2ID: u16 = 1;

/// Default Argon2id cost: 64 MiB, 3 passes, 1 lane.
pub const DEFAULT_KDF: KdfParams = KdfParams {
    memory_kib: 64 * 1024,
    iterations: 3,
    parallelism: 1,
};

/// Cost for a key that `key generate` made: 256 random bits cannot be guessed,
/// so a memory-hard derivation adds no protection, only 64 MiB to every
/// command's peak memory.
pub const GENERATED_KEY_KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// A user's vault key. Its bytes are the text the user holds (usually the
/// base64 string `key generate` printed), with surrounding white space trimmed.
pub struct VaultKey(Zeroizing<Vec<u8>>);

impl VaultKey {
    pub fn from_text(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::Invalid("the vault key is empty".into()));
        }
        if trimmed.starts_with(WRITER_CREDENTIAL_PREFIX) {
            return Err(Error::WriteOnly {
                action: "open the vault to read or change it".into(),
            });
        }
        Ok(VaultKey(Zeroizing::new(trimmed.as_bytes().to_vec())))
    }

    /// A new random 256-bit key, as base64 text.
    pub fn generate() -> (Self, Zeroizing<String>) {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(raw.as_ref()));
        (VaultKey(Zeroizing::new(text.as_bytes().to_vec())), text)
    }

    /// Whether this is a full-entropy key of the kind `key generate` prints:
    /// base64 of 32 bytes that do not look hand-made (a random key has about
    /// 30 distinct byte values; fewer than 16 happens by chance with
    /// negligible probability).
    pub fn is_generated(&self) -> bool {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&*self.0) else {
            return false;
        };
        let raw = Zeroizing::new(raw);
        let mut seen = [false; 256];
        for b in raw.iter() {
            seen[*b as usize] = true;
        }
        raw.len() == 32 && seen.iter().filter(|s| **s).count() >= 16
    }

    /// The derivation cost a new key slot for this key should use: the full
    /// memory-hard default for passphrases, a light one for generated keys.
    pub fn slot_kdf(&self) -> KdfParams {
        if self.is_generated() {
            GENERATED_KEY_KDF
        } else {
            DEFAULT_KDF
        }
    }

    /// A short fingerprint that identifies the key without revealing it.
    pub fn fingerprint(&self) -> String {
        let h = blake3::derive_key("coffer vault key fingerprint v1", &self.0);
        hex::encode(&h[..8])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The most memory a key slot may ask for: 1 GiB, sixteen times Coffer's
/// own default for passphrases.
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
/// The most passes a key slot may ask for.
pub const MAX_KDF_ITERATIONS: u32 = 16;
/// The most lanes a key slot may ask for.
pub const MAX_KDF_LANES: u32 = 16;
/// The most memory × passes (in KiB) a slot may ask for: four passes over
/// 1 GiB, a few seconds of work, so a slot cannot make opening take hours.
pub const MAX_KDF_WORK: u64 = 4 << 20;

impl KdfParams {
    /// Why these parameters are refused. A slot's parameters are read
    /// before anything authenticates them (the key derived with them is
    /// what authenticates the slot), so whoever can write to the storage
    /// can choose them: without a bound, one slot asking for 16 GiB would
    /// abort every process that opens the vault.
    pub fn check(&self) -> std::result::Result<(), String> {
        let work = u64::from(self.memory_kib) * u64::from(self.iterations);
        if self.memory_kib > MAX_KDF_MEMORY_KIB {
            Err(format!(
                "asks for {} MiB of memory, more than the {} MiB allowed",
                self.memory_kib / 1024,
                MAX_KDF_MEMORY_KIB / 1024
            ))
        } else if !(1..=MAX_KDF_ITERATIONS).contains(&self.iterations) {
            Err(format!(
                "asks for {} passes, outside 1 to {MAX_KDF_ITERATIONS}",
                self.iterations
            ))
        } else if !(1..=MAX_KDF_LANES).contains(&self.parallelism) {
            Err(format!(
                "asks for {} lanes, outside 1 to {MAX_KDF_LANES}",
                self.parallelism
            ))
        } else if work > MAX_KDF_WORK {
            Err(format!(
                "asks for {} MiB × {} passes, more work than the {} MiB-passes allowed",
                self.memory_kib / 1024,
                self.iterations,
                MAX_KDF_WORK / 1024
            ))
        } else {
            Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map(|_| ())
                .map_err(|e| format!("has impossible parameters: {e}"))
        }
    }
}

/// The parsed vault header.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u16,
    pub vault_id: [u8; 16],
    pub created: i64,
    pub(crate) bytes: Vec<u8>,
}

impl Header {
    pub fn new(created: i64) -> Self {
        let mut vault_id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut vault_id);
        Self::with_id(vault_id, created)
    }

    pub(crate) fn with_id(vault_id: [u8; 16], created: i64) -> Self {
        Self::with_version(vault_id, created, FORMAT_VERSION)
    }

    /// A header of an older format version, for tests of compatibility.
    pub(crate) fn with_version(vault_id: [u8; 16], created: i64, version: u16) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        bytes.extend_from_slice(HEADER_MAGIC);
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&vault_id);
        bytes.extend_from_slice(&created.to_le_bytes());
        let sum = blake3::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        Header {
            version,
            vault_id,
            created,
            bytes,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |r: &str| Error::corrupt("vault (header)", r);
        if bytes.len() < 12 || &bytes[0..8] != HEADER_MAGIC {
            return Err(bad("not a coffer vault header (bad magic)"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if bytes.len() != HEADER_LEN {
            return Err(bad("wrong length"));
        }
        if blake3::hash(&bytes[..36]).as_bytes() != &bytes[36..68] {
            return Err(bad("checksum mismatch"));
        }
        let mut vault_id = [0u8; 16];
        vault_id.copy_from_slice(&bytes[12..28]);
        let created = i64::from_le_bytes(bytes[28..36].try_into().map_err(|_| bad("length"))?);
        Ok(Header {
            version,
            vault_id,
            created,
            bytes: bytes.to_vec(),
        })
    }

    pub fn vault_id_hex(&self) -> String {
        hex::encode(self.vault_id)
    }
}

/// One key slot as stored.
#[derive(Debug, Clone)]
pub struct KeySlot {
    pub id: String,
    pub kdf: KdfParams,
    pub created: i64,
    salt: [u8; 32],
    sealed: Vec<u8>,
    body: Vec<u8>,
}

pub(crate) fn derive(
    key: &VaultKey,
    salt: &[u8; 32],
    kdf: KdfParams,
) -> Result<Zeroizing<[u8; 32]>> {
    kdf.check()
        .map_err(|why| Error::Invalid(format!("the key derivation {why}")))?;
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| Error::Invalid(format!("bad key derivation parameters: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(&key.0, salt, out.as_mut())
        .map_err(|e| Error::Invalid(format!("key derivation failed: {e}")))?;
    Ok(out)
}

fn slot_aad(header: &Header, slot_id: &str, body: &[u8]) -> Vec<u8> {
    let mut aad = header.bytes.clone();
    aad.extend_from_slice(slot_id.as_bytes());
    aad.extend_from_slice(body);
    aad
}

impl KeySlot {
    /// Seals `master` under `key` in a new slot with a fresh random id.
    pub fn create(
        header: &Header,
        key: &VaultKey,
        master: &MasterKeys,
        kdf: KdfParams,
        created: i64,
    ) -> Result<Self> {
        let mut id_bytes = [0u8; 8];
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let id = hex::encode(id_bytes);
        let mut body = Vec::with_capacity(SLOT_BODY_LEN);
        body.extend_from_slice(SLOT_MAGIC);
        body.extend_from_slice(&SLOT_VERSION.to_le_bytes());
        body.extend_from_slice(&KDF_ARGON2ID.to_le_bytes());
        body.extend_from_slice(&kdf.memory_kib.to_le_bytes());
        body.extend_from_slice(&kdf.iterations.to_le_bytes());
        body.extend_from_slice(&kdf.parallelism.to_le_bytes());
        body.extend_from_slice(&salt);
        body.extend_from_slice(&created.to_le_bytes());
        let wrapping = derive(key, &salt, kdf)?;
        let sealed = seal_with(&wrapping, &slot_aad(header, &id, &body), &master.to_bytes());
        Ok(KeySlot {
            id,
            kdf,
            created,
            salt,
            sealed,
            body,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body.clone();
        out.extend_from_slice(&self.sealed);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub fn parse(id: &str, bytes: &[u8]) -> Result<Self> {
        let object = format!("keys/{id}");
        let bad = |r: &str| Error::corrupt(object.clone(), r);
        if bytes.len() < 10 || &bytes[0..8] != SLOT_MAGIC {
            return Err(bad("not a key slot (bad magic)"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version > SLOT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: SLOT_VERSION,
            });
        }
        if bytes.len() != SLOT_LEN {
            return Err(bad("wrong length"));
        }
        let split = SLOT_LEN - 32;
        if blake3::hash(&bytes[..split]).as_bytes() != &bytes[split..] {
            return Err(bad("checksum mismatch"));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        if u16::from_le_bytes([bytes[10], bytes[11]]) != KDF_ARGON2ID {
            return Err(bad("unknown key derivation function"));
        }
        let kdf = KdfParams {
            memory_kib: u32_at(12),
            iterations: u32_at(16),
            parallelism: u32_at(20),
        };
        if let Err(why) = kdf.check() {
            return Err(bad(&format!(
                "its key derivation {why}: Coffer never writes such a slot; remove it (`coffer key remove {id}`)"
            )));
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&bytes[24..56]);
        let mut created = [0u8; 8];
        created.copy_from_slice(&bytes[56..64]);
        Ok(KeySlot {
            id: id.to_string(),
            kdf,
            created: i64::from_le_bytes(created),
            salt,
            sealed: bytes[SLOT_BODY_LEN..split].to_vec(),
            body: bytes[..SLOT_BODY_LEN].to_vec(),
        })
    }

    /// The master secrets, when `key` is the key this slot was made for.
    /// A slot binds itself to the header it was made under. `vault upgrade`
    /// rewrites the header with a new version but cannot rewrap the slots of
    /// keys it does not have, so a slot made under an earlier version of this
    /// same header (same vault id and creation time) is accepted too.
    pub fn unlock(&self, header: &Header, key: &VaultKey) -> Result<Option<MasterKeys>> {
        let wrapping = derive(key, &self.salt, self.kdf)?;
        let plain = (1..=header.version).rev().find_map(|version| {
            let under = if version == header.version {
                header.clone()
            } else {
                Header::with_version(header.vault_id, header.created, version)
            };
            open_with(
                &wrapping,
                &slot_aad(&under, &self.id, &self.body),
                &self.sealed,
            )
        });
        let Some(plain) = plain else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        Ok(MasterKeys::from_bytes(&plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn slot_round_trip_and_wrong_key() {
        let header = Header::new(1_700_000_000);
        let master = MasterKeys::random();
        let (key, _) = VaultKey::generate();
        let slot = KeySlot::create(&header, &key, &master, FAST, 5).unwrap();
        let bytes = slot.to_bytes();
        assert_eq!(bytes.len(), SLOT_LEN);
        let parsed = KeySlot::parse(&slot.id, &bytes).unwrap();
        let opened = parsed.unlock(&header, &key).unwrap().unwrap();
        assert_eq!(opened.encryption, master.encryption);
        let (other, _) = VaultKey::generate();
        assert!(parsed.unlock(&header, &other).unwrap().is_none());
        // a slot moved to another vault does not open there
        let header2 = Header::new(1_700_000_000);
        assert!(parsed.unlock(&header2, &key).unwrap().is_none());
    }

    #[test]
    fn a_slot_asking_for_absurd_costs_is_refused_before_any_derivation() {
        let header = Header::new(1_700_000_000);
        let (key, _) = VaultKey::generate();
        let master = MasterKeys::random();
        let slot = KeySlot::create(&header, &key, &master, FAST, 5).unwrap();
        for (offset, value) in [(12, 16u32 << 20), (16, 1000), (20, 0), (16, 0)] {
            let mut bytes = slot.to_bytes();
            bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
            // The checksum is no defence: anyone can recompute it.
            let sum = *blake3::hash(&bytes[..SLOT_LEN - 32]).as_bytes();
            bytes[SLOT_LEN - 32..].copy_from_slice(&sum);
            let e = KeySlot::parse(&slot.id, &bytes).err().unwrap().to_string();
            assert!(
                e.contains("key derivation") && e.contains("coffer key remove"),
                "{e}"
            );
        }
        assert!(DEFAULT_KDF.check().is_ok() && GENERATED_KEY_KDF.check().is_ok());
    }

    #[test]
    fn only_full_entropy_keys_get_the_light_derivation() {
        let (generated, _) = VaultKey::generate();
        assert_eq!(generated.slot_kdf(), GENERATED_KEY_KDF);
        let passphrase = VaultKey::from_text("correct horse battery staple").unwrap();
        assert_eq!(passphrase.slot_kdf(), DEFAULT_KDF);
        // Base64 of 32 bytes, but made by hand: all zeros, or a short pattern.
        let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        assert_eq!(VaultKey::from_text(&zeros).unwrap().slot_kdf(), DEFAULT_KDF);
        let pattern = base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3, 4].repeat(8));
        assert_eq!(
            VaultKey::from_text(&pattern).unwrap().slot_kdf(),
            DEFAULT_KDF
        );
        // Base64 of another length is a passphrase too.
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert_eq!(VaultKey::from_text(&short).unwrap().slot_kdf(), DEFAULT_KDF);
    }

    #[test]
    fn header_damage_is_reported_as_damage() {
        let header = Header::new(42);
        let mut bytes = header.bytes.clone();
        assert!(Header::parse(&bytes).is_ok());
        bytes[20] ^= 0x10;
        assert!(matches!(Header::parse(&bytes), Err(Error::Corrupt { .. })));
        let mut newer = header.bytes.clone();
        newer[8] = 9;
        assert!(matches!(
            Header::parse(&newer),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
    }
}
