//! Garbage collection tests: concurrent backups and prunes, repacking, and
//! the packs of write-only writers.
#![cfg(test)]

use std::path::Path;

use super::*;
use crate::backup::{backup, BackupOptions, Progress};
use crate::changes;
use crate::check::{check, ReadData};
use crate::keys::VaultKey;
use crate::pack::pack_path;
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
        std::fs::read(dir.join("changing.bin")).unwrap() == content(generation % 4 + 1, 400_000),
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

/// A host with only a write-only credential and a cache of its own.
struct Host {
    location: String,
    credential: crate::credential::WriterCredential,
    cache: tempfile::TempDir,
}

impl Host {
    fn back_up(&self, src: &Path, item: &str) -> crate::backup::BackupReport {
        let storage = Storage::open(&self.location).unwrap();
        let vault = crate::writer::WriteOnlyVault::open(
            storage,
            self.credential.clone(),
            Some(self.cache.path()),
        )
        .unwrap();
        let opts = BackupOptions {
            item: Some(item.into()),
            ..BackupOptions::default()
        };
        backup(&vault, &[src.to_path_buf()], &opts, &Progress::default()).unwrap()
    }
}

/// A new vault with one write-only credential, "web-1", and its host.
fn vault_with_host(dir: &Path) -> (Vault, VaultKey, Host) {
    let (vault, key) = new_vault(dir, false);
    let (_, credential) = vault.add_writer("web-1").unwrap();
    let host = Host {
        location: dir.to_str().unwrap().into(),
        credential,
        cache: tempfile::tempdir().unwrap(),
    };
    (vault, key, host)
}

/// What one writer's index files say: every pack listed, and the flagged.
fn writer_view(vault: &Vault) -> (HashSet<ObjectId>, HashSet<ObjectId>) {
    let mut listed = HashSet::new();
    let mut withdrawn = HashSet::new();
    for name in vault.index_files().unwrap() {
        if name.writer.is_some() {
            let index = vault.read_index_file_flagged(&name).unwrap();
            listed.extend(index.records.iter().map(|r| r.id));
            withdrawn.extend(index.withdrawn);
        }
    }
    (listed, withdrawn)
}

