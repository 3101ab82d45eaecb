//! The state database: one SQLite file in the data directory, in WAL mode,
//! behind one connection. Every statement is short (no vault I/O happens
//! while the connection is held), so a mutex serialises them without
//! becoming the bottleneck. The schema is versioned with `user_version`
//! and migrated forward at start; a database from a newer release is
//! refused rather than guessed at.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Creates `dir` (and its parents) and makes it readable by its owner only,
/// whatever the umask: it holds the service secret and the state database.
pub fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(dir, e))
}

/// Creates the database file with mode 0600 before SQLite opens it, so it
/// never exists readable by others, even for a moment.
fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| Error::io(path, e))
}

/// Takes group and other permissions off a file that exists.
fn restrict_to_owner(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o077 != 0 => {
            let mode = m.permissions().mode() & 0o700;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(path, e))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Schema steps; the database's `user_version` counts how many are applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    expires INTEGER,
    last_used INTEGER
);
CREATE TABLE sessions (
    hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE role_assignments (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    vault TEXT NOT NULL,
    role TEXT NOT NULL,
    UNIQUE (user_id, vault)
);
CREATE TABLE login_failures (
    name TEXT NOT NULL,
    time INTEGER NOT NULL
);
CREATE INDEX login_failures_time ON login_failures (time);
CREATE TABLE vaults (
    name TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    vault_id TEXT NOT NULL,
    sealed_key BLOB NOT NULL,
    sealed_credentials BLOB NOT NULL,
    key_fingerprint TEXT NOT NULL,
    created INTEGER NOT NULL,
    prune_schedule TEXT,
    check_schedule TEXT,
    check_percent REAL NOT NULL DEFAULT 5,
    schedule_time_zone TEXT NOT NULL DEFAULT 'UTC',
    prune_slot INTEGER,
    check_slot INTEGER
);
CREATE TABLE items (
    name TEXT PRIMARY KEY,
    vault TEXT NOT NULL REFERENCES vaults(name),
    kind TEXT NOT NULL,
    paths TEXT NOT NULL,
    excludes TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    retry_attempts INTEGER NOT NULL,
    retry_delay_secs INTEGER NOT NULL,
    created INTEGER NOT NULL,
    last_slot INTEGER
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    vault TEXT,
    item TEXT,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    params TEXT,
    requested_by TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    not_before INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER,
    progress TEXT,
    result TEXT,
    error TEXT,
    cause TEXT
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_item ON jobs (item, id);
CREATE TABLE job_logs (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    category TEXT NOT NULL,
    cause TEXT NOT NULL,
    severity TEXT NOT NULL,
    vault TEXT,
    item TEXT,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    remediation TEXT NOT NULL,
    state TEXT NOT NULL,
    occurrences INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    last_job INTEGER,
    resolved INTEGER,
    resolved_by TEXT
);
CREATE INDEX alerts_open ON alerts (state, item, cause);
CREATE TABLE notification_targets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL,
    sealed_secret BLOB,
    min_severity TEXT NOT NULL,
    events TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE notification_outbox (
    id INTEGER PRIMARY KEY,
    target_id INTEGER NOT NULL REFERENCES notification_targets(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT,
    created INTEGER NOT NULL,
    sent INTEGER
);
CREATE INDEX notification_outbox_due ON notification_outbox (state, next_attempt);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE items ADD COLUMN spec TEXT NOT NULL DEFAULT '{}';
CREATE TABLE sets (
    name TEXT PRIMARY KEY,
    vault TEXT NOT NULL REFERENCES vaults(name),
    items TEXT NOT NULL,
    schedule TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    retention_days INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    drill_schedule TEXT,
    created INTEGER NOT NULL,
    last_slot INTEGER,
    drill_slot INTEGER
);
"#,
    // Failed logins are counted per name and address; role assignments of
    // vaults that were removed before assignments went with them are
    // dropped, so a new vault of that name inherits nothing.
    r#"
ALTER TABLE login_failures ADD COLUMN address TEXT NOT NULL DEFAULT '';
CREATE INDEX login_failures_address ON login_failures (address, time);
DELETE FROM role_assignments WHERE vault != '*' AND vault NOT IN (SELECT name FROM vaults);
"#,
    // What the service last saw of each vault's journal and points, and
    // the replica and tier locations an administrator allowed, each with
    // its own credentials.
    r#"
CREATE TABLE vault_locations (
    vault TEXT NOT NULL,
    location TEXT NOT NULL,
    sealed_credentials BLOB NOT NULL,
    PRIMARY KEY (vault, location)
) WITHOUT ROWID;
CREATE TABLE vault_sightings (
    vault TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (vault, kind, name)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE agent_tokens (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    vault TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    used_by TEXT
);
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    vault TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    next_hash BLOB,
    slot TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    host TEXT NOT NULL,
    address TEXT,
    registered INTEGER NOT NULL,
    last_contact INTEGER
);
ALTER TABLE items ADD COLUMN agent TEXT;
"#,
];

/// Writes a setting on `conn` (a transaction's too: a recovery writes its
/// settings with the rest of the configuration).
pub fn put_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// The state database.
pub struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (creating when missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        create_private_file(path)?;
        let conn = Connection::open(path)?;
        let db = Self::prepare(conn)?;
        // SQLite gives the WAL and SHM files the database file's mode, but
        // files left by an older release may be readable by others.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            restrict_to_owner(Path::new(&name))?;
        }
        Ok(db)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The pragma answers with the mode it set ("memory" for a private
        // in-memory database), so it is a query.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(Error::Config(format!(
                "the state database has schema version {version}, newer than this coffer's {}: run the release that wrote it, or a newer one",
                MIGRATIONS.len()
            )));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    /// The connection, for one short piece of work.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // change is a statement or a transaction), so the poison is moot.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        put_setting(&self.conn(), key, value)
    }

    pub fn delete_setting(&self, key: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM settings WHERE key = ?1", [key])?;
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_and_the_database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let fresh = dir.join("fresh.sqlite");
        let db = Db::open(&fresh).unwrap();
        db.set_setting("k", "v").unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.join(format!("fresh.sqlite{suffix}"));
            assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
        }
        drop(db);

        // A database an older release left readable by everyone.
        let old = dir.join("old.sqlite");
        Db::open(&old).unwrap().set_setting("k", "v").unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.join(format!("old.sqlite{suffix}"));
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let db = Db::open(&old).unwrap();
        db.set_setting("k", "w").unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.join(format!("old.sqlite{suffix}"));
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    #[test]
    fn the_schema_migrates_once_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let db = Db::open(&path).unwrap();
        db.set_setting("k", "v").unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.setting("k").unwrap().as_deref(), Some("v"));
        db.conn()
            .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        drop(db);
        let e = Db::open(&path).err().unwrap();
        assert!(e.to_string().contains("newer"), "{e}");
    }
}
