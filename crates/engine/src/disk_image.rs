//! Disk images as plain files and block devices, and the restore of a disk
//! point's disk through any [`DiskWriter`].
//!
//! A raw image is read where it holds data (SEEK_DATA/SEEK_HOLE; a block
//! device is all data) and written back sparse: a new image file starts as
//! one hole of the disk's size and only data blocks are written, skipping
//! pages of zeros inside them, so the restored file is as sparse as the
//! point. A block device has no holes: its hole blocks are written as
//! zeros, since it may hold anything. qcow2 images go through NBD instead
//! (crates/sources), with the same restore.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::backup::DiskReader;
use crate::disk_map::{Block, DiskMap};
use crate::error::{Error, Result};
use crate::fsmeta::data_ranges;
use crate::ids::ChunkId;
use crate::restore::{RestoreProgress, Source, Targets};
use crate::tree::Node;

/// Pages of zeros inside a data block are not written to a new image
/// file: they stay holes.
const PAGE: usize = 4096;
/// Segments whose blocks are read in one go: bounds a restore's memory
/// (their lists of wanted chunks) whatever the disk's size.
const SEGMENTS_PER_ROUND: usize = 4;

/// A raw image file or a block device, read for a backup.
pub struct RawDisk {
    file: File,
    path: PathBuf,
    size: u64,
    device: bool,
}

