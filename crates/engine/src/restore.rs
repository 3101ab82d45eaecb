//! Restore: recreate a recovery point's files exactly.
//!
//! First the tree is walked into a plan (directories, files, links, special
//! files) and checked against the target, so nothing is overwritten without
//! consent. Then files are created at their final size, which leaves holes
//! sparse; every pack that holds needed chunks is read once, its blobs are
//! verified and written to every place that needs them, packs in parallel.
//! Hard links are made after their first path has its content, and metadata
//! is applied last, directories deepest first, so writing never disturbs a
//! time stamp or a permission already set. A damaged blob or tree costs only
//! the files that need it: they are named in the report, the rest restores.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::fsmeta::{apply_metadata, make_special, running_as_root};
use crate::ids::{ChunkId, ObjectId};
use crate::index::Index;
use crate::pack::{open_blob, pack_path, BlobEntry};
use crate::tree::{Node, NodeKind};
use crate::vault::{Point, Vault};

/// Gap between needed blobs above which a pack is read in two ranges.
const RANGE_GAP: u64 = 1 << 20;
/// Longest single read: each worker holds one range (and the blobs it opens)
/// at a time, so this bounds restore memory whatever the pack size.
const MAX_RANGE: u64 = 4 << 20;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Absolute paths as backed up; empty means everything.
    pub includes: Vec<PathBuf>,
    pub overwrite: bool,
}

#[derive(Debug, Default)]
pub struct RestoreProgress {
    pub files: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_total: AtomicU64,
}

/// What a restore did, and what it could not do.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Files whose content could not be restored completely.
    pub damaged: Vec<(PathBuf, String)>,
    /// Other entries that could not be restored exactly (metadata, special files).
    pub problems: Vec<(PathBuf, String)>,
}

impl RestoreReport {
    pub fn is_complete(&self) -> bool {
        self.damaged.is_empty() && self.problems.is_empty()
    }
}

/// Where one blob's plaintext goes: (file number, offset in the file).
type Targets = Vec<(usize, u64)>;
/// The needed blobs of one pack, with their targets.
type PackBlobs = Vec<(BlobEntry, Targets)>;

struct Entry {
    dest: PathBuf,
    node: Node,
    depth: usize,
}

/// Whether an entry is restored (and walked into): it lies under an included
/// path, or on the way to one.
fn wanted(path: &Path, includes: &[PathBuf]) -> bool {
    includes.is_empty()
        || includes
            .iter()
            .any(|i| path.starts_with(i) || i.starts_with(path))
}

/// Walks a point's trees into a restore plan.
struct Planner<'a> {
    vault: &'a Vault,
    index: &'a Index,
    target: &'a Path,
    includes: &'a [PathBuf],
}

impl Planner<'_> {
    fn walk(
        &self,
        tree: &ChunkId,
        at: &Path,
        depth: usize,
        out: &mut Vec<Entry>,
        report: &mut RestoreReport,
    ) {
        let tree = match self.vault.read_tree(self.index, tree) {
            Ok(t) => t,
            Err(e) => {
                report.damaged.push((
                    self.target.join(at.strip_prefix("/").unwrap_or(at)),
                    format!("directory contents lost: {e}"),
                ));
                return;
            }
        };
        for node in tree.nodes {
            let source = at.join(OsStr::from_bytes(&node.name));
            if !wanted(&source, self.includes) {
                continue;
            }
            let dest = self
                .target
                .join(source.strip_prefix("/").unwrap_or(&source));
            let sub = match &node.kind {
                NodeKind::Dir { tree } => Some(*tree),
                _ => None,
            };
            out.push(Entry { dest, node, depth });
            if let Some(sub) = sub {
                self.walk(&sub, &source, depth + 1, out, report);
            }
        }
    }
}

