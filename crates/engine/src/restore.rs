//! Restore: recreate a recovery point's files exactly, in bounded memory.
//!
//! A walker thread reads the point's trees depth first and cuts them into
//! batches of a few thousand entries. It creates directories, files at their
//! final size (so holes stay sparse), symlinks and special files as it goes.
//! The calling thread takes one batch at a time: it groups the batch's chunks
//! by pack, reads only the needed ranges, verifies every blob and writes it
//! wherever it belongs, packs in parallel; then it makes the batch's hard
//! links and applies metadata: files first, then the directories the walker
//! has left, deepest first, so nothing written later disturbs a time stamp or
//! a permission already set. Memory is bounded by the batch and the reads in
//! flight, never by the size of the point; only the first path of each
//! hard-linked inode is remembered for the whole run. A damaged blob or tree
//! costs only the files that need it: they are named in the report.
//!
//! Existing files are never overwritten without consent: unless overwriting
//! is allowed, a non-empty target is checked for conflicts by a first walk
//! before anything is written.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;

use crate::confine::{apply_by_name, apply_to_handle, Dir, Existing};
use crate::disk_map::DiskMap;
use crate::error::{Error, Result};
use crate::fsmeta::{open_file_limit, running_as_root};
use crate::ids::ChunkId;
use crate::index::Index;
pub use crate::restore_source::{Source, Targets, VaultSource};
use crate::tree::{Node, NodeKind};
use crate::vault::{Point, Vault};

/// Entries per batch. Large enough that the pause at the end of each batch
/// (the last packs finishing) is small next to the batch's work, small
/// enough that a batch's plan stays around a megabyte.
const BATCH_ENTRIES: usize = 4096;
/// Chunk references per batch, so that a batch of large files stays small too.
const BATCH_CHUNKS: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Absolute paths as backed up; empty means everything.
    pub includes: Vec<PathBuf>,
    pub overwrite: bool,
    /// Entries per batch; 0 means the default. Tests use tiny batches to
    /// put hard links and directories across batch boundaries.
    pub batch_entries: usize,
}

#[derive(Debug, Default)]
pub struct RestoreProgress {
    pub files: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Bytes of file content found so far; it grows while the point's trees
    /// are walked, which happens alongside the writing.
    pub bytes_total: AtomicU64,
    /// Set from another thread to stop after the batch being written; the
    /// restore then ends with `Error::Cancelled`, leaving what it wrote.
    pub cancel: std::sync::atomic::AtomicBool,
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

/// An entry made under the target: the directory that holds it and its
/// name there (everything is reached through that handle), and the path it
/// is shown by.
struct Entry {
    dest: PathBuf,
    parent: Dir,
    name: OsString,
    node: Node,
}

/// A file created by the walker, with the handle its content and metadata
/// are written through.
struct NewFile {
    entry: Entry,
    handle: Option<std::fs::File>,
}

/// A directory the walker has left, with its own handle for its metadata.
struct DoneDir {
    dest: PathBuf,
    dir: Dir,
    node: Node,
}

/// One slice of the point, ready to be filled in.
#[derive(Default)]
struct Batch {
    /// Files created at their final size, waiting for their content.
    files: Vec<NewFile>,
    /// Later names of a hard-linked file, with the path (relative to the
    /// target) of the name holding its content.
    links: Vec<(Entry, PathBuf)>,
    /// Symlinks and special files, already created.
    others: Vec<Entry>,
    /// Directories whose whole subtree is in this batch or an earlier one,
    /// deepest first.
    dirs_done: Vec<DoneDir>,
    chunks: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.files.len() + self.links.len() + self.others.len() + self.dirs_done.len()
    }

    /// Handles the batch keeps open until it is finished.
    fn open_handles(&self) -> usize {
        self.files.len() + self.dirs_done.len()
    }
}

/// Whether an entry is restored (and walked into): it lies under an included
/// path, or on the way to one.
fn wanted(path: &Path, includes: &[PathBuf]) -> bool {
    includes.is_empty()
        || includes
            .iter()
            .any(|i| path.starts_with(i) || i.starts_with(path))
}

/// Deeper trees are refused as malformed: no real path has that many
/// components (PATH_MAX is 4096 bytes), and the walk recurses per level.
const MAX_DEPTH: usize = 1024;
/// Stack of the threads that walk trees, for `MAX_DEPTH` levels of recursion.
const WALK_STACK: usize = 32 << 20;

