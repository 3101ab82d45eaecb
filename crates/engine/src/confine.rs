//! Writing under a restore target without ever leaving it.
//!
//! A point's trees are data someone else may have written, and a target
//! may hold entries someone else planted (or swaps in while a restore
//! runs). So nothing below the target is reached by a path: every entry is
//! created relative to the handle of its parent directory (`openat`,
//! `mkdirat`, `symlinkat`, `mknodat`, `linkat`), directories are opened
//! with `O_NOFOLLOW | O_DIRECTORY`, files are created with `O_EXCL |
//! O_NOFOLLOW`, and metadata is applied through the entry's own handle, or
//! by name inside its parent's handle with no-follow flags. A symlink or
//! any other non-directory where a directory belongs is a conflict, never a
//! way through. Names are checked before use ([`check_name`]): one path
//! component, not empty, not `.` or `..`, without `/` or NUL.
//!
//! Symlinks and special files have no handle that can change their mode
//! or extended attributes, so those go through `/proc/self/fd/N/NAME`:
//! the kernel resolves `N` to the parent handle itself, and the last
//! component is not followed. Only the target directory itself is opened
//! by its path; whoever chooses the target answers for that path.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use crate::tree::{Node, NodeKind, Timestamp};

/// Why a name from a tree cannot be an entry of a directory.
pub fn check_name(name: &[u8]) -> Result<(), &'static str> {
    match name {
        [] => Err("an empty name"),
        b"." | b".." => Err("a name that means a directory itself or its parent"),
        _ if name.contains(&b'/') => Err("a name with a '/' in it"),
        _ if name.contains(&0) => Err("a name with a NUL byte in it"),
        _ => Ok(()),
    }
}

/// An open directory under (or at) a restore target, with the path it is
/// known by in messages.
#[derive(Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

/// What stands where an entry is to be made.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    Directory,
    /// A file, symlink or special file.
    Other,
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

fn in_the_way(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::AlreadyExists, what.to_string())
}

