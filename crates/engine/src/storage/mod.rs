//! The storage location: a thin, synchronous facade over OpenDAL.
//!
//! The engine only needs five verbs on immutable objects (put, get, get a
//! range, list, delete), so this module keeps OpenDAL behind them. Adding an
//! object store is a matter of parsing another URL scheme in [`Storage::open`];
//! nothing else in the engine changes. OpenDAL is async; the facade owns a
//! small Tokio runtime and blocks on it, which lets the CPU-bound pipelines
//! call storage from plain worker threads.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use opendal::layers::RetryLayer;
use opendal::{ErrorKind, Operator};

use crate::error::{Error, Result};
pub use crate::location::{Credentials, Scheme, StorageFailure};
pub use remote::ObjectStore;

mod remote;
mod stream;
pub use stream::ObjectWriter;

/// A storage location, cheap to clone and shareable between threads.
#[derive(Clone)]
pub struct Storage {
    op: Operator,
    /// The operator without the retry layer, for other retry policies.
    base: Operator,
    runtime: Arc<tokio::runtime::Runtime>,
    display: String,
    scheme: Scheme,
    local_root: Option<std::path::PathBuf>,
    credentials: Arc<Credentials>,
    /// How long an unreachable service is waited for (see `call`).
    reconnect_for: Duration,
    upload_limit: Option<Arc<Throttle>>,
    download_limit: Option<Arc<Throttle>>,
    /// Synchronous replicas: every write and delete goes to them too, and
    /// a write returns only once each has the object.
    sync_replicas: Arc<std::sync::RwLock<Vec<Storage>>>,
    /// A local tier that reads try first (see `tier`).
    read_first: Arc<std::sync::RwLock<Option<Storage>>>,
    /// Bytes read from the local tier and from this location.
    read_counts: Arc<[std::sync::atomic::AtomicU64; 2]>,
    /// Set for a location reached through a service (see `remote`): every
    /// verb goes there, and `op` is an empty in-memory operator that is
    /// never called.
    remote: Option<Arc<dyn ObjectStore>>,
}

/// A bandwidth limit shared by every thread using one location. Each
/// transfer books its own transmission time after the ones before it, and
/// an upload waits until its slot has passed before it goes (a download,
/// whose size is known only afterwards, waits after it): the average rate
/// never exceeds the limit, whatever the object sizes, and no single large
/// pack is refused for being bigger than a burst.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: f64,
    next_free: std::sync::Mutex<std::time::Instant>,
}

impl Throttle {
    pub fn new(bytes_per_second: u64) -> Self {
        Throttle {
            bytes_per_second: bytes_per_second.max(1) as f64,
            next_free: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    fn take(&self, bytes: u64) {
        let now = std::time::Instant::now();
        let until = match self.next_free.lock() {
            Ok(mut next) => {
                let start = (*next).max(now);
                *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
                *next
            }
            Err(_) => return,
        };
        std::thread::sleep(until.saturating_duration_since(now));
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.display)
            .finish()
    }
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Path relative to the vault root, with `/` separators.
    pub path: String,
    pub size: u64,
}

/// Transient failures (a dropped connection, a 503, a throttled request)
/// are retried with exponential backoff and jitter, for up to about a
/// minute in all, so a storage server that restarts does not fail a backup.
fn retry_layer() -> RetryLayer {
    RetryLayer::new()
        .with_max_times(8)
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(15))
        .with_factor(2.0)
        .with_jitter()
}

