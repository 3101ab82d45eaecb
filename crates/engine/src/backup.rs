//! The backup pipeline.
//!
//! walk → read → chunk → hash → dedup → compress → encrypt → pack → upload.
//! Directories are walked in parallel (rayon, one task per entry); a file's
//! chunks are hashed, compressed and sealed in parallel batches, so one large
//! file uses every core; finished packs go through a bounded channel to
//! uploader threads, which overlaps storage I/O with computation and applies
//! back-pressure so memory stays bounded.
//!
//! Incremental forever: a file whose size, mtime, ctime and inode match the
//! previous point of the same item reuses that point's chunk list without being
//! read. Commit order is packs → index → manifest, so an interrupted backup
//! leaves at most unreferenced packs; the next backup adopts them by reading
//! their trailers and reuses what they hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender};
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::dict::{self, Offer, Sampler, Samples, DICT_MAX_CHUNK};
use crate::error::{Error, Result};
use crate::fsmeta::{data_ranges, node_from_metadata, read_xattrs, Names, Prefetching};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, PackRecord};
use crate::pack::{
    compresses, pack_path, seal_blob, BlobKind, FinishedPack, PackBuilder, SealedBlob,
};
use crate::point::{Consistency, EntryError, Manifest, Stats};
use crate::tree::{ChunkRef, Extent, Node, NodeKind, Timestamp, Tree};
use crate::vault::Vault;

// Memory is bounded by these settings, not by the data: one file above
// `SMALL_FILE` is read at a time, holding the kept read-ahead buffer (8 MiB)
// and two batches of chunks (one read, one sealing) with their sealed copies;
// smaller files hold at most themselves; packs exist once filling, once
// waiting to be handed over, and once per uploader. docs/PERFORMANCE.md has
// the sum.
use crate::pack::{DATA_PACK_TARGET, TREE_PACK_TARGET};
/// Each worker thread gathers sealed data blobs into a run of this size
/// before they go into the shared pack. A pack is then a few long runs, each
/// from one part of the tree, instead of blobs of distant directories
/// interleaved one by one; restore, which goes through the tree in order,
/// then reads a run and skips the rest of the pack (see `restore::RANGE_GAP`).
pub const RUN_BYTES: usize = 1 << 20;
/// Bytes of chunks hashed and sealed together in parallel for one file.
const BATCH_BYTES: usize = 4 << 20;
const UPLOAD_THREADS: usize = 2;
/// Pack buffers kept for reuse: one per uploader plus the one being filled
/// covers the steady state.
const SPARE_PACKS: usize = 1;
fn millis(t: Timestamp) -> i64 {
    t.secs
        .saturating_mul(1000)
        .saturating_add((t.nanos / 1_000_000) as i64)
}

/// Files whose ctime lies this close before the previous backup's start are
/// read again even when their metadata is unchanged; see `Session::reusable`.
const RACY_MARGIN_SECS: i64 = 2;
/// Files up to this size are read whole by any worker; larger ones are read
/// one at a time through `large_reader`, their chunks sealed on every core.
const SMALL_FILE: u64 = 1 << 20;
/// How far ahead of the large-file reader the kernel is asked to read.
const PREFETCH_WINDOW: u64 = 8 << 20;

/// What to back up and how to label it.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub item: Option<String>,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    pub one_file_system: bool,
    pub host: Option<String>,
    /// Record the point as taken at this time instead of now.
    pub time: Option<Timestamp>,
    /// An on-demand point: kept until this time (Unix seconds), whatever
    /// the item's policy says.
    pub expire_at: Option<i64>,
    /// What the caller did to make the state consistent (quiesced the
    /// application, read a database snapshot); crash-consistent if unset.
    pub consistency: Option<Consistency>,
}

/// Live counters, readable from another thread while a backup runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_new: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub errors: AtomicU64,
    /// Set from another thread to stop the backup: it ends with
    /// `Error::Cancelled` at the next entry, having committed nothing (the
    /// packs already uploaded are reused by the next backup).
    pub cancel: AtomicBool,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub point: ObjectId,
    pub manifest: Manifest,
    pub packs_written: usize,
    pub packs_adopted: usize,
}

impl BackupReport {
    /// The report as every entry point shows it.
    pub fn summary(&self) -> coffer_api_types::BackupSummary {
        coffer_api_types::BackupSummary {
            point: self.point.to_hex(),
            item: self.manifest.item.clone(),
            stats: (&self.manifest.stats).into(),
            packs_written: self.packs_written as u64,
            packs_adopted: self.packs_adopted as u64,
            errors: self
                .manifest
                .errors
                .iter()
                .map(|e| coffer_api_types::PathError {
                    path: String::from_utf8_lossy(&e.path).into_owned(),
                    error: e.message.clone(),
                })
                .collect(),
        }
    }
}

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: d.as_secs() as i64,
        nanos: d.subsec_nanos(),
    }
}

use crate::host::hostname;

/// Lexically normalized absolute path (no symlink resolution, so a symlink
/// given as a path is backed up as the symlink).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// The default item name: host and paths.
pub fn default_item(host: &str, paths: &[PathBuf]) -> String {
    let joined: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    format!("{host}:{}", joined.join(","))
}

/// The directory structure above and at the backed-up paths.
enum Source {
    /// A backed-up path: everything below it is read.
    Real(PathBuf),
    /// An ancestor of backed-up paths: only its metadata and the listed children.
    Virtual(PathBuf, BTreeMap<Vec<u8>, Source>),
    /// A stream stored as one file (taken once, by the walk).
    Stream(Mutex<Option<Box<dyn Read + Send>>>),
    /// The root of a point made only of streams: a directory owned by this
    /// process, with no file system entry behind it.
    Streams(BTreeMap<Vec<u8>, Source>),
}

