//! Writer sessions: how a write-only writer gets a key that it can seal
//! with and that only the vault's key holders can recompute.
//!
//! Each backup by a write-only writer runs HPKE (RFC 9180) in PSK mode,
//! suite X25519-HKDF-SHA256 / HKDF-SHA256 / export-only, to the vault's
//! public key, with the writer's pre-shared key and its slot id as PSK id.
//! The session key `S` is HPKE's exported secret; every object of the
//! session is sealed under `S` like the key holder's are under the vault's
//! encryption key, and carries the 40-byte session header (slot id and
//! HPKE's encapsulated key) from which a key holder recomputes `S`. The
//! writer forgets `S` and the ephemeral private key when the session ends,
//! so it cannot open what it wrote; the PSK makes a session that was not
//! started with this credential's secret open to nothing, so no one without
//! the credential (the storage's owner included) can add objects in its
//! name. The vault's key pair is derived from the master secrets, never
//! stored: only a key holder can compute the private half.

use hpke::aead::ExportOnlyAead;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, PskBundle, Serializable};
use zeroize::Zeroizing;

use crate::credential::secret::{WriterCredential, WriterSecret};
use crate::crypto::MasterKeys;
use crate::error::{Error, Result};

/// Bytes of a session header: slot id (8) and encapsulated key (32).
pub const SESSION_HEADER_LEN: usize = 40;
const INFO_PREFIX: &[u8] = b"coffer writer session v5";
const EXPORT_CONTEXT: &[u8] = b"coffer session key";

/// The vault's private key, as only key holders have it.
pub struct VaultPrivateKey(<X25519HkdfSha256 as Kem>::PrivateKey);

/// The vault's key pair, derived from its encryption secret (RFC 9180
/// DeriveKeyPair over a BLAKE3-derived input).
pub fn vault_keypair(master: &MasterKeys) -> (VaultPrivateKey, [u8; 32]) {
    let ikm = Zeroizing::new(blake3::derive_key(
        "coffer vault key pair v5",
        &master.encryption,
    ));
    let (private, public) = X25519HkdfSha256::derive_keypair(ikm.as_slice());
    let mut public_bytes = [0u8; 32];
    public_bytes.copy_from_slice(&public.to_bytes());
    (VaultPrivateKey(private), public_bytes)
}

/// What precedes every object a session writes: the slot that wrote it and
/// HPKE's encapsulated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHeader(pub [u8; SESSION_HEADER_LEN]);

impl SessionHeader {
    pub fn slot(&self) -> [u8; 8] {
        let mut slot = [0u8; 8];
        slot.copy_from_slice(&self.0[..8]);
        slot
    }

    pub fn slot_id(&self) -> String {
        hex::encode(self.slot())
    }

    /// Reads a header from the start of `bytes`; `object` names it in errors.
    pub fn read(object: &str, bytes: &[u8]) -> Result<Self> {
        let header = bytes
            .get(..SESSION_HEADER_LEN)
            .ok_or_else(|| Error::corrupt(object, "cut short before its session header"))?;
        let mut out = [0u8; SESSION_HEADER_LEN];
        out.copy_from_slice(header);
        Ok(SessionHeader(out))
    }
}

/// A session on the writer's side: the key it seals with, and the header
/// its objects carry.
pub struct WriterSession {
    pub header: SessionHeader,
    pub(crate) key: Zeroizing<[u8; 32]>,
}

impl WriterSession {
    /// The keys this session's objects are sealed and its chunks named
    /// with: the session key, and `secret`'s chunk-id and chunker keys.
    pub fn object_keys(&self, secret: &WriterSecret) -> MasterKeys {
        session_object_keys(&self.key, secret)
    }
}

/// The keys of the objects of a session whose key is `key`, written with
/// the credential whose secret is `secret`.
pub fn session_object_keys(key: &[u8; 32], secret: &WriterSecret) -> MasterKeys {
    MasterKeys::of_session(key, &secret.chunk_id_key(), &secret.chunker_secret())
}

fn info(vault_id: &[u8; 16]) -> Vec<u8> {
    [INFO_PREFIX, vault_id.as_slice()].concat()
}

impl WriterSession {
    /// Starts a session for `credential`'s vault.
    pub fn start(credential: &WriterCredential) -> Result<Self> {
        Self::start_with(credential, &mut rand::rngs::OsRng)
    }

