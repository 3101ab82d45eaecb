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

use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, IndexName, PackRecord};
use crate::journal::{Event, VaultState};
use crate::locks::{self, Activity};
use crate::pack::{pack_path, BlobKind, PackBuilder, SealedBlob, DATA_PACK_TARGET, PACK_MAGIC};
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
    let active_backups = running_backups(vault, clock)?;

    // Points before index files: a backup writes its index file before its
    // manifest, so every point listed here finds its blobs in the files
    // listed next.
    let roots: Vec<ChunkId> = vault
        .points()?
        .into_iter()
        .filter(|p| !state.purged.contains(&p.id))
        .map(|p| p.manifest.tree)
        .collect();
    let index_files = vault.index_files()?;
    let records = read_records(vault, &index_files)?;
    // Points committed by backups that deduplicated against condemned packs
    // may have trees there: the mark must be able to read them.
    let condemned_records: Vec<PackRecord> = state
        .condemned
        .keys()
        .filter(|id| !records.contains_key(id))
        .filter_map(|id| vault.read_trailer(id).ok())
        .collect();
    let index = Index::build(records.values().cloned().chain(condemned_records));
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
    judge_indexed(&mut plan, &records, &stored, state, opts);
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
    Ok(plan)
}

/// When each backup that is running now started, read from the markers.
/// An unreadable marker may be a backup: it is kept as an error, which
/// blocks deletion like a running backup.
fn running_backups(vault: &Vault, clock: i64) -> Result<Vec<Result<i64>>> {
    Ok(locks::markers(vault)?
        .into_iter()
        .filter_map(|(path, m)| match m {
            Ok(m) if m.activity == Activity::Backup && !m.is_stale(clock) => Some(Ok(m.started)),
            Ok(_) => None,
            Err(_) => Some(Err(Error::Invalid(format!("unreadable marker {path}")))),
        })
        .collect())
}

/// Every pack record of the index files, 16 files read at a time; the
/// first record of a pack wins.
fn read_records(
    vault: &Vault,
    index_files: &[IndexName],
) -> Result<BTreeMap<ObjectId, PackRecord>> {
    let mut records: BTreeMap<ObjectId, PackRecord> = BTreeMap::new();
    for group in index_files.chunks(16) {
        let read: Vec<Vec<PackRecord>> = group
            .par_iter()
            .map(|id| vault.read_index_file(id))
            .collect::<Result<_>>()?;
        for r in read.into_iter().flatten() {
            records.entry(r.id).or_insert(r);
        }
    }
    Ok(records)
}