/// What a visitor wants after being told of a directory.
#[derive(PartialEq, Eq)]
enum Step {
    /// Walk into it (and call `leave_dir` after).
    Descend,
    /// Leave it and everything in it out.
    Skip,
}

/// What a depth-first walk of a point reports. `entry` and `leave_dir`
/// return whether the walk should go on.
trait Visitor {
    fn enter_dir(&mut self, dest: &Path, name: &OsStr, node: &Node) -> Step;
    fn leave_dir(&mut self, dest: PathBuf, node: Node) -> bool;
    fn entry(&mut self, dest: PathBuf, name: &OsStr, node: Node) -> bool;
    /// A subtree that cannot be read, or an entry that cannot be one.
    fn lost(&mut self, dest: PathBuf, why: String);
}

/// Where a point's trees are read from and which parts are wanted.
struct Walk<'a> {
    source: &'a dyn Source,
    point: String,
    target: &'a Path,
    includes: &'a [PathBuf],
}

impl Walk<'_> {
    fn dest(&self, source: &Path) -> PathBuf {
        self.target.join(source.strip_prefix("/").unwrap_or(source))
    }

    /// Walks the directory `tree` found at `at`; false when the visitor
    /// stopped it. Entries whose names could let a tree reach outside the
    /// target, or a second entry of one name, are reported and left out.
    fn run(&self, tree: &ChunkId, at: &Path, depth: usize, visitor: &mut impl Visitor) -> bool {
        if depth > MAX_DEPTH {
            visitor.lost(
                self.dest(at),
                format!(
                    "point {}: the tree is nested deeper than {MAX_DEPTH} levels here, so the point is malformed; nothing below was restored",
                    self.point
                ),
            );
            return true;
        }
        let tree = match self.source.tree(tree) {
            Ok(t) => t,
            Err(e) => {
                visitor.lost(self.dest(at), format!("directory contents lost: {e}"));
                return true;
            }
        };
        let mut previous: Option<Vec<u8>> = None;
        for node in tree.nodes {
            let malformed = match (crate::confine::check_name(&node.name), &previous) {
                (Err(why), _) => Some(why),
                (Ok(()), Some(prev)) if node.name == *prev => Some("a second entry of this name"),
                (Ok(()), Some(prev)) if node.name < *prev => Some("an entry out of order"),
                _ => None,
            };
            if let Some(why) = malformed {
                visitor.lost(
                    self.dest(at),
                    format!(
                        "point {}: the tree of this directory holds {why} ({:?}), so the point is malformed; that entry was not restored",
                        self.point,
                        String::from_utf8_lossy(&node.name)
                    ),
                );
                continue;
            }
            previous = Some(node.name.clone());
            let name = OsStr::from_bytes(&node.name).to_os_string();
            let source = at.join(&name);
            if !wanted(&source, self.includes) {
                continue;
            }
            let dest = self.dest(&source);
            let go_on = match node.kind {
                NodeKind::Dir { tree: sub } => match visitor.enter_dir(&dest, &name, &node) {
                    Step::Descend => {
                        self.run(&sub, &source, depth + 1, visitor) && visitor.leave_dir(dest, node)
                    }
                    Step::Skip => true,
                },
                NodeKind::Disk { .. } => match as_file(self.source, node, &source) {
                    Ok(file) => visitor.entry(dest, &name, file),
                    Err(e) => {
                        visitor.lost(dest, format!("disk lost: {e}"));
                        true
                    }
                },
                _ => visitor.entry(dest, &name, node),
            };
            if !go_on {
                return false;
            }
        }
        true
    }
}

/// Counts the entries that already exist at their destination, looking
/// through handles as the restore will (a symlink where a directory
/// belongs is a conflict, and is not looked through).
struct Conflicts {
    count: usize,
    example: Option<PathBuf>,
    /// The directories being walked; None below one that does not exist.
    stack: Vec<Option<Dir>>,
}

impl Conflicts {
    fn found(&mut self, dest: PathBuf) {
        self.count += 1;
        self.example.get_or_insert(dest);
    }
}

