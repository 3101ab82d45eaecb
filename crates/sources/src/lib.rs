//! What Coffer protects, one module per kind of item behind one interface.
//!
//! A protected item is a directory tree, a live SQLite database, a
//! PostgreSQL database or cluster, or any command's output. Each kind knows
//! how to capture a consistent state into a recovery point (through the
//! engine: file trees with `backup`, everything else as streams with
//! `backup_streams`, never through a temporary copy it could avoid), how to
//! put a point back where it belongs, and how to prove in a scratch area
//! that a point restores (a recovery drill). Pre and post scripts wrap every
//! kind the same way; the point records how consistent the capture was.

#![forbid(unsafe_code)]

pub mod command;
pub mod directory;
pub mod disk;
pub mod hooks;
pub mod postgresql;
pub mod process;
pub mod sqlite;
pub mod streams;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a backup goes: an opened vault, or a write-only writer's view of one.
pub use coffer_engine::backup::Destination as BackupDestination;
use coffer_engine::backup::{BackupOptions, BackupReport, Progress};
use coffer_engine::point::Consistency;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Point, Vault};

pub use coffer_api_types::item::{DiskFormat, DiskSpec};
pub use command::CommandSpec;
pub use hooks::Hook;
pub use postgresql::{PostgresMode, PostgresSpec};
pub use streams::PointStreams;

/// Tag that records an item's kind in each of its points, so a point can be
/// restored even without the service's configuration.
pub const KIND_TAG: &str = "coffer:kind=";

/// Errors of capturing, restoring and verifying items.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The item's settings are wrong; `field` names the setting.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The pre script failed and the item does not continue without it.
    #[error("the pre script failed, so nothing was backed up: {0}")]
    PreScript(String),
    /// A tool or command of the item failed during a restore.
    #[error("{0}")]
    Restore(String),
    /// A recovery drill found the point not restorable as it should be.
    #[error("the drill failed: {0}")]
    Verify(String),
    /// QEMU's tools or an image failed.
    #[error("{0}")]
    Disk(String),
    #[error(transparent)]
    Engine(#[from] coffer_engine::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        message: message.into(),
    }
}

/// The kinds of protected item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Directory,
    Sqlite,
    Postgresql,
    Command,
    Disk,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Directory,
        Kind::Sqlite,
        Kind::Postgresql,
        Kind::Command,
        Kind::Disk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::Sqlite => "sqlite",
            Kind::Postgresql => "postgresql",
            Kind::Command => "command",
            Kind::Disk => "disk",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    fn protector(self) -> &'static dyn Protector {
        match self {
            Kind::Directory => &directory::Directory,
            Kind::Sqlite => &sqlite::Sqlite,
            Kind::Postgresql => &postgresql::Postgresql,
            Kind::Command => &command::Command,
            Kind::Disk => &disk::Disk,
        }
    }
}

/// Everything that says what an item protects and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDef {
    pub name: String,
    pub kind: Kind,
    /// `directory`: the trees; `sqlite`: the one database file.
    pub paths: Vec<String>,
    /// `directory`: glob patterns left out.
    pub excludes: Vec<String>,
    pub postgresql: Option<PostgresSpec>,
    pub command: Option<CommandSpec>,
    pub disk: Option<DiskSpec>,
    pub pre: Option<Hook>,
    pub post: Option<Hook>,
}

/// Where a restore puts an item back.
#[derive(Debug, Clone, Default)]
pub struct Destination {
    /// Files (trees, database files, streams without a restore command) go
    /// under this directory instead of their original place.
    pub target: Option<PathBuf>,
    /// Replace what exists.
    pub overwrite: bool,
    /// PostgreSQL: restore into this server (libpq connection string)
    /// instead of the item's own.
    pub postgresql_connection: Option<String>,
}

impl Destination {
    /// Where a file backed up at `original` goes.
    fn place(&self, original: &Path) -> PathBuf {
        match &self.target {
            Some(t) => t.join(original.strip_prefix("/").unwrap_or(original)),
            None => original.to_path_buf(),
        }
    }
}

/// A captured point and what went wrong on the side.
#[derive(Debug)]
pub struct Captured {
    pub report: BackupReport,
    /// Things the operator should know that did not stop the backup: a pre
    /// script that failed (the point is then less consistent), a post script
    /// that failed.
    pub warnings: Vec<String>,
}

