//! The service secret: a 256-bit key that seals every vault key and storage
//! credential the service keeps, so that its database, a copy of it, or a
//! backup of the configuration holds none of them in plaintext.
//!
//! It comes from `COFFER_SERVICE_SECRET` (base64 of 32 bytes) or from the
//! file `service.secret` in the data directory, created on first start and
//! readable by the service's user only. It is never stored in the database,
//! so stealing `state.sqlite` alone yields nothing. Each sealed value is
//! bound to its purpose and owner (associated data such as
//! `vault-key:prod`), so a sealed value moved to another row does not open.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const NONCE_LEN: usize = 24;
/// The environment variable that supplies the secret instead of the file.
pub const SECRET_ENV: &str = "COFFER_SERVICE_SECRET";
const SECRET_FILE: &str = "service.secret";

/// The key that seals secrets at rest.
pub struct ServiceSecret {
    key: Zeroizing<[u8; 32]>,
}

impl ServiceSecret {
    /// From the environment, else from the data directory's secret file,
    /// which is created (mode 0600) when missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        if let Ok(text) = std::env::var(SECRET_ENV) {
            return Self::from_text(&text).map_err(|e| {
                Error::Config(format!("{SECRET_ENV}: {e}; it must be base64 of 32 random bytes (for example the output of `head -c 32 /dev/urandom | base64`)"))
            });
        }
        let path = data_dir.join(SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path)
                    .map_err(|e| Error::io(&path, e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(Error::Config(format!(
                        "{} can be read by other users (mode {:o}): run `chmod 600 {}`",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    )));
                }
                Self::from_text(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = Self::random();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                let text = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(secret.key.as_ref()),
                );
                file.write_all(text.as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::io(&path, e))?;
                tracing::info!(path = %path.display(), "created the service secret; keep a copy apart from the state database");
                Ok(secret)
            }
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    pub fn random() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        ServiceSecret { key }
    }

    fn from_text(text: &str) -> std::result::Result<Self, String> {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| "not base64".to_string())?,
        );
        if raw.len() != 32 {
            return Err(format!("{} bytes instead of 32", raw.len()));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&raw);
        Ok(ServiceSecret { key })
    }

    /// Seals `plaintext` for `purpose` (nonce, then ciphertext and tag).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption of a slice in memory cannot fail for sizes below the
        // cipher's limit of 256 GiB; an empty result would fail to open.
        if let Ok(ct) = cipher.encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: purpose.as_bytes(),
            },
        ) {
            out.extend_from_slice(&ct);
        }
        out
    }

    /// Opens what [`seal`](Self::seal) sealed for the same purpose.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let fail = || {
            Error::Config(format!(
                "a stored secret ({purpose}) does not open with this service secret: the state database belongs to another service secret (restore its service.secret or set {SECRET_ENV})"
            ))
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[..NONCE_LEN]),
                Payload {
                    msg: &sealed[NONCE_LEN..],
                    aad: purpose.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_secret() {
        let s = ServiceSecret::random();
        let sealed = s.seal("vault-key:a", b"the key");
        assert_eq!(&*s.open("vault-key:a", &sealed).unwrap(), b"the key");
        assert!(s.open("vault-key:b", &sealed).is_err());
        assert!(ServiceSecret::random()
            .open("vault-key:a", &sealed)
            .is_err());
        assert!(!sealed.windows(7).any(|w| w == b"the key"));
    }

    #[test]
    fn the_secret_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServiceSecret::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(SECRET_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = ServiceSecret::load_or_create(dir.path()).unwrap();
        assert_eq!(&*b.open("x", &a.seal("x", b"v")).unwrap(), b"v");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ServiceSecret::load_or_create(dir.path()).err().unwrap();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