#[test]
fn a_writers_packs_are_withdrawn_from_it_then_deleted_and_its_points_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let (vault, key, host) = vault_with_host(dir.path());
    let mut points = Vec::new();
    for generation in 1..=3 {
        write_generation(src.path(), generation);
        points.push(host.back_up(src.path(), "w").point);
    }
    // The writer's ended backups left expired markers, and no marker
    // of theirs holds a prune off.
    assert_eq!(crate::locks::markers(&vault).unwrap().len(), 3);
    let old: Vec<_> = points[..2]
        .iter()
        .map(|p| vault.read_point(p).unwrap())
        .collect();
    changes::delete_points(&vault, &old, "test").unwrap();

    let later = now_secs() + 15 * DAY;
    let first = prune::run(&vault, &opts(0), false, later).unwrap();
    let (_, done) = first.done.unwrap();
    assert!(done.condemned >= 1, "{:?}", first.packs.packs);
    assert!(done.writer_files_rewritten >= 1);
    assert_eq!(done.stale_markers_removed, 3);
    assert!(crate::locks::markers(&vault).unwrap().is_empty());
    let condemned: HashSet<ObjectId> = vault.state().unwrap().condemned.keys().copied().collect();
    let (listed, withdrawn) = writer_view(&vault);
    let listed_condemned: HashSet<ObjectId> = listed.intersection(&condemned).copied().collect();
    assert!(!listed_condemned.is_empty());
    assert_eq!(
        withdrawn, listed_condemned,
        "the writer is told of every condemned pack it lists"
    );

    // Generation 1's own file lived only in withdrawn packs: the writer
    // stores it again rather than trust a pack that is about to go.
    write_generation(src.path(), 1);
    let again = host.back_up(src.path(), "w");
    assert!(
        again.manifest.stats.bytes_new >= 400_000,
        "{:?}",
        again.manifest.stats
    );
    // The shared file was not withdrawn (it was repacked): not stored again.
    assert!(
        again.manifest.stats.bytes_new < 600_000,
        "{:?}",
        again.manifest.stats
    );

    let second = prune::run(&vault, &opts(0), false, later).unwrap();
    let (_, done) = second.done.unwrap();
    assert_eq!(done.reprieved, 0, "{:?}", second.packs.packs);
    assert_eq!(done.deleted, condemned.len(), "{:?}", second.packs.packs);
    for p in &condemned {
        assert!(vault.storage().size(&pack_path(p)).unwrap().is_none());
    }
    let (listed, withdrawn) = writer_view(&vault);
    assert!(listed.is_disjoint(&condemned));
    assert!(withdrawn.is_empty());

    write_generation(src.path(), 2);
    let after = host.back_up(src.path(), "w").point;
    assert_eq!(restored_generation(&vault, &points[2], src.path()), 3);
    assert_eq!(restored_generation(&vault, &again.point, src.path()), 1);
    assert_eq!(restored_generation(&vault, &after, src.path()), 2);
    check_read_data(dir.path(), &key);

    // A replica receives the writer's rewritten index files with the rest,
    // and its points restore from there alone.
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = Storage::open(replica_dir.path().to_str().unwrap()).unwrap();
    crate::replica::replicate(&vault, &replica, "replica").unwrap();
    let copy = Vault::open(replica, &key, None).unwrap();
    assert_eq!(
        copy.read_point(&after).unwrap().writer,
        Some(host.credential.slot_id())
    );
    assert_eq!(restored_generation(&copy, &after, src.path()), 2);
    assert_eq!(restored_generation(&copy, &again.point, src.path()), 1);
    check_read_data(replica_dir.path(), &key);
}

#[test]
fn a_key_holders_backup_adopts_no_pack_of_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let (vault, _, host) = vault_with_host(dir.path());
    write_generation(src.path(), 1);
    host.back_up(src.path(), "w");
    // As if the writer were still running: its packs, but no index file yet.
    for name in vault.index_files().unwrap() {
        vault.storage().delete(&name.path()).unwrap();
    }
    let opts = BackupOptions::default();
    let report = backup(
        &vault,
        &[src.path().to_path_buf()],
        &opts,
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(report.packs_adopted, 0);
    for name in vault.index_files().unwrap() {
        for r in vault.read_index_file(&name).unwrap() {
            assert!(r.session.is_none());
        }
    }
}

