//! A write-only credential: what a host holds to add points to a vault it
//! can neither read nor destroy.
//!
//! The credential carries the writer secret `W` (32 random bytes), the
//! vault's public key and the ids naming the vault and the credential's
//! slot. Every key the writer uses is derived from `W` with its own BLAKE3
//! context, so the writer's chunk ids, chunk boundaries and index files
//! form a domain of their own: nothing computed with them says anything
//! about another writer's data or the key holder's. The key holder reads
//! `W` from the credential's slot, sealed there under the vault's master
//! secrets (FORMAT.md §3a).

use base64::Engine as _;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::ids::ChunkId;

use crate::keys::WRITER_CREDENTIAL_PREFIX as CREDENTIAL_PREFIX;
/// Bytes behind the prefix: vault id, slot id, writer secret, vault public key.
const CREDENTIAL_LEN: usize = 16 + 8 + 32 + 32;

/// The writer secret `W`, and the keys derived from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WriterSecret([u8; 32]);

impl WriterSecret {
    pub fn random() -> Self {
        let mut w = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut w);
        WriterSecret(w)
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        WriterSecret(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, context: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, &self.0))
    }

    /// HPKE's pre-shared key: only a holder of `W` can start a session the
    /// key holder accepts as this credential's.
    pub(crate) fn psk(&self) -> Zeroizing<[u8; 32]> {
        self.derive("coffer writer psk v5")
    }

    /// Keys the BLAKE3 hash that names this writer's chunks.
    pub(crate) fn chunk_id_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive("coffer writer chunk id v5")
    }

    /// Seeds this writer's chunker.
    pub fn chunker_secret(&self) -> Zeroizing<[u8; 32]> {
        self.derive("coffer writer chunker v5")
    }

    /// Seals this writer's index files, which it reads back itself.
    pub fn index_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive("coffer writer index v5")
    }

    /// The id of a chunk this writer stores.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.chunk_id_key(), plaintext).as_bytes())
    }

    /// Eight bytes that identify the credential and reveal nothing of it.
    pub fn fingerprint(&self) -> [u8; 8] {
        let full = blake3::derive_key("coffer writer fingerprint v5", &self.0);
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }
}

/// Everything a write-only writer holds.
#[derive(Clone)]
pub struct WriterCredential {
    pub vault_id: [u8; 16],
    pub slot: [u8; 8],
    pub secret: WriterSecret,
    pub vault_public: [u8; 32],
}

impl WriterCredential {
    /// Whether `text` is a credential rather than a vault key.
    pub fn looks_like(text: &str) -> bool {
        text.trim().starts_with(CREDENTIAL_PREFIX)
    }

    /// The text the user keeps: the prefix, then URL-safe base64.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(CREDENTIAL_LEN));
        raw.extend_from_slice(&self.vault_id);
        raw.extend_from_slice(&self.slot);
        raw.extend_from_slice(self.secret.as_bytes());
        raw.extend_from_slice(&self.vault_public);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice());
        Zeroizing::new(format!("{CREDENTIAL_PREFIX}{body}"))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "this is not a usable write-only credential ({why}): use the whole text `coffer key add --write-only` printed"
            ))
        };
        let body = text
            .trim()
            .strip_prefix(CREDENTIAL_PREFIX)
            .ok_or_else(|| bad("it does not start with coffer-writer-1-"))?;
        let raw = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| bad("it is not base64"))?,
        );
        if raw.len() != CREDENTIAL_LEN {
            return Err(bad("it is cut short or too long"));
        }
        let mut vault_id = [0u8; 16];
        let mut slot = [0u8; 8];
        let mut secret = [0u8; 32];
        let mut vault_public = [0u8; 32];
        vault_id.copy_from_slice(&raw[0..16]);
        slot.copy_from_slice(&raw[16..24]);
        secret.copy_from_slice(&raw[24..56]);
        vault_public.copy_from_slice(&raw[56..88]);
        let credential = WriterCredential {
            vault_id,
            slot,
            secret: WriterSecret::from_bytes(secret),
            vault_public,
        };
        secret.zeroize();
        Ok(credential)
    }

    /// The slot's name at the storage location, 16 hex digits.
    pub fn slot_id(&self) -> String {
        hex::encode(self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_survives_its_text_and_damaged_text_is_refused() {
        let credential = WriterCredential {
            vault_id: [1; 16],
            slot: [2; 8],
            secret: WriterSecret::random(),
            vault_public: [3; 32],
        };
        let text = credential.to_text();
        assert!(WriterCredential::looks_like(&text));
        assert!(!WriterCredential::looks_like("bG9uZyByYW5kb20ga2V5"));
        let back = WriterCredential::parse(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.vault_id, credential.vault_id);
        assert_eq!(back.slot, credential.slot);
        assert_eq!(back.secret.as_bytes(), credential.secret.as_bytes());
        assert_eq!(back.vault_public, credential.vault_public);
        let cut = &text[..text.len() - 4];
        let e = WriterCredential::parse(cut).err().unwrap().to_string();
        assert!(e.contains("cut short") && e.contains("--write-only"), "{e}");
        assert!(WriterCredential::parse("coffer-writer-1-!!").is_err());
    }

    #[test]
    fn the_derived_keys_differ_from_each_other_and_between_writers() {
        let a = WriterSecret::random();
        let b = WriterSecret::random();
        let keys = [
            *a.psk(),
            *a.chunk_id_key(),
            *a.chunker_secret(),
            *a.index_key(),
        ];
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_ne!(a.chunk_id(b"data"), b.chunk_id(b"data"));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
