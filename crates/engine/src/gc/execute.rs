//! Carrying out a garbage-collection plan: repack, condemn, reprieve,
//! delete, in that order, with each writer's index files kept in step
//! (see `writers` for why the order is safe).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::credential::objects::pack_prefix;
use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::index::PackRecord;
use crate::journal::Event;
use crate::pack::{pack_path, BlobKind, PackBuilder, SealedBlob, DATA_PACK_TARGET, PACK_MAGIC};
use crate::vault::{now_secs, Vault};

use super::writers::{self, SlotFiles};
use super::{GcPlan, PackAction};

/// What `execute` did.
#[derive(Debug, Clone, Default)]
pub struct GcOutcome {
    pub condemned: usize,
    pub repacked: usize,
    pub new_packs: usize,
    pub deleted: usize,
    pub reprieved: usize,
    pub bytes_deleted: u64,
    /// Writers' index files replaced to tell them what was condemned,
    /// reprieved or deleted.
    pub writer_files_rewritten: usize,
    /// Markers of finished or dead processes removed.
    pub stale_markers_removed: usize,
}

/// Carries out a plan (phase 1 for new candidates, phase 2 for due ones).
pub fn execute(vault: &Vault, plan: &GcPlan) -> Result<GcOutcome> {
    let mut out = GcOutcome::default();
    let mut writer_files = plan.writers.clone();
    let with = |actions: &[PackAction]| -> HashSet<ObjectId> {
        plan.packs
            .iter()
            .filter(|p| actions.contains(&p.action))
            .map(|p| p.pack)
            .collect()
    };

    let repacked = repack_all(vault, plan, &mut out)?;
    let mut leaving = with(&[PackAction::Condemn, PackAction::CondemnOrphan]);
    leaving.extend(repacked.done.iter().copied());
    let claims = writers::Claims {
        chosen: &plan.records,
        others: &plan.other_claims,
        made: repacked
            .for_writers
            .values()
            .flatten()
            .map(|r| (r.id, r.clone()))
            .collect(),
    };

    // Writers first learn of every condemnation (and get the packs their
    // blobs were repacked into): a flag that reaches a writer before the
    // journal does only costs it deduplication.
    let mut condemned = with(&[PackAction::Wait, PackAction::Delete, PackAction::Reprieve]);
    condemned.extend(leaving.iter().copied());
    out.writer_files_rewritten += writers::update(vault, &claims, &mut writer_files, |slot, f| {
        let mut next = f.clone();
        if let Some(made) = repacked.for_writers.get(slot) {
            next.packs.extend(made.iter().map(|r| r.id));
        }
        next.withdrawn = next
            .packs
            .iter()
            .filter(|id| condemned.contains(id))
            .copied()
            .collect();
        next
    })?;

    // Condemning changes nothing but the journal: the packs stay in the
    // index, so every point stays restorable, even one a backup committed
    // while this prune was deciding. Backups stop deduplicating against
    // them; they leave the index only when they are deleted.
    if !leaving.is_empty() {
        out.condemned = leaving.len();
        vault.record(Event::Condemned {
            packs: leaving.into_iter().collect(),
            at: now_secs(),
        })?;
    }
    let reprieved = with(&[PackAction::Reprieve]);
    if !reprieved.is_empty() {
        out.reprieved = reprieved.len();
        vault.record(Event::Reprieved {
            packs: reprieved.iter().copied().collect(),
        })?;
        out.writer_files_rewritten +=
            writers::update(vault, &claims, &mut writer_files, |_, f| SlotFiles {
                withdrawn: f.withdrawn.difference(&reprieved).copied().collect(),
                ..f.clone()
            })?;
    }

    out.writer_files_rewritten += delete_due(vault, plan, &claims, &mut writer_files, &mut out)?;
    out.stale_markers_removed = crate::locks::remove_stale(vault)?;
    Ok(out)
}

/// What repacking made: the packs it emptied, and the new packs of each
/// writer (the key holder's are indexed at once).
#[derive(Default)]
struct Repacked {
    done: Vec<ObjectId>,
    for_writers: BTreeMap<[u8; 8], Vec<PackRecord>>,
}

/// Repacks every pack the plan says: used blobs are copied as stored
/// (sealed, compressed); their ids and compression stay, only the pack and
/// offset change.
fn repack_all(vault: &Vault, plan: &GcPlan, out: &mut GcOutcome) -> Result<Repacked> {
    let mut repacked = Repacked::default();
    let mut own_new: Vec<PackRecord> = Vec::new();
    for p in plan.packs.iter().filter(|p| p.action == PackAction::Repack) {
        let Some(rec) = plan.records.get(&p.pack) else {
            continue;
        };
        let Some(new) = repack(vault, plan, rec)? else {
            continue;
        };
        for r in new {
            match r.session {
                None => own_new.push(r),
                Some(s) => repacked.for_writers.entry(s.slot()).or_default().push(r),
            }
        }
        repacked.done.push(p.pack);
        out.repacked += 1;
    }
    out.new_packs = own_new.len() + repacked.for_writers.values().map(Vec::len).sum::<usize>();
    if !own_new.is_empty() {
        vault.write_index(&own_new)?;
    }
    Ok(repacked)
}

