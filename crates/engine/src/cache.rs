//! The client-side cache: immutable vault objects (index files, recovery
//! points, tree packs) kept on local disk under `<cache dir>/<vault id>/`.
//!
//! Objects are named by the hash of their bytes, so a cached copy is checked
//! against its name on every read and silently refetched when it does not
//! match. The cache is never authoritative: deleting it costs only speed.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// A cache under `root/<vault id>`, or none at all.
    pub fn new(root: Option<&Path>, vault_id: &str) -> Self {
        Cache {
            dir: root.map(|r| r.join(vault_id)),
        }
    }

    /// Reads an object named by its hash, from the cache when a valid copy is
    /// there, else from storage (then keeping a copy).
    pub fn fetch(&self, storage: &Storage, path: &str, id: &ObjectId) -> Result<Vec<u8>> {
        if let Some(dir) = &self.dir {
            let local = dir.join(path);
            if let Ok(bytes) = std::fs::read(&local) {
                if ObjectId::of(&bytes) == *id {
                    return Ok(bytes);
                }
                tracing::warn!(path = %local.display(), "cached copy is damaged; fetching it again");
                let _ = std::fs::remove_file(&local);
            }
        }
        let bytes = storage.get(path)?;
        if ObjectId::of(&bytes) != *id {
            return Err(Error::corrupt(
                path,
                "content does not match its name (hash mismatch)",
            ));
        }
        self.keep(path, &bytes);
        Ok(bytes)
    }

    /// Stores a copy of an object just written or read. Failing to cache is
    /// never an error: the cache only saves time.
    pub fn keep(&self, path: &str, bytes: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let local = dir.join(path);
        let result = (|| -> std::io::Result<()> {
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = local.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &local)
        })();
        if let Err(e) = result {
            tracing::debug!(path = %local.display(), error = %e, "could not write to the cache");
        }
    }
}
