//! A backup by a key holder: into the vault it opened.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::chunker::Chunker;
use crate::crypto::MasterKeys;
use crate::dict::Dictionary;
use crate::error::Result;
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, PackRecord};
use crate::pack::PACK_MAGIC;
use crate::point::Manifest;
use crate::vault::Vault;

use super::destination::{Destination, Parent, Start};

impl Destination for Vault {
    fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    fn storage(&self) -> &crate::storage::Storage {
        &self.storage
    }

    fn pack_prefix(&self) -> &[u8] {
        PACK_MAGIC
    }

    fn session(&self) -> Option<crate::credential::SessionHeader> {
        None
    }

    fn writes_dictionaries(&self) -> bool {
        Vault::writes_dictionaries(self)
    }

    fn format_version(&self) -> u16 {
        self.header().version
    }

    fn writing_dictionary(&self) -> Option<Arc<Dictionary>> {
        Vault::writing_dictionary(self)
    }

    fn add_dictionary(&self, bytes: &[u8]) -> Result<Option<Arc<Dictionary>>> {
        Vault::add_dictionary(self, bytes)
    }

    fn keep_tree_pack(&self, path: &str, bytes: &[u8]) {
        self.cache.keep(path, bytes);
    }

    fn keep_tree(&self, _id: ChunkId, _plain: &[u8]) {
        // The vault's own trees are read back from their packs.
    }

    fn previous_blob(&self, index: &Index, id: &ChunkId) -> Result<Vec<u8>> {
        self.read_blob(index, id)
    }

    fn start(&self, item: &str) -> Result<Start> {
        // The marker goes up before the index is read: a prune that condemns
        // packs after this moment waits for this backup before deleting them.
        let marker = if self.has_journal() {
            Some(crate::locks::hold(self, crate::locks::Activity::Backup)?)
        } else {
            None
        };
        // Condemned packs are neither deduplicated against nor adopted: a later
        // prune may delete them once this backup is over. A pack condemned
        // after this read waits for this backup (its marker is up) and is
        // reprieved if the new point uses it.
        let condemned = if self.has_journal() {
            self.state()?.condemned
        } else {
            Default::default()
        };
        let mut index = self.load_index_excluding(crate::index::Purpose::Dedup, &condemned)?;
        let adopted = adopt_orphans(self, &index, &condemned)?;
        if !adopted.is_empty() {
            tracing::info!(
                packs = adopted.len(),
                "reusing packs left by an interrupted backup"
            );
            index.extend(adopted.iter().cloned());
        }
        // Only the key holder's own points: a write-only writer's point
        // says what its files held, and a key holder that took its word
        // for unchanged files would store whatever that writer claimed.
        let parent = self
            .points()?
            .into_iter()
            .filter(|p| p.manifest.item == item && p.writer.is_none())
            .max_by_key(|p| p.manifest.time)
            .map(|p| Parent {
                id: p.id,
                time: p.manifest.time,
                duration_ms: p.manifest.stats.duration_ms,
                tree: p.manifest.tree,
            });
        Ok(Start {
            marker,
            index,
            adopted,
            parent,
        })
    }

    fn write_index(&self, records: &[PackRecord]) -> Result<u64> {
        Ok(Vault::write_index(self, records)?.1)
    }

    fn write_point(&self, manifest: &Manifest, expire_at: Option<i64>) -> Result<ObjectId> {
        Vault::write_point(self, manifest, expire_at)
    }
}

/// Reads the trailers of packs that no index lists (left by an interrupted or
/// still-running backup) so their blobs can be reused. A write-only
/// writer's packs are left alone: they belong to that writer's index.
fn adopt_orphans(
    vault: &Vault,
    index: &Index,
    condemned: &BTreeMap<ObjectId, i64>,
) -> Result<Vec<PackRecord>> {
    let orphans: Vec<ObjectId> = vault
        .storage
        .list("packs/")?
        .iter()
        .filter_map(|o| o.path.rsplit('/').next().and_then(ObjectId::parse))
        .filter(|id| !index.has_pack(id) && !condemned.contains_key(id))
        .collect();
    Ok(orphans
        .par_iter()
        .filter_map(|id| match vault.read_trailer(id) {
            // Indexed as the key holder's, its blobs would be opened under
            // the vault's keys and no longer under its session's.
            Ok(r) if r.session.is_some() => None,
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(pack = %id, error = %e, "ignoring an unreadable unindexed pack");
                None
            }
        })
        .collect())
}