impl Dir {
    /// Opens (creating it and its parents if needed) the target directory.
    pub fn open_target(path: &Path) -> std::io::Result<Dir> {
        std::fs::create_dir_all(path)?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
        })
    }

    /// The path this directory is known by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub fn shown(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A path that reaches `name` through this directory's handle (see the
    /// module documentation); the last component is the caller's to follow
    /// or not.
    pub fn proc_path(&self, name: &OsStr) -> PathBuf {
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        if !name.is_empty() {
            p.push(name);
        }
        p
    }

    /// What is at `name`, without following a symlink.
    pub fn existing(&self, name: &OsStr) -> std::io::Result<Existing> {
        match rustix::fs::statat(self.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
                Ok(Existing::Directory)
            }
            Ok(_) => Ok(Existing::Other),
            Err(Errno::NOENT) => Ok(Existing::Nothing),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes a non-directory at `name`, if there is one.
    pub fn remove_other(&self, name: &OsStr) -> std::io::Result<()> {
        match self.existing(name)? {
            Existing::Nothing => Ok(()),
            Existing::Directory => Err(in_the_way("a directory is in the way")),
            Existing::Other => match rustix::fs::unlinkat(self.fd(), name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(io(e)),
            },
        }
    }

    /// Opens the directory `name`, creating it if it is missing. A
    /// non-directory there is replaced only when `replace` allows it.
    pub fn child_dir(&self, name: &OsStr, replace: bool) -> std::io::Result<Dir> {
        match rustix::fs::mkdirat(self.fd(), name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io(e)),
        }
        match self.open_dir(name) {
            Err(e) if is_not_a_directory(&e) && replace => {
                self.remove_other(name)?;
                rustix::fs::mkdirat(self.fd(), name, Mode::from_raw_mode(0o700)).map_err(io)?;
                self.open_dir(name)
            }
            Err(e) if is_not_a_directory(&e) => Err(in_the_way(
                "a file or symlink is in the way of a directory (allow overwriting to replace it)",
            )),
            other => other,
        }
    }

    /// Opens an existing directory `name` without following a symlink.
    pub fn open_dir(&self, name: &OsStr) -> std::io::Result<Dir> {
        let fd = rustix::fs::openat(
            self.fd(),
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: self.path.join(name),
        })
    }

    /// The directory holding `relative` (a path below this directory, as
    /// recorded earlier in the same restore) and its last name, reached one
    /// component at a time without following symlinks.
    pub fn parent_of(&self, relative: &Path) -> std::io::Result<(Dir, OsString)> {
        let mut names: Vec<&OsStr> = Vec::new();
        for c in relative.components() {
            match c {
                Component::Normal(n) => names.push(n),
                _ => return Err(in_the_way("not a plain relative path")),
            }
        }
        let last = names
            .pop()
            .ok_or_else(|| in_the_way("an empty path"))?
            .to_os_string();
        let mut dir = self.clone();
        for n in names {
            dir = dir.open_dir(n)?;
        }
        Ok((dir, last))
    }

    /// Creates the regular file `name` (mode 0600 until its metadata is
    /// applied). What exists there is replaced only with `overwrite`, and
    /// never a directory; a symlink there is removed, not followed.
    pub fn create_file(&self, name: &OsStr, overwrite: bool) -> std::io::Result<File> {
        let create = || {
            rustix::fs::openat(
                self.fd(),
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        };
        let fd = match create() {
            Err(Errno::EXIST) if overwrite => {
                self.remove_other(name)?;
                create().map_err(io)?
            }
            Err(Errno::EXIST) => {
                return Err(in_the_way("exists (allow overwriting to replace it)"))
            }
            other => other.map_err(io)?,
        };
        Ok(File::from(fd))
    }

    /// Creates the symlink `name` pointing at `target` (which is only
    /// text: nothing here ever follows it).
    pub fn symlink(&self, name: &OsStr, target: &[u8]) -> std::io::Result<()> {
        rustix::fs::symlinkat(OsStr::from_bytes(target), self.fd(), name).map_err(io)
    }

    /// Creates a FIFO, socket or device node `name`.
    pub fn special(&self, name: &OsStr, node: &Node) -> std::io::Result<()> {
        use rustix::fs::FileType;
        let (kind, rdev) = match node.kind {
            NodeKind::Fifo => (FileType::Fifo, 0),
            NodeKind::Socket => (FileType::Socket, 0),
            NodeKind::CharDevice { rdev } => (FileType::CharacterDevice, rdev),
            NodeKind::BlockDevice { rdev } => (FileType::BlockDevice, rdev),
            _ => return Ok(()),
        };
        rustix::fs::mknodat(self.fd(), name, kind, Mode::from_raw_mode(0o600), rdev).map_err(io)
    }

    /// Makes `name` a hard link to `from_name` in `from` (not following a
    /// symlink there).
    pub fn hard_link(&self, name: &OsStr, from: &Dir, from_name: &OsStr) -> std::io::Result<()> {
        rustix::fs::linkat(from.fd(), from_name, self.fd(), name, AtFlags::empty()).map_err(io)
    }
}

fn is_not_a_directory(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == Errno::NOTDIR.raw_os_error() || code == Errno::LOOP.raw_os_error()
    )
}

fn timestamps(t: Timestamp) -> Timestamps {
    let spec = rustix::fs::Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    };
    Timestamps {
        last_access: spec,
        last_modification: spec,
    }
}

fn owner_ids(node: &Node) -> Option<(rustix::fs::Uid, rustix::fs::Gid)> {
    // u32::MAX means "leave unchanged" to chown: a tree cannot ask for it.
    (node.uid != u32::MAX && node.gid != u32::MAX).then(|| {
        (
            rustix::fs::Uid::from_raw(node.uid),
            rustix::fs::Gid::from_raw(node.gid),
        )
    })
}

fn unsupported(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::NODATA
}

