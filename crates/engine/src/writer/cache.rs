//! What a write-only writer keeps on its own disk between backups: per item,
//! its last point and that point's trees, which it cannot read back from
//! the vault. (Copies of its own index files live in an ordinary `Cache`
//! beside it.) Losing this costs the next backup a read of every source
//! file, not an upload: the writer still finds its chunks in its index
//! files. Trees are checked against their ids when loaded, so a damaged
//! file is ignored rather than believed.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::credential::secret::WriterSecret;
use crate::ids::{ChunkId, ObjectId};
use crate::tree::Timestamp;

/// An item's last point, as its writer remembers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastPoint {
    pub item: String,
    pub id: ObjectId,
    pub time: Timestamp,
    pub duration_ms: u64,
    pub tree: ChunkId,
    /// Every tree of the point, by id, as stored.
    pub trees: Vec<(ChunkId, Vec<u8>)>,
}

/// The writer's own state directory for one vault and credential.
#[derive(Debug, Clone)]
pub struct WriterCache {
    dir: Option<PathBuf>,
}

impl WriterCache {
    /// `root/<vault id>/writer-<slot id>/items`, or nowhere.
    pub fn new(root: Option<&Path>, vault_id: &str, slot_id: &str) -> Self {
        WriterCache {
            dir: root.map(|r| {
                r.join(vault_id)
                    .join(format!("writer-{slot_id}"))
                    .join("items")
            }),
        }
    }

    fn file(&self, item: &str) -> Option<PathBuf> {
        let name = blake3::hash(item.as_bytes()).to_hex();
        self.dir.as_ref().map(|d| d.join(name.as_str()))
    }

    /// The item's last point with its trees, when a sound copy is kept.
    pub fn last_point(
        &self,
        item: &str,
        secret: &WriterSecret,
    ) -> Option<(LastPoint, HashMap<ChunkId, Vec<u8>>)> {
        let bytes = std::fs::read(self.file(item)?).ok()?;
        let last: LastPoint = postcard::from_bytes(&bytes).ok()?;
        if last.item != item {
            return None;
        }
        let mut trees = HashMap::with_capacity(last.trees.len());
        for (id, plain) in &last.trees {
            if secret.chunk_id(plain) != *id {
                tracing::warn!(
                    item,
                    "the cached trees of the last point are damaged; reading every file again"
                );
                return None;
            }
            trees.insert(*id, plain.clone());
        }
        Some((last, trees))
    }

    /// Remembers the item's new point; failing to is never an error (the
    /// next backup then reads every file).
    pub fn keep_last_point(&self, last: &LastPoint) {
        let (Some(dir), Some(file)) = (&self.dir, self.file(&last.item)) else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            out.write_all(&postcard::to_stdvec(last).unwrap_or_default())?;
            out.sync_all()?;
            std::fs::rename(&tmp, &file)
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "could not keep the last point in the writer's cache; the next backup reads every file");
        }
    }
}
