//! Activity markers: `locks/<kind>-<random>` says "a backup (or a prune)
//! is running here since then". They are not locks in the blocking sense:
//! backups never wait for anything. They let garbage collection know which
//! backups might still rely on packs it wants to delete, and let a second
//! prune refuse to run beside the first.
//!
//! A marker is refreshed every `REFRESH_SECS` by a background thread and is
//! considered dead (its process crashed) once it is `STALE_SECS` old. A
//! backup that could not refresh its marker for half that time fails before
//! it commits, rather than commit a point whose packs a prune may have
//! judged unused. Markers are the one kind of object that is rewritten
//! in place (a refresh replaces it); they hold no vault data.
//!
//! A write-only writer may lack the right to delete: when its backup ends
//! it rewrites its marker as expired instead (refreshed `STALE_SECS` ago),
//! and the next prune removes every stale marker, whoever left it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::credential::objects::{open_session_object, session_of, WRITER_MARKER_MAGIC};
use crate::crypto::{open_object, seal_object, MasterKeys};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::vault::{now_secs, Vault};

pub const MARKER_MAGIC: &[u8; 8] = b"COFFERLK";
pub(crate) const MARKER_AAD: &[u8] = b"coffer marker v3";
/// How often a running process rewrites its marker.
pub const REFRESH_SECS: i64 = 60;
/// A marker not refreshed for this long belongs to a process that died.
pub const STALE_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activity {
    Backup,
    Prune,
}

impl Activity {
    fn prefix(self) -> &'static str {
        match self {
            Activity::Backup => "backup",
            Activity::Prune => "prune",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub activity: Activity,
    /// Unix seconds.
    pub started: i64,
    pub refreshed: i64,
    pub host: String,
    pub pid: u32,
    /// The process-id namespace (`/proc/self/ns/pid`), so that a process id
    /// is only judged by a process that sees the same ids: two containers
    /// may share a host name.
    pub pid_namespace: String,
}

impl Marker {
    /// Whether the process behind the marker is gone: not refreshed for
    /// `STALE_SECS`, or (on this very host) no process with its id exists.
    pub fn is_stale(&self, now: i64) -> bool {
        if now - self.refreshed >= STALE_SECS {
            return true;
        }
        self.host == crate::host::hostname()
            && !self.pid_namespace.is_empty()
            && self.pid_namespace == pid_namespace()
            && !process_exists(self.pid)
    }

    fn encode(&self, keys: &MasterKeys) -> Vec<u8> {
        seal_object(keys, MARKER_MAGIC, MARKER_AAD, self)
    }

