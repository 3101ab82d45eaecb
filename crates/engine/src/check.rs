//! `check`: prove that a vault is whole.
//!
//! Always: every key slot parses, every index file and recovery point matches
//! its name and decrypts, every pack an index names exists, and every tree
//! reachable from every point decodes and refers only to indexed chunks.
//! With `read_data`: every pack (or a random share of them) is read in full,
//! its hash compared with its name, its trailer with the index, and every blob
//! decrypted and checked against its chunk id. Each problem names the damaged
//! object. Reads bypass the local cache: the vault itself is being checked.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, PackRecord};
use crate::pack::{pack_path, BlobEntry, Compression};
use crate::tree::NodeKind;
use crate::vault::Vault;

/// How much pack data to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// A random share, in percent (0 < p ≤ 100).
    Subset(f64),
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub key_slots: usize,
    pub index_files: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_verified: u64,
    pub points: usize,
    pub trees: usize,
    /// Packs no index lists: left by interrupted backups, reused by the next.
    pub unindexed_packs: usize,
    /// Compression dictionaries read and verified.
    pub dictionaries: usize,
    /// Packs garbage collection condemned, awaiting deletion.
    pub condemned_packs: usize,
    /// Journal records read (format 3).
    pub journal_records: usize,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn check(vault: &mut Vault, read_data: ReadData) -> Result<CheckReport> {
    check_cancellable(vault, read_data, &std::sync::atomic::AtomicBool::new(false))
}