impl RawDisk {
    pub fn open(path: &Path) -> Result<RawDisk> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let md = file.metadata().map_err(|e| Error::io(path, e))?;
        let device = md.file_type().is_block_device();
        let size = if device {
            device_size(&file, path)?
        } else if md.is_file() {
            md.len()
        } else {
            return Err(Error::Invalid(format!(
                "{} is neither a regular file nor a block device",
                path.display()
            )));
        };
        Ok(RawDisk {
            file,
            path: path.to_path_buf(),
            size,
            device,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn metadata(&self) -> Result<std::fs::Metadata> {
        self.file.metadata().map_err(|e| Error::io(&self.path, e))
    }
}

/// A block device's size: seeking to its end is the portable way without
/// an ioctl.
fn device_size(file: &File, path: &Path) -> Result<u64> {
    use std::io::Seek;
    let mut f = file;
    let size = f
        .seek(std::io::SeekFrom::End(0))
        .map_err(|e| Error::io(path, e))?;
    f.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    Ok(size)
}

impl DiskReader for RawDisk {
    fn allocated(&mut self) -> Result<Vec<(u64, u64)>> {
        if self.device {
            return Ok(vec![(0, self.size)]);
        }
        Ok(data_ranges(&self.file, self.size))
    }

    fn read(&mut self, batch: &mut [(u64, Vec<u8>)]) -> Result<()> {
        for (offset, buf) in batch.iter_mut() {
            self.file
                .read_exact_at(buf, *offset)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Where a restored disk's bytes go.
pub trait DiskWriter: Sync {
    /// Writes a data block.
    fn write(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes a hole block read as zeros.
    fn zero(&self, offset: u64, len: u64) -> Result<()>;
    /// Makes everything written durable.
    fn finish(&self) -> Result<()>;
}

/// A raw image file (created sparse) or a block device.
pub struct FileTarget {
    file: File,
    path: PathBuf,
    device: bool,
}

impl FileTarget {
    /// A new image file of `size` bytes at `path` (an existing file only
    /// with `overwrite`, emptied first so that no old byte survives in a
    /// hole), or a block device of at least `size` bytes.
    pub fn create(path: &Path, size: u64, overwrite: bool) -> Result<FileTarget> {
        let existing = std::fs::metadata(path).ok();
        let device = existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_block_device());
        if device {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            let capacity = device_size(&file, path)?;
            if capacity < size {
                return Err(Error::Invalid(format!(
                    "{} holds {capacity} bytes, less than the disk's {size}",
                    path.display()
                )));
            }
            return Ok(FileTarget {
                file,
                path: path.to_path_buf(),
                device,
            });
        }
        if existing.is_some() && !overwrite {
            return Err(Error::TargetExists {
                count: 1,
                example: path.to_path_buf(),
            });
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(size).map_err(|e| Error::io(path, e))?;
        Ok(FileTarget {
            file,
            path: path.to_path_buf(),
            device,
        })
    }
}

impl DiskWriter for FileTarget {
    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        if self.device {
            return self
                .file
                .write_all_at(data, offset)
                .map_err(|e| Error::io(&self.path, e));
        }
        for (i, page) in data.chunks(PAGE).enumerate() {
            if !crate::backup::is_zero(page) {
                self.file
                    .write_all_at(page, offset + (i * PAGE) as u64)
                    .map_err(|e| Error::io(&self.path, e))?;
            }
        }
        Ok(())
    }

    fn zero(&self, offset: u64, len: u64) -> Result<()> {
        if !self.device {
            return Ok(()); // a new file is all holes
        }
        let zeros = vec![0u8; (len as usize).min(1 << 20)];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], offset + at)
                .map_err(|e| Error::io(&self.path, e))?;
            at += n as u64;
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

/// What a disk restore wrote.
#[derive(Debug, Clone, Default)]
pub struct DiskRestored {
    pub size: u64,
    pub blocks_data: u64,
    pub blocks_hole: u64,
    pub bytes_written: u64,
}

/// Writes the disk of `node` (a disk node of a point read through
/// `source`) to `out`: every data block authenticated and its chunk id
/// recomputed by the source, and its length checked against the block's,
/// before it is written.
pub fn restore_disk(
    source: &dyn Source,
    node: &Node,
    what: &str,
    out: &dyn DiskWriter,
    progress: &RestoreProgress,
) -> Result<DiskRestored> {
    let map = DiskMap::read(&node.kind, what, |id| source.chunk(id))?;
    let g = map.geometry;
    progress.bytes_total.fetch_add(g.size, Ordering::Relaxed);
    let workers = rayon::ThreadPoolBuilder::new()
        .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()) + 1)
        .thread_name(|i| format!("coffer-disk-restore-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start restore threads: {e}")))?;
    let mut done = DiskRestored {
        size: g.size,
        ..DiskRestored::default()
    };
    let round = SEGMENTS_PER_ROUND * g.segment_blocks as usize;
    for (r, blocks) in map.blocks.chunks(round).enumerate() {
        if progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let first = (r * round) as u64;
        let mut wanted: std::collections::HashMap<ChunkId, Targets> = Default::default();
        for (i, block) in blocks.iter().enumerate() {
            let b = first + i as u64;
            match block {
                Block::Hole => {
                    out.zero(g.block_offset(b), u64::from(g.block_len(b)))?;
                    done.blocks_hole += 1;
                }
                Block::Data(id) => wanted.entry(*id).or_default().push((b as usize, 0)),
            }
        }
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let written = std::sync::atomic::AtomicU64::new(0);
        let deliver = |targets: &Targets, data: Result<&[u8]>| {
            let result = data.and_then(|bytes| {
                for &(b, _) in targets {
                    let b = b as u64;
                    if bytes.len() != g.block_len(b) as usize {
                        return Err(Error::corrupt(
                            format!("{what}: block {b}"),
                            "its chunk is not the block's length",
                        ));
                    }
                    out.write(g.block_offset(b), bytes)?;
                    written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    progress
                        .bytes_written
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Ok(())
            });
            if let Err(e) = result {
                if let Ok(mut f) = failure.lock() {
                    f.get_or_insert(e);
                }
            }
        };
        let count: u64 = wanted.values().map(|t| t.len() as u64).sum();
        source.deliver(wanted.into_iter().collect(), &workers, &deliver);
        if let Some(e) = failure.into_inner().map_err(|_| Error::Cancelled)? {
            return Err(e);
        }
        done.blocks_data += count;
        done.bytes_written += written.into_inner();
    }
    out.finish()?;
    progress.files.fetch_add(1, Ordering::Relaxed);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{
        backup_disks, BackupOptions, Changed, DiskInput, DiskMeta, Progress, ReadMethod,
    };
    use crate::restore::VaultSource;
    use crate::testutil::new_vault;
    use std::os::unix::fs::MetadataExt;

    const MIB: u64 = 1 << 20;

    fn write(path: &Path, offset: u64, byte: u8, len: usize) {
        let f = OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(&vec![byte; len], offset).unwrap();
    }

    fn input(path: &Path, changed: Option<Changed>) -> DiskInput {
        let disk = RawDisk::open(path).unwrap();
        DiskInput {
            name: "disk.img".into(),
            size: disk.size(),
            reader: Box::new(disk),
            changed,
            note: None,
            meta: DiskMeta {
                mode: 0o640,
                ..DiskMeta::default()
            },
        }
    }

    fn opts() -> BackupOptions {
        BackupOptions {
            item: Some("vm".into()),
            ..Default::default()
        }
    }

    /// Restores the point's disk to `to` and returns its bytes.
    fn restored(vault: &crate::vault::Vault, point: &crate::ids::ObjectId, to: &Path) -> Vec<u8> {
        let index = vault.load_index().unwrap();
        let source = VaultSource {
            vault,
            index: &index,
        };
        let p = vault.read_point(point).unwrap();
        let node = crate::restore::find_node(vault, &index, &p, Path::new("/disk.img")).unwrap();
        let size = match node.kind {
            crate::tree::NodeKind::Disk { size, .. } => size,
            _ => panic!("not a disk"),
        };
        let target = FileTarget::create(to, size, true).unwrap();
        restore_disk(
            &source,
            &node,
            "disk.img",
            &target,
            &RestoreProgress::default(),
        )
        .unwrap();
        std::fs::read(to).unwrap()
    }

    #[test]
    fn a_sparse_image_round_trips_sparse_and_only_changes_are_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(&tmp.path().join("v"), false);
        let img = tmp.path().join("disk.img");
        let f = File::create(&img).unwrap();
        f.set_len(64 * MIB + 12_345).unwrap();
        write(&img, 3 * MIB + 100, 0x11, 2 * MIB as usize);
        write(&img, 40 * MIB, 0, MIB as usize); // allocated zeros: a hole in the point
        write(&img, 64 * MIB, 0x22, 12_345); // the short last block

        let first = backup_disks(
            &vault,
            vec![input(&img, None)],
            &opts(),
            &Progress::default(),
        )
        .unwrap();
        let report = &first.disks[0];
        assert_eq!(report.method, ReadMethod::Full);
        assert_eq!(report.blocks_data, 4, "{report:?}"); // 3..6 MiB spans 3 blocks, plus the tail
        assert!(report.bytes_read <= 5 * MIB, "{report:?}");

        let out = tmp.path().join("back.img");
        assert_eq!(
            restored(&vault, &first.point, &out),
            std::fs::read(&img).unwrap()
        );
        // Sparse: only the data blocks' non-zero pages take space.
        let used = std::fs::metadata(&out).unwrap().blocks() * 512;
        assert!(used <= 3 * MIB, "restored image uses {used} bytes");

        // Changed in one block; every allocated block is compared.
        write(&img, 3 * MIB + 200, 0x33, 10);
        let second = backup_disks(
            &vault,
            vec![input(&img, None)],
            &opts(),
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(second.disks[0].method, ReadMethod::Compared);
        assert_eq!(second.disks[0].blocks_changed, 1);
        // The changed block, its segment and the root tree.
        assert!(second.manifest.stats.bytes_new < MIB + (64 << 10));
        assert_eq!(
            restored(&vault, &second.point, &out),
            std::fs::read(&img).unwrap()
        );

        // A bitmap counting from the previous point: only its block is read.
        write(&img, 5 * MIB + 7, 0x44, 3);
        let since = second.manifest.time;
        let changed = Changed {
            since,
            ranges: vec![(5 * MIB, 64 << 10)],
        };
        let third = backup_disks(
            &vault,
            vec![input(&img, Some(changed))],
            &opts(),
            &Progress::default(),
        )
        .unwrap();
        let r = &third.disks[0];
        assert_eq!(r.method, ReadMethod::Bitmap, "{r:?}");
        assert_eq!(r.blocks_changed, 1);
        // The changed block and the spot checks of the clean ones.
        assert!(r.bytes_read <= 5 * MIB, "{r:?}");
        assert_eq!(
            restored(&vault, &third.point, &out),
            std::fs::read(&img).unwrap()
        );

        // A bitmap that leaves out a change is caught by the spot check and
        // the disk read whole: the point is still the image.
        write(&img, 3 * MIB, 0x55, 4);
        write(&img, 4 * MIB, 0x55, 4);
        write(&img, 5 * MIB, 0x55, 4);
        write(&img, 64 * MIB, 0x55, 4);
        let lying = Changed {
            since: third.manifest.time,
            ranges: Vec::new(),
        };
        let fourth = backup_disks(
            &vault,
            vec![input(&img, Some(lying))],
            &opts(),
            &Progress::default(),
        )
        .unwrap();
        let r = &fourth.disks[0];
        assert_eq!(r.method, ReadMethod::Compared, "{r:?}");
        assert!(
            r.note.as_deref().unwrap_or("").contains("dirty bitmap"),
            "{r:?}"
        );
        assert_eq!(
            restored(&vault, &fourth.point, &out),
            std::fs::read(&img).unwrap()
        );

        // A bitmap from another time is not used.
        let stale = Changed {
            since: first.manifest.time,
            ranges: Vec::new(),
        };
        let fifth = backup_disks(
            &vault,
            vec![input(&img, Some(stale))],
            &opts(),
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(fifth.disks[0].method, ReadMethod::Compared);

        let mut vault = vault;
        let check = crate::check::check(&mut vault, crate::check::ReadData::All).unwrap();
        assert!(check.ok(), "{:?}", check.problems);
    }

    #[test]
    fn a_disk_point_needs_format_6() {
        let tmp = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(&tmp.path().join("v"), true);
        let img = tmp.path().join("disk.img");
        File::create(&img).unwrap().set_len(MIB).unwrap();
        let e = backup_disks(
            &vault,
            vec![input(&img, None)],
            &opts(),
            &Progress::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("vault upgrade"), "{e}");
    }
}
