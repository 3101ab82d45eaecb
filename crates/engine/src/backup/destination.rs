//! Where a backup goes. The pipeline is the same for the vault opened with
//! one of its keys and for a vault seen through a write-only credential
//! (`crate::writer::WriteOnlyVault`); what differs is asked of the
//! destination: the keys that seal this backup's objects and name its
//! chunks, how its packs begin, whether it uses compression dictionaries,
//! what it starts from (marker, the index it deduplicates against, the
//! previous point and its trees) and how it commits.

use std::sync::Arc;

use crate::chunker::Chunker;
use crate::credential::session::SessionHeader;
use crate::crypto::MasterKeys;
use crate::dict::Dictionary;
use crate::error::Result;
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, PackRecord};
use crate::locks::Held;
use crate::point::Manifest;
use crate::tree::{Timestamp, Tree};

/// The point a backup is taken against: unchanged files reuse its chunks.
#[derive(Debug, Clone)]
pub struct Parent {
    pub id: ObjectId,
    pub time: Timestamp,
    pub duration_ms: u64,
    pub tree: ChunkId,
}

/// What a backup starts from.
pub struct Start {
    /// The activity marker, up before the index was read.
    pub marker: Option<Held>,
    /// The chunks this backup may deduplicate against.
    pub index: Index,
    /// Packs an interrupted backup left that this one lists in its index.
    pub adopted: Vec<PackRecord>,
    pub parent: Option<Parent>,
}

pub trait Destination: Sync {
    /// The keys that seal this backup's objects and name its chunks.
    fn keys(&self) -> &MasterKeys;
    fn chunker(&self) -> &Chunker;
    fn storage(&self) -> &crate::storage::Storage;
    /// What every pack of this backup starts with.
    fn pack_prefix(&self) -> &[u8];
    /// The write-only session this backup seals under, if it is one.
    fn session(&self) -> Option<SessionHeader>;
    fn writes_dictionaries(&self) -> bool;
    /// The vault's format version, as its header says.
    fn format_version(&self) -> u16;
    /// The dictionary new small chunks are compressed with, if any.
    fn writing_dictionary(&self) -> Option<Arc<Dictionary>>;
    /// Stores a trained dictionary; `None` when it was not kept.
    fn add_dictionary(&self, bytes: &[u8]) -> Result<Option<Arc<Dictionary>>>;
    /// A tree pack about to be uploaded.
    fn keep_tree_pack(&self, path: &str, bytes: &[u8]);
    /// A tree blob (directory or disk segment) of the new point, as the
    /// backup made it (stored now or deduplicated against one stored before).
    fn keep_tree(&self, id: ChunkId, plain: &[u8]);
    /// A tree blob (a directory, a disk's segment) of the parent point.
    fn previous_blob(&self, index: &Index, id: &ChunkId) -> Result<Vec<u8>>;
    /// A directory of the parent point.
    fn previous_tree(&self, index: &Index, id: &ChunkId) -> Result<Tree> {
        Tree::decode(&self.previous_blob(index, id)?).ok_or_else(|| {
            crate::error::Error::corrupt(format!("tree {}", id.to_hex()), "undecodable tree")
        })
    }
    /// The marker, the index and the parent for a backup of `item`.
    fn start(&self, item: &str) -> Result<Start>;
    /// Stores the index file of the packs written and adopted; its size.
    fn write_index(&self, records: &[PackRecord]) -> Result<u64>;
    /// Stores the manifest: the commit point. Returns the point's id.
    fn write_point(&self, manifest: &Manifest, expire_at: Option<i64>) -> Result<ObjectId>;
}
