//! The `disk` kind: disk images (raw files, block devices, qcow2) stored
//! as fixed blocks in a disk point (`coffer_engine::disk_map`).
//!
//! A raw image or device is read directly where it holds data, every
//! allocated block compared with the previous point by its chunk id (no
//! changed-block tracking exists for raw storage). A qcow2 image is opened
//! in a `qemu-storage-daemon` of Coffer's own and read over NBD, with a
//! persistent dirty bitmap per item so an incremental reads only changed
//! blocks ([`bitmaps`] says how the bitmaps rotate and why no change is
//! lost). The image's format is part of the item, never guessed.
//!
//! Each path is one disk, named in the point by its file name. A restore
//! writes each disk back to the item's path (only with `overwrite` when
//! it exists) or under a target directory, sparse, in the item's format;
//! a qcow2 image comes back with a bitmap counting from the restored
//! point, so its next backup is incremental at once.

pub mod bitmaps;
mod daemon;
mod nbd_io;
mod qcow2;
pub mod qmp;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use coffer_engine::backup::{
    backup_disks, now, BackupOptions, BackupReport, DiskInput, DiskMeta, Progress,
};
use coffer_engine::disk_image::{restore_disk, DiskRestored, FileTarget, RawDisk};
use coffer_engine::point::Consistency;
use coffer_engine::restore::{find_node_in, RestoreProgress, Source};
use coffer_engine::tree::{Node, NodeKind, Timestamp};
use coffer_engine::{Point, Vault};

use crate::{
    absolute_paths, invalid, BackupDestination, Destination, DiskFormat, Error, ItemDef,
    PointStreams, Protector, Result,
};

pub(crate) struct Disk;

fn format_of(item: &ItemDef) -> DiskFormat {
    item.disk.as_ref().map(|d| d.format).unwrap_or_default()
}

/// A disk's name in the point: its image's file name.
pub(crate) fn disk_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            invalid(
                "paths",
                format!("{} has no usable file name", path.display()),
            )
        })
}

/// What the point records of an image file besides its blocks.
pub(crate) fn disk_meta(path: &Path) -> DiskMeta {
    match std::fs::metadata(path) {
        Ok(md) => DiskMeta {
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: Timestamp {
                secs: md.mtime(),
                nanos: md.mtime_nsec() as u32,
            },
        },
        Err(_) => DiskMeta {
            mode: 0o600,
            ..DiskMeta::default()
        },
    }
}

impl Protector for Disk {
    fn validate(&self, item: &ItemDef) -> Result<()> {
        absolute_paths(item)?;
        if !item.excludes.is_empty() {
            return Err(invalid(
                "excludes",
                "a disk item has no excludes: it protects whole images",
            ));
        }
        let mut names = Vec::new();
        for p in &item.paths {
            let name = disk_name(Path::new(p))?;
            if names.contains(&name) {
                return Err(invalid(
                    "paths",
                    format!("two images are named {name}: each disk is named by its file name, so they must differ"),
                ));
            }
            names.push(name);
        }
        Ok(())
    }

    fn own_consistency(&self, _item: &ItemDef) -> Consistency {
        // An image holds whatever its last writer left: a VM stopped
        // cleanly, or one that crashed. Only a pre script can say more.
        Consistency::CrashConsistent
    }