#[test]
fn a_writer_that_claims_anothers_pack_gets_it_neither_condemned_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let (vault, key) = new_vault(dir.path(), false);
    let location: String = dir.path().to_str().unwrap().into();
    let hosts: Vec<Host> = ["honest", "thief"]
        .iter()
        .map(|name| Host {
            location: location.clone(),
            credential: vault.add_writer(name).unwrap().1,
            cache: tempfile::tempdir().unwrap(),
        })
        .collect();
    write_generation(src.path(), 1);
    let honest = hosts[0].back_up(src.path(), "w").point;
    write_generation(src.path(), 2);
    hosts[1].back_up(src.path(), "t");
    let mut honest_packs = Vec::new();
    let mut thief_session = None;
    for name in vault.index_files().unwrap() {
        for r in vault.read_index_file(&name).unwrap() {
            if name.writer == Some(hosts[0].credential.slot) {
                honest_packs.push(r);
            } else {
                thief_session = r.session;
            }
        }
    }
    // The thief lists the honest host's packs as its own, holding a blob
    // that is not there (and, for the tree pack, as a data pack).
    let claims: Vec<PackRecord> = honest_packs
        .iter()
        .map(|r| PackRecord {
            id: r.id,
            kind: crate::pack::BlobKind::Data,
            entries: vec![crate::pack::BlobEntry {
                id: ChunkId(*blake3::hash(&r.id.0).as_bytes()),
                compression: r.entries[0].compression,
                offset: 48,
                stored_len: 100,
                raw_len: 60,
            }],
            session: thief_session,
        })
        .collect();
    let thief = &hosts[1].credential;
    let bytes = crate::index::encode_writer_index(
        &thief.secret,
        &vault.header().vault_id,
        &thief.slot,
        &WriterIndex {
            records: claims,
            withdrawn: HashSet::new(),
        },
    );
    let name = IndexName {
        id: ObjectId::of(&bytes),
        writer: Some(thief.slot),
    };
    vault.storage().put(&name.path(), bytes).unwrap();

    let later = now_secs() + 15 * DAY;
    for _ in 0..2 {
        let run = prune::run(&vault, &opts(0), false, later).unwrap();
        for r in &honest_packs {
            assert!(
                !run.packs.packs.iter().any(|p| p.pack == r.id),
                "{:?}",
                run.packs.packs
            );
        }
    }
    assert_eq!(restored_generation(&vault, &honest, src.path()), 1);
    // `check` names the false claims and who made them, and nothing else.
    let mut v = Vault::open(Storage::open(&location).unwrap(), &key, None).unwrap();
    let report = check(&mut v, ReadData::All).unwrap();
    assert_eq!(report.problems.len(), honest_packs.len(), "{report:?}");
    for r in &honest_packs {
        let named = format!("{} do not match the pack's own trailer", pack_path(&r.id));
        let liar = format!("listed so by index/{}/", hex::encode(thief.slot));
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(&named) && p.contains(&liar)),
            "{report:?}"
        );
    }
}

#[test]
fn objects_that_do_not_open_stop_nothing_but_the_judging_of_packs() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let (vault, key, host) = vault_with_host(dir.path());
    write_generation(src.path(), 1);
    let written = host.back_up(src.path(), "w").point;
    let own = back_up_item(&vault, src.path(), "own");
    // Garbage where a writer may create objects: a point, and an index
    // file in the writer's folder, each named by its hash as they should be.
    let garbage_point = b"COFFERWT not a point at all".to_vec();
    let point_id = ObjectId::of(&garbage_point);
    vault
        .storage()
        .put(&crate::point::point_path(&point_id), garbage_point)
        .unwrap();
    let garbage_index = b"COFFERWX not an index file".to_vec();
    let name = IndexName {
        id: ObjectId::of(&garbage_index),
        writer: Some(host.credential.slot),
    };
    vault.storage().put(&name.path(), garbage_index).unwrap();

    // Listing, restoring and backing up go on, for the key holder and the
    // writer alike.
    let listed: Vec<ObjectId> = vault.points().unwrap().iter().map(|p| p.id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&written) && listed.contains(&own));
    assert_eq!(restored_generation(&vault, &written, src.path()), 1);
    write_generation(src.path(), 2);
    let again = host.back_up(src.path(), "w");
    assert!(
        again.manifest.stats.bytes_new < 500_000,
        "{:?}",
        again.manifest.stats
    );
    back_up_item(&vault, src.path(), "own");

    // `check` names both objects.
    let mut v = Vault::open(vault.storage().clone(), &key, None).unwrap();
    let report = check(&mut v, ReadData::None).unwrap();
    assert_eq!(report.problems.len(), 2, "{report:?}");
    assert!(report
        .problems
        .iter()
        .any(|p| p.contains(&point_id.to_hex())));
    assert!(report.problems.iter().any(|p| p.contains(&name.path())));

    // Prune refuses to judge packs while a point does not open, and says
    // what to do; without it, the index file alone stops nothing.
    let e = prune::run(&vault, &opts(0), false, now_secs())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&format!("remove the object points/{point_id}")),
        "{e}"
    );
    vault
        .storage()
        .delete(&crate::point::point_path(&point_id))
        .unwrap();
    prune::run(&vault, &opts(0), false, now_secs()).unwrap();
    assert_eq!(restored_generation(&vault, &again.point, src.path()), 2);
}
