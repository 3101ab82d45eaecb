//! `sqlite`: a live SQLite database, copied through SQLite's online backup
//! API while other processes keep writing.
//!
//! The copy is taken in one step, so it is one transaction's view whatever
//! the writers do (a stepwise copy restarts each time another process
//! writes, and under continuous writes never ends); in WAL mode writers go on
//! meanwhile, in rollback mode they wait for their busy timeout. The copy
//! goes to a private temporary file (the API needs a database to copy into)
//! and from there into the vault as one stream; it is removed at once.
//! Restore checks the database's integrity before putting it in place, and
//! copies into an existing database through the same API, so processes that
//! have it open see a consistent change rather than a file swapped under
//! them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use coffer_engine::backup::{BackupOptions, BackupReport, Progress};
use coffer_engine::confine::Existing;
use coffer_engine::point::Consistency;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Point, Vault};

use crate::{
    capture_stream, from_vault, invalid, stream_into, BackupDestination, Destination, Error,
    ItemDef, PointStreams, Protector, Result,
};

/// How long a copy waits for writers that hold the database locked.
const BUSY_WAIT: Duration = Duration::from_secs(60);

pub struct Sqlite;

fn database(item: &ItemDef) -> Result<PathBuf> {
    match item.paths.as_slice() {
        [one] if Path::new(one).is_absolute() => Ok(PathBuf::from(one)),
        [one] => Err(invalid(
            "paths",
            format!("{one:?} is not absolute: give the database file's full path"),
        )),
        _ => Err(invalid(
            "paths",
            "a sqlite item protects exactly one database file",
        )),
    }
}

/// Copies `from` into `to` in one step, waiting while writers hold locks.
fn copy(from: &Connection, to: &mut Connection, what: &str) -> std::result::Result<(), String> {
    let backup = Backup::new(from, to).map_err(|e| format!("cannot start {what}: {e}"))?;
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match backup.step(-1) {
            Ok(StepResult::Done) => return Ok(()),
            Ok(StepResult::More) => continue,
            Ok(StepResult::Busy | StepResult::Locked) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(_) => {
                return Err(format!(
                    "{what}: the database stayed locked for {} s",
                    BUSY_WAIT.as_secs()
                ))
            }
            Err(e) => return Err(format!("{what} failed: {e}")),
        }
    }
}

fn integrity(path: &Path) -> std::result::Result<usize, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the restored database: {e}"))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("cannot check the restored database: {e}"))?;
    if verdict != "ok" {
        return Err(format!("the restored database is damaged: {verdict}"));
    }
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )
    .map_err(|e| format!("cannot read the restored database: {e}"))
}

impl Protector for Sqlite {
    fn validate(&self, item: &ItemDef) -> Result<()> {
        database(item).map(|_| ())
    }

    fn own_consistency(&self, _: &ItemDef) -> Consistency {
        // The copy is one transaction's view of the database.
        Consistency::ApplicationConsistent
    }

