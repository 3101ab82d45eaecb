//! Reading file system metadata: modes, owners (by number, with names
//! recorded), nanosecond timestamps, extended attributes, special files, and
//! the data/hole layout of sparse files (SEEK_DATA / SEEK_HOLE). Restore
//! applies metadata through handles, in `confine`, never by path.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

use nix::unistd::{Gid, Uid, Whence};

use crate::error::{Error, Result};
use crate::tree::{Node, NodeKind, Timestamp};

/// Caches uid/gid → name lookups, which are slow (NSS) and repetitive.
#[derive(Default)]
pub struct Names {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl Names {
    fn user(&self, uid: u32) -> Option<String> {
        let mut map = self.users.lock().ok()?;
        map.entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    fn group(&self, gid: u32) -> Option<String> {
        let mut map = self.groups.lock().ok()?;
        map.entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// Extended attributes of a path (not following symlinks). File systems that
/// do not support them yield none.
pub fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push((name.as_bytes().to_vec(), value)),
            Ok(None) => {}
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    out.sort();
    Ok(out)
}

fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::ENOTSUP) | Some(libc_errno::ENODATA)
    )
}

mod libc_errno {
    pub const ENOTSUP: i32 = nix::errno::Errno::ENOTSUP as i32;
    pub const ENODATA: i32 = nix::errno::Errno::ENODATA as i32;
}

/// A node with all metadata from `lstat`; the kind's content (file extents,
/// subtree) is filled in by the caller.
pub fn node_from_metadata(name: &[u8], md: &Metadata, names: &Names) -> Node {
    let ft = md.file_type();
    let kind = if ft.is_file() {
        NodeKind::File {
            size: md.size(),
            extents: Vec::new(),
        }
    } else if ft.is_dir() {
        NodeKind::Dir {
            tree: crate::ids::ChunkId([0; 32]),
        }
    } else if ft.is_symlink() {
        NodeKind::Symlink { target: Vec::new() }
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice { rdev: md.rdev() }
    } else {
        NodeKind::BlockDevice { rdev: md.rdev() }
    };
    Node {
        name: name.to_vec(),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        user: names.user(md.uid()),
        group: names.group(md.gid()),
        mtime: ts(md.mtime(), md.mtime_nsec()),
        ctime: ts(md.ctime(), md.ctime_nsec()),
        inode: md.ino(),
        device: md.dev(),
        links: md.nlink(),
        xattrs: Vec::new(),
        error: None,
    }
}

/// The data ranges `(offset, len)` of an open file of `size` bytes; holes
/// are the gaps. File systems without SEEK_DATA report one range.
pub fn data_ranges(file: &File, size: u64) -> Vec<(u64, u64)> {
    if size == 0 {
        return Vec::new();
    }
    let fd = file.as_raw_fd();
    let mut ranges = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        let data = match nix::unistd::lseek(fd, pos, Whence::SeekData) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        if data >= end {
            break;
        }
        let hole = match nix::unistd::lseek(fd, data, Whence::SeekHole) {
            Ok(h) => h.min(end),
            Err(_) => return vec![(0, size)],
        };
        if hole <= data {
            return vec![(0, size)];
        }
        ranges.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    ranges
}

/// Reads a range of a file sequentially while asking the kernel to fetch the
/// next `2 * window` bytes ahead. Large files are read by one thread; the
/// hints keep the disk busy while that thread chunks what it has, which the
/// kernel's own read-ahead (128 KiB by default) does not.
pub struct Prefetching<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    hinted: u64,
    window: u64,
}

impl<'a> Prefetching<'a> {
    /// Reads from the file's current position `start` up to `end`.
    pub fn new(file: &'a File, start: u64, end: u64, window: u64) -> Self {
        Prefetching {
            file,
            pos: start,
            end,
            hinted: start,
            window: window.max(1),
        }
    }
}

impl std::io::Read for Prefetching<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let ahead = self.pos.saturating_add(2 * self.window).min(self.end);
        while self.hinted < ahead {
            let len = self.window.min(self.end - self.hinted);
            // Only a hint: where it fails, reading is merely slower.
            let _ = nix::fcntl::posix_fadvise(
                self.file.as_raw_fd(),
                self.hinted as i64,
                len as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
            self.hinted += len;
        }
        let n = std::io::Read::read(&mut self.file, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether this process may restore owners and device nodes.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Raises the soft limit on open files to the hard limit (at most 65,536),
/// as many programs do at start-up: the default soft limit of 1,024 is a
/// leftover of `select()`, and restore keeps a batch of files open at once.
/// Failure leaves the limit as it was; restore adapts to whatever it is.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let wanted = hard.min(65_536);
        if wanted > soft {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard);
        }
    }
}

/// The current soft limit on open files.
pub fn open_file_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}
