//! The backup pipeline: [`walker`] turns the paths into tree nodes, [`packer`]
//! turns their bytes into packs, and this module runs them and commits.
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

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::bounded;

use crate::error::{Error, Result};
use crate::host::hostname;
use crate::ids::{ChunkId, ObjectId};
use crate::index::PackRecord;
use crate::pack::FinishedPack;
use crate::point::{Consistency, Manifest, Stats};
use crate::tree::{Node, NodeKind, Timestamp};

mod destination;
mod disk;
mod packer;
mod to_vault;
mod walker;

pub use destination::{Destination, Parent, Start};
pub(crate) use disk::is_zero;
pub use disk::{Changed, DiskInput, DiskMeta, DiskReader, DiskReport, ReadMethod};

pub use packer::RUN_BYTES;
use packer::{seal_loop, upload_loop, Packer, SealJob};
use walker::{build_sources, Excludes, Source, Walker};

// Memory is bounded by these settings, not by the data: one file above
// `SMALL_FILE` is read at a time, holding the kept read-ahead buffer (8 MiB)
// and two batches of chunks (one read, one sealing) with their sealed copies;
// smaller files hold at most themselves; packs exist once filling, once
// waiting to be handed over, and once per uploader. docs/PERFORMANCE.md has
// the sum.

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
    /// How each disk of a disk point was read.
    pub disks: Vec<DiskReport>,
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
            disks: self.disks.iter().map(DiskReport::summary).collect(),
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

/// A byte stream to store as one file of a point: a database dump, a
/// command's output. A read error fails the whole backup: half a dump is
/// not a recovery point.
pub struct NamedStream {
    /// The file's name in the point; it must not contain `/`.
    pub name: String,
    pub reader: Box<dyn Read + Send>,
}

/// Backs up `paths` into the vault as one new recovery point.
pub fn backup(
    vault: &dyn Destination,
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
    write_point(vault, Fill::Walk(root), abs, opts, progress, started)
}

/// Stores streams as the files of one new recovery point, `/NAME` each. The
/// item name is required: streams have no paths to name it after.
pub fn backup_streams(
    vault: &dyn Destination,
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
        Fill::Walk(Source::Streams(children)),
        paths,
        opts,
        progress,
        started,
    )
}

/// What fills a point: a walk of paths and streams, or disk images.
enum Fill {
    Walk(Source),
    Disks(Vec<DiskInput>),
}

/// The vault format that holds disk points.
pub const DISK_FORMAT: u16 = 6;

/// Stores disk images as one new recovery point, `/NAME` each, in fixed
/// blocks (see `crate::disk_map`). The item name is required.
pub fn backup_disks(
    vault: &dyn Destination,
    disks: Vec<DiskInput>,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    if vault.format_version() < DISK_FORMAT {
        return Err(Error::NeedsUpgrade {
            version: vault.format_version(),
            feature: "disk points",
            needed: DISK_FORMAT,
        });
    }
    if opts.item.is_none() {
        return Err(Error::Invalid("a disk backup needs an item name".into()));
    }
    if disks.is_empty() {
        return Err(Error::Invalid("nothing to back up: no disk".into()));
    }
    let mut paths = Vec::new();
    for d in &disks {
        if d.name.is_empty() || d.name.contains('/') || d.name == "." || d.name == ".." {
            return Err(Error::Invalid(format!(
                "{:?} cannot name a disk: use a plain file name",
                d.name
            )));
        }
        let path = Path::new("/").join(&d.name);
        if paths.contains(&path) {
            return Err(Error::Invalid(format!("two disks are named {}", d.name)));
        }
        paths.push(path);
    }
    paths.sort();
    write_point(vault, Fill::Disks(disks), paths, opts, progress, started)
}

