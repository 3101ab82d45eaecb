//! Where a restore's trees and chunks come from. Usually the vault: chunks
//! are grouped by pack and read in coalesced ranges (gaps under 256 KiB,
//! at most 2 MiB each) on the restore's worker threads, every blob
//! authenticated and its id recomputed. An agent restoring onto its own
//! host has no key: a service reads the vault for it and sends the
//! plaintext over its authenticated channel, with its own `Source`. Either
//! way the restore's walk, confinement, metadata, sparse files and hard
//! links are the same code.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::index::Index;
use crate::pack::{pack_path, BlobEntry};
use crate::tree::Tree;
use crate::vault::Vault;

/// Blobs closer than this in one pack are read with one request.
const RANGE_GAP: u64 = 256 << 10;
/// The longest range read at once.
const MAX_RANGE: u64 = 2 << 20;

/// Where one chunk goes: a file of the batch (by number) and an offset.
pub type Targets = Vec<(usize, u64)>;

type PackBlobs = Vec<(BlobEntry, Targets)>;

/// A restore's trees and chunks.
pub trait Source: Sync {
    /// A directory of the point.
    fn tree(&self, id: &ChunkId) -> Result<Tree>;

    /// One chunk's plaintext, for reading a file from start to end (a
    /// stream piped into an item's restore, a download).
    fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>>;

    /// Reads each wanted chunk and hands its plaintext, or why it could
    /// not be read, to `deliver` with the places that need it. May run
    /// `deliver` on `workers`' threads, several at once.
    fn deliver(
        &self,
        wanted: Vec<(ChunkId, Targets)>,
        workers: &rayon::ThreadPool,
        deliver: &(dyn Fn(&Targets, Result<&[u8]>) + Sync),
    );
}

/// The vault itself, with its loaded index.
pub struct VaultSource<'a> {
    pub vault: &'a Vault,
    pub index: &'a Index,
}

impl Source for VaultSource<'_> {
    fn tree(&self, id: &ChunkId) -> Result<Tree> {
        self.vault.read_tree(self.index, id)
    }

    fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.vault.read_blob(self.index, id)
    }

    fn deliver(
        &self,
        wanted: Vec<(ChunkId, Targets)>,
        workers: &rayon::ThreadPool,
        deliver: &(dyn Fn(&Targets, Result<&[u8]>) + Sync),
    ) {
        // Grouped by pack, in pack and offset order.
        let mut by_pack: BTreeMap<ObjectId, PackBlobs> = BTreeMap::new();
        for (id, targets) in wanted {
            match self.index.get(&id) {
                Some(loc) => by_pack
                    .entry(loc.pack)
                    .or_default()
                    .push((loc.entry, targets)),
                None => deliver(
                    &targets,
                    Err(Error::Invalid(format!(
                        "chunk {} is missing from the vault",
                        &id.to_hex()[..16]
                    ))),
                ),
            }
        }
        let packs: Vec<(ObjectId, PackBlobs)> = by_pack
            .into_iter()
            .map(|(id, mut blobs)| {
                blobs.sort_by_key(|(e, _)| e.offset);
                (id, blobs)
            })
            .collect();
        workers.install(|| {
            packs
                .par_iter()
                .for_each(|(pack, blobs)| self.read_pack(pack, blobs, deliver))
        });
    }
}

impl VaultSource<'_> {
    /// Reads one pack's wanted blobs in few requests.
    fn read_pack(
        &self,
        pack: &ObjectId,
        blobs: &PackBlobs,
        deliver: &(dyn Fn(&Targets, Result<&[u8]>) + Sync),
    ) {
        let mut start = 0;
        while start < blobs.len() {
            let mut end = start + 1;
            while end < blobs.len() {
                let prev = &blobs[end - 1].0;
                let next = &blobs[end].0;
                let gap_too_wide =
                    next.offset as u64 > prev.offset as u64 + prev.stored_len as u64 + RANGE_GAP;
                let too_long = next.offset as u64 + next.stored_len as u64
                    - blobs[start].0.offset as u64
                    > MAX_RANGE;
                if gap_too_wide || too_long {
                    break;
                }
                end += 1;
            }
            let group = &blobs[start..end];
            let from = group[0].0.offset as u64;
            let last = &group[group.len() - 1].0;
            let to = last.offset as u64 + last.stored_len as u64;
            match self
                .vault
                .storage()
                .get_range(&pack_path(pack), from, to - from)
            {
                Ok(bytes) => {
                    for (entry, targets) in group {
                        let lo = (entry.offset as u64 - from) as usize;
                        let stored = &bytes[lo..lo + entry.stored_len as usize];
                        match self.vault.open_blob(pack, entry, stored) {
                            Ok(plain) => deliver(targets, Ok(&plain)),
                            Err(err) => deliver(targets, Err(err)),
                        }
                    }
                }
                Err(err) => {
                    let why = err.to_string();
                    for (_, targets) in group {
                        deliver(targets, Err(Error::Invalid(why.clone())));
                    }
                }
            }
            start = end;
        }
    }
}