    fn capture(
        &self,
        vault: &dyn BackupDestination,
        item: &ItemDef,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        match format_of(item) {
            DiskFormat::Raw => {
                let mut inputs = Vec::new();
                for p in &item.paths {
                    let path = Path::new(p);
                    let disk = RawDisk::open(path)?;
                    inputs.push(DiskInput {
                        name: disk_name(path)?,
                        size: disk.size(),
                        reader: Box::new(disk),
                        changed: None,
                        note: None,
                        meta: disk_meta(path),
                    });
                }
                Ok(backup_disks(vault, inputs, opts, progress)?)
            }
            DiskFormat::Qcow2 => {
                // The point's time is the instant the bitmaps rotate.
                let time = opts.time.unwrap_or_else(now);
                let mut opts = opts.clone();
                opts.time = Some(time);
                let mut session = qcow2::Session::open(&item.name, &item.paths, time)?;
                let backed_up = session
                    .inputs()
                    .and_then(|inputs| Ok(backup_disks(vault, inputs, &opts, progress)?));
                match backed_up {
                    Ok(report) => {
                        // The point is committed: a bitmap left behind only
                        // makes the next backup compare every block.
                        if let Err(e) = session.committed() {
                            tracing::warn!(item = %item.name, "after the disk point was committed: {e}");
                        }
                        Ok(report)
                    }
                    Err(e) => {
                        if let Err(cleanup) = session.abandoned() {
                            tracing::warn!(item = %item.name, "after a failed disk backup: {cleanup}");
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    fn restore(
        &self,
        point: &PointStreams<'_>,
        item: &ItemDef,
        to: &Destination,
        progress: &RestoreProgress,
    ) -> Result<String> {
        let mut lines = Vec::new();
        for original in &item.paths {
            let original = Path::new(original);
            let name = disk_name(original)?;
            let node = find_node_in(point.source(), point.tree(), &Path::new("/").join(&name))
                .map_err(|_| {
                    Error::Restore(format!("point {} holds no disk {name}", point.id()))
                })?;
            let path = match &to.target {
                Some(t) => t.join(&name),
                None => original.to_path_buf(),
            };
            if path.exists() && !to.overwrite {
                return Err(Error::Restore(format!(
                    "{} exists: restore with overwrite to replace it, or under a target",
                    path.display()
                )));
            }
            let fresh = point.time().map(|t| (item.name.as_str(), t));
            let done = restore_one(
                point.source(),
                &node,
                &name,
                &path,
                format_of(item),
                fresh,
                progress,
            )?;
            lines.push(format!(
                "{} ({} bytes, {} data blocks)",
                path.display(),
                done.size,
                done.blocks_data
            ));
        }
        Ok(format!("restored {}", lines.join(", ")))
    }

    fn verify(
        &self,
        vault: &Vault,
        item: &ItemDef,
        point: &Point,
        scratch: &Path,
    ) -> Result<String> {
        crate::from_vault(vault, point, |streams| {
            let mut checked = Vec::new();
            for p in &item.paths {
                let name = disk_name(Path::new(p))?;
                let node = find_node_in(
                    streams.source(),
                    streams.tree(),
                    &Path::new("/").join(&name),
                )?;
                let path = scratch.join(&name);
                let format = format_of(item);
                let done = restore_one(
                    streams.source(),
                    &node,
                    &name,
                    &path,
                    format,
                    None,
                    &RestoreProgress::default(),
                )?;
                if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == 0 && done.size > 0 {
                    return Err(Error::Verify(format!("{name} came back empty")));
                }
                if format == DiskFormat::Qcow2 {
                    check_qcow2(&path)?;
                }
                checked.push(format!(
                    "{name} ({} bytes, every block verified)",
                    done.size
                ));
                let _ = std::fs::remove_file(&path);
            }
            Ok(format!("restored {}", checked.join(", ")))
        })
    }
}

fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
}

/// Restores one disk node to `path` in `format` (a block device takes
/// the raw bytes whatever the format).
pub fn restore_one(
    source: &dyn Source,
    node: &Node,
    name: &str,
    path: &Path,
    format: DiskFormat,
    fresh_bitmap: Option<(&str, Timestamp)>,
    progress: &RestoreProgress,
) -> Result<DiskRestored> {
    let NodeKind::Disk { size, .. } = node.kind else {
        return Err(Error::Restore(format!("{name} is not a disk in the point")));
    };
    if format == DiskFormat::Qcow2 && !is_block_device(path) {
        return qcow2::restore(source, node, name, path, fresh_bitmap, progress);
    }
    let target = FileTarget::create(path, size, true)?;
    Ok(restore_disk(source, node, name, &target, progress)?)
}

/// `qemu-img check` of a restored qcow2 image: its structure is sound.
fn check_qcow2(path: &Path) -> Result<()> {
    let out = crate::process::program("qemu-img")
        .args(["check", "-q", "-f", "qcow2"])
        .arg(path)
        .output()
        .map_err(|e| Error::Verify(format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(Error::Verify(format!(
            "qemu-img check of {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
