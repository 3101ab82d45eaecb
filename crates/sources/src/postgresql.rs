//! `postgresql`: a database (a logical dump) or a whole cluster (a base
//! backup), through PostgreSQL's own client tools, streamed into the vault
//! with no copy on disk.
//!
//! Dumps are taken uncompressed (`pg_dump --compress=0`): compressed dumps
//! defeat deduplication between days, and the vault compresses anyway. A
//! database is restored into a running server with `pg_restore --create
//! --clean`, which drops and recreates it; a cluster is unpacked into an
//! empty data directory for a server that is then started on it. Passwords
//! never go into the item's settings: libpq reads them from a password file
//! (`~/.pgpass` or `PGPASSFILE`).

use crate::{from_vault, PointStreams};
use std::path::{Path, PathBuf};

use coffer_engine::backup::{BackupOptions, BackupReport, Progress};
use coffer_engine::point::Consistency;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Point, Vault};

pub use coffer_api_types::item::{PostgresMode, PostgresSpec};

use crate::process::run_fed;
use crate::{
    capture_output, invalid, open_dir, stream_to_dir, BackupDestination, Destination, Error,
    ItemDef, Protector, Result,
};

pub struct Postgresql;

fn spec(item: &ItemDef) -> Result<&PostgresSpec> {
    item.postgresql.as_ref().ok_or_else(|| {
        invalid(
            "postgresql",
            "a postgresql item needs its settings: connection, and database or mode cluster",
        )
    })
}

fn tool(spec: &PostgresSpec, name: &str) -> PathBuf {
    match &spec.bin_dir {
        Some(dir) => Path::new(dir).join(name),
        None => PathBuf::from(name),
    }
}

/// A connection string with `dbname` set (later keywords win in libpq).
fn with_database(connection: &str, database: &str) -> String {
    let quoted = database.replace('\\', "\\\\").replace('\'', "\\'");
    format!("{connection} dbname='{quoted}'")
}

fn database(spec: &PostgresSpec) -> Result<&str> {
    spec.database
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            invalid(
                "postgresql.database",
                "mode database needs the database's name",
            )
        })
}

impl Protector for Postgresql {
    fn validate(&self, item: &ItemDef) -> Result<()> {
        let spec = spec(item)?;
        if spec.connection.contains("password") {
            return Err(invalid(
                "postgresql.connection",
                "leave the password out of the connection string: put it in a password file \
                 (~/.pgpass of the service's user, or PGPASSFILE), where libpq finds it",
            ));
        }
        match spec.mode {
            PostgresMode::Database => database(spec).map(|_| ()),
            PostgresMode::Cluster if spec.database.is_some() => Err(invalid(
                "postgresql.database",
                "mode cluster backs up every database: leave database out",
            )),
            PostgresMode::Cluster => Ok(()),
        }
    }

    fn own_consistency(&self, _: &ItemDef) -> Consistency {
        // A dump is one snapshot; a base backup carries the WAL to make it
        // consistent.
        Consistency::ApplicationConsistent
    }

    fn capture(
        &self,
        vault: &dyn BackupDestination,
        item: &ItemDef,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        let spec = spec(item)?;
        let (cmd, name, what) = match spec.mode {
            PostgresMode::Database => {
                let db = database(spec)?;
                let mut c = crate::process::program(tool(spec, "pg_dump"));
                c.arg("--format=custom")
                    .arg("--compress=0")
                    .arg("--no-password")
                    .arg(format!("--dbname={}", with_database(&spec.connection, db)));
                (c, format!("{db}.dump"), "pg_dump")
            }
            PostgresMode::Cluster => {
                let mut c = crate::process::program(tool(spec, "pg_basebackup"));
                c.arg("--pgdata=-")
                    .arg("--format=tar")
                    .arg("--wal-method=fetch")
                    .arg("--checkpoint=fast")
                    .arg("--no-password")
                    .arg(format!("--dbname={}", spec.connection));
                (c, "base.tar".to_string(), "pg_basebackup")
            }
        };
        capture_output(vault, cmd, what, name, opts, progress)
    }