/// As [`check`]; setting `cancel` from another thread stops the reading of
/// packs and ends the check with `Error::Cancelled`.
pub fn check_cancellable(
    vault: &mut Vault,
    read_data: ReadData,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<CheckReport> {
    // Every read below must reach the vault itself, never a local copy.
    vault.disable_cache();
    let vault = &*vault;
    let mut report = CheckReport::default();
    for slot in Vault::read_slots(vault.storage())? {
        match slot {
            Ok(_) => report.key_slots += 1,
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    // Dictionaries were read, verified and opened when the vault was.
    let (dictionaries, unreadable) = vault.dictionary_status();
    report.dictionaries = dictionaries;
    report.problems.extend(unreadable);

    let (index, indexed) = read_index(vault, &mut report)?;
    let stored = check_packs(vault, &index, &indexed, &mut report)?;
    check_points(vault, &index, &mut report)?;
    check_revoked(vault, &mut report)?;
    drop(index);
    read_packs(vault, &stored, &indexed, read_data, cancel, &mut report)?;
    Ok(report)
}

/// Names every point a write-only credential wrote after its revocation:
/// whoever holds it now is not that host, as far as anyone knows.
fn check_revoked(vault: &Vault, report: &mut CheckReport) -> Result<()> {
    if !vault.has_journal() {
        return Ok(());
    }
    let state = vault.state()?;
    if state.revoked.is_empty() {
        return Ok(());
    }
    let names: HashMap<String, String> = Vault::writer_slots(vault.storage())?
        .into_iter()
        .flatten()
        .map(|e| (e.slot.id, e.slot.name))
        .collect();
    for p in vault.points()? {
        let Some(slot) = &p.writer else { continue };
        let Some(revocation) = state.revoked.get(slot) else {
            continue;
        };
        if !revocation.points.contains(&p.id) {
            let id = p.id.to_hex();
            report.problems.push(format!(
                "point {} (item {}) was written with the write-only credential {} after it was revoked at {}: do not trust it; once you know what it holds, delete it (`coffer points delete {}`)",
                &id[..16],
                p.manifest.item,
                names.get(slot).map_or(slot.as_str(), |n| n.as_str()),
                crate::vault::rfc3339(revocation.at),
                &id[..16],
            ));
        }
    }
    Ok(())
}

/// Each index file's word on a pack: the file, and a digest of the entries
/// it lists for the pack.
type Claims = HashMap<ObjectId, Vec<(String, [u8; 32])>>;

/// Reads every index file: the index, and a digest of each pack's entries
/// in each file that lists it, to compare with the pack's own trailer (a
/// write-only writer may list someone else's pack falsely).
fn read_index(vault: &Vault, report: &mut CheckReport) -> Result<(Index, Claims)> {
    let mut records: Vec<PackRecord> = Vec::new();
    // A digest per pack rather than a copy of its entries: the index is
    // already the largest thing in memory.
    let mut indexed: Claims = HashMap::new();
    for id in vault.index_files()? {
        report.index_files += 1;
        match vault.read_index_file(&id) {
            Ok(r) => {
                for rec in &r {
                    indexed
                        .entry(rec.id)
                        .or_default()
                        .push((id.path(), entries_digest(&rec.entries)));
                }
                records.extend(r);
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    let needing_dictionary: usize = records
        .iter()
        .map(|r| {
            r.entries
                .iter()
                .filter(|e| e.compression == Compression::ZstdDict)
                .count()
        })
        .sum();
    if needing_dictionary > 0 && report.dictionaries == 0 {
        report.problems.push(format!(
            "{needing_dictionary} blob(s) are compressed with a dictionary, but the vault holds no readable dictionary (dicts/)"
        ));
    }
    Ok((Index::build(records), indexed))
}

/// Compares the packs at the location with the index and the journal:
/// returns the packs stored.
fn check_packs(
    vault: &Vault,
    index: &Index,
    indexed: &Claims,
    report: &mut CheckReport,
) -> Result<HashSet<ObjectId>> {
    let stored: HashSet<ObjectId> = vault
        .storage()
        .list("packs/")?
        .iter()
        .filter_map(|o| o.path.rsplit('/').next().and_then(ObjectId::parse))
        .collect();
    report.packs = stored.len();
    let state = vault.state()?;
    for e in &state.unreadable {
        report.problems.push(format!("journal: {e}"));
    }
    report.journal_records = state.records;
    report.condemned_packs = stored
        .iter()
        .filter(|p| state.condemned.contains_key(p))
        .count();
    report.unindexed_packs = stored
        .iter()
        .filter(|p| !indexed.contains_key(p) && !state.condemned.contains_key(p))
        .count();
    for (id, _) in index.packs() {
        if !stored.contains(id) {
            report.problems.push(format!(
                "missing object {} (listed in the index)",
                pack_path(id)
            ));
        }
    }
    Ok(stored)
}

/// Reads every point and every tree it reaches, once each, and checks that
/// every chunk a file names is in the index.
fn check_points(vault: &Vault, index: &Index, report: &mut CheckReport) -> Result<()> {
    let point_ids: Vec<ObjectId> = vault
        .storage()
        .list("points/")?
        .iter()
        .filter_map(|o| ObjectId::parse(o.path.trim_start_matches("points/")))
        .collect();
    let mut seen_trees: HashSet<ChunkId> = HashSet::new();
    for id in point_ids {
        report.points += 1;
        let manifest = match vault.read_point(&id).map(|p| p.manifest) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        let short = &id.to_hex()[..12];
        let mut stack = vec![(manifest.tree, String::from("/"))];
        while let Some((tree_id, at)) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            report.trees += 1;
            let tree = match vault.read_tree(index, &tree_id) {
                Ok(t) => t,
                Err(e) => {
                    report
                        .problems
                        .push(format!("point {short}: directory {at}: {e}"));
                    continue;
                }
            };
            for node in &tree.nodes {
                let path = format!("{}{}", at, String::from_utf8_lossy(&node.name));
                match &node.kind {
                    NodeKind::Dir { tree } => stack.push((*tree, format!("{path}/"))),
                    NodeKind::File { extents, .. } => {
                        for c in extents.iter().flat_map(|e| &e.chunks) {
                            if !index.contains(&c.id) {
                                report.problems.push(format!(
                                    "point {short}: file {path}: chunk {} is not in the index",
                                    &c.id.to_hex()[..16]
                                ));
                            }
                        }
                    }
                    NodeKind::Disk { .. } => {
                        let what = format!("point {short}: disk {path}");
                        match vault.disk_map(index, &node.kind, &what) {
                            Ok(map) => {
                                for id in map.chunks().filter(|id| !index.contains(id)) {
                                    report.problems.push(format!(
                                        "{what}: chunk {} is not in the index",
                                        &id.to_hex()[..16]
                                    ));
                                }
                            }
                            Err(e) => report.problems.push(format!("{what}: {e}")),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Reads and verifies the packs `read_data` asks for, in parallel, with
/// the next pack prefetched while one is verified.
fn read_packs(
    vault: &Vault,
    stored: &HashSet<ObjectId>,
    indexed: &Claims,
    read_data: ReadData,
    cancel: &std::sync::atomic::AtomicBool,
    report: &mut CheckReport,
) -> Result<()> {
    let mut to_read: Vec<ObjectId> = match read_data {
        ReadData::None => Vec::new(),
        ReadData::All => stored.iter().copied().collect(),
        ReadData::Subset(pct) => {
            let mut all: Vec<ObjectId> = stored.iter().copied().collect();
            all.shuffle(&mut rand::thread_rng());
            let n = ((all.len() as f64) * pct / 100.0).ceil() as usize;
            all.truncate(n.min(all.len()));
            all
        }
    };
    to_read.sort();
    report.packs_read = to_read.len();
    let problems = Mutex::new(Vec::new());
    let blobs = std::sync::atomic::AtomicU64::new(0);
    to_read.par_iter().enumerate().for_each(|(i, id)| {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        // Each thread takes a run of neighbours; the next one loads from
        // disk while this one is verified.
        if i == 0 {
            vault.storage().prefetch(&pack_path(id), 0, 0);
        }
        if let Some(next) = to_read.get(i + 1) {
            vault.storage().prefetch(&pack_path(next), 0, 0);
        }
        let found = read_pack(vault, id, indexed.get(id).map_or(&[], |c| c), &blobs);
        if let Ok(mut p) = problems.lock() {
            p.extend(found);
        }
    });
    if cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    report
        .problems
        .extend(problems.into_inner().unwrap_or_default());
    report.blobs_verified = blobs.into_inner();
    Ok(())
}

/// An order-independent digest of a pack's blob entries.
fn entries_digest(entries: &[BlobEntry]) -> [u8; 32] {
    let mut sorted: Vec<&BlobEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.id);
    let mut hasher = blake3::Hasher::new();
    let mut buf = Vec::new();
    for e in sorted {
        buf.clear();
        e.encode(&mut buf);
        hasher.update(&buf);
    }
    *hasher.finalize().as_bytes()
}

/// Longest read while checking a pack; each checking thread holds one.
const CHECK_RANGE: u64 = 2 << 20;

/// Verifies one pack: its hash against its name, its trailer against the
/// index, and every blob. The pack is read in ranges of a few blobs, hashed
/// as it goes, so memory does not depend on the pack size.
fn read_pack(
    vault: &Vault,
    id: &ObjectId,
    claims: &[(String, [u8; 32])],
    blobs: &std::sync::atomic::AtomicU64,
) -> Vec<String> {
    let path = pack_path(id);
    let (record, size) = match vault.read_trailer_and_size(id) {
        Ok(r) => r,
        // Damaged or truncated: the whole pack tells the most about it.
        Err(e) => return read_damaged_pack(vault, id, e),
    };
    let mut problems = Vec::new();
    // A writer's pack that no index lists yet (its backup was stopped)
    // opens under the session its own authenticated trailer names.
    if record.session.is_some() {
        if let Err(e) = vault.learn_packs(std::slice::from_ref(&record)) {
            problems.push(format!("{path}: {e}"));
        }
    }
    let own = entries_digest(&record.entries);
    for (file, _) in claims.iter().filter(|(_, d)| *d != own) {
        problems.push(format!(
            "index entries for {path} do not match the pack's own trailer (listed so by {file})"
        ));
    }
    let mut entries = record.entries;
    entries.sort_by_key(|e| e.offset);
    let mut hasher = blake3::Hasher::new();
    let mut pos = 0u64;
    let mut start = 0;
    while start < entries.len() || pos < size {
        // The next range: from where the last one ended to the end of as
        // many whole blobs as fit, or to the end of the pack (the trailer).
        let mut end = start;
        let mut to = pos;
        while end < entries.len() {
            let e = &entries[end];
            let blob_end = e.offset as u64 + e.stored_len as u64;
            if end > start && blob_end - pos > CHECK_RANGE {
                break;
            }
            to = to.max(blob_end);
            end += 1;
        }
        if end == entries.len() && start == end {
            to = size;
        }
        if to <= pos || to > size {
            problems.push(format!(
                "damaged object {path}: its trailer lists blobs outside the pack"
            ));
            return problems;
        }
        let bytes = match vault.storage().get_range(&path, pos, to - pos) {
            Ok(b) => b,
            Err(e) => {
                problems.push(e.to_string());
                return problems;
            }
        };
        hasher.update(&bytes);
        for e in &entries[start..end] {
            let lo = e.offset as u64;
            let stored = match lo
                .checked_sub(pos)
                .and_then(|lo| bytes.get(lo as usize..lo as usize + e.stored_len as usize))
            {
                Some(s) => s,
                None => {
                    problems.push(format!(
                        "damaged object {path}: blobs overlap in its trailer"
                    ));
                    return problems;
                }
            };
            match vault.open_blob(id, e, stored) {
                Ok(_) => {
                    blobs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(err) => problems.push(err.to_string()),
            }
        }
        pos = to;
        start = end;
    }
    if ObjectId(*hasher.finalize().as_bytes()) != *id {
        problems.push(format!(
            "damaged object {path}: content does not match its name (hash mismatch)"
        ));
    }
    problems
}

/// A pack whose trailer could not be read (`first`): says whether the pack
/// itself is damaged (its bytes no longer match its name) or was written
/// with a bad trailer; an intact pack means the first failure was a read
/// error, reported as it was.
fn read_damaged_pack(vault: &Vault, id: &ObjectId, first: crate::error::Error) -> Vec<String> {
    let path = pack_path(id);
    let bytes = match vault.storage().get(&path) {
        Ok(b) => b,
        Err(e) => return vec![e.to_string()],
    };
    if ObjectId::of(&bytes) != *id {
        return vec![format!(
            "damaged object {path}: content does not match its name (hash mismatch)"
        )];
    }
    match vault.trailer_of(id, bytes.len() as u64, &bytes, Some(&bytes)) {
        Ok(_) => vec![first.to_string()],
        Err(e) => vec![e.to_string()],
    }
}