/// What each kind of item implements.
trait Protector: Sync {
    fn validate(&self, item: &ItemDef) -> Result<()>;
    /// How consistent a capture is without a pre script.
    fn own_consistency(&self, item: &ItemDef) -> Consistency;
    fn capture(
        &self,
        vault: &dyn BackupDestination,
        item: &ItemDef,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport>;
    /// Puts the point back; returns what was done, in one line.
    fn restore(
        &self,
        point: &PointStreams<'_>,
        item: &ItemDef,
        to: &Destination,
        progress: &RestoreProgress,
    ) -> Result<String>;
    /// Restores into `scratch` and checks the result; returns what was
    /// checked, in one line.
    fn verify(
        &self,
        vault: &Vault,
        item: &ItemDef,
        point: &Point,
        scratch: &Path,
    ) -> Result<String>;
}

impl ItemDef {
    /// The definition of an item as the service stores it (and sends it
    /// to the agent it lives on).
    pub fn of_item(item: &coffer_api_types::item::Item) -> Result<ItemDef> {
        let kind = Kind::parse(&item.kind).ok_or_else(|| {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            invalid(
                "kind",
                format!(
                    "unknown kind {:?}; supported: {}",
                    item.kind,
                    known.join(", ")
                ),
            )
        })?;
        Ok(ItemDef {
            name: item.name.clone(),
            kind,
            paths: item.paths.clone(),
            excludes: item.excludes.clone(),
            postgresql: item.postgresql.clone(),
            command: item.command.clone(),
            disk: item.disk.clone(),
            pre: item.pre.clone(),
            post: item.post.clone(),
        })
    }

    /// Whether the item runs programs the service names (scripts, a
    /// command item, PostgreSQL tools from a directory of its choice): an
    /// agent runs those only when its host allows it.
    pub fn runs_commands(&self) -> bool {
        self.pre.is_some()
            || self.post.is_some()
            || self.kind == Kind::Command
            || self
                .postgresql
                .as_ref()
                .is_some_and(|p| p.bin_dir.is_some())
    }

    /// Whether putting a point back to `to` runs programs the service
    /// names: a command item's restore command (not its output written as
    /// a file under a target), PostgreSQL tools from a directory of the
    /// item's choice. Scripts run only around backups.
    pub fn restore_runs_commands(&self, to: &Destination) -> bool {
        let command = self.kind == Kind::Command
            && to.target.is_none()
            && self.command.as_ref().is_some_and(|c| c.restore.is_some());
        let tools = self.kind == Kind::Postgresql
            && self
                .postgresql
                .as_ref()
                .is_some_and(|p| p.bin_dir.is_some());
        command || tools
    }