impl Visitor for Conflicts {
    fn enter_dir(&mut self, dest: &Path, name: &OsStr, _: &Node) -> Step {
        let here = match self.stack.last().cloned().flatten() {
            None => None,
            Some(parent) => match parent.existing(name) {
                Ok(Existing::Directory) => parent.open_dir(name).ok(),
                Ok(Existing::Nothing) => None,
                Ok(Existing::Other) | Err(_) => {
                    self.found(dest.to_path_buf());
                    None
                }
            },
        };
        self.stack.push(here);
        Step::Descend
    }
    fn leave_dir(&mut self, _: PathBuf, _: Node) -> bool {
        self.stack.pop();
        true
    }
    fn entry(&mut self, dest: PathBuf, name: &OsStr, _: Node) -> bool {
        if let Some(parent) = self.stack.last().cloned().flatten() {
            if !matches!(parent.existing(name), Ok(Existing::Nothing)) {
                self.found(dest);
            }
        }
        true
    }
    fn lost(&mut self, _: PathBuf, _: String) {}
}

/// The walker's side: creates entries and hands over full batches.
struct Creator<'a> {
    overwrite: bool,
    as_root: bool,
    limit: usize,
    /// Handles a batch may hold open; see `open_files_per_batch`.
    max_open: usize,
    batch: Batch,
    tx: SyncSender<Batch>,
    /// The directories being walked, the target first.
    stack: Vec<Dir>,
    /// The path of the directory being walked, relative to the target.
    relative: PathBuf,
    /// First restored path (relative to the target) of every inode with
    /// more than one link.
    first_of_inode: HashMap<(u64, u64), PathBuf>,
    /// What went wrong while creating; the writer adds its own findings.
    report: RestoreReport,
    entries: u64,
    progress: &'a RestoreProgress,
}

impl Creator<'_> {
    /// Sends the batch when it is full; false once the writer has stopped.
    fn flush_if_full(&mut self) -> bool {
        if self.batch.len() < self.limit
            && self.batch.chunks < BATCH_CHUNKS
            && self.batch.open_handles() < self.max_open
        {
            return true;
        }
        self.tx.send(std::mem::take(&mut self.batch)).is_ok()
    }

    fn finish(mut self) -> (RestoreReport, u64) {
        if self.batch.len() > 0 {
            // A writer that has stopped has its own error to report.
            let _ = self.tx.send(std::mem::take(&mut self.batch));
        }
        (self.report, self.entries)
    }

    fn parent(&self) -> Option<Dir> {
        self.stack.last().cloned()
    }

    fn create_file(&mut self, entry: Entry) {
        let NodeKind::File { size, extents } = &entry.node.kind else {
            return;
        };
        if let Some(err) = &entry.node.error {
            self.report
                .damaged
                .push((entry.dest, format!("was not backed up: {err}")));
            return;
        }
        if entry.node.links > 1 {
            let key = (entry.node.device, entry.node.inode);
            if let Some(first) = self.first_of_inode.get(&key) {
                let first = first.clone();
                self.batch.links.push((entry, first));
                return;
            }
            self.first_of_inode
                .insert(key, self.relative.join(&entry.name));
        }
        let handle = match entry
            .parent
            .create_file(&entry.name, self.overwrite)
            .and_then(|f| f.set_len(*size).map(|_| f))
        {
            Ok(f) => f,
            Err(err) => {
                self.report
                    .damaged
                    .push((entry.dest, format!("cannot create: {err}")));
                return;
            }
        };
        let chunks: usize = extents.iter().map(|e| e.chunks.len()).sum();
        let bytes: u64 = extents.iter().map(|e| e.len()).sum();
        self.progress
            .bytes_total
            .fetch_add(bytes, Ordering::Relaxed);
        self.batch.chunks += chunks;
        self.report.files += 1;
        self.batch.files.push(NewFile {
            entry,
            handle: Some(handle),
        });
    }
}