/// A byte stream to store as one file of a point: a database dump, a
/// command's output. A read error fails the whole backup: half a dump is
/// not a recovery point.
pub struct NamedStream {
    /// The file's name in the point; it must not contain `/`.
    pub name: String,
    pub reader: Box<dyn Read + Send>,
}

fn build_sources(paths: &[PathBuf]) -> Source {
    let mut root = Source::Virtual(PathBuf::from("/"), BTreeMap::new());
    for path in paths {
        let comps: Vec<&[u8]> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes()),
                _ => None,
            })
            .collect();
        if comps.is_empty() {
            root = Source::Real(PathBuf::from("/"));
            continue;
        }
        let mut cur = &mut root;
        let mut at = PathBuf::from("/");
        for (i, comp) in comps.iter().enumerate() {
            at.push(std::ffi::OsStr::from_bytes(comp));
            let children = match cur {
                // An ancestor is backed up whole (paths never build streams).
                Source::Real(_) | Source::Stream(_) | Source::Streams(_) => break,
                Source::Virtual(_, children) => children,
            };
            let last = i + 1 == comps.len();
            let entry = children
                .entry(comp.to_vec())
                .or_insert_with(|| Source::Virtual(at.clone(), BTreeMap::new()));
            if last {
                *entry = Source::Real(at.clone());
            }
            cur = entry;
        }
    }
    root
}

struct Excludes {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Excludes {
    fn new(patterns: &[String]) -> Result<Self> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p)
                .map_err(|e| Error::Invalid(format!("bad --exclude pattern {p:?}: {e}")))?;
            if p.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Invalid(format!("bad --exclude pattern: {e}")))
        };
        Ok(Excludes {
            by_name: build(by_name)?,
            by_path: build(by_path)?,
        })
    }

    fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.by_name.is_match(std::ffi::OsStr::from_bytes(name)) || self.by_path.is_match(path)
    }
}

/// (device, inode) of a file with several names.
type InodeKey = (u64, u64);

struct Session<'a> {
    /// Unix milliseconds: files whose recorded ctime is older than this may
    /// be reused from the previous point unread (see `reusable`).
    trusted_before: i64,
    vault: &'a Vault,
    index: Index,
    pending: Vec<Mutex<HashSet<ChunkId>>>,
    data_pack: Mutex<PackBuilder>,
    /// One run of sealed data blobs per worker thread, plus one shared by the
    /// sealing threads; see `RUN_BYTES`.
    runs: Vec<Mutex<Run>>,
    tree_pack: Mutex<PackBuilder>,
    uploads: Mutex<Option<Sender<FinishedPack>>>,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
    excludes: Excludes,
    one_file_system: bool,
    names: Names,
    progress: &'a Progress,
    errors: Mutex<Vec<EntryError>>,
    hardlinks: Mutex<HashMap<InodeKey, (u64, Vec<Extent>)>>,
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    bytes_total: AtomicU64,
    /// The read-ahead buffer for large files. Holding it is what lets a
    /// thread read one: a single reader keeps the disk sequential and its
    /// chunks already go to every core through the sealing threads, and the
    /// buffer is kept between files to save allocating, zeroing and
    /// unmapping 8 MiB per file.
    large_reader: Mutex<Vec<u8>>,
    /// Chunks of large files go to the sealing threads; see `seal_loop`.
    seal_jobs: Mutex<Option<Sender<SealJob>>>,
    /// Small data chunks on their way to a compression dictionary.
    sampler: Mutex<Sampler>,
    /// Data pack buffers back from the uploaders, at most `SPARE_PACKS`.
    spare_packs: Mutex<Vec<Vec<u8>>>,
}

/// A clone of a channel's sender, or `Cancelled` once the run has closed it.
fn open_sender<T>(slot: &Mutex<Option<Sender<T>>>) -> Result<Sender<T>> {
    slot.lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or(Error::Cancelled)
}

/// Sealed data blobs from one thread, waiting to go into a pack together.
#[derive(Default)]
struct Run {
    blobs: Vec<SealedBlob>,
    bytes: usize,
}

/// One chunk of a large file, to be stored by a sealing thread.
struct SealJob {
    position: usize,
    data: Vec<u8>,
    reply: Sender<(usize, Result<ChunkRef>)>,
}

