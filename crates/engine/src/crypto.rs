//! Secrets and the primitives built on them.
//!
//! A vault has three random 256-bit master secrets: one encrypts every object
//! (XChaCha20-Poly1305, a fresh random 192-bit nonce per object, so random
//! nonces never collide in practice however large the vault grows), one keys
//! the BLAKE3 hash that names chunks (so the storage owner cannot test for known
//! content), and one seeds the chunker's gear table (so chunk boundaries leak
//! nothing either). They never leave memory unwrapped; key slots hold them
//! encrypted under a key derived from the user's vault key.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::ids::ChunkId;

/// Bytes added by sealing: nonce plus authentication tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;
/// The BLAKE3 key-derivation context of purpose keys (FORMAT.md §8c).
pub(crate) const PURPOSE_CONTEXT: &str = "coffer sealed value v1";

/// The vault's master secrets.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKeys {
    pub(crate) encryption: [u8; 32],
    pub(crate) chunk_id: [u8; 32],
    pub(crate) chunker: [u8; 32],
}

impl MasterKeys {
    /// Serialized length: the three secrets back to back.
    pub const LEN: usize = 96;

    pub fn random() -> Self {
        let mut keys = MasterKeys {
            encryption: [0; 32],
            chunk_id: [0; 32],
            chunker: [0; 32],
        };
        let mut rng = rand::rngs::OsRng;
        rng.fill_bytes(&mut keys.encryption);
        rng.fill_bytes(&mut keys.chunk_id);
        rng.fill_bytes(&mut keys.chunker);
        keys
    }

    /// The keys of one write-only session (`crate::credential`), standing in
    /// for the master secrets for every object that session writes: the
    /// session key seals, the writer's own keys name and cut chunks. Code
    /// that seals or opens objects works on either without knowing which.
    pub(crate) fn of_session(seal: &[u8; 32], chunk_id: &[u8; 32], chunker: &[u8; 32]) -> Self {
        MasterKeys {
            encryption: *seal,
            chunk_id: *chunk_id,
            chunker: *chunker,
        }
    }

    pub(crate) fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(Self::LEN));
        out.extend_from_slice(&self.encryption);
        out.extend_from_slice(&self.chunk_id);
        out.extend_from_slice(&self.chunker);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let mut keys = MasterKeys {
            encryption: [0; 32],
            chunk_id: [0; 32],
            chunker: [0; 32],
        };
        keys.encryption.copy_from_slice(&bytes[0..32]);
        keys.chunk_id.copy_from_slice(&bytes[32..64]);
        keys.chunker.copy_from_slice(&bytes[64..96]);
        Some(keys)
    }

    /// The keyed BLAKE3 hash of a plaintext chunk: its id.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes())
    }

    /// Encrypts with the vault's encryption key.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.encryption, aad, plaintext)
    }

    /// Decrypts and authenticates `sealed` (nonce, ciphertext, tag) where it
    /// lies, for large objects that should not exist twice in memory; returns
    /// where the plaintext now is. `object` names the object in the error.
    pub fn open_in_place(
        &self,
        object: &str,
        aad: &[u8],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>> {
        let failed = || Error::corrupt(object, "authentication failed (data altered or damaged)");
        if sealed.len() < SEAL_OVERHEAD {
            return Err(failed());
        }
        let tag_at = sealed.len() - TAG_LEN;
        let (body, tag) = sealed.split_at_mut(tag_at);
        let (nonce, ciphertext) = body.split_at_mut(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.encryption).into());
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                aad,
                ciphertext,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| failed())?;
        Ok(NONCE_LEN..tag_at)
    }

    /// Encrypts `buf[NONCE_LEN..]` in place; see `seal_in_place`.
    pub(crate) fn seal_in_place(&self, aad: &[u8], buf: &mut Vec<u8>) {
        seal_in_place(&self.encryption, aad, buf)
    }

    /// The key for values sealed for `purpose` outside the vault's own
    /// objects (the service's password hashes in its configuration point):
    /// derived, so that such a value can never be passed off as an object.
    pub(crate) fn purpose_key(&self, purpose: &str) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(blake3::derive_key(
            &format!("{PURPOSE_CONTEXT} {purpose}"),
            &self.encryption,
        ))
    }

    /// Seals a value for `purpose`, bound to `binding` (the vault id).
    pub fn seal_for(&self, purpose: &str, binding: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.purpose_key(purpose), binding, plaintext)
    }

    /// Opens what `seal_for` made with the same purpose and binding.
    pub fn open_for(&self, purpose: &str, binding: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.purpose_key(purpose), binding, sealed)
    }

    /// Decrypts and authenticates; `object` names the object in the error.
    pub fn open(&self, object: &str, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.encryption, aad, sealed).ok_or_else(|| {
            Error::corrupt(object, "authentication failed (data altered or damaged)")
        })
    }
}