fn remove_existing(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Restores `point` (or the included parts of it) under `opts.target`.
pub fn restore(
    vault: &Vault,
    point: &Point,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreReport> {
    let index = vault.load_index()?;
    let mut report = RestoreReport::default();
    let includes: Vec<PathBuf> = opts
        .includes
        .iter()
        .map(|p| crate::backup::absolute(Path::new("/").join(p).as_path()))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let mut entries = Vec::new();
    let planner = Planner {
        vault,
        index: &index,
        target: &opts.target,
        includes: &includes,
    };
    planner.walk(
        &point.manifest.tree,
        Path::new("/"),
        0,
        &mut entries,
        &mut report,
    );
    if !includes.is_empty() && entries.is_empty() {
        return Err(Error::Invalid(format!(
            "no path of point {} matches the --include paths given",
            &point.id.to_hex()[..12]
        )));
    }

    // Refuse before writing anything if files would be overwritten.
    if !opts.overwrite {
        let existing: Vec<&Path> = entries
            .iter()
            .filter(|e| !matches!(e.node.kind, NodeKind::Dir { .. }))
            .filter(|e| std::fs::symlink_metadata(&e.dest).is_ok())
            .map(|e| e.dest.as_path())
            .collect();
        if let Some(first) = existing.first() {
            return Err(Error::TargetExists {
                count: existing.len(),
                example: first.to_path_buf(),
            });
        }
    }

    let as_root = running_as_root();
    // Directories, parents first.
    for e in entries
        .iter()
        .filter(|e| matches!(e.node.kind, NodeKind::Dir { .. }))
    {
        match std::fs::symlink_metadata(&e.dest) {
            Ok(md) if md.is_dir() => {}
            Ok(_) if opts.overwrite => {
                if let Err(err) =
                    std::fs::remove_file(&e.dest).and_then(|_| std::fs::create_dir(&e.dest))
                {
                    report
                        .problems
                        .push((e.dest.clone(), format!("cannot create directory: {err}")));
                }
            }
            _ => {
                if let Err(err) = std::fs::create_dir_all(&e.dest) {
                    report
                        .problems
                        .push((e.dest.clone(), format!("cannot create directory: {err}")));
                }
            }
        }
        report.dirs += 1;
    }

    // Files at full size (holes stay holes), links and special files.
    let mut files: Vec<&Entry> = Vec::new();
    let mut links: Vec<(&Entry, usize)> = Vec::new();
    let mut first_of_inode: HashMap<(u64, u64), usize> = HashMap::new();
    let mut needs: HashMap<ChunkId, Vec<(usize, u64)>> = HashMap::new();
    for e in &entries {
        if matches!(e.node.kind, NodeKind::Dir { .. }) {
            continue;
        }
        if opts.overwrite {
            if let Err(err) = remove_existing(&e.dest) {
                report
                    .problems
                    .push((e.dest.clone(), format!("cannot replace: {err}")));
                continue;
            }
        }
        match &e.node.kind {
            NodeKind::File { size, extents } => {
                if let Some(err) = &e.node.error {
                    report
                        .damaged
                        .push((e.dest.clone(), format!("was not backed up: {err}")));
                    continue;
                }
                if e.node.links > 1 {
                    let key = (e.node.device, e.node.inode);
                    if let Some(&first) = first_of_inode.get(&key) {
                        links.push((e, first));
                        continue;
                    }
                    first_of_inode.insert(key, files.len());
                }
                let created = std::fs::File::create(&e.dest).and_then(|f| f.set_len(*size));
                if let Err(err) = created {
                    report
                        .damaged
                        .push((e.dest.clone(), format!("cannot create: {err}")));
                    continue;
                }
                let number = files.len();
                for ext in extents {
                    let mut offset = ext.offset;
                    for c in &ext.chunks {
                        needs.entry(c.id).or_default().push((number, offset));
                        offset += c.len as u64;
                    }
                    progress.bytes_total.fetch_add(ext.len(), Ordering::Relaxed);
                }
                files.push(e);
                report.files += 1;
            }
            NodeKind::Symlink { target } => {
                if let Err(err) = std::os::unix::fs::symlink(OsStr::from_bytes(target), &e.dest) {
                    report
                        .problems
                        .push((e.dest.clone(), format!("cannot create symlink: {err}")));
                }
            }
            NodeKind::CharDevice { .. } | NodeKind::BlockDevice { .. } if !as_root => {
                report.problems.push((
                    e.dest.clone(),
                    "device nodes can only be restored as root".into(),
                ));
            }
            _ => {
                if let Err(err) = make_special(&e.dest, &e.node) {
                    report
                        .problems
                        .push((e.dest.clone(), format!("cannot create: {err}")));
                }
            }
        }
    }

    // Group the needed chunks by pack, in pack and offset order.
    let mut by_pack: BTreeMap<ObjectId, PackBlobs> = BTreeMap::new();
    let mut damaged_files: BTreeMap<usize, String> = BTreeMap::new();
    for (id, targets) in needs {
        match index.get(&id) {
            Some(loc) => by_pack
                .entry(loc.pack)
                .or_default()
                .push((loc.entry, targets)),
            None => {
                for (f, _) in targets {
                    damaged_files.entry(f).or_insert_with(|| {
                        format!("chunk {} is missing from the vault", &id.to_hex()[..16])
                    });
                }
            }
        }
    }
    let damaged = Mutex::new(damaged_files);
    let mark = |targets: &[(usize, u64)], why: &str| {
        if let Ok(mut d) = damaged.lock() {
            for (f, _) in targets {
                d.entry(*f).or_insert_with(|| why.to_string());
            }
        }
    };
    let packs: Vec<(ObjectId, PackBlobs)> = by_pack
        .into_iter()
        .map(|(id, mut blobs)| {
            blobs.sort_by_key(|(e, _)| e.offset);
            (id, blobs)
        })
        .collect();
    let workers = rayon::ThreadPoolBuilder::new()
        .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()) + 2)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start worker threads: {e}")))?;
    workers.install(|| {
        packs.par_iter().for_each(|(pack, blobs)| {
            // Coalesce nearby blobs into ranges so each pack is read in few requests.
            let mut start = 0;
            while start < blobs.len() {
                let mut end = start + 1;
                while end < blobs.len() {
                    let prev = &blobs[end - 1].0;
                    let next = &blobs[end].0;
                    let gap_too_wide = next.offset as u64
                        > prev.offset as u64 + prev.stored_len as u64 + RANGE_GAP;
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
                match vault.storage.get_range(&pack_path(pack), from, to - from) {
                    Ok(bytes) => {
                        for (entry, targets) in group {
                            let lo = (entry.offset as u64 - from) as usize;
                            let stored = &bytes[lo..lo + entry.stored_len as usize];
                            match open_blob(&vault.keys, pack, entry, stored) {
                                Ok(plain) => {
                                    for (f, offset) in targets {
                                        let written = std::fs::OpenOptions::new()
                                            .write(true)
                                            .open(&files[*f].dest)
                                            .and_then(|file| file.write_all_at(&plain, *offset));
                                        if let Err(err) = written {
                                            mark(&[(*f, *offset)], &format!("write failed: {err}"));
                                        }
                                    }
                                    progress.bytes_written.fetch_add(
                                        plain.len() as u64 * targets.len() as u64,
                                        Ordering::Relaxed,
                                    );
                                }
                                Err(err) => mark(targets, &err.to_string()),
                            }
                        }
                    }
                    Err(err) => {
                        for (_, targets) in group {
                            mark(targets, &err.to_string());
                        }
                    }
                }
                start = end;
            }
        })
    });
    for (f, why) in damaged.into_inner().unwrap_or_default() {
        report.damaged.push((files[f].dest.clone(), why));
    }
    progress.files.store(report.files, Ordering::Relaxed);

    // Hard links to the first path of each inode.
    for (e, first) in &links {
        if let Err(err) = std::fs::hard_link(&files[*first].dest, &e.dest) {
            report
                .problems
                .push((e.dest.clone(), format!("cannot create hard link: {err}")));
        }
    }

    // Metadata last: everything but directories, then directories deepest first.
    for e in entries
        .iter()
        .filter(|e| !matches!(e.node.kind, NodeKind::Dir { .. }))
    {
        if std::fs::symlink_metadata(&e.dest).is_err() {
            continue;
        }
        for p in apply_metadata(&e.dest, &e.node, as_root) {
            report.problems.push((e.dest.clone(), p));
        }
    }
    let mut dirs: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e.node.kind, NodeKind::Dir { .. }))
        .collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(e.depth));
    for e in dirs {
        for p in apply_metadata(&e.dest, &e.node, as_root) {
            report.problems.push((e.dest.clone(), p));
        }
        if let Some(err) = &e.node.error {
            report.damaged.push((
                e.dest.clone(),
                format!("directory was not fully backed up: {err}"),
            ));
        }
    }
    report.bytes = progress.bytes_written.load(Ordering::Relaxed);
    Ok(report)
}