impl Session<'_> {
    fn check_failed(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) || self.progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    fn record_error(&self, path: &Path, message: String) {
        tracing::warn!(path = %path.display(), "{message}");
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(EntryError {
                path: path.as_os_str().as_bytes().to_vec(),
                message,
            });
        }
    }

    /// Stores one blob unless the vault (or this run) has it already.
    fn store(&self, kind: BlobKind, data: &[u8]) -> Result<ChunkRef> {
        let keys = &self.vault.keys;
        let id = keys.chunk_id(data);
        let chunk = ChunkRef {
            id,
            len: data.len() as u32,
        };
        if self.index.contains(&id) {
            return Ok(chunk);
        }
        {
            let shard = &self.pending[id.0[0] as usize % self.pending.len()];
            let mut set = shard.lock().map_err(|_| Error::Cancelled)?;
            if !set.insert(id) {
                return Ok(chunk);
            }
        }
        self.progress
            .bytes_new
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        match kind {
            BlobKind::Data if data.len() <= DICT_MAX_CHUNK => {
                // One lock per chunk once a dictionary is chosen; only while
                // samples are gathered is the chunk probed outside the lock.
                let settled = {
                    let mut sampler = self.sampler.lock().map_err(|_| Error::Cancelled)?;
                    (!sampler.gathering()).then(|| sampler.offer(id, data))
                };
                let offer = match settled {
                    Some(offer) => offer,
                    None if !compresses(data) => {
                        return self
                            .push_data(seal_blob(keys, id, data, None))
                            .map(|()| chunk);
                    }
                    None => self
                        .sampler
                        .lock()
                        .map_err(|_| Error::Cancelled)?
                        .offer(id, data),
                };
                match offer {
                    Offer::Held => {}
                    Offer::Seal(dict) => {
                        self.push_data(seal_blob(keys, id, data, dict.as_deref()))?
                    }
                    Offer::Train(samples) => self.train_and_seal(samples, false)?,
                }
            }
            BlobKind::Data => self.push_data(seal_blob(keys, id, data, None))?,
            BlobKind::Tree => self.add_to_pack(
                &self.tree_pack,
                vec![seal_blob(keys, id, data, None)],
                TREE_PACK_TARGET,
            )?,
        }
        Ok(chunk)
    }

    /// Adds a sealed data blob to this thread's run, and a full run to the pack.
    fn push_data(&self, sealed: SealedBlob) -> Result<()> {
        let lane = rayon::current_thread_index()
            .unwrap_or(usize::MAX)
            .min(self.runs.len() - 1);
        let run = {
            let mut run = self.runs[lane].lock().map_err(|_| Error::Cancelled)?;
            run.bytes += sealed.bytes.len();
            run.blobs.push(sealed);
            (run.bytes >= RUN_BYTES).then(|| std::mem::take(&mut *run))
        };
        match run {
            Some(run) => self.add_to_pack(&self.data_pack, run.blobs, DATA_PACK_TARGET),
            None => Ok(()),
        }
    }

    /// Trains a dictionary on held-back small chunks (see `dict`), stores it
    /// when it pays, then seals those chunks and the ones held meanwhile.
    fn train_and_seal(&self, samples: Samples, last: bool) -> Result<()> {
        let dict = match dict::train(&samples, last) {
            Some(bytes) => self.vault.add_dictionary(&bytes)?,
            None => None,
        };
        let held = self
            .sampler
            .lock()
            .map_err(|_| Error::Cancelled)?
            .trained(dict.clone());
        for (id, data) in samples.chunks().chain(held.chunks()) {
            self.push_data(seal_blob(&self.vault.keys, id, data, dict.as_deref()))?;
        }
        Ok(())
    }

    fn add_to_pack(
        &self,
        builder: &Mutex<PackBuilder>,
        blobs: Vec<SealedBlob>,
        target: usize,
    ) -> Result<()> {
        let (full, overfull) = {
            let mut b = builder.lock().map_err(|_| Error::Cancelled)?;
            let kind = b.kind;
            let bytes = blobs.iter().map(|blob| blob.bytes.len()).sum();
            // The pack goes before a run that would take it past its target,
            // so its buffer (sized for the target) never has to grow.
            let full = (!b.is_empty() && b.finished_len_with(blobs.len(), bytes) > target)
                .then(|| std::mem::replace(&mut *b, self.new_pack(kind)));
            for blob in blobs {
                b.add(blob);
            }
            // Only a run larger than a whole pack (a huge directory's tree)
            // gets here.
            let overfull = (b.finished_len_with(0, 0) >= target)
                .then(|| std::mem::replace(&mut *b, self.new_pack(kind)));
            (full, overfull)
        };
        for pack in [full, overfull].into_iter().flatten() {
            self.ship(pack)?;
        }
        Ok(())
    }

    /// Puts every thread's unfinished run into the data pack.
    fn flush_runs(&self) -> Result<()> {
        for run in &self.runs {
            let run = std::mem::take(&mut *run.lock().map_err(|_| Error::Cancelled)?);
            self.add_to_pack(&self.data_pack, run.blobs, DATA_PACK_TARGET)?;
        }
        Ok(())
    }

    fn ship(&self, builder: PackBuilder) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let pack = builder.finish(&self.vault.keys);
        let sender = open_sender(&self.uploads)?;
        sender.send(pack).map_err(|_| {
            self.failure
                .lock()
                .ok()
                .and_then(|mut f| f.take())
                .unwrap_or(Error::Cancelled)
        })
    }

    /// A fresh pack, filled into a buffer an uploader gave back when there
    /// is one.
    fn new_pack(&self, kind: BlobKind) -> PackBuilder {
        let spare = match kind {
            BlobKind::Data => self.spare_packs.lock().ok().and_then(|mut s| s.pop()),
            BlobKind::Tree => None,
        };
        match spare {
            Some(buf) => PackBuilder::with_buffer(kind, buf),
            None => new_pack(kind),
        }
    }

    fn reclaim_pack_buffer(&self, buf: Vec<u8>) {
        if let Ok(mut spare) = self.spare_packs.lock() {
            if spare.len() < SPARE_PACKS {
                spare.push(buf);
            }
        }
    }

    fn store_tree(&self, nodes: Vec<Node>) -> Result<ChunkId> {
        let tree = Tree { nodes };
        Ok(self.store(BlobKind::Tree, &tree.encode())?.id)
    }

    /// Backs up one source entry (the walk's unit of work).
    fn source(
        &self,
        name: &[u8],
        source: &Source,
        prev: Option<&Node>,
        root_dev: Option<u64>,
    ) -> Result<Option<Node>> {
        match source {
            Source::Real(path) => {
                let md = match std::fs::symlink_metadata(path) {
                    Ok(md) => md,
                    Err(e) => {
                        self.record_error(path, format!("cannot read: {e}"));
                        return Ok(None);
                    }
                };
                self.entry(path, name, &md, prev, root_dev.unwrap_or(md.dev()))
                    .map(Some)
            }
            Source::Stream(reader) => self.stream(name, reader).map(Some),
            Source::Streams(children) => {
                let mut node = synthetic_node(name, 0o700);
                let prev_tree = self.prev_tree(prev);
                let mut nodes = Vec::new();
                for (n, s) in children {
                    let prev_node = prev_tree.as_ref().and_then(|t| t.find(n));
                    nodes.extend(self.source(n, s, prev_node, None)?);
                }
                node.kind = NodeKind::Dir {
                    tree: self.store_tree(nodes)?,
                };
                Ok(Some(node))
            }
            Source::Virtual(path, children) => {
                let md = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
                let mut node = node_from_metadata(name, &md, &self.names);
                node.xattrs = read_xattrs(path).unwrap_or_default();
                let prev_tree = self.prev_tree(prev);
                let kids: Vec<(&Vec<u8>, &Source)> = children.iter().collect();
                let nodes = kids
                    .par_iter()
                    .map(|(n, s)| {
                        self.source(n, s, prev_tree.as_ref().and_then(|t| t.find(n)), None)
                    })
                    .collect::<Result<Vec<_>>>()?;
                node.kind = NodeKind::Dir {
                    tree: self.store_tree(nodes.into_iter().flatten().collect())?,
                };
                Ok(Some(node))
            }
        }
    }

    /// Stores a stream as one file. Streams are read like large files (one
    /// at a time, their chunks sealed on every core) and have no previous
    /// version to compare with: every byte is read, and only chunks the
    /// vault lacks are stored.
    fn stream(&self, name: &[u8], slot: &Mutex<Option<Box<dyn Read + Send>>>) -> Result<Node> {
        let shown = String::from_utf8_lossy(name).into_owned();
        let mut reader = slot
            .lock()
            .map_err(|_| Error::Cancelled)?
            .take()
            .ok_or_else(|| Error::Invalid(format!("the stream {shown} was given twice")))?;
        let mut buffer = self.large_reader.lock().map_err(|_| Error::Cancelled)?;
        let mut chunks = Vec::new();
        let read = match self.chunk_stream(&mut reader, u64::MAX, &mut buffer, &mut chunks) {
            Ok(read) => read,
            Err(ReadFailure::Vault(e)) => return Err(e),
            Err(ReadFailure::Io(e)) => {
                return Err(Error::SourceFailed {
                    name: shown,
                    message: e.to_string(),
                })
            }
        };
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.bytes_total.fetch_add(read, Ordering::Relaxed);
        self.files_new.fetch_add(1, Ordering::Relaxed);
        let mut node = synthetic_node(name, 0o600);
        node.kind = NodeKind::File {
            size: read,
            extents: if read == 0 {
                Vec::new()
            } else {
                vec![Extent { offset: 0, chunks }]
            },
        };
        Ok(node)
    }

    fn prev_tree(&self, prev: Option<&Node>) -> Option<Tree> {
        match prev.map(|n| &n.kind) {
            Some(NodeKind::Dir { tree }) => match self.vault.read_tree(&self.index, tree) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "previous tree unreadable; reading this directory in full");
                    None
                }
            },
            _ => None,
        }
    }

    fn entry(
        &self,
        path: &Path,
        name: &[u8],
        md: &Metadata,
        prev: Option<&Node>,
        root_dev: u64,
    ) -> Result<Node> {
        self.check_failed()?;
        let mut node = node_from_metadata(name, md, &self.names);
        match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.record_error(path, format!("cannot read extended attributes: {e}")),
        }
        match &node.kind {
            NodeKind::File { .. } => {
                self.progress.files.fetch_add(1, Ordering::Relaxed);
                self.bytes_total.fetch_add(md.size(), Ordering::Relaxed);
                self.file(path, &mut node, md, prev)?;
            }
            NodeKind::Dir { .. } => {
                self.dirs.fetch_add(1, Ordering::Relaxed);
                let nodes = if self.one_file_system && md.dev() != root_dev {
                    Vec::new()
                } else {
                    self.dir_children(path, &mut node, prev, root_dev)?
                };
                node.kind = NodeKind::Dir {
                    tree: self.store_tree(nodes)?,
                };
            }
            NodeKind::Symlink { .. } => match std::fs::read_link(path) {
                Ok(t) => {
                    node.kind = NodeKind::Symlink {
                        target: t.as_os_str().as_bytes().to_vec(),
                    }
                }
                Err(e) => {
                    let msg = format!("cannot read link: {e}");
                    self.record_error(path, msg.clone());
                    node.error = Some(msg);
                }
            },
            _ => {}
        }
        Ok(node)
    }

    fn dir_children(
        &self,
        path: &Path,
        node: &mut Node,
        prev: Option<&Node>,
        root_dev: u64,
    ) -> Result<Vec<Node>> {
        let mut entries: Vec<(Vec<u8>, PathBuf)> = Vec::new();
        let listing = std::fs::read_dir(path).and_then(|rd| {
            for e in rd {
                let e = e?;
                entries.push((e.file_name().as_bytes().to_vec(), e.path()));
            }
            Ok(())
        });
        if let Err(e) = listing {
            let msg = format!("cannot list directory: {e}");
            self.record_error(path, msg.clone());
            node.error = Some(msg);
            return Ok(Vec::new());
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries.retain(|(name, p)| !self.excludes.excluded(p, name));
        let prev_tree = self.prev_tree(prev);
        let nodes = entries
            .par_iter()
            .map(|(name, p)| {
                let md = match std::fs::symlink_metadata(p) {
                    Ok(md) => md,
                    Err(e) => {
                        self.record_error(p, format!("cannot read (vanished during backup?): {e}"));
                        return Ok(None);
                    }
                };
                let prev_node = prev_tree.as_ref().and_then(|t| t.find(name));
                self.entry(p, name, &md, prev_node, root_dev).map(Some)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(nodes.into_iter().flatten().collect())
    }

    fn reusable(&self, node: &Node, prev: Option<&Node>) -> Option<Vec<Extent>> {
        let prev = prev?;
        let (
            NodeKind::File { size, .. },
            NodeKind::File {
                size: psize,
                extents,
            },
        ) = (&node.kind, &prev.kind)
        else {
            return None;
        };
        // A file changed within the same clock tick as the previous backup
        // read it keeps its size, mtime and ctime (file systems stamp times
        // from a coarse clock). Only metadata older than the previous
        // backup's start, by a margin, proves the content unchanged.
        let same = prev.error.is_none()
            && size == psize
            && node.mtime == prev.mtime
            && node.ctime == prev.ctime
            && node.inode == prev.inode
            && millis(prev.ctime) < self.trusted_before;
        if !same {
            return None;
        }
        // The previous point's chunks must still be in the vault.
        extents
            .iter()
            .flat_map(|e| &e.chunks)
            .all(|c| self.index.contains(&c.id))
            .then(|| extents.clone())
    }

    fn file(&self, path: &Path, node: &mut Node, md: &Metadata, prev: Option<&Node>) -> Result<()> {
        let size = md.size();
        if let Some(extents) = self.reusable(node, prev) {
            self.files_unchanged.fetch_add(1, Ordering::Relaxed);
            node.kind = NodeKind::File { size, extents };
            return Ok(());
        }
        if prev.is_some() {
            self.files_changed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.files_new.fetch_add(1, Ordering::Relaxed);
        }
        let link_key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            // Another name of an inode read in this run: same content.
            if let Some((s, extents)) = self
                .hardlinks
                .lock()
                .ok()
                .and_then(|m| m.get(&link_key).cloned())
            {
                node.kind = NodeKind::File { size: s, extents };
                return Ok(());
            }
        }
        match self.read_file(path, size, md.blocks()) {
            Ok((actual_size, extents)) => {
                if md.nlink() > 1 {
                    if let Ok(mut m) = self.hardlinks.lock() {
                        m.insert(link_key, (actual_size, extents.clone()));
                    }
                }
                node.kind = NodeKind::File {
                    size: actual_size,
                    extents,
                };
            }
            Err(ReadFailure::Io(e)) => {
                let msg = format!("cannot read file: {e}");
                self.record_error(path, msg.clone());
                node.error = Some(msg);
                node.kind = NodeKind::File {
                    size,
                    extents: Vec::new(),
                };
            }
            Err(ReadFailure::Vault(e)) => return Err(e),
        }
        Ok(())
    }

    /// Reads and stores a file's data; `blocks` is its allocation in 512-byte
    /// units, as `stat` reported it.
    fn read_file(
        &self,
        path: &Path,
        size: u64,
        blocks: u64,
    ) -> std::result::Result<(u64, Vec<Extent>), ReadFailure> {
        // The holder takes no other lock while it reads, and its batches are
        // sealed by plain threads it waits for without taking other work
        // (rayon's join would let it steal a task that waits for this lock),
        // so this cannot deadlock.
        let large = size > SMALL_FILE;
        let mut large_reader = if large {
            Some(
                self.large_reader
                    .lock()
                    .map_err(|_| ReadFailure::Vault(Error::Cancelled))?,
            )
        } else {
            None
        };
        let mut own_buffer = Vec::new();
        let buffer = match large_reader.as_mut() {
            Some(b) => &mut **b,
            None => &mut own_buffer,
        };
        let mut file = File::open(path).map_err(ReadFailure::Io)?;
        let mut extents = Vec::new();
        let mut end = 0u64;
        // A file with as many blocks as bytes has no holes worth finding
        // (only its own metadata blocks could hide a small one, which then
        // reads as zeros): asking the file system costs two system calls per
        // file, a fifth of what a small file costs.
        let dense = size > 0 && blocks.saturating_mul(512) >= size;
        let ranges = if dense {
            vec![(0, size)]
        } else {
            // Moves the file's offset: every range is sought below.
            data_ranges(&file, size)
        };
        for (offset, len) in ranges {
            if !dense {
                file.seek(SeekFrom::Start(offset))
                    .map_err(ReadFailure::Io)?;
            }
            let mut chunks = Vec::new();
            let read = if large {
                let mut reader = Prefetching::new(&file, offset, offset + len, PREFETCH_WINDOW);
                self.chunk_stream(&mut reader, len, buffer, &mut chunks)?
            } else {
                self.chunk_stream(&mut file, len, buffer, &mut chunks)?
            };
            self.progress.bytes_read.fetch_add(read, Ordering::Relaxed);
            if read > 0 {
                extents.push(Extent { offset, chunks });
                end = offset + read;
            }
            if read < len {
                // The file shrank while we read it: keep what was there.
                tracing::warn!(path = %path.display(), "file changed size during backup");
                return Ok((end, extents));
            }
        }
        Ok((size, extents))
    }

    fn chunk_stream(
        &self,
        reader: &mut impl Read,
        len: u64,
        buffer: &mut Vec<u8>,
        out: &mut Vec<ChunkRef>,
    ) -> std::result::Result<u64, ReadFailure> {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut vault_error = None;
        // One batch is sealed while the next is read: the reader waits for a
        // batch's ids only when the following batch is ready to go.
        let mut sealing: Option<SealingBatch> = None;
        let flush = |batch: &mut Vec<Vec<u8>>,
                     sealing: &mut Option<SealingBatch>,
                     out: &mut Vec<ChunkRef>|
         -> Result<()> {
            // A large file is read batch by batch: a cancel stops it here.
            self.check_failed()?;
            if let Some(previous) = sealing.take() {
                previous.collect(out)?;
            }
            if batch.len() <= 1 {
                for c in batch.drain(..) {
                    out.push(self.store(BlobKind::Data, &c)?);
                }
                return Ok(());
            }
            let sender = open_sender(&self.seal_jobs)?;
            let (reply, results) = crossbeam_channel::unbounded();
            let count = batch.len();
            for (position, data) in batch.drain(..).enumerate() {
                sender
                    .send(SealJob {
                        position,
                        data,
                        reply: reply.clone(),
                    })
                    .map_err(|_| Error::Cancelled)?;
            }
            *sealing = Some(SealingBatch { results, count });
            Ok(())
        };
        let read = self
            .vault
            .chunker
            .split_with_buffer(reader.by_ref(), len, buffer, |chunk| {
                batch_bytes += chunk.len();
                batch.push(chunk);
                if batch_bytes >= BATCH_BYTES {
                    batch_bytes = 0;
                    if let Err(e) = flush(&mut batch, &mut sealing, out) {
                        vault_error = Some(e);
                        return Err(std::io::Error::other("vault write failed"));
                    }
                }
                Ok(())
            });
        // The batch in flight is collected even when reading failed, so no
        // sealing thread is left replying to nobody.
        let finished = flush(&mut batch, &mut sealing, out).and_then(|()| match sealing.take() {
            Some(last) => last.collect(out),
            None => Ok(()),
        });
        if let Some(e) = vault_error {
            return Err(ReadFailure::Vault(e));
        }
        let read = read.map_err(ReadFailure::Io)?;
        finished.map_err(ReadFailure::Vault)?;
        Ok(read)
    }
}

/// A batch of one file's chunks handed to the sealing threads.
struct SealingBatch {
    results: crossbeam_channel::Receiver<(usize, Result<ChunkRef>)>,
    count: usize,
}

impl SealingBatch {
    /// Waits for every chunk of the batch and appends their ids in order.
    fn collect(self, out: &mut Vec<ChunkRef>) -> Result<()> {
        let mut refs: Vec<Option<ChunkRef>> = vec![None; self.count];
        let mut first_error = None;
        for _ in 0..self.count {
            let (position, r) = self.results.recv().map_err(|_| Error::Cancelled)?;
            match r {
                Ok(chunk) => refs[position] = Some(chunk),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        out.extend(refs.into_iter().flatten());
        Ok(())
    }
}

enum ReadFailure {
    Io(std::io::Error),
    Vault(Error),
}

/// Reads the trailers of packs that no index lists (left by an interrupted or
/// still-running backup) so their blobs can be reused.
fn adopt_orphans(
    vault: &Vault,
    index: &Index,
    condemned: &BTreeMap<ObjectId, i64>,
) -> Result<Vec<PackRecord>> {
    let orphans: Vec<ObjectId> = vault
        .storage
        .list("packs/")?
        .iter()
        .filter_map(|o| o.path.rsplit('/').next().and_then(ObjectId::parse))
        .filter(|id| !index.has_pack(id) && !condemned.contains_key(id))
        .collect();
    Ok(orphans
        .par_iter()
        .filter_map(|id| match vault.read_trailer(id) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(pack = %id, error = %e, "ignoring an unreadable unindexed pack");
                None
            }
        })
        .collect())
}

/// Backs up `paths` into the vault as one new recovery point.
pub fn backup(
    vault: &Vault,
    paths: &[PathBuf],
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    if paths.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut abs = Vec::new();
    for p in paths {
        let a = absolute(p)?;
        std::fs::symlink_metadata(&a).map_err(|e| Error::io(&a, e))?;
        abs.push(a);
    }
    abs.sort();
    abs.dedup();
    let root = build_sources(&abs);
    write_point(vault, root, abs, opts, progress, started)
}

/// Stores streams as the files of one new recovery point, `/NAME` each. The
/// item name is required: streams have no paths to name it after.
pub fn backup_streams(
    vault: &Vault,
    streams: Vec<NamedStream>,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    if opts.item.is_none() {
        return Err(Error::Invalid(
            "a streamed backup needs an item name".into(),
        ));
    }
    if streams.is_empty() {
        return Err(Error::Invalid("nothing to back up: no stream".into()));
    }
    let mut children = BTreeMap::new();
    let mut paths = Vec::new();
    for s in streams {
        if s.name.is_empty() || s.name.contains('/') || s.name == "." || s.name == ".." {
            return Err(Error::Invalid(format!(
                "{:?} cannot name a stream: use a plain file name",
                s.name
            )));
        }
        paths.push(Path::new("/").join(&s.name));
        let previous = children.insert(
            s.name.clone().into_bytes(),
            Source::Stream(Mutex::new(Some(s.reader))),
        );
        if previous.is_some() {
            return Err(Error::Invalid(format!("two streams are named {}", s.name)));
        }
    }
    write_point(
        vault,
        Source::Streams(children),
        paths,
        opts,
        progress,
        started,
    )
}

/// Walks `root`, stores what it holds, and commits the recovery point.
fn write_point(
    vault: &Vault,
    root_source: Source,
    abs: Vec<PathBuf>,
    opts: &BackupOptions,
    progress: &Progress,
    started: Instant,
) -> Result<BackupReport> {
    let host = opts.host.clone().unwrap_or_else(hostname);
    let item = opts
        .item
        .clone()
        .unwrap_or_else(|| default_item(&host, &abs));
    let excludes = Excludes::new(&opts.excludes)?;

    // The marker goes up before the index is read: a prune that condemns
    // packs after this moment waits for this backup before deleting them.
    let marker = if vault.has_journal() {
        Some(crate::locks::hold(vault, crate::locks::Activity::Backup)?)
    } else {
        None
    };
    // Condemned packs are neither deduplicated against nor adopted: a later
    // prune may delete them once this backup is over. A pack condemned
    // after this read waits for this backup (its marker is up) and is
    // reprieved if the new point uses it.
    let condemned = if vault.has_journal() {
        vault.state()?.condemned
    } else {
        Default::default()
    };
    let mut index = vault.load_index_excluding(crate::index::Purpose::Dedup, &condemned)?;
    let adopted = adopt_orphans(vault, &index, &condemned)?;
    if !adopted.is_empty() {
        tracing::info!(
            packs = adopted.len(),
            "reusing packs left by an interrupted backup"
        );
        index.extend(adopted.iter().cloned());
    }
    let parent = vault
        .points()?
        .into_iter()
        .filter(|p| p.manifest.item == item)
        .max_by_key(|p| p.manifest.time);
    let prev_root = parent.as_ref().map(|p| dir_stub(p.manifest.tree));

    // A rendezvous channel: a finished pack waits in its packer's hands until
    // an uploader is free, rather than piling up in a queue.
    let (tx, rx) = bounded::<FinishedPack>(0);
    let written: Mutex<Vec<PackRecord>> = Mutex::new(Vec::new());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (seal_tx, seal_rx) = bounded::<SealJob>(cores);
    // More threads than cores: file reads block, and the extra threads keep
    // the CPUs busy with chunks of other files meanwhile.
    let worker_threads = cores * 2 + 2;
    // The previous backup's start, in milliseconds, less the margin.
    let trusted_before = parent.as_ref().map_or(i64::MIN, |p| {
        let m = &p.manifest;
        millis(m.time) - m.stats.duration_ms as i64 - RACY_MARGIN_SECS * 1000
    });
    let session = Session {
        trusted_before,
        vault,
        index,
        pending: (0..64).map(|_| Mutex::new(HashSet::new())).collect(),
        data_pack: Mutex::new(new_pack(BlobKind::Data)),
        runs: (0..worker_threads + 1)
            .map(|_| Mutex::new(Run::default()))
            .collect(),
        tree_pack: Mutex::new(new_pack(BlobKind::Tree)),
        uploads: Mutex::new(Some(tx)),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
        excludes,
        one_file_system: opts.one_file_system,
        names: Names::default(),
        progress,
        errors: Mutex::new(Vec::new()),
        hardlinks: Mutex::new(HashMap::new()),
        files_new: AtomicU64::new(0),
        files_changed: AtomicU64::new(0),
        files_unchanged: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        bytes_total: AtomicU64::new(0),
        large_reader: Mutex::new(Vec::new()),
        seal_jobs: Mutex::new(Some(seal_tx)),
        spare_packs: Mutex::new(Vec::new()),
        sampler: Mutex::new(if !vault.writes_dictionaries() {
            Sampler::Off
        } else if let Some(dict) = vault.writing_dictionary() {
            Sampler::Using(dict)
        } else {
            Sampler::Collecting(Samples::default())
        }),
    };
    let workers = rayon::ThreadPoolBuilder::new()
        .num_threads(worker_threads)
        .thread_name(|i| format!("coffer-backup-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start worker threads: {e}")))?;

    let walked: Result<ChunkId> = std::thread::scope(|scope| {
        let uploaders: Vec<_> = (0..UPLOAD_THREADS)
            .map(|_| {
                let rx = rx.clone();
                let session = &session;
                let written = &written;
                scope.spawn(move || upload_loop(session, written, rx))
            })
            .collect();
        drop(rx);
        let sealers: Vec<_> = (0..cores)
            .map(|_| {
                let jobs = seal_rx.clone();
                let session = &session;
                scope.spawn(move || {
                    for job in jobs.iter() {
                        let r = session.store(BlobKind::Data, &job.data);
                        let _ = job.reply.send((job.position, r));
                    }
                })
            })
            .collect();
        drop(seal_rx);
        let result =
            workers.install(|| session.source(b"", &root_source, prev_root.as_ref(), None));
        let result = result.and_then(|node| {
            let tree = match node.map(|n| n.kind) {
                Some(NodeKind::Dir { tree }) => tree,
                _ => {
                    return Err(Error::Invalid(
                        "the root of a backup could not be read".into(),
                    ))
                }
            };
            let remaining = session
                .sampler
                .lock()
                .map_err(|_| Error::Cancelled)?
                .take_remaining();
            if !remaining.ids.is_empty() {
                session.train_and_seal(remaining, true)?;
            }
            session.flush_runs()?;
            for builder in [&session.data_pack, &session.tree_pack] {
                let last = {
                    let mut b = builder.lock().map_err(|_| Error::Cancelled)?;
                    let kind = b.kind;
                    // Nothing is added after this: no room to reserve.
                    std::mem::replace(&mut *b, PackBuilder::with_capacity(kind, 0))
                };
                session.ship(last)?;
            }
            Ok(tree)
        });
        // Closing the channels lets the sealers and uploaders drain and stop.
        if let Ok(mut s) = session.seal_jobs.lock() {
            s.take();
        }
        for s in sealers {
            let _ = s.join();
        }
        if let Ok(mut s) = session.uploads.lock() {
            s.take();
        }
        for u in uploaders {
            let _ = u.join();
        }
        result
    });
    let upload_failure = session.failure.lock().ok().and_then(|mut f| f.take());
    let tree = match (walked, upload_failure) {
        (_, Some(e)) => return Err(e),
        (Err(e), None) => return Err(e),
        (Ok(tree), None) => tree,
    };

    // Commit: index (new and adopted packs), then the manifest.
    let mut records = written.into_inner().map_err(|_| Error::Cancelled)?;
    let packs_written = records.len();
    let packs_adopted = adopted.len();
    records.extend(adopted);
    if let Some(m) = &marker {
        m.ensure_fresh()?;
    }
    let mut index_bytes = 0;
    if !records.is_empty() {
        index_bytes = vault.write_index(&records)?.1;
    }
    let errors = session.errors.into_inner().map_err(|_| Error::Cancelled)?;
    let stats = Stats {
        files: progress.files.load(Ordering::Relaxed),
        dirs: session.dirs.load(Ordering::Relaxed),
        files_new: session.files_new.load(Ordering::Relaxed),
        files_changed: session.files_changed.load(Ordering::Relaxed),
        files_unchanged: session.files_unchanged.load(Ordering::Relaxed),
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        bytes_new: progress.bytes_new.load(Ordering::Relaxed),
        bytes_stored: progress.bytes_stored.load(Ordering::Relaxed) + index_bytes,
        bytes_total: session.bytes_total.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
        errors: errors.len() as u64,
    };
    let manifest = Manifest {
        time: opts.time.unwrap_or_else(now),
        host,
        item,
        paths: abs
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect(),
        tags: opts.tags.clone(),
        parent: parent.map(|p| p.id),
        tree,
        consistency: opts.consistency.unwrap_or(Consistency::CrashConsistent),
        stats,
        errors,
        software: format!("coffer {}", env!("CARGO_PKG_VERSION")),
    };
    if let Some(m) = &marker {
        m.ensure_fresh()?;
    }
    let point = vault.write_point(&manifest, opts.expire_at)?;
    drop(marker);
    Ok(BackupReport {
        point,
        manifest,
        packs_written,
        packs_adopted,
    })
}