/// Decides the packs that are not condemned yet: condemn the unused and
/// the orphans, repack the mostly unused.
fn judge_indexed(
    plan: &mut GcPlan,
    records: &BTreeMap<ObjectId, PackRecord>,
    stored: &BTreeMap<ObjectId, u64>,
    state: &VaultState,
    opts: &GcOptions,
) {
    for (id, rec) in records {
        if state.condemned.contains_key(id) {
            continue; // decided with the other condemned packs
        }
        if rec.session.is_some() {
            // A write-only writer's pack: the writer deduplicates against it
            // without reading the journal, so it would not learn that it was
            // condemned. Kept until garbage collection can tell the writer.
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
        let entries = match self.records.get(id) {
            Some(r) => Ok(r.clone()),
            None => self.vault.read_trailer(id),
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

/// What `execute` did.
#[derive(Debug, Clone, Default)]
pub struct GcOutcome {
    pub condemned: usize,
    pub repacked: usize,
    pub new_packs: usize,
    pub deleted: usize,
    pub reprieved: usize,
    pub bytes_deleted: u64,
}

/// Carries out a plan (phase 1 for new candidates, phase 2 for due ones).
pub fn execute(vault: &Vault, plan: &GcPlan) -> Result<GcOutcome> {
    let mut out = GcOutcome::default();
    let mut new_records: Vec<PackRecord> = Vec::new();

    // Repack: used blobs are copied as stored (sealed, compressed); their
    // ids and compression stay, only the pack and offset change.
    for p in plan.packs.iter().filter(|p| p.action == PackAction::Repack) {
        let Some(rec) = plan.records.get(&p.pack) else {
            continue;
        };
        let bytes = vault.storage().get(&pack_path(&p.pack))?;
        if ObjectId::of(&bytes) != p.pack {
            return Err(Error::corrupt(pack_path(&p.pack), "content does not match its name; not repacking it (run `coffer check --read-data`)"));
        }
        let mut builder =
            PackBuilder::with_capacity(rec.kind, DATA_PACK_TARGET + (1 << 20), PACK_MAGIC);
        for e in rec.entries.iter().filter(|e| plan.marked(&e.id)) {
            let start = e.offset as usize;
            let end = start + e.stored_len as usize;
            let stored = bytes
                .get(start..end)
                .ok_or_else(|| Error::corrupt(pack_path(&p.pack), "blob lies outside the pack"))?;
            builder.add(SealedBlob {
                id: e.id,
                compression: e.compression,
                raw_len: e.raw_len,
                bytes: stored.to_vec(),
            });
            if builder.len() >= target(rec.kind) {
                new_records.push(ship(
                    vault,
                    std::mem::replace(
                        &mut builder,
                        PackBuilder::with_capacity(
                            rec.kind,
                            DATA_PACK_TARGET + (1 << 20),
                            PACK_MAGIC,
                        ),
                    ),
                )?);
            }
        }
        if !builder.is_empty() {
            new_records.push(ship(vault, builder)?);
        }
        out.repacked += 1;
    }
    out.new_packs = new_records.len();

    // Condemning changes nothing but the journal: the packs stay in the
    // index, so every point stays restorable, even one a backup committed
    // while this prune was deciding. Backups stop deduplicating against
    // them; they leave the index only when they are deleted.
    if !new_records.is_empty() {
        vault.write_index(&new_records)?;
    }
    let leaving: Vec<ObjectId> = plan
        .packs
        .iter()
        .filter(|p| {
            matches!(
                p.action,
                PackAction::Condemn | PackAction::CondemnOrphan | PackAction::Repack
            )
        })
        .map(|p| p.pack)
        .collect();
    if !leaving.is_empty() {
        out.condemned = leaving.len();
        vault.record(Event::Condemned {
            packs: leaving,
            at: now_secs(),
        })?;
    }
    let reprieved: Vec<ObjectId> = plan
        .packs
        .iter()
        .filter(|p| p.action == PackAction::Reprieve)
        .map(|p| p.pack)
        .collect();
    if !reprieved.is_empty() {
        out.reprieved = reprieved.len();
        vault.record(Event::Reprieved { packs: reprieved })?;
    }

    let due: Vec<&PackPlan> = plan
        .packs
        .iter()
        .filter(|p| p.action == PackAction::Delete)
        .collect();
    if !due.is_empty() {
        // The index loses them first: one file listing every other pack
        // replaces the files that were read (files running backups wrote
        // since are not touched), then the packs go.
        // Writers' index files are theirs to read back: left as they are,
        // with the packs they list (never condemned, see `judge_indexed`).
        let gone: HashSet<ObjectId> = due.iter().map(|p| p.pack).collect();
        if gone.iter().any(|id| plan.records.contains_key(id)) {
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
        for p in &due {
            vault.storage().delete(&pack_path(&p.pack))?;
            out.bytes_deleted += p.size;
        }
        out.deleted = due.len();
        vault.record(Event::PacksDeleted {
            packs: due.iter().map(|p| p.pack).collect(),
        })?;
    }
    Ok(out)
}

fn target(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => DATA_PACK_TARGET,
        BlobKind::Tree => DATA_PACK_TARGET / 2,
    }
}

fn ship(vault: &Vault, builder: PackBuilder) -> Result<PackRecord> {
    let pack = builder.finish(vault.keys());
    vault.storage().put(&pack_path(&pack.id), pack.bytes)?;
    Ok(PackRecord {
        id: pack.id,
        kind: pack.kind,
        entries: pack.entries,
        session: None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::backup::{backup, BackupOptions, Progress};
    use crate::changes;
    use crate::check::{check, ReadData};
    use crate::keys::VaultKey;
    use crate::policy::{Policy, Retention};
    use crate::prune;
    use crate::restore::{restore, RestoreOptions, RestoreProgress};
    use crate::storage::Storage;
    use crate::testutil::new_vault;

    const DAY: i64 = 86_400;

    fn content(seed: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// Contents come back every four generations, so a backup often
    /// deduplicates against chunks whose last point is being purged.
    fn write_generation(src: &Path, generation: u64) {
        std::fs::write(src.join("shared.bin"), content(0, 600_000)).unwrap();
        std::fs::write(
            src.join("changing.bin"),
            content(generation % 4 + 1, 400_000),
        )
        .unwrap();
        std::fs::write(src.join("n.txt"), generation.to_string()).unwrap();
    }

    fn back_up_item(vault: &Vault, src: &Path, item: &str) -> ObjectId {
        let opts = BackupOptions {
            item: Some(item.into()),
            ..BackupOptions::default()
        };
        backup(vault, &[src.to_path_buf()], &opts, &Progress::default())
            .unwrap()
            .point
    }

    /// Restores `point` and returns the generation its files hold.
    fn restored_generation(vault: &Vault, point: &ObjectId, src: &Path) -> u64 {
        let target = tempfile::tempdir().unwrap();
        let p = vault.read_point(point).unwrap();
        let opts = RestoreOptions {
            target: target.path().to_path_buf(),
            ..RestoreOptions::default()
        };
        let report = restore(vault, &p, &opts, &RestoreProgress::default()).unwrap();
        assert!(
            report.damaged.is_empty() && report.problems.is_empty(),
            "point {point}: {:?} {:?}",
            report.damaged,
            report.problems
        );
        let dir = target.path().join(src.strip_prefix("/").unwrap());
        let generation: u64 = std::fs::read_to_string(dir.join("n.txt"))
            .unwrap()
            .parse()
            .unwrap();
        // Compared with `==`: a failing assert_eq would print megabytes.
        assert!(
            std::fs::read(dir.join("shared.bin")).unwrap() == content(0, 600_000),
            "shared.bin of {point}"
        );
        assert!(
            std::fs::read(dir.join("changing.bin")).unwrap()
                == content(generation % 4 + 1, 400_000),
            "changing.bin of {point}, generation {generation}"
        );
        generation
    }

    fn check_read_data(dir: &Path, key: &VaultKey) {
        let mut v = Vault::open(Storage::open(dir.to_str().unwrap()).unwrap(), key, None).unwrap();
        let report = check(&mut v, ReadData::All).unwrap();
        assert!(report.ok(), "{report:?}");
    }

    fn opts(grace: i64) -> GcOptions {
        GcOptions {
            grace_secs: grace,
            repack_below: 0.9,
        }
    }

    #[test]
    fn a_backup_running_since_before_condemnation_keeps_and_reprieves_packs() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let (vault, key) = new_vault(dir.path(), false);
        write_generation(src.path(), 1);
        let a = back_up_item(&vault, src.path(), "a");
        let a_manifest = vault.read_point(&a).unwrap().manifest;
        write_generation(src.path(), 2);
        let _b = back_up_item(&vault, src.path(), "b");
        changes::delete_points(&vault, &[vault.read_point(&a).unwrap()], "test").unwrap();

        // A backup that started before the condemnation, still running.
        let running = crate::locks::hold(&vault, Activity::Backup).unwrap();
        let later = now_secs() + 15 * DAY;
        let first = prune::run(&vault, &opts(0), false, later).unwrap();
        let (_, done) = first.done.unwrap();
        assert_eq!(first.points.count(|a| *a == prune::PointAction::Purge), 1);
        assert!(done.condemned >= 1, "a's own chunks are condemned");
        let condemned: Vec<ObjectId> = vault.state().unwrap().condemned.keys().copied().collect();

        // The grace period is over, but the backup still runs: nothing goes.
        let waiting = prune::run(&vault, &opts(0), false, later + DAY).unwrap();
        assert_eq!(waiting.packs.count(PackAction::Wait), condemned.len());
        for p in &condemned {
            assert!(vault.storage().size(&pack_path(p)).unwrap().is_some());
        }

        // That backup had deduplicated against a's chunks and commits now.
        let mut m = a_manifest.clone();
        m.time.secs += 10;
        let c = vault.write_point(&m, None).unwrap();
        drop(running);
        let after = prune::run(&vault, &opts(0), false, later + 2 * DAY).unwrap();
        let (_, done) = after.done.unwrap();
        assert!(done.reprieved >= 1, "{:?}", after.packs.packs);
        assert_eq!(restored_generation(&vault, &c, src.path()), 1);
        check_read_data(dir.path(), &key);
    }

    #[test]
    fn a_repacked_pack_is_deleted_and_its_used_blobs_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let (vault, key) = new_vault(dir.path(), false);
        write_generation(src.path(), 1);
        let a = back_up_item(&vault, src.path(), "a");
        write_generation(src.path(), 2);
        let b = back_up_item(&vault, src.path(), "b");
        changes::delete_points(&vault, &[vault.read_point(&a).unwrap()], "test").unwrap();
        let later = now_secs() + 15 * DAY;
        // a's data pack holds shared.bin (still used by b) and its own
        // changing.bin: 60% used, below the 90% threshold.
        let first = prune::run(&vault, &opts(0), false, later).unwrap();
        assert!(
            first.done.unwrap().1.repacked >= 1,
            "{:?}",
            first.packs.packs
        );
        let second = prune::run(&vault, &opts(0), false, later).unwrap();
        let (_, done) = second.done.unwrap();
        assert_eq!(done.reprieved, 0, "{:?}", second.packs.packs);
        assert!(done.deleted >= 1);
        assert_eq!(restored_generation(&vault, &b, src.path()), 2);
        check_read_data(dir.path(), &key);
    }

    #[test]
    fn backups_and_prunes_running_together_lose_nothing() {
        const WRITERS: usize = 2;
        let dir = tempfile::tempdir().unwrap();
        let sources: Vec<tempfile::TempDir> =
            (0..WRITERS).map(|_| tempfile::tempdir().unwrap()).collect();
        let (vault, key) = new_vault(dir.path(), false);
        let mut keep3 = Policy::default_policy();
        keep3.name = "Keep3".into();
        keep3.retention = Retention {
            keep_last: Some(3),
            ..Retention::default()
        };
        changes::set_policy(&vault, keep3).unwrap();
        for writer in 0..WRITERS {
            changes::assign(&vault, "Keep3", &format!("s{writer}")).unwrap();
        }
        changes::set_soft_delete_days(&vault, 1).unwrap();

        // point -> (writer, generation)
        let generations = std::sync::Mutex::new(std::collections::HashMap::new());
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let start = now_secs();
        std::thread::scope(|s| {
            for (writer, src) in sources.iter().enumerate() {
                let (generations, finished, vault) = (&generations, &finished, &vault);
                s.spawn(move || {
                    // Stops the prune loop even if a backup fails.
                    struct Finish<'a>(&'a std::sync::atomic::AtomicUsize);
                    impl Drop for Finish<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    let _finish = Finish(finished);
                    // Both writers back up the same contents in shifted
                    // order, so each one deduplicates against chunks the
                    // other wrote and whose points are being purged.
                    for round in 0..24u64 {
                        let generation = round + writer as u64;
                        write_generation(src.path(), generation);
                        let p = back_up_item(vault, src.path(), &format!("s{writer}"));
                        generations.lock().unwrap().insert(p, (writer, generation));
                    }
                });
            }
            s.spawn(|| {
                let mut round = 0;
                let mut deleted = 0;
                // Rounds while backups run almost always find a backup that
                // started before the last condemnation (the clock has whole
                // seconds), so three more rounds after the writers stop
                // soft-delete, purge and condemn, and then delete.
                let mut rounds_after_writers = 0;
                while rounds_after_writers < 3 {
                    if finished.load(std::sync::atomic::Ordering::SeqCst) == WRITERS {
                        rounds_after_writers += 1;
                    }
                    round += 1;
                    // Each round is two simulated days later, so soft-deleted
                    // points get purged and their packs condemned and deleted.
                    let r = prune::run(&vault, &opts(0), false, start + round * 2 * DAY).unwrap();
                    deleted += r.done.unwrap().1.deleted;
                    // Every round adds journal records that every later
                    // round reads; a pause keeps the journal small.
                    std::thread::sleep(std::time::Duration::from_millis(40));
                }
                assert!(deleted > 0, "the prunes must have deleted packs");
            });
        });
        let generations = generations.into_inner().unwrap();
        assert_eq!(generations.len(), WRITERS * 24);
        let state = vault.state().unwrap();
        let left: Vec<ObjectId> = vault
            .points()
            .unwrap()
            .iter()
            .map(|p| p.id)
            .filter(|id| !state.purged.contains(id))
            .collect();
        assert!(left.len() >= 3 * WRITERS);
        for id in &left {
            let (writer, generation) = generations[id];
            assert_eq!(
                restored_generation(&vault, id, sources[writer].path()),
                generation
            );
        }
        check_read_data(dir.path(), &key);
    }

    #[test]
    fn a_second_prune_is_refused_while_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(dir.path(), false);
        let first = crate::locks::hold_prune(&vault).unwrap();
        let e = prune::run(&vault, &GcOptions::default(), false, now_secs())
            .err()
            .unwrap();
        assert!(e.to_string().contains("another prune is running"), "{e}");
        // A dry run only reads, and may run beside it.
        prune::run(&vault, &GcOptions::default(), true, now_secs()).unwrap();
        drop(first);
        prune::run(&vault, &GcOptions::default(), false, now_secs()).unwrap();
        assert!(
            crate::locks::markers(&vault).unwrap().is_empty(),
            "markers are removed"
        );
    }
}