    /// Checks the settings of the item's kind and its scripts.
    pub fn validate(&self) -> Result<()> {
        for (field, hook) in [("pre", &self.pre), ("post", &self.post)] {
            if let Some(h) = hook {
                h.validate().map_err(|m| invalid(field, m))?;
            }
        }
        self.kind.protector().validate(self)
    }
}

fn absolute_paths(item: &ItemDef) -> Result<()> {
    if item.paths.is_empty() {
        return Err(invalid("paths", "at least one path is required"));
    }
    for p in &item.paths {
        if !Path::new(p).is_absolute() {
            return Err(invalid(
                "paths",
                format!("{p:?} is not absolute: give the full path, starting with /"),
            ));
        }
    }
    Ok(())
}

/// Backs up an item: pre script, capture, post script. `opts` carries the
/// item name, tags and times; the kind's tag and the consistency are added.
pub fn back_up(
    vault: &dyn BackupDestination,
    item: &ItemDef,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<Captured> {
    item.validate()?;
    let protector = item.kind.protector();
    let mut warnings = Vec::new();
    let mut consistency = protector.own_consistency(item);
    if let Some(pre) = &item.pre {
        match hooks::run(pre, &item.name, "pre") {
            Ok(()) => consistency = Consistency::ApplicationConsistent,
            Err(e) if pre.continue_on_failure => warnings.push(format!(
                "the pre script failed, so the point is {}: {e}",
                consistency.as_str()
            )),
            Err(e) => {
                // The script may have half-quiesced the application.
                if let Some(post) = &item.post {
                    if let Err(pe) = hooks::run(post, &item.name, "post") {
                        tracing::warn!(item = %item.name, "post script failed: {pe}");
                    }
                }
                return Err(Error::PreScript(e));
            }
        }
    }
    let mut opts = opts.clone();
    opts.item = Some(item.name.clone());
    opts.consistency = Some(consistency);
    opts.tags.push(format!("{KIND_TAG}{}", item.kind.as_str()));
    let captured = protector.capture(vault, item, &opts, progress);
    if let Some(post) = &item.post {
        if let Err(e) = hooks::run(post, &item.name, "post") {
            warnings.push(format!("the post script failed: {e}"));
        }
    }
    Ok(Captured {
        report: captured?,
        warnings,
    })
}

/// Restores an item's point from its vault to where `to` says.
pub fn restore(
    vault: &Vault,
    item: &ItemDef,
    point: &Point,
    to: &Destination,
    progress: &RestoreProgress,
) -> Result<String> {
    let index = vault.load_index()?;
    let source = coffer_engine::restore::VaultSource {
        vault,
        index: &index,
    };
    restore_streams(&PointStreams::of_point(&source, point), item, to, progress)
}

/// Runs `f` on `point` read from its vault (a drill's verification).
fn from_vault<R>(
    vault: &Vault,
    point: &Point,
    f: impl FnOnce(&PointStreams<'_>) -> Result<R>,
) -> Result<R> {
    let index = vault.load_index()?;
    let source = coffer_engine::restore::VaultSource {
        vault,
        index: &index,
    };
    f(&PointStreams::of_point(&source, point))
}

/// Restores an item's point read through any source (an agent's is the
/// service) to where `to` says.
pub fn restore_streams(
    point: &PointStreams<'_>,
    item: &ItemDef,
    to: &Destination,
    progress: &RestoreProgress,
) -> Result<String> {
    item.kind.protector().restore(point, item, to, progress)
}

/// A recovery drill of one item's point: restores it into a scratch area
/// under `scratch_root` (the system's temporary directory if `None`),
/// checks it, and removes the scratch area.
pub fn verify(
    vault: &Vault,
    item: &ItemDef,
    point: &Point,
    scratch_root: Option<&Path>,
) -> Result<String> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("coffer-drill-");
    let scratch = match scratch_root {
        Some(root) => builder.tempdir_in(root),
        None => builder.tempdir(),
    }
    .map_err(|e| Error::Verify(format!("cannot make a scratch area: {e}")))?;
    item.kind
        .protector()
        .verify(vault, item, point, scratch.path())
}

/// The kind recorded in a point's tags.
pub fn kind_of(point: &Point) -> Option<Kind> {
    point
        .manifest
        .tags
        .iter()
        .find_map(|t| t.strip_prefix(KIND_TAG))
        .and_then(Kind::parse)
}

/// Writes the stream file `name` of a point into `file` (created by the
/// caller without following symlinks); `shown` names it in messages.
fn stream_into(
    point: &PointStreams<'_>,
    name: &str,
    file: std::fs::File,
    shown: &Path,
) -> Result<u64> {
    let mut out = std::io::BufWriter::new(file);
    let size = point.read(name, &mut out)?;
    let file = out
        .into_inner()
        .map_err(|e| Error::Restore(format!("cannot write {}: {e}", shown.display())))?;
    file.sync_all()
        .map_err(|e| Error::Restore(format!("cannot write {}: {e}", shown.display())))?;
    Ok(size)
}

/// Writes the stream file `name` of a point to the new file `name` in the
/// directory `dir` (see `coffer_engine::confine`: nothing is followed).
fn stream_to_dir(
    point: &PointStreams<'_>,
    name: &str,
    dir: &coffer_engine::confine::Dir,
    overwrite: bool,
) -> Result<u64> {
    let shown = dir.shown(std::ffi::OsStr::new(name));
    let file = dir
        .create_file(std::ffi::OsStr::new(name), overwrite)
        .map_err(|e| Error::Restore(format!("cannot create {}: {e}", shown.display())))?;
    stream_into(point, name, file, &shown)
}

/// Opens a directory to restore into (creating it), for [`stream_to_dir`].
fn open_dir(path: &Path) -> Result<coffer_engine::confine::Dir> {
    coffer_engine::confine::Dir::open_target(path)
        .map_err(|e| Error::Restore(format!("cannot create {}: {e}", path.display())))
}

/// Stores one stream as an item's point.
fn capture_stream(
    vault: &dyn BackupDestination,
    name: String,
    reader: Box<dyn std::io::Read + Send>,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupReport> {
    Ok(coffer_engine::backup::backup_streams(
        vault,
        vec![coffer_engine::backup::NamedStream { name, reader }],
        opts,
        progress,
    )?)
}

/// Runs a dump tool or a command and stores its output as the stream
/// `name`; a failure to start it fails the backup like a failure later on.
fn capture_output(
    vault: &dyn BackupDestination,
    cmd: std::process::Command,
    what: &str,
    name: String,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupReport> {
    let reader = process::ChildOutput::spawn(cmd, what).map_err(|e| {
        Error::Engine(coffer_engine::Error::SourceFailed {
            name: name.clone(),
            message: e.to_string(),
        })
    })?;
    capture_stream(vault, name, Box::new(reader), opts, progress)
}
