//! The service's TLS certificate as agents know it: by the SHA-256 of its
//! DER encoding, which a registration token carries so that a host trusts
//! exactly this service, whoever signed its certificate (or nobody did).
//!
//! With `tls_self_signed` and no certificate configured, the service makes
//! one for itself at first start (`<data_dir>/tls/`, the key mode 0600)
//! and keeps it: its fingerprint must not change, or every agent would
//! refuse the service.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::Digest;

use crate::error::{Error, Result};

/// The certificate and key under `data_dir/tls`, made when missing.
pub fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    crate::db::make_private_dir(&dir)?;
    let names = vec![
        "localhost".to_string(),
        coffer_engine::host::hostname(),
        "127.0.0.1".to_string(),
    ];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Config(format!("cannot make a TLS certificate: {e}")))?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    write_private(&cert, made.cert.pem().as_bytes())?;
    tracing::info!(certificate = %cert.display(), "made a self-signed TLS certificate");
    Ok((cert, key))
}

/// Puts back a certificate and key a recovery brought (see `recovery`).
pub fn restore_identity(dir: &Path, cert: &str, key: &str) -> Result<()> {
    crate::db::make_private_dir(dir)?;
    write_private(&dir.join("key.pem"), key.as_bytes())?;
    write_private(&dir.join("cert.pem"), cert.as_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// The SHA-256 of the first certificate in a PEM file, in hex.
pub fn fingerprint(cert_pem: &Path) -> Result<String> {
    let der = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| Error::Config(format!("{}: {e}", cert_pem.display())))?
        .next()
        .ok_or_else(|| Error::Config(format!("{}: no certificate in it", cert_pem.display())))?
        .map_err(|e| Error::Config(format!("{}: {e}", cert_pem.display())))?;
    Ok(hex::encode(sha2::Sha256::digest(der.as_ref())))
}
