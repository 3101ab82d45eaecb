//! qcow2 images at rest: opened in a storage daemon of Coffer's own, their
//! bitmaps rotated at the instant of the point (see `bitmaps`), exported
//! over NBD and read by the engine; and restored as new qcow2 images
//! written over NBD, with a fresh bitmap counting from the restored point.

use std::path::{Path, PathBuf};

use coffer_engine::backup::{Changed, DiskInput};
use coffer_engine::disk_image::{restore_disk, DiskRestored};
use coffer_engine::restore::{RestoreProgress, Source};
use coffer_engine::tree::{Node, Timestamp};
use coffer_nbd::proto::{dirty_bitmap_context, BASE_ALLOCATION};
use coffer_nbd::{Address, Client};

use super::bitmaps::{self, Found};
use super::daemon::StorageDaemon;
use super::nbd_io::{NbdDisk, NbdTarget};
use super::{disk_meta, disk_name};
use crate::{DiskFormat, Error, Result};

/// What one image's bitmaps allow.
enum Plan {
    /// The old bitmaps (oldest first), exported as `export`.
    Trusted {
        since: Timestamp,
        old: Vec<String>,
        export: String,
    },
    /// Why every allocated block is read instead.
    Untrusted(String),
}

struct Image {
    node: String,
    path: PathBuf,
    new: String,
    plan: Plan,
}

/// The images of one backup, open in a storage daemon from the point's
/// instant until they are closed.
pub struct Session {
    daemon: StorageDaemon,
    images: Vec<Image>,
}

impl Session {
    /// Opens the images, rotates their bitmaps at `time` (the point's
    /// time) in one transaction, and exports them.
    pub fn open(item: &str, paths: &[String], time: Timestamp) -> Result<Session> {
        let mut daemon = StorageDaemon::start()?;
        match Self::prepare(&mut daemon, item, paths, time) {
            Ok(images) => Ok(Session { daemon, images }),
            Err(e) => {
                // Closed cleanly, the images keep their bitmaps trusted: a
                // bitmap added by the transaction only widens what the
                // next backup reads.
                let _ = daemon.quit();
                Err(e)
            }
        }
    }

    fn prepare(
        daemon: &mut StorageDaemon,
        item: &str,
        paths: &[String],
        time: Timestamp,
    ) -> Result<Vec<Image>> {
        let mut images = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let node = format!("disk{i}");
            daemon.add_image(&node, Path::new(path), DiskFormat::Qcow2, true)?;
            let found = bitmaps::ours(daemon.qmp(), &node, item)?;
            let plan = judge(daemon.qmp(), &node, &found)?;
            images.push(Image {
                node,
                path: PathBuf::from(path),
                new: bitmaps::name(item, time),
                plan,
            });
        }
        let mut actions = Vec::new();
        for image in &images {
            actions.push(bitmaps::add(&image.node, &image.new));
            if let Plan::Trusted { old, .. } = &image.plan {
                actions.extend(old.iter().map(|o| bitmaps::disable(&image.node, o)));
            }
        }
        daemon.qmp().transaction(actions)?;
        for image in &mut images {
            let exported = match &mut image.plan {
                Plan::Trusted { old, export, .. } if old.len() > 1 => {
                    let union = format!("{}-union", image.new);
                    bitmaps::union(daemon.qmp(), &image.node, &union, old)?;
                    *export = union.clone();
                    vec![union]
                }
                Plan::Trusted { export, .. } => vec![export.clone()],
                Plan::Untrusted(_) => Vec::new(),
            };
            daemon.export(&image.node, &exported, false)?;
        }
        Ok(images)
    }

    /// The engine's inputs: a reader per image and the changes its bitmap
    /// marks.
    pub fn inputs(&mut self) -> Result<Vec<DiskInput>> {
        let address = Address::Unix(self.daemon.nbd_socket());
        let mut inputs = Vec::new();
        for image in &self.images {
            let mut contexts = vec![BASE_ALLOCATION.to_string()];
            if let Plan::Trusted { export, .. } = &image.plan {
                contexts.push(dirty_bitmap_context(export));
            }
            let name = disk_name(&image.path)?;
            let client = Client::connect(&address, &image.node, &contexts)
                .map_err(|e| Error::Disk(format!("{}: {e}", image.path.display())))?;
            let mut disk = NbdDisk::new(client, &name);
            let (changed, note) = match &image.plan {
                Plan::Trusted { since, export, .. } => {
                    let ranges = disk.dirty(&dirty_bitmap_context(export))?;
                    (
                        Some(Changed {
                            since: *since,
                            ranges,
                        }),
                        None,
                    )
                }
                Plan::Untrusted(why) => (None, Some(why.clone())),
            };
            inputs.push(DiskInput {
                name,
                size: disk.size(),
                reader: Box::new(disk),
                changed,
                note,
                meta: disk_meta(&image.path),
            });
        }
        Ok(inputs)
    }

    /// After the point is committed: the old bitmaps go, the new ones
    /// count from this point. Then the images are closed.
    pub fn committed(mut self) -> Result<()> {
        self.daemon.close_exports()?;
        let mut actions = Vec::new();
        for image in &self.images {
            if let Plan::Trusted { old, export, .. } = &image.plan {
                actions.extend(old.iter().map(|o| bitmaps::remove(&image.node, o)));
                if !old.contains(export) {
                    actions.push(bitmaps::remove(&image.node, export));
                }
            }
        }
        if !actions.is_empty() {
            self.daemon.qmp().transaction(actions)?;
        }
        self.daemon.quit()
    }

    /// After a failed backup: the changes the new bitmaps saw go back into
    /// the oldest bitmap, re-enabled, so nothing since the previous point
    /// is forgotten; a new bitmap with nothing to join is dropped.
    pub fn abandoned(mut self) -> Result<()> {
        self.daemon.close_exports()?;
        let mut actions = Vec::new();
        for image in &self.images {
            match &image.plan {
                Plan::Trusted { old, export, .. } => {
                    let oldest = &old[0];
                    actions.push(bitmaps::enable(&image.node, oldest));
                    let mut rest: Vec<String> = old[1..].to_vec();
                    rest.push(image.new.clone());
                    actions.push(bitmaps::merge(&image.node, oldest, &rest));
                    actions.extend(rest.iter().map(|r| bitmaps::remove(&image.node, r)));
                    if !old.contains(export) {
                        actions.push(bitmaps::remove(&image.node, export));
                    }
                }
                Plan::Untrusted(_) => actions.push(bitmaps::remove(&image.node, &image.new)),
            }
        }
        self.daemon.qmp().transaction(actions)?;
        self.daemon.quit()
    }
}