impl Visitor for Creator<'_> {
    fn enter_dir(&mut self, dest: &Path, name: &OsStr, _: &Node) -> Step {
        self.entries += 1;
        self.report.dirs += 1;
        let Some(parent) = self.parent() else {
            return Step::Skip;
        };
        match parent.child_dir(name, self.overwrite) {
            Ok(dir) => {
                self.stack.push(dir);
                self.relative.push(name);
                Step::Descend
            }
            Err(err) => {
                self.report.problems.push((
                    dest.to_path_buf(),
                    format!("cannot create directory: {err}; nothing below it was restored"),
                ));
                Step::Skip
            }
        }
    }

    fn leave_dir(&mut self, dest: PathBuf, node: Node) -> bool {
        self.relative.pop();
        if let Some(dir) = self.stack.pop() {
            self.batch.dirs_done.push(DoneDir { dest, dir, node });
        }
        self.flush_if_full()
    }

    fn entry(&mut self, dest: PathBuf, name: &OsStr, node: Node) -> bool {
        self.entries += 1;
        let Some(parent) = self.parent() else {
            return true;
        };
        if self.overwrite {
            if let Err(err) = parent.remove_other(name) {
                self.report
                    .problems
                    .push((dest, format!("cannot replace: {err}")));
                return true;
            }
        }
        let entry = Entry {
            dest,
            parent,
            name: name.to_os_string(),
            node,
        };
        let made = match &entry.node.kind {
            NodeKind::File { .. } => {
                self.create_file(entry);
                return self.flush_if_full();
            }
            NodeKind::Dir { .. } => return true,
            NodeKind::Symlink { target } => entry
                .parent
                .symlink(&entry.name, target)
                .map_err(|err| format!("cannot create symlink: {err}")),
            NodeKind::CharDevice { .. } | NodeKind::BlockDevice { .. } if !self.as_root => {
                Err("device nodes can only be restored as root".into())
            }
            _ => entry
                .parent
                .special(&entry.name, &entry.node)
                .map_err(|err| format!("cannot create: {err}")),
        };
        match made {
            Ok(()) => self.batch.others.push(entry),
            Err(why) => self.report.problems.push((entry.dest, why)),
        }
        self.flush_if_full()
    }

    fn lost(&mut self, dest: PathBuf, why: String) {
        self.report.damaged.push((dest, why));
    }
}

/// Restores `point` (or the included parts of it) under `opts.target`.
/// Finds the entry at `path` (absolute, as backed up) in a point.
pub fn find_node(vault: &Vault, index: &Index, point: &Point, path: &Path) -> Result<Node> {
    find_node_in(&VaultSource { vault, index }, &point.manifest.tree, path)
}

/// The node at `path` under the root tree `root`, read through `source`.
pub fn find_node_in(source: &dyn Source, root: &ChunkId, path: &Path) -> Result<Node> {
    let mut tree_id = *root;
    let mut found: Option<Node> = None;
    let not_found = || Error::Invalid(format!("{} is not in the point", path.display()));
    for component in path.components() {
        let name = match component {
            std::path::Component::Normal(n) => n.as_bytes(),
            std::path::Component::RootDir | std::path::Component::CurDir => continue,
            _ => return Err(not_found()),
        };
        if let Some(node) = &found {
            match node.kind {
                NodeKind::Dir { tree } => tree_id = tree,
                _ => return Err(not_found()),
            }
        }
        let tree = source.tree(&tree_id)?;
        found = Some(tree.find(name).cloned().ok_or_else(not_found)?);
    }
    found.ok_or_else(not_found)
}

/// Writes the content of the file at `path` in a point to `out`, every
/// chunk verified, holes as zeros; returns the file's size. Used for
/// streamed items (a dump piped into its restore command) and single-file
/// downloads; memory is one chunk at a time.
pub fn read_file(
    vault: &Vault,
    point: &Point,
    path: &Path,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let index = vault.load_index()?;
    read_file_from(
        &VaultSource {
            vault,
            index: &index,
        },
        &point.manifest.tree,
        path,
        out,
    )
}

/// [`read_file`] through any [`Source`], from the root tree `root`.
pub fn read_file_from(
    source: &dyn Source,
    root: &ChunkId,
    path: &Path,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let node = find_node_in(source, root, path)?;
    read_node_from(source, &node, path, out)
}

/// [`read_file`] for a node already found with [`find_node`] (`path` is
/// for messages), so that a caller who checked the node first reads the
/// index once.
pub fn read_node(
    vault: &Vault,
    index: &Index,
    node: &Node,
    path: &Path,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    read_node_from(&VaultSource { vault, index }, node, path, out)
}