fn upload_loop(
    session: &Session<'_>,
    written: &Mutex<Vec<PackRecord>>,
    rx: crossbeam_channel::Receiver<FinishedPack>,
) {
    let vault = session.vault;
    for pack in rx.iter() {
        if session.failed.load(Ordering::SeqCst) {
            continue; // drain so that senders never block on a dead queue
        }
        let path = pack_path(&pack.id);
        let len = pack.bytes.len() as u64;
        if pack.kind == BlobKind::Tree {
            vault.cache.keep(&path, &pack.bytes);
        }
        match vault.storage.put_reclaiming(&path, pack.bytes) {
            Ok(Some(buf)) if pack.kind == BlobKind::Data => session.reclaim_pack_buffer(buf),
            Ok(_) => {}
            Err(e) => {
                if let Ok(mut f) = session.failure.lock() {
                    f.get_or_insert(e);
                }
                session.failed.store(true, Ordering::SeqCst);
                continue;
            }
        }
        session
            .progress
            .bytes_stored
            .fetch_add(len, Ordering::Relaxed);
        if let Ok(mut w) = written.lock() {
            w.push(PackRecord {
                id: pack.id,
                kind: pack.kind,
                entries: pack.entries,
            });
        }
    }
}

/// An empty pack with room for its target (`add_to_pack` keeps it there).
fn new_pack(kind: BlobKind) -> PackBuilder {
    let target = match kind {
        BlobKind::Data => DATA_PACK_TARGET,
        BlobKind::Tree => TREE_PACK_TARGET,
    };
    PackBuilder::with_capacity(kind, target)
}

/// A directory node that only carries a tree id (the previous point's root).
/// A node for an entry with no file system object behind it, owned by this
/// process and stamped now.
fn synthetic_node(name: &[u8], mode: u32) -> Node {
    let stamp = now();
    Node {
        name: name.to_vec(),
        kind: NodeKind::Fifo,
        mode,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        user: None,
        group: None,
        mtime: stamp,
        ctime: stamp,
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
        error: None,
    }
}

fn dir_stub(tree: ChunkId) -> Node {
    Node {
        name: Vec::new(),
        kind: NodeKind::Dir { tree },
        mode: 0,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: Timestamp::default(),
        ctime: Timestamp::default(),
        inode: 0,
        device: 0,
        links: 0,
        xattrs: Vec::new(),
        error: None,
    }
}