    fn capture(
        &self,
        vault: &dyn BackupDestination,
        item: &ItemDef,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        let path = database(item)?;
        let failed = |message: String| {
            Error::Engine(coffer_engine::Error::SourceFailed {
                name: path.display().to_string(),
                message,
            })
        };
        if !path.is_file() {
            return Err(failed("no database file at this path".into()));
        }
        // Read-only, and never creating: a wrong path must not leave an
        // empty database behind.
        let source = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| failed(format!("cannot open: {e}")))?;
        let scratch = tempfile::Builder::new()
            .prefix("coffer-sqlite-")
            .tempdir()
            .map_err(|e| failed(format!("cannot make a temporary copy: {e}")))?;
        let copy_path = scratch.path().join("copy.db");
        {
            let mut dest =
                Connection::open(&copy_path).map_err(|e| failed(format!("cannot copy: {e}")))?;
            copy(&source, &mut dest, "the online backup").map_err(failed)?;
        }
        drop(source);
        let file = std::fs::File::open(&copy_path)
            .map_err(|e| failed(format!("cannot read the copy: {e}")))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database".into());
        let mut opts = opts.clone();
        opts.tags.push(format!("coffer:path={}", path.display()));
        capture_stream(vault, name, Box::new(file), &opts, progress)
    }

    fn restore(
        &self,
        point: &PointStreams<'_>,
        item: &ItemDef,
        to: &Destination,
        _: &RestoreProgress,
    ) -> Result<String> {
        let original = database(item)?;
        let shown = to.place(&original);
        let (dir, file_name) = destination_dir(&original, to.target.as_deref())?;
        match dir.existing(&file_name) {
            Ok(Existing::Nothing) => {}
            Ok(Existing::Other) if to.overwrite => {}
            Ok(Existing::Other) => {
                return Err(Error::Restore(format!(
                    "{} exists: allow overwriting to replace it, or restore under another target",
                    shown.display()
                )))
            }
            Ok(Existing::Directory) => {
                return Err(Error::Restore(format!(
                    "{} is a directory: the database cannot go there",
                    shown.display()
                )))
            }
            Err(e) => {
                return Err(Error::Restore(format!(
                    "cannot look at {}: {e}",
                    shown.display()
                )))
            }
        }
        // Beside the destination, so that putting it in place is a rename;
        // reached through the directory's handle, never through a path
        // that could be swapped.
        let here = dir.proc_path(std::ffi::OsStr::new(""));
        let staged = tempfile::Builder::new()
            .prefix(".coffer-restore-")
            .tempfile_in(&here)
            .map_err(|e| {
                Error::Restore(format!("cannot write in {}: {e}", dir.path().display()))
            })?;
        let name = point.single_stream()?;
        let handle = staged
            .as_file()
            .try_clone()
            .map_err(|e| Error::Restore(format!("cannot write {}: {e}", shown.display())))?;
        stream_into(point, &name, handle, &shown)?;
        let tables = integrity(staged.path()).map_err(Error::Restore)?;
        let dest = dir.proc_path(&file_name);
        if dir.existing(&file_name).ok() == Some(Existing::Other) {
            let from = Connection::open_with_flags(staged.path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| Error::Restore(format!("cannot open the restored copy: {e}")))?;
            let mut into = Connection::open_with_flags(&dest, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|e| Error::Restore(format!("cannot open {}: {e}", shown.display())))?;
            copy(&from, &mut into, "copying into the existing database").map_err(Error::Restore)?;
        } else {
            staged.persist(&dest).map_err(|e| {
                Error::Restore(format!("cannot put {} in place: {e}", shown.display()))
            })?;
        }
        Ok(format!(
            "database with {tables} tables restored to {}",
            shown.display()
        ))
    }

    fn verify(&self, vault: &Vault, _: &ItemDef, point: &Point, scratch: &Path) -> Result<String> {
        let copy = scratch.join("restored.db");
        let size = from_vault(vault, point, |point| {
            let name = point.single_stream()?;
            let file = std::fs::File::create_new(&copy)
                .map_err(|e| Error::Verify(format!("cannot create {}: {e}", copy.display())))?;
            stream_into(point, &name, file, &copy)
        })?;
        let tables = integrity(&copy).map_err(Error::Verify)?;
        Ok(format!(
            "database of {size} bytes restored; integrity check ok, {tables} tables"
        ))
    }
}

/// The directory a database file goes into and its name there. In place,
/// the item's own path (an administrator's choice) is trusted; under a
/// target, every directory below the target is made or entered without
/// following a symlink.
fn destination_dir(
    original: &Path,
    target: Option<&Path>,
) -> Result<(coffer_engine::confine::Dir, std::ffi::OsString)> {
    let file_name = original
        .file_name()
        .ok_or_else(|| invalid("paths", "the database path names no file"))?
        .to_os_string();
    let parent = original.parent().unwrap_or(Path::new("/"));
    let cannot =
        |e: std::io::Error| Error::Restore(format!("cannot create {}: {e}", parent.display()));
    let dir = match target {
        None => coffer_engine::confine::Dir::open_target(parent).map_err(cannot)?,
        Some(t) => {
            let mut dir = coffer_engine::confine::Dir::open_target(t).map_err(cannot)?;
            for c in parent.components() {
                if let std::path::Component::Normal(n) = c {
                    dir = dir.child_dir(n, false).map_err(cannot)?;
                }
            }
            dir
        }
    };
    Ok((dir, file_name))
}