    fn restore(
        &self,
        point: &PointStreams<'_>,
        item: &ItemDef,
        to: &Destination,
        _: &RestoreProgress,
    ) -> Result<String> {
        let spec = spec(item)?;
        let name = point.single_stream()?;
        let connection = to
            .postgresql_connection
            .as_deref()
            .unwrap_or(&spec.connection);
        let feed = |w: &mut dyn std::io::Write| {
            point
                .read(&name, w)
                .map(|_| ())
                .map_err(|e| format!("reading the point failed: {e}"))
        };
        match spec.mode {
            PostgresMode::Database => {
                let db = database(spec)?;
                let mut c = crate::process::program(tool(spec, "pg_restore"));
                // Connects to the maintenance database to drop and create
                // the restored one.
                c.arg("--create")
                    .arg("--clean")
                    .arg("--if-exists")
                    .arg("--exit-on-error")
                    .arg("--no-password")
                    .arg(format!(
                        "--dbname={}",
                        with_database(connection, "postgres")
                    ));
                run_fed(c, "pg_restore", feed).map_err(Error::Restore)?;
                Ok(format!(
                    "database {db} restored into the server ({connection})"
                ))
            }
            PostgresMode::Cluster => {
                let target = to.target.as_ref().ok_or_else(|| {
                    Error::Restore(
                        "a cluster is restored into an empty data directory: give a target".into(),
                    )
                })?;
                std::fs::create_dir_all(target).map_err(|e| {
                    Error::Restore(format!("cannot create {}: {e}", target.display()))
                })?;
                let empty = std::fs::read_dir(target)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if !empty {
                    return Err(Error::Restore(format!(
                        "{} is not empty: a cluster is restored into an empty data directory",
                        target.display()
                    )));
                }
                let mut c = crate::process::program("tar");
                c.arg("-x").arg("-f").arg("-").arg("-C").arg(target);
                run_fed(c, "tar", feed).map_err(Error::Restore)?;
                // PostgreSQL refuses a data directory others can read.
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700));
                Ok(format!(
                    "cluster unpacked into {}; start the server on it",
                    target.display()
                ))
            }
        }
    }

    fn verify(
        &self,
        vault: &Vault,
        item: &ItemDef,
        point: &Point,
        scratch: &Path,
    ) -> Result<String> {
        let spec = spec(item)?;
        let (name, size) = from_vault(vault, point, |point| {
            let name = point.single_stream()?;
            let size = stream_to_dir(point, &name, &open_dir(scratch)?, false)?;
            Ok((name, size))
        })?;
        let file = scratch.join(&name);
        let (tool_path, args): (PathBuf, Vec<&str>) = match spec.mode {
            PostgresMode::Database => (tool(spec, "pg_restore"), vec!["--list"]),
            PostgresMode::Cluster => (PathBuf::from("tar"), vec!["-t", "-f"]),
        };
        let out = crate::process::program(&tool_path)
            .args(&args)
            .arg(&file)
            .output()
            .map_err(|e| Error::Verify(format!("cannot run {}: {e}", tool_path.display())))?;
        if !out.status.success() {
            return Err(Error::Verify(format!(
                "{} cannot read the restored {name}: {}",
                tool_path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let listing = String::from_utf8_lossy(&out.stdout);
        match spec.mode {
            PostgresMode::Database => {
                let entries = listing
                    .lines()
                    .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
                    .count();
                Ok(format!(
                    "dump of {size} bytes restored; pg_restore reads its {entries} entries"
                ))
            }
            PostgresMode::Cluster => {
                if !listing
                    .lines()
                    .any(|l| l.trim_start_matches("./") == "PG_VERSION")
                {
                    return Err(Error::Verify(
                        "the restored base backup has no PG_VERSION: not a data directory".into(),
                    ));
                }
                Ok(format!(
                    "base backup of {size} bytes restored; {} files in it",
                    listing.lines().count()
                ))
            }
        }
    }
}
