//! Garbage collection: space comes back without stopping backups.
//!
//! Mark: every chunk reachable from a live or soft-deleted point is marked,
//! by the first 8 bytes of its id (8 bytes of memory per reachable chunk; a
//! collision can only keep an unused blob, never drop a used one).
//!
//! Sweep, in two phases so that a backup running at the same time never
//! loses a chunk it relies on:
//! 1. Packs with no marked blob, packs no index lists (left by interrupted
//!    backups) and packs whose marked share is below the repack threshold
//!    (after their marked blobs were copied, still sealed, into new packs)
//!    are journalled as condemned. Nothing else changes: they stay in the
//!    index, so every point stays restorable, including one a backup
//!    committed while this prune was deciding; backups stop deduplicating
//!    against them.
//! 2. A condemned pack is deleted by a later prune once the grace period has
//!    passed and no backup that started before its condemnation is still
//!    running (activity markers, see `locks`), unless the mark then finds a
//!    blob of it used and present in no other pack: then it is reprieved.
//!    Deletion first replaces the index files that were read by one that
//!    lists every other pack, then deletes the packs.
//!
//! Memory: the index files' records (48 bytes per blob) plus the mark (8
//! bytes per reachable chunk), plus one pack at a time while repacking.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;

use crate::disk_map::Block;
use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, IndexName, PackRecord, WriterIndex};
use crate::journal::VaultState;
use crate::locks::{self, Activity};
use crate::tree::NodeKind;
use crate::vault::{now_secs, Vault};

/// Default time a condemned pack waits before deletion.
pub const DEFAULT_GRACE_SECS: i64 = 24 * 3600;
/// Packs whose used share (in stored bytes) is below this are repacked.
pub const DEFAULT_REPACK_BELOW: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    pub grace_secs: i64,
    pub repack_below: f64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_secs: DEFAULT_GRACE_SECS,
            repack_below: DEFAULT_REPACK_BELOW,
        }
    }
}

/// What one pack's fate is, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackAction {
    /// No blob of it is used: condemned, deleted after the grace period.
    Condemn,
    /// Listed by no index file (an interrupted backup's leftovers).
    CondemnOrphan,
    /// Its used blobs move to new packs; then condemned.
    Repack,
    /// Condemned earlier and due: deleted now.
    Delete,
    /// Condemned earlier and due, but a point uses it or an index lists it.
    Reprieve,
    /// Condemned earlier; not due yet.
    Wait,
}

#[derive(Debug, Clone)]
pub struct PackPlan {
    pub pack: ObjectId,
    pub action: PackAction,
    /// Stored bytes of the pack (0 when unknown).
    pub size: u64,
    /// Stored bytes of used blobs.
    pub used: u64,
    pub note: String,
}

#[derive(Debug, Clone, Default)]
pub struct GcPlan {
    pub packs: Vec<PackPlan>,
    pub packs_total: usize,
    pub reachable_chunks: usize,
    pub index_files: Vec<IndexName>,
    /// Every pack the index files list, by id (deduplicated).
    records: BTreeMap<ObjectId, PackRecord>,
    /// The claims on packs beyond `records` (only where a writer lists a
    /// pack that is not its own).
    other_claims: Vec<PackRecord>,
    /// Each writer's index files as read, for telling it what was condemned.
    writers: WriterFiles,
    mark: Vec<u64>,
}

impl GcPlan {
    pub fn bytes(&self, action: PackAction) -> u64 {
        self.packs
            .iter()
            .filter(|p| p.action == action)
            .map(|p| {
                p.size.saturating_sub(if action == PackAction::Repack {
                    p.used
                } else {
                    0
                })
            })
            .sum()
    }

    pub fn count(&self, action: PackAction) -> usize {
        self.packs.iter().filter(|p| p.action == action).count()
    }

    fn marked(&self, id: &ChunkId) -> bool {
        self.mark.binary_search(&prefix(id)).is_ok()
    }
}

pub(crate) fn prefix(id: &ChunkId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_le_bytes(b)
}