impl Storage {
    /// Opens a location with the credentials found in the environment.
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &Credentials::from_env())
    }

    /// Opens a location (a path or URL, see `location`) with explicit
    /// credentials. Nothing is contacted yet.
    pub fn open_with(location: &str, credentials: &Credentials) -> Result<Self> {
        // OpenDAL's HTTP services need a process-wide HTTP client; the
        // first call installs it, later calls do nothing.
        opendal::install_default();
        let resolved = crate::location::resolve(location, credentials)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coffer-storage")
            .enable_all()
            .build()
            .map_err(|e| Error::io(std::path::Path::new(location), e))?;
        // A local disk has no transient failures worth a minute of retries
        // (a full disk stays full); network services do.
        let op = match resolved.scheme {
            Scheme::Fs => resolved.operator.clone(),
            _ => resolved.operator.clone().layer(retry_layer()),
        };
        Ok(Storage {
            op,
            base: resolved.operator,
            runtime: Arc::new(runtime),
            display: resolved.display,
            scheme: resolved.scheme,
            local_root: resolved.local_root,
            credentials: Arc::new(credentials.clone()),
            reconnect_for: match resolved.scheme {
                Scheme::Fs => Duration::ZERO,
                _ => Duration::from_secs(90),
            },
            upload_limit: None,
            download_limit: None,
            sync_replicas: Arc::default(),
            read_first: Arc::default(),
            read_counts: Arc::default(),
            remote: None,
        })
    }

    /// A location whose objects `store` keeps (an agent's vault, reached
    /// through the service). `display` names it in messages.
    pub fn through(store: Arc<dyn ObjectStore>, display: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::io(std::path::Path::new(display), e))?;
        let op = Operator::new(opendal::services::Memory::default())
            .map_err(|e| Error::Invalid(format!("cannot set up {display}: {e}")))?;
        Ok(Storage {
            op: op.clone(),
            base: op,
            runtime: Arc::new(runtime),
            display: display.to_string(),
            scheme: Scheme::Service,
            local_root: None,
            credentials: Arc::new(Credentials::new()),
            reconnect_for: Duration::ZERO,
            upload_limit: None,
            download_limit: None,
            sync_replicas: Arc::default(),
            read_first: Arc::default(),
            read_counts: Arc::default(),
            remote: Some(store),
        })
    }

    /// The same location with two quick retries instead of a minute of
    /// them: for a diagnosis (the location test), where an unreachable
    /// server should be reported in seconds.
    pub fn with_quick_retries(&self) -> Storage {
        let quick = RetryLayer::new()
            .with_max_times(2)
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1));
        Storage {
            op: self.base.clone().layer(quick),
            reconnect_for: Duration::ZERO,
            ..self.clone()
        }
    }

    /// Another location with the same credentials and limits.
    pub fn open_sibling(&self, location: &str) -> Result<Storage> {
        self.open_sibling_with(location, &self.credentials)
    }

    /// Another location with the same limits and its own credentials.
    pub fn open_sibling_with(&self, location: &str, credentials: &Credentials) -> Result<Storage> {
        let mut other = Storage::open_with(location, credentials)?;
        other.upload_limit = self.upload_limit.clone();
        other.download_limit = self.download_limit.clone();
        Ok(other)
    }

    /// Makes every later write and delete (through this handle and its
    /// clones) go to `replica` as well.
    pub fn add_sync_replica(&self, replica: Storage) {
        if let Ok(mut r) = self.sync_replicas.write() {
            if !r.iter().any(|s| s.display == replica.display) {
                r.push(replica);
            }
        }
    }

    /// Makes reads try `tier` first and writes go to it as well.
    pub fn set_local_tier(&self, tier: Storage) {
        if let Ok(mut r) = self.read_first.write() {
            *r = Some(tier.clone());
        }
        self.add_sync_replica(tier);
    }

    /// Routes reads and writes through the local tier at `location`, when
    /// the tier holds this vault on this machine (see `tier`).
    pub fn attach_local_tier(&self, location: &str) {
        match Storage::open(location).and_then(|t| t.size("vault").map(|s| (t, s))) {
            Ok((tier, Some(_))) => self.set_local_tier(tier),
            Ok((_, None)) => tracing::warn!(
                tier = location,
                "the local tier does not hold this vault on this machine; using the remote location only"
            ),
            Err(e) => tracing::warn!(tier = location, error = %e, "the local tier is unavailable; using the remote location only"),
        }
    }

    fn tier(&self) -> Option<Storage> {
        self.read_first.read().ok().and_then(|t| t.clone())
    }

    /// Bytes read so far from the local tier and from this location.
    pub fn bytes_read(&self) -> (u64, u64) {
        (
            self.read_counts[0].load(std::sync::atomic::Ordering::Relaxed),
            self.read_counts[1].load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Bytes read (from the tier, from the location) since `before`, an
    /// earlier answer of [`Storage::bytes_read`].
    pub fn bytes_read_since(&self, before: (u64, u64)) -> (u64, u64) {
        let now = self.bytes_read();
        (
            now.0.saturating_sub(before.0),
            now.1.saturating_sub(before.1),
        )
    }

    fn count_read(&self, from_tier: bool, bytes: usize) {
        self.read_counts[usize::from(!from_tier)]
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn replicas(&self) -> Vec<Storage> {
        self.sync_replicas
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Limits uploads and downloads to these rates (bytes per second).
    pub fn with_limits(mut self, upload: Option<u64>, download: Option<u64>) -> Self {
        self.upload_limit = upload.map(|r| Arc::new(Throttle::new(r)));
        self.download_limit = download.map(|r| Arc::new(Throttle::new(r)));
        self
    }

    fn downloaded(&self, bytes: usize) {
        if let Some(t) = &self.download_limit {
            t.take(bytes as u64);
        }
    }

    /// How the location is shown to users (never contains secrets).
    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The directory of a local location.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// An error for a read of `path`: a missing object is `Missing`.
    fn err(&self, path: &str, e: opendal::Error) -> Error {
        if e.kind() == ErrorKind::NotFound {
            Error::Missing {
                object: path.to_string(),
            }
        } else {
            self.failure(path, e)
        }
    }

    /// An error for anything but a read of one object: classified, and
    /// with every secret taken out of the server's message.
    fn failure(&self, path: &str, e: opendal::Error) -> Error {
        Error::Storage {
            path: format!("{}/{path}", self.display.trim_end_matches('/')),
            failure: crate::location::classify_failure(&e),
            message: self.credentials.redact(&crate::location::describe(&e)),
        }
    }

    /// Writes a whole object. Objects are immutable: callers never rewrite one
    /// under the same name with other content.
    pub fn put(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.write(path, opendal::Buffer::from(data))
    }

    /// Writes a whole object like `put`, and hands the buffer back when the
    /// store kept no reference to it, so the caller can fill it again
    /// (reusing an 8 MiB pack buffer saves faulting in 2,048 fresh pages).
    pub fn put_reclaiming(&self, path: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let shared = bytes::Bytes::from(data);
        self.write(path, opendal::Buffer::from(shared.clone()))?;
        Ok(shared.try_into_mut().ok().map(Vec::from))
    }

    /// Runs one storage call, riding out an outage: a call that fails
    /// because the service is unreachable (a restarting server, a dropped
    /// SSH session that OpenDAL does not count as transient) is tried again
    /// with growing pauses for up to `reconnect_for`.
    fn call<T, Fut>(&self, f: impl Fn() -> Fut) -> std::result::Result<T, opendal::Error>
    where
        Fut: std::future::Future<Output = opendal::Result<T>>,
    {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            match self.runtime.block_on(f()) {
                Err(e)
                    if crate::location::classify_failure(&e) == StorageFailure::Unreachable
                        && started.elapsed() + pause < self.reconnect_for =>
                {
                    tracing::warn!(location = %self.display, error = %crate::location::describe(&e), "storage unreachable; trying again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                other => return other,
            }
        }
    }

    fn write(&self, path: &str, data: opendal::Buffer) -> Result<()> {
        self.write_here(path, data.clone())?;
        for replica in self.replicas() {
            replica
                .write_here(path, data.clone())
                .map_err(|e| match e {
                    Error::Storage {
                        path,
                        failure,
                        message,
                    } => Error::Storage {
                        path,
                        failure,
                        message: format!("synchronous replica: {message}"),
                    },
                    other => other,
                })?;
        }
        Ok(())
    }

    fn write_here(&self, path: &str, data: opendal::Buffer) -> Result<()> {
        if let Some(t) = &self.upload_limit {
            t.take(data.len() as u64);
        }
        if let Some(remote) = &self.remote {
            return remote.put(path, &data.to_bytes());
        }
        if self.scheme == Scheme::Gcs {
            // GCS stores a content type with every object; saying it keeps
            // servers that would leave it empty (emulators) well-formed.
            return self
                .call(|| {
                    self.op
                        .write_with(path, data.clone())
                        .content_type("application/octet-stream")
                        .into_future()
                })
                .map(|_| ())
                .map_err(|e| self.failure(path, e));
        }
        if self.scheme.atomic_writes() {
            return self
                .call(|| self.op.write(path, data.clone()))
                .map(|_| ())
                .map_err(|e| self.failure(path, e));
        }
        // Written under a staging name and renamed into place: an interrupted
        // upload leaves a stray staging object, never a torn real one.
        let staged = format!(
            "{}/{}.{:016x}",
            crate::location::STAGING_DIR,
            path.replace('/', "_"),
            rand::random::<u64>()
        );
        self.call(|| self.op.write(&staged, data.clone()))
            .map_err(|e| self.failure(path, e))?;
        if let Err(e) = self.call(|| self.op.rename(&staged, path)) {
            // A rename whose answer was lost (the server died after doing
            // it) is retried and then finds no staged object: when the
            // object in place holds exactly these bytes, it was done.
            if e.kind() == opendal::ErrorKind::NotFound {
                let there = self.call(|| self.op.read(path));
                if there.is_ok_and(|b| b.to_bytes() == data.to_bytes()) {
                    return Ok(());
                }
            }
            let _ = self.call(|| self.op.delete(&staged));
            return Err(self.failure(path, e));
        }
        Ok(())
    }

    /// Reads a whole object, from the local tier when it has it.
    pub fn get(&self, path: &str) -> Result<Vec<u8>> {
        if let Some(tier) = self.tier() {
            if let Ok(data) = tier.get(path) {
                self.count_read(true, data.len());
                return Ok(data);
            }
        }
        let data = match &self.remote {
            Some(remote) => remote.get(path)?,
            None => self
                .call(|| self.op.read(path))
                .map(|b| b.to_vec())
                .map_err(|e| self.err(path, e))?,
        };
        self.downloaded(data.len());
        self.count_read(false, data.len());
        Ok(data)
    }

    /// Reads `len` bytes at `offset` of an object, from the local tier
    /// when it has it.
    pub fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if let Some(tier) = self.tier() {
            if let Ok(data) = tier.get_range(path, offset, len) {
                self.count_read(true, data.len());
                return Ok(data);
            }
        }
        let data = match &self.remote {
            Some(remote) => remote.get_range(path, offset, len)?,
            None => self
                .call(|| {
                    self.op
                        .read_with(path)
                        .range(offset..offset + len)
                        .into_future()
                })
                .map(|b| Vec::from(b.to_bytes()))
                .map_err(|e| self.err(path, e))?,
        };
        self.downloaded(data.len());
        self.count_read(false, data.len());
        if data.len() as u64 != len {
            return Err(Error::corrupt(
                path,
                format!(
                    "short read: wanted {len} bytes at {offset}, got {}",
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    /// Size of an object, or `None` when it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        if let Some(remote) = &self.remote {
            return remote.size(path);
        }
        match self.call(|| self.op.stat(path)) {
            Ok(meta) => Ok(Some(meta.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failure(path, e)),
        }
    }

    /// Lists every object under `prefix` (a directory such as `packs/`).
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        if let Some(remote) = &self.remote {
            let mut out = remote.list(prefix)?;
            out.sort_by(|a, b| a.path.cmp(&b.path));
            return Ok(out);
        }
        let entries = match self.call(|| self.op.list_with(prefix).recursive(true).into_future()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.failure(prefix, e)),
        };
        let mut out: Vec<ObjectInfo> = entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| ObjectInfo {
                size: e.metadata().content_length(),
                path: e.path().to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Names directly at the location's root (files and directories,
    /// without a trailing `/`). A root that does not exist yet lists as
    /// empty: the first write creates it (a missing bucket or container
    /// fails that write).
    pub fn list_top(&self) -> Result<Vec<String>> {
        if self.remote.is_some() {
            return Err(Error::Invalid(format!(
                "{} cannot be listed: it is reached through a service, which lists only this writer's own objects",
                self.display
            )));
        }
        let entries = match self.call(|| self.op.list("/")) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.failure("", e)),
        };
        Ok(entries
            .iter()
            .map(|e| e.path().trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty() && p != crate::location::STAGING_DIR)
            .collect())
    }

    /// Free bytes where the location can tell (local paths).
    pub fn free_bytes(&self) -> Option<u64> {
        // The vault directory may not exist yet: its nearest ancestor is on
        // the same file system unless a mount is still to come.
        let existing = self.local_root.as_ref()?.ancestors().find(|p| p.exists())?;
        let st = nix::sys::statvfs::statvfs(existing).ok()?;
        Some(st.blocks_available() as u64 * st.fragment_size() as u64)
    }

    /// Asks the operating system to start reading an object that will be
    /// read soon, so the disk works while the caller's threads compute.
    /// Only local paths (and a local tier) take the hint; elsewhere, and on
    /// any error, it is a no-op: a hint changes speed, never results.
    /// `len` 0 means to the end of the object.
    pub fn prefetch(&self, path: &str, offset: u64, len: u64) {
        if let Some(tier) = self.tier() {
            tier.prefetch(path, offset, len);
        }
        let Some(root) = &self.local_root else {
            return;
        };
        if let Ok(file) = std::fs::File::open(root.join(path)) {
            use std::os::unix::io::AsRawFd;
            let _ = nix::fcntl::posix_fadvise(
                file.as_raw_fd(),
                offset as i64,
                len as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
        }
    }

    /// Deletes an object; deleting a missing object is not an error. A
    /// synchronous replica that cannot delete keeps a stray object, which
    /// the next replication run removes: that costs space, never data.
    pub fn delete(&self, path: &str) -> Result<()> {
        if let Some(remote) = &self.remote {
            return remote.delete(path);
        }
        self.call(|| self.op.delete(path))
            .map_err(|e| self.failure(path, e))?;
        for replica in self.replicas() {
            if let Err(e) = replica.delete(path) {
                tracing::warn!(replica = %replica.display, error = %e, "replica kept an object the vault deleted");
            }
        }
        Ok(())
    }
}
