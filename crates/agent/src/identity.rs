//! What an agent keeps in its state directory: `agent.json`, mode 0600 in
//! a directory of mode 0700, written whole to a temporary file and renamed
//! so a crash never leaves half an identity. It holds the agent's secret
//! and its write-only credential, which is all a thief of the directory
//! gets: the right to add points for this host's items while the service
//! runs a job on it, and nothing to read.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE: &str = "agent.json";

/// A registered agent's identity.
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    /// The service's address.
    pub url: String,
    /// SHA-256 of the service's TLS certificate (hex); `None` for a
    /// service reached over plain HTTP.
    pub fingerprint: Option<String>,
    pub name: String,
    pub vault: String,
    pub secret: String,
    /// The write-only credential's text.
    pub credential: String,
    /// Whether this host runs the programs an item names (scripts,
    /// command items); off unless the host's administrator said so.
    #[serde(default)]
    pub allow_commands: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("vault", &self.vault)
            .finish_non_exhaustive()
    }
}

/// The state directory an agent uses when none is given: the system's
/// for root, else the user's data directory.
pub fn default_dir() -> PathBuf {
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if root {
        return PathBuf::from("/var/lib/coffer-agent");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("coffer-agent")
}

impl Identity {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Reads the identity; a directory readable by others is refused,
    /// since the identity is a secret.
    pub fn load(dir: &Path) -> Result<Identity> {
        let path = Self::path(dir);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Invalid(format!(
                    "{} holds no agent identity: register this host first (`coffer agent register --server URL --token TOKEN --state-dir {}`)",
                    dir.display(),
                    dir.display()
                )))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Invalid(format!(
                "{} is readable by other users; it holds the agent's secret: `chmod 600 {}` and re-key the agent (`coffer agent rekey {}`)",
                path.display(),
                path.display(),
                dir.display()
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!("{} is not an agent identity: {e}", path.display()))
        })
    }

    /// Whether `dir` holds an identity already.
    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).exists()
    }

    /// Writes the identity (see the module documentation).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
        let path = Self::path(dir);
        let staged = dir.join(format!(".{FILE}.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode the identity: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)
            .map_err(|e| Error::io(&staged, e))?;
        f.write_all(&text).map_err(|e| Error::io(&staged, e))?;
        f.sync_all().map_err(|e| Error::io(&staged, e))?;
        std::fs::rename(&staged, &path).map_err(|e| Error::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let id = Identity {
            url: "https://127.0.0.1:8420".into(),
            fingerprint: Some("ab".repeat(32)),
            name: "web1".into(),
            vault: "main".into(),
            secret: "cfa_x".into(),
            credential: "cred".into(),
            allow_commands: false,
        };
        id.save(&state).unwrap();
        let mode = std::fs::metadata(Identity::path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Identity::load(&state).unwrap().name, "web1");
        std::fs::set_permissions(
            Identity::path(&state),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let refused = Identity::load(&state).unwrap_err().to_string();
        assert!(refused.contains("readable by other users"), "{refused}");
        assert!(!format!("{id:?}").contains("cfa_x"));
    }
}