/// Marks every chunk of every point not purged.
pub(crate) fn mark(vault: &Vault, roots: Vec<ChunkId>, index: &Index) -> Result<Vec<u64>> {
    let mut seen_trees: HashSet<ChunkId> = HashSet::new();
    let mut mark: Vec<u64> = Vec::new();
    let mut todo: Vec<ChunkId> = roots;
    while !todo.is_empty() {
        let batch: Vec<ChunkId> = todo.drain(..).filter(|t| seen_trees.insert(*t)).collect();
        // A few trees at a time: a level of the walk across many points can
        // be wide, and decoded trees are much larger than their ids.
        for group in batch.chunks(64) {
            let trees: Vec<_> = group
                .par_iter()
                .map(|id| vault.read_tree(index, id).map(|t| (*id, t)))
                .collect::<Result<_>>()?;
            for (id, tree) in trees {
                mark.push(prefix(&id));
                for node in tree.nodes {
                    match node.kind {
                        NodeKind::Dir { tree } => todo.push(tree),
                        NodeKind::File { extents, .. } => {
                            for e in extents {
                                mark.extend(e.chunks.iter().map(|c| prefix(&c.id)));
                            }
                        }
                        NodeKind::Disk { segments, .. } => {
                            for s in segments {
                                if seen_trees.insert(s) {
                                    mark.push(prefix(&s));
                                    let segment = vault.read_segment(index, &s)?;
                                    mark.extend(segment.blocks.iter().filter_map(|b| match b {
                                        Block::Data(id) => Some(prefix(id)),
                                        Block::Hole => None,
                                    }));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    mark.par_sort_unstable();
    mark.dedup();
    Ok(mark)
}

/// Decides every pack. Markers and the grace period live on the real clock
/// (they are about processes running now), whatever time retention was
/// judged at. The markers are listed before the points are: a backup absent
/// from them had committed its point before the mark began.
pub fn plan(vault: &Vault, state: &VaultState, opts: &GcOptions) -> Result<GcPlan> {
    let clock = now_secs();
    let active_backups = running_backups(vault, state, clock)?;

    // Points before index files: a backup writes its index file before its
    // manifest, so every point listed here finds its blobs in the files
    // listed next.
    let roots: Vec<ChunkId> = vault
        .points_strict()?
        .into_iter()
        .filter(|p| !state.purged.contains(&p.id))
        .map(|p| p.manifest.tree)
        .collect();
    let index_files = vault.index_files()?;
    let Records {
        by_pack: records,
        other_claims,
        contested,
        writers,
    } = read_records(vault, &index_files)?;
    // Points committed by backups that deduplicated against condemned packs
    // may have trees there: the mark must be able to read them.
    let condemned_records: Vec<PackRecord> = state
        .condemned
        .keys()
        .filter(|id| !records.contains_key(id))
        .filter_map(|id| vault.read_trailer(id).ok())
        .collect();
    let index = Index::build(
        records
            .values()
            .cloned()
            .chain(other_claims.iter().cloned())
            .chain(condemned_records),
    );
    let mark = mark(vault, roots, &index)?;
    drop(index);

    let stored: BTreeMap<ObjectId, u64> = vault
        .storage()
        .list("packs/")?
        .into_iter()
        .filter_map(|o| {
            o.path
                .rsplit('/')
                .next()
                .and_then(ObjectId::parse)
                .map(|id| (id, o.size))
        })
        .collect();

    let mut plan = GcPlan {
        packs_total: stored.len(),
        reachable_chunks: mark.len(),
        index_files,
        mark,
        ..GcPlan::default()
    };
    judge_indexed(&mut plan, &records, &contested, &stored, state, opts);
    let condemned = Condemned {
        vault,
        records: &records,
        stored: &stored,
        active_backups: &active_backups,
        clock,
        grace_secs: opts.grace_secs,
    };
    condemned.judge(&mut plan, state);
    plan.records = records;
    plan.other_claims = other_claims;
    plan.writers = writers;
    Ok(plan)
}

/// When each backup that is running now started, read from the markers.
/// An unreadable marker may be a backup: it is kept as an error, which
/// blocks deletion like a running backup. A revoked credential's markers
/// count for nothing: whatever it writes from then on is untrusted anyway,
/// and a thief must not hold deletion off with them.
fn running_backups(vault: &Vault, state: &VaultState, clock: i64) -> Result<Vec<Result<i64>>> {
    Ok(locks::markers(vault)?
        .into_iter()
        .filter(|f| {
            !f.writer
                .as_ref()
                .is_some_and(|w| state.revoked.contains_key(w))
        })
        .filter_map(|f| match f.marker {
            Ok(m) if m.activity == Activity::Backup && !m.is_stale(clock) => Some(Ok(m.started)),
            Ok(_) => None,
            Err(_) => Some(Err(Error::Invalid(format!("unreadable marker {}", f.path)))),
        })
        .collect())
}

/// What the index files say: one record per pack (the key holder's own
/// when it lists the pack, else a writer's claim), the packs that several
/// writers claim and the key holder does not (judged by nobody: which
/// claim is true is not known without reading the pack), and each
/// writer's files as read.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub by_pack: BTreeMap<ObjectId, PackRecord>,
    /// The other claims, for finding blobs: a lying claim may have been
    /// met first.
    pub other_claims: Vec<PackRecord>,
    pub contested: HashSet<ObjectId>,
    pub writers: WriterFiles,
}

/// Every pack record of the index files, 16 files read at a time.
fn read_records(vault: &Vault, index_files: &[IndexName]) -> Result<Records> {
    let mut out = Records::default();
    let mut claimed_by: BTreeMap<ObjectId, [u8; 8]> = BTreeMap::new();
    for group in index_files.chunks(16) {
        // A writer's file that does not open is left out (and left in
        // place): the packs it lists look unindexed and are condemned, and
        // a pack a point uses is reprieved by its own trailer before it
        // could be deleted.
        let read: Vec<Option<(IndexName, WriterIndex)>> = group
            .par_iter()
            .map(|name| Ok(vault.read_index_file_or_skip(name)?.map(|i| (*name, i))))
            .collect::<Result<_>>()?;
        for (name, index) in read.into_iter().flatten() {
            if let Some(slot) = name.writer {
                out.writers.entry(slot).or_default().add(name, &index);
            }
            for r in index.records {
                match (&r.session, out.by_pack.get(&r.id)) {
                    (_, None) => {
                        if let Some(s) = r.session {
                            claimed_by.insert(r.id, s.slot());
                        }
                        out.by_pack.insert(r.id, r);
                    }
                    (None, Some(existing)) if existing.session.is_some() => {
                        out.contested.remove(&r.id);
                        if let Some(claim) = out.by_pack.insert(r.id, r) {
                            out.other_claims.push(claim);
                        }
                    }
                    (Some(s), Some(existing)) => {
                        if existing.session.is_some() && claimed_by.get(&r.id) != Some(&s.slot()) {
                            out.contested.insert(r.id);
                        }
                        out.other_claims.push(r);
                    }
                    (None, Some(_)) => {}
                }
            }
        }
    }
    Ok(out)
}

/// Decides the packs that are not condemned yet: condemn the unused and
/// the orphans, repack the mostly unused.
fn judge_indexed(
    plan: &mut GcPlan,
    records: &BTreeMap<ObjectId, PackRecord>,
    contested: &HashSet<ObjectId>,
    stored: &BTreeMap<ObjectId, u64>,
    state: &VaultState,
    opts: &GcOptions,
) {
    for (id, rec) in records {
        if state.condemned.contains_key(id) {
            continue; // decided with the other condemned packs
        }
        if contested.contains(id) {
            // Several writers claim it: one of them lies, and which claim's
            // entries are true is not known here. Kept.
            continue;
        }
        let size = stored.get(id).copied().unwrap_or(0);
        let total: u64 = rec.entries.iter().map(|e| e.stored_len as u64).sum();
        let used: u64 = rec
            .entries
            .iter()
            .filter(|e| plan.marked(&e.id))
            .map(|e| e.stored_len as u64)
            .sum();
        let action = if used == 0 {
            Some((PackAction::Condemn, "no blob is used".to_string()))
        } else if (used as f64) < opts.repack_below * total as f64 {
            Some((
                PackAction::Repack,
                format!("{}% used", used * 100 / total.max(1)),
            ))
        } else {
            None
        };
        if let Some((action, note)) = action {
            plan.packs.push(PackPlan {
                pack: *id,
                action,
                size,
                used,
                note,
            });
        }
    }
    for (id, size) in stored {
        if !records.contains_key(id) && !state.condemned.contains_key(id) {
            plan.packs.push(PackPlan {
                pack: *id,
                action: PackAction::CondemnOrphan,
                size: *size,
                used: 0,
                note: "listed by no index".into(),
            });
        }
    }
}

/// What deciding the condemned packs needs.
struct Condemned<'a> {
    vault: &'a Vault,
    records: &'a BTreeMap<ObjectId, PackRecord>,
    stored: &'a BTreeMap<ObjectId, u64>,
    active_backups: &'a [Result<i64>],
    clock: i64,
    grace_secs: i64,
}

impl Condemned<'_> {
    /// Decides every condemned pack: wait, delete or reprieve.
    fn judge(&self, plan: &mut GcPlan, state: &VaultState) {
        // Used blobs of a condemned pack may also live in an indexed pack
        // (a repacked pack's blobs were copied before it was condemned):
        // only a used blob found nowhere else reprieves a pack. Built only
        // when some condemned pack is due, and after the mark's index is
        // gone.
        let current = state
            .condemned
            .values()
            .any(|at| self.clock >= at + self.grace_secs)
            .then(|| {
                Index::build_for(
                    crate::index::Purpose::Dedup,
                    self.records
                        .values()
                        .filter(|r| !state.condemned.contains_key(&r.id))
                        .cloned(),
                )
            });
        for (id, at) in &state.condemned {
            let (action, note) = self.decide(plan, current.as_ref(), id, *at);
            plan.packs.push(PackPlan {
                pack: *id,
                action,
                size: self.stored.get(id).copied().unwrap_or(0),
                used: 0,
                note,
            });
        }
    }

    /// One condemned pack, condemned at `at`.
    fn decide(
        &self,
        plan: &GcPlan,
        current: Option<&Index>,
        id: &ObjectId,
        at: i64,
    ) -> (PackAction, String) {
        let due_at = at + self.grace_secs;
        let blocking = self
            .active_backups
            .iter()
            .find(|b| b.as_ref().map_or(true, |started| *started <= at));
        if self.clock < due_at {
            return (
                PackAction::Wait,
                format!("grace period until {}", crate::vault::rfc3339(due_at)),
            );
        }
        if let Some(b) = blocking {
            let why = match b {
                Ok(started) => format!(
                    "a backup started at {} (before the pack was condemned) is still running",
                    crate::vault::rfc3339(*started)
                ),
                Err(e) => e.to_string(),
            };
            return (PackAction::Wait, why);
        }
        if !self.stored.contains_key(id) {
            return (PackAction::Delete, "already gone".into());
        }
        // A writer's claim is only its word: its pack's own trailer, which
        // opens under the session the pack names, says what it holds.
        let entries = match self.records.get(id) {
            Some(r) if r.session.is_none() => Ok(r.clone()),
            _ => self.vault.read_trailer(id),
        };
        match entries {
            Ok(rec)
                if rec
                    .entries
                    .iter()
                    .any(|e| plan.marked(&e.id) && !current.is_some_and(|c| c.contains(&e.id))) =>
            {
                (
                    PackAction::Reprieve,
                    "a point uses blobs found nowhere else".into(),
                )
            }
            Ok(_) => (PackAction::Delete, "unused".into()),
            // Not ours to judge: leave it and say so.
            Err(e) => (PackAction::Wait, format!("trailer unreadable: {e}")),
        }
    }
}

mod execute;
mod writers;

pub use execute::{execute, GcOutcome};
use writers::WriterFiles;

#[cfg(test)]
mod tests;