/// A disk node as the sparse file of its image (its segments read through
/// `source`); any other node as it is. A disk restored or downloaded as a
/// file is its raw image.
pub fn as_file(source: &dyn Source, node: Node, path: &Path) -> Result<Node> {
    if !matches!(node.kind, NodeKind::Disk { .. }) {
        return Ok(node);
    }
    let what = format!("disk {}", path.display());
    let map = DiskMap::read(&node.kind, &what, |id| source.chunk(id))?;
    Ok(Node {
        kind: NodeKind::File {
            size: map.geometry.size,
            extents: map.extents(),
        },
        ..node
    })
}

fn read_node_from(
    source: &dyn Source,
    node: &Node,
    path: &Path,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let node = &as_file(source, node.clone(), path)?;
    let (size, extents) = match &node.kind {
        NodeKind::File { size, extents } => (size, extents),
        _ => {
            return Err(Error::Invalid(format!(
                "{} is not a regular file in the point",
                path.display()
            )))
        }
    };
    if let Some(e) = &node.error {
        return Err(Error::Invalid(format!(
            "{} was not backed up completely: {e}",
            path.display()
        )));
    }
    let size = *size;
    let write_err = |e| Error::io("(output)", e);
    let zeros = vec![0u8; 64 << 10];
    let mut at = 0u64;
    let fill = |to: u64, at: &mut u64, out: &mut dyn std::io::Write| -> Result<()> {
        while *at < to {
            let n = (to - *at).min(zeros.len() as u64) as usize;
            out.write_all(&zeros[..n]).map_err(write_err)?;
            *at += n as u64;
        }
        Ok(())
    };
    for extent in extents {
        fill(extent.offset, &mut at, out)?;
        for chunk in &extent.chunks {
            let data = source.chunk(&chunk.id)?;
            out.write_all(&data).map_err(write_err)?;
            at += data.len() as u64;
        }
    }
    fill(size, &mut at, out)?;
    out.flush().map_err(write_err)?;
    Ok(size)
}

pub fn restore(
    vault: &Vault,
    point: &Point,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreReport> {
    let index = vault.load_index()?;
    let source = VaultSource {
        vault,
        index: &index,
    };
    restore_from(
        &source,
        &point.manifest.tree,
        &point.id.to_hex()[..12],
        opts,
        progress,
    )
}

/// Restores the tree `root` of the point `point` (its short id, for
/// messages) with its trees and chunks from `source`: the vault itself, or
/// a service that reads the vault on an agent's behalf.
pub fn restore_from(
    source: &dyn Source,
    root_tree: &ChunkId,
    point: &str,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreReport> {
    let includes: Vec<PathBuf> = opts
        .includes
        .iter()
        .map(|p| crate::backup::absolute(Path::new("/").join(p).as_path()))
        .collect::<Result<_>>()?;
    let root_dir = Dir::open_target(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let walk = Walk {
        source,
        point: point.to_string(),
        target: &opts.target,
        includes: &includes,
    };
    let root = Path::new("/");

    // Refuse before writing anything if files would be overwritten. An
    // empty target cannot conflict, so the usual restore skips this walk.
    let target_empty = std::fs::read_dir(root_dir.proc_path(OsStr::new("")))
        .map_err(|e| Error::io(&opts.target, e))?
        .next()
        .is_none();
    if !opts.overwrite && !target_empty {
        let conflicts = std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(WALK_STACK)
                .spawn_scoped(s, || {
                    let mut conflicts = Conflicts {
                        count: 0,
                        example: None,
                        stack: vec![Some(root_dir.clone())],
                    };
                    walk.run(root_tree, root, 0, &mut conflicts);
                    conflicts
                })
                .map(|t| t.join())
        });
        let conflicts = conflicts
            .map_err(|e| Error::Invalid(format!("cannot start the restore walker: {e}")))?
            .map_err(|_| Error::Invalid("the restore walker stopped unexpectedly".into()))?;
        if let Some(example) = conflicts.example {
            return Err(Error::TargetExists {
                count: conflicts.count,
                example,
            });
        }
    }

    // One thread more than cores: while one waits for a read, the others decrypt.
    let workers = rayon::ThreadPoolBuilder::new()
        .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()) + 1)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start worker threads: {e}")))?;
    let as_root = running_as_root();
    let limit = match opts.batch_entries {
        0 => BATCH_ENTRIES,
        n => n,
    };
    // One batch waits while the next is built and the current one is written.
    let (tx, rx) = sync_channel::<Batch>(1);
    let mut report = RestoreReport::default();
    let walked = std::thread::scope(|s| {
        let walker = std::thread::Builder::new()
            .stack_size(WALK_STACK)
            .spawn_scoped(s, || {
                let mut creator = Creator {
                    overwrite: opts.overwrite,
                    as_root,
                    limit,
                    max_open: open_files_per_batch(open_file_limit()),
                    batch: Batch::default(),
                    tx,
                    stack: vec![root_dir.clone()],
                    relative: PathBuf::new(),
                    first_of_inode: HashMap::new(),
                    report: RestoreReport::default(),
                    entries: 0,
                    progress,
                };
                walk.run(root_tree, root, 0, &mut creator);
                creator.finish()
            });
        let walker = match walker {
            Ok(w) => w,
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "cannot start the restore walker: {e}"
                )))
            }
        };
        for batch in rx {
            // Dropping the receiver stops the walker at its next batch.
            if progress.cancel.load(Ordering::Relaxed) {
                break;
            }
            finish_batch(
                source,
                &workers,
                &root_dir,
                batch,
                as_root,
                progress,
                &mut report,
            );
        }
        walker
            .join()
            .map_err(|_| Error::Invalid("the restore walker stopped unexpectedly".into()))
    });
    let (created, entries) = walked?;
    if progress.cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    if !includes.is_empty() && entries == 0 {
        return Err(Error::Invalid(format!(
            "no path of point {point} matches the --include paths given"
        )));
    }
    report.files = created.files;
    report.dirs = created.dirs;
    report.damaged.extend(created.damaged);
    report.problems.extend(created.problems);
    report.bytes = progress.bytes_written.load(Ordering::Relaxed);
    Ok(report)
}

