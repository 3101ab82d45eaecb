//! `directory`: file trees, through the engine's backup and restore. The
//! drill restores into a scratch area and compares every entry with the
//! point: kind, size, permissions and link targets (content was proven by
//! each chunk's keyed hash as it was read).

use crate::{from_vault, PointStreams};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use coffer_engine::backup::{backup, BackupOptions, BackupReport, Progress};
use coffer_engine::index::Index;
use coffer_engine::point::Consistency;
use coffer_engine::restore::{restore_from, RestoreOptions, RestoreProgress};
use coffer_engine::tree::{Node, NodeKind};
use coffer_engine::{ChunkId, Point, Vault};

use crate::{absolute_paths, BackupDestination, Destination, Error, ItemDef, Protector, Result};

pub struct Directory;

impl Protector for Directory {
    fn validate(&self, item: &ItemDef) -> Result<()> {
        absolute_paths(item)
    }

    fn own_consistency(&self, _: &ItemDef) -> Consistency {
        Consistency::CrashConsistent
    }

    fn capture(
        &self,
        vault: &dyn BackupDestination,
        item: &ItemDef,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        let mut opts = opts.clone();
        opts.excludes = item.excludes.clone();
        let paths: Vec<PathBuf> = item.paths.iter().map(PathBuf::from).collect();
        Ok(backup(vault, &paths, &opts, progress)?)
    }

    fn restore(
        &self,
        point: &PointStreams<'_>,
        _: &ItemDef,
        to: &Destination,
        progress: &RestoreProgress,
    ) -> Result<String> {
        let target = to.target.clone().unwrap_or_else(|| PathBuf::from("/"));
        let report = restore_from(
            point.source(),
            point.tree(),
            &point.id()[..12.min(point.id().len())],
            &RestoreOptions {
                target: target.clone(),
                overwrite: to.overwrite,
                ..Default::default()
            },
            progress,
        )?;
        if !report.is_complete() {
            let failed: Vec<&(PathBuf, String)> =
                report.damaged.iter().chain(&report.problems).collect();
            return Err(Error::Restore(format!(
                "{} entries could not be restored exactly under {}, for example {}",
                failed.len(),
                target.display(),
                failed
                    .first()
                    .map(|(p, m)| format!("{}: {m}", p.display()))
                    .unwrap_or_default()
            )));
        }
        Ok(format!(
            "{} files and {} directories restored under {}",
            report.files,
            report.dirs,
            target.display()
        ))
    }

    fn verify(
        &self,
        vault: &Vault,
        item: &ItemDef,
        point: &Point,
        scratch: &Path,
    ) -> Result<String> {
        let to = Destination {
            target: Some(scratch.to_path_buf()),
            ..Default::default()
        };
        from_vault(vault, point, |streams| {
            self.restore(streams, item, &to, &RestoreProgress::default())
        })
        .map_err(|e| Error::Verify(e.to_string()))?;
        let index = vault.load_index()?;
        let mut compare = Compare {
            vault,
            index: &index,
            entries: 0,
            mismatches: Vec::new(),
        };
        compare.tree(&point.manifest.tree, scratch)?;
        if let Some(first) = compare.mismatches.first() {
            return Err(Error::Verify(format!(
                "{} entries differ from the point, for example {first}",
                compare.mismatches.len()
            )));
        }
        Ok(format!(
            "{} entries restored and compared with the point",
            compare.entries
        ))
    }
}

struct Compare<'a> {
    vault: &'a Vault,
    index: &'a Index,
    entries: u64,
    mismatches: Vec<String>,
}

impl Compare<'_> {
    fn tree(&mut self, id: &ChunkId, dir: &Path) -> Result<()> {
        let tree = self.vault.read_tree(self.index, id)?;
        for node in &tree.nodes {
            let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
            self.entries += 1;
            if let Some(m) = self.node(node, &path) {
                self.mismatches.push(format!("{}: {m}", path.display()));
                continue;
            }
            if let NodeKind::Dir { tree } = &node.kind {
                self.tree(tree, &path)?;
            }
        }
        Ok(())
    }

    /// What differs between a node and the restored entry, if anything.
    fn node(&self, node: &Node, path: &Path) -> Option<String> {
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) => return Some(format!("not restored: {e}")),
        };
        let ft = md.file_type();
        let same_kind = match &node.kind {
            NodeKind::File { size, .. } | NodeKind::Disk { size, .. } => {
                if ft.is_file() && md.size() != *size {
                    return Some(format!("size {} instead of {size}", md.size()));
                }
                ft.is_file()
            }
            NodeKind::Dir { .. } => ft.is_dir(),
            NodeKind::Symlink { target } => {
                let read = std::fs::read_link(path).ok();
                if read.as_ref().map(|t| t.as_os_str().as_bytes()) != Some(target.as_slice()) {
                    return Some("link target differs".into());
                }
                true
            }
            NodeKind::Fifo => ft.is_fifo(),
            NodeKind::Socket => ft.is_socket() || ft.is_file(),
            NodeKind::CharDevice { .. } => ft.is_char_device(),
            NodeKind::BlockDevice { .. } => ft.is_block_device(),
        };
        if !same_kind {
            return Some("restored as another kind of entry".into());
        }
        if !ft.is_symlink() && md.mode() & 0o7777 != node.mode {
            return Some(format!(
                "mode {:o} instead of {:o}",
                md.mode() & 0o7777,
                node.mode
            ));
        }
        None
    }
}