/// Fills a point, stores what it holds, and commits the recovery point.
fn write_point(
    vault: &dyn Destination,
    fill: Fill,
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
    let Start {
        marker,
        index,
        adopted,
        parent,
    } = vault.start(&item)?;
    let prev_root = parent.as_ref().map(|p| dir_stub(p.tree));

    // A rendezvous channel: a finished pack waits in its packer's hands until
    // an uploader is free, rather than piling up in a queue.
    let (tx, rx) = bounded::<FinishedPack>(0);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (seal_tx, seal_rx) = bounded::<SealJob>(cores);
    // More threads than cores: file reads block, and the extra threads keep
    // the CPUs busy with chunks of other files meanwhile.
    let worker_threads = cores * 2 + 2;
    let packer = Packer::new(vault, index, progress, worker_threads + 1, tx, seal_tx);
    let threads = Threads {
        uploads: rx,
        seal_jobs: seal_rx,
        sealers: cores,
        workers: worker_threads,
    };
    let (tree, written, walked, disks) = match fill {
        Fill::Walk(root_source) => {
            let previous = parent.as_ref().map(|p| (p.time, p.duration_ms));
            let walker = Walker::new(&packer, excludes, opts.one_file_system, progress, previous);
            let (tree, written) = threads.run(&packer, || {
                match walker.source(b"", &root_source, prev_root.as_ref(), None)? {
                    Some(Node {
                        kind: NodeKind::Dir { tree },
                        ..
                    }) => Ok(tree),
                    _ => Err(Error::Invalid(
                        "the root of a backup could not be read".into(),
                    )),
                }
            })?;
            (tree, written, walker.into_walked()?, Vec::new())
        }
        Fill::Disks(inputs) => {
            let run = disk::DiskRun::new(&packer, parent.as_ref(), progress);
            let (tree, written) = threads.run(&packer, || run.back_up(inputs))?;
            let (walked, disks) = run.finish()?;
            (tree, written, walked, disks)
        }
    };

    // Commit: index (new and adopted packs), then the manifest.
    let mut records = written;
    let packs_written = records.len();
    let packs_adopted = adopted.len();
    records.extend(adopted);
    if let Some(m) = &marker {
        m.ensure_fresh()?;
    }
    let mut index_bytes = 0;
    if !records.is_empty() {
        index_bytes = vault.write_index(&records)?;
    }
    let stats = Stats {
        files: progress.files.load(Ordering::Relaxed),
        dirs: walked.dirs,
        files_new: walked.files_new,
        files_changed: walked.files_changed,
        files_unchanged: walked.files_unchanged,
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        bytes_new: progress.bytes_new.load(Ordering::Relaxed),
        bytes_stored: progress.bytes_stored.load(Ordering::Relaxed) + index_bytes,
        bytes_total: walked.bytes_total,
        duration_ms: started.elapsed().as_millis() as u64,
        errors: walked.errors.len() as u64,
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
        errors: walked.errors,
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
        disks,
    })
}

/// The threads of one backup besides the walk's own pool: uploaders and
/// sealing threads, fed by the packer's two queues.
struct Threads {
    uploads: crossbeam_channel::Receiver<FinishedPack>,
    seal_jobs: crossbeam_channel::Receiver<SealJob>,
    sealers: usize,
    workers: usize,
}

impl Threads {
    /// Runs `fill` (which returns the root tree) on the worker pool with
    /// every thread running, then stops them; returns the root tree and the
    /// packs uploaded.
    fn run(
        self,
        packer: &Packer<'_>,
        fill: impl FnOnce() -> Result<ChunkId> + Send,
    ) -> Result<(ChunkId, Vec<PackRecord>)> {
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(self.workers)
            .thread_name(|i| format!("coffer-backup-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start worker threads: {e}")))?;
        let written: Mutex<Vec<PackRecord>> = Mutex::new(Vec::new());
        let walked: Result<ChunkId> = std::thread::scope(|scope| {
            let uploaders: Vec<_> = (0..packer::UPLOAD_THREADS)
                .map(|_| {
                    let rx = self.uploads.clone();
                    let written = &written;
                    scope.spawn(move || upload_loop(packer, written, rx))
                })
                .collect();
            let sealers: Vec<_> = (0..self.sealers)
                .map(|_| {
                    let jobs = self.seal_jobs.clone();
                    scope.spawn(move || seal_loop(packer, jobs))
                })
                .collect();
            let result = workers
                .install(fill)
                .and_then(|tree| packer.finish().map(|()| tree));
            // Closing the channels lets the sealers and uploaders drain and stop.
            packer.close_sealing();
            for s in sealers {
                let _ = s.join();
            }
            packer.close_uploads();
            for u in uploaders {
                let _ = u.join();
            }
            result
        });
        let tree = match (walked, packer.take_failure()) {
            (_, Some(e)) | (Err(e), None) => return Err(e),
            (Ok(tree), None) => tree,
        };
        let written = written.into_inner().map_err(|_| Error::Cancelled)?;
        Ok((tree, written))
    }
}

/// A directory node that only carries a tree id (the previous point's root).
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