/// How many files one batch may keep open under a limit of `limit` open
/// files: three batches hold handles at once (one being built, one waiting,
/// one being written), and the rest of the process needs some too.
fn open_files_per_batch(limit: u64) -> usize {
    (limit.saturating_sub(128) / 3).clamp(16, BATCH_ENTRIES as u64) as usize
}

/// Writes a batch's content, then its hard links, then its metadata.
#[allow(clippy::too_many_arguments)] // one batch's whole context, passed once
fn finish_batch(
    source: &dyn Source,
    workers: &rayon::ThreadPool,
    root: &Dir,
    mut batch: Batch,
    as_root: bool,
    progress: &RestoreProgress,
    report: &mut RestoreReport,
) {
    for (f, why) in write_content(source, workers, &batch.files, progress) {
        report
            .damaged
            .push((batch.files[f].entry.dest.clone(), why));
    }
    // Metadata through the handle the content went through, then closed,
    // so nothing touches a file after its times are set.
    for f in &mut batch.files {
        if let Some(handle) = f.handle.take() {
            for p in apply_to_handle(handle.as_fd(), &f.entry.node, as_root) {
                report.problems.push((f.entry.dest.clone(), p));
            }
        }
    }
    progress
        .files
        .fetch_add(batch.files.len() as u64, Ordering::Relaxed);
    for (link, first) in &batch.links {
        let linked = root
            .parent_of(first)
            .and_then(|(dir, name)| link.parent.hard_link(&link.name, &dir, &name));
        match linked {
            Ok(()) => batch.others.push(Entry {
                dest: link.dest.clone(),
                parent: link.parent.clone(),
                name: link.name.clone(),
                node: link.node.clone(),
            }),
            Err(err) => report
                .problems
                .push((link.dest.clone(), format!("cannot create hard link: {err}"))),
        }
    }
    for e in &batch.others {
        for p in apply_by_name(&e.parent, &e.name, &e.node, as_root) {
            report.problems.push((e.dest.clone(), p));
        }
    }
    for d in &batch.dirs_done {
        for p in apply_to_handle(d.dir.fd(), &d.node, as_root) {
            report.problems.push((d.dest.clone(), p));
        }
        if let Some(err) = &d.node.error {
            report.damaged.push((
                d.dest.clone(),
                format!("directory was not fully backed up: {err}"),
            ));
        }
    }
}