    /// Starts a session drawing the ephemeral key from `rng` (fixed only in
    /// the test vectors).
    pub(crate) fn start_with<R: rand::RngCore + rand::CryptoRng>(
        credential: &WriterCredential,
        rng: &mut R,
    ) -> Result<Self> {
        let refused =
            |why: String| Error::Invalid(format!("cannot start a write-only session: {why}"));
        let public = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&credential.vault_public)
            .map_err(|e| {
                refused(format!(
                    "the credential's vault public key is unusable ({e})"
                ))
            })?;
        let psk = credential.secret.psk();
        let mode = OpModeS::Psk(PskBundle {
            psk: psk.as_slice(),
            psk_id: &credential.slot,
        });
        let (encapsulated, context) = hpke::setup_sender::<
            ExportOnlyAead,
            HkdfSha256,
            X25519HkdfSha256,
            _,
        >(&mode, &public, &info(&credential.vault_id), rng)
        .map_err(|e| refused(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        context
            .export(EXPORT_CONTEXT, key.as_mut())
            .map_err(|e| refused(e.to_string()))?;
        let mut header = [0u8; SESSION_HEADER_LEN];
        header[..8].copy_from_slice(&credential.slot);
        header[8..].copy_from_slice(&encapsulated.to_bytes());
        Ok(WriterSession {
            header: SessionHeader(header),
            key,
        })
    }
}

/// The key holder's side: the session key of `header`, whose slot holds
/// `secret`. A header that was not made with that secret for this vault
/// yields a key that opens nothing, which the caller's first open reports.
pub fn session_key(
    header: &SessionHeader,
    private: &VaultPrivateKey,
    vault_id: &[u8; 16],
    secret: &WriterSecret,
) -> Result<Zeroizing<[u8; 32]>> {
    let object = format!("session of write-only credential {}", header.slot_id());
    let encapsulated = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&header.0[8..])
        .map_err(|e| Error::corrupt(&object, format!("unusable encapsulated key: {e}")))?;
    let psk = secret.psk();
    let slot = header.slot();
    let mode = OpModeR::Psk(PskBundle {
        psk: psk.as_slice(),
        psk_id: &slot,
    });
    let context = hpke::setup_receiver::<ExportOnlyAead, HkdfSha256, X25519HkdfSha256>(
        &mode,
        &private.0,
        &encapsulated,
        &info(vault_id),
    )
    .map_err(|e| Error::corrupt(&object, format!("HPKE refused the session: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    context
        .export(EXPORT_CONTEXT, key.as_mut())
        .map_err(|e| Error::corrupt(&object, e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(master: &MasterKeys, secret: WriterSecret) -> WriterCredential {
        WriterCredential {
            vault_id: [9; 16],
            slot: [1, 2, 3, 4, 5, 6, 7, 8],
            secret,
            vault_public: vault_keypair(master).1,
        }
    }

    #[test]
    fn only_the_key_holder_recomputes_a_session_key_and_only_for_its_writer() {
        let master = MasterKeys::random();
        let secret = WriterSecret::random();
        let writer = credential(&master, secret.clone());
        let session = WriterSession::start(&writer).unwrap();
        let (private, _) = vault_keypair(&master);
        let key = session_key(&session.header, &private, &[9; 16], &secret).unwrap();
        assert_eq!(*key, *session.key);
        // What the writer seals under the session, the key holder opens.
        let sealed = session.object_keys(&secret).seal(b"aad", b"plain");
        let opened = session_object_keys(&key, &secret).open("x", b"aad", &sealed);
        assert_eq!(opened.unwrap(), b"plain");
        // Two sessions never share a key.
        let other = WriterSession::start(&writer).unwrap();
        assert_ne!(*other.key, *session.key);
        assert_ne!(other.header, session.header);
        // Another vault's private key, another writer's secret, another
        // vault id: a key that opens nothing.
        let (stranger, _) = vault_keypair(&MasterKeys::random());
        let wrong = [
            session_key(&session.header, &stranger, &[9; 16], &secret).unwrap(),
            session_key(&session.header, &private, &[9; 16], &WriterSecret::random()).unwrap(),
            session_key(&session.header, &private, &[8; 16], &secret).unwrap(),
        ];
        for k in wrong {
            assert_ne!(*k, *session.key);
        }
        // A header naming another slot: the PSK id differs.
        let mut moved = session.header;
        moved.0[0] ^= 1;
        assert_ne!(
            *session_key(&moved, &private, &[9; 16], &secret).unwrap(),
            *session.key
        );
    }
}
