//! Telling write-only writers what garbage collection did to their packs.
//!
//! A writer deduplicates against its own index files and never reads the
//! journal, so the journal's condemnations would not reach it: a pack it
//! still trusted could be deleted under it. A key holder can open and seal
//! a writer's index files (it recomputes the writer's index key from the
//! slot), so garbage collection keeps each writer's files in step with the
//! journal: a condemned pack is flagged *withdrawn* in them before the
//! condemnation is journalled (FORMAT.md §5a), unflagged after a reprieve
//! is, and dropped from them before it is deleted. A replacement file is
//! always written before the files it replaces are deleted, and only files
//! that were read are replaced: one a running backup adds meanwhile stays.
//!
//! Why the order is safe: a writer's backup writes its marker, then lists
//! its index files. If it read a file from before a pack was flagged, it
//! listed before the flag existed, so its marker started before the
//! condemnation's time and holds the deletion off until it ends; if its
//! new point then uses the pack, the next prune reprieves it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::index::{encode_writer_index, IndexName, PackRecord, WriterIndex};
use crate::vault::Vault;

/// One writer's index files as garbage collection read them. Only pack
/// names are kept here; the records are the plan's (a writer-heavy vault
/// would otherwise hold every writer's records twice while it prunes).
#[derive(Debug, Default, Clone)]
pub(crate) struct SlotFiles {
    /// The files whose content `packs` and `withdrawn` stand for.
    pub files: Vec<IndexName>,
    /// The packs it claims.
    pub packs: BTreeSet<ObjectId>,
    pub withdrawn: HashSet<ObjectId>,
}

impl SlotFiles {
    pub(crate) fn add(&mut self, name: IndexName, index: &WriterIndex) {
        self.files.push(name);
        self.packs.extend(index.records.iter().map(|r| r.id));
        self.withdrawn.extend(index.withdrawn.iter().copied());
    }
}

/// Every writer's files, by slot.
pub(crate) type WriterFiles = BTreeMap<[u8; 8], SlotFiles>;

/// Where a writer's claims are found when its file is written anew: the
/// plan's records (a pack's chosen record, and the other claims), and the
/// packs this run's repacking made.
pub(crate) struct Claims<'a> {
    pub chosen: &'a BTreeMap<ObjectId, PackRecord>,
    pub others: &'a [PackRecord],
    pub made: BTreeMap<ObjectId, PackRecord>,
}

impl Claims<'_> {
    /// The record that `slot`'s files give for `pack`.
    fn of(&self, slot: &[u8; 8], pack: &ObjectId) -> Option<&PackRecord> {
        let mine = |r: &&PackRecord| r.session.is_some_and(|s| s.slot() == *slot);
        self.made
            .get(pack)
            .filter(mine)
            .or_else(|| self.chosen.get(pack).filter(mine))
            .or_else(|| self.others.iter().filter(|r| r.id == *pack).find(mine))
    }
}

/// Brings every writer's files to what `change` makes of each: packs are
/// added or dropped, flags set or cleared. A slot whose content would not
/// change is left alone.
pub(crate) fn update(
    vault: &Vault,
    claims: &Claims,
    writers: &mut WriterFiles,
    change: impl Fn(&[u8; 8], &SlotFiles) -> SlotFiles,
) -> Result<usize> {
    let mut rewritten = 0;
    for (slot, files) in writers.iter_mut() {
        let mut next = change(slot, files);
        next.withdrawn.retain(|id| next.packs.contains(id));
        if next.packs == files.packs && next.withdrawn == files.withdrawn {
            continue;
        }
        replace(vault, claims, slot, files, next)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Writes `next` as the slot's one index file, then deletes the files read
/// before (an empty slot keeps no file).
fn replace(
    vault: &Vault,
    claims: &Claims,
    slot: &[u8; 8],
    files: &mut SlotFiles,
    next: SlotFiles,
) -> Result<()> {
    let secret = vault.writer_secret(*slot)?;
    let records: Vec<PackRecord> = next
        .packs
        .iter()
        .map(|id| {
            claims.of(slot, id).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "internal: no record of pack {id} for write-only slot {}",
                    hex::encode(slot)
                ))
            })
        })
        .collect::<Result<_>>()?;
    let mut written = Vec::new();
    if !records.is_empty() {
        let bytes = encode_writer_index(
            &secret,
            &vault.header().vault_id,
            slot,
            &WriterIndex {
                records,
                withdrawn: next.withdrawn.clone(),
            },
        );
        let name = IndexName {
            id: ObjectId::of(&bytes),
            writer: Some(*slot),
        };
        vault.storage().put(&name.path(), bytes)?;
        written.push(name);
    }
    for old in files.files.iter().filter(|f| !written.contains(f)) {
        match vault.storage().delete(&old.path()) {
            Ok(()) | Err(Error::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    *files = SlotFiles {
        files: written,
        ..next
    };
    Ok(())
}