/// Fills `files` with their chunks; returns the files that could not be
/// filled completely, by number, with the first reason.
fn write_content(
    source: &dyn Source,
    workers: &rayon::ThreadPool,
    files: &[NewFile],
    progress: &RestoreProgress,
) -> BTreeMap<usize, String> {
    let mut needs: HashMap<ChunkId, Targets> = HashMap::new();
    for (number, f) in files.iter().enumerate() {
        let NodeKind::File { extents, .. } = &f.entry.node.kind else {
            continue;
        };
        for ext in extents {
            let mut offset = ext.offset;
            for c in &ext.chunks {
                needs.entry(c.id).or_default().push((number, offset));
                offset += c.len as u64;
            }
        }
    }
    let damaged = Mutex::new(BTreeMap::new());
    let deliver = |targets: &Targets, got: Result<&[u8]>| match got {
        Ok(plain) => {
            for (f, offset) in targets {
                let written = match &files[*f].handle {
                    Some(file) => file.write_all_at(plain, *offset),
                    None => Err(std::io::Error::other("file was closed")),
                };
                if let Err(err) = written {
                    mark(&damaged, &[(*f, *offset)], &format!("write failed: {err}"));
                }
            }
            progress
                .bytes_written
                .fetch_add(plain.len() as u64 * targets.len() as u64, Ordering::Relaxed);
        }
        Err(err) => mark(&damaged, targets, &err.to_string()),
    };
    source.deliver(needs.into_iter().collect(), workers, &deliver);
    damaged.into_inner().unwrap_or_default()
}