/// Copies the used blobs of one pack into new packs. A writer's pack is
/// repacked under its own session (the key holder can seal under it), and
/// by what its own trailer says, not by the claim of an index file; a
/// claim that the pack does not bear out leaves it alone (`None`).
fn repack(vault: &Vault, plan: &GcPlan, rec: &PackRecord) -> Result<Option<Vec<PackRecord>>> {
    let path = pack_path(&rec.id);
    let bytes = vault.storage().get(&path)?;
    if ObjectId::of(&bytes) != rec.id {
        return Err(Error::corrupt(
            path,
            "content does not match its name; not repacking it (run `coffer check --read-data`)",
        ));
    }
    let (record, prefix, keys): (PackRecord, Vec<u8>, Arc<MasterKeys>) = match rec.session {
        None => (
            rec.clone(),
            PACK_MAGIC.to_vec(),
            Arc::new(vault.keys().clone()),
        ),
        Some(claimed) => {
            let size = bytes.len() as u64;
            let sealed = vault.trailer_of(&rec.id, size, &bytes, Some(&bytes))?;
            if sealed.session != Some(claimed) {
                tracing::warn!(pack = %rec.id, "a write-only writer's index file claims a pack that is not its own; not repacking it");
                return Ok(None);
            }
            (sealed, pack_prefix(&claimed), vault.session_keys(&claimed)?)
        }
    };
    let new_builder =
        || PackBuilder::with_capacity(record.kind, DATA_PACK_TARGET + (1 << 20), &prefix);
    let mut builder = new_builder();
    let mut new = Vec::new();
    for e in record.entries.iter().filter(|e| plan.marked(&e.id)) {
        let start = e.offset as usize;
        let end = start + e.stored_len as usize;
        let stored = bytes
            .get(start..end)
            .ok_or_else(|| Error::corrupt(&path, "blob lies outside the pack"))?;
        builder.add(SealedBlob {
            id: e.id,
            compression: e.compression,
            raw_len: e.raw_len,
            bytes: stored.to_vec(),
        });
        if builder.len() >= target(record.kind) {
            let full = std::mem::replace(&mut builder, new_builder());
            new.push(ship(vault, full, &keys, record.session)?);
        }
    }
    if !builder.is_empty() {
        new.push(ship(vault, builder, &keys, record.session)?);
    }
    Ok(Some(new))
}

/// Deletes the due packs: the index loses them first (one file listing
/// every other pack replaces the key holder's files that were read, and
/// each writer's files lose them likewise; files running backups wrote
/// since are not touched), then the packs go. Returns how many writers'
/// files were replaced.
fn delete_due(
    vault: &Vault,
    plan: &GcPlan,
    claims: &writers::Claims,
    writer_files: &mut writers::WriterFiles,
    out: &mut GcOutcome,
) -> Result<usize> {
    let due: Vec<&super::PackPlan> = plan
        .packs
        .iter()
        .filter(|p| p.action == PackAction::Delete)
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let gone: HashSet<ObjectId> = due.iter().map(|p| p.pack).collect();
    let own_lists_gone = plan
        .records
        .values()
        .any(|r| r.session.is_none() && gone.contains(&r.id));
    if own_lists_gone {
        let kept: Vec<PackRecord> = plan
            .records
            .values()
            .filter(|r| !gone.contains(&r.id) && r.session.is_none())
            .cloned()
            .collect();
        vault.write_index(&kept)?;
        for f in plan.index_files.iter().filter(|f| f.writer.is_none()) {
            vault.storage().delete(&f.path())?;
        }
    }
    let rewritten = writers::update(vault, claims, writer_files, |_, f| {
        let mut next = f.clone();
        next.packs.retain(|id| !gone.contains(id));
        next
    })?;
    for p in &due {
        vault.storage().delete(&pack_path(&p.pack))?;
        out.bytes_deleted += p.size;
    }
    out.deleted = due.len();
    vault.record(Event::PacksDeleted {
        packs: due.iter().map(|p| p.pack).collect(),
    })?;
    Ok(rewritten)
}

fn target(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => DATA_PACK_TARGET,
        BlobKind::Tree => DATA_PACK_TARGET / 2,
    }
}

fn ship(
    vault: &Vault,
    builder: PackBuilder,
    keys: &MasterKeys,
    session: Option<crate::credential::session::SessionHeader>,
) -> Result<PackRecord> {
    let pack = builder.finish(keys);
    vault.storage().put(&pack_path(&pack.id), pack.bytes)?;
    Ok(PackRecord {
        id: pack.id,
        kind: pack.kind,
        entries: pack.entries,
        session,
    })
}