    fn decode(keys: &MasterKeys, path: &str, bytes: &[u8]) -> Result<Marker> {
        open_object(
            keys,
            MARKER_MAGIC,
            MARKER_AAD,
            path,
            "activity marker",
            bytes,
        )
    }
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 only asks whether the process exists; EPERM means it does.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// One marker as read from the vault.
pub struct Found {
    pub path: String,
    /// The slot of the write-only credential whose session sealed it.
    pub writer: Option<String>,
    pub marker: Result<Marker>,
}

/// Every marker of the vault. A marker that vanished between listing and
/// reading (its process finished) is left out; an unreadable one is kept as
/// an error, which garbage collection must treat as a running backup.
pub fn markers(vault: &Vault) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for obj in vault.storage().list("locks/")? {
        match vault.storage().get(&obj.path) {
            Ok(bytes) => {
                let (writer, marker) = read_marker(vault, &obj.path, &bytes);
                out.push(Found {
                    path: obj.path,
                    writer,
                    marker,
                });
            }
            Err(Error::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Opens a marker read at `path`: which writer's session sealed it (none
/// for a key holder's), and what it says.
pub(crate) fn read_marker(
    vault: &Vault,
    path: &str,
    bytes: &[u8],
) -> (Option<String>, Result<Marker>) {
    match session_of(WRITER_MARKER_MAGIC, path, bytes) {
        Ok(None) => (None, Marker::decode(vault.keys(), path, bytes)),
        Ok(Some(session)) => (
            Some(session.slot_id()),
            vault.session_keys(&session).and_then(|keys| {
                open_session_object(&keys, MARKER_AAD, path, "activity marker", bytes)
            }),
        ),
        Err(e) => (None, Err(e)),
    }
}

/// Deletes the markers of processes that are gone (and of writers that
/// ended without the right to delete theirs, see [`Release::Expire`]).
/// Unreadable markers stay: they may belong to a running backup.
pub fn remove_stale(vault: &Vault) -> Result<usize> {
    let now = now_secs();
    let mut removed = 0;
    for found in markers(vault)? {
        if found.marker.as_ref().is_ok_and(|m| m.is_stale(now)) {
            match vault.storage().delete(&found.path) {
                Ok(()) | Err(Error::Missing { .. }) => removed += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// What happens to a held marker when its activity ends.
#[derive(Clone)]
pub(crate) enum Release {
    /// It is deleted.
    Delete,
    /// It is rewritten as expired, for a writer that may not delete; the
    /// next prune removes it.
    Expire,
}

/// A marker this process holds; dropping it stops the refreshes and
/// deletes it (or expires it, see [`Release`]).
pub struct Held {
    path: String,
    storage: Storage,
    seal: MarkerSeal,
    release: Release,
    stop: Arc<AtomicBool>,
    last_refresh: Arc<AtomicI64>,
    /// Some refresh came only after the marker had looked dead for a
    /// while: a prune may have judged this process gone meanwhile, even if
    /// the marker is fresh again now.
    lapsed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub marker: Marker,
}

impl Held {
    /// Fails when the marker has not been refreshed for half the stale age:
    /// a prune may then have taken this process for dead.
    pub fn ensure_fresh(&self) -> Result<()> {
        let age = now_secs() - self.last_refresh.load(Ordering::SeqCst);
        if age * 2 >= STALE_SECS || self.lapsed.load(Ordering::SeqCst) {
            return Err(Error::Storage {
                path: self.path.clone(),
                failure: crate::location::StorageFailure::Other,
                message: format!(
                    "the {} marker could not be refreshed for {age} s (or once went that long without a refresh), so a concurrent prune may have judged this {} dead; not committing",
                    self.marker.activity.prefix(),
                    self.marker.activity.prefix()
                ),
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        let result = match self.release {
            Release::Delete => self.storage.delete(&self.path),
            Release::Expire => {
                let mut expired = self.marker.clone();
                expired.refreshed = now_secs() - STALE_SECS;
                self.storage.put(&self.path, (self.seal)(&expired))
            }
        };
        if let Err(e) = result {
            tracing::warn!(marker = %self.path, error = %e, "could not release the activity marker; it goes stale on its own");
        }
    }
}

/// How a marker is sealed: with the vault's keys, or a write-only session's.
pub(crate) type MarkerSeal = Arc<dyn Fn(&Marker) -> Vec<u8> + Send + Sync>;

/// Writes a marker for `activity` and keeps it fresh until dropped.
pub fn hold(vault: &Vault, activity: Activity) -> Result<Held> {
    let keys = vault.keys().clone();
    hold_sealed(
        vault.storage(),
        activity,
        Arc::new(move |m| m.encode(&keys)),
        Release::Delete,
    )
}

/// Writes a marker sealed by `seal` and keeps it fresh until dropped.
pub(crate) fn hold_sealed(
    storage: &Storage,
    activity: Activity,
    seal: MarkerSeal,
    release: Release,
) -> Result<Held> {
    let mut random = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let path = format!("locks/{}-{}", activity.prefix(), hex::encode(random));
    let now = now_secs();
    let marker = Marker {
        activity,
        started: now,
        refreshed: now,
        host: crate::host::hostname(),
        pid: std::process::id(),
        pid_namespace: pid_namespace(),
    };
    storage.put(&path, seal(&marker))?;
    let stop = Arc::new(AtomicBool::new(false));
    let last_refresh = Arc::new(AtomicI64::new(now));
    let lapsed = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stop, last, lapse, storage, seal, path, marker) = (
            stop.clone(),
            last_refresh.clone(),
            lapsed.clone(),
            storage.clone(),
            seal.clone(),
            path.clone(),
            marker.clone(),
        );
        std::thread::Builder::new()
            .name("coffer-marker".into())
            .spawn(move || {
                let mut marker = marker;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::park_timeout(std::time::Duration::from_secs(REFRESH_SECS as u64));
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    marker.refreshed = now_secs();
                    match storage.put(&path, seal(&marker)) {
                        Ok(()) => {
                            let gap = marker.refreshed - last.load(Ordering::SeqCst);
                            if gap * 2 >= STALE_SECS {
                                lapse.store(true, Ordering::SeqCst);
                            }
                            last.store(marker.refreshed, Ordering::SeqCst);
                        }
                        Err(e) => tracing::warn!(marker = %path, error = %e, "could not refresh the activity marker"),
                    }
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start the marker thread: {e}")))?
    };
    Ok(Held {
        path,
        storage: storage.clone(),
        seal,
        release,
        stop,
        last_refresh,
        lapsed,
        thread: Some(thread),
        marker,
    })
}

/// Takes the prune marker, refusing when another live prune holds one.
/// Two prunes starting at the same moment may both refuse; neither acts.
pub fn hold_prune(vault: &Vault) -> Result<Held> {
    let held = hold(vault, Activity::Prune)?;
    let now = now_secs();
    for Found { path, marker, .. } in markers(vault)? {
        if path == held.path {
            continue;
        }
        if let Ok(m) = marker {
            if m.activity == Activity::Prune && !m.is_stale(now) {
                return Err(Error::Invalid(format!(
                    "another prune is running (on {} since {}, marker {path}); wait for it to finish. A prune that died leaves its marker, which expires {} minutes after its last refresh",
                    m.host,
                    crate::vault::rfc3339(m.started),
                    STALE_SECS / 60
                )));
            }
        }
    }
    Ok(held)
}
