//! The walker: the backed-up paths in, tree nodes out. Directories are
//! walked in parallel (rayon, one task per entry); a file whose size, mtime,
//! ctime and inode match the previous point's node reuses its chunk list
//! unread (see `reusable`), any other is read and cut into chunks that go
//! to the [`Packer`]. Small files are read by any worker; large ones one at
//! a time, their chunks sealed on every core by the sealing threads.
//!
//! An entry that cannot be read is recorded in the point's errors and the
//! walk goes on; a failure of the vault stops it.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::fsmeta::{data_ranges, node_from_metadata, read_xattrs, Names, Prefetching};
use crate::pack::BlobKind;
use crate::point::EntryError;
use crate::tree::{ChunkRef, Extent, Node, NodeKind, Timestamp, Tree};

use super::packer::{Packer, SealingBatch};
use super::{now, Progress};

/// Bytes of chunks hashed and sealed together in parallel for one file.
const BATCH_BYTES: usize = 4 << 20;
fn millis(t: Timestamp) -> i64 {
    t.secs
        .saturating_mul(1000)
        .saturating_add((t.nanos / 1_000_000) as i64)
}

/// Files whose ctime lies this close before the previous backup's start are
/// read again even when their metadata is unchanged; see `Walker::reusable`.
const RACY_MARGIN_SECS: i64 = 2;
/// Files up to this size are read whole by any worker; larger ones are read
/// one at a time through `large_reader`, their chunks sealed on every core.
const SMALL_FILE: u64 = 1 << 20;
/// How far ahead of the large-file reader the kernel is asked to read.
const PREFETCH_WINDOW: u64 = 8 << 20;

/// The directory structure above and at the backed-up paths.
pub(super) enum Source {
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

pub(super) fn build_sources(paths: &[PathBuf]) -> Source {
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

pub(super) struct Excludes {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Excludes {
    pub(super) fn new(patterns: &[String]) -> Result<Self> {
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

pub(super) struct Walker<'a> {
    pub(super) packer: &'a Packer<'a>,
    /// Unix milliseconds: files whose recorded ctime is older than this may
    /// be reused from the previous point unread (see `reusable`).
    trusted_before: i64,
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
}

/// What the walk counted, for the point's statistics.
pub(super) struct Walked {
    pub(super) errors: Vec<EntryError>,
    pub(super) dirs: u64,
    pub(super) files_new: u64,
    pub(super) files_changed: u64,
    pub(super) files_unchanged: u64,
    pub(super) bytes_total: u64,
}

impl<'a> Walker<'a> {
    /// `previous` is the previous point's (time, duration in ms), when there is one.
    pub(super) fn new(
        packer: &'a Packer<'a>,
        excludes: Excludes,
        one_file_system: bool,
        progress: &'a Progress,
        previous: Option<(Timestamp, u64)>,
    ) -> Walker<'a> {
        // The previous backup's start, in milliseconds, less the margin.
        let trusted_before = previous.map_or(i64::MIN, |(time, duration_ms)| {
            millis(time) - duration_ms as i64 - RACY_MARGIN_SECS * 1000
        });
        Walker {
            packer,
            trusted_before,
            excludes,
            one_file_system,
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
        }
    }

    /// The counters and errors, once the walk is over.
    pub(super) fn into_walked(self) -> Result<Walked> {
        Ok(Walked {
            errors: self.errors.into_inner().map_err(|_| Error::Cancelled)?,
            dirs: self.dirs.into_inner(),
            files_new: self.files_new.into_inner(),
            files_changed: self.files_changed.into_inner(),
            files_unchanged: self.files_unchanged.into_inner(),
            bytes_total: self.bytes_total.into_inner(),
        })
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

    /// Backs up one source entry (the walk's unit of work).
    pub(super) fn source(
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
                    tree: self.packer.store_tree(nodes)?,
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
                    tree: self
                        .packer
                        .store_tree(nodes.into_iter().flatten().collect())?,
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
            Some(NodeKind::Dir { tree }) => {
                match self.packer.dest().previous_tree(self.packer.index(), tree) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!(error = %e, "previous tree unreadable; reading this directory in full");
                        None
                    }
                }
            }
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
        self.packer.check_failed()?;
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
                    tree: self.packer.store_tree(nodes)?,
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
            .all(|c| self.packer.index().contains(&c.id))
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
            self.packer.check_failed()?;
            if let Some(previous) = sealing.take() {
                previous.collect(out)?;
            }
            if batch.len() <= 1 {
                for c in batch.drain(..) {
                    out.push(self.packer.store(BlobKind::Data, &c)?);
                }
                return Ok(());
            }
            *sealing = Some(self.packer.seal_batch(batch)?);
            Ok(())
        };
        let read =
            self.packer
                .dest()
                .chunker()
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

enum ReadFailure {
    Io(std::io::Error),
    Vault(Error),
}

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