/// Sets every extended attribute of `node` with `set`; a file system
/// without them is not a problem, any other failure is.
fn set_xattrs(
    node: &Node,
    problems: &mut Vec<String>,
    set: impl Fn(&OsStr, &[u8]) -> Result<(), Errno>,
) {
    for (name, value) in &node.xattrs {
        if let Err(e) = set(OsStr::from_bytes(name), value) {
            if !unsupported(e) {
                problems.push(format!(
                    "xattr {}: {}",
                    String::from_utf8_lossy(name),
                    io(e)
                ));
            }
        }
    }
}

/// Applies a file's or directory's metadata through its own handle: owner
/// before mode (chown clears setuid), times last.
pub fn apply_to_handle(fd: BorrowedFd<'_>, node: &Node, as_root: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if as_root {
        match owner_ids(node) {
            Some((u, g)) => {
                if let Err(e) = rustix::fs::fchown(fd, Some(u), Some(g)) {
                    problems.push(format!("owner: {}", io(e)));
                }
            }
            None => problems.push("owner: the point records an impossible id".into()),
        }
    }
    if let Err(e) = rustix::fs::fchmod(fd, Mode::from_raw_mode(node.mode & 0o7777)) {
        problems.push(format!("mode: {}", io(e)));
    }
    set_xattrs(node, &mut problems, |name, value| {
        rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())
    });
    if let Err(e) = rustix::fs::futimens(fd, &timestamps(node.mtime)) {
        problems.push(format!("times: {}", io(e)));
    }
    problems
}

/// Applies the metadata of a symlink or special file `name` in `dir`,
/// never following a symlink.
pub fn apply_by_name(dir: &Dir, name: &OsStr, node: &Node, as_root: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let is_link = matches!(node.kind, NodeKind::Symlink { .. });
    if as_root {
        match owner_ids(node) {
            Some((u, g)) => {
                if let Err(e) =
                    rustix::fs::chownat(dir.fd(), name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                {
                    problems.push(format!("owner: {}", io(e)));
                }
            }
            None => problems.push("owner: the point records an impossible id".into()),
        }
    }
    if !is_link {
        if let Err(e) = chmod_special(dir, name, node.mode) {
            problems.push(format!("mode: {e}"));
        }
    }
    let through = dir.proc_path(name);
    set_xattrs(node, &mut problems, |xname, value| {
        rustix::fs::lsetxattr(&through, xname, value, rustix::fs::XattrFlags::empty())
    });
    if let Err(e) = rustix::fs::utimensat(
        dir.fd(),
        name,
        &timestamps(node.mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        problems.push(format!("times: {}", io(e)));
    }
    problems
}

/// Sets the mode of a special file: through an `O_PATH` handle that was
/// opened without following, and checked not to be a symlink, because
/// `fchmodat` would follow one.
fn chmod_special(dir: &Dir, name: &OsStr, mode: u32) -> std::io::Result<()> {
    let fd = rustix::fs::openat(
        dir.fd(),
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let st = rustix::fs::fstat(&fd).map_err(io)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
        return Err(in_the_way("a symlink replaced it"));
    }
    let via = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    rustix::fs::chmod(&via, Mode::from_raw_mode(mode & 0o7777)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_plain_component_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"\xff\xfe"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn nothing_is_created_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let target = tmp.path().join("target");
        let dir = Dir::open_target(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("x")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), target.join("f")).unwrap();

        let e = dir.child_dir(OsStr::new("x"), false).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
        assert!(dir.create_file(OsStr::new("f"), false).is_err());
        // With overwrite the link itself is replaced, never followed.
        dir.create_file(OsStr::new("f"), true).unwrap();
        assert!(target.join("f").symlink_metadata().unwrap().is_file());
        let sub = dir.child_dir(OsStr::new("x"), true).unwrap();
        sub.create_file(OsStr::new("evil"), false).unwrap();
        assert!(target.join("x/evil").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        // A path walked again later does not follow a symlink swapped in.
        std::fs::remove_dir_all(target.join("x")).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("x")).unwrap();
        assert!(dir.parent_of(Path::new("x/evil")).is_err());
    }
}