/// Decides whether the item's bitmaps on a node can be used; bitmaps that
/// cannot are removed.
fn judge(qmp: &mut super::qmp::Qmp, node: &str, found: &[Found]) -> Result<Plan> {
    let why = if found.is_empty() {
        Some("the image has no dirty bitmap of this item (its first backup, or the bitmap was removed)")
    } else if found.iter().any(|f| f.inconsistent) {
        Some("the image was not closed cleanly, so its dirty bitmap cannot be trusted")
    } else if found.iter().any(|f| f.since.is_none()) {
        Some("a dirty bitmap of this item has a name Coffer did not give it")
    } else {
        None
    };
    match (why, found.first().and_then(|f| f.since)) {
        (None, Some(since)) => Ok(Plan::Trusted {
            since,
            old: found.iter().map(|f| f.name.clone()).collect(),
            export: found[0].name.clone(),
        }),
        (why, _) => {
            let stale: Vec<_> = found
                .iter()
                .map(|f| bitmaps::remove(node, &f.name))
                .collect();
            if !stale.is_empty() {
                qmp.transaction(stale)?;
            }
            Ok(Plan::Untrusted(
                why.unwrap_or("no usable dirty bitmap").to_string(),
            ))
        }
    }
}

/// Restores a disk node as a new qcow2 image at `path`, with a bitmap of
/// `item` counting from `time` (the restored point's), so the image's
/// next backup reads only what changed after it. The image is written
/// under a temporary name beside `path` and renamed into place at the end.
pub fn restore(
    source: &dyn Source,
    node: &Node,
    what: &str,
    path: &Path,
    fresh_bitmap: Option<(&str, Timestamp)>,
    progress: &RestoreProgress,
) -> Result<DiskRestored> {
    let size = match node.kind {
        coffer_engine::tree::NodeKind::Disk { size, .. } => size,
        _ => return Err(Error::Restore(format!("{what} is not a disk"))),
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".coffer-restore-")
        .suffix(".qcow2")
        .tempfile_in(dir)
        .map_err(|e| Error::Restore(format!("cannot write in {}: {e}", dir.display())))?;
    let out = crate::process::program("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(staging.path())
        .arg(size.to_string())
        .output()
        .map_err(|e| Error::Restore(format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(Error::Restore(format!(
            "qemu-img create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut daemon = StorageDaemon::start()?;
    daemon.add_image("target", staging.path(), DiskFormat::Qcow2, true)?;
    daemon.export("target", &[], true)?;
    let client = Client::connect(&Address::Unix(daemon.nbd_socket()), "target", &[])
        .map_err(|e| Error::Restore(format!("{}: {e}", path.display())))?;
    let target = NbdTarget::new(client, what);
    let done = restore_disk(source, node, what, &target, progress)?;
    target.disconnect()?;
    if let Some((item, time)) = fresh_bitmap {
        daemon
            .qmp()
            .transaction(vec![bitmaps::add("target", &bitmaps::name(item, time))])?;
    }
    daemon.quit()?;
    staging
        .persist(path)
        .map_err(|e| Error::Restore(format!("cannot move the image to {}: {e}", path.display())))?;
    Ok(done)
}