/// A small typed object as stored: `magic || seal(K, aad, postcard(value))`.
/// Manifests, journal records and activity markers share this shape.
pub(crate) fn seal_object<T: serde::Serialize>(
    keys: &MasterKeys,
    magic: &[u8; 8],
    aad: &[u8],
    value: &T,
) -> Vec<u8> {
    let plain = postcard::to_stdvec(value).unwrap_or_default();
    let mut out = magic.to_vec();
    out.extend_from_slice(&keys.seal(aad, &plain));
    out
}

/// Opens what `seal_object` made; `what` names the kind of object in errors.
pub(crate) fn open_object<T: serde::de::DeserializeOwned>(
    keys: &MasterKeys,
    magic: &[u8; 8],
    aad: &[u8],
    object: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    if bytes.len() < 8 || &bytes[..8] != magic {
        return Err(Error::corrupt(object, format!("not a {what} (bad magic)")));
    }
    let plain = keys.open(object, aad, &bytes[8..])?;
    postcard::from_bytes(&plain)
        .map_err(|e| Error::corrupt(object, format!("undecodable {what}: {e}")))
}

/// `nonce || ciphertext || tag` with a fresh random nonce.
pub(crate) fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(key, &nonce, aad, plaintext)
}

/// Sealing with a given nonce; only for test vectors, where it must be fixed.
pub(crate) fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    // One allocation: the plaintext is copied behind the nonce and encrypted
    // where it lies.
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    seal_behind_nonce(key, aad, &mut out);
    out
}

/// Seals `buf[NONCE_LEN..]` where it lies: a fresh random nonce is written
/// over the first `NONCE_LEN` bytes, which the caller reserved, and the tag
/// is appended. A caller that builds its plaintext behind the reserved
/// nonce (the pack writer compresses straight into it) needs no second
/// buffer.
pub(crate) fn seal_in_place(key: &[u8; 32], aad: &[u8], buf: &mut Vec<u8>) {
    if buf.len() < NONCE_LEN {
        buf.resize(NONCE_LEN, 0);
    }
    rand::rngs::OsRng.fill_bytes(&mut buf[..NONCE_LEN]);
    seal_behind_nonce(key, aad, buf);
}

fn seal_behind_nonce(key: &[u8; 32], aad: &[u8], buf: &mut Vec<u8>) {
    let cipher = XChaCha20Poly1305::new(key.into());
    let (nonce, body) = buf.split_at_mut(NONCE_LEN);
    // Encryption with a valid key and in-memory buffers cannot fail: the
    // only error the AEAD API reports is a plaintext over 256 GiB.
    match cipher.encrypt_in_place_detached(XNonce::from_slice(nonce), aad, body) {
        Ok(tag) => buf.extend_from_slice(&tag),
        Err(_) => buf.truncate(NONCE_LEN),
    }
}

pub(crate) fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper_detection() {
        let keys = MasterKeys::random();
        let sealed = keys.seal(b"aad", b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(keys.open("x", b"aad", &sealed).unwrap(), b"hello");
        assert!(keys.open("x", b"other", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys.open("x", b"aad", &flipped).is_err());
        // two seals of the same plaintext differ (fresh nonce)
        assert_ne!(keys.seal(b"aad", b"hello"), sealed);
    }

    #[test]
    fn purpose_seals_open_only_with_their_purpose_binding_and_vault() {
        let keys = MasterKeys::random();
        let sealed = keys.seal_for("service secrets", b"vault-a", b"hash");
        assert_eq!(
            keys.open_for("service secrets", b"vault-a", &sealed)
                .unwrap(),
            b"hash"
        );
        assert!(keys.open_for("other", b"vault-a", &sealed).is_none());
        assert!(keys
            .open_for("service secrets", b"vault-b", &sealed)
            .is_none());
        assert!(MasterKeys::random()
            .open_for("service secrets", b"vault-a", &sealed)
            .is_none());
        // Not an object of the vault either.
        assert!(keys.open("x", b"vault-a", &sealed).is_err());
    }

    #[test]
    fn chunk_ids_depend_on_the_vault_secret() {
        let a = MasterKeys::random();
        let b = MasterKeys::random();
        assert_eq!(a.chunk_id(b"data"), a.chunk_id(b"data"));
        assert_ne!(a.chunk_id(b"data"), b.chunk_id(b"data"));
    }
}