fn mark(damaged: &Mutex<BTreeMap<usize, String>>, targets: &[(usize, u64)], why: &str) {
    if let Ok(mut d) = damaged.lock() {
        for (f, _) in targets {
            d.entry(*f).or_insert_with(|| why.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{back_up, new_vault};
    use std::fs::{File, FileTimes};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::{Duration, SystemTime};

    fn set_mtime(path: &Path, secs: u64) {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        File::open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(t).set_accessed(t))
            .unwrap();
    }

    /// A reader that yields `data` and then fails, like a dump whose
    /// command died halfway.
    struct FailingAfter(std::io::Cursor<Vec<u8>>);

    impl std::io::Read for FailingAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("pg_dump exited with status 1")),
                n => Ok(n),
            }
        }
    }

    fn stream_opts(item: &str) -> crate::backup::BackupOptions {
        crate::backup::BackupOptions {
            item: Some(item.into()),
            consistency: Some(crate::point::Consistency::ApplicationConsistent),
            ..Default::default()
        }
    }

    #[test]
    fn streams_round_trip_and_deduplicate() {
        use crate::backup::{backup_streams, NamedStream, Progress};
        let tmp = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(&tmp.path().join("v"), false);
        let dump: Vec<u8> = (0..5_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let streams = |extra: &[u8]| {
            let mut second = dump.clone();
            second.extend_from_slice(extra);
            vec![
                NamedStream {
                    name: "db.dump".into(),
                    reader: Box::new(std::io::Cursor::new(second)),
                },
                NamedStream {
                    name: "empty".into(),
                    reader: Box::new(std::io::empty()),
                },
            ]
        };
        let first = backup_streams(
            &vault,
            streams(b""),
            &stream_opts("db"),
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(
            first.manifest.consistency,
            crate::point::Consistency::ApplicationConsistent
        );
        assert_eq!(first.manifest.stats.bytes_read, dump.len() as u64);
        assert_eq!(
            first.manifest.paths,
            vec![b"/db.dump".to_vec(), b"/empty".to_vec()]
        );
        let second = backup_streams(
            &vault,
            streams(b"one more row"),
            &stream_opts("db"),
            &Progress::default(),
        )
        .unwrap();
        // Only the last chunk changed.
        assert!(second.manifest.stats.bytes_new < 4 << 20);
        assert_eq!(second.manifest.parent, Some(first.point));

        let point = vault.read_point(&second.point).unwrap();
        let mut out = Vec::new();
        let size = read_file(&vault, &point, Path::new("/db.dump"), &mut out).unwrap();
        assert_eq!(size, dump.len() as u64 + 12);
        assert_eq!(&out[..dump.len()], &dump[..]);
        assert_eq!(&out[dump.len()..], b"one more row");
        let mut empty = Vec::new();
        assert_eq!(
            read_file(&vault, &point, Path::new("/empty"), &mut empty).unwrap(),
            0
        );
        let missing = read_file(&vault, &point, Path::new("/nope"), &mut Vec::new());
        assert!(matches!(missing, Err(Error::Invalid(m)) if m.contains("not in the point")));

        // The point restores like any other, under a target.
        let target = tmp.path().join("t");
        restore(
            &vault,
            &point,
            &RestoreOptions {
                target: target.clone(),
                ..Default::default()
            },
            &RestoreProgress::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read(target.join("db.dump")).unwrap(), out);
        let mode = std::fs::metadata(target.join("db.dump")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failing_stream_commits_nothing() {
        use crate::backup::{backup_streams, NamedStream, Progress};
        let tmp = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(&tmp.path().join("v"), false);
        let streams = vec![NamedStream {
            name: "db.dump".into(),
            reader: Box::new(FailingAfter(std::io::Cursor::new(vec![7u8; 3 << 20]))),
        }];
        let r = backup_streams(&vault, streams, &stream_opts("db"), &Progress::default());
        match r {
            Err(Error::SourceFailed { name, message }) => {
                assert_eq!(name, "db.dump");
                assert!(message.contains("status 1"), "{message}");
            }
            other => panic!("expected SourceFailed, got {:?}", other.map(|r| r.point)),
        }
        assert!(vault.points().unwrap().is_empty());
        let bad_name = vec![NamedStream {
            name: "a/b".into(),
            reader: Box::new(std::io::empty()),
        }];
        assert!(matches!(
            backup_streams(&vault, bad_name, &stream_opts("db"), &Progress::default()),
            Err(Error::Invalid(_))
        ));
    }

    /// Batches of two entries put every hard link, and most directories,
    /// in a different batch from what they depend on.
    #[test]
    fn tiny_batches_keep_content_hard_links_and_directory_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        for d in ["a/sub", "b", "c/empty"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(src.join("a/big"), &big).unwrap();
        std::fs::write(src.join("a/f1"), b"linked content").unwrap();
        for i in 0..9 {
            std::fs::write(src.join(format!("b/small{i}")), format!("file {i}")).unwrap();
        }
        std::fs::hard_link(src.join("a/f1"), src.join("b/link")).unwrap();
        std::fs::hard_link(src.join("a/f1"), src.join("c/link")).unwrap();
        std::os::unix::fs::symlink("../a/big", src.join("c/to-big")).unwrap();
        std::fs::set_permissions(src.join("a/sub"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        for (i, d) in ["a/sub", "a", "b", "c/empty", "c", ""].iter().enumerate() {
            set_mtime(&src.join(d), 1_000_000 + i as u64 * 1000);
        }

        let (vault, _) = new_vault(&tmp.path().join("vault"), false);
        back_up(&vault, &src);
        let point = vault.resolve_point("latest", None).unwrap();

        let target = tmp.path().join("restore");
        let opts = RestoreOptions {
            target: target.clone(),
            batch_entries: 2,
            ..Default::default()
        };
        let progress = RestoreProgress::default();
        let restored = restore(&vault, &point, &opts, &progress).unwrap();
        assert!(restored.is_complete(), "{restored:?}");
        assert_eq!(
            restored.files, 11,
            "big, f1 and 9 small; the two links share f1"
        );
        assert_eq!(progress.files.load(Ordering::Relaxed), 11);

        let got = target.join(src.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(got.join("a/big")).unwrap(), big);
        for i in 0..9 {
            assert_eq!(
                std::fs::read_to_string(got.join(format!("b/small{i}"))).unwrap(),
                format!("file {i}")
            );
        }
        let first = std::fs::metadata(got.join("a/f1")).unwrap();
        assert_eq!(first.nlink(), 3);
        for link in ["b/link", "c/link"] {
            assert_eq!(
                std::fs::metadata(got.join(link)).unwrap().ino(),
                first.ino(),
                "{link}"
            );
        }
        assert_eq!(
            std::fs::read_link(got.join("c/to-big")).unwrap(),
            Path::new("../a/big")
        );
        for d in ["a/sub", "a", "b", "c/empty", "c", ""] {
            let want = std::fs::metadata(src.join(d)).unwrap();
            let have = std::fs::metadata(got.join(d)).unwrap();
            assert_eq!(
                (have.mtime(), have.mtime_nsec()),
                (want.mtime(), want.mtime_nsec()),
                "mtime of {d:?}"
            );
            assert_eq!(have.mode(), want.mode(), "mode of {d:?}");
        }
    }
}
