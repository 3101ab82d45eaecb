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

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::index::{encode_writer_index, IndexName, PackRecord, WriterIndex};
use crate::vault::Vault;

/// One writer's index files as garbage collection read them.
#[derive(Debug, Default, Clone)]
pub(crate) struct SlotFiles {
    /// The files whose content `records` and `withdrawn` stand for.
    pub files: Vec<IndexName>,
    /// Its claims, one record per pack.
    pub records: BTreeMap<ObjectId, PackRecord>,
    pub withdrawn: HashSet<ObjectId>,
}

impl SlotFiles {
    pub(crate) fn add(&mut self, name: IndexName, index: &WriterIndex) {
        self.files.push(name);
        for r in &index.records {
            self.records.entry(r.id).or_insert_with(|| r.clone());
        }
        self.withdrawn.extend(index.withdrawn.iter().copied());
    }
}

/// Every writer's files, by slot.
pub(crate) type WriterFiles = BTreeMap<[u8; 8], SlotFiles>;

/// Brings every writer's files to what `change` makes of each: records are
/// added or dropped, flags set or cleared. A slot whose content would not
/// change is left alone.
pub(crate) fn update(
    vault: &Vault,
    writers: &mut WriterFiles,
    change: impl Fn(&[u8; 8], &SlotFiles) -> SlotFiles,
) -> Result<usize> {
    let mut rewritten = 0;
    for (slot, files) in writers.iter_mut() {
        let mut next = change(slot, files);
        next.withdrawn.retain(|id| next.records.contains_key(id));
        if next.records.keys().eq(files.records.keys()) && next.withdrawn == files.withdrawn {
            continue;
        }
        replace(vault, slot, files, next)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Writes `next` as the slot's one index file, then deletes the files read
/// before (an empty slot keeps no file).
fn replace(vault: &Vault, slot: &[u8; 8], files: &mut SlotFiles, next: SlotFiles) -> Result<()> {
    let secret = vault.writer_secret(*slot)?;
    let mut written = Vec::new();
    if !next.records.is_empty() {
        let bytes = encode_writer_index(
            &secret,
            &vault.header().vault_id,
            slot,
            &WriterIndex {
                records: next.records.values().cloned().collect(),
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

/// The slot's files with `new` records added (unflagged).
pub(crate) fn with_records(files: &SlotFiles, new: &[PackRecord]) -> SlotFiles {
    let mut next = files.clone();
    for r in new {
        next.records.insert(r.id, r.clone());
    }
    next
}
